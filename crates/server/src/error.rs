//! The Cloud Elements error body: `{"message", "requestId", "providerMessage"}`.

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use axum::response::{IntoResponse, Response};

/// An error a handler answers with. Internal detail goes to the log, never here.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// What the vendor said, when it said something.
    pub provider_message: Option<String>,
    /// Sent as `Retry-After` (whole seconds, rounded up): when a throttled vendor
    /// may be called again.
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), provider_message: None, retry_after: None }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// A failure of ours: logged in full, answered with a generic message.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error; see the server log")
    }
}

impl From<switchyard_engine::EngineError> for ApiError {
    fn from(e: switchyard_engine::EngineError) -> Self {
        ApiError { status: e.status, message: e.message, provider_message: e.provider_message, retry_after: e.retry_after }
    }
}

impl From<switchyard_store::StoreError> for ApiError {
    fn from(e: switchyard_store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The request-id middleware renders the body, so it can carry the id.
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub message: String,
    /// The `Elements-Request-Id` of the call, to quote when asking for help.
    pub request_id: String,
    /// What the vendor said, when the error came from the vendor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message: Option<String>,
}
