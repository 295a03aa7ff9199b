//! Reading, as Apache XML-RPC's SAX parsers do (see the module documentation), on
//! quick-xml's pull reader. Error texts follow Apache's and the Java XML parser's
//! wording where it is known; they quote at most a short snippet of the input, never
//! the document (the first parameter of every call is the account's private key).

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{Days, Months, NaiveDate, NaiveDateTime, TimeDelta};
use quick_xml::events::Event;

use super::{Fault, MethodCall, MethodResponse, Struct, Value};

/// The largest document read (the HTTP layer caps the body at one byte more, so a
/// larger one reaches the reader and gets its fault).
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// The deepest nesting of values read (a parameter is level 1). Keap's limit is not
/// known; this one keeps the recursion bounded.
pub const MAX_DEPTH: usize = 64;

/// Base64 as ws-commons-util decodes it, leniently: padding optional (white space is
/// removed first).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent).with_decode_allow_trailing_bits(true),
);

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError(String);

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadError {}

fn fail<T>(message: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError(message.into()))
}

/// At most 40 characters of caller text, for messages.
fn quote(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

/// Reads a `<methodCall>` (what the simulator, a server, receives).
pub fn read_call(input: &[u8]) -> Result<MethodCall, ReadError> {
    let mut doc = Doc::open(input)?;
    doc.root("methodCall")?;
    let mut method = None;
    let mut params = None;
    loop {
        match doc.next_tag("methodCall")? {
            Node::Open(n) if n == "methodName" && method.is_none() => {
                method = Some(doc.text_of("methodName")?.trim().to_owned());
            }
            Node::Open(n) if n == "params" && params.is_none() => params = Some(doc.params()?),
            Node::Close => break,
            other => return doc.unexpected(other, "methodCall"),
        }
    }
    doc.end()?;
    match method {
        Some(m) if !m.is_empty() => Ok(MethodCall { method: m, params: params.unwrap_or_default() }),
        _ => fail("Missing method name"),
    }
}

/// Reads a `<methodResponse>` (what a client receives): one value, or a fault.
pub fn read_response(input: &[u8]) -> Result<MethodResponse, ReadError> {
    let mut doc = Doc::open(input)?;
    doc.root("methodResponse")?;
    let response = match doc.next_tag("methodResponse")? {
        Node::Open(n) if n == "params" => {
            let mut params = doc.params()?;
            if params.len() != 1 {
                return fail(format!("Expected exactly one param in a response, got {}", params.len()));
            }
            MethodResponse::Success(params.remove(0))
        }
        Node::Open(n) if n == "fault" => {
            let value = match doc.next_tag("fault")? {
                Node::Open(n) if n == "value" => doc.value(1)?,
                other => return doc.unexpected(other, "fault"),
            };
            match doc.next_tag("fault")? {
                Node::Close => {}
                other => return doc.unexpected(other, "fault"),
            }
            MethodResponse::Fault(fault(value)?)
        }
        other => return doc.unexpected(other, "methodResponse"),
    };
    match doc.next_tag("methodResponse")? {
        Node::Close => {}
        other => return doc.unexpected(other, "methodResponse"),
    }
    doc.end()?;
    Ok(response)
}

fn fault(value: Value) -> Result<Fault, ReadError> {
    let Value::Struct(members) = value else { return fail("A fault must hold a struct") };
    let code = match members.get("faultCode") {
        Some(Value::Int(c)) => *c,
        Some(Value::String(s)) => match s.trim().parse() {
            Ok(c) => c,
            Err(_) => return fail("faultCode is not an integer"),
        },
        _ => return fail("A fault needs an integer faultCode"),
    };
    match members.get("faultString") {
        Some(Value::String(s)) => Ok(Fault { code, message: s.clone() }),
        _ => fail("A fault needs a string faultString"),
    }
}

/// What the grammar sees of the XML: element starts and ends (qualified names as
/// written; `<a/>` is a start and an end), text with references resolved, the end.
#[derive(Debug)]
enum Node {
    Open(String),
    Close,
    Text(String),
    Done,
}

struct Doc<'a> {
    xml: quick_xml::Reader<&'a [u8]>,
}

impl<'a> Doc<'a> {
    fn open(input: &'a [u8]) -> Result<Self, ReadError> {
        if input.len() > MAX_INPUT_BYTES {
            return fail(format!("The request of {} bytes is larger than {MAX_INPUT_BYTES} bytes", input.len()));
        }
        let text = match std::str::from_utf8(input) {
            Ok(t) => t,
            Err(e) => return fail(format!("Invalid byte {} of a UTF-8 sequence", e.valid_up_to() + 1)),
        };
        let mut xml = quick_xml::Reader::from_str(text.strip_prefix('\u{feff}').unwrap_or(text));
        let config = xml.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.trim_text(false);
        Ok(Doc { xml })
    }

