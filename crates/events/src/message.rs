//! The Cloud Elements message body and event ids.

use serde_json::{json, Value};

/// A fresh public event id (a random UUID).
pub fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One entry of `message.events`.
pub fn notified_event(event_type: &str, object_type: &str, object_id: &str, date: &str) -> Value {
    json!({"eventType": event_type, "objectType": object_type, "objectId": object_id, "date": date})
}

/// The body POSTed to the callback:
/// `{"message":{eventId, instanceId, elementKey, events, raw}}`.
///
/// `events` and `raw` are the JSON texts stored with the event (written by this
/// crate from `serde_json` values), spliced in as they are rather than parsed and
/// printed again: every retry sends the same bytes, and the worker does not
/// re-parse large vendor records for each attempt.
pub fn message_body(event_id: &str, instance_id: i64, element_key: &str, events: &str, raw: &str) -> Vec<u8> {
    let id = Value::String(event_id.to_owned());
    let key = Value::String(element_key.to_owned());
    format!(r#"{{"message":{{"eventId":{id},"instanceId":{instance_id},"elementKey":{key},"events":{events},"raw":{raw}}}}}"#)
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_cloud_elements_message() {
        let events = json!([notified_event("CREATED", "orders", "101", "2025-01-01T00:00:00.000Z")]).to_string();
        let raw = json!({"id": 101, "objectType": "orders", "note": "a \"quoted\" }"}).to_string();
        let body = message_body("e-1", 7, "bigcommerce", &events, &raw);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"message": {"eventId": "e-1", "instanceId": 7, "elementKey": "bigcommerce",
                "events": [{"eventType": "CREATED", "objectType": "orders", "objectId": "101", "date": "2025-01-01T00:00:00.000Z"}],
                "raw": {"id": 101, "objectType": "orders", "note": "a \"quoted\" }"}}})
        );
        assert_ne!(new_event_id(), new_event_id());
    }
}
