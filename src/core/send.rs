//! What a sink's send returns when it fails: the retryable/permanent split every sink, the
//! driver and the AWS error classification share.

use std::time::Duration;

/// Why sending failed. The message names what failed (the endpoint, object or stream, and
/// the service's own words); the variant says what happens next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (I/O error, 429, 5xx, timeout). `retry_after` overrides the backoff.
    #[error("{message} (retried)")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (a rejected event, a 400).
    #[error("{0} (not retried)")]
    Permanent(String),
}

impl SendError {
    pub fn retryable(message: impl Into<String>) -> Self {
        SendError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            SendError::Retryable { message, .. } | SendError::Permanent(message) => message,
        }
    }
}

/// One event of a batch that failed while the others succeeded.
#[derive(Debug, thiserror::Error)]
#[error("event {index} of the batch: {error}")]
pub struct ItemError {
    pub index: usize,
    pub error: SendError,
}
