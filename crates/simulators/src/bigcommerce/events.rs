//! What a write through the v2 API tells the store's webhooks: one event per order,
//! product or customer it created, changed or removed. Handlers collect them under the
//! data lock ([`super::data::StoreData::emit`]); the transport fires them after answering.

use serde_json::{json, Value};

pub(crate) const ORDER_CREATED: &str = "store/order/created";
pub(crate) const ORDER_UPDATED: &str = "store/order/updated";
pub(crate) const ORDER_ARCHIVED: &str = "store/order/archived";
pub(crate) const ORDER_STATUS_UPDATED: &str = "store/order/statusUpdated";
pub(crate) const PRODUCT_CREATED: &str = "store/product/created";
pub(crate) const PRODUCT_UPDATED: &str = "store/product/updated";
pub(crate) const PRODUCT_DELETED: &str = "store/product/deleted";
pub(crate) const CUSTOMER_CREATED: &str = "store/customer/created";
pub(crate) const CUSTOMER_UPDATED: &str = "store/customer/updated";
pub(crate) const CUSTOMER_DELETED: &str = "store/customer/deleted";

/// The scopes a hook may subscribe to: the events above and their wildcards.
pub(crate) const SCOPES: [&str; 13] = [
    "store/order/*",
    ORDER_CREATED,
    ORDER_UPDATED,
    ORDER_ARCHIVED,
    ORDER_STATUS_UPDATED,
    "store/product/*",
    PRODUCT_CREATED,
    PRODUCT_UPDATED,
    PRODUCT_DELETED,
    "store/customer/*",
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    CUSTOMER_DELETED,
];

/// One change, as the payload's `scope` and `data` will tell it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Event {
    pub(crate) scope: &'static str,
    pub(crate) id: u64,
    /// `store/order/statusUpdated` only: the previous and the new status id.
    pub(crate) status: Option<(i64, i64)>,
}

impl Event {
    pub(crate) fn new(scope: &'static str, id: u64) -> Self {
        Event { scope, id, status: None }
    }

    /// The payload's `data`: `{"type": "order", "id": 250}`, plus `status` for a status change.
    pub(crate) fn data(&self) -> Value {
        let kind = self.scope.split('/').nth(1).unwrap_or("");
        let mut data = json!({ "type": kind, "id": self.id });
        if let Some((previous, new)) = self.status {
            data["status"] = json!({ "previous_status_id": previous, "new_status_id": new });
        }
        data
    }

    /// Whether a hook subscribed to `scope` gets this event (`store/order/*` takes every
    /// order event).
    pub(crate) fn matches(&self, scope: &str) -> bool {
        match scope.strip_suffix('*') {
            Some(prefix) => self.scope.starts_with(prefix),
            None => self.scope == scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_wildcards() {
        let e = Event { scope: ORDER_STATUS_UPDATED, id: 250, status: Some((1, 11)) };
        assert_eq!(e.data(), json!({"type": "order", "id": 250, "status": {"previous_status_id": 1, "new_status_id": 11}}));
        assert!(e.matches("store/order/*"));
        assert!(e.matches(ORDER_STATUS_UPDATED));
        assert!(!e.matches(ORDER_UPDATED));
        assert!(!e.matches("store/product/*"));
        assert_eq!(Event::new(CUSTOMER_DELETED, 7).data(), json!({"type": "customer", "id": 7}));
    }
}
