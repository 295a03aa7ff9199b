//! One Keap account's records, and the DataService operations on them.
//!
//! A record holds only the fields that have a value, in schema order; writing `""`
//! clears a field (Keap reads no `nil`). Answers likewise leave out empty fields, as Keap does.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDateTime, Timelike, Utc};
use super::xmlrpc::{Fault, Struct, Value};

use super::fault::{invalid_parameter, no_field_found, record_not_found, snippet};
use super::query::{self, Criterion};
use super::schema::{Field, Kind, Table, TABLES};

/// Longest text a field keeps (Keap's longest columns are MySQL TEXT, 64 KiB).
const MAX_TEXT: usize = 65_535;

#[derive(Clone, Default)]
struct Rows {
    next_id: i32,
    records: BTreeMap<i32, Struct>,
}

/// The tables of one account.
#[derive(Clone)]
pub(crate) struct AccountData {
    tables: HashMap<&'static str, Rows>,
}

/// The account's clock: the wall-clock time in its zone, whole seconds (XML-RPC
/// dates carry neither zone nor fraction).
pub(crate) fn now_in(zone: chrono_tz::Tz) -> NaiveDateTime {
    let n = Utc::now().with_timezone(&zone).naive_local();
    n.with_nanosecond(0).unwrap_or(n)
}

impl AccountData {
    pub(crate) fn new() -> Self {
        let tables = TABLES.iter().map(|t| (t.name, Rows { next_id: t.id_step, records: BTreeMap::new() })).collect();
        AccountData { tables }
    }

    fn rows(&self, t: &Table) -> &Rows {
        // Every table in TABLES has rows from `new`.
        &self.tables[t.name]
    }

    fn rows_mut(&mut self, t: &Table) -> &mut Rows {
        self.tables.entry(t.name).or_default()
    }

    /// Stores a seed record as given (stamps included); returns its id.
    pub(crate) fn insert_raw(&mut self, t: &Table, mut record: Struct) -> i32 {
        let rows = self.rows_mut(t);
        let id = rows.next_id;
        rows.next_id += t.id_step;
        record.insert("Id".into(), Value::Int(id));
        rows.records.insert(id, in_schema_order(t, record));
        id
    }

    pub(crate) fn len(&self, t: &Table) -> usize {
        self.rows(t).records.len()
    }

    pub(crate) fn get(&self, t: &Table, id: i32) -> Option<&Struct> {
        self.rows(t).records.get(&id)
    }

    /// Puts verbatim XML in place of one field's `<value>` (the control API's raw
    /// field); false if there is no such record or field.
    pub(crate) fn set_raw(&mut self, t: &Table, id: i32, field: &str, xml: String) -> bool {
        let Some(field) = t.field(field) else { return false };
        let Some(record) = self.rows_mut(t).records.remove(&id) else { return false };
        let mut record = record;
        record.insert(field.name.to_owned(), Value::Raw(xml));
        self.rows_mut(t).records.insert(id, in_schema_order(t, record));
        true
    }

    /// `DataService.add`.
    pub(crate) fn add(&mut self, t: &Table, values: &Struct, now: NaiveDateTime) -> Result<i32, Fault> {
        let mut record = Struct::new();
        apply(t, &mut record, values)?;
        for stamp in t.created.iter().chain(t.updated.iter()) {
            record.insert((*stamp).into(), Value::DateTime(now));
        }
        Ok(self.insert_raw(t, record))
    }

    /// `DataService.update`: the id back.
    pub(crate) fn update(&mut self, t: &Table, id: i32, values: &Struct, now: NaiveDateTime) -> Result<i32, Fault> {
        let Some(current) = self.rows(t).records.get(&id) else { return Err(record_not_found(t.name, id)) };
        let mut record = current.clone();
        apply(t, &mut record, values)?;
        if let Some(stamp) = t.updated {
            record.insert(stamp.into(), Value::DateTime(now));
        }
        self.rows_mut(t).records.insert(id, in_schema_order(t, record));
        Ok(id)
    }

