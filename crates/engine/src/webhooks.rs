//! Vendor webhooks: one hook per watched resource is registered at the vendor when
//! an instance's events are on with `event.vendor.type=webhook`, and removed when
//! they go off or the instance is deleted; the vendor's calls arrive at the
//! server's `POST /elements/api-v2/events/{elementKey}/{instanceKey}`.
//!
//! The element's data says how (`events.webhooks`, see elements/README.md). The
//! `instanceKey` is random (not the id, not the token), and each registration asks
//! the vendor to echo a random secret in [`SECRET_HEADER`]; only its hash is kept.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;
use switchyard_elements::event_keys::{ENABLED, OBJECTS, VENDOR_TYPE};
use switchyard_elements::{ElementDefinition, Webhooks};
use switchyard_store::{VendorHook, WebhookRow};

use crate::secret::{hash_secret, new_secret};
use crate::vendor::Vendor;
use crate::{Engine, EngineError};

/// The header every vendor call must carry, with the value given at registration.
pub const SECRET_HEADER: &str = "X-Switchyard-Webhook-Secret";

fn bad_request(message: impl Into<String>) -> EngineError {
    EngineError::bad_request(message)
}

/// The resources an instance with this configuration wants hooks for, with the
/// vendor scope of each: none unless events are on with `event.vendor.type=webhook`.
/// A request the element or the instance's mode cannot honour is a 400.
pub fn wanted(def: &ElementDefinition, config: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, EngineError> {
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
pub fn serves(current: Option<&WebhookRow>, wanted: &[(String, String)], engine: &Engine, def: &ElementDefinition) -> bool {
    match current {
        None => wanted.is_empty(),
        Some(row) => {
            let mut have: Vec<(&str, &str)> = row.hooks.iter().map(|h| (h.object.as_str(), h.scope.as_str())).collect();
            let mut want: Vec<(&str, &str)> = wanted.iter().map(|(o, s)| (o.as_str(), s.as_str())).collect();
            have.sort_unstable();
            want.sort_unstable();
            have == want && row.destination.starts_with(&destination_base(engine, def))
        }
    }
}

fn destination_base(engine: &Engine, def: &ElementDefinition) -> String {
    format!("{}/elements/api-v2/events/{}/", engine.public_url.trim_end_matches('/'), def.key)
}

/// Registers one hook per wanted resource. If one fails, those made are removed
/// and the vendor's refusal is the answer: nothing stays registered.
pub async fn register(
    engine: &Engine,
    def: &ElementDefinition,
    config: &BTreeMap<String, String>,
    instance_id: Option<i64>,
    wanted: &[(String, String)],
) -> Result<WebhookRow, EngineError> {
    let w = webhooks_of(def)?;
    let instance_key = new_secret();
    let secret = new_secret();
    let destination = format!("{}{instance_key}", destination_base(engine, def));
    let vendor = vendor_for(engine, def, config, instance_id)?;
    let method: Method = w.register.method.parse().map_err(EngineError::internal)?;
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
                remove(engine, def, config, instance_id, &hooks).await;
                let status = if e.status.is_server_error() { e.status } else { StatusCode::BAD_REQUEST };
                let mut err = EngineError::new(status, format!("Registering the vendor webhook for {object} failed: {}", e.message));
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
pub async fn remove(
    engine: &Engine,
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
        let vendor = vendor_for(engine, def, config, instance_id)?;
        let method: Method = w.remove.method.parse().map_err(EngineError::internal)?;
        for hook in hooks {
            match vendor.send(method.clone(), &hook_path(&w.remove.path, &hook.id)?, &[], None).await {
                Ok(_) => {}
                Err(e) if e.status == StatusCode::NOT_FOUND => {}
                Err(e) => tracing::warn!(element = %def.key, hook = %hook.id, error = %e.message, "removing a vendor webhook failed"),
            }
        }
        Ok::<(), EngineError>(())
    };
    if let Err(e) = removed.await {
        tracing::warn!(element = %def.key, error = %e.message, "removing vendor webhooks failed");
    }
}

/// The lease that lets one server process per period check every instance's hooks.
pub const CHECK_LEASE: &str = "webhooks.check";
/// How long a node may hold an instance's hooks: longer than any registration
/// (its vendor calls time out sooner), so only a dead holder ever runs it out.
const INSTANCE_LEASE_MS: i64 = 5 * 60_000;
/// How long a change of an instance waits for another node's hold on its hooks.
const INSTANCE_LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn instance_lease(instance_id: i64) -> String {
    format!("webhooks:{instance_id}")
}

/// One node's hold on an instance's hooks, so that of all server processes on
/// the database only one registers, checks or removes them at a time. Dropping
/// it gives the lease back (in the background).
pub struct HooksHeld {
    store: switchyard_store::Store,
    name: String,
}

impl Drop for HooksHeld {
    fn drop(&mut self) {
        let (store, name) = (self.store.clone(), std::mem::take(&mut self.name));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.release_lease(&name).await {
                    tracing::warn!(lease = %name, error = %e, "giving a webhook lease back failed; it runs out by itself");
                }
            });
        }
    }
}

