//! The control API under `/_sim`: JSON endpoints to add stores, set faults and quotas,
//! read request counts, reset data, and tune and watch webhook deliveries, for tests and
//! tools in other processes.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::{control_error, control_json};
use super::{BigCommerceSimulator, Delivery, Faults, Quota, StoreConfig, DEFAULT_QUOTA_WINDOW};

pub(crate) fn routes() -> Router<BigCommerceSimulator> {
    Router::new()
        .route("/_sim/health", get(|| async { control_json(StatusCode::OK, &json!({ "ok": true })) }))
        .route("/_sim/stores", get(list).post(add))
        .route("/_sim/stores/{hash}", get(show).delete(remove))
        .route("/_sim/stores/{hash}/faults", put(set_faults))
        .route("/_sim/stores/{hash}/quota", put(set_quota))
        .route("/_sim/stores/{hash}/requests", get(requests))
        .route("/_sim/stores/{hash}/reset", post(reset))
        .route("/_sim/stores/{hash}/webhooks", put(set_webhooks))
        .route("/_sim/stores/{hash}/webhooks/deliveries", get(deliveries))
}

/// Faults as JSON: durations in milliseconds.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FaultsDto {
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    error_rate: f64,
    #[serde(default)]
    drop_rate: f64,
    #[serde(default)]
    slow_body_ms: Option<u64>,
    #[serde(default)]
    error_status: Option<u16>,
    #[serde(default)]
    max_errors: Option<u64>,
}

impl FaultsDto {
    fn into_faults(self) -> Result<Faults, String> {
        for (name, r) in [("error_rate", self.error_rate), ("drop_rate", self.drop_rate)] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if self.error_status.is_some_and(|s| !(500..=599).contains(&s)) {
            return Err("error_status must be from 500 to 599".into());
        }
        Ok(Faults {
            latency: self.latency_ms.map(Duration::from_millis),
            error_rate: self.error_rate,
            drop_rate: self.drop_rate,
            slow_body: self.slow_body_ms.map(Duration::from_millis),
            error_status: self.error_status,
            max_errors: self.max_errors,
        })
    }

