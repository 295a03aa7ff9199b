//! Instance health messages: `INSTANCE_INVALID` when an instance's credentials stop
//! working (a refresh refused), `INSTANCE_VALID` when they work again. They are
//! events like the others (stored, signed, retried), with `objectType`
//! `instance` and the instance id as `objectId`.

use serde_json::{json, Value};
use switchyard_store::{InstanceRow, NewEvent};

use crate::config::EventConfig;
use crate::message::{new_event_id, notified_event};
use crate::{iso_ms, now_ms, Context, EventWaker, EventsError};

/// Queues a health message for the instance when it has events enabled and a
/// callback URL. Returns the event id, or `None` when nothing was queued.
pub async fn notify_instance_health(
    ctx: &Context,
    instance: &InstanceRow,
    valid: bool,
    reason: Option<&str>,
    waker: Option<&EventWaker>,
) -> Result<Option<String>, EventsError> {
    let def = ctx.catalog.get(&instance.element_key).cloned();
    let cfg = EventConfig::load(ctx, def.as_deref(), instance.id).await?;
    if !cfg.enabled || cfg.callback_url.is_none() {
        return Ok(None);
    }
    let event_type = if valid { "INSTANCE_VALID" } else { "INSTANCE_INVALID" };
    let mut raw = json!({"valid": valid});
    if let Some(reason) = reason {
        raw["reason"] = Value::String(reason.to_owned());
    }
    let provider_data = reason.map(|r| json!({"reason": r}).to_string()).unwrap_or_else(|| "{}".into());
    queue(ctx, instance, event_type, raw, provider_data, waker).await.map(Some)
}

/// Queues `INSTANCE_CREATED` for an instance that has a callback URL, whether or
/// not its events are enabled: the message a Connect session's creator waits for
/// (`callbackUrl`, signed with `signatureKey` like every event). Returns the event
/// id, or `None` when the instance has no callback URL.
pub async fn notify_instance_created(ctx: &Context, instance: &InstanceRow, waker: Option<&EventWaker>) -> Result<Option<String>, EventsError> {
    let def = ctx.catalog.get(&instance.element_key).cloned();
    let cfg = EventConfig::load(ctx, def.as_deref(), instance.id).await?;
    if cfg.callback_url.is_none() {
        return Ok(None);
    }
    let raw = json!({"valid": instance.valid, "tags": instance.tags});
    queue(ctx, instance, "INSTANCE_CREATED", raw, "{}".into(), waker).await.map(Some)
}

/// Stores one message about the instance itself (`objectType` `instance`, the
/// instance id as `objectId`), `raw` being the fields beside id, name and element.
async fn queue(
    ctx: &Context,
    instance: &InstanceRow,
    event_type: &str,
    extra: Value,
    provider_data: String,
    waker: Option<&EventWaker>,
) -> Result<String, EventsError> {
    let now = now_ms();
    let id = instance.id.to_string();
    let mut raw = json!({"id": instance.id, "name": instance.name, "elementKey": instance.element_key});
    if let (Some(raw), Value::Object(extra)) = (raw.as_object_mut(), extra) {
        raw.extend(extra);
    }
    raw["objectType"] = json!("instance");
    let event_id = new_event_id();
    let event = NewEvent {
        event_id: event_id.clone(),
        organization_id: instance.organization_id,
        instance_id: instance.id,
        element_key: instance.element_key.clone(),
        source: "instance".into(),
        status: "NEW".into(),
        event_date: iso_ms(now),
        provider_data,
        notified_data: Value::Array(vec![notified_event(event_type, "instance", &id, &iso_ms(now))]).to_string(),
        raw: raw.to_string(),
    };
    ctx.store.insert_events(&[event], now).await?;
    if let Some(w) = waker {
        w.wake();
    }
    Ok(event_id)
}

/// Hears the engine's instance health changes and queues the message for each
/// (see [`notify_instance_health`]); the delivery worker is woken by `waker`.
pub struct HealthNotifier {
    ctx: Context,
    waker: EventWaker,
}

impl HealthNotifier {
    pub fn new(ctx: Context, waker: EventWaker) -> HealthNotifier {
        HealthNotifier { ctx, waker }
    }
}

impl switchyard_engine::HealthListener for HealthNotifier {
    fn instance_health(&self, instance_id: i64, valid: bool, words: Option<String>) -> futures::future::BoxFuture<'static, ()> {
        let (ctx, waker) = (self.ctx.clone(), self.waker.clone());
        Box::pin(async move {
            // The instance's state has changed whatever happens here: a failure is logged.
            let sent = match ctx.store.instance_by_id(instance_id).await {
                Ok(Some(row)) => notify_instance_health(&ctx, &row, valid, words.as_deref(), Some(&waker)).await.map(|_| ()).map_err(|e| e.to_string()),
                Ok(None) => Ok(()), // deleted meanwhile: nobody to tell
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = sent {
                let message = if valid { "INSTANCE_VALID" } else { "INSTANCE_INVALID" };
                tracing::warn!(instance_id, error = %e, "could not queue the {message} message");
            }
        })
    }
}
