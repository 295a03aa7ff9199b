//! What a hub call takes and gives: the request as the caller made it, the answer,
//! and the checks every protocol shares.

use bytes::Bytes;
use http::Method;
use serde_json::Value;
use switchyard_elements::{parse_fields, ElementDefinition, Resource};

use crate::EngineError;

/// One hub call as the caller made it.
#[derive(Debug, Clone)]
pub struct HubRequest {
    pub method: Method,
    /// The hub the caller named (`ecommerce`); it must be the element's.
    pub hub: String,
    /// The resource path below the hub (`orders/10/shipments`): decoded segments
    /// joined by `/`, none of them empty, `.`, `..` or holding a `/` (see
    /// [`segment::decode`]).
    pub path: String,
    /// The query, decoded (`where`, `pageSize`, `nextPage`, `fields`, ...).
    pub params: Vec<(String, String)>,
    /// The JSON body of creates and updates (empty otherwise).
    pub body: Bytes,
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
}

impl HubAnswer {
    pub(crate) fn json(value: &Value) -> Result<HubAnswer, EngineError> {
        Ok(HubAnswer { body: Some(Bytes::from(serde_json::to_vec(value).map_err(EngineError::internal)?)), ..HubAnswer::default() })
    }
}

/// What [`Engine::execute`] did: the answer, and whether any request may have
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