    fn next(&mut self) -> Result<Node, ReadError> {
        loop {
            let event = match self.xml.read_event() {
                Ok(e) => e,
                Err(e) => return fail(format!("Malformed XML at byte {}: {}", self.xml.error_position(), quote(&e.to_string()))),
            };
            return match event {
                Event::Start(e) => Ok(Node::Open(String::from_utf8_lossy(e.name().as_ref()).into_owned())),
                Event::End(_) => Ok(Node::Close),
                Event::Text(t) => unescape(&String::from_utf8_lossy(&t)).map(Node::Text),
                Event::CData(c) => Ok(Node::Text(line_ends(&String::from_utf8_lossy(&c)))),
                Event::Decl(d) => {
                    if let Some(Ok(enc)) = d.encoding() {
                        let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                        if !matches!(enc.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                            return fail(format!("Unsupported encoding: {}", quote(&enc)));
                        }
                    }
                    continue;
                }
                Event::Comment(_) | Event::PI(_) => continue,
                // No DTD, hence no entity can ever be declared or expanded.
                Event::DocType(_) => fail("DOCTYPE is disallowed"),
                Event::Eof => Ok(Node::Done),
                Event::Empty(_) => fail("Malformed XML: an empty element was not expanded"),
            };
        }
    }

    /// The next node that is not white space; other text here is refused, as
    /// Apache's parsers refuse non-white-space characters between elements.
    fn next_tag(&mut self, inside: &str) -> Result<Node, ReadError> {
        loop {
            match self.next()? {
                Node::Text(t) if blank(&t) => {}
                Node::Text(t) => return fail(format!("Unexpected non-whitespace content {:?} in <{inside}>", quote(&t))),
                node => return Ok(node),
            }
        }
    }

    fn unexpected<T>(&self, node: Node, inside: &str) -> Result<T, ReadError> {
        match node {
            Node::Open(n) => fail(format!("Unexpected element <{}> in <{inside}>", quote(&n))),
            Node::Close => fail(format!("Missing content in <{inside}>")),
            Node::Text(t) => fail(format!("Unexpected non-whitespace content {:?} in <{inside}>", quote(&t))),
            Node::Done => fail(format!("The document ends inside <{inside}>")),
        }
    }

    fn root(&mut self, name: &str) -> Result<(), ReadError> {
        match self.next_tag("document")? {
            Node::Open(n) if n == name => Ok(()),
            Node::Open(n) => fail(format!("Expected root element <{name}>, got <{}>", quote(&n))),
            other => self.unexpected(other, "document"),
        }
    }

    /// After the root element only white space, comments and PIs.
    fn end(&mut self) -> Result<(), ReadError> {
        match self.next_tag("document")? {
            Node::Done => Ok(()),
            Node::Open(n) => fail(format!("Content after the root element: <{}>", quote(&n))),
            other => self.unexpected(other, "document"),
        }
    }

    /// The text of an element that has no child elements, up to its end.
    fn text_of(&mut self, element: &str) -> Result<String, ReadError> {
        let mut text = String::new();
        loop {
            match self.next()? {
                Node::Text(t) => text.push_str(&t),
                Node::Close => return Ok(text),
                other => return self.unexpected(other, element),
            }
        }
    }

    fn params(&mut self) -> Result<Vec<Value>, ReadError> {
        let mut out = Vec::new();
        loop {
            match self.next_tag("params")? {
                Node::Open(n) if n == "param" => {
                    let v = match self.next_tag("param")? {
                        Node::Open(n) if n == "value" => self.value(1)?,
                        other => return self.unexpected(other, "param"),
                    };
                    match self.next_tag("param")? {
                        Node::Close => out.push(v),
                        other => return self.unexpected(other, "param"),
                    }
                }
                Node::Close => return Ok(out),
                other => return self.unexpected(other, "params"),
            }
        }
    }

    /// A value, after its `<value>`, up to its `</value>`.
    fn value(&mut self, depth: usize) -> Result<Value, ReadError> {
        if depth > MAX_DEPTH {
            return fail(format!("Values nest deeper than {MAX_DEPTH} levels"));
        }
        let mut before = String::new();
        loop {
            match self.next()? {
                Node::Text(t) => before.push_str(&t),
                // No type element: the text as it is, a string.
                Node::Close => return Ok(Value::String(before)),
                Node::Open(name) => {
                    if !blank(&before) {
                        return fail("Unexpected non-whitespace characters");
                    }
                    let v = self.typed(&name, depth)?;
                    return match self.next_tag("value")? {
                        Node::Close => Ok(v),
                        other => self.unexpected(other, "value"),
                    };
                }
                Node::Done => return self.unexpected(Node::Done, "value"),
            }
        }
    }

