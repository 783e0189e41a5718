//! AWS access shared by every AWS component: region, endpoint override, optional assumed role.
//! Credentials come from the SDK's standard chain (environment, shared profile and SSO, web
//! identity / IRSA, EKS Pod Identity, ECS, EC2 instance metadata with IMDSv2); nothing here
//! signs or stores credentials itself.

mod error;
pub mod trail_keys;

pub use error::{AwsError, BoundError, FlagError};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
}

/// The keys every AWS component takes.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AwsAccess {
    /// Region; otherwise from the environment / profile / instance metadata.
    pub region: Option<String>,
    /// Endpoint override (emulators, VPC endpoints, S3-compatible stores). With it, S3 is
    /// addressed path-style.
    pub endpoint: Option<String>,
    pub assume_role: Option<AssumeRole>,
}

impl AwsAccess {
    /// Take `region`, `endpoint` and `assume_role` out of a component's table (serde cannot
    /// flatten them into configs that refuse unknown keys).
    /// The keys every AWS component takes out of its table.
    pub const KEYS: &'static [&'static str] = &["region", "endpoint", "assume_role"];

    pub fn take(table: &mut toml::Table) -> Result<AwsAccess, crate::config::FieldError> {
        let mut keys = toml::Table::new();
        for k in Self::KEYS {
            if let Some(v) = table.remove(*k) {
                keys.insert(k.to_string(), v);
            }
        }
        crate::config::from_table(keys)
    }

    /// Build the SDK configuration for this component.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &self.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(e) = &self.endpoint {
            loader = loader.endpoint_url(e.clone());
        }
        let base = loader.load().await;
        let Some(role) = &self.assume_role else {
            return base;
        };
        let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.role_arn.clone())
            .session_name(
                role.session_name
                    .clone()
                    .unwrap_or_else(|| "trailship".into()),
            )
            .configure(&base);
        if let Some(id) = &role.external_id {
            provider = provider.external_id(id.clone());
        }
        let provider = provider.build().await;
        base.into_builder()
            .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build()
    }

    /// An S3 client (path-style when an endpoint override is set).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let cfg = self.sdk_config().await;
        let s3 = aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(self.endpoint.is_some())
            .build();
        aws_sdk_s3::Client::from_conf(s3)
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    pub async fn cloudwatch_logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk_config().await)
    }

    pub async fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk_config().await)
    }
}

/// Error codes AWS services use for throttling and transient server trouble (the SDK's own
/// retry classifier lists the same codes); they are worth retrying whatever the HTTP status
/// (JSON-protocol services answer throttling with a 400).
pub const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServiceError",
    "InternalException",
];

/// `s3://bucket/prefix` → (bucket, prefix).
pub fn parse_url(url: &str) -> Result<(String, String), AwsError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| AwsError::NotS3Url { url: url.into() })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(AwsError::NoBucket { url: url.into() });
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// Whether a failed SDK call of a sink is worth retrying: throttling and transient codes,
/// 408, 429, 5xx and failures without an answer (network, timeout) are; other 4xx answers
/// (bad request, access denied, missing resource) are not.
pub fn sink_error<E>(
    what: &str,
    e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> crate::core::send::SendError
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
{
    use crate::core::send::SendError;
    let text = format!("{what}: {}", sdk_error_text(e));
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    if e.code().is_some_and(|c| RETRYABLE_CODES.contains(&c)) {
        return SendError::retryable(text);
    }
    match e.raw_response().map(|r| r.status().as_u16()) {
        Some(s) if (400..500).contains(&s) && s != 408 && s != 429 => SendError::Permanent(text),
        _ => SendError::retryable(text),
    }
}

/// The display form of an SDK error with its service message (the default `Display` of SDK
/// errors says only "service error").
pub fn error_text<E: std::error::Error>(e: &E) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    // An endpoint override's userinfo or query must not reach a log.
    crate::config::redact::in_text(&s)
}

/// An SDK call's error with what the endpoint answered: HTTP status and the start of the body
/// (services and emulators sometimes answer in a shape the client cannot parse, e.g. an XML
/// SignatureDoesNotMatch to a JSON-protocol client).
pub fn sdk_error_text<E: std::error::Error + 'static>(
    e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> String {
    let mut s = error_text(e);
    if let Some(raw) = e.raw_response() {
        s.push_str(&format!(" (HTTP {}", raw.status().as_u16()));
        if let Some(body) = raw.body().bytes().filter(|b| !b.is_empty()) {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
            s.push_str(": ");
            s.push_str(&crate::config::redact::in_text(text.trim()));
        }
        s.push(')');
    }
    s
}

/// Every key under `prefix` in `bucket` (ListObjectsV2, all pages), for the one-shot commands.
pub async fn list_keys(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, AwsError> {
    let mut out = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::List {
            bucket: bucket.into(),
            prefix: prefix.into(),
            detail: error_text(&e),
        })?;
        out.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(String::from)),
        );
    }
    Ok(out)
}

/// An object's bytes and its user metadata (`x-amz-meta-*`), read whole.
pub async fn get_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<(bytes::Bytes, std::collections::HashMap<String, String>), AwsError> {
    let o = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| AwsError::Get {
            bucket: bucket.into(),
            key: key.into(),
            detail: error_text(&e),
        })?;
    let meta = o.metadata().cloned().unwrap_or_default();
    let body = o
        .body
        .collect()
        .await
        .map_err(|e| AwsError::Body {
            bucket: bucket.into(),
            key: key.into(),
            detail: e.to_string(),
        })?
        .into_bytes();
    Ok((body, meta))
}
