//! Console login: user passwords (Argon2id PHC strings, hashed by the caller),
//! server-side sessions, failed-login counters, and the sealed copies of user and
//! organization secrets that `getSecrets` reads back. All in the database, so every
//! node sees the same sessions and counters.

use sqlx::Row;

use crate::model::from_row_on_both;
use crate::{on_pool, on_tx, Result, Store, StoreError, Tx};

/// Which table a tenant secret belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    User,
    Organization,
}

impl Tenant {
    pub(crate) fn table(self) -> &'static str {
        match self {
            Tenant::User => "users",
            Tenant::Organization => "organizations",
        }
    }

    /// "user" or "organization".
    pub fn name(self) -> &'static str {
        match self {
            Tenant::User => "user",
            Tenant::Organization => "organization",
        }
    }
}

/// The associated data that binds a sealed user or organization secret to its
/// lookup hash (unique per table), so a blob copied to another row fails to open.
pub fn tenant_secret_aad(tenant: Tenant, secret_hash: &[u8]) -> Vec<u8> {
    let mut aad = format!("{}-secret:", tenant.name()).into_bytes();
    aad.extend_from_slice(secret_hash);
    aad
}

/// A user's or organization's secret on its way into the store: the SHA-256
/// lookup hash, and the vault blob of the secret with its key id when the caller
/// keeps it readable (tests may store the hash alone).
#[derive(Debug, Clone, Copy)]
pub struct TenantSecret<'a> {
    pub hash: &'a [u8],
    pub sealed: Option<(&'a [u8], u32)>,
}

impl<'a> From<&'a [u8]> for TenantSecret<'a> {
    fn from(hash: &'a [u8]) -> Self {
        TenantSecret { hash, sealed: None }
    }
}

impl<'a> From<&'a Vec<u8>> for TenantSecret<'a> {
    fn from(hash: &'a Vec<u8>) -> Self {
        TenantSecret { hash, sealed: None }
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for TenantSecret<'a> {
    fn from(hash: &'a [u8; N]) -> Self {
        TenantSecret { hash, sealed: None }
    }
}

impl TenantSecret<'_> {
    pub(crate) fn blob(&self) -> Option<&[u8]> {
        self.sealed.map(|(blob, _)| blob)
    }

    pub(crate) fn key_id(&self) -> Option<i64> {
        self.sealed.map(|(_, id)| i64::from(id))
    }
}

/// A sealed user or organization secret, as key rotation reads it.
#[derive(Clone)]
pub struct SealedTenantSecret {
    pub tenant: Tenant,
    pub id: i64,
    pub secret_hash: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// A user's login record, found by email.
#[derive(Clone)]
pub struct PasswordRow {
    pub user_id: i64,
    pub organization_id: i64,
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
}

from_row_on_both!(PasswordRow, |row| {
    Ok(PasswordRow {
        user_id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
    })
});

/// A live session: who it belongs to and its CSRF token.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub caller: crate::Caller,
    pub csrf_token: String,
    pub last_used_at: i64,
}

from_row_on_both!(SessionRow, |row| {
    Ok(SessionRow {
        caller: crate::Caller {
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            organization_id: row.try_get("organization_id")?,
        },
        csrf_token: row.try_get("csrf_token")?,
        last_used_at: row.try_get("last_used_at")?,
    })
});

/// The sealed secrets of a user and of the user's organization (`None`: made
/// before secrets were kept sealed; only the hash exists).
#[derive(Clone)]
pub struct SealedSecrets {
    pub user_id: i64,
    pub organization_id: i64,
    pub user: Option<(Vec<u8>, Vec<u8>)>,
    pub organization: Option<(Vec<u8>, Vec<u8>)>,
}

impl Store {
    /// Sets (or, with `None`, clears) a user's password hash and ends the user's
    /// sessions, in one transaction. `Ok(false)`: no such user. A
    /// [`StoreError::Conflict`] names the other user whose password already goes
    /// with this email (login finds users by email alone).
    pub async fn set_password(&self, user_id: i64, password_hash: Option<&str>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let email: Option<String> = on_tx!(&mut tx, |c, pg| {
            sqlx::query_scalar("SELECT email FROM users WHERE id = $1").bind(user_id).fetch_optional(&mut *c).await?
        });
        let Some(email) = email else {
            return Ok(false);
        };
        write_password(&mut tx, user_id, &email, password_hash).await?;
        on_tx!(&mut tx, |c, pg| {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(&mut *c).await?;
        });
        tx.commit().await?;
        Ok(true)
    }

