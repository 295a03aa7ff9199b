//! The OAuth 2.0 round trip of the console and the Connect page: the vendor's
//! authorize page, then `GET /connect/oauth/callback?code&state` (`crate::callback`),
//! which finishes what was started (a new instance, an instance authorized again,
//! a Connect session). `{public URL}/connect/oauth/callback` is the one redirect URI to
//! register in the vendor app.
//!
//! `state` is a random value signed with the server's key ([`sign`]), so a
//! made-up one is refused before the database is asked, and single use, as the
//! row it names is deleted when it is read. The row keeps what the form said (configuration
//! included, sealed by the vault) for ten minutes.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use switchyard_engine::page_token;
use switchyard_engine::secret::{hash_secret, new_secret};
use switchyard_events::now_ms;
use switchyard_server::ActingAs;

use crate::Console;

/// How long the vendor's page may take, from the click to the redirect back.
pub const STATE_LIFETIME_MS: i64 = 10 * 60 * 1000;

/// What the redirect back finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ConsoleCreate,
    ConsoleReauthorize,
    Connect,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::ConsoleCreate => "console-create",
            Purpose::ConsoleReauthorize => "console-reauthorize",
            Purpose::Connect => "connect",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Purpose> {
        [Purpose::ConsoleCreate, Purpose::ConsoleReauthorize, Purpose::Connect].into_iter().find(|p| p.name() == name)
    }
}

/// The instance to make once the vendor has said yes, as the form gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub element_key: String,
    pub name: String,
    pub tags: Vec<String>,
    pub configuration: BTreeMap<String, String>,
}

/// The sealed part of a state row.
#[derive(Serialize, Deserialize)]
pub(crate) struct Sealed {
    pub pending: Pending,
    /// The Connect page's token (to show its page again), for `Purpose::Connect`.
    pub connect_token: Option<String>,
}

/// `data` signed for `purpose` with the server's key (`switchyard_engine::page_token`,
/// which the list tokens use too): a token of one purpose is never valid for another.
pub(crate) fn sign(console: &Console, purpose: &str, data: &str) -> String {
    page_token::encode(&console.engine.paging_key, purpose, &data)
}

/// What a token of [`sign`] carries, if it is one this server made for `purpose`.
pub(crate) fn signed(console: &Console, purpose: &str, token: &str) -> Option<String> {
    page_token::decode(&console.engine.paging_key, purpose, token)
}

/// The redirect URI every OAuth round trip of this server uses.
pub(crate) fn callback_url(console: &Console) -> String {
    format!("{}/connect/oauth/callback", console.engine.public_url.trim_end_matches('/'))
}

/// Starts the vendor's authorization: stores the state and answers the vendor's
/// authorize URL to send the browser to. `Err` carries the status and words to show.
pub async fn start(
    console: &Console,
    caller: &switchyard_store::Caller,
    purpose: Purpose,
    mut pending: Pending,
    instance_id: Option<i64>,
    connect: Option<(i64, String)>,
) -> Result<String, (StatusCode, String)> {
    let callback = callback_url(console);
    let api_key = match instance_id {
        // Authorizing again: the instance's own app.
        Some(id) => {
            let open = console.engine.open_by_id(id).await.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            open.and_then(|o| o.config.get("oauth.api.key").cloned())
        }
        None => pending.configuration.get("oauth.api.key").cloned(),
    };
    let Some(api_key) = api_key.filter(|k| !k.is_empty()) else {
        return Err((StatusCode::BAD_REQUEST, "configuration 'oauth.api.key' (the app's client id) is required".into()));
    };
    pending.configuration.insert("oauth.callback.url".into(), callback.clone());

    let random = new_secret();
    let state = sign(console, "oauth-state", &random);
    let state_hash = hash_secret(&random);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("apiKey", &api_key)
        .append_pair("callbackUrl", &callback)
        .append_pair("state", &state)
        .finish();
    let acting = ActingAs { caller: caller.clone(), instance_id: None };
    let key = percent_encoding::utf8_percent_encode(&pending.element_key, percent_encoding::NON_ALPHANUMERIC).to_string();
    let answer = console.api().call(&acting, Method::GET, &format!("/elements/{key}/oauth/url?{query}"), None).await;
    if !answer.ok() {
        return Err((answer.status, answer.problem()));
    }
    let vendor_url = answer.body["oauthUrl"].as_str().unwrap_or_default().to_owned();

    let element_key = pending.element_key.clone();
    let sealed = serde_json::to_string(&Sealed { pending, connect_token: connect.as_ref().map(|(_, t)| t.clone()) })
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let blob = console.engine.vault.encrypt_str(&sealed, &switchyard_store::oauth_state_aad(&state_hash));
    let key_id = switchyard_vault::KeyRing::key_id_of(&blob).unwrap_or_default();
    let now = now_ms();
    let row = switchyard_store::NewOAuthState {
        state_hash: state_hash.to_vec(),
        organization_id: caller.organization_id,
        user_id: caller.user_id,
        purpose: purpose.name().to_owned(),
        element_key,
        instance_id,
        connect_session_id: connect.map(|(id, _)| id),
        payload_sealed: blob,
        key_id,
        created_at: now,
        expires_at: now + STATE_LIFETIME_MS,
    };
    console.engine.store.create_oauth_state(&row).await.map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(vendor_url)
}

/// What a finished round trip hands on: the user, the form, and the vendor's
/// code or refusal.
pub struct Returned {
    pub caller: switchyard_store::Caller,
    pub pending: Pending,
    pub outcome: Result<String, String>,
}