/// Takes the hold on an instance's hooks if no other node has it.
pub async fn try_hold(engine: &Engine, instance_id: i64) -> Result<Option<HooksHeld>, EngineError> {
    let name = instance_lease(instance_id);
    let now = chrono::Utc::now().timestamp_millis();
    Ok(engine
        .store
        .take_lease(&name, now, now + INSTANCE_LEASE_MS)
        .await?
        .then(|| HooksHeld { store: engine.store.clone(), name }))
}

/// Takes the hold on an instance's hooks, waiting a few seconds for another
/// node's to end; a 409 when it does not.
pub async fn hold(engine: &Engine, instance_id: i64) -> Result<HooksHeld, EngineError> {
    let deadline = tokio::time::Instant::now() + INSTANCE_LEASE_WAIT;
    loop {
        if let Some(held) = try_hold(engine, instance_id).await? {
            return Ok(held);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(EngineError::new(
                StatusCode::CONFLICT,
                "The instance's vendor webhooks are being changed by another request; try again",
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Checks every instance's hooks at the vendor, every `every`, until `shutdown`,
/// in the periods this node holds the [`CHECK_LEASE`] for (kept for the period:
/// the other nodes skip it).
pub async fn check_hooks(engine: Engine, every: std::time::Duration, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut shutdown => return,
        }
        let now = chrono::Utc::now().timestamp_millis();
        match engine.store.take_lease(CHECK_LEASE, now, now + every.as_millis() as i64).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "taking the webhook check lease failed; trying again next period");
                continue;
            }
        }
        let mended = check_hooks_once(&engine).await;
        if mended > 0 {
            tracing::info!(instances = mended, "vendor webhooks turned back on or registered anew");
        }
    }
}

/// Checks every instance's hooks at the vendor once, where the element says how:
/// an inactive hook is turned back on; if one is gone, the instance's hooks are
/// registered anew (a new address and secret) and the old ones removed. Returns
/// how many instances needed mending; failures are logged and left for next time.
/// An instance whose hooks another node holds (a change under way) is skipped.
pub async fn check_hooks_once(engine: &Engine) -> usize {
    let rows = match engine.store.webhooks().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading the registered vendor webhooks failed");
            return 0;
        }
    };
    let mut mended = 0;
    for row in rows {
        let _held = match try_hold(engine, row.instance_id).await {
            Ok(Some(held)) => held,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(instance = row.instance_id, error = %e.message, "taking the webhook lease failed");
                continue;
            }
        };
        // Read again under the hold: a change may have replaced them meanwhile.
        let row = match engine.store.webhook(row.instance_id).await {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(instance = row.instance_id, error = %e, "reading the instance's vendor webhooks failed");
                continue;
            }
        };
        match check_instance_hooks(engine, &row).await {
            Ok(true) => mended += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(instance = row.instance_id, error = %e.message, "checking vendor webhooks failed"),
        }
    }
    mended
}

