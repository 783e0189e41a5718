//! Local Insights on the real binary, on synthetic traffic in event time: a burst of
//! DeleteBucket calls and a spike of AccessDenied errors each raise one Start and one End with
//! the right attributions; steady traffic beside them raises nothing.

use std::fmt::Write as _;

use serde_json::Value;

use crate::common::*;

struct Traffic {
    out: String,
    n: u64,
    rng: fastrand::Rng,
}

impl Traffic {
    fn call(
        &mut self,
        minute: i64,
        source: &str,
        name: &str,
        arn: &str,
        ua: &str,
        error: Option<&str>,
    ) {
        self.n += 1;
        let t = chrono::DateTime::from_timestamp(
            1_780_000_000 / 60 * 60 + minute * 60 + self.rng.i64(0..60),
            0,
        )
        .unwrap();
        let err = error
            .map(|e| format!(r#""errorCode":"{e}","errorMessage":"denied","#))
            .unwrap_or_default();
        let _ = writeln!(
            self.out,
            r#"{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","arn":"{arn}"}},"eventTime":"{}","eventSource":"{source}","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userAgent":"{ua}",{err}"eventID":"{:08x}-0000-4000-8000-000000000000","readOnly":false,"eventType":"AwsApiCall","recipientAccountId":"111122223333"}}"#,
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            self.n
        );
    }
    /// About `rate` calls in this minute (uniform noise of ±50 %).
    fn some(&mut self, rate: f64) -> u32 {
        let lo = (rate * 0.5).floor() as u32;
        let hi = (rate * 1.5).ceil() as u32;
        self.rng.u32(lo..=hi.max(lo))
    }
}

/// The value an insight attributes most of it to, for one attribute.
fn top(ctx: &Value, attr: &str) -> Value {
    ctx["attributions"]
        .as_array()
        .and_then(|list| list.iter().find(|a| a["attribute"] == attr))
        .map(|a| a["insight"][0]["value"].clone())
        .unwrap_or_default()
}

#[test]
fn a_delete_burst_and_an_access_denied_spike_raise_one_insight_each() {
    let d = tempfile::tempdir().unwrap();
    let mut t = Traffic {
        out: String::new(),
        n: 0,
        rng: fastrand::Rng::with_seed(101),
    };
    let alice = "arn:aws:iam::111122223333:user/alice";
    for m in 0..(10 * 60) {
        for _ in 0..t.some(6.0) {
            t.call(
                m,
                "s3.amazonaws.com",
                "GetObject",
                alice,
                "aws-sdk-java",
                None,
            );
        }
        for _ in 0..t.some(0.6) {
            t.call(
                m,
                "s3.amazonaws.com",
                "DeleteBucket",
                alice,
                "console.amazonaws.com",
                None,
            );
        }
        for _ in 0..t.some(3.0) {
            t.call(
                m,
                "iam.amazonaws.com",
                "ListUsers",
                alice,
                "console.amazonaws.com",
                None,
            );
        }
        // 8 h in: mallory deletes buckets, 150 a minute for 10 minutes.
        if (480..490).contains(&m) {
            for _ in 0..150 {
                t.call(
                    m,
                    "s3.amazonaws.com",
                    "DeleteBucket",
                    "arn:aws:iam::111122223333:user/mallory",
                    "evil-cli/1.0",
                    None,
                );
            }
        }
        // 9 h in: eve is refused ListUsers, 80 a minute for 5 minutes.
        if (540..545).contains(&m) {
            for _ in 0..80 {
                t.call(
                    m,
                    "iam.amazonaws.com",
                    "ListUsers",
                    "arn:aws:iam::111122223333:user/eve",
                    "boto3",
                    Some("AccessDenied"),
                );
            }
        }
    }
    std::fs::create_dir_all(d.path().join("trail")).unwrap();
    std::fs::write(d.path().join("trail/traffic.ndjson"), &t.out).unwrap();
    let include = format!("{}/*", d.path().join("trail").display());
    let cfg = Pipeline::new(d.path())
        .source("trail", "file", keys! { "include" => vec![include] })
        .transform("insights", "insights", &["trail"], keys! {})
        .file_sink(
            "out",
            &["insights"],
            &d.path().join("insights.ndjson"),
            keys! {},
        )
        .write();
    run_once_ok(&cfg);
    let text = std::fs::read_to_string(d.path().join("insights.ndjson")).unwrap_or_default();
    let found: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<String> = found
        .iter()
        .map(|e| {
            let i = &e["insightDetails"];
            format!(
                "{} {} {} {}",
                i["eventName"], i["insightType"], i["state"], e["eventTime"]
            )
        })
        .collect();
    let pick = |name: &str, kind: &str, state: &str| -> Vec<&Value> {
        found
            .iter()
            .filter(|e| {
                let i = &e["insightDetails"];
                i["eventName"] == name && i["insightType"] == kind && i["state"] == state
            })
            .collect()
    };
    // The burst: one Start, one End, linked.
    let (start, end) = (
        pick("DeleteBucket", "ApiCallRateInsight", "Start"),
        pick("DeleteBucket", "ApiCallRateInsight", "End"),
    );
    assert_eq!((start.len(), end.len()), (1, 1), "{summary:#?}");
    assert_eq!(start[0]["sharedEventID"], end[0]["sharedEventID"]);
    assert_eq!(start[0]["eventType"], "AwsCloudTrailInsight");
    assert_eq!(start[0]["eventCategory"], "Insight");
    let ctx = &end[0]["insightDetails"]["insightContext"];
    assert_eq!(ctx["statistics"]["insightDuration"], 10, "{ctx}");
    assert!(ctx["statistics"]["insight"]["average"].as_f64().unwrap() >= 150.0);
    assert!(ctx["statistics"]["baseline"]["average"].as_f64().unwrap() < 2.0);
    assert_eq!(
        top(ctx, "userIdentityArn"),
        "arn:aws:iam::111122223333:user/mallory"
    );
    assert_eq!(top(ctx, "userAgent"), "evil-cli/1.0");
    // The spike of errors: one error-rate Start and End, attributed to AccessDenied and eve.
    let (es, ee) = (
        pick("ListUsers", "ApiErrorRateInsight", "Start"),
        pick("ListUsers", "ApiErrorRateInsight", "End"),
    );
    assert_eq!((es.len(), ee.len()), (1, 1), "{summary:#?}");
    let ctx = &ee[0]["insightDetails"]["insightContext"];
    assert_eq!(top(ctx, "errorCode"), "AccessDenied");
    assert_eq!(
        top(ctx, "userIdentityArn"),
        "arn:aws:iam::111122223333:user/eve"
    );
    // Nothing else but the call rate of the same spike (80 calls a minute against 3).
    let others: Vec<&String> = summary
        .iter()
        .filter(|s| !s.contains("DeleteBucket") && !s.contains("ListUsers"))
        .collect();
    assert!(others.is_empty(), "steady traffic raised {others:?}");
    assert!(found.len() <= 6, "{summary:#?}");
    println!(
        "measured: {} synthetic events over 10 h of event time: insights {summary:?}",
        t.n
    );
}
