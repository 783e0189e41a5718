//! `validate_digests = true` on the file source: the CloudTrail digest files under its roots
//! are checked as they appear (signatures, the chain, the hashes of the log files they list,
//! log files no digest accounts for), and every problem is sent down the pipeline as an alert
//! event (`eventType` TrailshipIntegrityAlert) so it reaches the SIEM, and counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ack::AckToken;
use crate::event::{Event, EventData, Origin, parse_header};
use crate::telemetry;
use crate::topology::Fanout;
use crate::verify::{Problem, Watch};

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

/// Check the digests under `roots` now and then (once with `--once`), sending alerts to `out`.
pub fn spawn(
    name: Arc<str>,
    roots: Vec<PathBuf>,
    keys: std::collections::HashMap<String, Vec<u8>>,
    interval: Duration,
    out: Fanout,
    once: bool,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let origin = Arc::new(Origin {
            source: name.clone(),
            location: "digest validation".into(),
        });
        let mut watches: Vec<Watch> = roots
            .into_iter()
            .map(|r| Watch::new(r, keys.clone()))
            .collect();
        loop {
            let mut batch = Vec::new();
            for w in watches.iter_mut() {
                // Hashing log files is disk work: off the runtime's threads.
                let found = tokio::task::block_in_place(|| w.check());
                match found {
                    Ok(problems) => {
                        for p in problems {
                            tracing::warn!(source = %name, check = p.kind, problem = p.code, file = %p.file, detail = %p.what, "log file integrity problem");
                            telemetry::count(
                                "integrity_problems_total",
                                &[("component", &name), ("problem", p.code)],
                            );
                            let raw = bytes::Bytes::from(alert(&name, &p));
                            if let Ok(header) = parse_header(&raw) {
                                batch.push(Event::new(
                                    EventData {
                                        raw,
                                        header,
                                        origin: origin.clone(),
                                    },
                                    AckToken::none(),
                                ));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(source = %name, error = %e, "cannot look for digest files; trying again at the next check")
                    }
                }
            }
            if !batch.is_empty() {
                out.send(batch).await;
            }
            if once {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}
