//! `type = "syslog"`: events to a syslog receiver (rsyslog, syslog-ng, a SIEM's collector) over
//! UDP, TCP or TLS, framed by octet counting or newlines (RFC 6587), formatted as RFC 5424,
//! RFC 3164 or CEF (see `syslog_format`).
//!
//! A message over `max_message_size` (the receiver's own limit: a longer frame is cut by the
//! receiver and mis-frames everything after it on the connection) is never cut: it fails alone,
//! with the reason. Over TCP and TLS, a batch is written on one connection and counts as
//! delivered once written and flushed; a write error drops the connection and the batch is
//! sent again on a new one (reconnects back off through the driver's retries). A frame cut by
//! a broken connection is never continued on the next one. A connection the receiver closed
//! while idle is noticed before writing, not after.

pub mod format;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;

use self::format::{self as syslog_format, Format, Header};
use crate::config::{FieldError, units};
use crate::core::event::Event;
use crate::sinks::util::driver::{ItemError, SendError, SinkService};
use crate::sinks::util::transport::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Udp,
    #[default]
    Tcp,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 3.4.1): safe for any message.
    OctetCounting,
    /// `MSG LF` (RFC 6587 3.4.2): for receivers that only split on newlines.
    Newline,
}

fn d_facility() -> String {
    "local0".into()
}
fn d_app() -> String {
    "trailship".into()
}
fn d_max_size() -> u64 {
    64 << 10
}

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkConfig {
    /// `host:port` of the receiver.
    pub address: String,
    #[serde(default)]
    pub protocol: Protocol,
    /// Default: octet counting over TCP and TLS (not used over UDP).
    pub framing: Option<Framing>,
    #[serde(default)]
    pub format: Format,
    #[serde(default = "d_facility")]
    pub facility: String,
    #[serde(default = "d_app")]
    pub app_name: String,
    /// Default: this host's name.
    pub hostname: Option<String>,
    /// The receiver's limit on one message (rsyslog's default is 8 KiB).
    #[serde(default = "d_max_size", deserialize_with = "units::size")]
    pub max_message_size: u64,
    /// Name to verify the TLS certificate against (default: the host of `address`).
    pub server_name: Option<String>,
    /// `tls.*` and `connect_timeout` (taken out of the table first).
    #[serde(skip)]
    pub transport: Transport,
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "-".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl SyslogSinkConfig {
    fn host(&self) -> &str {
        let a = self.address.as_str();
        match a.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => a,
        }
    }

    pub fn check(&self) -> Result<(), FieldError> {
        match self.address.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {}
            _ => return Err(FieldError::new(&["address"], "expected HOST:PORT")),
        }
        if syslog_format::facility(&self.facility).is_none() {
            return Err(FieldError::new(
                &["facility"],
                format!(
                    "{:?}: expected kern, user, … auth, authpriv, security, local0 … local7",
                    self.facility
                ),
            ));
        }
        if self.max_message_size < 480 {
            return Err(FieldError::new(
                &["max_message_size"],
                "at least 480 bytes (RFC 5424's minimum)",
            ));
        }
        if self.protocol == Protocol::Udp && self.framing.is_some() {
            return Err(FieldError::new(
                &["framing"],
                "UDP sends one message per datagram: no framing",
            ));
        }
        Ok(())
    }

    pub fn build(&self, name: &str) -> Result<SyslogSink, FieldError> {
        self.check()?;
        let tls = match self.protocol {
            Protocol::Tls => Some(
                self.transport
                    .tls
                    .rustls(name)
                    .map_err(|m| FieldError::new(&["tls"], m))?,
            ),
            _ => None,
        };
        let server_name = rustls_pki_types::ServerName::try_from(
            self.server_name
                .clone()
                .unwrap_or_else(|| self.host().to_string()),
        )
        .map_err(|e| FieldError::new(&["server_name"], e.to_string()))?;
        let header = Header::new(
            self.format,
            syslog_format::facility(&self.facility).unwrap_or(16),
            &self.hostname.clone().unwrap_or_else(hostname),
            &self.app_name,
        );
        let mut limit = usize::try_from(self.max_message_size).unwrap_or(usize::MAX);
        if self.protocol == Protocol::Udp {
            limit = limit.min(MAX_DATAGRAM);
        }
        Ok(SyslogSink {
            cfg: self.clone(),
            header,
            limit,
            framing: self.framing.unwrap_or(Framing::OctetCounting),
            tls,
            server_name,
            conn: Mutex::new(None),
        })
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    /// The receiver closed the connection (or said something a syslog receiver never says,
    /// such as a TLS close_notify) while it was idle.
    fn closed_by_peer(&self) -> bool {
        let tcp = match self {
            Conn::Udp(_) => return false,
            Conn::Tcp(t) => t,
            Conn::Tls(t) => t.get_ref().0,
        };
        let mut b = [0u8; 1];
        !matches!(tcp.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Why no connection to the receiver could be had; the batch is retried on a new one.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    /// Resolving, connecting, or the TLS handshake with the address failed (`what` leads the
    /// message: "resolving ", "connecting to ", …).
    #[error("{what}{addr}: {source}")]
    Io {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: no address")]
    NoAddress { addr: String },
    #[error("UDP socket: {0}")]
    UdpSocket(std::io::Error),
    #[error("{what}{addr}: timed out")]
    TimedOut { what: &'static str, addr: String },
    #[error(
        "{addr} closed the TLS session right after the handshake (client certificate refused?)"
    )]
    ClosedAfterHandshake { addr: String },
    #[error("{addr} refused the TLS session: {source}")]
    Refused {
        addr: String,
        source: std::io::Error,
    },
}

pub struct SyslogSink {
    cfg: SyslogSinkConfig,
    header: Header,
    limit: usize,
    framing: Framing,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    server_name: rustls_pki_types::ServerName<'static>,
    conn: Mutex<Option<Conn>>,
}

impl SyslogSink {
    async fn connect(&self) -> Result<Conn, ConnectError> {
        let addr = &self.cfg.address;
        let at = |what: &'static str| {
            let addr = addr.clone();
            move |source| ConnectError::Io { what, addr, source }
        };
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
            .await
            .map_err(at("resolving "))?
            .collect();
        let first = *resolved
            .first()
            .ok_or_else(|| ConnectError::NoAddress { addr: addr.clone() })?;
        if self.cfg.protocol == Protocol::Udp {
            let local = if first.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = UdpSocket::bind(local)
                .await
                .map_err(ConnectError::UdpSocket)?;
            s.connect(first).await.map_err(at(""))?;
            return Ok(Conn::Udp(s));
        }
        let timed_out = |what: &'static str| ConnectError::TimedOut {
            what,
            addr: addr.clone(),
        };
        let tcp = tokio::time::timeout(
            self.cfg.transport.connect_timeout,
            TcpStream::connect(&resolved[..]),
        )
        .await
        .map_err(|_| timed_out("connecting to "))?
        .map_err(at("connecting to "))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Conn::Tcp(tcp)),
            Some(cfg) => {
                let c = tokio_rustls::TlsConnector::from(cfg.clone());
                let s = tokio::time::timeout(
                    self.cfg.transport.connect_timeout,
                    c.connect(self.server_name.clone(), tcp),
                )
                .await
                .map_err(|_| timed_out("TLS handshake with "))?
                .map_err(at("TLS handshake with "))?;
                let mut s = Box::new(s);
                settle(&mut s, addr).await?;
                Ok(Conn::Tls(s))
            }
        }
    }

    async fn write(&self, conn: &mut Conn, frames: &[Vec<u8>]) -> std::io::Result<()> {
        match conn {
            Conn::Udp(s) => {
                for f in frames {
                    s.send(f).await?;
                }
                Ok(())
            }
            Conn::Tcp(s) => {
                s.write_all(&frames.concat()).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(&frames.concat()).await?;
                s.flush().await
            }
        }
    }
}

