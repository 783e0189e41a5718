//! An HTTP proxy in front of moto for AWS JSON-protocol calls (CloudWatch Logs, EventBridge):
//! it records every call (its `X-Amz-Target` and JSON body) and lets a test check a call the
//! way AWS would (moto does not enforce PutLogEvents' limits), answer it itself (throttling,
//! service errors) or change what is forwarded and what comes back (per-entry failures).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Turns moto's answer (status, JSON body) into what the client gets.
pub type After = Box<dyn FnOnce(u16, Value) -> (u16, Value) + Send>;

/// What to do with one call.
pub enum Action {
    /// Forward to moto, with the body replaced when given, and the answer rewritten by
    /// `After` when given.
    Forward(Option<Value>, Option<After>),
    /// Answer with this status and JSON body (an AWS error: `{"__type": …, "message": …}`).
    Reply(u16, Value),
}

pub type Hook = Arc<dyn Fn(&str, &Value) -> Action + Send + Sync>;

/// One call as the client sent it, and the status the client got.
#[derive(Debug, Clone)]
pub struct Call {
    pub target: String,
    pub body: Value,
    pub status: u16,
}

pub struct Proxy {
    pub endpoint: String,
    pub calls: Arc<Mutex<Vec<Call>>>,
    task: tokio::task::JoinHandle<()>,
}

/// An AWS JSON-protocol error answer.
pub fn aws_error(status: u16, kind: &str, message: &str) -> Action {
    Action::Reply(
        status,
        serde_json::json!({"__type": kind, "message": message}),
    )
}

impl Proxy {
    /// Listen on a free loopback port and forward to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str, hook: Hook) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let log = calls.clone();
        let (endpoint, task) = super::http_server::serve(move |req| {
            let (hook, up, log) = (hook.clone(), upstream.clone(), log.clone());
            async move { handle(req, &hook, &up, &log).await }
        })
        .await;
        Proxy {
            endpoint,
            calls,
            task,
        }
    }

    /// The recorded calls with this target suffix (e.g. `PutLogEvents`).
    pub fn calls_of(&self, op: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.target.ends_with(&format!(".{op}")))
            .cloned()
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn handle(
    req: Request<Incoming>,
    hook: &Hook,
    upstream: &str,
    log: &Mutex<Vec<Call>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let raw = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let json: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let action = hook(&target, &json);
    let (status, out) = match action {
        Action::Reply(status, body) => (status, serde_json::to_vec(&body).unwrap()),
        Action::Forward(new_body, after) => {
            let send = match &new_body {
                Some(b) => Bytes::from(serde_json::to_vec(b).unwrap()),
                None => raw.clone(),
            };
            let (status, answer) = forward(&parts, send, upstream).await;
            match after {
                Some(f) => {
                    let v = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                    let (s, v) = f(status, v);
                    (s, serde_json::to_vec(&v).unwrap())
                }
                None => (status, answer),
            }
        }
    };
    log.lock().unwrap().push(Call {
        target,
        body: json,
        status,
    });
    respond(status, out)
}

async fn forward(
    parts: &hyper::http::request::Parts,
    body: Bytes,
    upstream: &str,
) -> (u16, Vec<u8>) {
    let Ok(stream) = tokio::net::TcpStream::connect(upstream).await else {
        return (
            503,
            br#"{"__type":"ServiceUnavailableException","message":"proxy: upstream down"}"#
                .to_vec(),
        );
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone());
    for (k, v) in &parts.headers {
        if k != "content-length" && k != "host" {
            b = b.header(k, v);
        }
    }
    let req = b
        .header("host", upstream)
        .header("content-length", body.len())
        .body(Full::new(body))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}
