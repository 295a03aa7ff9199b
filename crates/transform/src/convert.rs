//! Value conversions between a common resource's field types and the vendor's.
//!
//! Reads ([`from_vendor`]) never fail: a value that does not convert is returned
//! unchanged. Writes ([`to_vendor`]) refuse what does not convert, so the caller
//! can answer 400 instead of sending the vendor a wrong value.

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::{Number, Value};

use crate::datefmt::{JavaDateFormat, Zone};

/// A common resource field's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    Number,
    Boolean,
    Date,
}

/// A vendor field's type (`vendorType`, or the element metadata's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VendorType {
    String,
    Number,
    Boolean,
    Date,
    Object,
    Array,
}

impl FieldType {
    pub const NAMES: &'static str = "string, number, boolean, date";

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
        }
    }
}

impl FromStr for FieldType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "string" => FieldType::String,
            "number" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            _ => return Err(()),
        })
    }
}

impl VendorType {
    pub const NAMES: &'static str = "string, number, boolean, date, object, array";

    pub fn as_str(self) -> &'static str {
        match self {
            VendorType::String => "string",
            VendorType::Number => "number",
            VendorType::Boolean => "boolean",
            VendorType::Date => "date",
            VendorType::Object => "object",
            VendorType::Array => "array",
        }
    }
}

impl FromStr for VendorType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "string" => VendorType::String,
            "number" => VendorType::Number,
            "boolean" => VendorType::Boolean,
            "date" => VendorType::Date,
            "object" => VendorType::Object,
            "array" => VendorType::Array,
            _ => return Err(()),
        })
    }
}

/// A vendor value as a common field of type `to`; unchanged when it does not
/// convert. Null stays null. Dates come out as RFC 3339 (`Z` for UTC), keeping the
/// vendor's offset when the text had one, else in `zone` (UTC without one).
pub fn from_vendor(value: &Value, to: FieldType, mask: Option<&JavaDateFormat>, zone: Option<Zone>) -> Value {
    let converted = match to {
        FieldType::String => to_string(value),
        FieldType::Number => to_number(value),
        FieldType::Boolean => to_boolean(value),
        FieldType::Date => read_date(value, mask, zone).map(|t| Value::String(rfc3339(&t))),
    };
    converted.unwrap_or_else(|| value.clone())
}

/// What a write needs to know about one field.
pub struct WriteTarget<'a> {
    pub common: FieldType,
    pub vendor: Option<VendorType>,
    pub mask: Option<&'a JavaDateFormat>,
}