    /// The password-holding user with this email (compared case-insensitively), if any.
    pub async fn password_for_email(&self, email: &str) -> Result<Option<PasswordRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT id, organization_id, email, password_hash FROM users
                 WHERE lower(email) = lower($1) AND password_hash IS NOT NULL",
            )
            .bind(email)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Failed logins in `scope`'s current window, a window being the minute from its
    /// first failure; 0 once that minute is over.
    pub async fn login_failures(&self, scope: &str, now_ms: i64) -> Result<i64> {
        let count: Option<i64> = on_pool!(self, |p, pg| {
            sqlx::query_scalar("SELECT failures FROM login_failures WHERE scope = $1 AND window_start > $2")
                .bind(scope)
                .bind(now_ms - LOGIN_WINDOW_MS)
                .fetch_optional(p)
                .await?
        });
        Ok(count.unwrap_or(0))
    }

    /// Counts one failed login in each scope (one transaction), starting a new
    /// window where the last one is over, and answers the highest count among them
    /// afterwards. Login counts a try as failed *before* checking the password (and
    /// forgives it after a success, [`Store::forgive_login_failure`]), so concurrent
    /// tries cannot all pass the limit before the first failure is written.
    /// Also forgets windows over for an hour.
    pub async fn record_login_failure(&self, scopes: &[&str], now_ms: i64) -> Result<i64> {
        let mut tx = self.begin().await?;
        let mut highest = 0;
        for scope in scopes {
            let count: i64 = on_tx!(&mut tx, |c, pg| {
                sqlx::query_scalar(
                    "INSERT INTO login_failures (scope, window_start, failures) VALUES ($1, $2, 1)
                     ON CONFLICT (scope) DO UPDATE SET
                       failures = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END,
                       window_start = CASE WHEN login_failures.window_start <= $3 THEN $2 ELSE login_failures.window_start END
                     RETURNING failures",
                )
                .bind(scope)
                .bind(now_ms)
                .bind(now_ms - LOGIN_WINDOW_MS)
                .fetch_one(&mut *c)
                .await?
            });
            highest = highest.max(count);
        }
        on_tx!(&mut tx, |c, pg| {
            sqlx::query("DELETE FROM login_failures WHERE window_start < $1")
                .bind(now_ms - 3_600_000)
                .execute(&mut *c)
                .await?;
        });
        tx.commit().await?;
        Ok(highest)
    }

    /// Takes back one failure counted by [`Store::record_login_failure`] in each
    /// scope's current window (the try succeeded).
    pub async fn forgive_login_failure(&self, scopes: &[&str], now_ms: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        for scope in scopes {
            on_tx!(&mut tx, |c, pg| {
                sqlx::query(
                    "UPDATE login_failures SET failures = failures - 1
                     WHERE scope = $1 AND failures > 0 AND window_start > $2",
                )
                .bind(scope)
                .bind(now_ms - LOGIN_WINDOW_MS)
                .execute(&mut *c)
                .await?;
            });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Starts a session for `user_id`: the cookie token's hash and the session's
    /// CSRF token. Also removes sessions idle longer than `idle_ms`.
    pub async fn create_session(&self, token_hash: &[u8], user_id: i64, csrf_token: &str, now_ms: i64, idle_ms: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |c, pg| {
            sqlx::query("DELETE FROM sessions WHERE last_used_at <= $1").bind(now_ms - idle_ms).execute(&mut *c).await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_used_at) VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(now_ms)
            .execute(&mut *c)
            .await?;
        });
        tx.commit().await?;
        Ok(())
    }

    /// The session whose token hashes to `token_hash`, unless idle longer than `idle_ms`.
    pub async fn session(&self, token_hash: &[u8], now_ms: i64, idle_ms: i64) -> Result<Option<SessionRow>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT s.user_id, s.csrf_token, s.last_used_at, u.email, u.first_name, u.last_name, u.organization_id
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.last_used_at > $2",
            )
            .bind(token_hash)
            .bind(now_ms - idle_ms)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Marks a session used now (its idle expiry counts from here).
    pub async fn touch_session(&self, token_hash: &[u8], now_ms: i64) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE token_hash = $2 AND last_used_at < $1")
                .bind(now_ms)
                .bind(token_hash)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Ends one session; whether it existed.
    pub async fn end_session(&self, token_hash: &[u8]) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(p).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// The sealed secrets of a user and the user's organization, each with the
    /// lookup hash its blob is bound to.
    pub async fn sealed_secrets(&self, user_id: i64) -> Result<Option<SealedSecrets>> {
        let row = on_pool!(self, |p, pg| {
            sqlx::query(
                "SELECT u.id, u.organization_id, u.secret_hash, u.secret_sealed, o.secret_hash AS org_hash,
                        o.secret_sealed AS org_sealed
                 FROM users u JOIN organizations o ON o.id = u.organization_id WHERE u.id = $1",
            )
            .bind(user_id)
            .fetch_optional(p)
            .await?
            .map(|r| -> sqlx::Result<SealedSecrets> {
                let pair = |hash: &str, sealed: &str| -> sqlx::Result<Option<(Vec<u8>, Vec<u8>)>> {
                    let blob: Option<Vec<u8>> = r.try_get(sealed)?;
                    Ok(match blob {
                        Some(b) => Some((r.try_get(hash)?, b)),
                        None => None,
                    })
                };
                Ok(SealedSecrets {
                    user_id: r.try_get("id")?,
                    organization_id: r.try_get("organization_id")?,
                    user: pair("secret_hash", "secret_sealed")?,
                    organization: pair("org_hash", "org_sealed")?,
                })
            })
            .transpose()?
        });
        Ok(row)
    }

    /// Up to `limit` sealed user or organization secrets whose key is not
    /// `current_key_id` (users first, then organizations).
    pub async fn sealed_tenant_secrets_not_under(&self, current_key_id: u32, limit: i64) -> Result<Vec<SealedTenantSecret>> {
        let mut found = Vec::new();
        for tenant in [Tenant::User, Tenant::Organization] {
            let left = limit - found.len() as i64;
            if left <= 0 {
                break;
            }
            let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = on_pool!(self, |p, pg| {
                sqlx::query_as(&format!(
                    "SELECT id, secret_hash, secret_sealed FROM {} WHERE secret_sealed IS NOT NULL AND secret_key_id <> $1
                     ORDER BY id LIMIT $2",
                    tenant.table()
                ))
                .bind(i64::from(current_key_id))
                .bind(left)
                .fetch_all(p)
                .await?
            });
            found.extend(
                rows.into_iter()
                    .map(|(id, secret_hash, sealed)| SealedTenantSecret { tenant, id, secret_hash, sealed }),
            );
        }
        Ok(found)
    }

    /// Replaces sealed tenant secrets in one transaction; one whose blob changed
    /// since it was read (a `reset-secret` meanwhile) is left alone.
    pub async fn reseal_tenant_secrets(&self, rows: &[(SealedTenantSecret, Vec<u8>, u32)]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut changed = 0;
        for (row, blob, key_id) in rows {
            changed += on_tx!(&mut tx, |c, pg| {
                sqlx::query(&format!(
                    "UPDATE {} SET secret_sealed = $1, secret_key_id = $2 WHERE id = $3 AND secret_sealed = $4",
                    row.tenant.table()
                ))
                .bind(blob)
                .bind(i64::from(*key_id))
                .bind(row.id)
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

/// Writes a user's password hash, refusing (with a [`StoreError::Conflict`] naming
/// the other user) when another user already has a password with this email.
pub(crate) async fn write_password(tx: &mut Tx<'_>, user_id: i64, email: &str, password_hash: Option<&str>) -> Result<()> {
    if password_hash.is_some() {
        let holder: Option<i64> = on_tx!(&mut *tx, |c, pg| {
            sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = lower($1) AND password_hash IS NOT NULL AND id <> $2")
                .bind(email)
                .bind(user_id)
                .fetch_optional(&mut *c)
                .await?
        });
        if let Some(other) = holder {
            return Err(password_conflict(email, &format!("user {other}")));
        }
    }
    let updated = on_tx!(&mut *tx, |c, pg| {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *c)
            .await
            .map(|done| done.rows_affected())
    });
    match updated {
        // Another transaction set a password on this email meanwhile (the unique index).
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(password_conflict(email, "another user")),
        other => other.map(drop).map_err(Into::into),
    }
}

fn password_conflict(email: &str, holder: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{holder} already has a password with the email {email}; a password can be set on one user per \
         email (login names the user by email alone)"
    ))
}

/// How long failed logins count against a scope, in milliseconds.
pub const LOGIN_WINDOW_MS: i64 = 60_000;
