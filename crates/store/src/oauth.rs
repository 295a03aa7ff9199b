//! OAuth 2.0 refresh bookkeeping: the per-instance refresh lease, the commit of a
//! rotated token pair, and the refusal that makes an instance invalid.
//!
//! A lease is a row, not a lock: it is taken with one conditional upsert, held
//! for a short time the holder keeps renewing while its token call runs, and
//! taken over once it lapses (a crashed holder blocks others for at most one
//! lease time). Nothing is locked while the vendor is being called.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{durably, now, on_pool, on_tx, write_configuration, NewValue, Result, Sealer, Store};

fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// Takes (or renews) the refresh lease of `instance_id` for `holder` until
    /// `ttl_ms` from now. False when another holder has an unexpired lease.
    pub async fn take_refresh_lease(&self, instance_id: i64, holder: &str, ttl_ms: i64) -> Result<bool> {
        let now = epoch_ms();
        let done = on_pool!(self, |p, pg| {
            sqlx::query(
                "INSERT INTO oauth_refresh (instance_id, holder, lease_until) VALUES ($1, $2, $3)
                 ON CONFLICT(instance_id) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until
                 WHERE oauth_refresh.lease_until <= $4 OR oauth_refresh.holder = excluded.holder",
            )
            .bind(instance_id)
            .bind(holder)
            .bind(now + ttl_ms)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Gives the lease up (if `holder` still has it).
    pub async fn release_refresh_lease(&self, instance_id: i64, holder: &str) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query("UPDATE oauth_refresh SET holder = NULL, lease_until = 0 WHERE instance_id = $1 AND holder = $2")
                .bind(instance_id)
                .bind(holder)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Stores a token pair the vendor just issued, in one transaction that also
    /// marks the instance valid, forgets any refusal and releases `holder`'s
    /// lease. Committed durably (on SQLite with `synchronous=FULL`): a rotated
    /// refresh token is the one value whose loss (even to a power cut) loses the
    /// connection.
    pub async fn commit_tokens(
        &self,
        instance_id: i64,
        holder: &str,
        values: &[(String, NewValue)],
        sealer: &dyn Sealer,
    ) -> Result<()> {
        durably!(self, |tx| {
            write_configuration(tx, instance_id, values, sealer).await?;
            on_tx!(&mut *tx, |c, pg| {
                sqlx::query("UPDATE instances SET valid = TRUE, updated_at = $1 WHERE id = $2")
                    .bind(now())
                    .bind(instance_id)
                    .execute(&mut *c)
                    .await?;
                sqlx::query(
                    "INSERT INTO oauth_refresh (instance_id, holder, lease_until, refused) VALUES ($1, NULL, 0, NULL)
                     ON CONFLICT(instance_id) DO UPDATE SET refused = NULL,
                       holder = CASE WHEN oauth_refresh.holder = $2 THEN NULL ELSE oauth_refresh.holder END,
                       lease_until = CASE WHEN oauth_refresh.holder = $2 THEN 0 ELSE oauth_refresh.lease_until END",
                )
                .bind(instance_id)
                .bind(holder)
                .execute(&mut *c)
                .await?;
            });
        })
    }

    /// The vendor refused the refresh token: the instance becomes invalid, with the
    /// vendor's words kept for the answers of later hub calls. Releases the lease.
    pub async fn refuse_refresh(&self, instance_id: i64, holder: &str, words: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, |c, pg| {
            sqlx::query("UPDATE instances SET valid = FALSE, updated_at = $1 WHERE id = $2")
                .bind(now())
                .bind(instance_id)
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "INSERT INTO oauth_refresh (instance_id, holder, lease_until, refused) VALUES ($1, NULL, 0, $2)
                 ON CONFLICT(instance_id) DO UPDATE SET refused = excluded.refused,
                   holder = CASE WHEN oauth_refresh.holder = $3 THEN NULL ELSE oauth_refresh.holder END,
                   lease_until = CASE WHEN oauth_refresh.holder = $3 THEN 0 ELSE oauth_refresh.lease_until END",
            )
            .bind(instance_id)
            .bind(words)
            .bind(holder)
            .execute(&mut *c)
            .await?;
        });
        tx.commit().await?;
        Ok(())
    }

    /// What the vendor said when it last refused this instance's refresh token.
    pub async fn refresh_refusal(&self, instance_id: i64) -> Result<Option<String>> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query_scalar("SELECT refused FROM oauth_refresh WHERE instance_id = $1")
                .bind(instance_id)
                .fetch_optional(p)
                .await?
                .flatten()
        }))
    }

    /// Forgets a refusal (the instance was authorized again).
    pub async fn clear_refresh_refusal(&self, instance_id: i64) -> Result<()> {
        on_pool!(self, |p, pg| {
            sqlx::query("UPDATE oauth_refresh SET refused = NULL WHERE instance_id = $1")
                .bind(instance_id)
                .execute(p)
                .await?;
        });
        Ok(())
    }
}
