//! Connect sessions (`/elements/api-v2/connect/sessions`): a platform caller asks
//! for a single-use link (`{public URL}/connect/{token}`) that lets one of its
//! customers connect one instance of the listed elements without any platform
//! secret. Only the token's SHA-256 is stored; the signature key and the preset
//! configuration (a JSON object per element key) are sealed with the vault,
//! bound to the session by `switchyard_store::connect_session_aad`, and never
//! answered.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_events::now_ms;
use switchyard_store::{connect_session_aad, ConnectSessionRow, NewConnectSession};
use switchyard_vault::KeyRing;
use utoipa::ToSchema;

use crate::caller::{hash_secret, Caller};
use crate::extract::Path;
use crate::json_body::JsonBody;
use crate::{ApiError, AppState};

/// How long a Connect session's link works.
pub const CONNECT_SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 60);

const MAX_ELEMENTS: usize = 20;
const MAX_TAGS: usize = 20;
const MAX_TEXT: usize = 200;
const MAX_SIGNATURE_KEY: usize = 512;


/// The body of `POST /connect/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectSessionBody {
    /// Keys of the elements the customer may connect (1 to 20).
    elements: Vec<String>,
    /// The created instance's name (at most 200 characters).
    #[serde(default)]
    name: Option<String>,
    /// The created instance's tags (at most 20).
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Where the customer's browser goes afterwards, with `?instanceId=N` or
    /// `?error=...`: an absolute http(s) URL.
    #[serde(default)]
    redirect_url: Option<String>,
    /// Where an `INSTANCE_CREATED` message is sent, signed with `signatureKey`
    /// (checked against the outbound policy).
    #[serde(default)]
    callback_url: Option<String>,
    /// The key `callbackUrl` messages are signed with (at most 512 characters);
    /// never answered.
    #[serde(default)]
    signature_key: Option<String>,
    /// Configuration values preset for the customer, per listed element key
    /// (`{"infusionsoftcrm": {"oauth.api.key": …, "oauth.api.secret": …}}`, the
    /// organization's OAuth app): never asked on the page, never answered. Per
    /// element, because elements share key names for different things
    /// (`oauth.api.key` is Keap's client id and BigCommerce's token-mode Client ID).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    configuration: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

/// A new Connect session: the only answer that carries its token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSessionCreated {
    id: i64,
    /// The single-use secret of the link.
    token: String,
    /// `{public URL}/connect/{token}`, for the customer's browser.
    url: String,
    /// RFC 3339, UTC, milliseconds.
    expires_at: String,
}

/// A Connect session as its creator reads it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSessionView {
    id: i64,
    /// `pending`, `completed`, `failed` or `expired`.
    status: &'static str,
    elements: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    tags: Vec<String>,
    /// The created instance, once `completed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<i64>,
    /// Why it failed, or the vendor's last refusal while still pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    created_at: String,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn iso(ms: i64) -> String {
    switchyard_events::iso_ms(ms)
}

fn view(row: ConnectSessionRow, now: i64) -> ConnectSessionView {
    ConnectSessionView {
        id: row.id,
        status: row.reported_status(now),
        elements: row.elements,
        name: row.name,
        tags: row.tags,
        instance_id: row.instance_id,
        error: row.error,
        created_at: iso(row.created_at),
        expires_at: iso(row.expires_at),
        finished_at: row.finished_at.map(iso),
    }
}

/// The listed element keys, each in the catalog (by key, not id), without repeats.
fn check_elements(state: &AppState, keys: Vec<String>) -> Result<Vec<String>, ApiError> {
    if keys.is_empty() || keys.len() > MAX_ELEMENTS {
        return Err(bad_request(format!("elements must list 1 to {MAX_ELEMENTS} element keys")));
    }
    let mut found: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        if state.engine.catalog.get(&key).is_none_or(|d| d.key != key) {
            return Err(bad_request(format!("No element with key '{key}'")));
        }
        if !found.contains(&key) {
            found.push(key);
        }
    }
    Ok(found)
}

/// Longest `redirectUrl`, in bytes (what browsers and proxies reliably carry).
const MAX_URL_BYTES: usize = 2000;

fn check_redirect_url(url: &str) -> Result<(), ApiError> {
    let refused = || bad_request("redirectUrl must be an absolute http or https URL");
    let parsed = url::Url::parse(url).map_err(|_| refused())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(refused());
    }
    Ok(())
}

/// As instances check `event.notification.callback.url`: the outbound policy decides.
fn check_callback_url(state: &AppState, url: &str) -> Result<(), ApiError> {
    state
        .engine
        .client
        .policy()
        .check_url(url)
        .map(|_| ())
        .map_err(|e| bad_request(format!("callbackUrl is not allowed: {e}")))
}

