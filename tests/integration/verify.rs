//! `trailship verify` on a generated trail whose digests are signed with a throwaway RSA key
//! (openssl): untouched it passes; a modified log file, a deleted one, a changed or deleted
//! digest, an unsigned digest and a file slipped in afterwards are each caught.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::corpus;
use crate::common::moto::Moto;
use crate::common::*;
use trailship::integrity::digest::sha256_hex;

const ACCOUNT: &str = "111122223333";
const FP: &str = "0123456789abcdef0123456789abcdef";
const BUCKET: &str = "org-trail";

struct Trail {
    root: PathBuf,
    key: PathBuf,
    public: PathBuf,
    logs: Vec<String>,
    digests: Vec<String>,
    /// Digest key → (gzipped bytes, hex signature).
    signed: Vec<(String, Vec<u8>, String)>,
}

fn openssl(args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sign(key: &Path, message: &str, dir: &Path) -> String {
    let m = dir.join("msg");
    let s = dir.join("sig");
    std::fs::write(&m, message).unwrap();
    openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        key.to_str().unwrap(),
        "-out",
        s.to_str().unwrap(),
        m.to_str().unwrap(),
    ]);
    std::fs::read(&s)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Three hourly digests over two log files each, chained and signed as CloudTrail does.
fn trail(dir: &Path) -> Trail {
    let key = dir.join("key.pem");
    let public = dir.join("public.der");
    openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    openssl(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        public.to_str().unwrap(),
    ]);
    let root = dir.join("trail");
    let mut g = corpus::Gen::new(91);
    let (mut logs, mut digests, mut signed) = (Vec::new(), Vec::new(), Vec::new());
    let mut previous: Option<(String, String, String)> = None; // key, hash, signature
    for hour in 1..=3 {
        let mut refs = Vec::new();
        for n in 0..2 {
            let (_, doc) = g.document(20);
            let key = format!(
                "AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/01/{ACCOUNT}_CloudTrail_us-east-1_20261101T{:02}{:02}Z_{hour}{n}abc.json.gz",
                hour - 1,
                10 + n * 20
            );
            let path = root.join(&key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, corpus::gzip(doc.as_bytes())).unwrap();
            refs.push(serde_json::json!({"s3Bucket": BUCKET, "s3Object": key, "hashValue": sha256_hex(doc.as_bytes()), "hashAlgorithm": "SHA-256", "newestEventTime": "2026-11-01T00:00:00Z", "oldestEventTime": "2026-11-01T00:00:00Z"}));
            logs.push(key);
        }
        let dkey = format!(
            "AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/01/{ACCOUNT}_CloudTrail-Digest_us-east-1_trail_us-east-1_20261101T{hour:02}0000Z.json.gz"
        );
        let end = format!("2026-11-01T{hour:02}:00:00Z");
        let mut d = serde_json::json!({
            "awsAccountId": ACCOUNT,
            "digestStartTime": format!("2026-11-01T{:02}:00:00Z", hour - 1),
            "digestEndTime": end,
            "digestS3Bucket": BUCKET,
            "digestS3Object": dkey,
            "digestPublicKeyFingerprint": FP,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "previousDigestS3Bucket": null, "previousDigestS3Object": null,
            "previousDigestHashValue": null, "previousDigestHashAlgorithm": null,
            "previousDigestSignature": null,
            "logFiles": refs,
        });
        if let Some((pk, ph, ps)) = &previous {
            d["previousDigestS3Bucket"] = BUCKET.into();
            d["previousDigestS3Object"] = pk.as_str().into();
            d["previousDigestHashValue"] = ph.as_str().into();
            d["previousDigestHashAlgorithm"] = "SHA-256".into();
            d["previousDigestSignature"] = ps.as_str().into();
        }
        let content = serde_json::to_vec(&d).unwrap();
        let hash = sha256_hex(&content);
        let prev_sig = previous
            .as_ref()
            .map_or("null".to_string(), |p| p.2.clone());
        let sig = sign(
            &key,
            &format!("{end}\n{BUCKET}/{dkey}\n{hash}\n{prev_sig}"),
            dir,
        );
        let path = root.join(&dkey);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let gz = corpus::gzip(&content);
        std::fs::write(&path, &gz).unwrap();
        std::fs::write(format!("{}.sig", path.display()), &sig).unwrap();
        signed.push((dkey.clone(), gz, sig.clone()));
        digests.push(dkey.clone());
        previous = Some((dkey, hash, sig));
    }
    Trail {
        root,
        key,
        public,
        logs,
        digests,
        signed,
    }
}