/// How long a new TLS session is given to be refused. With TLS 1.3 the client's handshake
/// completes before the server has checked the client certificate: a refusal (an alert and a
/// close) arrives just after, and whatever was written meanwhile would be lost while counting
/// as delivered.
const TLS_SETTLE: Duration = Duration::from_millis(250);

async fn settle(
    s: &mut tokio_rustls::client::TlsStream<TcpStream>,
    addr: &str,
) -> Result<(), ConnectError> {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1];
    match tokio::time::timeout(TLS_SETTLE, s.read(&mut b)).await {
        // Nothing from the receiver: the session stands.
        Err(_) => Ok(()),
        Ok(Ok(0)) => Err(ConnectError::ClosedAfterHandshake { addr: addr.into() }),
        // A syslog receiver has nothing to say; the byte is dropped.
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(ConnectError::Refused {
            addr: addr.into(),
            source,
        }),
    }
}

impl SinkService for SyslogSink {
    async fn send(&self, events: &[Event]) -> Result<Vec<ItemError>, SendError> {
        let mut errors = Vec::new();
        let mut frames = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let msg = self.header.message(&e.data);
            if msg.len() > self.limit {
                errors.push(ItemError {
                    index: i,
                    error: SendError::Permanent(format!(
                        "syslog message of {} bytes is over max_message_size ({} bytes); not cut, not sent",
                        msg.len(),
                        self.limit
                    )),
                });
                continue;
            }
            let frame = match (self.cfg.protocol, self.framing) {
                (Protocol::Udp, _) => msg,
                (_, Framing::OctetCounting) => {
                    let mut f = format!("{} ", msg.len()).into_bytes();
                    f.extend_from_slice(&msg);
                    f
                }
                (_, Framing::Newline) => {
                    let mut f = msg;
                    f.push(b'\n');
                    f
                }
            };
            frames.push(frame);
        }
        if frames.is_empty() {
            return Ok(errors);
        }
        let addr = &self.cfg.address;
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_some_and(Conn::closed_by_peer) {
            tracing::info!(address = %addr, "the receiver closed the connection; reconnecting");
            *guard = None;
        }
        if guard.is_none() {
            let c = self
                .connect()
                .await
                .map_err(|m| SendError::retryable(format!("{m} (will be retried)")))?;
            *guard = Some(c);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(SendError::retryable(format!("{addr}: no connection")));
        };
        if let Err(e) = self.write(conn, &frames).await {
            // Whatever was half-written stays on the dead connection; the next one starts clean.
            *guard = None;
            return Err(SendError::retryable(format!(
                "writing to {addr}: {e} (reconnecting; the batch is sent again)"
            )));
        }
        Ok(errors)
    }
}

/// The `syslog` sink kind (registered in `sinks::KINDS`).
pub const KIND: crate::sinks::util::kind::SinkKind = crate::sinks::util::kind::SinkKind {
    name: "syslog",
    defaults: || {
        crate::sinks::util::kind::defaults(1000, 1 << 20, std::time::Duration::from_millis(200), 1)
    },
    keys: crate::sinks::util::transport::Transport::STREAM_KEYS,
    parse: |mut table| {
        let transport = crate::sinks::util::transport::Transport::take(&mut table, false)?;
        crate::config::from_table::<SyslogSinkConfig>(table)
            .map(|c| std::sync::Arc::new(SyslogSinkConfig { transport, ..c }) as _)
    },
};

impl crate::sinks::util::kind::BuildSink for SyslogSinkConfig {
    type Service = SyslogSink;
    fn check_config(&self) -> Result<(), crate::config::FieldError> {
        self.check()
    }
    async fn build_service(
        self,
        name: std::sync::Arc<str>,
    ) -> Result<SyslogSink, crate::config::FieldError> {
        self.build(&name)
    }
}
