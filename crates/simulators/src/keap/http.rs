//! The routes, and the JSON helpers of the control API.

use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::header::CONTENT_TYPE;
use http::StatusCode;
use serde_json::json;

use super::{control, oauth, rpc, KeapSimulator};

pub(crate) fn router(sim: KeapSimulator) -> Router {
    Router::new()
        .route("/app/oauth/authorize", get(oauth::authorize_get).post(oauth::authorize_post))
        .route("/token", post(oauth::token))
        // The codec refuses documents over its limit; let them reach it.
        .route("/crm/xmlrpc/v1", post(rpc::handle).layer(DefaultBodyLimit::max(super::xmlrpc::MAX_INPUT_BYTES + 1)))
        .merge(control::routes())
        .fallback(|| async { control_error(StatusCode::NOT_FOUND, "no such path") })
        .with_state(sim)
}

pub(crate) fn control_json(status: StatusCode, v: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(v.to_string()))
        .unwrap_or_default()
}

pub(crate) fn control_error(status: StatusCode, message: &str) -> Response {
    control_json(status, &json!({ "error": message }))
}
