//! Writing, as Apache XML-RPC's `XmlRpcWriter` through ws-commons-util's
//! `CharSetXMLWriter` (UTF-8) does: see the module documentation for the sources.

use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{Datelike, NaiveDateTime, Timelike};

use super::{MethodCall, MethodResponse, Value};

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// A `<methodResponse>` as Keap answers it.
pub fn write_response(response: &MethodResponse) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(DECLARATION);
    out.push_str("<methodResponse>");
    match response {
        MethodResponse::Success(v) => {
            out.push_str("<params><param>");
            value(v, &mut out);
            out.push_str("</param></params>");
        }
        MethodResponse::Fault(f) => {
            // Apache puts both in a java.util.HashMap; with these two keys its
            // iteration order is faultCode (bucket 2), then faultString (bucket 6).
            out.push_str("<fault><value><struct><member><name>faultCode</name><value><i4>");
            let _ = write!(out, "{}", f.code);
            out.push_str("</i4></value></member><member><name>faultString</name><value>");
            text(&f.message, &mut out);
            out.push_str("</value></member></struct></value></fault>");
        }
    }
    out.push_str("</methodResponse>");
    out
}

/// A `<methodCall>` as an Apache XML-RPC client writes it (the tests' client side).
pub fn write_call(call: &MethodCall) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(DECLARATION);
    out.push_str("<methodCall><methodName>");
    text(&call.method, &mut out);
    out.push_str("</methodName>");
    if call.params.is_empty() {
        out.push_str("<params/>");
    } else {
        out.push_str("<params>");
        for p in &call.params {
            out.push_str("<param>");
            value(p, &mut out);
            out.push_str("</param>");
        }
        out.push_str("</params>");
    }
    out.push_str("</methodCall>");
    out
}

fn value(v: &Value, out: &mut String) {
    match v {
        Value::Raw(xml) => {
            out.push_str(xml);
            return;
        }
        // Untyped, as StringSerializer writes strings.
        Value::String(s) => {
            out.push_str("<value>");
            text(s, out);
            out.push_str("</value>");
            return;
        }
        _ => {}
    }
    out.push_str("<value>");
    match v {
        Value::Int(i) => {
            let _ = write!(out, "<i4>{i}</i4>");
        }
        Value::Boolean(b) => out.push_str(if *b { "<boolean>1</boolean>" } else { "<boolean>0</boolean>" }),
        Value::Double(d) => {
            out.push_str("<double>");
            java_double(*d, out);
            out.push_str("</double>");
        }
        Value::DateTime(d) => {
            out.push_str("<dateTime.iso8601>");
            datetime(d, out);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Base64(bytes) if bytes.is_empty() => out.push_str("<base64/>"),
        Value::Base64(bytes) => {
            out.push_str("<base64>");
            base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
            out.push_str("</base64>");
        }
        Value::Struct(members) if members.is_empty() => out.push_str("<struct/>"),
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, member) in members {
                out.push_str("<member><name>");
                text(name, out);
                out.push_str("</name>");
                value(member, out);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        Value::Array(items) if items.is_empty() => out.push_str("<array><data/></array>"),
        Value::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                value(item, out);
            }
            out.push_str("</data></array>");
        }
        Value::String(_) | Value::Raw(_) => {}
    }
    out.push_str("</value>");
}

/// `XMLWriterImpl.characters` with a UTF-8 `CharsetEncoder`: `&`, `<`, `>` as
/// entities; everything else as is, except the UTF-16 surrogate units of a character
/// outside the BMP, which the encoder cannot take one by one and so are written as
/// decimal references, one per unit.
pub(crate) fn text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if u32::from(c) > 0xFFFF => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "&#{unit};");
                }
            }
            c => out.push(c),
        }
    }
}

/// `yyyyMMdd'T'HH:mm:ss` (`XmlRpcDateTimeFormat`).
fn datetime(d: &NaiveDateTime, out: &mut String) {
    let _ = write!(out, "{:04}{:02}{:02}T{:02}:{:02}:{:02}", d.year(), d.month(), d.day(), d.hour(), d.minute(), d.second());
}

/// Java's `Double.toString`: plain notation with at least one decimal for
/// 10^-3 <= |d| < 10^7, else `d.dddE±n`; the shortest digits that read back (what
/// Java does since JDK 19; older JDKs sometimes wrote one digit more).
pub(crate) fn java_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
    } else if d == 0.0 {
        out.push_str(if d.is_sign_negative() { "-0.0" } else { "0.0" });
    } else if (1e-3..1e7).contains(&d.abs()) {
        let plain = d.to_string();
        out.push_str(&plain);
        if !plain.contains('.') {
            out.push_str(".0");
        }
    } else {
        let sci = format!("{d:e}");
        let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
        out.push_str(mantissa);
        if !mantissa.contains('.') {
            out.push_str(".0");
        }
        out.push('E');
        out.push_str(exponent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn java(d: f64) -> String {
        let mut s = String::new();
        java_double(d, &mut s);
        s
    }

    #[test]
    fn doubles_as_java_prints_them() {
        // Expected strings are what `Double.toString` prints (JDK 19+).
        for (d, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-12.214, "-12.214"),
            (0.001, "0.001"),
            (0.000_999, "9.99E-4"),
            (9_999_999.0, "9999999.0"),
            (10_000_000.0, "1.0E7"),
            (1.5e300, "1.5E300"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(java(d), want, "{d}");
        }
    }

    #[test]
    fn text_escapes_like_apache() {
        let mut s = String::new();
        text("a<b>&c \"q\" 'a' é\t\r\n\u{1}😀", &mut s);
        assert_eq!(s, "a&lt;b&gt;&amp;c \"q\" 'a' é\t\r\n\u{1}&#55357;&#56832;");
    }
}
