//! `trailship validate`: every config problem is named with file, line and key.

use std::path::Path;

use crate::common::*;

fn validate(text: &str) -> (Option<i32>, String) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.toml");
    std::fs::write(&p, text).unwrap();
    let o = run_with_timeout(
        trailship(&["validate", "--config", p.to_str().unwrap()]),
        30,
    );
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).replace(p.to_str().unwrap(), "FILE"),
    )
}

const BASE: &str = "data_dir = \"/tmp/x\"\n[sources.trail]\ntype = \"file\"\ninclude = [\"/tmp/AWSLogs/**/*\"]\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"trail\"]\npath = \"/tmp/out.ndjson\"\n";

#[test]
fn shipped_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in files_under(&root.join("config")) {
        let o = run_with_timeout(
            trailship(&["validate", "--config", f.to_str().unwrap()]),
            30,
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (code, err) = validate(BASE);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            &format!("{BASE}pth = \"x\"\n"),
            "FILE:10: sinks.out.pth: unknown field `pth`",
        ),
        (
            &format!(
                "{BASE}[sinks.cwl]\ntype = \"cloudwatch_logs\"\ninputs = [\"trail\"]\ngroup = \"g\"\nregoin = \"us-east-1\"\n"
            ),
            "sinks.cwl.regoin: unknown field `regoin`, expected one of `group`, `stream`, `create_missing`, `retention_days`, `max_event_size`, or `inputs`, `batch`, `retry`, `buffer`, `rate_limit`, `dead_letter`, `concurrency`, `max_concurrency`, `region`, `endpoint`, `assume_role`",
        ),
        (
            &BASE.replace("path = \"/tmp/out.ndjson\"\n", ""),
            "FILE:6: sinks.out: missing field `path`",
        ),
        (
            &BASE.replace("inputs = [\"trail\"]", "inputs = [\"trial\"]"),
            "FILE:8: sinks.out.inputs: `trial` names no source or transform",
        ),
        (
            &BASE.replace("/tmp/out.ndjson", "/tmp/%Q.ndjson"),
            "FILE:9: sinks.out.path: unsupported strftime field %Q",
        ),
        (
            &BASE.replace("/tmp/out.ndjson", "/tmp/{user}.ndjson"),
            "FILE:9: sinks.out.path: unknown field {user}",
        ),
        (
            &BASE.replace("type = \"file\"\ninputs", "type = \"splunk\"\ninputs"),
            "FILE:7: sinks.out.type: unknown sink type \"splunk\"",
        ),
        (
            &BASE.replace(
                "include = [\"/tmp/AWSLogs/**/*\"]",
                "include = [\"/tmp/[bad\"]",
            ),
            "FILE:4: sources.trail.include: invalid glob",
        ),
        (
            &format!("{BASE}batch.max_events = \"many\"\n"),
            "FILE:10: sinks.out.batch.max_events: invalid type",
        ),
        (
            &format!(
                "{BASE}[transforms.a]\ntype = \"filter\"\ninputs = [\"b\"]\nread_only = true\n[transforms.b]\ntype = \"filter\"\ninputs = [\"a\"]\nread_only = true\n"
            ),
            "cycle: a <- b <- a",
        ),
        (
            &format!(
                "{BASE}[transforms.r]\ntype = \"route\"\ninputs = [\"trail\"]\nroutes.read = {{ read_only = true }}\n[sinks.x]\ntype = \"console\"\ninputs = [\"r.write\"]\n"
            ),
            "sinks.x.inputs: `r` has no output `write`",
        ),
        (
            &format!(
                "{BASE}[transforms.f]\ntype = \"filter\"\ninputs = [\"trail\"]\ncategory = \"mgmt\"\n"
            ),
            "FILE:13: transforms.f.category: unknown variant `mgmt`",
        ),
        (
            &format!(
                "{BASE}[transforms.f]\ntype = \"filter\"\ninputs = [\"trail\"]\n[transforms.f.exclude]\nreadonly = true\n"
            ),
            "FILE:14: transforms.f.exclude.readonly: unknown field `readonly`",
        ),
        (
            &BASE.replace("/tmp/x", "${TRAILSHIP_TEST_UNSET_VAR}"),
            "FILE:1: environment variable TRAILSHIP_TEST_UNSET_VAR is not set",
        ),
        (&BASE.replace("[sinks.out]", "[sinks.out"), "FILE:6:"),
        (
            &format!("{BASE}[sources.idle]\ntype = \"file\"\ninclude = [\"/x/*\"]\n"),
            "FILE:10: sources.idle: source `idle` feeds nothing",
        ),
        ("data_dir = \"/tmp/x\"\n", "no sources"),
    ];
    for (text, want) in cases {
        let (code, err) = validate(text);
        assert_eq!(code, Some(1), "should fail: {want}\n{text}");
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
}

#[test]
fn env_interpolation_with_defaults() {
    let text = BASE.replace("/tmp/x", "${TRAILSHIP_TEST_UNSET_VAR:-/tmp/default}");
    let (code, err) = validate(&text);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn secrets_and_certificates_that_cannot_be_read_stop_start_up() {
    let d = tempfile::tempdir().unwrap();
    let not_pem = d.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let cases = [
        (
            "[sinks.splunk]\ntype = \"splunk_hec\"\ninputs = [\"trail\"]\nendpoint = \"https://127.0.0.1:8088\"\ntoken_file = \"/nonexistent/hec-token\"\n".to_string(),
            "sinks.splunk.token_file: token_file \"/nonexistent/hec-token\"",
        ),
        (
            format!(
                "[sinks.relay]\ntype = \"syslog\"\ninputs = [\"trail\"]\naddress = \"127.0.0.1:6514\"\nprotocol = \"tls\"\ntls.ca_file = \"{}\"\n",
                toml_path(&not_pem)
            ),
            "no PEM certificate in it",
        ),
        (
            "[sinks.es]\ntype = \"elasticsearch\"\ninputs = [\"trail\"]\nendpoints = [\"https://127.0.0.1:9200\"]\nauth = { strategy = \"api_key\", key_file = \"/nonexistent/key\" }\n".to_string(),
            "sinks.es.auth: auth.key_file \"/nonexistent/key\"",
        ),
    ];
    for (sink, want) in cases {
        let (code, err) = validate(&format!("{BASE}{sink}"));
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(want), "{want} in {err}");
        // Also at start-up: a sink that could not be built must not leave a pipeline running
        // without it.
        let cfg = d.path().join("p.toml");
        std::fs::write(&cfg, format!("{BASE}{sink}")).unwrap();
        expect_code(&run_once(&cfg), 1);
    }
}