    fn typed(&mut self, name: &str, depth: usize) -> Result<Value, ReadError> {
        let scalar = |doc: &mut Self| doc.text_of(name);
        match name {
            "i4" | "int" => {
                let t = scalar(self)?;
                java_trim(&t).parse().map(Value::Int).or_else(|_| fail(format!("Failed to parse integer value: {}", quote(&t))))
            }
            "boolean" => match java_trim(&scalar(self)?) {
                "1" => Ok(Value::Boolean(true)),
                "0" => Ok(Value::Boolean(false)),
                other => fail(format!("Failed to parse boolean value: {}", quote(other))),
            },
            "string" => scalar(self).map(Value::String),
            "double" => {
                let t = scalar(self)?;
                java_double(&t).map(Value::Double).ok_or_else(|| ReadError(format!("Failed to parse double value: {}", quote(&t))))
            }
            "dateTime.iso8601" => {
                let t = scalar(self)?;
                apache_date(java_trim(&t)).map(Value::DateTime).ok_or_else(|| ReadError(format!("Failed to parse date value: {}", quote(&t))))
            }
            "base64" => {
                let t: String = scalar(self)?.chars().filter(|c| !c.is_whitespace()).collect();
                BASE64.decode(t.as_bytes()).map(Value::Base64).or_else(|_| fail("Failed to decode base64 value"))
            }
            "struct" => {
                let mut members = Struct::new();
                loop {
                    match self.next_tag("struct")? {
                        Node::Open(n) if n == "member" => {
                            let (k, v) = self.member(depth)?;
                            members.insert(k, v);
                        }
                        Node::Close => return Ok(Value::Struct(members)),
                        other => return self.unexpected(other, "struct"),
                    }
                }
            }
            "array" => {
                match self.next_tag("array")? {
                    Node::Open(n) if n == "data" => {}
                    other => return self.unexpected(other, "array"),
                }
                let mut items = Vec::new();
                loop {
                    match self.next_tag("data")? {
                        Node::Open(n) if n == "value" => items.push(self.value(depth + 1)?),
                        Node::Close => break,
                        other => return self.unexpected(other, "data"),
                    }
                }
                match self.next_tag("array")? {
                    Node::Close => Ok(Value::Array(items)),
                    other => self.unexpected(other, "array"),
                }
            }
            // Keap runs without Apache's extensions: nil, i8, ex:* are all unknown.
            other => fail(format!("Unknown type: {}", quote(other))),
        }
    }

    /// `<name>` and `<value>` of a `<member>`, in either order.
    fn member(&mut self, depth: usize) -> Result<(String, Value), ReadError> {
        let (mut name, mut value) = (None, None);
        loop {
            match self.next_tag("member")? {
                Node::Open(n) if n == "name" && name.is_none() => name = Some(self.text_of("name")?),
                Node::Open(n) if n == "value" && value.is_none() => value = Some(self.value(depth + 1)?),
                Node::Close => break,
                other => return self.unexpected(other, "member"),
            }
        }
        match (name, value) {
            (Some(n), Some(v)) => Ok((n, v)),
            (None, _) => fail("Expected a name element in <member>"),
            (_, None) => fail("Expected a value element in <member>"),
        }
    }
}

/// White space in the sense of Java's `Character.isWhitespace` (close enough: any
/// Unicode white space).
fn blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// Java's `String.trim`: every character up to U+0020 at either end.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Java's `Double.valueOf`: trimmed, an optional `d`/`f` suffix, `NaN`, `Infinity`.
/// (Hexadecimal floating literals, which Java also reads, are not.)
fn java_double(s: &str) -> Option<f64> {
    let t = java_trim(s);
    t.parse::<f64>().ok().or_else(|| {
        let body = t.strip_suffix(['d', 'D', 'f', 'F'])?;
        body.ends_with(|c: char| c.is_ascii_digit() || c == '.').then(|| body.parse().ok()).flatten()
    })
}

