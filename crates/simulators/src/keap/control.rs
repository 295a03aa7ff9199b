//! The control API under `/_sim`: JSON endpoints to add apps, switch auto-approve,
//! set token lifetimes and limits, read token-endpoint counters, and expire or revoke
//! tokens, for tests and tools in other processes.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{control_error, control_json};
use super::schema::TABLES;
use super::{read, AppConfig, KeapSimulator, Limits, Seed, Settings};

pub(crate) fn routes() -> Router<KeapSimulator> {
    Router::new()
        .route("/_sim/health", get(|| async { control_json(StatusCode::OK, &json!({ "ok": true })) }))
        .route("/_sim/settings", get(show_settings).put(set_settings))
        .route("/_sim/token-calls", get(token_calls))
        .route("/_sim/apps", get(list).post(add))
        .route("/_sim/apps/{client_id}", get(show).delete(remove))
        .route("/_sim/apps/{client_id}/limits", put(set_limits))
        .route("/_sim/apps/{client_id}/timezone", put(set_timezone))
        .route("/_sim/apps/{client_id}/token-calls", get(app_token_calls))
        .route("/_sim/apps/{client_id}/expire-tokens", post(expire))
        .route("/_sim/apps/{client_id}/revoke-tokens", post(revoke))
        .route("/_sim/apps/{client_id}/reset", post(reset))
        .route("/_sim/apps/{client_id}/records/{table}/{id}/raw", put(set_raw))
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| Box::new(control_error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}"))))
}

fn no_app() -> Response {
    control_error(StatusCode::NOT_FOUND, "no such app")
}

