//! Extractors whose rejections are Cloud Elements errors (`ApiError`, rendered with
//! the request id) that say what to send instead: axum's own answer plain text.
//! [`Path`] wraps `axum::extract::Path`, [`Body`] the raw body (`Bytes`); the JSON
//! body is `crate::json_body::JsonBody`. Routing misses (no route, a method the
//! path does not take) are answered in `crate::router`.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Path parameters, as `axum::extract::Path`; a value that does not parse is a 400
/// naming the parameter and what it must be.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                let params = RawPathParams::from_request_parts(parts, state).await.ok();
                let names: Vec<(String, String)> = params
                    .iter()
                    .flat_map(|p| p.iter().map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect();
                Err(path_error(rejection, &names))
            }
        }
    }
}

/// The parameter's name as the API documents it (`{id}`, `{configId}`).
fn documented(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// What a Rust type stands for, in the caller's words.
fn expected(type_name: &str) -> &'static str {
    match type_name {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number",
        "f32" | "f64" => "a number",
        "bool" => "true or false",
        _ => "text",
    }
}

/// At most 64 characters of what the caller sent, for quoting back.
fn quoted(value: &str) -> String {
    let mut v: String = value.chars().take(64).collect();
    if v.len() < value.len() {
        v.push('…');
    }
    v
}

/// `names` are the route's raw (percent-encoded) parameters, in path order, to name
/// the one that failed when axum reports only its value or index.
fn path_error(rejection: PathRejection, names: &[(String, String)]) -> ApiError {
    let bad = |key: &str, value: &str, type_name: &str| {
        let key = documented(key);
        let what = expected(type_name);
        let hint = match key.as_str() {
            "id" => " (an instance id, as GET /instances lists them)",
            "configId" => " (a configuration id, as GET /instances/{id}/configuration lists them)",
            _ => "",
        };
        ApiError::new(StatusCode::BAD_REQUEST, format!("{{{key}}} in the path must be {what}{hint}, not '{}'", quoted(value)))
    };
    let PathRejection::FailedToDeserializePathParams(e) = rejection else {
        // MissingPathParams: a route that extracts parameters it does not have.
        return ApiError::internal(rejection.body_text());
    };
    match e.kind() {
        ErrorKind::ParseErrorAtKey { key, value, expected_type } => bad(key, value, expected_type),
        ErrorKind::ParseErrorAtIndex { index, value, expected_type } => {
            bad(names.get(*index).map_or("parameter", |(k, _)| k.as_str()), value, expected_type)
        }
        ErrorKind::ParseError { value, expected_type } => {
            let key = if names.len() == 1 { names[0].0.as_str() } else { "parameter" };
            bad(key, value, expected_type)
        }
        ErrorKind::InvalidUtf8InPathParam { key } => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{{{}}} in the path is not UTF-8 once percent-decoded; percent-encode the UTF-8 bytes of the text", documented(key)),
        ),
        ErrorKind::DeserializeError { key, value, message } => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{{{}}} in the path cannot be '{}': {message}", documented(key), quoted(value)),
        ),
        // The route and the handler disagree: ours to fix, not the caller's.
        _ => ApiError::internal(e.body_text()),
    }
}

/// The request body as bytes; a body that cannot be read is a Cloud Elements error.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state).await.map(Body).map_err(body_error)
    }
}

/// A body too large (past `DefaultBodyLimit`) is a 413; one that broke off a 400.
pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {} bytes; send less per call", crate::MAX_BODY_BYTES),
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "The request body could not be read to its end; send it again")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_read_as_documented() {
        assert_eq!(documented("config_id"), "configId");
        assert_eq!(documented("id"), "id");
        assert_eq!(documented("key_or_id"), "keyOrId");
    }
}
