//! What a hub operation, an OAuth refresh or a webhook registration answers when it
//! fails: an HTTP status with words for the caller, and the vendor's own words when
//! it said something. The server renders it in the Cloud Elements error shape.

use http::StatusCode;

/// A failure as the caller will see it. Internal detail goes to the log, never here.
#[derive(Debug, Clone)]
pub struct EngineError {
    pub status: StatusCode,
    pub message: String,
    /// What the vendor said, when it said something.
    pub provider_message: Option<String>,
    /// On a 429: how long until the instance may call its vendor again (the
    /// caller's `Retry-After`, in whole seconds rounded up).
    pub retry_after: Option<std::time::Duration>,
}

impl EngineError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        EngineError { status, message: message.into(), provider_message: None, retry_after: None }
    }

    /// The same error telling the caller when to come back.
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
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

    /// The same error carrying the vendor's words.
    pub fn with_provider_message(mut self, words: Option<String>) -> Self {
        self.provider_message = words;
        self
    }
}

impl From<switchyard_store::StoreError> for EngineError {
    fn from(e: switchyard_store::StoreError) -> Self {
        EngineError::internal(e)
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}
