//! Connect sessions (`/elements/api-v2/connect/sessions`, the `/connect/{token}`
//! page) and the single-use OAuth `state` references of the console and the
//! Connect page. Tokens and states are kept as SHA-256 hashes; secrets as vault
//! blobs sealed by the caller. Status changes are single statements, so the token
//! is single-use across nodes.

use sqlx::Row;

use crate::model::from_row_on_both;
use crate::{on_pool, on_tx, Result, Store};

/// How long an expired Connect session is kept (so its creator can still read
/// the outcome) before [`Store::create_connect_session`] deletes it.
pub const CONNECT_SESSION_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

/// The associated data that binds a Connect session's sealed signature key and
/// preset configuration to the session (its token hash is unique), so a blob
/// copied to another row fails to open.
pub fn connect_session_aad(token_hash: &[u8]) -> Vec<u8> {
    let mut aad = b"connect-session:".to_vec();
    aad.extend_from_slice(token_hash);
    aad
}

/// The associated data that binds an OAuth state's sealed payload to its state hash.
pub fn oauth_state_aad(state_hash: &[u8]) -> Vec<u8> {
    let mut aad = b"oauth-state:".to_vec();
    aad.extend_from_slice(state_hash);
    aad
}

/// A Connect session on its way into the store (it starts `pending`).
#[derive(Clone)]
pub struct NewConnectSession {
    pub organization_id: i64,
    pub user_id: i64,
    /// SHA-256 of the URL token.
    pub token_hash: Vec<u8>,
    pub elements: Vec<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub redirect_url: Option<String>,
    pub callback_url: Option<String>,
    /// Vault blobs bound by [`connect_session_aad`], and the key that sealed them.
    pub signature_key_sealed: Option<Vec<u8>>,
    pub configuration_sealed: Option<Vec<u8>>,
    pub key_id: Option<u32>,
    /// Unix ms.
    pub created_at: i64,
    pub expires_at: i64,
}

/// A stored Connect session. `status` is as stored: 'pending', 'claimed',
/// 'completed' or 'failed' (see [`ConnectSessionRow::reported_status`]).
#[derive(Debug, Clone)]
pub struct ConnectSessionRow {
    pub id: i64,
    pub organization_id: i64,
    pub user_id: i64,
    pub elements: Vec<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub redirect_url: Option<String>,
    pub callback_url: Option<String>,
    pub signature_key_sealed: Option<Vec<u8>>,
    pub configuration_sealed: Option<Vec<u8>>,
    pub key_id: Option<u32>,
    pub status: String,
    pub instance_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub finished_at: Option<i64>,
}

impl ConnectSessionRow {
    /// 'pending'|'completed'|'failed'|'expired' as the API reports it: 'claimed'
    /// reads 'pending'; pending/claimed past expires_at read 'expired'.
    pub fn reported_status(&self, now_ms: i64) -> &'static str {
        match self.status.as_str() {
            "completed" => "completed",
            "failed" => "failed",
            _ if now_ms >= self.expires_at => "expired",
            _ => "pending",
        }
    }
}

