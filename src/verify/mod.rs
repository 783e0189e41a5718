//! `trailship verify DIR_OR_S3_URI [--since --until] --public-key FINGERPRINT=FILE`: CloudTrail
//! log-file integrity validation, like `aws cloudtrail validate-logs`. Every digest's RSA
//! signature (S3 metadata `signature`, or a `.sig` file beside a local copy), the chain of
//! digests (each names the previous one's hash and signature), every log file's SHA-256 of its
//! uncompressed content, and log files no digest accounts for.

pub mod digest;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use digest::{Digest, key_der, sha256_hex, signature_ok};

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// A trail directory (a local copy of AWSLogs/…), or s3://BUCKET/PREFIX.
    pub location: String,
    /// Digests ending at or after this time (YYYY-MM-DD, UTC, or RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Digests starting before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// A public key for the digests signed with this fingerprint: FINGERPRINT=FILE (DER or
    /// PEM; `aws cloudtrail list-public-keys` gives both). Repeat for several.
    #[arg(long = "public-key")]
    pub public_keys: Vec<String>,
    /// AWS region for s3:// (default: the standard chain).
    #[arg(long)]
    pub aws_region: Option<String>,
    /// Endpoint override for s3://.
    #[arg(long)]
    pub endpoint: Option<String>,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: &'static str,
    pub file: String,
    pub what: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub digests: usize,
    pub digests_valid: usize,
    pub logs: usize,
    pub logs_valid: usize,
    pub problems: Vec<Problem>,
}

/// Where the files are read from.
enum Store {
    Local(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        rt: tokio::runtime::Runtime,
    },
}

fn gunzip_if(data: Vec<u8>) -> Result<Vec<u8>, String> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("cannot decompress: {e}"))?;
        Ok(out)
    } else {
        Ok(data)
    }
}

impl Store {
    /// Every key under the location (local: paths relative to the directory, with `/`).
    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        match self {
            Store::Local(root) => {
                let mut out = Vec::new();
                for e in walkdir::WalkDir::new(root).sort_by_file_name() {
                    let e = e.map_err(|e| e.to_string())?;
                    if e.file_type().is_file()
                        && let Ok(rel) = e.path().strip_prefix(root)
                    {
                        out.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
                Ok(out)
            }
            Store::S3 { client, bucket, rt } => rt.block_on(async {
                let mut out = Vec::new();
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .into_paginator()
                    .send();
                while let Some(p) = pages.next().await {
                    let p = p.map_err(|e| {
                        format!(
                            "listing s3://{bucket}/{prefix}: {}",
                            crate::aws::error_text(&e)
                        )
                    })?;
                    out.extend(
                        p.contents()
                            .iter()
                            .filter_map(|o| o.key().map(String::from)),
                    );
                }
                Ok(out)
            }),
        }
    }

    /// The uncompressed content of a file, and its signature when the store keeps one.
    fn read(&self, key: &str) -> Result<(Vec<u8>, Option<String>), String> {
        match self {
            Store::Local(root) => {
                let path = root.join(key);
                let data = std::fs::read(&path).map_err(|e| e.to_string())?;
                let sig = std::fs::read_to_string(format!("{}.sig", path.display()))
                    .ok()
                    .map(|s| s.trim().to_string());
                Ok((gunzip_if(data)?, sig))
            }
            Store::S3 { client, bucket, rt } => rt.block_on(async {
                let o = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| crate::aws::error_text(&e))?;
                let sig = o.metadata().and_then(|m| m.get("signature")).cloned();
                let body = o
                    .body
                    .collect()
                    .await
                    .map_err(|e| format!("reading the body: {e}"))?
                    .into_bytes()
                    .to_vec();
                Ok((gunzip_if(body)?, sig))
            }),
        }
    }

