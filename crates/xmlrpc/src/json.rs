//! Conversions between XML-RPC values and JSON (the hub's payloads).

use base64::Engine as _;
use serde_json::Value as Json;

use crate::value::{format_datetime_json, Struct, Value};

impl Value {
    /// The value as the hub shows it in JSON.
    ///
    /// `DateTime` becomes `"2026-11-23T10:15:00"` (no zone, as given),
    /// `Base64` a standard, padded base64 string, `Nil` `null`, a `Double`
    /// that is not finite `null`, and a `Struct` an object in member order.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Int(i) => Json::from(*i),
            Value::Boolean(b) => Json::Bool(*b),
            Value::String(s) => Json::String(s.clone()),
            Value::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
            Value::DateTime(dt) => Json::String(format_datetime_json(dt)),
            Value::Base64(bytes) => {
                Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Value::Struct(members) => Json::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            Value::Array(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Nil => Json::Null,
        }
    }

    /// The XML-RPC value for a JSON value.
    ///
    /// Integers that fit `i32` become `Int`; every other number (larger
    /// integers, fractions) becomes `Double`, so integers beyond 2^53 lose
    /// precision. Strings stay strings: a caller that wants a `dateTime`
    /// converts explicitly. `null` becomes `Nil`, objects keep their order.
    pub fn from_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Nil,
            Json::Bool(b) => Value::Boolean(*b),
            Json::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => Value::Int(i),
                // as_f64 is Some for every number unless serde_json's
                // arbitrary_precision is on; NaN would not be finite, so 0.
                None => Value::Double(n.as_f64().unwrap_or(0.0)),
            },
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Value::from_json).collect()),
            Json::Object(map) => Value::Struct(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect::<Struct>(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use serde_json::json;

    #[test]
    fn to_json_covers_every_type() {
        let dt = NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_opt(10, 15, 0)
            .unwrap();
        let mut s = Struct::new();
        s.insert("Zeta".into(), Value::Int(1));
        s.insert("Alpha".into(), Value::Nil);
        let v = Value::Array(vec![
            Value::Int(-3),
            Value::Boolean(true),
            Value::String("x".into()),
            Value::Double(1.5),
            Value::Double(f64::NAN),
            Value::DateTime(dt),
            Value::Base64(b"hi!".to_vec()),
            Value::Struct(s),
            Value::Nil,
        ]);
        let j = v.to_json();
        assert_eq!(
            j,
            json!([-3, true, "x", 1.5, null, "2026-11-23T10:15:00", "aGkh", {"Zeta": 1, "Alpha": null}, null])
        );
        // Member order is kept (serde_json's preserve_order is on in the workspace).
        let keys: Vec<_> = j[7].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["Zeta", "Alpha"]);
    }

    #[test]
    fn from_json_numbers() {
        assert_eq!(Value::from_json(&json!(7)), Value::Int(7));
        assert_eq!(Value::from_json(&json!(-2147483648)), Value::Int(i32::MIN));
        assert_eq!(
            Value::from_json(&json!(2147483648_i64)),
            Value::Double(2147483648.0)
        );
        assert_eq!(
            Value::from_json(&json!(u64::MAX)),
            Value::Double(u64::MAX as f64)
        );
        assert_eq!(Value::from_json(&json!(2.5)), Value::Double(2.5));
        assert_eq!(Value::from_json(&json!(3.0)), Value::Double(3.0));
    }

    #[test]
    fn from_json_structure_and_strings() {
        let v = Value::from_json(&json!({"B": "2026-11-23T10:15:00", "A": [null, false]}));
        let Value::Struct(s) = &v else {
            panic!("not a struct: {v:?}")
        };
        assert_eq!(s.keys().collect::<Vec<_>>(), ["B", "A"]);
        assert_eq!(s["B"], Value::String("2026-11-23T10:15:00".into()));
        assert_eq!(
            s["A"],
            Value::Array(vec![Value::Nil, Value::Boolean(false)])
        );
    }

    #[test]
    fn json_round_trip_of_plain_data() {
        let j = json!({"Id": 12, "Name": "Ada", "Tags": ["a", "b"], "Score": 0.25, "X": null, "Ok": true});
        assert_eq!(Value::from_json(&j).to_json(), j);
    }
}