    /// `DataService.delete`.
    pub(crate) fn delete(&mut self, t: &Table, id: i32) -> Result<bool, Fault> {
        match self.rows_mut(t).records.remove(&id) {
            Some(_) => Ok(true),
            None => Err(record_not_found(t.name, id)),
        }
    }

    /// `DataService.load`: the selected fields that have a value.
    pub(crate) fn load(&self, t: &Table, id: i32, select: &[&'static str]) -> Result<Struct, Fault> {
        let record = self.get(t, id).ok_or_else(|| record_not_found(t.name, id))?;
        Ok(project(record, select))
    }

    /// `DataService.query` / `findByField`: a page of matching records, ordered.
    pub(crate) fn query(&self, t: &Table, q: &Query<'_>) -> Vec<Value> {
        let mut hits: Vec<&Struct> = self.rows(t).records.values().filter(|r| query::matches(q.criteria, r)).collect();
        if let Some(field) = q.order_by {
            // Missing values sort first, as NULLs do in MySQL; ties keep id order.
            hits.sort_by(|a, b| {
                let (x, y) = (a.get(field).and_then(query::scalar), b.get(field).and_then(query::scalar));
                match (x, y) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => compare(&x, &y),
                }
            });
        }
        if !q.ascending {
            hits.reverse();
        }
        hits.into_iter()
            .skip(q.page.saturating_mul(q.limit))
            .take(q.limit)
            .map(|r| Value::Struct(project(r, q.select)))
            .collect()
    }

    /// `DataService.count`.
    pub(crate) fn count(&self, t: &Table, criteria: &[Criterion]) -> usize {
        self.rows(t).records.values().filter(|r| query::matches(criteria, r)).count()
    }
}

/// What a query asks for, already checked.
pub(crate) struct Query<'a> {
    pub(crate) criteria: &'a [Criterion],
    pub(crate) limit: usize,
    pub(crate) page: usize,
    pub(crate) select: &'a [&'static str],
    pub(crate) order_by: Option<&'static str>,
    pub(crate) ascending: bool,
}

fn compare(x: &query::Scalar, y: &query::Scalar) -> std::cmp::Ordering {
    use query::Scalar::*;
    match (x, y) {
        (Int(a), Int(b)) => a.cmp(b),
        (Double(a), Double(b)) => a.total_cmp(b),
        (Text(a), Text(b)) => a.cmp(b),
        (Date(a), Date(b)) => a.cmp(b),
        _ => std::cmp::Ordering::Equal,
    }
}