/// A common value as the vendor takes it, or why not (a sentence naming the value).
///
/// The target is `vendorType` when given; without one, a `number` field is
/// written as a number, a `date` field as a date, anything else as given. Dates
/// (also a `date` field whose vendor type is `string`: a date kept as text) are
/// written with the mask (or RFC 3339), in `zone` when given, else in the value's
/// own offset.
pub fn to_vendor(value: &Value, target: &WriteTarget<'_>, zone: Option<Zone>) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let vendor = match (target.vendor, target.common) {
        (Some(v), _) => v,
        (None, FieldType::Number) => VendorType::Number,
        (None, FieldType::Date) => VendorType::Date,
        (None, _) => return Ok(value.clone()),
    };
    let fail = |what: &str| format!("{} is not {what}", short(value));
    // A date as text: with the mask (or RFC 3339), in `zone` when given.
    let date_text = || -> Result<Value, String> {
        let t = read_date(value, None, zone).ok_or_else(|| fail("a date (RFC 3339, such as 2012-11-20T00:00:00Z)"))?;
        let t = match zone {
            Some(z) => z.at(t.with_timezone(&Utc)),
            None => t,
        };
        Ok(Value::String(match target.mask {
            Some(mask) => mask.format(&t),
            None => rfc3339(&t),
        }))
    };
    match vendor {
        // A date the vendor keeps in a text field (in its mask) is still a date.
        VendorType::String if target.common == FieldType::Date => date_text(),
        VendorType::String => to_string(value).ok_or_else(|| fail("a text value")),
        VendorType::Number => {
            if target.common == FieldType::Date && !value.is_number() {
                // A date field kept by the vendor as epoch milliseconds.
                return read_date(value, None, zone)
                    .map(|t| Value::from(t.timestamp_millis()))
                    .ok_or_else(|| fail("a date"));
            }
            to_number(value).ok_or_else(|| fail("a number"))
        }
        VendorType::Boolean => to_boolean(value).ok_or_else(|| fail("a boolean")),
        VendorType::Date => date_text(),
        VendorType::Object if value.is_object() => Ok(value.clone()),
        VendorType::Object => Err(fail("an object")),
        VendorType::Array if value.is_array() => Ok(value.clone()),
        VendorType::Array => Err(fail("an array")),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn to_string(value: &Value) -> Option<Value> {
    match value {
        Value::String(_) | Value::Null => Some(value.clone()),
        Value::Number(n) => Some(Value::String(n.to_string())),
        Value::Bool(b) => Some(Value::String(b.to_string())),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn to_number(value: &Value) -> Option<Value> {
    match value {
        Value::Number(_) | Value::Null => Some(value.clone()),
        // JSON number text: "12" stays integral, "12.50" is 12.5; "+1", ".5", "NaN" are not numbers.
        Value::String(s) => Number::from_str(s.trim()).ok().map(Value::Number),
        _ => None,
    }
}

fn to_boolean(value: &Value) -> Option<Value> {
    match value {
        Value::Bool(_) | Value::Null => Some(value.clone()),
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") || s == "1" {
                Some(Value::Bool(true))
            } else if s.eq_ignore_ascii_case("false") || s == "0" {
                Some(Value::Bool(false))
            } else {
                None
            }
        }
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(Value::Bool(true)),
            Some(0.0) => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

/// RFC 3339, `Z` for UTC, fractions of a second only when there are some.
pub fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A date from a vendor or common value: with a mask, the mask alone; without,
/// RFC 3339, ISO 8601 with an offset without a colon, RFC 2822, a local
/// `yyyy-MM-dd'T'HH:mm:ss[.SSS]` or `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd` read in
/// `zone` (UTC without one), or a number of epoch milliseconds.
pub fn read_date(value: &Value, mask: Option<&JavaDateFormat>, zone: Option<Zone>) -> Option<DateTime<FixedOffset>> {
    let zone_or_utc = zone.unwrap_or(Zone::UTC);
    match value {
        Value::String(s) => {
            if let Some(mask) = mask {
                return mask.parse_with_offset(s, zone_or_utc).ok();
            }
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t);
            }
            if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
                return Some(t);
            }
            if let Ok(t) = DateTime::parse_from_rfc2822(s) {
                return Some(t);
            }
            // The local forms CEQL reads (`2026-11-23T10:15:00`, a bare date, ...).
            let local = switchyard_ceql::parse_local(s)?;
            Some(zone_or_utc.at(zone_or_utc.instant(local)))
        }
        Value::Number(n) => {
            let millis = n.as_i64().or_else(|| n.as_f64().filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15).map(|x| x as i64))?;
            DateTime::from_timestamp_millis(millis).map(|t| t.fixed_offset())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datefmt::parse_zone;
    use serde_json::json;

    fn read(v: Value, to: FieldType) -> Value {
        from_vendor(&v, to, None, None)
    }

    #[test]
    fn reads_numbers_booleans_strings() {
        assert_eq!(read(json!("12.50"), FieldType::Number), json!(12.5));
        assert_eq!(read(json!("12"), FieldType::Number), json!(12));
        assert!(read(json!("12"), FieldType::Number).is_i64());
        assert_eq!(read(json!(" -3 "), FieldType::Number), json!(-3));
        assert_eq!(read(json!(7.25), FieldType::Number), json!(7.25));
        assert_eq!(read(json!("abc"), FieldType::Number), json!("abc"));
        assert_eq!(read(json!(true), FieldType::Number), json!(true));
        for (v, b) in [(json!("TRUE"), true), (json!("false"), false), (json!("1"), true), (json!("0"), false), (json!(1), true), (json!(0), false), (json!(true), true)] {
            assert_eq!(read(v, FieldType::Boolean), json!(b));
        }
        assert_eq!(read(json!("yes"), FieldType::Boolean), json!("yes"));
        assert_eq!(read(json!(2), FieldType::Boolean), json!(2));
        assert_eq!(read(json!(12.5), FieldType::String), json!("12.5"));
        assert_eq!(read(json!(12), FieldType::String), json!("12"));
        assert_eq!(read(json!(false), FieldType::String), json!("false"));
        assert_eq!(read(json!({"a": 1}), FieldType::String), json!({"a": 1}));
        for t in [FieldType::String, FieldType::Number, FieldType::Boolean, FieldType::Date] {
            assert_eq!(read(Value::Null, t), Value::Null);
        }
    }

    #[test]
    fn reads_dates() {
        let d = |v: Value| read(v, FieldType::Date);
        assert_eq!(d(json!("Tue, 20 Nov 2012 00:00:00 +0000")), json!("2012-11-20T00:00:00Z"));
        assert_eq!(d(json!("Tue, 20 Nov 2012 10:00:00 -0500")), json!("2012-11-20T10:00:00-05:00"));
        assert_eq!(d(json!("2012-11-20T00:00:00.250+01:00")), json!("2012-11-20T00:00:00.250+01:00"));
        assert_eq!(d(json!("2012-11-20T00:00:00+0100")), json!("2012-11-20T00:00:00+01:00"));
        assert_eq!(d(json!("2012-11-20T03:04:05")), json!("2012-11-20T03:04:05Z"));
        assert_eq!(d(json!("2012-11-20")), json!("2012-11-20T00:00:00Z"));
        assert_eq!(d(json!(1353369600000_i64)), json!("2012-11-20T00:00:00Z"));
        assert_eq!(d(json!("soon")), json!("soon"));
        assert_eq!(d(json!(true)), json!(true));
        // Keap: local times in the account's zone, daylight saving time included.
        let ny = parse_zone("America/New_York").unwrap();
        assert_eq!(from_vendor(&json!("2026-07-01T09:00:00"), FieldType::Date, None, Some(ny)), json!("2026-07-01T09:00:00-04:00"));
        assert_eq!(from_vendor(&json!("2026-01-01T09:00:00"), FieldType::Date, None, Some(ny)), json!("2026-01-01T09:00:00-05:00"));
        // With a mask, the mask alone.
        let mask = JavaDateFormat::new("dd/MM/yyyy").unwrap();
        assert_eq!(from_vendor(&json!("20/11/2012"), FieldType::Date, Some(&mask), None), json!("2012-11-20T00:00:00Z"));
        assert_eq!(from_vendor(&json!("2012-11-20"), FieldType::Date, Some(&mask), None), json!("2012-11-20"));
    }

    fn write(v: Value, common: FieldType, vendor: Option<VendorType>, mask: Option<&JavaDateFormat>) -> Result<Value, String> {
        to_vendor(&v, &WriteTarget { common, vendor, mask }, None)
    }

    #[test]
    fn writes_to_vendor_types() {
        use FieldType as F;
        use VendorType as V;
        assert_eq!(write(json!("x"), F::String, None, None), Ok(json!("x")));
        assert_eq!(write(json!(5), F::String, None, None), Ok(json!(5)));
        assert_eq!(write(json!("12.50"), F::Number, None, None), Ok(json!(12.5)));
        assert_eq!(write(json!(3), F::Number, None, None), Ok(json!(3)));
        assert_eq!(write(json!(3), F::Number, Some(V::String), None), Ok(json!("3")));
        assert_eq!(write(json!("abc"), F::Number, None, None), Err("\"abc\" is not a number".into()));
        assert_eq!(write(json!("true"), F::Boolean, Some(V::Boolean), None), Ok(json!(true)));
        assert_eq!(write(json!(true), F::Boolean, Some(V::String), None), Ok(json!("true")));
        assert!(write(json!("maybe"), F::Boolean, Some(V::Boolean), None).is_err());
        assert!(write(json!([1]), F::String, Some(V::String), None).is_err());
        assert_eq!(write(json!({"a": 1}), F::String, Some(V::Object), None), Ok(json!({"a": 1})));
        assert!(write(json!("a"), F::String, Some(V::Object), None).is_err());
        assert!(write(json!("a"), F::String, Some(V::Array), None).is_err());
        assert_eq!(write(Value::Null, F::Number, Some(V::Number), None), Ok(Value::Null));
    }

    #[test]
    fn writes_dates() {
        use FieldType as F;
        use VendorType as V;
        let mask = JavaDateFormat::new("EEE, dd MMM yyyy HH:mm:ss Z").unwrap();
        assert_eq!(write(json!("2012-11-20T00:00:00Z"), F::Date, Some(V::Date), Some(&mask)), Ok(json!("Tue, 20 Nov 2012 00:00:00 +0000")));
        assert_eq!(write(json!("2012-11-20T00:00:00-05:00"), F::Date, Some(V::Date), Some(&mask)), Ok(json!("Tue, 20 Nov 2012 00:00:00 -0500")));
        assert_eq!(write(json!("2012-11-20T00:00:00.000Z"), F::Date, None, None), Ok(json!("2012-11-20T00:00:00Z")));
        assert_eq!(write(json!("2012-11-20T00:00:00Z"), F::Date, Some(V::Number), None), Ok(json!(1353369600000_i64)));
        assert!(write(json!("20th of November"), F::Date, Some(V::Date), Some(&mask)).unwrap_err().contains("is not a date"));
        // Keap: written as local time in the account's zone.
        let local = JavaDateFormat::new("yyyy-MM-dd'T'HH:mm:ss").unwrap();
        let ny = parse_zone("America/New_York").unwrap();
        let target = WriteTarget { common: F::Date, vendor: Some(V::Date), mask: Some(&local) };
        assert_eq!(to_vendor(&json!("2026-07-01T13:00:00Z"), &target, Some(ny)), Ok(json!("2026-07-01T09:00:00")));
        // A date kept in a text field (vendor type string) is still written in its mask.
        let day = JavaDateFormat::new("dd/MM/yyyy").unwrap();
        assert_eq!(write(json!("2024-03-04T00:00:00Z"), F::Date, Some(V::String), Some(&day)), Ok(json!("04/03/2024")));
        assert!(write(json!("soon"), F::Date, Some(V::String), Some(&day)).unwrap_err().contains("is not a date"));
        assert_eq!(write(json!("as is"), F::String, Some(V::String), Some(&day)), Ok(json!("as is")));
    }
}