async fn check_instance_hooks(engine: &Engine, row: &WebhookRow) -> Result<bool, EngineError> {
    let Some(instance) = engine.store.instance_by_id(row.instance_id).await? else { return Ok(false) };
    let def = engine.element_of(&instance)?;
    let Some(check) = def.events.webhooks.as_ref().and_then(|w| w.check.as_ref()) else { return Ok(false) };
    let config = engine.open_configuration(&def, &instance).await?;
    let vendor = vendor_for(engine, &def, &config, Some(instance.id))?;
    let (read, reactivate): (Method, Method) =
        (check.read.method.parse().map_err(EngineError::internal)?, check.reactivate.method.parse().map_err(EngineError::internal)?);
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
        let fresh = register(engine, &def, &config, Some(instance.id), &wanted).await?;
        // Unless the instance changed its hooks meanwhile (then the fresh ones go).
        let stale = if engine.store.replace_webhook(&row.instance_key, &fresh).await? { &row.hooks } else { &fresh.hooks };
        remove(engine, &def, &config, Some(instance.id), stale).await;
        mended = true;
    }
    Ok(mended)
}

/// A hook call's path: the template's `{id}` filled in as one path segment.
fn hook_path(template: &str, id: &str) -> Result<String, EngineError> {
    let id = crate::segment::encode(id)?;
    switchyard_elements::render(template, |n| (n == "id").then(|| id.as_str().into())).map_err(EngineError::internal)
}

fn webhooks_of(def: &ElementDefinition) -> Result<&Webhooks, EngineError> {
    def.events.webhooks.as_ref().ok_or_else(|| EngineError::internal(format!("element {} has no webhooks", def.key)))
}

fn vendor_for<'a>(
    engine: &'a Engine,
    def: &'a ElementDefinition,
    config: &'a BTreeMap<String, String>,
    instance_id: Option<i64>,
) -> Result<Vendor<'a>, EngineError> {
    let vendor = Vendor::new(engine, def, config)?;
    let vendor = match instance_id {
        Some(id) => vendor.for_instance(id),
        None => vendor,
    };
    // Hooks may live beside the main API (BigCommerce's v3 beside v2).
    vendor.on_base(def.events.webhooks.as_ref().and_then(|w| w.base.as_deref()))
}

/// The registration body: every string of the template (keys too) rendered over `vars`.
fn render_json(template: &Value, vars: &[(&str, &str)]) -> Result<Value, EngineError> {
    let text = |t: &str| {
        switchyard_elements::render(t, |n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| Cow::Borrowed(*v)))
            .map_err(|e| EngineError::internal(format!("the element's webhook body: {e}")))
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
fn hook_id(body: &[u8], pointer: &str) -> Result<String, EngineError> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| EngineError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON"))?;
    match answer.pointer(pointer) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(EngineError::new(StatusCode::BAD_GATEWAY, format!("The vendor's answer has no hook id at {pointer}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_registration_body_renders_keys_and_values() {
        let template = json!({"scope": "{scope}", "is_active": true, "headers": {"{secretHeader}": "{secret}"}});
        let body = render_json(&template, &[("scope", "store/order/*"), ("secretHeader", "X-S"), ("secret", "s3")]).unwrap();
        assert_eq!(body, json!({"scope": "store/order/*", "is_active": true, "headers": {"X-S": "s3"}}));
        assert!(render_json(&json!({"a": "{missing}"}), &[]).is_err());
    }

    #[test]
    fn hook_ids_are_numbers_or_strings() {
        assert_eq!(hook_id(br#"{"data":{"id":7}}"#, "/data/id").unwrap(), "7");
        assert_eq!(hook_id(br#"{"data":{"id":"h-1"}}"#, "/data/id").unwrap(), "h-1");
        assert_eq!(hook_id(br#"{"data":{}}"#, "/data/id").unwrap_err().status, StatusCode::BAD_GATEWAY);
        assert_eq!(hook_id(br#"{"data":{"id":""}}"#, "/data/id").unwrap_err().status, StatusCode::BAD_GATEWAY, "an empty id names no hook");
        assert_eq!(hook_id(b"<html>", "/data/id").unwrap_err().status, StatusCode::BAD_GATEWAY);
    }
}
