//! Vendor webhooks: one hook per watched resource is registered at the vendor when
//! an instance's events are on with `event.vendor.type=webhook`, and removed when
//! they go off or the instance is deleted; the vendor's calls arrive at
//! `POST /elements/api-v2/events/{elementKey}/{instanceKey}`.
//!
//! The element's data says how (`events.webhooks`, see elements/README.md). The
//! `instanceKey` is random (not the id, not the token), and each registration asks
//! the vendor to echo a random secret in [`SECRET_HEADER`]; only its hash is kept.
//! A call is acknowledged after its event is committed with `synchronous=FULL`
//! (the vendor will not send it again); many calls share one commit (see [`Intake`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use switchyard_elements::{ElementDefinition, Webhooks};
use switchyard_events::config::{ENABLED, OBJECTS, VENDOR_TYPE};
use switchyard_events::message::{new_event_id, notified_event};
use switchyard_store::{NewEvent, Store, VendorHook, WebhookRow};
use tokio::sync::{mpsc, oneshot};

use crate::caller::{hash_secret, new_secret};
use crate::hub::Vendor;
use crate::{ApiError, AppState};

/// The header every vendor call must carry, with the value given at registration.
pub const SECRET_HEADER: &str = "X-Switchyard-Webhook-Secret";
/// Largest vendor call accepted (BigCommerce's are a few hundred bytes).
const MAX_INCOMING_BODY: usize = 256 * 1024;
/// Calls committed together at most.
const MAX_COMMIT_BATCH: usize = 512;

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// The resources an instance with this configuration wants hooks for, with the
/// vendor scope of each: none unless events are on with `event.vendor.type=webhook`.
/// A request the element or the instance's mode cannot honour is a 400.
pub(crate) fn wanted(def: &ElementDefinition, config: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, ApiError> {
    let on = def.effective(config, ENABLED) == Some("true") && def.effective(config, VENDOR_TYPE) == Some("webhook");
    if !on {
        return Ok(Vec::new());
    }
    let Some(w) = &def.events.webhooks else {
        return Err(bad_request(format!("element {} has no vendor webhooks; use {VENDOR_TYPE}=polling", def.key)));
    };
    if let Some((key, value)) = w.requires.iter().find(|(k, v)| def.effective(config, k) != Some(v.as_str())) {
        return Err(bad_request(format!("{VENDOR_TYPE}=webhook on element {} needs {key}={value}", def.key)));
    }
    let objects: Vec<String> = match def.effective(config, OBJECTS) {
        Some(list) => list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        None => w.objects.keys().cloned().collect(),
    };
    objects
        .into_iter()
        .map(|object| match w.objects.get(&object) {
            Some(scope) => Ok((object, scope.clone())),
            None => Err(bad_request(format!(
                "{OBJECTS}: '{object}' has no vendor webhook; these have: {}",
                w.objects.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        })
        .collect()
}

/// Whether the hooks registered serve what is wanted now (same resources, and the
/// same address: a moved server registers again).
pub(crate) fn serves(current: Option<&WebhookRow>, wanted: &[(String, String)], state: &AppState, def: &ElementDefinition) -> bool {
    match current {
        None => wanted.is_empty(),
        Some(row) => {
            let mut have: Vec<(&str, &str)> = row.hooks.iter().map(|h| (h.object.as_str(), h.scope.as_str())).collect();
            let mut want: Vec<(&str, &str)> = wanted.iter().map(|(o, s)| (o.as_str(), s.as_str())).collect();
            have.sort_unstable();
            want.sort_unstable();
            have == want && row.destination.starts_with(&destination_base(state, def))
        }
    }
}

fn destination_base(state: &AppState, def: &ElementDefinition) -> String {
    format!("{}/elements/api-v2/events/{}/", state.public_url.trim_end_matches('/'), def.key)
}

/// Registers one hook per wanted resource. If one fails, those made are removed
/// and the vendor's refusal is the answer: nothing stays registered.
pub(crate) async fn register(
    state: &AppState,
    def: &ElementDefinition,
    config: &BTreeMap<String, String>,
    instance_id: Option<i64>,
    wanted: &[(String, String)],
) -> Result<WebhookRow, ApiError> {
    let w = webhooks_of(def)?;
    let instance_key = new_secret();
    let secret = new_secret();
    let destination = format!("{}{instance_key}", destination_base(state, def));
    let vendor = vendor_for(state, def, config, instance_id)?;
    let method: Method = w.register.method.parse().map_err(ApiError::internal)?;
    let mut hooks: Vec<VendorHook> = Vec::new();
    for (object, scope) in wanted {
        let vars = [("scope", scope.as_str()), ("destination", &destination), ("secretHeader", SECRET_HEADER), ("secret", &secret)];
        let body = Bytes::from(render_json(&w.body, &vars)?.to_string());
        let made = async {
            let answer = vendor.send(method.clone(), &w.register.path, &[], Some(body)).await?;
            hook_id(&answer.body, &w.id_pointer)
        };
        match made.await {
            Ok(id) => hooks.push(VendorHook { object: object.clone(), scope: scope.clone(), id }),
            Err(e) => {
                remove(state, def, config, instance_id, &hooks).await;
                let status = if e.status.is_server_error() { e.status } else { StatusCode::BAD_REQUEST };
                let mut err = ApiError::new(status, format!("Registering the vendor webhook for {object} failed: {}", e.message));
                err.provider_message = e.provider_message;
                return Err(err);
            }
        }
    }
    Ok(WebhookRow {
        instance_id: instance_id.unwrap_or_default(),
        element_key: def.key.clone(),
        instance_key,
        secret_hash: hash_secret(&secret),
        hooks,
        destination,
    })
}

/// Removes hooks at the vendor, best effort: one that cannot be removed is logged.
/// Its calls then find no key here (404) and the vendor gives up on it.
pub(crate) async fn remove(
    state: &AppState,
    def: &ElementDefinition,
    config: &BTreeMap<String, String>,
    instance_id: Option<i64>,
    hooks: &[VendorHook],
) {
    if hooks.is_empty() {
        return;
    }
    let removed = async {
        let w = webhooks_of(def)?;
        let vendor = vendor_for(state, def, config, instance_id)?;
        let method: Method = w.remove.method.parse().map_err(ApiError::internal)?;
        for hook in hooks {
            match vendor.send(method.clone(), &hook_path(&w.remove.path, &hook.id)?, &[], None).await {
                Ok(_) => {}
                Err(e) if e.status == StatusCode::NOT_FOUND => {}
                Err(e) => tracing::warn!(element = %def.key, hook = %hook.id, error = %e.message, "removing a vendor webhook failed"),
            }
        }
        Ok::<(), ApiError>(())
    };
    if let Err(e) = removed.await {
        tracing::warn!(element = %def.key, error = %e.message, "removing vendor webhooks failed");
    }
}

/// Checks every instance's hooks at the vendor, every `every`, until `shutdown`.
pub async fn check_hooks(state: AppState, every: std::time::Duration, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut shutdown => return,
        }
        let mended = check_hooks_once(&state).await;
        if mended > 0 {
            tracing::info!(instances = mended, "vendor webhooks turned back on or registered anew");
        }
    }
}

/// Checks every instance's hooks at the vendor once, where the element says how:
/// an inactive hook is turned back on; if one is gone, the instance's hooks are
/// registered anew (a new address and secret) and the old ones removed. Returns
/// how many instances needed mending; failures are logged and left for next time.
pub async fn check_hooks_once(state: &AppState) -> usize {
    let rows = match state.store.webhooks().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading the registered vendor webhooks failed");
            return 0;
        }
    };
    let mut mended = 0;
    for row in rows {
        match check_instance_hooks(state, &row).await {
            Ok(true) => mended += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(instance = row.instance_id, error = %e.message, "checking vendor webhooks failed"),
        }
    }
    mended
}