/// Change one record of a gzip log file (its hash no longer matches its digest).
fn change_a_record(p: &Path) {
    let text = String::from_utf8(gunzip(&std::fs::read(p).unwrap())).unwrap();
    let changed = text.replacen("\"eventName\":\"", "\"eventName\":\"X", 1);
    std::fs::write(p, corpus::gzip(changed.as_bytes())).unwrap();
}

fn verify(t: &Trail) -> (i32, String) {
    let o = run_with_timeout(
        trailship(&[
            "verify",
            t.root.to_str().unwrap(),
            "--public-key",
            &format!("{FP}={}", t.public.display()),
        ]),
        60,
    );
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn fresh(d: &Path) -> Trail {
    let _ = std::fs::remove_dir_all(d);
    std::fs::create_dir_all(d).unwrap();
    trail(d)
}

#[test]
fn each_kind_of_tampering_is_caught() {
    let d = tempfile::tempdir().unwrap();
    let t = trail(d.path());
    let _ = &t.key;
    let (code, out) = verify(&t);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Results: 3/3 digest files valid, 6/6 log files valid; 0 problem(s)"),
        "{out}"
    );

    // A record changed in a log file.
    let p = t.root.join(&t.logs[2]);
    change_a_record(&p);
    let (code, out) = verify(&t);
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains("modified") && out.contains(corpus_name(&t.logs[2])),
        "{out}"
    );
    assert!(out.contains("5/6 log files valid; 1 problem(s)"), "{out}");

    // A log file deleted.
    let t = fresh(&d.path().join("b"));
    std::fs::remove_file(t.root.join(&t.logs[4])).unwrap();
    let (code, out) = verify(&t);
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains("missing") && out.contains(corpus_name(&t.logs[4])),
        "{out}"
    );

    // The middle digest rewritten (a log file dropped from its list): its signature fails and
    // the next digest's record of its hash no longer holds.
    let t = fresh(&d.path().join("c"));
    let p = t.root.join(&t.digests[1]);
    let mut v: serde_json::Value =
        serde_json::from_slice(&gunzip(&std::fs::read(&p).unwrap())).unwrap();
    v["logFiles"].as_array_mut().unwrap().pop();
    std::fs::write(&p, corpus::gzip(&serde_json::to_vec(&v).unwrap())).unwrap();
    let (code, out) = verify(&t);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("signature does not verify"), "{out}");
    assert!(
        out.contains("does not have the hash this one records"),
        "{out}"
    );
    assert!(
        out.contains("not in any digest"),
        "the log file it no longer lists: {out}"
    );

    // The middle digest deleted: the chain is broken.
    let t = fresh(&d.path().join("e"));
    let p = t.root.join(&t.digests[1]);
    std::fs::remove_file(&p).unwrap();
    std::fs::remove_file(format!("{}.sig", p.display())).unwrap();
    let (code, out) = verify(&t);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("is missing: the chain is broken"), "{out}");

    // Unsigned, and signed with another key.
    let t = fresh(&d.path().join("f"));
    std::fs::remove_file(format!("{}.sig", t.root.join(&t.digests[0]).display())).unwrap();
    std::fs::write(
        format!("{}.sig", t.root.join(&t.digests[2]).display()),
        "00".repeat(256),
    )
    .unwrap();
    let (code, out) = verify(&t);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("unsigned"), "{out}");
    assert!(
        out.matches("signature does not verify").count() == 1,
        "{out}"
    );

    // A forged log file slipped in for an hour a digest covers.
    let t = fresh(&d.path().join("g"));
    let forged = t.logs[0].replace("0abc", "9zzz");
    std::fs::copy(t.root.join(&t.logs[0]), t.root.join(&forged)).unwrap();
    let (code, out) = verify(&t);
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains("not in any digest") && out.contains("9zzz"),
        "{out}"
    );
    println!(
        "measured: 3 signed digests over 6 log files: untouched valid; a changed record, a deleted log file, a rewritten digest, a deleted digest, an unsigned digest, a wrong signature and a slipped-in file each caught (exit 5)"
    );
}

