//! What a hub call takes and gives: the request as the caller made it, the answer,
//! and the checks every protocol shares.

use bytes::Bytes;
use http::Method;
use serde_json::Value;
use serde_json::value::RawValue;
use switchyard_elements::{parse_fields, project, ElementDefinition, Resource};

use crate::EngineError;

/// One hub call as the caller made it.
#[derive(Debug, Clone)]
pub struct HubRequest {
    pub method: Method,
    /// The hub the caller named (`ecommerce`); it must be the element's.
    pub hub: String,
    /// The resource path below the hub (`orders/10/shipments`): decoded segments
    /// joined by `/`, none of them empty, `.`, `..` or holding a `/` (see
    /// [`crate::segment::decode`]).
    pub path: String,
    /// The query, decoded (`where`, `pageSize`, `nextPage`, `fields`, ...).
    pub params: Vec<(String, String)>,
    /// The JSON body of creates and updates (empty otherwise).
    pub body: Bytes,
    /// What a list's `nextPage` tokens are bound to, when not `path`: a call on a
    /// transformed object (`myOrders`) is rewritten onto the vendor's object
    /// (`orders`), and its tokens are bound to both names (`myOrders>orders`), so a
    /// token of the one never continues a list of the other, nor of the same name
    /// mapped onto another object since.
    pub page_scope: Option<String>,
}

/// A hub call's answer.
#[derive(Debug, Clone, Default)]
pub struct HubAnswer {
    /// The JSON answer: a record, a list of records, `{"count": n}`; `None` for
    /// an answer without a body (a delete).
    pub body: Option<Bytes>,
    /// Lists: how many records this page holds (`Elements-Returned-Count`).
    pub returned_count: Option<usize>,
    /// Lists: the signed token of the next page, when one exists
    /// (`Elements-Next-Page-Token`).
    pub next_page: Option<String>,
    /// Lists: how many records the whole list holds, where the vendor says so in
    /// its list answer (`totalPointer`) and filtered everything itself
    /// (`Elements-Total-Count`).
    pub total_count: Option<u64>,
    /// One line per field the vendor wrote undecodably and the engine replaced
    /// (`Elements-Warning`), at most 50 and one that counts the rest.
    pub warnings: Vec<String>,
    /// A list of a transformed object: the vendor's list the body's records were
    /// mapped from, record for record (the event log keeps them as
    /// `providerData`). `None` for every other answer.
    pub vendor_body: Option<Bytes>,
}

impl HubAnswer {
    pub(crate) fn json(value: &Value) -> Result<HubAnswer, EngineError> {
        Ok(HubAnswer { body: Some(Bytes::from(serde_json::to_vec(value).map_err(EngineError::internal)?)), ..HubAnswer::default() })
    }
}

/// What [`crate::Engine::execute`] did: the answer, and whether any request may have
/// reached the vendor (what `Idempotency-Key` needs to know to release a key).
pub struct Outcome {
    pub answer: Result<HubAnswer, EngineError>,
    pub maybe_reached: bool,
}

/// One page of a list read by the platform itself (the event poller).
#[derive(Debug, Clone, Default)]
pub struct HubPage {
    pub records: Vec<Value>,
    pub next_page: Option<String>,
    /// For a transformed object, the vendor's records `records` were mapped from
    /// (same order); empty otherwise.
    pub vendor_records: Vec<Value>,
}


pub(crate) fn bad_request(message: impl Into<String>) -> EngineError {
    EngineError::bad_request(message)
}

/// The `fields` the caller asked for, checked against the resource's model (an
/// unknown one is a 400, before any vendor call); `None` when not given.
pub(crate) fn requested_fields(
    def: &ElementDefinition,
    resource: &Resource,
    params: &[(String, String)],
) -> Result<Option<Vec<String>>, EngineError> {
    match params.iter().find(|(k, _)| k == "fields").map(|(_, v)| v.as_str()).filter(|f| !f.trim().is_empty()) {
        Some(f) => parse_fields(def, resource, f).map(Some).map_err(|e| bad_request(e.to_string())),
        None => Ok(None),
    }
}

/// The record at the dotted `path` of a vendor answer (a resource's `recordPath`:
/// `order` in `{"order": {...}}`), byte for byte as the vendor wrote it, or cut to
/// `fields`. An empty answer is `{}`, as without a path; an answer without an
/// object there is a 502 naming the path.
pub(crate) fn record_at(body: &[u8], path: &str, fields: Option<&[String]>) -> Result<HubAnswer, EngineError> {
    if body.is_empty() {
        return HubAnswer::json(&Value::Object(Default::default()));
    }
    let no_record = || {
        EngineError::new(http::StatusCode::BAD_GATEWAY, format!("The vendor's answer holds no record at '{path}'"))
    };
    let mut raw: Box<RawValue> = serde_json::from_slice(body).map_err(|_| crate::calls::malformed())?;
    for key in path.split('.') {
        let mut object: std::collections::HashMap<String, Box<RawValue>> = serde_json::from_str(raw.get()).map_err(|_| no_record())?;
        raw = object.remove(key).ok_or_else(no_record)?;
    }
    if !raw.get().trim_start().starts_with('{') {
        return Err(no_record());
    }
    match fields {
        None => Ok(HubAnswer { body: Some(Bytes::copy_from_slice(raw.get().as_bytes())), ..HubAnswer::default() }),
        Some(fields) => HubAnswer::json(&project(&serde_json::from_str(raw.get()).map_err(EngineError::internal)?, fields)),
    }
}

/// `record` placed at the dotted `path` of a write body (a resource's `bodyPath`):
/// `order` gives `{"order": record}`, `data.attributes` `{"data": {"attributes": record}}`.
pub(crate) fn enveloped(path: &str, record: Value) -> Value {
    path.rsplit('.').fold(record, |inner, key| {
        let mut outer = serde_json::Map::new();
        outer.insert(key.to_owned(), inner);
        Value::Object(outer)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_found_at_their_path_as_written() {
        let body = br#"{"order": {"id": 7, "total": 1.50, "note": "x"}, "meta": {}}"#;
        let a = record_at(body, "order", None).unwrap();
        assert_eq!(a.body.unwrap(), &br#"{"id": 7, "total": 1.50, "note": "x"}"#[..]);
        let nested = record_at(br#"{"data": {"item": {"id": "a"}}}"#, "data.item", None).unwrap();
        assert_eq!(nested.body.unwrap(), &br#"{"id": "a"}"#[..]);
        let cut = record_at(body, "order", Some(&["id".to_owned()])).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&cut.body.unwrap()).unwrap(), json!({"id": 7}));
        assert_eq!(record_at(b"", "order", None).unwrap().body.unwrap(), &b"{}"[..]);
        for bad in [&br#"{"ticket": {}}"#[..], br#"{"order": null}"#, br#"{"order": [1]}"#, br#"[{"order": {}}]"#] {
            let e = record_at(bad, "order", None).unwrap_err();
            assert_eq!(e.status, http::StatusCode::BAD_GATEWAY);
            assert!(e.message.contains("'order'"), "{}", e.message);
        }
        assert!(record_at(b"{not json", "order", None).unwrap_err().message.contains("malformed"));
    }

    #[test]
    fn bodies_are_wrapped_at_their_path() {
        assert_eq!(enveloped("order", json!({"a": 1})), json!({"order": {"a": 1}}));
        assert_eq!(enveloped("data.attributes", json!({"a": 1})), json!({"data": {"attributes": {"a": 1}}}));
    }
}