async fn check_instance_hooks(state: &AppState, row: &WebhookRow) -> Result<bool, ApiError> {
    let Some(instance) = state.store.instance_by_id(row.instance_id).await? else { return Ok(false) };
    let def = crate::hub::element_of(state, &instance)?;
    let Some(check) = def.events.webhooks.as_ref().and_then(|w| w.check.as_ref()) else { return Ok(false) };
    let config = crate::hub::open_configuration(state, &def, &instance).await?;
    let vendor = vendor_for(state, &def, &config, Some(instance.id))?;
    let (read, reactivate): (Method, Method) =
        (check.read.method.parse().map_err(ApiError::internal)?, check.reactivate.method.parse().map_err(ApiError::internal)?);
    let (mut missing, mut mended) = (false, false);
    for hook in &row.hooks {
        match vendor.send(read.clone(), &hook_path(&check.read.path, &hook.id)?, &[], None).await {
            Ok(answer) => {
                let answer: Option<Value> = serde_json::from_slice(&answer.body).ok();
                if answer.as_ref().and_then(|v| v.pointer(&check.active_pointer)).and_then(Value::as_bool) == Some(false) {
                    let body = Bytes::from(check.reactivate_body.to_string());
                    vendor.send(reactivate.clone(), &hook_path(&check.reactivate.path, &hook.id)?, &[], Some(body)).await?;
                    mended = true;
                }
            }
            Err(e) if e.status == StatusCode::NOT_FOUND => missing = true,
            Err(e) => return Err(e),
        }
    }
    if missing {
        let wanted: Vec<(String, String)> = row.hooks.iter().map(|h| (h.object.clone(), h.scope.clone())).collect();
        let fresh = register(state, &def, &config, Some(instance.id), &wanted).await?;
        // Unless the instance changed its hooks meanwhile (then the fresh ones go).
        let stale = if state.store.replace_webhook(&row.instance_key, &fresh).await? { &row.hooks } else { &fresh.hooks };
        remove(state, &def, &config, Some(instance.id), stale).await;
        mended = true;
    }
    Ok(mended)
}

