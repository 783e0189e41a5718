//! What a sink's send returns when it fails: the retryable/permanent split every sink, the
//! driver and the AWS error classification share.

use std::time::Duration;

/// Why sending failed.
#[derive(Debug, Clone)]
pub enum SendError {
    /// Worth trying again (I/O error, 429, 5xx, timeout). `retry_after` overrides the backoff.
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (a rejected event, a 400).
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
#[derive(Debug)]
pub struct ItemError {
    pub index: usize,
    pub error: SendError,
}
