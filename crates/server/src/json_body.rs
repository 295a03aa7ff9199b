//! A JSON body extractor whose rejections use the Cloud Elements error shape
//! and say where the JSON went wrong. Every body it reads is a JSON object.

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
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(crate::extract::body_error)?;
        // serde_json's messages name the line and column, or the field and what it
        // takes (quoting at most the caller's own scalar back).
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Malformed JSON: {e}")))?;
        let kind = match &value {
            serde_json::Value::Object(_) => None,
            serde_json::Value::Array(_) => Some("an array"),
            serde_json::Value::String(_) => Some("a string"),
            serde_json::Value::Number(_) => Some("a number"),
            serde_json::Value::Bool(_) => Some("a boolean"),
            serde_json::Value::Null => Some("null"),
        };
        if let Some(kind) = kind {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("The body must be a JSON object, not {kind}")));
        }
        serde_path_to_error::deserialize(value).map(JsonBody).map_err(|e| {
            let at = e.path().to_string();
            let e = e.into_inner();
            if at == "." {
                ApiError::new(StatusCode::BAD_REQUEST, format!("The JSON body does not fit: {e}"))
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, format!("The JSON body does not fit at '{at}': {e}"))
            }
        })
    }
}