fn json_strings(text: &str) -> sqlx::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn key_id(id: Option<i64>) -> sqlx::Result<Option<u32>> {
    id.map(u32::try_from).transpose().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

from_row_on_both!(ConnectSessionRow, |row| {
    Ok(ConnectSessionRow {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        user_id: row.try_get("user_id")?,
        elements: json_strings(row.try_get("elements")?)?,
        name: row.try_get("name")?,
        tags: json_strings(row.try_get("tags")?)?,
        redirect_url: row.try_get("redirect_url")?,
        callback_url: row.try_get("callback_url")?,
        signature_key_sealed: row.try_get("signature_key_sealed")?,
        configuration_sealed: row.try_get("configuration_sealed")?,
        key_id: key_id(row.try_get("key_id")?)?,
        status: row.try_get("status")?,
        instance_id: row.try_get("instance_id")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        finished_at: row.try_get("finished_at")?,
    })
});

const SESSION_COLUMNS: &str = "id, organization_id, user_id, elements, name, tags, redirect_url, callback_url, \
     signature_key_sealed, configuration_sealed, key_id, status, instance_id, error, created_at, expires_at, finished_at";

/// An OAuth authorization in flight: what the vendor's redirect back finishes.
#[derive(Clone)]
pub struct NewOAuthState {
    /// SHA-256 of the `state` sent to the vendor.
    pub state_hash: Vec<u8>,
    pub organization_id: i64,
    pub user_id: i64,
    /// 'console-create', 'console-reauthorize' or 'connect'.
    pub purpose: String,
    pub element_key: String,
    pub instance_id: Option<i64>,
    pub connect_session_id: Option<i64>,
    /// Vault blob bound by [`oauth_state_aad`], and the key that sealed it.
    pub payload_sealed: Vec<u8>,
    pub key_id: u32,
    /// Unix ms.
    pub created_at: i64,
    pub expires_at: i64,
}

/// A stored OAuth state (see [`NewOAuthState`]).
#[derive(Debug, Clone)]
pub struct OAuthStateRow {
    pub state_hash: Vec<u8>,
    pub organization_id: i64,
    pub user_id: i64,
    pub purpose: String,
    pub element_key: String,
    pub instance_id: Option<i64>,
    pub connect_session_id: Option<i64>,
    pub payload_sealed: Vec<u8>,
    pub key_id: u32,
    pub created_at: i64,
    pub expires_at: i64,
}

from_row_on_both!(OAuthStateRow, |row| {
    Ok(OAuthStateRow {
        state_hash: row.try_get("state_hash")?,
        organization_id: row.try_get("organization_id")?,
        user_id: row.try_get("user_id")?,
        purpose: row.try_get("purpose")?,
        element_key: row.try_get("element_key")?,
        instance_id: row.try_get("instance_id")?,
        connect_session_id: row.try_get("connect_session_id")?,
        payload_sealed: row.try_get("payload_sealed")?,
        key_id: key_id(Some(row.try_get("key_id")?))?.unwrap_or_default(),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
});

/// A sealed blob of a Connect session or OAuth state, as key rotation reads it:
/// re-encrypt `sealed` with `aad` and hand it back to [`Store::reseal_connect_blobs`].
#[derive(Clone)]
pub struct SealedConnectBlob {
    pub kind: ConnectBlob,
    /// The session's token hash or the state's hash.
    pub hash: Vec<u8>,
    pub sealed: Vec<u8>,
    /// The associated data the blob is bound to.
    pub aad: Vec<u8>,
}

/// A session's token hash, sealed signature key and sealed configuration.
type SessionBlobs = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Which sealed column a [`SealedConnectBlob`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectBlob {
    SessionSignatureKey,
    SessionConfiguration,
    OAuthStatePayload,
}

impl Store {
    /// Stores a new `pending` Connect session; its id. Also deletes sessions
    /// expired more than [`CONNECT_SESSION_KEPT_MS`] ago (bounded storage).
    pub async fn create_connect_session(&self, s: &NewConnectSession) -> Result<i64> {
        let elements = serde_json::to_string(&s.elements).unwrap_or_else(|_| "[]".into());
        let tags = serde_json::to_string(&s.tags).unwrap_or_else(|_| "[]".into());
        let mut tx = self.begin().await?;
        let id: i64 = on_tx!(&mut tx, |c, pg| {
            sqlx::query("DELETE FROM connect_sessions WHERE expires_at < $1")
                .bind(s.created_at - CONNECT_SESSION_KEPT_MS)
                .execute(&mut *c)
                .await?;
            sqlx::query_scalar(
                "INSERT INTO connect_sessions (token_hash, organization_id, user_id, elements, name, tags, redirect_url,
                   callback_url, signature_key_sealed, configuration_sealed, key_id, status, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13) RETURNING id",
            )
            .bind(&s.token_hash)
            .bind(s.organization_id)
            .bind(s.user_id)
            .bind(&elements)
            .bind(&s.name)
            .bind(&tags)
            .bind(&s.redirect_url)
            .bind(&s.callback_url)
            .bind(&s.signature_key_sealed)
            .bind(&s.configuration_sealed)
            .bind(s.key_id.map(i64::from))
            .bind(s.created_at)
            .bind(s.expires_at)
            .fetch_one(&mut *c)
            .await?
        });
        tx.commit().await?;
        Ok(id)
    }

    /// The organization's Connect session `id`, if any.
    pub async fn connect_session(&self, organization_id: i64, id: i64) -> Result<Option<ConnectSessionRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("SELECT {SESSION_COLUMNS} FROM connect_sessions WHERE id = $1 AND organization_id = $2"))
                .bind(id)
                .bind(organization_id)
                .fetch_optional(p)
                .await?
        }))
    }

    /// The Connect session whose URL token hashes to `token_hash`, whatever its status.
    pub async fn connect_session_by_token(&self, token_hash: &[u8]) -> Result<Option<ConnectSessionRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("SELECT {SESSION_COLUMNS} FROM connect_sessions WHERE token_hash = $1"))
                .bind(token_hash)
                .fetch_optional(p)
                .await?
        }))
    }

    /// pending and unexpired -> claimed, atomically (one UPDATE ... WHERE
    /// status='pending' AND expires_at > now); false otherwise. Makes the token
    /// single-use across nodes.
    pub async fn claim_connect_session(&self, id: i64, now: i64) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query("UPDATE connect_sessions SET status = 'claimed' WHERE id = $1 AND status = 'pending' AND expires_at > $2")
                .bind(id)
                .bind(now)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// claimed -> pending with `error` recorded (the vendor refused; the customer
    /// may try again until expiry). Nothing happens to a session not claimed.
    pub async fn release_connect_session(&self, id: i64, error: &str) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query("UPDATE connect_sessions SET status = 'pending', error = $2 WHERE id = $1 AND status = 'claimed'")
                .bind(id)
                .bind(error)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// claimed -> completed with the instance id, finished_at = now, error
    /// cleared; false if not claimed.
    pub async fn complete_connect_session(&self, id: i64, instance_id: i64, now: i64) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query(
                "UPDATE connect_sessions SET status = 'completed', instance_id = $2, finished_at = $3, error = NULL
                 WHERE id = $1 AND status = 'claimed'",
            )
            .bind(id)
            .bind(instance_id)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// pending (and unexpired) -> failed with error, finished_at = now; false
    /// otherwise. A claimed session is not failed: an instance is being made for
    /// it, and its outcome is what the session reports.
    pub async fn fail_connect_session(&self, id: i64, error: &str, now: i64) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query(
                "UPDATE connect_sessions SET status = 'failed', error = $2, finished_at = $3
                 WHERE id = $1 AND status = 'pending' AND expires_at > $3",
            )
            .bind(id)
            .bind(error)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// Stores an OAuth state; also deletes the expired ones (as of `s.created_at`).
    pub async fn create_oauth_state(&self, s: &NewOAuthState) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |c, pg| {
            sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1").bind(s.created_at).execute(&mut *c).await?;
            sqlx::query(
                "INSERT INTO oauth_states (state_hash, organization_id, user_id, purpose, element_key, instance_id,
                   connect_session_id, payload_sealed, key_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&s.state_hash)
            .bind(s.organization_id)
            .bind(s.user_id)
            .bind(&s.purpose)
            .bind(&s.element_key)
            .bind(s.instance_id)
            .bind(s.connect_session_id)
            .bind(&s.payload_sealed)
            .bind(i64::from(s.key_id))
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&mut *c)
            .await?;
        });
        tx.commit().await?;
        Ok(())
    }

    /// Deletes and returns the state if it exists and is unexpired (single use:
    /// of two concurrent takes, one gets it).
    pub async fn take_oauth_state(&self, state_hash: &[u8], now: i64) -> Result<Option<OAuthStateRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(
                "DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > $2
                 RETURNING state_hash, organization_id, user_id, purpose, element_key, instance_id, connect_session_id,
                   payload_sealed, key_id, created_at, expires_at",
            )
            .bind(state_hash)
            .bind(now)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Up to `limit` sealed Connect session and OAuth state blobs whose key is
    /// not `current_key_id` (sessions first).
    pub async fn sealed_connect_blobs_not_under(&self, current_key_id: u32, limit: i64) -> Result<Vec<SealedConnectBlob>> {
        let current = i64::from(current_key_id);
        let sessions: Vec<SessionBlobs> = on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT token_hash, signature_key_sealed, configuration_sealed FROM connect_sessions
                 WHERE key_id IS NOT NULL AND key_id <> $1
                   AND (signature_key_sealed IS NOT NULL OR configuration_sealed IS NOT NULL)
                 ORDER BY id LIMIT $2",
            )
            .bind(current)
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        let mut found = Vec::new();
        for (hash, signature_key, configuration) in sessions {
            for (kind, sealed) in [(ConnectBlob::SessionSignatureKey, signature_key), (ConnectBlob::SessionConfiguration, configuration)] {
                if let Some(sealed) = sealed {
                    found.push(SealedConnectBlob { kind, aad: connect_session_aad(&hash), hash: hash.clone(), sealed });
                }
            }
        }
        let left = limit - found.len() as i64;
        if left > 0 {
            let states: Vec<(Vec<u8>, Vec<u8>)> = on_pool!(self, |p, pg| {
                sqlx::query_as("SELECT state_hash, payload_sealed FROM oauth_states WHERE key_id <> $1 ORDER BY state_hash LIMIT $2")
                    .bind(current)
                    .bind(left)
                    .fetch_all(p)
                    .await?
            });
            found.extend(states.into_iter().map(|(hash, sealed)| SealedConnectBlob {
                kind: ConnectBlob::OAuthStatePayload,
                aad: oauth_state_aad(&hash),
                hash,
                sealed,
            }));
        }
        Ok(found)
    }

    /// Replaces sealed Connect blobs in one transaction (a session's two blobs
    /// share one key id, so both are written there); a blob that changed since it
    /// was read is left alone. Returns how many blobs were rewritten.
    pub async fn reseal_connect_blobs(&self, rows: &[(SealedConnectBlob, Vec<u8>, u32)]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut changed = 0;
        for (row, blob, key) in rows {
            let (table, column, hash_column) = match row.kind {
                ConnectBlob::SessionSignatureKey => ("connect_sessions", "signature_key_sealed", "token_hash"),
                ConnectBlob::SessionConfiguration => ("connect_sessions", "configuration_sealed", "token_hash"),
                ConnectBlob::OAuthStatePayload => ("oauth_states", "payload_sealed", "state_hash"),
            };
            changed += on_tx!(&mut tx, |c, pg| {
                sqlx::query(&format!("UPDATE {table} SET {column} = $1, key_id = $2 WHERE {hash_column} = $3 AND {column} = $4"))
                    .bind(blob)
                    .bind(i64::from(*key))
                    .bind(&row.hash)
                    .bind(&row.sealed)
                    .execute(&mut *c)
                    .await?
                    .rows_affected()
            });
        }
        tx.commit().await?;
        Ok(changed)
    }
}
