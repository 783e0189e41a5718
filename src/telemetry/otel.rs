//! `[opentelemetry]`: optional OTLP/HTTP export of the same metrics `/metrics` serves (counters
//! and gauges read from the registry at each export, histograms recorded as they happen) and
//! of traces: one span per unit of work read (a trail file, an S3 object), and one per batch a
//! sink delivers, a child of the unit its first event came from and linked to the others.
//! Resource attributes come from the environment: `OTEL_SERVICE_NAME` (default `trailship`),
//! `OTEL_RESOURCE_ATTRIBUTES`, the host name, and the Kubernetes pod, namespace and node when
//! the downward API sets `POD_NAME`, `POD_NAMESPACE`, `POD_UID` and `NODE_NAME`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::{Link, Span as _, SpanContext, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, metrics::Meter};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use serde::Deserialize;

use super::catalog::{self, Kind};
use super::registry::{self, LATENCY_BUCKETS, Labels};
use crate::config::{FieldError, from_table, redact, units};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelConfig {
    /// The collector's OTLP/HTTP base URL; `/v1/metrics` and `/v1/traces` are added.
    pub endpoint: String,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// How often metrics are exported.
    #[serde(default = "default_interval", deserialize_with = "units::duration")]
    pub interval: Duration,
    #[serde(default = "default_timeout", deserialize_with = "units::duration")]
    pub timeout: Duration,
    #[serde(default = "yes")]
    pub metrics: bool,
    #[serde(default = "yes")]
    pub traces: bool,
    /// Extra request headers (e.g. an API key: use `${ENV}` interpolation, not the file).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn yes() -> bool {
    true
}

impl OtelConfig {
    pub fn parse(table: toml::Table) -> Result<OtelConfig, FieldError> {
        let c: OtelConfig = from_table(table)?;
        let url = reqwest::Url::parse(&c.endpoint).map_err(|e| FieldError {
            path: vec!["endpoint".into()],
            message: format!("{:?} is not a URL: {e}", redact::url(&c.endpoint)),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FieldError {
                path: vec!["endpoint".into()],
                message: format!(
                    "{:?}: OTLP/HTTP needs http:// or https://",
                    redact::url(&c.endpoint)
                ),
            });
        }
        if c.interval < Duration::from_millis(100) {
            return Err(FieldError {
                path: vec!["interval".into()],
                message: "must be at least 100ms".into(),
            });
        }
        Ok(c)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint.trim_end_matches('/'))
    }
}

