//! In-memory tables of JSON records, each kept pre-serialised, and the answers built
//! from them.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::{json, Map, Value};

/// Stands for the API base URL (`http://HOST/stores/{hash}/api/v2`) inside stored
/// records; it is replaced when a record is written out, so that link objects name the
/// host and mode of the request.
pub(crate) const BASE: &str = "\u{1}BASE\u{1}";
/// [`BASE`] as serde_json writes it.
const BASE_JSON: &[u8] = b"\\u0001BASE\\u0001";

/// A record: its JSON object and that object serialised, with the base-URL cuts.
pub(crate) struct Record {
    pub(crate) id: u64,
    pub(crate) created: i64,
    pub(crate) modified: i64,
    pub(crate) value: Map<String, Value>,
    json: Bytes,
    cuts: Vec<usize>,
}

impl Record {
    pub(crate) fn new(id: u64, created: i64, modified: i64, value: Map<String, Value>) -> Self {
        let mut r = Record { id, created, modified, value, json: Bytes::new(), cuts: Vec::new() };
        r.refresh();
        r
    }

    /// Re-serialises after `value` changed.
    pub(crate) fn refresh(&mut self) {
        let raw = serde_json::to_vec(&self.value).unwrap_or_else(|_| b"{}".to_vec());
        let mut out = Vec::with_capacity(raw.len());
        let mut cuts = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\\' && raw[i..].starts_with(BASE_JSON) {
                cuts.push(out.len());
                i += BASE_JSON.len();
            } else {
                out.push(raw[i]);
                i += 1;
            }
        }
        self.json = Bytes::from(out);
        self.cuts = cuts;
    }

    pub(crate) fn str(&self, field: &str) -> &str {
        self.value.get(field).and_then(Value::as_str).unwrap_or("")
    }

    pub(crate) fn int(&self, field: &str) -> Option<i64> {
        match self.value.get(field)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.parse().ok(),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    pub(crate) fn num(&self, field: &str) -> Option<f64> {
        crate::bigcommerce::fmt::parse_money(self.value.get(field)?)
    }

    pub(crate) fn bool(&self, field: &str) -> bool {
        self.value.get(field).and_then(Value::as_bool).unwrap_or(false)
    }

    /// Writes the record with `base` in place of [`BASE`].
    pub(crate) fn write_to(&self, out: &mut BytesMut, base: &str) {
        let mut prev = 0;
        for &c in &self.cuts {
            out.extend_from_slice(&self.json[prev..c]);
            // The base is a URL: nothing in it needs JSON escaping but quotes and
            // backslashes, which a Host header cannot carry into it.
            out.extend_from_slice(base.as_bytes());
            prev = c;
        }
        out.extend_from_slice(&self.json[prev..]);
    }

    pub(crate) fn len_hint(&self) -> usize {
        self.json.len() + self.cuts.len() * 64
    }
}

/// A top-level collection with ids counted from `next_id`.
pub(crate) struct Table {
    pub(crate) next_id: u64,
    pub(crate) rows: BTreeMap<u64, Record>,
}

impl Table {
    pub(crate) fn new(first_id: u64) -> Self {
        Table { next_id: first_id, rows: BTreeMap::new() }
    }

