//! OpenTelemetry export from the real binary to an in-test OTLP/HTTP receiver (no collector
//! runs here): it answers as the OTLP specification says (200 with an empty Export*Response in
//! the request's encoding) and decodes what it gets with the OTLP protobuf definitions
//! (opentelemetry-proto), in both encodings. Checked: the metrics and their values, the
//! histograms, the resource attributes from the environment, and the traces: one `read` span
//! per file, `deliver` spans as its children.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;

use crate::common::corpus;
use crate::common::http_server::{Reply, Served, Server};
use crate::common::*;

fn answer(r: &Served) -> Reply {
    let ct = r.header("content-type").unwrap_or("").to_string();
    let body = if ct.contains("json") {
        b"{}".to_vec()
    } else {
        Vec::new()
    };
    Reply {
        status: 200,
        headers: vec![("content-type".into(), ct)],
        body,
        delay: std::time::Duration::ZERO,
    }
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attrs(kv: &[KeyValue]) -> BTreeMap<String, String> {
    kv.iter().map(|k| (k.key.clone(), text(&k.value))).collect()
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(r: &Served) -> T {
    if r.header("content-type").unwrap_or("").contains("json") {
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("OTLP/JSON: {e}: {}", String::from_utf8_lossy(&r.body)))
    } else {
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        T::decode(&r.body[..]).expect("OTLP protobuf")
    }
}

async fn export(protocol: &str) {
    let server = Server::start(Arc::new(answer)).await;
    let d = tempfile::tempdir().unwrap();
    let records = corpus::write_documents(&d.path().join("trail"), 4, 250, 77, usize::MAX);
    let cfg = trail_pipeline(d.path())
        .section(
            "opentelemetry",
            keys! {
                "endpoint" => server.url.clone(),
                "protocol" => protocol,
                "interval" => "200ms",
            },
        )
        .write();
    let mut cmd = once_cmd(&cfg);
    cmd.env("POD_NAME", "trailship-x1")
        .env("POD_NAMESPACE", "audit")
        .env("NODE_NAME", "node-a")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES");
    let o = tokio::task::spawn_blocking(move || run_with_timeout(cmd, 60))
        .await
        .unwrap();
    expect_code(&o, 0);
    assert_eq!(
        output_ids(&d.path().join("out.ndjson")).len(),
        records.len()
    );

    // Metrics: the last export holds the final values.
    let metrics = server.requests_to("/v1/metrics");
    assert!(!metrics.is_empty(), "no metrics export");
    let last: ExportMetricsServiceRequest = decode(metrics.last().unwrap());
    let rm = &last.resource_metrics[0];
    let resource = attrs(&rm.resource.as_ref().unwrap().attributes);
    assert_eq!(resource["service.name"], "trailship");
    assert_eq!(resource["k8s.pod.name"], "trailship-x1");
    assert_eq!(resource["k8s.namespace.name"], "audit");
    assert_eq!(resource["k8s.node.name"], "node-a");
    assert!(!resource["host.name"].is_empty());
    let mut sums: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut histograms: BTreeMap<String, u64> = BTreeMap::new();
    for sm in &rm.scope_metrics {
        for m in &sm.metrics {
            match &m.data {
                Some(metric::Data::Sum(s)) => {
                    assert!(s.is_monotonic, "{}", m.name);
                    for p in &s.data_points {
                        let component = attrs(&p.attributes)
                            .get("component")
                            .cloned()
                            .unwrap_or_default();
                        let v = match p.value {
                            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i,
                            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(d)) => d as i64,
                            None => 0,
                        };
                        sums.insert((m.name.clone(), component), v);
                    }
                }
                Some(metric::Data::Histogram(h)) => {
                    assert_eq!(m.unit, "s", "{}", m.name);
                    let n: u64 = h.data_points.iter().map(|p| p.count).sum();
                    *histograms.entry(m.name.clone()).or_default() += n;
                }
                _ => {}
            }
        }
    }
    let n = records.len() as i64;
    assert_eq!(
        sums.get(&("trailship.events_received".into(), "trail".into())),
        Some(&n),
        "{sums:?}"
    );
    assert_eq!(
        sums.get(&("trailship.events_sent".into(), "out".into())),
        Some(&n),
        "{sums:?}"
    );
    assert!(histograms["trailship.sink_request_duration_seconds"] > 0);
    assert!(histograms["trailship.sink_delivery_duration_seconds"] > 0);

    // Traces: a read span per file; deliver spans are children of a read span.
    let mut reads: BTreeMap<Vec<u8>, (Vec<u8>, String)> = BTreeMap::new();
    let mut delivers = Vec::new();
    for r in server.requests_to("/v1/traces") {
        let t: ExportTraceServiceRequest = decode(&r);
        for rs in t.resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let a = attrs(&s.attributes);
                    match s.name.as_str() {
                        "read" => {
                            assert_eq!(a["trailship.source"], "trail");
                            assert_eq!(a["trailship.events"], "250");
                            reads.insert(
                                s.span_id.clone(),
                                (s.trace_id.clone(), a["trailship.location"].clone()),
                            );
                        }
                        "deliver" => delivers.push((
                            s.trace_id,
                            s.parent_span_id,
                            a,
                            s.links
                                .iter()
                                .map(|l| l.span_id.clone())
                                .collect::<Vec<_>>(),
                        )),
                        other => panic!("unexpected span {other}"),
                    }
                }
            }
        }
    }
    let files: BTreeSet<&String> = reads.values().map(|(_, l)| l).collect();
    assert_eq!(files.len(), 4, "one read span per file: {reads:?}");
    assert!(!delivers.is_empty());
    let mut delivered = 0;
    let mut covered = BTreeSet::new();
    for (trace, parent, a, links) in &delivers {
        covered.insert(parent.clone());
        covered.extend(links.iter().cloned());
        let (read_trace, _) = reads
            .get(parent)
            .unwrap_or_else(|| panic!("a deliver span whose parent is no read span: {a:?}"));
        assert_eq!(read_trace, trace);
        assert_eq!(a["trailship.sink"], "out");
        assert_eq!(a["trailship.outcome"], "delivered");
        delivered += a["trailship.events"].parse::<usize>().unwrap();
    }
    assert_eq!(delivered, records.len());
    // Every file's span is the parent of, or linked from, a batch that delivered its events.
    assert_eq!(covered, reads.keys().cloned().collect::<BTreeSet<_>>());
    eprintln!(
        "otlp {protocol}: {} metric exports, {} read spans, {} deliver spans",
        metrics.len(),
        reads.len(),
        delivers.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_traces_over_otlp_protobuf() {
    export("http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_traces_over_otlp_json() {
    export("http/json").await;
}

#[test]
fn a_bad_endpoint_is_a_config_error() {
    let d = tempfile::tempdir().unwrap();
    let cfg = trail_pipeline(d.path())
        .section(
            "opentelemetry",
            keys! { "endpoint" => "grpc://127.0.0.1:4317" },
        )
        .write();
    let o = run_with_timeout(
        trailship(&["validate", "--config", cfg.to_str().unwrap()]),
        30,
    );
    expect_code(&o, 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("opentelemetry.endpoint") && err.contains("http://"),
        "{err}"
    );
}

#[test]
fn a_collector_that_is_down_costs_a_warning_not_an_event() {
    let d = tempfile::tempdir().unwrap();
    let records = corpus::write_documents(&d.path().join("trail"), 2, 100, 78, usize::MAX);
    // Nothing listens there.
    let port = free_port();
    let cfg = trail_pipeline(d.path())
        .section(
            "opentelemetry",
            keys! {
                "endpoint" => format!("http://127.0.0.1:{port}"),
                "interval" => "200ms",
                "timeout" => "1s",
            },
        )
        .write();
    let o = run_once_ok(&cfg);
    assert_same_ids(
        &output_ids(&d.path().join("out.ndjson")),
        &corpus::ids(&records),
        "with the collector down",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("OpenTelemetry export failed")
            && err.contains(&format!("127.0.0.1:{port}/v1/")),
        "{err}"
    );
}