/// The exporters' HTTP client: our reqwest (rustls), its requests run on the daemon's runtime
/// (the SDK exports from its own threads).
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    rt: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let url = redact::url(&request.uri().to_string());
        let req = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let sent = self
            .rt
            .spawn(async move {
                let r = http.execute(req).await?;
                let status = r.status();
                let headers = r.headers().clone();
                let body = r.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await?;
        let (status, headers, body) = sent.inspect_err(|e| {
            let e = redact::in_text(&e.to_string());
            tracing::warn!(endpoint = %url, error = %e, "OpenTelemetry export failed; this export is dropped (the pipeline is not affected)");
        })?;
        if !status.is_success() {
            tracing::warn!(endpoint = %url, status = status.as_u16(), "OpenTelemetry collector refused an export");
        }
        let mut resp = http::Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

static METER: OnceLock<Meter> = OnceLock::new();
static TRACER: OnceLock<Tracer> = OnceLock::new();
static HISTOGRAMS: OnceLock<Mutex<HashMap<&'static str, opentelemetry::metrics::Histogram<f64>>>> =
    OnceLock::new();

/// The export running; `shutdown` flushes what is pending.
pub struct Exporters {
    meters: Option<SdkMeterProvider>,
    tracers: Option<SdkTracerProvider>,
}

impl Exporters {
    pub fn shutdown(self) {
        if let Some(m) = self.meters
            && let Err(e) = m.shutdown()
        {
            tracing::warn!(error = %e, "OpenTelemetry: the last metrics export failed");
        }
        if let Some(t) = self.tracers
            && let Err(e) = t.shutdown()
        {
            tracing::warn!(error = %e, "OpenTelemetry: the last traces export failed");
        }
    }
}

fn otel_name(name: &str) -> String {
    format!("trailship.{}", name.strip_suffix("_total").unwrap_or(name))
}

fn attributes(l: &Labels) -> Vec<KeyValue> {
    l.iter()
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

/// The host name from the kernel (gethostname: /proc/sys is hidden under ProcSubset=pid).
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// The resource: the SDK's detectors (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) plus what
/// this process knows, where the environment did not already say it.
pub fn resource() -> Resource {
    let env_attrs = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let said = |key: &str| {
        env_attrs
            .split(',')
            .any(|kv| kv.trim().starts_with(&format!("{key}=")))
    };
    let mut b = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() && !said("service.name") {
        b = b.with_service_name("trailship");
    }
    let mut attrs = vec![(
        "service.version",
        Some(env!("CARGO_PKG_VERSION").to_string()),
    )];
    attrs.push(("host.name", hostname()));
    for (key, vars) in [
        ("k8s.pod.name", ["POD_NAME", "K8S_POD_NAME"]),
        (
            "k8s.namespace.name",
            ["POD_NAMESPACE", "K8S_NAMESPACE_NAME"],
        ),
        ("k8s.pod.uid", ["POD_UID", "K8S_POD_UID"]),
        ("k8s.node.name", ["NODE_NAME", "K8S_NODE_NAME"]),
    ] {
        let v = vars
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
        attrs.push((key, v));
    }
    b.with_attributes(
        attrs
            .into_iter()
            .filter(|(k, _)| !said(k))
            .filter_map(|(k, v)| v.map(|v| KeyValue::new(k, v))),
    )
    .build()
}

/// Why the OpenTelemetry export cannot start; the daemon then exits as on a config error.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("opentelemetry: cannot build the HTTP client: {0}")]
    HttpClient(String),
    #[error("opentelemetry: no runtime: {0}")]
    NoRuntime(String),
    #[error("opentelemetry {signal} exporter: {detail}")]
    Exporter {
        signal: &'static str,
        detail: String,
    },
}

/// Start exporting (from inside the runtime). Errors name the setting that is wrong.
pub fn start(cfg: &OtelConfig) -> Result<Exporters, OtelError> {
    let protocol = match cfg.protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let headers: HashMap<String, String> = cfg.headers.clone().into_iter().collect();
    let client = || -> Result<Client, OtelError> {
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(cfg.timeout)
                .build()
                .map_err(|e| OtelError::HttpClient(e.to_string()))?,
            rt: tokio::runtime::Handle::try_current()
                .map_err(|e| OtelError::NoRuntime(e.to_string()))?,
        })
    };
    let resource = resource();
    let mut out = Exporters {
        meters: None,
        tracers: None,
    };
    if cfg.metrics {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_protocol(protocol)
            .with_endpoint(cfg.url("v1/metrics"))
            .with_timeout(cfg.timeout)
            .with_headers(headers.clone())
            .build()
            .map_err(|e| OtelError::Exporter {
                signal: "metrics",
                detail: e.to_string(),
            })?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(cfg.interval)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource.clone())
            .build();
        let meter = opentelemetry::metrics::MeterProvider::meter(&provider, "trailship");
        register_observed(&meter);
        let _ = METER.set(meter);
        out.meters = Some(provider);
    }
    if cfg.traces {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_protocol(protocol)
            .with_endpoint(cfg.url("v1/traces"))
            .with_timeout(cfg.timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| OtelError::Exporter {
                signal: "traces",
                detail: e.to_string(),
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "trailship");
        let _ = TRACER.set(tracer);
        out.tracers = Some(provider);
    }
    tracing::info!(endpoint = %redact::url(&cfg.endpoint), metrics = cfg.metrics, traces = cfg.traces, "OpenTelemetry export on");
    Ok(out)
}

/// Counters and gauges are read from the registry at each export.
fn register_observed(meter: &Meter) {
    for m in catalog::METRICS {
        let name = m.name;
        match m.kind {
            Kind::Counter => {
                meter
                    .u64_observable_counter(otel_name(name))
                    .with_description(m.help)
                    .with_callback(move |o| {
                        for ((n, l), v) in registry::read().counters {
                            if n == name {
                                o.observe(v, &attributes(&l));
                            }
                        }
                    })
                    .build();
            }
            Kind::Gauge => {
                let unit = if name.ends_with("_seconds") { "s" } else { "" };
                meter
                    .f64_observable_gauge(otel_name(name))
                    .with_description(m.help)
                    .with_unit(unit)
                    .with_callback(move |o| {
                        for ((n, l), v) in registry::read().gauges {
                            if n == name {
                                o.observe(v, &attributes(&l));
                            }
                        }
                    })
                    .build();
            }
            Kind::Histogram => {}
        }
    }
}