fn corpus_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_trail_with_signatures_in_object_metadata() {
    let m = Moto::start();
    let s3 = m.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let t = trail(d.path());
    for k in &t.logs {
        m.put_object(BUCKET, k, std::fs::read(t.root.join(k)).unwrap())
            .await;
    }
    for (k, gz, sig) in &t.signed {
        s3.put_object()
            .bucket(BUCKET)
            .key(k)
            .body(gz.clone().into())
            .metadata("signature", sig)
            .metadata("signature-algorithm", "SHA256withRSA")
            .send()
            .await
            .unwrap();
    }
    let run = |m: &Moto| {
        let mut c = trailship(&[
            "verify",
            &format!("s3://{BUCKET}/AWSLogs/"),
            "--endpoint",
            &m.endpoint,
            "--aws-region",
            "us-east-1",
            "--public-key",
            &format!("{FP}={}", t.public.display()),
        ]);
        m.apply(&mut c);
        run_with_timeout(c, 60)
    };
    let o = tokio::task::block_in_place(|| run(&m));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("3/3 digest files valid, 6/6 log files valid"),
        "{out}"
    );
    // Tampered in the bucket.
    m.put_object(BUCKET, &t.logs[1], corpus::gzip(b"{\"Records\":[]}"))
        .await;
    let o = tokio::task::block_in_place(|| run(&m));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(out.contains("modified"), "{out}");
}

