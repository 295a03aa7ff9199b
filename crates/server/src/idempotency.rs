//! `Idempotency-Key` on hub `POST`s: the first answer is stored and replayed for 24 h.
//!
//! Scope is organization + instance + key; the request is fingerprinted (method,
//! hub path, query, body), so reusing a key for another request is a 422, and a
//! repeat while the first is still running is a 409. The answer is stored whenever
//! the vendor may have processed the request (success, a vendor 4xx or 5xx, a
//! timeout); when it surely did not (429, unreachable, refused before sending)
//! the key is released so the client can try again with it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_store::{IdempotencyBegin, IdempotencyScope, StoredAnswer};

use crate::{ApiError, AppState};

/// How long a first answer is replayed.
pub const TTL: Duration = Duration::from_secs(24 * 3600);
/// An in-flight claim older than this belongs to a request that died; it is taken over.
const LEASE: Duration = Duration::from_secs(600);
/// Longest key accepted (Stripe's limit).
const MAX_KEY_LEN: usize = 255;
/// Largest answer body kept for replay.
const MAX_STORED_BODY: usize = 16 * 1024 * 1024;

pub const HEADER: &str = "idempotency-key";

/// The request a key is bound to.
pub(crate) struct Request<'a> {
    pub organization_id: i64,
    pub instance_id: i64,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

fn fingerprint(r: &Request<'_>) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in [r.method.as_bytes(), r.path.as_bytes(), r.query.as_bytes(), r.body] {
        // Length-prefixed, so no two different requests hash the same parts.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().to_vec()
}

/// What a write answered, and whether the vendor may have processed it (false
/// when no request of it can have reached the vendor: none sent, refused before
/// sending, or a 429 / no connection).
pub(crate) struct Attempt {
    pub answer: Result<Response, ApiError>,
    pub reached: bool,
}

/// Runs `call` at most once per key: without an `Idempotency-Key` header it simply runs;
/// with one it claims the key, runs, stores the answer, or answers from the store.
///
/// With a key, `call` and the storing of its answer run in their own task: a client
/// that hangs up drops this future (axum cancels the handler), and the claim must
/// still end in a stored answer (or a release), or repeats would meet a 409 until
/// the lease ran out.
pub(crate) async fn once<Fut>(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    request: Request<'_>,
    call: Fut,
) -> Result<Response, ApiError>
where
    Fut: Future<Output = Attempt> + Send + 'static,
{
    let Some(key) = headers.get(HEADER) else {
        return call.await.answer;
    };
    let key = key
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"))
        })?;
    let scope = IdempotencyScope { organization_id: request.organization_id, instance_id: request.instance_id, key };
    match state.engine.store.idempotency_begin(&scope, &fingerprint(&request), TTL, LEASE).await? {
        IdempotencyBegin::Replay(answer) => return Ok(replay(answer)),
        IdempotencyBegin::InFlight => {
            return Err(ApiError::new(StatusCode::CONFLICT, "A request with this Idempotency-Key is still being processed"))
        }
        IdempotencyBegin::Mismatch => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was used for a different request (path or body); use a new key",
            ))
        }
        IdempotencyBegin::Started => {}
    }
    let claim = Claim { organization_id: scope.organization_id, instance_id: scope.instance_id, key: key.to_owned() };
    tokio::spawn(run_and_store(state.clone(), claim, call)).await.map_err(ApiError::internal)?
}

/// A key this request holds.
struct Claim {
    organization_id: i64,
    instance_id: i64,
    key: String,
}

/// Runs the claimed call and stores its answer (or releases the key if the vendor
/// surely did not act).
async fn run_and_store(state: Arc<AppState>, claim: Claim, call: impl Future<Output = Attempt>) -> Result<Response, ApiError> {
    let scope = IdempotencyScope { organization_id: claim.organization_id, instance_id: claim.instance_id, key: &claim.key };
    let Attempt { answer: outcome, reached } = call.await;
    if !reached {
        state.engine.store.idempotency_release(&scope).await?;
        return outcome;
    }
    let (answer, response) = match outcome {
        Ok(response) => {
            let status = response.status();
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_STORED_BODY).await.map_err(ApiError::internal)?;
            let answer = StoredAnswer { status: status.as_u16(), body: bytes.to_vec(), is_error: false };
            (answer, Ok(Response::from_parts(parts, axum::body::Body::from(bytes))))
        }
        Err(e) => {
            let mut body = json!({"message": e.message});
            if let Some(p) = &e.provider_message {
                body["providerMessage"] = Value::String(p.clone());
            }
            let answer = StoredAnswer { status: e.status.as_u16(), body: body.to_string().into_bytes(), is_error: true };
            (answer, Err(e))
        }
    };
    if let Err(e) = state.engine.store.idempotency_finish(&scope, &answer).await {
        // The vendor has acted; answer the client and let the claim's lease run out.
        tracing::error!(error = %e, "could not store an idempotent answer");
    }
    response
}

fn replay(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = if answer.is_error {
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let mut e = ApiError::new(status, body["message"].as_str().unwrap_or("The first request failed"));
        e.provider_message = body["providerMessage"].as_str().map(str::to_owned);
        e.into_response()
    } else {
        let mut r = (status, Bytes::from(answer.body)).into_response();
        r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
        r
    };
    response.headers_mut().insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_separate_parts() {
        let r = |path: &'static str, query: &'static str, body: &'static [u8]| Request {
            organization_id: 1,
            instance_id: 1,
            method: "POST",
            path,
            query,
            body,
        };
        assert_eq!(fingerprint(&r("/a", "", b"{}")), fingerprint(&r("/a", "", b"{}")));
        assert_ne!(fingerprint(&r("/a", "", b"{}")), fingerprint(&r("/b", "", b"{}")));
        assert_ne!(fingerprint(&r("/a", "", b"{}")), fingerprint(&r("/a", "", b"{ }")));
        assert_ne!(fingerprint(&r("/ab", "", b"")), fingerprint(&r("/a", "b", b"")));
    }
}
