//! An in-test HTTP server (hyper, loopback) for protocols with no runnable implementation here
//! (Splunk HEC, Elasticsearch bulk, a generic HTTP collector). It records every request (gzip
//! bodies decoded) and answers through a handler that follows the protocol under test.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Served {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: hyper::HeaderMap,
    /// The body, gunzipped when it was sent with `Content-Encoding: gzip`.
    pub body: Vec<u8>,
    pub gzip: bool,
    pub at: Instant,
}

impl Served {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The answer to one request.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (a slow server).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn after(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

pub type Handler = Arc<dyn Fn(&Served) -> Reply + Send + Sync>;

/// Accept connections on a free loopback port and answer each request with `handle`.
/// Returns the base URL and the accepting task.
pub async fn serve<F, Fut>(handle: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let h = handle.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, task)
}

pub struct Server {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Served>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(handler: Handler) -> Server {
        Self::start_with(handler, true).await
    }

    /// A server that keeps no record of the requests (benchmarks: bodies add up).
    pub async fn start_unrecorded(handler: Handler) -> Server {
        Self::start_with(handler, false).await
    }

    async fn start_with(handler: Handler, record: bool) -> Server {
        let requests: Arc<Mutex<Vec<Served>>> = Arc::default();
        let log = requests.clone();
        let (url, task) = serve(move |req: Request<hyper::body::Incoming>| {
            let (h, log) = (handler.clone(), log.clone());
            async move {
                let (parts, body) = req.into_parts();
                let raw = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let gzip = parts
                    .headers
                    .get("content-encoding")
                    .is_some_and(|v| v.as_bytes() == b"gzip");
                let served = Served {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body: if gzip {
                        super::gunzip(&raw)
                    } else {
                        raw.to_vec()
                    },
                    gzip,
                    at: Instant::now(),
                };
                let reply = h(&served);
                if record {
                    log.lock().unwrap().push(served);
                }
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                let mut b = Response::builder().status(reply.status);
                for (k, v) in &reply.headers {
                    b = b.header(k, v);
                }
                b.body(Full::new(Bytes::from(reply.body))).unwrap()
            }
        })
        .await;
        Server {
            url,
            requests,
            task,
        }
    }

    pub fn requests_to(&self, path_prefix: &str) -> Vec<Served> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.uri.starts_with(path_prefix))
            .cloned()
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A receiver that records every eventID it is sent (NDJSON bodies).
pub async fn collector() -> (Server, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    let server = Server::start_unrecorded(Arc::new(move |r: &Served| {
        let mut g = g.lock().unwrap();
        for l in String::from_utf8_lossy(&r.body).lines() {
            g.push(super::event_id(&serde_json::from_str(l).unwrap()));
        }
        Reply::json(200, serde_json::json!({"ok": true}))
    }))
    .await;
    (server, got)
}

/// A collector behind a switch that is off: a SIEM that is down until `switch.set(true)`.
pub async fn siem_down() -> (Server, Arc<Mutex<Vec<String>>>, super::switch::Switch) {
    let (server, got) = collector().await;
    let switch = super::switch::Switch::start(&server.url).await;
    switch.set(false);
    (server, got, switch)
}
