//! `GET /elements/api-v1/ui/getSecrets`: a logged-in user reads back the user and
//! organization secrets, as Cloud Elements' console shows them (see `session`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use switchyard_engine::instance::vault_error;
use switchyard_store::{tenant_secret_aad, Tenant};

use crate::caller::Caller;
use crate::{ApiError, AppState};

/// `GET /elements/api-v1/ui/getSecrets`: `{"user": "<user secret>", "company":
/// "<organization secret>"}` for the logged-in user (or a header caller). 409 for
/// a secret made before secrets were kept sealed: only its hash exists, and the
/// answer names the `reset-secret` command that makes a readable one.
pub async fn get_secrets(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    let sealed = state
        .engine
        .store
        .sealed_secrets(caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("No such user"))?;
    let open = |tenant: Tenant, pair: Option<(Vec<u8>, Vec<u8>)>, id: i64, command: &str| -> Result<String, ApiError> {
        let (hash, blob) = pair.ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "This {} secret was made before Switchyard kept secrets readable, so it cannot be shown; \
                     make a new one with `switchyard {command} reset-secret {id}` (the old one stops working)",
                    tenant.name()
                ),
            )
        })?;
        // A key this node lacks is the engine's 503 naming it, as for instance secrets.
        let secret = state.engine.vault.decrypt_str(&blob, &tenant_secret_aad(tenant, &hash)).map_err(vault_error)?;
        Ok(secret.expose().to_owned())
    };
    let user = open(Tenant::User, sealed.user, sealed.user_id, "users")?;
    let company = open(Tenant::Organization, sealed.organization, sealed.organization_id, "orgs")?;
    let mut response = Json(json!({"user": user, "company": company})).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