fn settings_json(s: &Settings) -> Value {
    json!({
        "auto_approve": s.auto_approve,
        "access_token_lifetime_s": s.access_token_lifetime.as_secs(),
        "code_lifetime_s": s.code_lifetime.as_secs(),
        "token_answer_delay_ms": s.token_answer_delay.as_millis() as u64,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsDto {
    #[serde(default)]
    auto_approve: Option<bool>,
    #[serde(default)]
    access_token_lifetime_s: Option<u64>,
    #[serde(default)]
    code_lifetime_s: Option<u64>,
    #[serde(default)]
    token_answer_delay_ms: Option<u64>,
}

async fn show_settings(State(sim): State<KeapSimulator>) -> Response {
    control_json(StatusCode::OK, &settings_json(&sim.settings()))
}

async fn set_settings(State(sim): State<KeapSimulator>, body: Bytes) -> Response {
    let dto: SettingsDto = match parse(&body) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let mut s = sim.settings();
    if let Some(a) = dto.auto_approve {
        s.auto_approve = a;
    }
    if let Some(l) = dto.access_token_lifetime_s {
        s.access_token_lifetime = Duration::from_secs(l);
    }
    if let Some(l) = dto.code_lifetime_s {
        s.code_lifetime = Duration::from_secs(l);
    }
    if let Some(d) = dto.token_answer_delay_ms {
        s.token_answer_delay = Duration::from_millis(d);
    }
    sim.set_settings(s.clone());
    control_json(StatusCode::OK, &settings_json(&s))
}

async fn token_calls(State(sim): State<KeapSimulator>) -> Response {
    control_json(StatusCode::OK, &json!(sim.token_calls()))
}

fn summary(sim: &KeapSimulator, cfg: &AppConfig) -> Value {
    let records: serde_json::Map<String, Value> = match sim.state(&cfg.client_id) {
        Some(app) => {
            let data = read(&app.data);
            TABLES.iter().map(|t| (t.name.to_owned(), json!(data.len(t)))).collect()
        }
        None => serde_json::Map::new(),
    };
    json!({
        "client_id": cfg.client_id,
        "client_secret": cfg.client_secret,
        "private_key": cfg.private_key,
        "app_name": cfg.app_name,
        "account": cfg.account,
        "username": cfg.username,
        "password": cfg.password,
        "seed": cfg.seed,
        "limits": cfg.limits,
        "timezone": cfg.timezone.name(),
        "records": records,
        "token_calls": sim.app_token_calls(&cfg.client_id),
        "rpc_count": sim.rpc_count(&cfg.client_id),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppDto {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    app_name: Option<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    seed: Option<Seed>,
    #[serde(default)]
    limits: Option<Limits>,
    /// An IANA name (`America/New_York`).
    #[serde(default)]
    timezone: Option<String>,
}

fn plain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

async fn list(State(sim): State<KeapSimulator>) -> Response {
    let apps: Vec<Value> = sim.client_ids().iter().filter_map(|id| sim.app(id)).map(|c| summary(&sim, &c)).collect();
    control_json(StatusCode::OK, &Value::Array(apps))
}

async fn add(State(sim): State<KeapSimulator>, body: Bytes) -> Response {
    let dto: AppDto = match parse(&body) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let demo = AppConfig::default();
    let cfg = AppConfig {
        client_id: dto.client_id,
        client_secret: dto.client_secret.unwrap_or(demo.client_secret),
        private_key: dto.private_key.unwrap_or(demo.private_key),
        app_name: dto.app_name.unwrap_or(demo.app_name),
        account: dto.account.unwrap_or(demo.account),
        username: dto.username.unwrap_or(demo.username),
        password: dto.password.unwrap_or(demo.password),
        seed: dto.seed.unwrap_or(demo.seed),
        limits: dto.limits.unwrap_or(demo.limits),
        timezone: match dto.timezone.as_deref().map(zone_named).transpose() {
            Ok(zone) => zone.unwrap_or(demo.timezone),
            Err(r) => return *r,
        },
    };
    for (name, v) in [("client_id", &cfg.client_id), ("client_secret", &cfg.client_secret), ("private_key", &cfg.private_key), ("account", &cfg.account)] {
        if !plain(v) {
            return control_error(StatusCode::BAD_REQUEST, &format!("{name} must be 1-100 letters, digits, '-', '_' or '.'"));
        }
    }
    if cfg.username.trim().is_empty() || cfg.username.len() > 200 || cfg.password.is_empty() || cfg.password.len() > 200 {
        return control_error(StatusCode::BAD_REQUEST, "username and password must be 1-200 characters");
    }
    if cfg.app_name.trim().is_empty() || cfg.app_name.len() > 200 {
        return control_error(StatusCode::BAD_REQUEST, "app_name must be 1-200 characters");
    }
    let s = &cfg.seed;
    if [s.users, s.companies, s.contacts, s.opportunities, s.actions].iter().any(|n| *n > 100_000) {
        return control_error(StatusCode::BAD_REQUEST, "seed sizes are limited to 100000 records each");
    }
    sim.add_app(cfg.clone());
    control_json(StatusCode::CREATED, &summary(&sim, &cfg))
}

async fn show(State(sim): State<KeapSimulator>, Path(id): Path<String>) -> Response {
    match sim.app(&id) {
        Some(c) => control_json(StatusCode::OK, &summary(&sim, &c)),
        None => no_app(),
    }
}

async fn remove(State(sim): State<KeapSimulator>, Path(id): Path<String>) -> Response {
    if sim.remove_app(&id) {
        Response::builder().status(StatusCode::NO_CONTENT).body(axum::body::Body::empty()).unwrap_or_default()
    } else {
        no_app()
    }
}

/// An IANA zone name, or a 400 saying what is allowed.
fn zone_named(name: &str) -> Result<chrono_tz::Tz, Box<Response>> {
    name.parse().map_err(|_| Box::new(control_error(StatusCode::BAD_REQUEST, &format!("timezone '{name}' is not an IANA zone name such as America/New_York"))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimezoneDto {
    timezone: String,
}

/// `PUT /_sim/apps/{id}/timezone {"timezone": "America/New_York"}`.
async fn set_timezone(State(sim): State<KeapSimulator>, Path(id): Path<String>, body: Bytes) -> Response {
    if sim.app(&id).is_none() {
        return no_app();
    }
    let zone = match parse::<TimezoneDto>(&body).and_then(|dto| zone_named(&dto.timezone)) {
        Ok(zone) => zone,
        Err(r) => return *r,
    };
    sim.set_timezone(&id, zone);
    show(State(sim), Path(id)).await
}

async fn set_limits(State(sim): State<KeapSimulator>, Path(id): Path<String>, body: Bytes) -> Response {
    if sim.app(&id).is_none() {
        return no_app();
    }
    let limits: Limits = match parse(&body) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    if [&limits.quota, &limits.throttle].iter().any(|w| w.as_ref().is_some_and(|w| w.interval == 0)) {
        return control_error(StatusCode::BAD_REQUEST, "interval must be at least 1");
    }
    sim.set_limits(&id, limits);
    show(State(sim), Path(id)).await
}

async fn app_token_calls(State(sim): State<KeapSimulator>, Path(id): Path<String>) -> Response {
    match sim.app_token_calls(&id) {
        Some(c) => control_json(StatusCode::OK, &json!(c)),
        None => no_app(),
    }
}

async fn expire(State(sim): State<KeapSimulator>, Path(id): Path<String>) -> Response {
    if sim.app(&id).is_none() {
        return no_app();
    }
    control_json(StatusCode::OK, &json!({ "expired": sim.expire_access_tokens(&id) }))
}

async fn revoke(State(sim): State<KeapSimulator>, Path(id): Path<String>) -> Response {
    if sim.app(&id).is_none() {
        return no_app();
    }
    control_json(StatusCode::OK, &json!({ "revoked": sim.revoke_tokens(&id) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDto {
    field: String,
    xml: String,
}

async fn set_raw(State(sim): State<KeapSimulator>, Path((client_id, table, id)): Path<(String, String, i32)>, body: Bytes) -> Response {
    let dto: RawDto = match parse(&body) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    if sim.app(&client_id).is_none() {
        return no_app();
    }
    if sim.set_raw_field(&client_id, &table, id, &dto.field, &dto.xml) {
        control_json(StatusCode::OK, &json!({ "table": table, "id": id, "field": dto.field }))
    } else {
        control_error(StatusCode::NOT_FOUND, "no such table, record or field")
    }
}

async fn reset(State(sim): State<KeapSimulator>, Path(id): Path<String>) -> Response {
    if sim.reset_data(&id) {
        show(State(sim), Path(id)).await
    } else {
        no_app()
    }
}