/// Presets are per listed element, each key a configuration key of that element
/// and well formed for it: a customer could not fix them on the page.
fn check_configuration(state: &AppState, elements: &[String], configuration: &BTreeMap<String, BTreeMap<String, String>>) -> Result<(), ApiError> {
    for (element, values) in configuration {
        let def = elements
            .contains(element)
            .then(|| state.engine.catalog.get(element))
            .flatten()
            .ok_or_else(|| bad_request(format!("configuration is keyed by the listed elements' keys; '{element}' is not one of them")))?;
        if let Some(key) = values.keys().find(|k| def.parameter(k).is_none()) {
            return Err(bad_request(format!("configuration key '{key}' is not a configuration key of element {element}")));
        }
        crate::instances::check_formats(def, values)?;
        crate::instances::check_event_settings(def, values)?;
        crate::instances::check_callback_url(state, values)?;
    }
    Ok(())
}

#[utoipa::path(post, path = "/connect/sessions", operation_id = "createConnectSession", tag = "connect", request_body = ConnectSessionBody,
    responses((status = 201, description = "Created; the token is shown only here", body = ConnectSessionCreated), (status = 400, description = "Bad input; nothing was written", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 415, description = "The body is not sent as Content-Type: application/json", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ConnectSessionBody>,
) -> Result<(StatusCode, Json<ConnectSessionCreated>), ApiError> {
    let elements = check_elements(&state, body.elements)?;
    if body.name.as_ref().is_some_and(|n| n.trim().is_empty() || n.chars().count() > MAX_TEXT) {
        return Err(bad_request(format!("name must be 1 to {MAX_TEXT} characters, not only blanks")));
    }
    let tags = body.tags.unwrap_or_default();
    if tags.len() > MAX_TAGS || tags.iter().any(|t| t.trim().is_empty() || t.chars().count() > MAX_TEXT) {
        return Err(bad_request(format!("tags must be at most {MAX_TAGS}, each 1 to {MAX_TEXT} characters")));
    }
    if let Some(url) = &body.redirect_url {
        if url.len() > MAX_URL_BYTES {
            return Err(bad_request(format!("redirectUrl must be at most {MAX_URL_BYTES} bytes")));
        }
        check_redirect_url(url)?;
    }
    if body.signature_key.is_some() && body.callback_url.is_none() {
        return Err(bad_request("signatureKey signs the messages sent to callbackUrl; give callbackUrl too"));
    }
    if let Some(url) = &body.callback_url {
        check_callback_url(&state, url)?;
    }
    if body.signature_key.as_ref().is_some_and(|k| k.is_empty() || k.chars().count() > MAX_SIGNATURE_KEY) {
        return Err(bad_request(format!("signatureKey must be 1 to {MAX_SIGNATURE_KEY} characters")));
    }
    let configuration = body.configuration.filter(|c| !c.is_empty());
    if let Some(c) = &configuration {
        check_configuration(&state, &elements, c)?;
    }

    let token = crate::new_secret();
    let token_hash = hash_secret(&token);
    let aad = connect_session_aad(&token_hash);
    let vault = &state.engine.vault;
    let configuration_json = configuration.map(|c| serde_json::to_string(&c).unwrap_or_default());
    let seal_both = || {
        (
            configuration_json.as_deref().map(|text| vault.encrypt_str(text, &aad)),
            body.signature_key.as_deref().map(|text| vault.encrypt_str(text, &aad)),
        )
    };
    let key_of = |b: &Option<Vec<u8>>| b.as_deref().and_then(KeyRing::key_id_of);
    let (mut configuration_sealed, mut signature_key_sealed) = seal_both();
    // Both blobs share one key id (what rotate-key reads): a rotation between the
    // two seals is mended by sealing both again.
    for _ in 0..3 {
        match (key_of(&configuration_sealed), key_of(&signature_key_sealed)) {
            (Some(a), Some(b)) if a != b => (configuration_sealed, signature_key_sealed) = seal_both(),
            _ => break,
        }
    }
    let key_id = key_of(&configuration_sealed).or_else(|| key_of(&signature_key_sealed));

    let now = now_ms();
    let expires_at = now + CONNECT_SESSION_LIFETIME.as_millis() as i64;
    let id = state
        .engine
        .store
        .create_connect_session(&NewConnectSession {
            organization_id: caller.organization_id,
            user_id: caller.user_id,
            token_hash,
            elements,
            name: body.name,
            tags,
            redirect_url: body.redirect_url,
            callback_url: body.callback_url,
            signature_key_sealed,
            configuration_sealed,
            key_id,
            created_at: now,
            expires_at,
        })
        .await?;
    let url = format!("{}/connect/{token}", state.engine.public_url.trim_end_matches('/'));
    Ok((StatusCode::CREATED, Json(ConnectSessionCreated { id, token, url, expires_at: iso(expires_at) })))
}

#[utoipa::path(get, path = "/connect/sessions/{id}", operation_id = "getConnectSession", tag = "connect",
    params(("id" = i64, Path, description = "Connect session id")),
    responses((status = 200, description = "The session's outcome so far (no token, no secrets)", body = ConnectSessionView), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such session in the caller's organization", body = crate::error::ErrorBody)))]
pub async fn get(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<ConnectSessionView>, ApiError> {
    let row = state
        .engine
        .store
        .connect_session(caller.organization_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No Connect session with id {id}")))?;
    Ok(Json(view(row, now_ms())))
}