/// A hook call's path: the template's `{id}` filled in as one path segment.
fn hook_path(template: &str, id: &str) -> Result<String, ApiError> {
    let id = crate::segment::encode(id)?;
    switchyard_elements::render(template, |n| (n == "id").then(|| id.as_str().into())).map_err(ApiError::internal)
}

fn webhooks_of(def: &ElementDefinition) -> Result<&Webhooks, ApiError> {
    def.events.webhooks.as_ref().ok_or_else(|| ApiError::internal(format!("element {} has no webhooks", def.key)))
}

fn vendor_for<'a>(
    state: &'a AppState,
    def: &'a ElementDefinition,
    config: &'a BTreeMap<String, String>,
    instance_id: Option<i64>,
) -> Result<Vendor<'a>, ApiError> {
    let vendor = Vendor::new(state, def, config)?;
    Ok(match instance_id {
        Some(id) => vendor.for_instance(id),
        None => vendor,
    })
}

/// The registration body: every string of the template (keys too) rendered over `vars`.
fn render_json(template: &Value, vars: &[(&str, &str)]) -> Result<Value, ApiError> {
    let text = |t: &str| {
        switchyard_elements::render(t, |n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| Cow::Borrowed(*v)))
            .map_err(|e| ApiError::internal(format!("the element's webhook body: {e}")))
    };
    Ok(match template {
        Value::String(s) => Value::String(text(s)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_json(v, vars)).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(text(k)?, render_json(v, vars)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// The hook id in the vendor's answer (a number or a string).
fn hook_id(body: &[u8], pointer: &str) -> Result<String, ApiError> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| ApiError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON"))?;
    match answer.pointer(pointer) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("The vendor's answer has no hook id at {pointer}"))),
    }
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
    responses((status = 200, description = "Stored durably: `{eventId}` (or `{ignored: scope}` for a scope the element does not map)", body = Object),
        (status = 400, description = "Not JSON, or no scope or object id", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or wrong secret header", body = crate::error::ErrorBody),
        (status = 404, description = "No webhook registered at this address", body = crate::error::ErrorBody),
        (status = 503, description = "Not stored; the vendor should call again", body = crate::error::ErrorBody)))]
