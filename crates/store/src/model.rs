//! Rows as the store reads and writes them.

use sqlx::{FromRow, Row};

/// Implements `FromRow` for a row of each backend with one body.
macro_rules! from_row_on_both {
    ($t:ty, |$row:ident| $body:expr) => {
        impl ::sqlx::FromRow<'_, ::sqlx::sqlite::SqliteRow> for $t {
            fn from_row($row: &::sqlx::sqlite::SqliteRow) -> ::sqlx::Result<Self> {
                $body
            }
        }
        impl ::sqlx::FromRow<'_, ::sqlx::postgres::PgRow> for $t {
            fn from_row($row: &::sqlx::postgres::PgRow) -> ::sqlx::Result<Self> {
                $body
            }
        }
    };
}
pub(crate) use from_row_on_both;

#[derive(Debug, Clone, FromRow)]
pub struct Organization {
    pub id: i64,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: i64,
    pub organization_id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub created_at: String,
}

/// An authenticated platform caller.
#[derive(Debug, Clone, FromRow)]
pub struct Caller {
    pub user_id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub organization_id: i64,
}

#[derive(Debug, Clone)]
pub struct NewInstance {
    pub organization_id: i64,
    pub user_id: i64,
    pub element_key: String,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub tags: Vec<String>,
    pub events_enabled: bool,
    /// Vendor webhooks registered for it, stored in the same transaction.
    pub webhook: Option<crate::WebhookRow>,
}

/// Fields of an instance to change; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct InstanceUpdate {
    pub name: Option<String>,
    pub tags: Option<Vec<String>>,
    pub events_enabled: Option<bool>,
    pub valid: Option<bool>,
    /// `Some(None)` removes the instance's webhook row, `Some(Some(_))` replaces it.
    pub webhook: Option<Option<crate::WebhookRow>>,
    /// Forget the account's time zone, so it is read again (new credentials may
    /// name another account).
    pub forget_account_zone: bool,
}

#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: i64,
    pub organization_id: i64,
    pub user_id: i64,
    pub element_key: String,
    pub name: String,
    pub tags: Vec<String>,
    pub valid: bool,
    pub disabled: bool,
    pub events_enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The vendor account's time zone as the vendor named it (`America/New_York`),
    /// once read; see `Store::set_account_zone`.
    pub account_zone: Option<String>,
}

from_row_on_both!(InstanceRow, |row| {
    let tags: String = row.try_get("tags")?;
    Ok(InstanceRow {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        user_id: row.try_get("user_id")?,
        element_key: row.try_get("element_key")?,
        name: row.try_get("name")?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        valid: row.try_get("valid")?,
        disabled: row.try_get("disabled")?,
        events_enabled: row.try_get("events_enabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        account_zone: row.try_get("account_zone")?,
    })
});

/// One stored configuration value; exactly one of `value` and `secret` is set.
#[derive(Clone, FromRow)]
pub struct ConfigRow {
    pub id: i64,
    pub key: String,
    pub value: Option<String>,
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for ConfigRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigRow")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("secret", &self.secret.as_ref().map(|_| "sealed"))
            .finish()
    }
}

/// A sealed configuration row, as key rotation reads it.
#[derive(Debug, Clone, FromRow)]
pub struct SealedRow {
    pub id: i64,
    pub instance_id: i64,
    pub key: String,
    pub secret: Vec<u8>,
}
