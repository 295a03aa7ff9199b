//! Following the writes other nodes, processes and CLI commands commit to the
//! database (PostgreSQL's notifications, or SQLite's change log read each
//! second): each change drops what this node's caches hold for it and tells the
//! poller's scheduler, and a new current master key is followed by the vault.

use std::future::Future;

use switchyard_server::AppState;
use switchyard_store::changes::{Change, Changes};
use switchyard_store::Store;
use switchyard_vault::{KeyRing, Vault};

use crate::database::CANARY;

/// Applies changes as they are announced until `stop` resolves.
pub async fn follow(mut changes: Changes, state: AppState, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            change = changes.next() => apply(&state, change).await,
        }
    }
}

async fn apply(state: &AppState, change: Change) {
    tracing::debug!(?change, "another node changed something");
    match change {
        Change::Instance(id) => {
            state.engine.instances.forget_instance(id);
            state.poll_schedule.changed(id);
        }
        Change::Callers => state.callers.forget_all(),
        Change::Transformations(org) => state.engine.transformations.forget(&org),
        Change::Keys => follow_current_key(&state.engine.store, &state.engine.vault).await,
        Change::Missed => {
            state.engine.instances.forget_all();
            state.poll_schedule.changed_all();
            state.callers.forget_all();
            state.engine.transformations.forget_all();
            follow_current_key(&state.engine.store, &state.engine.vault).await;
        }
    }
}

/// Makes the key that sealed the database's canary (the database's current key)
/// this node's current key; logs (without key material) when this node lacks it.
pub async fn follow_current_key(store: &Store, vault: &Vault) {
    let canary = match store.meta_get(CANARY).await {
        Ok(Some(canary)) => canary,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the database's current master key id; keeping this node's");
            return;
        }
    };
    let Some(id) = KeyRing::key_id_of(&canary) else {
        return;
    };
    let before = vault.current_id();
    match vault.follow_current(id) {
        Ok(()) if before != id => tracing::info!(
            old_key = before,
            new_key = id,
            "following the database's new current master key"
        ),
        Ok(()) => {}
        Err(e) => {
            tracing::error!(key_id = id, error = %e, "new secrets are refused on this node until it has the database's current master key")
        }
    }
}
