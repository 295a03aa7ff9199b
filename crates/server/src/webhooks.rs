//! The vendor webhook intake: vendors call
//! `POST /elements/api-v2/events/{elementKey}/{instanceKey}` at the address the
//! engine registered (`switchyard_engine::webhooks`), with the secret header it
//! asked for. A call is acknowledged after its event is committed with
//! `synchronous=FULL` (the vendor will not send it again); many calls share one
//! commit (see [`Intake`]). A call the vendor sends again (the values the element's
//! `events.webhooks.digest` names all equal, within the dedupe window) is answered
//! with the first call's event id and stores nothing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use switchyard_events::message::{new_event_id, notified_event};
pub use switchyard_engine::webhooks::SECRET_HEADER;
use sha2::{Digest, Sha256};
use switchyard_store::{IncomingEvent, NewEvent, Store};
use tokio::sync::{mpsc, oneshot};

use crate::caller::hash_secret;
use crate::extract::Path;
use crate::{ApiError, AppState};

/// Largest vendor call accepted (BigCommerce's are a few hundred bytes).
const MAX_INCOMING_BODY: usize = 256 * 1024;
/// Largest body read (and dropped) to answer a call over the limit with a 413.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// Calls committed together at most.
const MAX_COMMIT_BATCH: usize = 512;


fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// `POST /elements/api-v2/events/{elementKey}/{instanceKey}`: a vendor's webhook call.
/// Unknown keys are a 404 and a missing or wrong secret header a 401, with nothing
/// stored; a known call is answered 200 once its event is durably stored.
#[utoipa::path(post, path = "/events/{elementKey}/{instanceKey}", operation_id = "receiveVendorWebhook", tag = "events",
    description = "Called by vendors, at the address Switchyard registered: no caller authorization, the secret header instead.",
    params(("elementKey" = String, Path), ("instanceKey" = String, Path, description = "Random, per registration"),
        ("X-Switchyard-Webhook-Secret" = String, Header, description = "The value given to the vendor at registration")),
    request_body(content = Object, description = "The vendor's call, e.g. BigCommerce's {scope, data: {type, id}, ...}"),
    security(()),
    responses((status = 200, description = "Stored durably: `{eventId}`; a call the vendor sent again within the dedupe window answers the first call's `eventId` and stores nothing (`{ignored: scope}` for a scope the element does not map)", body = Object),
        (status = 400, description = "Not JSON, or no scope or object id, or an id that cannot name a record (`..`, one holding `/`)", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or wrong secret header (answered before the body is read)", body = crate::error::ErrorBody),
        (status = 404, description = "No webhook registered at this address", body = crate::error::ErrorBody),
        (status = 413, description = "A body over 256 KiB, declared or sent", body = crate::error::ErrorBody),
        (status = 503, description = "Not stored; the vendor should call again", body = crate::error::ErrorBody)))]
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    Path((element_key, instance_key)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    // Address and secret first, size next, and only then the body: a caller who
    // knows neither cannot make the server read (and hold) what it sends.
    let unknown = || ApiError::not_found("No webhook is registered at this address");
    let target = state.engine.store.webhook_target(&element_key, &instance_key).await?.ok_or_else(unknown)?;
    let given = headers.get(SECRET_HEADER).map(|v| hash_secret(&String::from_utf8_lossy(v.as_bytes())));
    if given.as_deref() != Some(target.webhook.secret_hash.as_slice()) {
        return Err(ApiError::unauthorized(format!("Missing or wrong {SECRET_HEADER}")));
    }
    let def = state.engine.catalog.get(&element_key).cloned().ok_or_else(unknown)?;
    let w = def.events.webhooks.as_ref().ok_or_else(unknown)?;
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("Webhook calls are at most {MAX_INCOMING_BODY} bytes"));
    // Past the limit, a body of up to DRAIN_LIMIT is read on and dropped before the
    // 413, so an HTTP client still sending it reads the answer instead of a reset
    // connection; one declared larger than that is not read at all.
    let declared = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(too_large());
    }
    let (mut body, mut kept, mut seen) = (body, Vec::new(), 0usize);
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.map_err(|_| bad_request("The request body could not be read to its end; send it again"))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > DRAIN_LIMIT {
                return Err(too_large());
            }
            if seen <= MAX_INCOMING_BODY {
                kept.extend_from_slice(&data);
            }
        }
    }
    if seen > MAX_INCOMING_BODY {
        return Err(too_large());
    }
    let body = kept;
    let payload: Value = serde_json::from_slice(&body).map_err(|_| bad_request("The webhook body must be JSON"))?;
    let scope = payload.pointer(&w.scope_pointer).and_then(Value::as_str).ok_or_else(|| bad_request(format!("No scope at {}", w.scope_pointer)))?;
    let object_id = match payload.pointer(&w.object_id_pointer) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad_request(format!("No object id at {}", w.object_id_pointer))),
    };
    // The id is read back through the hub as one path segment: one that cannot be
    // (`..`, `a/b`) would fail every delivery attempt, so it is refused now.
    if let Err(e) = switchyard_engine::segment::encode(&object_id) {
        return Err(bad_request(format!("The object id at {} cannot name a record: {}", w.object_id_pointer, e.message)));
    }
    let (Some(object), Some(event_type)) = (w.object_of(scope), w.event_type_of(scope)) else {
        // A scope this element does not turn into events: acknowledged, so the vendor stops.
        return Ok(Json(json!({"ignored": scope})));
    };
    if target.disabled {
        // A disabled instance has no events (as its hub calls are refused); the call is
        // acknowledged so the vendor does not retry it into a later enable.
        return Ok(Json(json!({"ignored": "the instance is disabled"})));
    }
    // Until the record is read (before delivery), `raw` is the vendor's object of
    // the call: the one holding the id (BigCommerce: `data`).
    let parent = w.object_id_pointer.rsplit_once('/').map_or("", |(p, _)| p);
    let mut raw = match payload.pointer(parent) {
        Some(Value::Object(o)) => o.clone(),
        _ => serde_json::Map::new(),
    };
    raw.insert("objectType".into(), object.into());
    let now = switchyard_events::now_ms();
    let date = switchyard_events::iso_ms(now);
    let event = NewEvent {
        event_id: new_event_id(),
        organization_id: target.organization_id,
        instance_id: target.webhook.instance_id,
        element_key: element_key.clone(),
        source: "webhook".into(),
        status: "RECEIVED".into(),
        event_date: date.clone(),
        provider_data: String::from_utf8_lossy(&body).into_owned(),
        notified_data: json!([notified_event(event_type, object, &object_id, &date)]).to_string(),
        raw: Value::Object(raw).to_string(),
    };
    // Kept per instance: the same call to two instances is an event for each.
    let digest = w.digest_of(&payload).map(|d| Sha256::digest(d.as_bytes()).to_vec());
    let event_id = state.intake.store(&state, IncomingEvent { event, digest }).await?;
    Ok(Json(json!({"eventId": event_id})))
}

/// Stores vendor calls' events as they arrive, as many per durable commit as are
/// waiting (group commit), so the fsync that makes an acknowledgement safe is paid
/// once per batch, not once per call. Started on first use. Cheap to clone.
#[derive(Clone, Default)]
pub struct Intake {
    queue: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

/// A call waiting for its commit, and where to send the event id that answers it.
type Pending = (IncomingEvent, oneshot::Sender<Result<String, String>>);

impl Intake {
    /// Stores the call's event (or finds the event an earlier sending of it became)
    /// and answers that event's id once it is durable.
    async fn store(&self, state: &AppState, event: IncomingEvent) -> Result<String, ApiError> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * MAX_COMMIT_BATCH);
            tokio::spawn(commit(state.engine.store.clone(), state.event_waker.clone(), state.event_dedupe, rx));
            tx
        });
        let (done, stored) = oneshot::channel();
        let unavailable = |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("The event was not stored: {why}"));
        queue.send((event, done)).await.map_err(|_| unavailable("the intake stopped".into()))?;
        stored.await.map_err(|_| unavailable("the intake stopped".into()))?.map_err(unavailable)
    }
}

