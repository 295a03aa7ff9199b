//! `queryData`: Keap's filter struct. Each member is one condition on a field and all
//! must hold. A value matches exactly; a `%` in a text value makes it a LIKE; a text
//! value may start with an operator (`~<~ ~<=~ ~>~ ~>=~ ~<>~`, `~null~`); an array on
//! `Id` is an IN list. Text compares case-insensitively, as Keap's MySQL collation does.

use std::cmp::Ordering;

use chrono::{NaiveDate, NaiveDateTime};
use super::xmlrpc::{Fault, Struct, Value};

use super::fault::{invalid_parameter, no_field_found, snippet};
use super::schema::{Field, Kind, Table};

/// A comparable field value or operand.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    Int(i64),
    Double(f64),
    /// Lowercased.
    Text(String),
    Date(NaiveDateTime),
}

impl Scalar {
    fn cmp(&self, other: &Scalar) -> Option<Ordering> {
        match (self, other) {
            (Scalar::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
            (Scalar::Double(a), Scalar::Double(b)) => a.partial_cmp(b),
            (Scalar::Text(a), Scalar::Text(b)) => Some(a.cmp(b)),
            (Scalar::Date(a), Scalar::Date(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
enum Cond {
    Null,
    NotNull,
    Like(String),
    Cmp(Op, Scalar),
    In(Vec<i64>),
}

#[derive(Debug)]
pub(crate) struct Criterion {
    field: &'static str,
    cond: Cond,
}

/// Reads every member of a `queryData` struct.
pub(crate) fn parse_criteria(table: &Table, data: &Struct) -> Result<Vec<Criterion>, Fault> {
    data.iter().map(|(name, value)| criterion(table, name, value)).collect()
}

/// One condition: `field` against `value` (also what `findByField` uses).
pub(crate) fn criterion(table: &Table, name: &str, value: &Value) -> Result<Criterion, Fault> {
    let field = table.field(name).ok_or_else(|| no_field_found(table.name, name))?;
    let cond = match value {
        Value::String(s) => text_condition(table, field, s)?,
        Value::Array(items) => {
            if field.kind != Kind::Id {
                return Err(invalid_parameter(format!("A list of values is only allowed on Id, not on {}.{}", table.name, field.name)));
            }
            if items.len() > 1000 {
                return Err(invalid_parameter("A list of ids may hold at most 1000 values"));
            }
            let ids = items
                .iter()
                .map(|v| match v {
                    Value::Int(i) => Some(i64::from(*i)),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })
                .collect::<Option<Vec<i64>>>()
                .ok_or_else(|| invalid_parameter(format!("The ids for {}.Id must be integers", table.name)))?;
            Cond::In(ids)
        }
        other => Cond::Cmp(Op::Eq, typed_operand(table, field, other)?),
    };
    Ok(Criterion { field: field.name, cond })
}

fn text_condition(table: &Table, field: &Field, s: &str) -> Result<Cond, Fault> {
    if s.trim_start().starts_with("~null~") {
        return Ok(Cond::Null);
    }
    // Longer operators first: `~<=~` must not read as `~<~`.
    const OPS: [(&str, Op); 5] = [("~<>~", Op::Ne), ("~<=~", Op::Le), ("~>=~", Op::Ge), ("~<~", Op::Lt), ("~>~", Op::Gt)];
    let trimmed = s.trim_start();
    for (token, op) in OPS {
        if let Some(rest) = trimmed.strip_prefix(token) {
            let rest = rest.trim();
            if op == Op::Ne && rest.is_empty() {
                return Ok(Cond::NotNull);
            }
            return Ok(Cond::Cmp(op, text_operand(table, field, rest)?));
        }
    }
    if s.contains('%') {
        return Ok(Cond::Like(s.to_lowercase()));
    }
    Ok(Cond::Cmp(Op::Eq, text_operand(table, field, s)?))
}

/// A text operand read as the field's type.
fn text_operand(table: &Table, field: &Field, s: &str) -> Result<Scalar, Fault> {
    let bad = || invalid_parameter(format!("Invalid value '{}' for {}.{}", snippet(s), table.name, field.name));
    Ok(match field.kind {
        Kind::Id | Kind::Int => Scalar::Int(s.trim().parse().map_err(|_| bad())?),
        Kind::Double => Scalar::Double(s.trim().parse::<f64>().ok().filter(|d| d.is_finite()).ok_or_else(bad)?),
        Kind::Text => Scalar::Text(s.to_lowercase()),
        Kind::Date => Scalar::Date(parse_date(s).ok_or_else(bad)?),
    })
}

/// A typed (non-text) operand read as the field's type.
fn typed_operand(table: &Table, field: &Field, v: &Value) -> Result<Scalar, Fault> {
    let bad = || invalid_parameter(format!("A {} does not compare with {}.{}", v.type_name(), table.name, field.name));
    Ok(match (field.kind, v) {
        (Kind::Id | Kind::Int, Value::Int(i)) => Scalar::Int(i64::from(*i)),
        (Kind::Id | Kind::Int, Value::Boolean(b)) => Scalar::Int(i64::from(*b)),
        (Kind::Id | Kind::Int, Value::Double(d)) if d.fract() == 0.0 && d.abs() < 1e15 => Scalar::Int(*d as i64),
        (Kind::Double, Value::Int(i)) => Scalar::Double(f64::from(*i)),
        (Kind::Double, Value::Double(d)) => Scalar::Double(*d),
        (Kind::Text, Value::Int(i)) => Scalar::Text(i.to_string()),
        (Kind::Text, Value::Double(d)) => Scalar::Text(d.to_string()),
        (Kind::Date, Value::DateTime(d)) => Scalar::Date(*d),
        _ => return Err(bad()),
    })
}

/// Dates as Keap's queries write them: `2017-01-01 00:00:00`, `2017-01-01`, and the
/// ISO/XML-RPC forms `2017-01-01T00:00:00` and `20170101T00:00:00`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%dT%H:%M:%S"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// A stored value as a comparable scalar.
pub(crate) fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::Int(i) => Some(Scalar::Int(i64::from(*i))),
        Value::Double(d) => Some(Scalar::Double(*d)),
        Value::String(s) => Some(Scalar::Text(s.to_lowercase())),
        Value::DateTime(d) => Some(Scalar::Date(*d)),
        _ => None,
    }
}

/// A stored value as MySQL would show it to LIKE.
fn text_form(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::String(s) => Some(s.to_lowercase()),
        Value::DateTime(d) => Some(d.format("%Y-%m-%d %H:%M:%S").to_string()),
        _ => None,
    }
}

/// Whether `record` meets every criterion.
pub(crate) fn matches(criteria: &[Criterion], record: &Struct) -> bool {
    criteria.iter().all(|c| holds(c, record.get(c.field)))
}

fn holds(c: &Criterion, value: Option<&Value>) -> bool {
    match (&c.cond, value) {
        (Cond::Null, v) => v.is_none(),
        (Cond::NotNull, v) => v.is_some(),
        // An empty text equals a field that was never set (Keap stores them alike).
        (Cond::Cmp(Op::Eq, Scalar::Text(t)), None) => t.is_empty(),
        // Like SQL, a comparison with a missing value is never true.
        (_, None) => false,
        (Cond::Like(p), Some(v)) => text_form(v).is_some_and(|t| like(&t, p)),
        (Cond::In(ids), Some(Value::Int(i))) => ids.contains(&i64::from(*i)),
        (Cond::In(_), Some(_)) => false,
        (Cond::Cmp(op, operand), Some(v)) => {
            let Some(ord) = scalar(v).and_then(|s| s.cmp(operand)) else { return false };
            match op {
                Op::Eq => ord == Ordering::Equal,
                Op::Ne => ord != Ordering::Equal,
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                Op::Gt => ord == Ordering::Greater,
                Op::Ge => ord != Ordering::Less,
            }
        }
    }
}

/// SQL LIKE with `%` as the only wildcard (the one Keap documents); both sides lowercased.
fn like(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('%').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return text == pattern;
    }
    let Some(rest) = text.strip_prefix(first) else { return false };
    let Some(mut middle) = rest.strip_suffix(last) else { return false };
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part) {
            Some(i) => middle = &middle[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("olivia", "oli%"));
        assert!(like("olivia", "%via"));
        assert!(like("olivia", "%"));
        assert!(like("olivia", "o%i%a"));
        assert!(!like("olivia", "o%x%a"));
        assert!(!like("ab", "ab%ab"));
        assert!(like("abab", "ab%ab"));
        assert!(!like("olivia", "olivi"));
        assert!(like("", "%"));
    }

    #[test]
    fn dates_in_every_form() {
        let want = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap().and_hms_opt(10, 15, 0).unwrap();
        assert_eq!(parse_date("2024-05-01 10:15:00"), Some(want));
        assert_eq!(parse_date("2024-05-01T10:15:00"), Some(want));
        assert_eq!(parse_date("20240501T10:15:00"), Some(want));
        assert_eq!(parse_date("2024-05-01"), NaiveDate::from_ymd_opt(2024, 5, 1).unwrap().and_hms_opt(0, 0, 0));
        assert_eq!(parse_date("May 1"), None);
    }
}