#[test]
fn a_file_source_with_validate_digests_sends_alerts_down_the_pipeline() {
    let d = tempfile::tempdir().unwrap();
    let t = trail(d.path());
    // The trail's gzip files, their digests checked, into `dir/out.ndjson`.
    let checked = |dir: &Path, t: &Trail| {
        Pipeline::new(dir)
            .source(
                "trail",
                "file",
                keys! {
                    "include" => vec![format!("{}/**/*.json.gz", t.root.display())],
                    "validate_digests" => true,
                    "public_keys" => keys! { FP => pipeline::path(&t.public) },
                },
            )
            .file_sink("out", &["trail"], &dir.join("out.ndjson"), keys! {})
            .write()
    };
    let cfg = checked(d.path(), &t);
    let alerts = |out: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["eventType"] == "TrailshipIntegrityAlert")
            .collect()
    };
    // Untouched: the 120 events, no alert.
    let o = run_once_ok(&cfg);
    assert!(
        alerts(&d.path().join("out.ndjson")).is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(output_ids(&d.path().join("out.ndjson")).len(), 120);
    // A second trail where one log file was changed and one digest lost its signature.
    let d2 = tempfile::tempdir().unwrap();
    let t2 = trail(d2.path());
    let p = t2.root.join(&t2.logs[3]);
    change_a_record(&p);
    std::fs::remove_file(format!("{}.sig", t2.root.join(&t2.digests[2]).display())).unwrap();
    let cfg2 = checked(d2.path(), &t2);
    let o = run_once_ok(&cfg2);
    let found = alerts(&d2.path().join("out.ndjson"));
    let names: Vec<&str> = found
        .iter()
        .map(|a| a["eventName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"LogFileModified") && names.contains(&"DigestUnsigned"),
        "{names:?}"
    );
    assert_eq!(found.len(), 2, "{names:?}");
    let modified = found
        .iter()
        .find(|a| a["eventName"] == "LogFileModified")
        .unwrap();
    assert!(
        modified["additionalEventData"]["file"]
            .as_str()
            .unwrap()
            .ends_with(corpus_name(&t2.logs[3]))
    );
    assert_eq!(modified["recipientAccountId"], ACCOUNT);
    let c = counters(&o.stderr);
    assert_eq!(
        c.get("integrity_problems_total{component=\"trail\",problem=\"LogFileModified\"}"),
        Some(&1),
        "{c:?}"
    );
    // The events themselves are all delivered, the changed file's included.
    assert_eq!(output_ids(&d2.path().join("out.ndjson")).len(), 120 + 2);
}

/// Upload a trail's log files and signed digests (signature in the object metadata).
async fn upload(m: &Moto, t: &Trail) {
    for k in &t.logs {
        m.put_object(BUCKET, k, std::fs::read(t.root.join(k)).unwrap())
            .await;
    }
    for (k, gz, sig) in &t.signed {
        m.s3()
            .put_object()
            .bucket(BUCKET)
            .key(k)
            .body(gz.clone().into())
            .metadata("signature", sig)
            .send()
            .await
            .unwrap();
    }
}

fn alerts_in(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["eventType"] == "TrailshipIntegrityAlert")
        .map(|v| v["eventName"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_and_sqs_sources_with_validate_digests_send_alerts() {
    let m = Moto::start();
    // The queue is told about every object (log files and digests) by S3 itself.
    let url = crate::sqs::setup(&m).await;
    let d = tempfile::tempdir().unwrap();
    let t = trail(d.path());
    upload(&m, &t).await;
    // Tampered in the bucket: one log file changed (announced again), one deleted.
    let changed = corpus::gzip(b"{\"Records\":[]}");
    m.put_object(BUCKET, &t.logs[1], changed).await;
    m.s3()
        .delete_object()
        .bucket(BUCKET)
        .key(&t.logs[5])
        .send()
        .await
        .unwrap();
    let run = |kind: &str, mut source: pipeline::Table| {
        let out = d.path().join(format!("{kind}.ndjson"));
        pipeline::merge(
            &mut source,
            keys! {
                "endpoint" => m.endpoint.clone(),
                "region" => "us-east-1",
                "validate_digests" => true,
                "public_keys" => keys! { FP => pipeline::path(&t.public) },
            },
        );
        let cfg = Pipeline::new(d.path())
            .set(
                "data_dir",
                pipeline::path(&d.path().join(format!("data-{kind}"))),
            )
            .source("src", kind, source)
            .file_sink("out", &["src"], &out, keys! {})
            .write_as(&format!("{kind}.toml"));
        let o = m.run_once(&cfg);
        (o, out)
    };
    for (kind, source) in [
        ("s3", keys! { "bucket" => BUCKET, "prefix" => "AWSLogs/" }),
        ("sqs", keys! { "queue_url" => url.clone() }),
    ] {
        let (o, out) = tokio::task::block_in_place(|| run(kind, source));
        let mut got = alerts_in(&out);
        got.sort();
        assert_eq!(
            got,
            vec!["LogFileMissing", "LogFileModified"],
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // (The announcement of the deleted log file stays on the queue: its object is gone.)
}

/// CloudTrail's ListPublicKeys, as the AWS JSON 1.1 protocol has it (moto does not implement
/// this call): one key, valid around the test trail's time.
async fn list_public_keys_server(der: Vec<u8>) -> crate::common::http_server::Server {
    use crate::common::http_server::{Reply, Served, Server};
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD.encode(der);
    Server::start(std::sync::Arc::new(move |r: &Served| {
        if !r
            .header("x-amz-target")
            .is_some_and(|t| t.ends_with(".ListPublicKeys"))
        {
            return Reply::json(
                400,
                serde_json::json!({"__type": "UnknownOperationException"}),
            );
        }
        let mut reply = Reply::json(
            200,
            serde_json::json!({"PublicKeyList": [{
                "Value": value,
                "ValidityStartTime": 1.7e9,
                "ValidityEndTime": 1.9e9,
                "Fingerprint": FP,
            }]}),
        );
        reply.headers = vec![("content-type".into(), "application/x-amz-json-1.1".into())];
        reply
    }))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn public_keys_can_be_fetched_through_list_public_keys() {
    let d = tempfile::tempdir().unwrap();
    let t = trail(d.path());
    let server = list_public_keys_server(std::fs::read(&t.public).unwrap()).await;
    let mut c = trailship(&[
        "verify",
        t.root.to_str().unwrap(),
        "--fetch-public-keys",
        "--endpoint",
        &server.url,
        "--aws-region",
        "us-east-1",
    ]);
    c.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    let o = tokio::task::block_in_place(|| run_with_timeout(c, 60));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("3/3 digest files valid"), "{out}");
    // One call: the key it returned serves the other digests.
    let calls = server.requests.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]
            .header("authorization")
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256"))
    );
}
