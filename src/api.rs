//! The HTTP API, on `[api] address` (loopback by default; only when configured): `/health`
//! (the process answers), `/ready` (the pipeline is built and running, not stopping) and
//! `/metrics` (every counter in the Prometheus text format).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use tokio::task::JoinHandle;

use crate::telemetry;

static READY: AtomicBool = AtomicBool::new(false);

/// Whether `/ready` answers 200: set once the pipeline runs, cleared when it stops.
pub fn set_ready(ready: bool) {
    READY.store(ready, Ordering::SeqCst);
}

fn reply(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = "text/plain; charset=utf-8";
    Ok(match (req.method().as_str(), req.uri().path()) {
        ("GET", "/health") => reply(200, text, "ok\n".into()),
        ("GET", "/ready") if READY.load(Ordering::SeqCst) => reply(200, text, "ready\n".into()),
        ("GET", "/ready") => reply(503, text, "not ready\n".into()),
        ("GET", "/metrics") => reply(200, "text/plain; version=0.0.4", telemetry::prometheus()),
        ("GET", _) => reply(404, text, "not found: /health, /ready, /metrics\n".into()),
        _ => reply(405, text, "GET only\n".into()),
    })
}

/// Listen on `addr` (an error if it cannot: the process does not start without its API).
pub async fn serve(addr: SocketAddr) -> Result<JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("api.address {addr}: cannot listen: {e}"))?;
    tracing::info!(address = %addr, "HTTP API listening (/health, /ready, /metrics)");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, hyper::service::service_fn(handle))
                    .await;
            });
        }
    }))
}
