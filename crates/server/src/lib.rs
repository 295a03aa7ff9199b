//! The HTTP API: `/elements/api-v2/...` plus `/healthz` and `/readyz`.
//!
//! Every response carries `Elements-Request-Id`; every error has the Cloud
//! Elements body. Handlers get the authenticated [`caller::Caller`] from an
//! extractor, so a route cannot forget to authenticate.

pub mod cache;
pub mod caller;
pub mod connect;
mod connections;
mod elements;
mod error;
mod extract;
pub mod events;
mod hub;
mod idempotency;
mod instances;
mod json_body;
pub mod metrics;
mod oauth;
mod objects;
mod openapi;
mod logs;
mod proxy;
mod secrets;
mod transformations;
pub mod session;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, patch, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use switchyard_elements::Catalog;
use switchyard_engine::Engine;
use switchyard_store::Store;

pub use caller::{new_secret, ActingAs};
pub use connections::ConnectionLimits;
pub use error::{ApiError, ErrorBody};

/// Largest request body accepted (larger: 413).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What every handler can reach, built once and shared by the router behind an
/// `Arc` (handlers take `State<Arc<AppState>>`). Cloning it copies dozens of
/// reference counts; the router never does.
#[derive(Clone)]
pub struct AppState {
    /// Everything between Switchyard and the vendors: store, vault, catalog,
    /// vendor calls, OAuth, webhook registration (see `switchyard_engine`).
    pub engine: Engine,
    /// Callers looked up recently (see `cache`).
    pub callers: cache::CallerCache,
    /// The demo credentials of `serve --sandbox`, served at `/sandbox`.
    pub sandbox: Option<Value>,
    /// Wakes the event delivery worker when an event is stored here.
    pub event_waker: switchyard_events::EventWaker,
    /// Tells the poller's scheduler of instance writes made here (and, on
    /// PostgreSQL, announced by other nodes), so polling follows at its next tick:
    /// the poller's own (`Poller::schedule_waker`).
    pub poll_schedule: switchyard_events::ScheduleWaker,
    /// Stores vendor webhook calls' events, many per durable commit.
    pub intake: webhooks::Intake,
    /// A vendor webhook call sent again within this long is a repeat, not a new
    /// event (`serve --event-dedupe-hours`). Read when the first call arrives.
    pub event_dedupe: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` names the client (`serve --trusted-proxy`),
    /// for per-address login throttling. [default: none]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl AppState {
    /// The state with the engine's defaults (vendor retries and limits, OAuth
    /// settings, the call log writing to `store`), instance health messages queued
    /// as events, and no sandbox; adjust the public fields after (and use
    /// [`AppState::set_event_waker`] for the waker).
    pub fn new(
        store: Store,
        vault: switchyard_vault::Vault,
        client: switchyard_engine::client::VendorClient,
        catalog: Catalog,
        paging_key: Vec<u8>,
    ) -> AppState {
        let engine = Engine::new(store, vault, client, Arc::new(catalog), paging_key);
        let mut state = AppState {
            engine,
            callers: cache::CallerCache::default(),
            sandbox: None,
            event_waker: switchyard_events::EventWaker::default(),
            poll_schedule: switchyard_events::ScheduleWaker::default(),
            intake: webhooks::Intake::default(),
            event_dedupe: switchyard_events::retention::DEFAULT_DEDUPE,
            trusted_proxies: Vec::new(),
        };
        state.set_event_waker(switchyard_events::EventWaker::default());
        state
    }

    /// The delivery worker to wake when an event is stored here (webhook calls,
    /// instance health messages).
    pub fn set_event_waker(&mut self, waker: switchyard_events::EventWaker) {
        let ctx = switchyard_events::Context {
            store: self.engine.store.clone(),
            vault: self.engine.vault.clone(),
            catalog: self.engine.catalog.clone(),
        };
        self.engine.health = Some(Arc::new(switchyard_events::HealthNotifier::new(ctx, waker.clone())));
        self.event_waker = waker;
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/elements", get(elements::list))
        .route("/elements/{key_or_id}", get(elements::get))
        .route("/elements/{key_or_id}/metadata", get(elements::metadata))
        .route("/elements/{key_or_id}/docs", get(elements::docs))
        .route("/elements/{key_or_id}/oauth/url", get(oauth::url))
        .route("/elements/{key_or_id}/instances", post(instances::create_for_element))
        .route(
            "/instances",
            get(instances::list).post(instances::create).put(instances::put_current).patch(instances::patch_current),
        )
        .route("/instances/configuration", get(instances::configuration_current))
        .route("/events/{element_key}/{instance_key}", post(webhooks::ingest))
        .route("/instances/events", get(events::list_all))
        .route("/instances/events/{event_id}", get(events::get))
        .route("/instances/events/{event_id}/redeliver", post(events::redeliver))
        .route("/instances/{id}/events", get(events::list_instance))
        .route("/instances/{id}/events/redeliver", post(events::redeliver_instance))
        .route("/instances/{id}/events/{event_id}", get(events::get_for_instance))
        .route(
            "/instances/{id}",
            get(instances::get).put(instances::put).patch(instances::patch).delete(instances::delete),
        )
        .route("/instances/{id}/configuration", get(instances::configuration))
        .route("/instances/{id}/configuration/{config_id}", patch(instances::patch_configuration))
        .route("/instances/{id}/enabled", put(instances::enable).delete(instances::disable))
        .route("/instances/{id}/token", post(instances::issue_token))
        .route("/instances/{id}/logs", get(logs::list))
        .route("/instances/{id}/docs", get(elements::instance_docs))
        .route("/objects", get(objects::list))
        .route("/objects/{object_name}/metadata", get(objects::metadata))
        .route("/hubs/{hub}/objects", get(objects::list_in_hub))
        .route("/hubs/{hub}/objects/{object_name}/metadata", get(objects::metadata_in_hub))
        .route("/elements/{key_or_id}/objects", get(objects::element_list))
        .route("/elements/{key_or_id}/objects/{object_name}/metadata", get(objects::element_metadata))
        .route(
            "/organizations/objects/definitions",
            get(objects::org_list).post(objects::org_create_many).delete(objects::org_delete_all),
        )
        .route(
            "/organizations/objects/{object_name}/definitions",
            get(objects::org_get).post(objects::org_create).put(objects::org_replace).delete(objects::org_delete),
        )
        .route(
            "/instances/{id}/objects/definitions",
            get(objects::instance_list).post(objects::instance_create_many).delete(objects::instance_delete_all),
        )
        .route(
            "/instances/{id}/objects/{object_name}/definitions",
            get(objects::instance_get).post(objects::instance_create).put(objects::instance_replace).delete(objects::instance_delete),
        )
        .route("/organizations/elements/{key_or_id}/transformations", get(transformations::org_list))
        .route(
            "/organizations/elements/{key_or_id}/transformations/{object_name}",
            get(transformations::org_get)
                .post(transformations::org_create)
                .put(transformations::org_replace)
                .delete(transformations::org_delete),
        )
        .route("/instances/{id}/transformations", get(transformations::instance_list).delete(transformations::instance_delete_all))
        .route(
            "/instances/{id}/transformations/{object_name}",
            get(transformations::instance_get)
                .post(transformations::instance_create)
                .put(transformations::instance_replace)
                .delete(transformations::instance_delete),
        )
        .route("/accounts", any(objects::accounts))
        .route("/accounts/{*path}", any(objects::accounts))
        .route("/hubs/{hub}/{*path}", any(hub::call))
        .route("/connect/sessions", post(connect::create))
        .route("/connect/sessions/{id}", get(connect::get))
        .route("/docs", get(openapi::document))
        .route("/proxy/{*path}", any(proxy::call))
        .route("/sandbox", get(sandbox))
        .route("/logout", post(session::logout_post));
    Router::new()
        .nest("/elements/api-v2", api)
        .route("/elements/j_spring_security_check", post(session::login))
        .route("/elements/j_spring_security_logout", get(session::logout_get))
        .route("/elements/api-v1/ui/getSecrets", get(secrets::get_secrets))
        .route("/healthz", get(|| async { Json(json!({"status": "up"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::render))
        // After every route, the nested ones included: it applies to those before it.
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn(metrics::track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id))
        // Shared, not cloned: axum clones the state for every route service and
        // extractor of a request, and an `AppState` clone is dozens of reference
        // counts and an allocation (issue 11's profile: ~9,000 instructions a call).
        .with_state(Arc::new(state))
}

/// No route has this path.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    let hint = if uri.path().starts_with("/elements/api-v2/") {
        "see GET /elements/api-v2/docs for the paths this API has"
    } else {
        "the API is under /elements/api-v2 (its paths: GET /elements/api-v2/docs)"
    };
    ApiError::not_found(format!("No such resource: {}; {hint}", uri.path()))
}

/// The path exists, not with this method (axum adds the `Allow` header to the answer).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not a method of {}; GET /elements/api-v2/docs lists the methods of each path", uri.path()),
    )
}

async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    match state.engine.store.ping().await {
        Ok(()) => Ok(Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "database unreachable");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Database unreachable"))
        }
    }
}

#[utoipa::path(get, path = "/sandbox", operation_id = "getSandbox", tag = "sandbox",
    responses((status = 200, description = "The demo credentials of the simulators (`serve --sandbox` only)", body = Object),
        (status = 404, description = "This server runs without --sandbox", body = ErrorBody)))]
async fn sandbox(
    State(state): State<Arc<AppState>>,
    _caller: caller::Caller,
) -> Result<Json<Value>, ApiError> {
    state
        .sandbox
        .clone()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("This server runs without --sandbox"))
}

/// Gives each request an id, puts it on the response, and renders error bodies
/// with it (so a user can quote the id and an operator can find the log line).
async fn request_id(request: Request, next: Next) -> Response {
    let id = new_request_id();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        // Headers a handler set on the error stay (a replay's `Idempotent-Replayed`);
        // the body, and so its type and length, are rendered here.
        let mut kept = std::mem::take(response.headers_mut());
        kept.remove(axum::http::header::CONTENT_TYPE);
        kept.remove(axum::http::header::CONTENT_LENGTH);
        let body = ErrorBody { message: error.message, request_id: id.clone(), provider_message: error.provider_message };
        response = (error.status, Json(body)).into_response();
        response.headers_mut().extend(kept);
        if let Some(wait) = error.retry_after {
            let seconds = switchyard_engine::calls::retry_after_seconds(wait);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
    // Every other answer is the handler's own: a hub or proxy answer keeps the
    // vendor's status and body. Rejections are `ApiError`s (crate::extract,
    // crate::json_body, the fallbacks of `router`), so none reaches here as text.
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("Elements-Request-Id", value);
    }
    tracing::debug!(id = %id, %method, %path, status = response.status().as_u16(), "answered");
    response
}

fn new_request_id() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().gen();
    format!("{n:032x}")
}

/// Serves with the default [`ConnectionLimits`] until `shutdown` completes, then
/// finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, state, ConnectionLimits::default(), shutdown).await
}

/// Serves `app` (the API of [`router`], with more routes merged, such as the
/// console's) with the given limits until `shutdown` completes.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    metrics::spawn_upkeep();
    connections::serve(listener, app, limits, shutdown).await
}

/// [`serve`] with the given limits on client connections.
pub async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(state), limits, shutdown).await
}
