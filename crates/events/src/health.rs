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
    let now = now_ms();
    let event_type = if valid { "INSTANCE_VALID" } else { "INSTANCE_INVALID" };
    let id = instance.id.to_string();
    let mut raw = json!({
        "id": instance.id,
        "name": instance.name,
        "elementKey": instance.element_key,
        "valid": valid,
        "objectType": "instance",
    });
    if let Some(reason) = reason {
        raw["reason"] = Value::String(reason.to_owned());
    }
    let event_id = new_event_id();
    let event = NewEvent {
        event_id: event_id.clone(),
        organization_id: instance.organization_id,
        instance_id: instance.id,
        element_key: instance.element_key.clone(),
        source: "instance".into(),
        status: "NEW".into(),
        event_date: iso_ms(now),
        provider_data: reason.map(|r| json!({"reason": r}).to_string()).unwrap_or_else(|| "{}".into()),
        notified_data: Value::Array(vec![notified_event(event_type, "instance", &id, &iso_ms(now))]).to_string(),
        raw: raw.to_string(),
    };
    ctx.store.insert_events(&[event], now).await?;
    if let Some(w) = waker {
        w.wake();
    }
    Ok(Some(event_id))
}
