//! `GET /connect/oauth/callback`: the vendor's redirect at the end of an OAuth
//! round trip started by `crate::oauth::start`, finished for what started it (a
//! new console instance, an instance authorized again, a Connect session).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use switchyard_engine::secret::hash_secret;
use switchyard_events::now_ms;
use switchyard_server::session::{cookie_tokens, live_session};
use switchyard_server::ActingAs;

use crate::auth::User;
use crate::oauth::{signed, Purpose, Returned, Sealed};
use crate::pages::{refused_form, Entered};
use crate::Console;

/// The vendor's redirect: `code` and `state`, or `error` (and `error_description`).
#[derive(Deserialize)]
pub struct Redirected {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /connect/oauth/callback`.
pub async fn callback(State(console): State<Console>, headers: HeaderMap, Query(q): Query<Redirected>) -> Response {
    // Neutral words and no console link: the customer of a Connect page lands here too.
    let gone = || {
        console.connect_problem(
            StatusCode::BAD_REQUEST,
            "Authorization",
            "This authorization was finished already, has expired (after 10 minutes), or did not start here; start it again",
        )
    };
    let Some(random) = q.state.as_deref().and_then(|s| signed(&console, "oauth-state", s)) else {
        return gone();
    };
    let state_hash = hash_secret(&random);
    let row = match console.engine.store.take_oauth_state(&state_hash, now_ms()).await {
        Ok(Some(row)) => row,
        Ok(None) => return gone(),
        Err(e) => return console.problem(StatusCode::SERVICE_UNAVAILABLE, "Authorization", &e.to_string()),
    };
    let Some(purpose) = Purpose::parse(&row.purpose) else {
        return gone();
    };
    let sealed = match console.engine.vault.decrypt_str(&row.payload_sealed, &switchyard_store::oauth_state_aad(&state_hash)) {
        Ok(s) => s,
        Err(e) => return console.problem(StatusCode::INTERNAL_SERVER_ERROR, "Authorization", &e.to_string()),
    };
    let Ok(sealed) = serde_json::from_str::<Sealed>(sealed.expose()) else {
        return gone();
    };
    let caller = match console.engine.store.caller_of_user(row.user_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return console.problem(StatusCode::GONE, "Authorization", "The user who started this authorization no longer exists"),
        Err(e) => return console.problem(StatusCode::SERVICE_UNAVAILABLE, "Authorization", &e.to_string()),
    };
    // A console round trip belongs to the browser that started it: without this,
    // someone could start one and have another user approve their vendor account
    // into the first one's organization.
    let mut user = None;
    if purpose != Purpose::Connect {
        let session = live_session(&console, &cookie_tokens(&headers)).await.ok().flatten();
        match session.filter(|s| s.caller.user_id == row.user_id) {
            Some(s) => user = Some(User { caller: s.caller, csrf: s.csrf_token }),
            None => {
                return console.problem(StatusCode::FORBIDDEN, "Authorization", "Log in to the console as the user who started this authorization, then start it again")
            }
        }
    }
    let outcome = match (q.code.filter(|c| !c.is_empty()), q.error) {
        (Some(code), None) => Ok(code),
        (_, Some(error)) => Err(match q.error_description {
            Some(d) if !d.is_empty() => format!("The vendor did not authorize: {error}: {d}"),
            _ => format!("The vendor did not authorize: {error}"),
        }),
        (None, None) => Err("The vendor's redirect carried neither a code nor an error".to_owned()),
    };
    let returned = Returned { caller, pending: sealed.pending, outcome };
    match purpose {
        Purpose::Connect => {
            let (Some(id), Some(token)) = (row.connect_session_id, sealed.connect_token) else {
                return gone();
            };
            crate::connect::finish_oauth(&console, id, &token, returned).await
        }
        Purpose::ConsoleCreate => match user {
            Some(user) => finish_create(&console, &user, returned).await,
            None => gone(),
        },
        Purpose::ConsoleReauthorize => match row.instance_id {
            Some(id) => finish_reauthorize(&console, id, returned).await,
            None => gone(),
        },
    }
}

/// A new instance with the code; a refusal shows the element's form again, as
/// it was filled (secrets aside), with the vendor's or the platform's words.
async fn finish_create(console: &Console, user: &User, returned: Returned) -> Response {
    let p = returned.pending;
    let Some(def) = console.engine.catalog.get(&p.element_key).cloned() else {
        return console.problem(StatusCode::NOT_FOUND, "Authorization", &format!("There is no element '{}'", p.element_key));
    };
    let entered = Entered { mode: None, name: p.name.clone(), tags: p.tags.clone(), configuration: p.configuration.clone() };
    let code = match returned.outcome {
        Ok(code) => code,
        Err(message) => return refused_form(console, user, &def, &entered, StatusCode::BAD_REQUEST, &message),
    };
    let body = json!({
        "element": {"key": p.element_key},
        "name": p.name,
        "tags": p.tags,
        "configuration": p.configuration,
        "providerData": {"code": code},
    });
    let answer = console.api().call(&user.acting(), Method::POST, "/instances", Some(&body)).await;
    if !answer.ok() {
        return refused_form(console, user, &def, &entered, answer.status, &answer.problem());
    }
    let id = answer.body["id"].as_i64().unwrap_or_default();
    Redirect::to(&format!("/console/instances/{id}?created=1")).into_response()
}

async fn finish_reauthorize(console: &Console, id: i64, returned: Returned) -> Response {
    let code = match returned.outcome {
        Ok(code) => code,
        Err(message) => return console.problem(StatusCode::BAD_REQUEST, "Authorization", &message),
    };
    let callback = returned.pending.configuration.get("oauth.callback.url").cloned().unwrap_or_default();
    let body = json!({"configuration": {"oauth.callback.url": callback}, "providerData": {"code": code}});
    let acting = ActingAs { caller: returned.caller, instance_id: None };
    let answer = console.api().call(&acting, Method::PATCH, &format!("/instances/{id}"), Some(&body)).await;
    if !answer.ok() {
        return console.problem(answer.status, "Not authorized again", &answer.problem());
    }
    Redirect::to(&format!("/console/instances/{id}?reauthorized=1")).into_response()
}
