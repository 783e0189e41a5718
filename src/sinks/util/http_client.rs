//! What the HTTP-based sinks share: one pooled client per sink (reqwest on rustls; HTTP/1.1
//! keep-alive, HTTP/2 where the server offers it; proxies from HTTP_PROXY / HTTPS_PROXY /
//! NO_PROXY), timeouts, and the reading of answers: which statuses are worth retrying, and
//! `Retry-After`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::driver::SendError;
use super::error::SetupError;
use super::secret::Secret;
use super::transport::Transport;
use crate::config::redact;
use serde::Deserialize;

/// An `http://` or `https://` URL from the config key `key`.
pub fn http_url(key: &str, s: &str) -> Result<reqwest::Url, crate::config::FieldError> {
    use crate::config::FieldError;
    let shown = redact::url(s);
    let u =
        reqwest::Url::parse(s).map_err(|e| FieldError::new(&[key], format!("{shown:?}: {e}")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(FieldError::new(
            &[key],
            format!("{shown:?}: must be an http:// or https:// URL"),
        ));
    }
    Ok(u)
}

/// The client of one sink.
pub fn client(sink: &str, t: &Transport) -> Result<reqwest::Client, SetupError> {
    let b = reqwest::Client::builder()
        .user_agent(concat!("trailship/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(t.connect_timeout)
        .timeout(t.request_timeout)
        .pool_idle_timeout(Duration::from_secs(60));
    t.tls
        .apply(sink, b)?
        .build()
        .map_err(|e| SetupError::HttpClient(e.to_string()))
}

/// `Retry-After`: delay seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// Whether an HTTP status is worth retrying: 408, 429 and 5xx.
pub fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// The start of an answer's body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(&body[..body.len().min(300)]);
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A non-success answer as a send error: says the endpoint, the status, the body's start and
/// whether it will be retried.
pub fn status_error(
    endpoint: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> SendError {
    let text = redact::in_text(&format!(
        "{endpoint} answered HTTP {}: {}",
        status.as_u16(),
        snippet(body)
    ));
    if retryable_status(status) {
        SendError::Retryable {
            message: format!("{text} (will be retried)"),
            retry_after: retry_after(headers),
        }
    } else {
        SendError::Permanent(format!("{text} (not retried)"))
    }
}

/// A request that got no answer (connect, TLS, timeout, reset): retried.
pub fn request_error(endpoint: &str, e: &reqwest::Error) -> SendError {
    let mut text = format!("{endpoint}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    // reqwest's own message quotes the URL, userinfo and query included.
    let text = redact::in_text(&text);
    if e.is_builder() {
        SendError::Permanent(format!("{text} (not retried)"))
    } else {
        SendError::retryable(format!("{text} (will be retried)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        h.insert(
            "retry-after",
            later
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string()
                .parse()
                .unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn statuses() {
        for (s, r) in [
            (408, true),
            (429, true),
            (500, true),
            (503, true),
            (400, false),
            (401, false),
            (404, false),
            (413, false),
        ] {
            assert_eq!(retryable_status(StatusCode::from_u16(s).unwrap()), r, "{s}");
        }
    }
}

/// `auth = { strategy = "basic" | "bearer", … }` of the HTTP sinks.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    Basic {
        user: String,
        password: Option<Secret>,
        password_file: Option<String>,
    },
    Bearer {
        token: Option<Secret>,
        token_file: Option<String>,
    },
}

impl HttpAuth {
    /// The `Authorization` header value (secrets from files read here, at start-up).
    pub fn header(&self) -> Result<Secret, SetupError> {
        use base64::Engine;
        let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match self {
            HttpAuth::Basic {
                user,
                password,
                password_file,
            } => {
                let p = Secret::resolve(password, password_file, "auth.password")?.ok_or(
                    SetupError::SecretMissing {
                        what: "auth.password",
                    },
                )?;
                Ok(Secret::new(format!(
                    "Basic {}",
                    encode(format!("{user}:{}", p.expose()).as_bytes())
                )))
            }
            HttpAuth::Bearer { token, token_file } => {
                let t = Secret::resolve(token, token_file, "auth.token")?
                    .ok_or(SetupError::SecretMissing { what: "auth.token" })?;
                Ok(Secret::new(format!("Bearer {}", t.expose())))
            }
        }
    }
}
