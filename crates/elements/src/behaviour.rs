//! The named vendor quirks ([`Behaviour`]) that change values, each implemented
//! once here and opted into by element data. (`empty-list-is-204` changes how a
//! list answer is read, so it lives where lists are read.)

use serde_json::Value;
use switchyard_ceql::parse_instant;

use crate::model::{Behaviour, ElementDefinition, FieldType, Resource};

/// A date given in any form CEQL reads (`parse_instant`), as the vendor wants it in
/// a filter: RFC 2822 under `rfc2822-dates`, otherwise as given. `None`: not a date.
pub fn format_vendor_date(def: &ElementDefinition, text: &str) -> Option<String> {
    let instant = parse_instant(text)?;
    if def.behaviours.contains(&Behaviour::Rfc2822Dates) {
        Some(instant.to_rfc2822())
    } else {
        Some(text.to_owned())
    }
}

/// A `{"url": ..., "resource": ...}` reference (`link-objects`).
pub fn is_link_object(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.len() == 2 && o.get("url").is_some_and(Value::is_string) && o.get("resource").is_some_and(Value::is_string)
    })
}

/// Rewrites a create/update body for the vendor, by the element's behaviours:
/// link objects dropped (read-only references; a record read from the hub can be
/// sent back as is), `date` fields in another format sent as RFC 2822, JSON numbers
/// in `decimal` fields sent as decimal strings. Types come from the resource's model.
pub fn prepare_write_body(def: &ElementDefinition, resource: &Resource, body: &mut Value) {
    let Value::Object(fields) = body else { return };
    let has = |b: Behaviour| def.behaviours.contains(&b);
    let model = resource.model.as_deref().and_then(|m| def.models.get(m));
    let type_of = |k: &str| model.and_then(|m| m.get(k)).copied();
    if has(Behaviour::LinkObjects) {
        // By shape, not by declared type: an order's `products` is a link when read
        // but the line items when an order is created.
        fields.retain(|_, v| !is_link_object(v));
    }
    for (k, v) in fields.iter_mut() {
        match (type_of(k), &*v) {
            (Some(FieldType::Date), Value::String(s))
                if has(Behaviour::Rfc2822Dates) && chrono::DateTime::parse_from_rfc2822(s).is_err() =>
            {
                if let Some(t) = parse_instant(s) {
                    *v = Value::String(t.to_rfc2822());
                }
            }
            (Some(FieldType::Decimal), Value::Number(n)) if has(Behaviour::DecimalStrings) => {
                *v = Value::String(n.to_string());
            }
            _ => {}
        }
    }
}
