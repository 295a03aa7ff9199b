//! A JSON body extractor whose rejections use the Cloud Elements error shape
//! and say where the JSON went wrong.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::ApiError;

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
        if !is_json {
            return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Expected Content-Type: application/json"));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("Request body larger than {} bytes", crate::MAX_BODY_BYTES))
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "Could not read the request body")
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            // serde_json's message names the line and column; it quotes no input.
            ApiError::new(StatusCode::BAD_REQUEST, format!("Malformed JSON: {e}"))
        })
    }
}