/// A histogram series' OpenTelemetry side (when the export is on).
#[derive(Clone)]
pub struct Recorder {
    histogram: opentelemetry::metrics::Histogram<f64>,
    attributes: Arc<[KeyValue]>,
}

impl Recorder {
    pub fn record(&self, v: f64) {
        self.histogram.record(v, &self.attributes);
    }
}

pub fn recorder(name: &'static str, labels: &Labels) -> Option<Recorder> {
    let meter = METER.get()?;
    let cache = HISTOGRAMS.get_or_init(Default::default);
    let mut cache = cache.lock().ok()?;
    let histogram = cache
        .entry(name)
        .or_insert_with(|| {
            meter
                .f64_histogram(otel_name(name))
                .with_description(catalog::find(name).map_or("", |m| m.help))
                .with_unit("s")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build()
        })
        .clone();
    Some(Recorder {
        histogram,
        attributes: attributes(labels).into(),
    })
}

pub use crate::core::trace::TraceContext;

/// The span of reading one unit of work (ended when its events are all sent downstream).
pub struct UnitSpan(Option<opentelemetry_sdk::trace::Span>);

impl UnitSpan {
    pub fn start(source: &str, location: &str) -> UnitSpan {
        UnitSpan(TRACER.get().map(|t| {
            t.span_builder("read")
                .with_kind(SpanKind::Consumer)
                .with_attributes([
                    KeyValue::new("trailship.source", source.to_string()),
                    KeyValue::new("trailship.location", location.to_string()),
                ])
                .start(t)
        }))
    }

    pub fn context(&self) -> TraceContext {
        TraceContext::new(self.0.as_ref().map(|s| s.span_context().clone()))
    }

    pub fn end(&mut self, events: u64, skipped: u64) {
        if let Some(mut s) = self.0.take() {
            s.set_attribute(KeyValue::new("trailship.events", events as i64));
            s.set_attribute(KeyValue::new("trailship.skipped", skipped as i64));
            s.end();
        }
    }
}

impl Drop for UnitSpan {
    fn drop(&mut self) {
        if let Some(mut s) = self.0.take() {
            s.set_attribute(KeyValue::new("trailship.outcome", "abandoned"));
            s.end();
        }
    }
}

/// Links per delivery span at most (a batch can hold events of many units).
const MAX_LINKS: usize = 32;

/// The span of one batch a sink delivers.
pub struct DeliverSpan(Option<opentelemetry_sdk::trace::Span>);

impl DeliverSpan {
    /// `units`: the trace contexts of the batch's events (repeats are fine).
    pub fn start<'a>(sink: &str, units: impl Iterator<Item = &'a TraceContext>) -> DeliverSpan {
        let Some(t) = TRACER.get() else {
            return DeliverSpan(None);
        };
        let mut seen: Vec<&SpanContext> = Vec::new();
        for u in units {
            if let Some(c) = u.span()
                && !seen.contains(&c)
            {
                seen.push(c);
                if seen.len() > MAX_LINKS {
                    break;
                }
            }
        }
        let parent = seen
            .first()
            .map(|c| Context::new().with_remote_span_context((*c).clone()))
            .unwrap_or_default();
        let links = seen
            .iter()
            .skip(1)
            .map(|c| Link::with_context((*c).clone()))
            .collect();
        DeliverSpan(Some(
            t.span_builder("deliver")
                .with_kind(SpanKind::Producer)
                .with_attributes([KeyValue::new("trailship.sink", sink.to_string())])
                .with_links(links)
                .start_with_context(t, &parent),
        ))
    }

    pub fn end(mut self, events: usize, attempts: usize, outcome: &'static str) {
        if let Some(mut s) = self.0.take() {
            s.set_attribute(KeyValue::new("trailship.events", events as i64));
            s.set_attribute(KeyValue::new("trailship.attempts", attempts as i64));
            s.set_attribute(KeyValue::new("trailship.outcome", outcome));
            if outcome != "delivered" {
                s.set_status(opentelemetry::trace::Status::error(outcome));
            }
            s.end();
        }
    }
}
