//! The HTTP API, on `[api] address` (loopback by default; only when configured): `/health`
//! (the process answers), `/ready` (the pipeline is built and running, not stopping, and no
//! sink has been failing for longer than `stuck_after`) and `/metrics` (every metric in the
//! Prometheus text format).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use tokio::task::JoinHandle;

use crate::config::ApiConfig;
use crate::core::run::Health;
use crate::telemetry;

fn reply(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn ready(health: &Health, stuck_after: Duration) -> (u16, String) {
    if !health.is_ready() {
        return (
            503,
            "not ready: the pipeline is starting or stopping\n".into(),
        );
    }
    let stuck = health.stuck_sinks(stuck_after);
    let full = health.full_buffers();
    if stuck.is_empty() && full.is_empty() {
        return (200, "ready\n".into());
    }
    let list: Vec<String> = stuck
        .iter()
        .map(|(sink, s)| format!("sink {sink} failing for {s:.0}s"))
        .chain(
            full.iter()
                .map(|sink| format!("sink {sink}'s disk buffer is full (its sources wait)")),
        )
        .collect();
    (503, format!("not ready: {}\n", list.join("; ")))
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    health: Arc<Health>,
    stuck_after: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = "text/plain; charset=utf-8";
    Ok(match (req.method().as_str(), req.uri().path()) {
        ("GET", "/health") => reply(200, text, "ok\n".into()),
        ("GET", "/ready") => {
            let (status, body) = ready(&health, stuck_after);
            reply(status, text, body)
        }
        ("GET", "/metrics") => reply(200, "text/plain; version=0.0.4", telemetry::prometheus()),
        ("GET", _) => reply(404, text, "not found: /health, /ready, /metrics\n".into()),
        _ => reply(405, text, "GET only\n".into()),
    })
}

/// Listen on `addr` (an error if it cannot: the process does not start without its API).
pub async fn serve(
    api: &ApiConfig,
    health: Arc<Health>,
) -> Result<JoinHandle<()>, super::CliError> {
    let (addr, stuck_after) = (api.address, api.stuck_after);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| super::CliError::Listen { addr, source })?;
    tracing::info!(address = %addr, "HTTP API listening (/health, /ready, /metrics)");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let health = health.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        io,
                        hyper::service::service_fn(move |r| handle(r, health.clone(), stuck_after)),
                    )
                    .await;
            });
        }
    }))
}
