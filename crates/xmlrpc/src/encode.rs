//! Writing calls and responses. Output is compact UTF-8 with an XML
//! declaration, the way Keap (Apache XML-RPC) writes it.

use base64::Engine as _;

use crate::value::{format_datetime_wire, Fault, MethodCall, MethodResponse, Value};

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// Writes a `<methodCall>`.
pub fn encode_call(call: &MethodCall) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(DECL);
    out.push_str("<methodCall><methodName>");
    escape_into(&call.method, &mut out);
    out.push_str("</methodName><params>");
    for p in &call.params {
        out.push_str("<param>");
        write_value(p, &mut out);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

/// Writes a `<methodResponse>`, with `<params>` or `<fault>`.
pub fn encode_response(response: &MethodResponse) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(DECL);
    out.push_str("<methodResponse>");
    match response {
        MethodResponse::Success(v) => {
            out.push_str("<params><param>");
            write_value(v, &mut out);
            out.push_str("</param></params>");
        }
        MethodResponse::Fault(Fault { code, message }) => {
            out.push_str("<fault><value><struct><member><name>faultCode</name><value><i4>");
            out.push_str(&code.to_string());
            out.push_str("</i4></value></member><member><name>faultString</name><value><string>");
            escape_into(message, &mut out);
            out.push_str("</string></value></member></struct></value></fault>");
        }
    }
    out.push_str("</methodResponse>");
    out
}

/// Writes one `<value>…</value>`.
///
/// Recursive: values built by hand should stay well under the decoder's
/// nesting limit ([`crate::MAX_DEPTH`]) anyway, or they will not decode.
fn write_value(v: &Value, out: &mut String) {
    out.push_str("<value>");
    match v {
        Value::Int(i) => {
            out.push_str("<i4>");
            out.push_str(&i.to_string());
            out.push_str("</i4>");
        }
        Value::Boolean(b) => out.push_str(if *b {
            "<boolean>1</boolean>"
        } else {
            "<boolean>0</boolean>"
        }),
        Value::String(s) => {
            out.push_str("<string>");
            escape_into(s, out);
            out.push_str("</string>");
        }
        Value::Double(d) => {
            out.push_str("<double>");
            write_double(*d, out);
            out.push_str("</double>");
        }
        Value::DateTime(dt) => {
            out.push_str("<dateTime.iso8601>");
            format_datetime_wire(dt, out);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Base64(bytes) => {
            out.push_str("<base64>");
            base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
            out.push_str("</base64>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, value) in members {
                out.push_str("<member><name>");
                escape_into(name, out);
                out.push_str("</name>");
                write_value(value, out);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                write_value(item, out);
            }
            out.push_str("</data></array>");
        }
        Value::Nil => out.push_str("<nil/>"),
    }
    out.push_str("</value>");
}

/// Decimal notation only, as the XML-RPC spec asks (Rust's `Display` for
/// `f64` never uses an exponent and prints the shortest digits that read
/// back to the same value). A `.0` is added to integral values.
///
/// NaN and the infinities have no XML-RPC form; they are written as `NaN`,
/// `Infinity` and `-Infinity` (Java's spelling, which Apache XML-RPC
/// servers parse) and this crate's decoder rejects them.
fn write_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let s = d.to_string();
        out.push_str(&s);
        if !s.contains('.') {
            out.push_str(".0");
        }
    }
}

/// Escapes character data: `<`, `&` and `>` as entities; every control
/// character but tab and newline, DEL and the C1 controls, and the
/// non-characters U+FFFE/U+FFFF as numeric references. CR is escaped too, so
/// that XML's line-end normalisation cannot turn it into LF.
///
/// XML 1.0 itself forbids U+0000 and most C0 controls even as references;
/// this crate's decoder reads them back, strict XML parsers may not.
pub(crate) fn escape_into(s: &str, out: &mut String) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let rep: Option<&str> = match c {
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            '&' => Some("&amp;"),
            '\t' | '\n' => None,
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&s[start..i]);
                out.push_str("&#");
                out.push_str(&u32::from(c).to_string());
                out.push(';');
                start = i + c.len_utf8();
                continue;
            }
            _ => None,
        };
        if let Some(rep) = rep {
            out.push_str(&s[start..i]);
            out.push_str(rep);
            start = i + c.len_utf8();
        }
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Struct;
    use chrono::NaiveDate;

    fn wrap(v: &Value) -> String {
        let mut s = String::new();
        write_value(v, &mut s);
        s
    }

    #[test]
    fn scalars() {
        assert_eq!(wrap(&Value::Int(-42)), "<value><i4>-42</i4></value>");
        assert_eq!(
            wrap(&Value::Boolean(true)),
            "<value><boolean>1</boolean></value>"
        );
        assert_eq!(
            wrap(&Value::Boolean(false)),
            "<value><boolean>0</boolean></value>"
        );
        assert_eq!(
            wrap(&Value::String(String::new())),
            "<value><string></string></value>"
        );
        assert_eq!(wrap(&Value::Nil), "<value><nil/></value>");
        assert_eq!(
            wrap(&Value::Base64(b"hi!".to_vec())),
            "<value><base64>aGkh</base64></value>"
        );
        let dt = NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_opt(10, 15, 0)
            .unwrap();
        assert_eq!(
            wrap(&Value::DateTime(dt)),
            "<value><dateTime.iso8601>20261123T10:15:00</dateTime.iso8601></value>"
        );
    }

    #[test]
    fn doubles_use_decimal_notation() {
        let d = |x: f64| {
            let mut s = String::new();
            write_double(x, &mut s);
            s
        };
        assert_eq!(d(-12.214), "-12.214");
        assert_eq!(d(3.0), "3.0");
        assert_eq!(d(-0.0), "-0.0");
        assert_eq!(d(1e21), "1000000000000000000000.0");
        assert_eq!(d(1.5e-7), "0.00000015");
        assert_eq!(d(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(d(f64::NAN), "NaN");
        assert_eq!(d(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        escape_into(
            "a<b>&c]]>\"'\t\n\r\u{0}\u{1b}\u{7f}\u{85}\u{fffe}é😀",
            &mut s,
        );
        assert_eq!(
            s,
            "a&lt;b&gt;&amp;c]]&gt;\"'\t\n&#13;&#0;&#27;&#127;&#133;&#65534;é😀"
        );
    }

    #[test]
    fn containers() {
        let mut m = Struct::new();
        m.insert("b".into(), Value::Int(1));
        m.insert("a&".into(), Value::Array(vec![]));
        assert_eq!(
            wrap(&Value::Struct(m)),
            "<value><struct><member><name>b</name><value><i4>1</i4></value></member>\
             <member><name>a&amp;</name><value><array><data></data></array></value></member>\
             </struct></value>"
        );
    }

    #[test]
    fn call_and_fault() {
        let call = MethodCall::new(
            "DataService.echo",
            vec![Value::from("k"), Value::from("hi")],
        );
        assert_eq!(
            encode_call(&call),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodCall><methodName>DataService.echo</methodName>\
             <params><param><value><string>k</string></value></param>\
             <param><value><string>hi</string></value></param></params></methodCall>"
        );
        let f = MethodResponse::Fault(Fault::new(2, "[InvalidKey]Invalid key"));
        assert_eq!(
            encode_response(&f),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><fault><value><struct>\
             <member><name>faultCode</name><value><i4>2</i4></value></member>\
             <member><name>faultString</name><value><string>[InvalidKey]Invalid key</string></value></member>\
             </struct></value></fault></methodResponse>"
        );
    }
}