pub async fn ingest(
    State(state): State<AppState>,
    Path((element_key, instance_key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let unknown = || ApiError::not_found("No webhook is registered at this address");
    let target = state.store.webhook_target(&element_key, &instance_key).await?.ok_or_else(unknown)?;
    let given = headers.get(SECRET_HEADER).map(|v| hash_secret(&String::from_utf8_lossy(v.as_bytes())));
    if given.as_deref() != Some(target.webhook.secret_hash.as_slice()) {
        return Err(ApiError::unauthorized(format!("Missing or wrong {SECRET_HEADER}")));
    }
    let def = state.catalog.get(&element_key).cloned().ok_or_else(unknown)?;
    let w = def.events.webhooks.as_ref().ok_or_else(unknown)?;
    if body.len() > MAX_INCOMING_BODY {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("Webhook calls are at most {MAX_INCOMING_BODY} bytes")));
    }
    let payload: Value = serde_json::from_slice(&body).map_err(|_| bad_request("The webhook body must be JSON"))?;
    let scope = payload.pointer(&w.scope_pointer).and_then(Value::as_str).ok_or_else(|| bad_request(format!("No scope at {}", w.scope_pointer)))?;
    let object_id = match payload.pointer(&w.object_id_pointer) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad_request(format!("No object id at {}", w.object_id_pointer))),
    };
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
    let event_id = event.event_id.clone();
    state.intake.store(&state, event).await?;
    Ok(Json(json!({"eventId": event_id})))
}

/// Stores vendor calls' events as they arrive, as many per durable commit as are
/// waiting (group commit), so the fsync that makes an acknowledgement safe is paid
/// once per batch, not once per call. Started on first use. Cheap to clone.
#[derive(Clone, Default)]
pub struct Intake {
    queue: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

type Pending = (NewEvent, oneshot::Sender<Result<(), String>>);

impl Intake {
    async fn store(&self, state: &AppState, event: NewEvent) -> Result<(), ApiError> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * MAX_COMMIT_BATCH);
            tokio::spawn(commit(state.store.clone(), state.event_waker.clone(), rx));
            tx
        });
        let (done, stored) = oneshot::channel();
        let unavailable = |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("The event was not stored: {why}"));
        queue.send((event, done)).await.map_err(|_| unavailable("the intake stopped".into()))?;
        stored.await.map_err(|_| unavailable("the intake stopped".into()))?.map_err(unavailable)
    }
}

async fn commit(store: Store, waker: switchyard_events::EventWaker, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_COMMIT_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (events, waiting): (Vec<NewEvent>, Vec<_>) = batch.into_iter().unzip();
        let now = switchyard_events::now_ms();
        let stored = match store.insert_events_durably(&events, now).await {
            Ok(()) => vec![Ok(()); events.len()],
            // One bad event (its instance deleted since the lookup) must not fail the
            // others: each is tried on its own, and only the failing ones are refused.
            Err(_) if events.len() > 1 => {
                let mut each = Vec::with_capacity(events.len());
                for event in &events {
                    each.push(store.insert_events_durably(std::slice::from_ref(event), now).await.map_err(|e| e.to_string()));
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

    #[test]
    fn the_registration_body_renders_keys_and_values() {
        let template = json!({"scope": "{scope}", "is_active": true, "headers": {"{secretHeader}": "{secret}"}});
        let body = render_json(&template, &[("scope", "store/order/*"), ("secretHeader", "X-S"), ("secret", "s3")]).unwrap();
        assert_eq!(body, json!({"scope": "store/order/*", "is_active": true, "headers": {"X-S": "s3"}}));
        assert!(render_json(&json!({"a": "{missing}"}), &[]).is_err());
    }

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
        let (good, gone, also_good) = tokio::join!(
            state.intake.store(&state, event(id, org.id)),
            state.intake.store(&state, event(id + 1000, org.id)),
            state.intake.store(&state, event(id, org.id)),
        );
        assert!(good.is_ok() && also_good.is_ok());
        assert_eq!(gone.unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
        let q = switchyard_store::EventQuery { organization_id: org.id, instance_id: Some(id), before: None, offset: 0, limit: 10 };
        assert_eq!(store.events(&q).await.unwrap().len(), 2);
    }

    #[test]
    fn hook_ids_are_numbers_or_strings() {
        assert_eq!(hook_id(br#"{"data":{"id":7}}"#, "/data/id").unwrap(), "7");
        assert_eq!(hook_id(br#"{"data":{"id":"h-1"}}"#, "/data/id").unwrap(), "h-1");
        assert_eq!(hook_id(br#"{"data":{}}"#, "/data/id").unwrap_err().status, StatusCode::BAD_GATEWAY);
        assert_eq!(hook_id(b"<html>", "/data/id").unwrap_err().status, StatusCode::BAD_GATEWAY);
    }
}
