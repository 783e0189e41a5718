//! `validate_digests = true` on a source: CloudTrail digest files are checked as they appear
//! (signatures, the chain, the hashes of the log files they list, log files no digest
//! accounts for) — under the file source's roots or the s3 source's prefix now and then, or as
//! an sqs source is told about them — and every problem is sent down the pipeline as an alert
//! event (`eventType` TrailshipIntegrityAlert) so it reaches the SIEM, and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::core::Fanout;
use crate::core::ack::AckToken;
use crate::core::event::{Event, EventData, Origin, parse_header};
use crate::integrity::{Problem, Watch};
use crate::telemetry;

/// The alert event for one problem: shaped like a CloudTrail record so filters, templates and
/// every sink handle it.
pub fn alert(source: &str, p: &Problem) -> Vec<u8> {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let id = format!("{:032x}", fastrand::u128(..));
    let account = p
        .file
        .split('/')
        .skip_while(|x| *x != "AWSLogs")
        .nth(1)
        .unwrap_or("");
    serde_json::to_vec(&json!({
        "eventVersion": "1.08",
        "eventTime": now,
        "eventSource": "integrity.trailship",
        "eventName": p.code,
        "eventType": "TrailshipIntegrityAlert",
        "eventID": format!("{}-{}-{}-{}-{}", &id[0..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]),
        "recipientAccountId": account,
        "readOnly": true,
        "additionalEventData": {"source": source, "check": p.kind, "file": p.file, "problem": p.what},
    }))
    .unwrap_or_default()
}

/// What to check.
pub enum Checks {
    /// Look for new digests now and then (once with `--once`).
    Listing {
        watches: Vec<Watch>,
        interval: Duration,
    },
    /// Check the digests an SQS source is told about, as (bucket, key).
    Announced {
        rx: mpsc::UnboundedReceiver<(String, String)>,
        client: aws_sdk_s3::Client,
        keys: HashMap<String, Vec<u8>>,
    },
}

/// `validate_digests`, `public_keys`, `digest_check_interval`: taken out of any source's table.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestOptions {
    #[serde(default)]
    pub validate_digests: bool,
    #[serde(default)]
    pub public_keys: std::collections::BTreeMap<String, String>,
    #[serde(
        default = "d_check_interval",
        deserialize_with = "crate::config::units::duration"
    )]
    pub digest_check_interval: Duration,
    /// Fetch the keys `public_keys` does not give through CloudTrail's ListPublicKeys.
    #[serde(default)]
    pub fetch_public_keys: bool,
}

fn d_check_interval() -> Duration {
    Duration::from_secs(300)
}

impl Default for DigestOptions {
    fn default() -> Self {
        DigestOptions {
            validate_digests: false,
            public_keys: Default::default(),
            digest_check_interval: d_check_interval(),
            fetch_public_keys: false,
        }
    }
}

impl DigestOptions {
    pub const KEYS: [&'static str; 4] = [
        "validate_digests",
        "public_keys",
        "digest_check_interval",
        "fetch_public_keys",
    ];

    pub fn take(table: &mut toml::Table) -> Result<DigestOptions, crate::config::FieldError> {
        let mut t = toml::Table::new();
        for k in Self::KEYS {
            if let Some(v) = table.remove(k) {
                t.insert(k.into(), v);
            }
        }
        crate::config::from_table(t)
    }

    /// The keys can be read (checked by `validate` and at start).
    pub fn check(&self) -> Option<crate::config::FieldError> {
        let e = keys(&self.public_keys).err()?;
        Some(crate::config::FieldError::new(
            &["public_keys"],
            e.to_string(),
        ))
    }
}

/// Public keys from a source's `public_keys = { FINGERPRINT = FILE }`.
pub fn keys(
    public_keys: &std::collections::BTreeMap<String, String>,
) -> Result<HashMap<String, Vec<u8>>, crate::integrity::IntegrityError> {
    let specs: Vec<String> = public_keys
        .iter()
        .map(|(fp, path)| format!("{fp}={path}"))
        .collect();
    crate::integrity::load_public_keys(&specs)
}

struct Alerts {
    name: Arc<str>,
    origin: Arc<Origin>,
    out: Fanout,
}

impl Alerts {
    async fn send(&self, found: Result<Vec<Problem>, crate::integrity::IntegrityError>) {
        let problems = match found {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(source = %self.name, error = %e, "cannot check digest files; trying again at the next check");
                return;
            }
        };
        let mut batch = Vec::new();
        for p in problems {
            tracing::warn!(source = %self.name, check = p.kind, problem = p.code, file = %p.file, detail = %p.what, "log file integrity problem");
            telemetry::count(
                "integrity_problems_total",
                &[("component", &self.name), ("problem", p.code)],
            );
            let raw = bytes::Bytes::from(alert(&self.name, &p));
            if let Ok(header) = parse_header(&raw) {
                batch.push(Event::new(
                    EventData {
                        raw,
                        header,
                        record: None,
                        origin: self.origin.clone(),
                    },
                    AckToken::none(),
                ));
            }
        }
        if !batch.is_empty() {
            self.out.send(batch).await;
        }
    }
}

/// Run the checks, sending alerts to `out`, until shutdown (or once, with `--once`, or until
/// the announcing source is gone).
/// `fetch`: the AWS access to ask ListPublicKeys with (`fetch_public_keys = true`).
pub fn spawn(
    name: Arc<str>,
    checks: Checks,
    fetch: Option<crate::aws::AwsAccess>,
    out: Fanout,
    once: bool,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let with_fetcher = |w: Watch| match &fetch {
            Some(access) => w.with_fetcher(tokio::task::block_in_place(|| {
                crate::integrity::keys::KeyFetcher::new(access, tokio::runtime::Handle::current())
            })),
            None => w,
        };
        let alerts = Alerts {
            origin: Arc::new(Origin {
                source: name.clone(),
                location: "digest validation".into(),
                trace: Default::default(),
                reread: None,
            }),
            name,
            out,
        };
        match checks {
            Checks::Listing { watches, interval } => {
                let mut watches: Vec<Watch> = watches.into_iter().map(with_fetcher).collect();
                loop {
                    for w in watches.iter_mut() {
                        // Hashing log files is disk and network work: off the runtime's threads.
                        alerts.send(tokio::task::block_in_place(|| w.check())).await;
                    }
                    if once {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
            Checks::Announced {
                mut rx,
                client,
                keys,
            } => {
                let rt = tokio::runtime::Handle::current();
                let mut by_bucket: HashMap<String, Watch> = HashMap::new();
                while let Some((bucket, key)) = rx.recv().await {
                    let w = by_bucket.entry(bucket.clone()).or_insert_with(|| {
                        with_fetcher(Watch::s3(
                            client.clone(),
                            bucket,
                            String::new(),
                            keys.clone(),
                            rt.clone(),
                        ))
                    });
                    alerts
                        .send(tokio::task::block_in_place(|| w.check_announced(&[key])))
                        .await;
                }
            }
        }
    })
}