/// `XmlRpcDateTimeFormat.parseObject` into a lenient `java.util.Calendar`: exactly
/// `yyyyMMdd'T'HH:mm:ss` at the start (what follows is ignored), fields past their
/// range roll over (month 13 is January of the next year, hour 24 the next day).
fn apache_date(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    let num = |at: usize, len: usize| -> Option<u32> {
        let part = b.get(at..at + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let (year, month, day) = (num(0, 4)?, num(4, 2)?, num(6, 2)?);
    if b.get(8) != Some(&b'T') || b.get(11) != Some(&b':') || b.get(14) != Some(&b':') {
        return None;
    }
    let (hour, minute, second) = (num(9, 2)?, num(12, 2)?, num(15, 2)?);
    let start = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, 1, 1)?;
    let date = match month {
        0 => start.checked_sub_months(Months::new(1))?,
        m => start.checked_add_months(Months::new(m - 1))?,
    };
    let date = match day {
        0 => date.checked_sub_days(Days::new(1))?,
        d => date.checked_add_days(Days::new(u64::from(d - 1)))?,
    };
    let seconds = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    date.and_hms_opt(0, 0, 0)?.checked_add_signed(TimeDelta::seconds(seconds))
}

/// XML's end-of-line handling: CR LF and a lone CR are LF.
fn line_ends(raw: &str) -> String {
    raw.replace("\r\n", "\n").replace('\r', "\n")
}

/// Whether XML allows a reference to `code` (production `Char`).
fn xml_char(code: u32) -> bool {
    matches!(code, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// A numeric character reference at the start of `s` (`&#N;` or `&#xN;`): its
/// number (saturated) and length, or None if `s` does not start with one.
fn numeric_reference(s: &str) -> Option<(u32, usize)> {
    let rest = s.strip_prefix("&#")?;
    let (radix, digits_at) = if rest.starts_with('x') { (16, 3) } else { (10, 2) };
    let digits: &str = &s[digits_at..];
    let len = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    if len == 0 || digits.as_bytes().get(len) != Some(&b';') {
        return None;
    }
    let code = u32::from_str_radix(&digits[..len], radix).unwrap_or(u32::MAX);
    Some((code, digits_at + len + 1))
}

/// Resolves entity and character references in raw character data, after the
/// end-of-line handling (so `&#13;` stays a CR).
fn unescape(raw: &str) -> Result<String, ReadError> {
    let raw = line_ends(raw);
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw.as_str();
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some((code, len)) = numeric_reference(rest) {
            rest = &rest[len..];
            if (0xD800..=0xDBFF).contains(&code) {
                // A high surrogate: read with the low one that follows, if it does.
                if let Some((low, low_len)) = numeric_reference(rest).filter(|(l, _)| (0xDC00..=0xDFFF).contains(l)) {
                    let c = char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00));
                    if let Some(c) = c {
                        out.push(c);
                        rest = &rest[low_len..];
                        continue;
                    }
                }
            }
            match char::from_u32(code).filter(|_| xml_char(code)) {
                Some(c) => out.push(c),
                None => return fail(format!("Character reference \"&#{code}\" is an invalid XML character.")),
            }
            continue;
        }
        let Some(end) = rest[1..].find(';').filter(|e| *e <= 10) else {
            return fail("The entity name must immediately follow the '&' in the entity reference.");
        };
        let name = &rest[1..=end];
        out.push(match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            other => return fail(format!("The entity \"{}\" was referenced, but not declared.", quote(other))),
        });
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(unescape("&#55357;&#56832; &#x1F600; &lt;&amp;&gt;&quot;&apos; &#13;\r\n").unwrap(), "😀 😀 <&>\"' \r\n");
        for bad in ["&#55357;", "&#56832;", "&#55357;x&#56832;", "&#0;", "&#xFFFE;", "&#1114112;", "&#99999999999;", "&bogus;", "& x", "&#;", "&#x;"] {
            assert!(unescape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_as_apache_reads_them() {
        let d = |s: &str| apache_date(s).map(|d| d.to_string());
        assert_eq!(d("20261123T10:15:00").as_deref(), Some("2026-11-23 10:15:00"));
        assert_eq!(d("20261123T10:15:00Z").as_deref(), Some("2026-11-23 10:15:00"), "trailing text ignored");
        assert_eq!(d("20261323T24:00:00").as_deref(), Some("2027-01-24 00:00:00"), "lenient calendar");
        assert_eq!(d("20260300T00:00:00").as_deref(), Some("2026-02-28 00:00:00"));
        for bad in ["2026-11-23T10:15:00", "20261123 10:15:00", "20261123T10:15", "2026112T10:15:00", ""] {
            assert_eq!(apache_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn doubles_as_java_reads_them() {
        assert_eq!(java_double(" 1.5 "), Some(1.5));
        assert_eq!(java_double("1.0E7"), Some(1e7));
        assert_eq!(java_double("2d"), Some(2.0));
        assert_eq!(java_double(".5f"), Some(0.5));
        assert!(java_double("NaN").is_some_and(f64::is_nan));
        assert_eq!(java_double("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(java_double("1,5"), None);
        assert_eq!(java_double("d"), None);
    }
}
