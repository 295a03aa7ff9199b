//! The data model: values, method calls, responses and faults.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use indexmap::IndexMap;

/// Members of an XML-RPC `<struct>`, in document (insertion) order.
///
/// Equality ignores order, as for any map. When a decoded struct repeats a
/// member name, the last value wins and keeps the position of the first.
pub type Struct = IndexMap<String, Value>;

/// One XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<i4>` / `<int>` (written as `<i4>`, as Keap writes it).
    Int(i32),
    /// `<boolean>`: `1` or `0` on the wire.
    Boolean(bool),
    /// `<string>`, or a `<value>` with no type element.
    String(String),
    /// `<double>`. Only finite values can be represented on the wire.
    Double(f64),
    /// `<dateTime.iso8601>`: no zone and no fraction of a second.
    DateTime(NaiveDateTime),
    /// `<base64>`.
    Base64(Vec<u8>),
    /// `<struct>`.
    Struct(Struct),
    /// `<array><data>…</data></array>`.
    Array(Vec<Value>),
    /// `<nil/>` (also read as `<ex:nil/>`), a common extension Keap uses.
    Nil,
}

impl Value {
    /// The XML-RPC type name this value is written as.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "i4",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Double(_) => "double",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Base64(_) => "base64",
            Value::Struct(_) => "struct",
            Value::Array(_) => "array",
            Value::Nil => "nil",
        }
    }

    /// The integer, if this is an `Int`.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The text, if this is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The members, if this is a `Struct`.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an `Array`.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}

impl From<NaiveDateTime> for Value {
    fn from(v: NaiveDateTime) -> Self {
        Value::DateTime(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

impl From<Struct> for Value {
    fn from(v: Struct) -> Self {
        Value::Struct(v)
    }
}

/// A `<methodCall>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    /// `<methodName>`, e.g. `DataService.query`.
    pub method: String,
    /// The `<param>` values in order.
    pub params: Vec<Value>,
}

impl MethodCall {
    /// A call of `method` with `params`.
    pub fn new(method: impl Into<String>, params: Vec<Value>) -> Self {
        MethodCall {
            method: method.into(),
            params,
        }
    }
}

/// An XML-RPC `<fault>`: the struct of `faultCode` and `faultString`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `faultCode`.
    pub code: i32,
    /// `faultString`, e.g. `[InvalidKey]Invalid key`.
    pub message: String,
}

impl Fault {
    /// A fault with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
        }
    }

    /// Keap's error kind: the bracketed prefix of the fault string, e.g.
    /// `InvalidKey` for `[InvalidKey]Invalid key`; `None` without one.
    pub fn keap_kind(&self) -> Option<&str> {
        let rest = self.message.trim_start().strip_prefix('[')?;
        let end = rest.find(']')?;
        let kind = &rest[..end];
        (!kind.is_empty()).then_some(kind)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XML-RPC fault {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Fault {}

/// A `<methodResponse>`: one value, or a fault.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodResponse {
    /// `<params><param><value>…</value></param></params>`.
    Success(Value),
    /// `<fault>…</fault>`.
    Fault(Fault),
}

/// Writes `dt` as Keap does: `20261123T10:15:00` (basic date, extended time).
/// Fractions of a second are dropped; years outside 0..=9999 are written with
/// their sign and more digits and will not decode again.
pub(crate) fn format_datetime_wire(dt: &NaiveDateTime, out: &mut String) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}{:02}{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
}

/// Writes `dt` as the hub shows it: `2026-11-23T10:15:00`.
pub(crate) fn format_datetime_json(dt: &NaiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Reads `20261123T10:15:00` or `2026-11-23T10:15:00` (surrounding
/// whitespace allowed). No zone, no fraction.
pub(crate) fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    let b = text.trim_matches(is_xml_space).as_bytes();
    let (date, time) = match b.len() {
        17 if b[8] == b'T' => {
            let d = &b[..8];
            (
                (digits(&d[0..4])?, digits(&d[4..6])?, digits(&d[6..8])?),
                &b[9..],
            )
        }
        19 if b[4] == b'-' && b[7] == b'-' && b[10] == b'T' => (
            (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?),
            &b[11..],
        ),
        _ => return None,
    };
    if time[2] != b':' || time[5] != b':' {
        return None;
    }
    let (h, mi, s) = (
        digits(&time[0..2])?,
        digits(&time[3..5])?,
        digits(&time[6..8])?,
    );
    let year = i32::try_from(date.0).ok()?;
    let d = NaiveDate::from_ymd_opt(year, date.1, date.2)?;
    let t = NaiveTime::from_hms_opt(h, mi, s)?;
    Some(NaiveDateTime::new(d, t))
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// XML's white space: space, tab, CR, LF (not Unicode spaces).
pub(crate) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
    }

    #[test]
    fn datetime_both_forms_parse() {
        let want = dt(2026, 11, 23, 10, 15, 0);
        assert_eq!(parse_datetime("20261123T10:15:00"), Some(want));
        assert_eq!(parse_datetime("2026-11-23T10:15:00"), Some(want));
        assert_eq!(parse_datetime("\n 20261123T10:15:00\t"), Some(want));
    }

    #[test]
    fn datetime_rejects_bad_forms() {
        for bad in [
            "",
            "2026112310:15:00x",
            "20261123T10:15",
            "20261123 10:15:00",
            "2026-11-23 10:15:00",
            "20261323T10:15:00",
            "20260230T10:15:00",
            "20261123T24:00:00",
            "20261123T10:60:00",
            "20261123T10:15:00Z",
            "2026-11-23T10:15:00+01:00",
            "2026112٣T10:15:00",
            "+2026-11-23T10:15",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn datetime_formats() {
        let v = dt(7, 1, 2, 3, 4, 5);
        let mut s = String::new();
        format_datetime_wire(&v, &mut s);
        assert_eq!(s, "00070102T03:04:05");
        assert_eq!(format_datetime_json(&v), "0007-01-02T03:04:05");
    }

    #[test]
    fn keap_kind() {
        assert_eq!(
            Fault::new(0, "[InvalidKey]Invalid key").keap_kind(),
            Some("InvalidKey")
        );
        assert_eq!(Fault::new(0, "No brackets").keap_kind(), None);
        assert_eq!(Fault::new(0, "[]x").keap_kind(), None);
        assert_eq!(Fault::new(0, "[open").keap_kind(), None);
    }
}