    fn display(&self, key: &str) -> String {
        match self {
            Store::Local(root) => root.join(key).display().to_string(),
            Store::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}

fn is_digest(key: &str) -> bool {
    (key.contains("/CloudTrail-Digest/") || key.contains("_CloudTrail-Digest_"))
        && (key.ends_with(".json.gz") || key.ends_with(".json"))
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// The delivery time in a CloudTrail log file name (`…_20261101T0005Z_…`).
fn log_file_time(key: &str) -> Option<DateTime<Utc>> {
    let name = file_name(key);
    name.split('_').find_map(|part| {
        chrono::NaiveDateTime::parse_from_str(part, "%Y%m%dT%H%MZ")
            .ok()
            .map(|t| t.and_utc())
    })
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

struct Loaded {
    key: String,
    digest: Digest,
    hash: String,
    signature: Option<String>,
}

pub fn run(args: &VerifyArgs) -> Result<Report, String> {
    let bound = |s: &Option<String>, flag: &str| {
        s.as_deref()
            .map(|v| crate::sources::s3::keys::parse_bound(v).map_err(|e| format!("--{flag}: {e}")))
            .transpose()
    };
    let (since, until) = (bound(&args.since, "since")?, bound(&args.until, "until")?);
    let mut keys_by_fp: HashMap<String, Vec<u8>> = HashMap::new();
    for spec in &args.public_keys {
        let (fp, path) = spec
            .split_once('=')
            .ok_or_else(|| format!("--public-key {spec:?}: expected FINGERPRINT=FILE"))?;
        let bytes = std::fs::read(path).map_err(|e| format!("--public-key {path}: {e}"))?;
        keys_by_fp.insert(fp.to_ascii_lowercase(), key_der(&bytes)?);
    }
    let (store, prefix) = if args.location.starts_with("s3://") {
        let (bucket, prefix) = crate::backfill::parse_url(&args.location)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let access = crate::aws::AwsAccess {
            region: args.aws_region.clone(),
            endpoint: args.endpoint.clone(),
            assume_role: None,
        };
        let client = rt.block_on(access.s3());
        (Store::S3 { client, bucket, rt }, prefix)
    } else {
        (Store::Local(PathBuf::from(&args.location)), String::new())
    };
    let keys = store.list(&prefix)?;
    let mut report = Report::default();
    let problem = |r: &mut Report, kind, file: String, what: String| {
        r.problems.push(Problem { kind, file, what });
    };
    // Digests in range, oldest first.
    let mut digests: Vec<Loaded> = Vec::new();
    for key in keys.iter().filter(|k| is_digest(k)) {
        let (content, signature) = match store.read(key) {
            Ok(x) => x,
            Err(e) => {
                report.digests += 1;
                problem(
                    &mut report,
                    "digest",
                    store.display(key),
                    format!("unreadable: {e}"),
                );
                continue;
            }
        };
        let digest: Digest = match serde_json::from_slice(&content) {
            Ok(d) => d,
            Err(e) => {
                report.digests += 1;
                problem(
                    &mut report,
                    "digest",
                    store.display(key),
                    format!("not a digest file: {e}"),
                );
                continue;
            }
        };
        let (start, end) = (
            time(&digest.digest_start_time),
            time(&digest.digest_end_time),
        );
        if since.is_some_and(|s| end.is_some_and(|e| e < s))
            || until.is_some_and(|u| start.is_some_and(|s| s >= u))
        {
            continue;
        }
        digests.push(Loaded {
            key: key.clone(),
            hash: sha256_hex(&content),
            digest,
            signature,
        });
    }
    digests.sort_by(|a, b| a.digest.digest_end_time.cmp(&b.digest.digest_end_time));
    let by_object: HashMap<&str, &Loaded> = digests
        .iter()
        .map(|l| (l.digest.digest_s3_object.as_str(), l))
        .collect();
    for l in &digests {
        report.digests += 1;
        let name = store.display(&l.key);
        let d = &l.digest;
        let mut ok = true;
        if !d.digest_s3_object.ends_with(file_name(&l.key)) {
            ok = false;
            problem(
                &mut report,
                "digest",
                name.clone(),
                format!("found at a place it does not name ({})", d.digest_s3_object),
            );
        }
        match (&l.signature, d.digest_public_key_fingerprint.as_deref()) {
            (None, _) => {
                ok = false;
                problem(&mut report, "digest", name.clone(), "unsigned: no signature (S3 metadata `signature`, or a .sig file beside a local copy)".into());
            }
            (Some(_), None) => {
                ok = false;
                problem(
                    &mut report,
                    "digest",
                    name.clone(),
                    "names no public key fingerprint".into(),
                );
            }
            (Some(sig), Some(fp)) => match keys_by_fp.get(&fp.to_ascii_lowercase()) {
                None => {
                    ok = false;
                    problem(
                        &mut report,
                        "digest",
                        name.clone(),
                        format!(
                            "no public key for fingerprint {fp} (give it with --public-key {fp}=FILE)"
                        ),
                    );
                }
                Some(key) => {
                    if !signature_ok(key, &d.string_to_sign(&l.hash), sig) {
                        ok = false;
                        problem(&mut report, "digest", name.clone(), "signature does not verify: the digest was changed or not signed by CloudTrail".into());
                    }
                }
            },
        }
        if let Some(prev) = d.previous_digest_s3_object.as_deref() {
            match by_object.get(prev) {
                Some(p) => {
                    if d.previous_digest_hash_value.as_deref() != Some(p.hash.as_str()) {
                        ok = false;
                        problem(
                            &mut report,
                            "chain",
                            name.clone(),
                            format!(
                                "the previous digest {} does not have the hash this one records: it was changed",
                                file_name(prev)
                            ),
                        );
                    }
                    if p.signature.is_some() && d.previous_digest_signature != p.signature {
                        ok = false;
                        problem(
                            &mut report,
                            "chain",
                            name.clone(),
                            format!(
                                "the previous digest {} does not have the signature this one records",
                                file_name(prev)
                            ),
                        );
                    }
                }
                None => {
                    let prev_end = log_file_time(prev).or_else(|| {
                        file_name(prev)
                            .trim_end_matches(".json.gz")
                            .rsplit('_')
                            .next()
                            .and_then(|t| {
                                chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").ok()
                            })
                            .map(|t| t.and_utc())
                    });
                    let in_range = since.is_none_or(|s| prev_end.is_none_or(|e| e >= s));
                    if in_range {
                        ok = false;
                        problem(
                            &mut report,
                            "chain",
                            name.clone(),
                            format!("the previous digest {prev} is missing: the chain is broken"),
                        );
                    }
                }
            }
        }
        if ok {
            report.digests_valid += 1;
        }
    }
    // Log files: as the digests list them, then any they do not account for.
    let logs_by_name: BTreeMap<&str, &String> = keys
        .iter()
        .filter(|k| !is_digest(k) && !k.ends_with(".sig") && !k.contains("CloudTrail-Digest"))
        .map(|k| (file_name(k), k))
        .collect();
    let mut referenced: HashMap<&str, ()> = HashMap::new();
    for l in &digests {
        for f in &l.digest.log_files {
            report.logs += 1;
            let fname = file_name(&f.s3_object);
            referenced.insert(fname, ());
            let Some(key) = logs_by_name.get(fname) else {
                problem(
                    &mut report,
                    "log",
                    f.s3_object.clone(),
                    format!("missing (listed in {})", file_name(&l.key)),
                );
                continue;
            };
            match store.read(key) {
                Ok((content, _)) => {
                    let h = sha256_hex(&content);
                    if h.eq_ignore_ascii_case(&f.hash_value) {
                        report.logs_valid += 1;
                    } else {
                        problem(
                            &mut report,
                            "log",
                            store.display(key),
                            format!("modified: SHA-256 {h}, the digest records {}", f.hash_value),
                        );
                    }
                }
                Err(e) => problem(
                    &mut report,
                    "log",
                    store.display(key),
                    format!("unreadable: {e}"),
                ),
            }
        }
    }
    // A log file delivered before the newest digest began should be in a digest.
    let newest_start = digests
        .iter()
        .filter_map(|l| time(&l.digest.digest_start_time))
        .max();
    for (name, key) in &logs_by_name {
        if referenced.contains_key(name) || !key.contains("/CloudTrail/") {
            continue;
        }
        let Some(t) = log_file_time(key) else {
            continue;
        };
        let in_range = since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u);
        if in_range && newest_start.is_some_and(|n| t < n) {
            report.logs += 1;
            problem(
                &mut report,
                "log",
                store.display(key),
                "not in any digest: added after delivery, or its digest is missing".into(),
            );
        }
    }
    Ok(report)
}

/// The summary a person reads.
pub fn print(report: &Report) {
    for p in &report.problems {
        println!("FAIL  {:<6} {}: {}", p.kind, p.file, p.what);
    }
    println!(
        "Results: {}/{} digest files valid, {}/{} log files valid; {} problem(s)",
        report.digests_valid,
        report.digests,
        report.logs_valid,
        report.logs,
        report.problems.len()
    );
}