    pub(crate) fn alloc(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn insert(&mut self, r: Record) {
        self.next_id = self.next_id.max(r.id + 1);
        self.rows.insert(r.id, r);
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Record> {
        self.rows.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Record> {
        self.rows.get_mut(&id)
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Record> {
        self.rows.values()
    }
}

/// A collection under a parent (`/orders/{id}/products`), ids unique across parents.
pub(crate) struct ChildTable {
    pub(crate) next_id: u64,
    pub(crate) rows: BTreeMap<(u64, u64), Record>,
}

impl ChildTable {
    pub(crate) fn new(first_id: u64) -> Self {
        ChildTable { next_id: first_id, rows: BTreeMap::new() }
    }

    pub(crate) fn alloc(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn insert(&mut self, parent: u64, r: Record) {
        self.next_id = self.next_id.max(r.id + 1);
        self.rows.insert((parent, r.id), r);
    }

    pub(crate) fn of(&self, parent: u64) -> impl DoubleEndedIterator<Item = &Record> {
        self.rows.range((parent, 0)..=(parent, u64::MAX)).map(|(_, r)| r)
    }

    pub(crate) fn get(&self, parent: u64, id: u64) -> Option<&Record> {
        self.rows.get(&(parent, id))
    }

    pub(crate) fn get_mut(&mut self, parent: u64, id: u64) -> Option<&mut Record> {
        self.rows.get_mut(&(parent, id))
    }

    pub(crate) fn remove(&mut self, parent: u64, id: u64) -> Option<Record> {
        self.rows.remove(&(parent, id))
    }

    pub(crate) fn remove_parent(&mut self, parent: u64) {
        let keys: Vec<(u64, u64)> = self.rows.range((parent, 0)..=(parent, u64::MAX)).map(|(k, _)| *k).collect();
        for k in keys {
            self.rows.remove(&k);
        }
    }

    pub(crate) fn count(&self, parent: u64) -> usize {
        self.of(parent).count()
    }
}

/// What the API answers before transport concerns (rate-limit headers, faults).
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Option<Bytes>,
    pub(crate) extra: Option<(http::HeaderName, http::HeaderValue)>,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, v: &Value) -> Reply {
        Reply { status, body: Some(Bytes::from(serde_json::to_vec(v).unwrap_or_default())), extra: None }
    }

    pub(crate) fn ok(v: &Value) -> Reply {
        Reply::json(StatusCode::OK, v)
    }

    pub(crate) fn no_content() -> Reply {
        Reply { status: StatusCode::NO_CONTENT, body: None, extra: None }
    }

    pub(crate) fn record(status: StatusCode, r: &Record, base: &str) -> Reply {
        let mut out = BytesMut::with_capacity(r.len_hint());
        r.write_to(&mut out, base);
        Reply { status, body: Some(out.freeze()), extra: None }
    }

    /// A JSON array of records, or 204 when there are none (the vendor's empty list).
    pub(crate) fn list<'a>(rows: impl IntoIterator<Item = &'a Record>, base: &str) -> Reply {
        let rows: Vec<&Record> = rows.into_iter().collect();
        if rows.is_empty() {
            return Reply::no_content();
        }
        let cap = rows.iter().map(|r| r.len_hint() + 1).sum::<usize>() + 2;
        let mut out = BytesMut::with_capacity(cap);
        out.extend_from_slice(b"[");
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b",");
            }
            r.write_to(&mut out, base);
        }
        out.extend_from_slice(b"]");
        Reply { status: StatusCode::OK, body: Some(out.freeze()), extra: None }
    }

    pub(crate) fn count(n: usize) -> Reply {
        Reply::ok(&json!({ "count": n }))
    }
}

/// An error in the vendor's v2 shape: `[{"status": N, "message": "..."}]`, with optional
/// `details`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), details: None }
    }

    pub(crate) fn with_details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }

    pub(crate) fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "The requested resource was not found.")
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn missing(field: &str) -> Self {
        ApiError::bad_request(format!("The required field '{field}' was not supplied."))
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("The field '{field}' is invalid."))
            .with_details(json!({ "invalid_reason": reason.into() }))
    }

    pub(crate) fn conflict(message: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, message).with_details(json!({ "conflict_reason": reason.into() }))
    }

    pub(crate) fn method_not_allowed() -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "The requested method is not supported by this resource.")
    }

    pub(crate) fn body(&self) -> Value {
        let mut e = json!({ "status": self.status.as_u16(), "message": self.message });
        if let Some(d) = &self.details {
            e["details"] = d.clone();
        }
        Value::Array(vec![e])
    }

    pub(crate) fn reply(&self) -> Reply {
        Reply::json(self.status, &self.body())
    }

    /// The same error in the v3 shape, `{"status", "title", "type", "errors"}`; `details`
    /// become `errors` (field name -> reason).
    pub(crate) fn v3_reply(&self) -> Reply {
        let body = json!({
            "status": self.status.as_u16(),
            "title": self.message,
            "type": "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes",
            "errors": self.details.clone().unwrap_or_else(|| json!({})),
        });
        Reply::json(self.status, &body)
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        e.reply()
    }
}

/// A link object: `{"url": BASE + resource, "resource": resource}`.
pub(crate) fn link(resource: String) -> Value {
    json!({ "url": format!("{BASE}{resource}"), "resource": resource })
}

/// `json!` object literal -> `Map`.
pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_substituted() {
        let r = Record::new(1, 0, 0, obj(json!({"id": 1, "products": link("/orders/1/products".into())})));
        let mut out = BytesMut::new();
        r.write_to(&mut out, "http://h/stores/x/api/v2");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["products"]["url"], "http://h/stores/x/api/v2/orders/1/products");
        assert_eq!(v["products"]["resource"], "/orders/1/products");
    }
}