async fn commit(store: Store, waker: switchyard_events::EventWaker, dedupe: Duration, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_COMMIT_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (events, waiting): (Vec<IncomingEvent>, Vec<_>) = batch.into_iter().unzip();
        let now = switchyard_events::now_ms();
        let since = now.saturating_sub(i64::try_from(dedupe.as_millis()).unwrap_or(i64::MAX));
        let stored: Vec<Result<String, String>> = match store.insert_incoming_durably(&events, now, now, since).await {
            Ok(ids) => ids.into_iter().map(Ok).collect(),
            // One bad event (its instance deleted since the lookup) must not fail the
            // others: each is tried on its own, and only the failing ones are refused.
            Err(_) if events.len() > 1 => {
                let mut each = Vec::with_capacity(events.len());
                for event in &events {
                    let one = store.insert_incoming_durably(std::slice::from_ref(event), now, now, since).await;
                    each.push(one.map_err(|e| e.to_string()).and_then(|ids| ids.into_iter().next().ok_or_else(|| "nothing stored".to_owned())));
                }
                each
            }
            Err(e) => vec![Err(e.to_string())],
        };
        if stored.iter().any(Result::is_ok) {
            waker.wake();
        }
        for (done, result) in waiting.into_iter().zip(stored) {
            if let Err(e) = &result {
                tracing::warn!(error = %e, "storing an incoming webhook event failed");
            }
            let _ = done.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(instance_id: i64, organization_id: i64) -> NewEvent {
        NewEvent {
            event_id: new_event_id(),
            organization_id,
            instance_id,
            element_key: "bigcommerce".into(),
            source: "webhook".into(),
            status: "RECEIVED".into(),
            event_date: "2026-01-01T00:00:00.000Z".into(),
            provider_data: "{}".into(),
            notified_data: "[]".into(),
            raw: "{}".into(),
        }
    }

    /// Calls committed together: one whose instance is gone is refused, the
    /// others are stored all the same.
    #[tokio::test(flavor = "current_thread")]
    async fn one_bad_call_does_not_fail_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
        let (org, user) = store.create_organization("o", b"o", "a@x", b"u").await.unwrap();
        let new = switchyard_store::NewInstance {
            organization_id: org.id,
            user_id: user.id,
            element_key: "bigcommerce".into(),
            name: "shop".into(),
            token_hash: b"t".to_vec(),
            tags: vec![],
            events_enabled: true,
            webhook: None,
        };
        struct NoSeal;
        impl switchyard_store::Sealer for NoSeal {
            fn seal(&self, _: i64, _: &str, p: &str) -> (Vec<u8>, u32) {
                (p.as_bytes().to_vec(), 0)
            }
        }
        let id = store.create_instance(&new, &[], &NoSeal).await.unwrap();
        let state = AppState::new(
            store.clone(),
            switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate()),
            switchyard_engine::client::VendorClient::new(switchyard_engine::outbound::OutboundPolicy::allow_loopback(), std::time::Duration::from_secs(1)),
            switchyard_elements::Catalog::builtin(),
            vec![0; 32],
        );
        // On one thread, all three are queued before the commit task first runs: one batch.
        let call = |instance_id| IncomingEvent { event: event(instance_id, org.id), digest: None };
        let (good, gone, also_good) = tokio::join!(
            state.intake.store(&state, call(id)),
            state.intake.store(&state, call(id + 1000)),
            state.intake.store(&state, call(id)),
        );
        assert!(good.is_ok() && also_good.is_ok());
        assert_eq!(gone.unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
        let q = switchyard_store::EventQuery { organization_id: org.id, instance_id: Some(id), before: None, offset: 0, limit: 10 };
        assert_eq!(store.events(&q).await.unwrap().len(), 2);
    }
}