    fn of(f: &Faults) -> Self {
        FaultsDto {
            latency_ms: f.latency.map(|d| d.as_millis() as u64),
            error_rate: f.error_rate,
            drop_rate: f.drop_rate,
            slow_body_ms: f.slow_body.map(|d| d.as_millis() as u64),
            error_status: f.error_status,
            max_errors: f.max_errors,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaDto {
    requests: u32,
    #[serde(default)]
    window_ms: Option<u64>,
    /// Legacy requests throttle as legacy stores did (509, `X-BC-ApiLimit-Remaining`).
    #[serde(default)]
    legacy: Option<bool>,
}

impl QuotaDto {
    fn into_quota(self) -> Result<Quota, String> {
        let window = self.window_ms.map(Duration::from_millis).unwrap_or(DEFAULT_QUOTA_WINDOW);
        if window.is_zero() {
            return Err("window_ms must be positive".into());
        }
        Ok(Quota { requests: self.requests, window })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreDto {
    hash: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    api_token: Option<String>,
    #[serde(default)]
    seed_orders: Option<usize>,
    #[serde(default)]
    seed_customers: Option<usize>,
    #[serde(default)]
    seed_products: Option<usize>,
    #[serde(default)]
    quota: Option<QuotaDto>,
    #[serde(default)]
    legacy_rate_limits: bool,
    #[serde(default)]
    faults: Option<FaultsDto>,
    /// A number or a string of digits.
    #[serde(default)]
    store_id: Option<Value>,
    #[serde(default)]
    webhook_time_scale: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhooksDto {
    time_scale: f64,
}

fn check_time_scale(scale: f64) -> Result<f64, String> {
    if scale.is_finite() && scale >= 0.0 {
        Ok(scale)
    } else {
        Err("time_scale must be a number >= 0".into())
    }
}

/// A store id: a positive number, as JSON number or string of digits.
fn store_id(v: &Value) -> Result<u64, String> {
    let id = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    id.filter(|i| *i > 0).ok_or_else(|| "store_id must be a positive number (or a string of digits)".to_string())
}

fn summary(sim: &BigCommerceSimulator, cfg: &StoreConfig) -> Value {
    json!({
        "hash": cfg.hash,
        "username": cfg.username,
        "api_token": cfg.api_token,
        "seed_orders": cfg.seed_orders,
        "seed_customers": cfg.seed_customers,
        "seed_products": cfg.seed_products,
        "quota": cfg.quota.as_ref().map(|q| json!({ "requests": q.requests, "window_ms": q.window.as_millis() as u64 })),
        "legacy_rate_limits": cfg.legacy_rate_limits,
        "faults": FaultsDto::of(&cfg.faults),
        "request_count": sim.request_count(&cfg.hash),
        "store_id": sim.store_id(&cfg.hash),
        "webhook_time_scale": cfg.webhook_time_scale,
        "legacy_base_path": format!("/stores/{}/api/v2", cfg.hash),
        "token_base_path": format!("/stores/{}/v2", cfg.hash),
        "hooks_path": format!("/stores/{}/v3/hooks", cfg.hash),
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| Box::new(control_error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}"))))
}

async fn list(State(sim): State<BigCommerceSimulator>) -> Response {
    let stores: Vec<Value> = sim.store_hashes().iter().filter_map(|h| sim.store(h)).map(|c| summary(&sim, &c)).collect();
    control_json(StatusCode::OK, &Value::Array(stores))
}

async fn add(State(sim): State<BigCommerceSimulator>, body: Bytes) -> Response {
    let dto: StoreDto = match parse(&body) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    if dto.hash.is_empty() || !dto.hash.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return control_error(StatusCode::BAD_REQUEST, "hash must be non-empty and made of letters, digits, '-' and '_'");
    }
    let demo = StoreConfig::default();
    let legacy_rate_limits = dto.legacy_rate_limits || dto.quota.as_ref().and_then(|q| q.legacy).unwrap_or(false);
    let quota = match dto.quota.map(QuotaDto::into_quota).transpose() {
        Ok(q) => q,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, &e),
    };
    let faults = match dto.faults.map(FaultsDto::into_faults).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return control_error(StatusCode::BAD_REQUEST, &e),
    };
    let store_id = match dto.store_id.as_ref().map(store_id).transpose() {
        Ok(i) => i,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, &e),
    };
    let webhook_time_scale = match dto.webhook_time_scale.map(check_time_scale).transpose() {
        Ok(t) => t.unwrap_or(demo.webhook_time_scale),
        Err(e) => return control_error(StatusCode::BAD_REQUEST, &e),
    };
    let cfg = StoreConfig {
        hash: dto.hash,
        username: dto.username.unwrap_or(demo.username),
        api_token: dto.api_token.unwrap_or(demo.api_token),
        seed_orders: dto.seed_orders.unwrap_or(demo.seed_orders),
        seed_customers: dto.seed_customers.unwrap_or(demo.seed_customers),
        seed_products: dto.seed_products.unwrap_or(demo.seed_products),
        quota,
        legacy_rate_limits,
        faults,
        store_id,
        webhook_time_scale,
    };
    if cfg.seed_orders > 100_000 || cfg.seed_customers > 100_000 || cfg.seed_products > 100_000 {
        return control_error(StatusCode::BAD_REQUEST, "seed sizes are limited to 100000 records each");
    }
    sim.add_store(cfg.clone());
    control_json(StatusCode::CREATED, &summary(&sim, &cfg))
}

async fn show(State(sim): State<BigCommerceSimulator>, Path(hash): Path<String>) -> Response {
    match sim.store(&hash) {
        Some(c) => control_json(StatusCode::OK, &summary(&sim, &c)),
        None => control_error(StatusCode::NOT_FOUND, "no such store"),
    }
}

async fn remove(State(sim): State<BigCommerceSimulator>, Path(hash): Path<String>) -> Response {
    if sim.remove_store(&hash) {
        Response::builder().status(StatusCode::NO_CONTENT).body(axum::body::Body::empty()).unwrap_or_default()
    } else {
        control_error(StatusCode::NOT_FOUND, "no such store")
    }
}

async fn set_faults(State(sim): State<BigCommerceSimulator>, Path(hash): Path<String>, body: Bytes) -> Response {
    if sim.store(&hash).is_none() {
        return control_error(StatusCode::NOT_FOUND, "no such store");
    }
    let dto: FaultsDto = match parse(&body) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match dto.into_faults() {
        Ok(f) => {
            sim.set_faults(&hash, f);
            show(State(sim), Path(hash)).await
        }
        Err(e) => control_error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn set_quota(State(sim): State<BigCommerceSimulator>, Path(hash): Path<String>, body: Bytes) -> Response {
    if sim.store(&hash).is_none() {
        return control_error(StatusCode::NOT_FOUND, "no such store");
    }
    let dto: Option<QuotaDto> = match parse(&body) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    if let Some(legacy) = dto.as_ref().and_then(|d| d.legacy) {
        sim.set_legacy_rate_limits(&hash, legacy);
    }
    match dto.map(QuotaDto::into_quota).transpose() {
        Ok(q) => {
            sim.set_quota(&hash, q);
            show(State(sim), Path(hash)).await
        }
        Err(e) => control_error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn requests(State(sim): State<BigCommerceSimulator>, Path(hash): Path<String>) -> Response {
    if sim.store(&hash).is_none() {
        return control_error(StatusCode::NOT_FOUND, "no such store");
    }
    let recent = sim.recent_requests(&hash);
    control_json(StatusCode::OK, &json!({ "hash": hash, "count": sim.request_count(&hash), "recent": recent }))
}

async fn reset(State(sim): State<BigCommerceSimulator>, Path(hash): Path<String>) -> Response {
    if sim.reset_data(&hash) {
        show(State(sim), Path(hash)).await
    } else {
        control_error(StatusCode::NOT_FOUND, "no such store")
    }
}

async fn set_webhooks(State(sim): State<BigCommerceSimulator>, Path(hash): Path<String>, body: Bytes) -> Response {
    if sim.store(&hash).is_none() {
        return control_error(StatusCode::NOT_FOUND, "no such store");
    }
    let dto: WebhooksDto = match parse(&body) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match check_time_scale(dto.time_scale) {
        Ok(scale) => {
            sim.set_webhook_time_scale(&hash, scale);
            show(State(sim), Path(hash)).await
        }
        Err(e) => control_error(StatusCode::BAD_REQUEST, &e),
    }
}

fn delivery_json(d: &Delivery) -> Value {
    let at_ms = d.at.duration_since(std::time::UNIX_EPOCH).map(|t| t.as_millis() as u64).unwrap_or(0);
    json!({
        "hook_id": d.hook_id,
        "scope": d.scope,
        "object_id": d.object_id,
        "attempt": d.attempt,
        "status": d.status,
        "error": d.error,
        "at": at_ms,
    })
}

async fn deliveries(State(sim): State<BigCommerceSimulator>, Path(hash): Path<String>) -> Response {
    if sim.store(&hash).is_none() {
        return control_error(StatusCode::NOT_FOUND, "no such store");
    }
    let log: Vec<Value> = sim.webhook_deliveries(&hash).iter().map(delivery_json).collect();
    control_json(StatusCode::OK, &Value::Array(log))
}