fn project(record: &Struct, select: &[&'static str]) -> Struct {
    select.iter().filter_map(|f| record.get(*f).map(|v| ((*f).to_owned(), v.clone()))).collect()
}

fn in_schema_order(t: &Table, mut record: Struct) -> Struct {
    t.fields.iter().filter_map(|f| record.shift_remove(f.name).map(|v| (f.name.to_owned(), v))).collect()
}

/// Applies written values: unknown fields are a fault, vendor-set fields are ignored,
/// `""` clears a field.
fn apply(t: &Table, record: &mut Struct, values: &Struct) -> Result<(), Fault> {
    for (name, value) in values {
        let field = t.field(name).ok_or_else(|| no_field_found(t.name, name))?;
        if field.system {
            continue;
        }
        match coerce(t, field, value)? {
            Some(v) => {
                record.insert(field.name.to_owned(), v);
            }
            None => {
                record.shift_remove(field.name);
            }
        }
    }
    Ok(())
}

/// A written value as the field's type; `None` clears the field.
fn coerce(t: &Table, field: &Field, v: &Value) -> Result<Option<Value>, Fault> {
    let bad = || {
        let shown = match v {
            Value::String(s) => format!("'{}'", snippet(s)),
            other => format!("a {}", other.type_name()),
        };
        invalid_parameter(format!("Invalid value {shown} for {}.{}", t.name, field.name))
    };
    if v.as_str() == Some("") {
        return Ok(None);
    }
    let out = match (field.kind, v) {
        (Kind::Id | Kind::Int, Value::Int(i)) => Value::Int(*i),
        (Kind::Id | Kind::Int, Value::Boolean(b)) => Value::Int(i32::from(*b)),
        (Kind::Id | Kind::Int, Value::Double(d)) if d.fract() == 0.0 && d.abs() <= f64::from(i32::MAX) => Value::Int(*d as i32),
        (Kind::Id | Kind::Int, Value::String(s)) => Value::Int(s.trim().parse().map_err(|_| bad())?),
        (Kind::Double, Value::Int(i)) => Value::Double(f64::from(*i)),
        (Kind::Double, Value::Double(d)) if d.is_finite() => Value::Double(*d),
        (Kind::Double, Value::String(s)) => Value::Double(s.trim().parse::<f64>().ok().filter(|d| d.is_finite()).ok_or_else(bad)?),
        (Kind::Text, Value::String(s)) if s.len() <= MAX_TEXT => Value::String(s.clone()),
        (Kind::Text, Value::Int(i)) => Value::String(i.to_string()),
        (Kind::Text, Value::Double(d)) if d.is_finite() => Value::String(d.to_string()),
        (Kind::Date, Value::DateTime(d)) => Value::DateTime(*d),
        (Kind::Date, Value::String(s)) => Value::DateTime(query::parse_date(s).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::super::schema::{CONTACT, CONTACT_ACTION, LEAD, USER};
    use super::*;

    fn now() -> NaiveDateTime {
        now_in(chrono_tz::Tz::UTC)
    }

    fn s(pairs: &[(&str, Value)]) -> Struct {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn add_stamps_orders_and_clears() {
        let mut d = AccountData::new();
        let t0 = now();
        let id = d.add(&CONTACT, &s(&[("LastName", "Doe".into()), ("FirstName", "Jo".into()), ("Id", 99.into())]), t0).unwrap();
        assert_eq!(id, 2, "contact ids start at 2 and grow by 2");
        let r = d.get(&CONTACT, id).unwrap();
        let names: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(names, ["Id", "FirstName", "LastName", "DateCreated", "LastUpdated"]);
        d.update(&CONTACT, id, &s(&[("FirstName", "".into())]), t0).unwrap();
        assert!(d.get(&CONTACT, id).unwrap().get("FirstName").is_none());
        assert_eq!(d.add(&CONTACT, &s(&[]), t0).unwrap(), 4);
        assert_eq!(USER.id_step, 1);
    }

    /// Keap's `DataService.add` takes any columns of the table: its reference names no
    /// required one (developer.infusionsoft.com, "Data Service": `values`, "an associative
    /// array of data you would like stored into this new row"), so an opportunity (`Lead`)
    /// without `ContactID` and a note (`ContactAction`) without `ContactId` are created.
    #[test]
    fn adds_need_no_contact_and_types_are_checked() {
        let mut d = AccountData::new();
        let lead = d.add(&LEAD, &s(&[("OpportunityTitle", "x".into())]), now()).unwrap();
        assert!(d.get(&LEAD, lead).unwrap().get("ContactID").is_none());
        let note = d.add(&CONTACT_ACTION, &s(&[("CreationNotes", "no one".into())]), now()).unwrap();
        assert!(d.get(&CONTACT_ACTION, note).unwrap().get("ContactId").is_none());
        d.update(&LEAD, lead, &s(&[("ContactID", 0.into())]), now()).unwrap();
        let e = d.add(&LEAD, &s(&[("ContactID", "abc".into())]), now()).unwrap_err();
        assert!(e.message.contains("Lead.ContactID"), "{e:?}");
        let e = d.add(&LEAD, &s(&[("Nope", 1.into())]), now()).unwrap_err();
        assert_eq!(e.message, "[NoFieldFound]No field found: Lead.Nope");
        assert!(d.add(&LEAD, &s(&[("ContactID", "12".into()), ("ProjectedRevenueLow", 5.into())]), now()).is_ok());
    }
}
