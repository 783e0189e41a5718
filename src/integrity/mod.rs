//! `trailship verify DIR_OR_S3_URI [--since --until] --public-key FINGERPRINT=FILE`: CloudTrail
//! log-file integrity validation, like `aws cloudtrail validate-logs`. Every digest's RSA
//! signature (S3 metadata `signature`, or a `.sig` file beside a local copy), the chain of
//! digests (each names the previous one's hash and signature), every log file's SHA-256 of its
//! uncompressed content, and log files no digest accounts for.

pub mod digest;
mod error;
pub mod keys;
mod store;

pub use error::IntegrityError;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use digest::{Digest, key_der, sha256_hex, signature_ok};
use store::Store;

/// What to verify: where, over which time, with which keys (the `verify` command's flags, or
/// a caller's own).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A trail directory (a local copy of AWSLogs/…), or s3://BUCKET/PREFIX.
    pub location: String,
    /// Digests ending at or after this time (YYYY-MM-DD, UTC, or RFC 3339).
    pub since: Option<String>,
    /// Digests starting before this time.
    pub until: Option<String>,
    /// Public keys as FINGERPRINT=FILE (DER or PEM).
    pub public_keys: Vec<String>,
    /// Fetch the keys none of `public_keys` gives through ListPublicKeys.
    pub fetch_public_keys: bool,
    /// AWS region and endpoint override for s3://.
    pub aws_region: Option<String>,
    pub endpoint: Option<String>,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `digest`, `chain` or `log`.
    pub kind: &'static str,
    /// What went wrong, as a name (`LogFileModified`, `DigestChainBroken`, …).
    pub code: &'static str,
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

/// Log files by file name (CloudTrail's names are unique).
fn log_files(keys: &[String]) -> BTreeMap<&str, &String> {
    keys.iter()
        .filter(|k| !k.ends_with(".sig") && !k.contains("CloudTrail-Digest"))
        .map(|k| (file_name(k), k))
        .collect()
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

fn public_keys(specs: &[String]) -> Result<HashMap<String, Vec<u8>>, IntegrityError> {
    let mut keys = HashMap::new();
    for spec in specs {
        let (fp, path) = spec
            .split_once('=')
            .ok_or_else(|| IntegrityError::KeySpec { spec: spec.clone() })?;
        let bytes = std::fs::read(path).map_err(|source| IntegrityError::KeyFile {
            path: path.into(),
            source,
        })?;
        keys.insert(fp.to_ascii_lowercase(), key_der(&bytes)?);
    }
    Ok(keys)
}

fn open_store(
    args: &Request,
) -> Result<(Store, String, Option<tokio::runtime::Runtime>), IntegrityError> {
    if !args.location.starts_with("s3://") {
        return Ok((
            Store::Local(PathBuf::from(&args.location)),
            String::new(),
            None,
        ));
    }
    let (bucket, prefix) = crate::aws::parse_url(&args.location)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(IntegrityError::Runtime)?;
    let access = crate::aws::AwsAccess {
        region: args.aws_region.clone(),
        endpoint: args.endpoint.clone(),
        assume_role: None,
    };
    let client = rt.block_on(access.s3());
    let handle = rt.handle().clone();
    Ok((
        Store::S3 {
            client,
            bucket,
            rt: handle,
        },
        prefix,
        Some(rt),
    ))
}

/// One verification: where, with which keys, over which time, and what it found.
struct Checker {
    store: Store,
    /// ListPublicKeys for fingerprints no configured key matches.
    fetcher: Option<keys::KeyFetcher>,
    /// Read a previous digest the chain names but that was not seen (checks of announced
    /// digests, where nothing was listed).
    fetch_previous: bool,
    keys: HashMap<String, Vec<u8>>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    report: Report,
}

pub fn run(args: &Request) -> Result<Report, IntegrityError> {
    use crate::aws::trail_keys::parse_flag;
    let (store, prefix, runtime) = open_store(args)?;
    // A runtime for the AWS calls (the S3 one, or one of its own for a local directory).
    let runtime = match runtime {
        Some(r) => Some(r),
        None if args.fetch_public_keys => Some(
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(IntegrityError::Runtime)?,
        ),
        None => None,
    };
    let fetcher = match (&runtime, args.fetch_public_keys) {
        (Some(rt), true) => Some(keys::KeyFetcher::new(
            &crate::aws::AwsAccess {
                region: args.aws_region.clone(),
                endpoint: args.endpoint.clone(),
                assume_role: None,
            },
            rt.handle().clone(),
        )),
        _ => None,
    };
    let mut c = Checker {
        since: parse_flag("since", &args.since)?,
        until: parse_flag("until", &args.until)?,
        keys: public_keys(&args.public_keys)?,
        fetcher,
        store,
        fetch_previous: false,
        report: Report::default(),
    };
    let keys = c.store.list(&prefix)?;
    let digests = c.load_digests(&keys, &HashSet::new());
    let known: Known = digests
        .iter()
        .map(|l| {
            (
                l.digest.digest_s3_object.clone(),
                (l.hash.clone(), l.signature.clone()),
            )
        })
        .collect();
    c.check_digests(&digests, &known);
    let mut referenced = HashSet::new();
    c.check_listed(&keys, &digests, &mut referenced);
    let newest = newest_start(&digests);
    c.check_unlisted(&keys, &referenced, newest, &mut HashSet::new());
    Ok(c.report)
}

/// Digests seen: their object key → (hash, signature).
type Known = HashMap<String, (String, Option<String>)>;

fn newest_start(digests: &[Loaded]) -> Option<DateTime<Utc>> {
    digests
        .iter()
        .filter_map(|l| time(&l.digest.digest_start_time))
        .max()
}

/// `validate_digests` on a file source: the same checks, on the digests that appeared since
/// the last look, with the chain followed across looks.
pub struct Watch {
    checker: Checker,
    prefix: String,
    checked: HashSet<String>,
    known: Known,
    referenced: HashSet<String>,
    reported: HashSet<String>,
    newest: Option<DateTime<Utc>>,
}

impl Watch {
    /// The digests under a local directory.
    pub fn new(root: PathBuf, keys: HashMap<String, Vec<u8>>) -> Watch {
        Self::with(Store::Local(root), String::new(), keys)
    }

    /// The digests in an S3 bucket (under `prefix`); S3 calls run on `rt` (call the checks
    /// from a blocking section).
    pub fn s3(
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
        keys: HashMap<String, Vec<u8>>,
        rt: tokio::runtime::Handle,
    ) -> Watch {
        Self::with(Store::S3 { client, bucket, rt }, prefix, keys)
    }

    /// Fetch keys no configured one matches through ListPublicKeys.
    pub fn with_fetcher(mut self, f: keys::KeyFetcher) -> Watch {
        self.checker.fetcher = Some(f);
        self
    }

    fn with(store: Store, prefix: String, keys: HashMap<String, Vec<u8>>) -> Watch {
        Watch {
            prefix,
            checker: Checker {
                fetcher: None,
                store,
                fetch_previous: false,
                keys,
                since: None,
                until: None,
                report: Report::default(),
            },
            checked: HashSet::new(),
            known: Known::new(),
            referenced: HashSet::new(),
            reported: HashSet::new(),
            newest: None,
        }
    }

    /// Check what is new; the problems found (each reported once).
    pub fn check(&mut self) -> Result<Vec<Problem>, IntegrityError> {
        let c = &mut self.checker;
        let keys = c.store.list(&self.prefix)?;
        let digests = c.load_digests(&keys, &self.checked);
        for l in &digests {
            self.checked.insert(l.key.clone());
            self.known.insert(
                l.digest.digest_s3_object.clone(),
                (l.hash.clone(), l.signature.clone()),
            );
        }
        c.check_digests(&digests, &self.known);
        c.check_listed(&keys, &digests, &mut self.referenced);
        self.newest = self.newest.max(newest_start(&digests));
        c.check_unlisted(&keys, &self.referenced, self.newest, &mut self.reported);
        Ok(std::mem::take(&mut c.report.problems))
    }
}

impl Watch {
    /// Check digests announced one by one (an SQS notification), without listing: their log
    /// files by the keys they record, and the previous digest read when it was not seen.
    pub fn check_announced(
        &mut self,
        digest_keys: &[String],
    ) -> Result<Vec<Problem>, IntegrityError> {
        let c = &mut self.checker;
        c.fetch_previous = true;
        let digests = c.load_digests(digest_keys, &self.checked);
        for l in &digests {
            self.checked.insert(l.key.clone());
        }
        c.check_digests(&digests, &self.known);
        for l in &digests {
            self.known.insert(
                l.digest.digest_s3_object.clone(),
                (l.hash.clone(), l.signature.clone()),
            );
        }
        let logs: Vec<String> = digests
            .iter()
            .flat_map(|l| l.digest.log_files.iter().map(|f| f.s3_object.clone()))
            .collect();
        c.check_listed(&logs, &digests, &mut self.referenced);
        Ok(std::mem::take(&mut c.report.problems))
    }
}

/// The public keys of `--public-key`-style specs (FINGERPRINT=FILE).
pub fn load_public_keys(specs: &[String]) -> Result<HashMap<String, Vec<u8>>, IntegrityError> {
    public_keys(specs)
}

impl Checker {
    fn problem(&mut self, code: &'static str, file: String, what: String) -> bool {
        let kind = if code.starts_with("LogFile") {
            "log"
        } else if code == "DigestChainBroken" {
            "chain"
        } else {
            "digest"
        };
        self.report.problems.push(Problem {
            kind,
            code,
            file,
            what,
        });
        false
    }

    /// The digests in range, oldest first; unreadable ones are problems.
    fn load_digests(&mut self, keys: &[String], skip: &HashSet<String>) -> Vec<Loaded> {
        let mut digests = Vec::new();
        for key in keys.iter().filter(|k| is_digest(k) && !skip.contains(*k)) {
            let loaded = self.store.read(key).and_then(|(content, signature)| {
                let digest: Digest =
                    serde_json::from_slice(&content).map_err(IntegrityError::NotDigest)?;
                Ok(Loaded {
                    key: key.clone(),
                    hash: sha256_hex(&content),
                    digest,
                    signature,
                })
            });
            match loaded {
                Ok(l) => {
                    let start = time(&l.digest.digest_start_time);
                    let end = time(&l.digest.digest_end_time);
                    let before = self.since.is_some_and(|s| end.is_some_and(|e| e < s));
                    let after = self.until.is_some_and(|u| start.is_some_and(|s| s >= u));
                    if !before && !after {
                        digests.push(l);
                    }
                }
                Err(e) => {
                    self.report.digests += 1;
                    let name = self.store.display(key);
                    self.problem("DigestUnreadable", name, format!("unreadable: {e}"));
                }
            }
        }
        digests.sort_by(|a, b| a.digest.digest_end_time.cmp(&b.digest.digest_end_time));
        digests
    }

    fn check_digests(&mut self, digests: &[Loaded], known: &Known) {
        for l in digests {
            self.report.digests += 1;
            let ok = self.check_location(l) & self.check_signature(l) & self.check_chain(l, known);
            if ok {
                self.report.digests_valid += 1;
            }
        }
    }

    /// The digest is where it says it is.
    fn check_location(&mut self, l: &Loaded) -> bool {
        if l.digest.digest_s3_object.ends_with(file_name(&l.key)) {
            return true;
        }
        let what = format!(
            "found at a place it does not name ({})",
            l.digest.digest_s3_object
        );
        self.problem("DigestMisplaced", self.store.display(&l.key), what)
    }

    /// Its signature verifies with the key of its fingerprint.
    fn check_signature(&mut self, l: &Loaded) -> bool {
        let name = self.store.display(&l.key);
        let d = &l.digest;
        let (Some(sig), Some(fp)) = (&l.signature, d.digest_public_key_fingerprint.as_deref())
        else {
            let (code, what) = if l.signature.is_none() {
                (
                    "DigestUnsigned",
                    "unsigned: no signature (S3 metadata `signature`, or a .sig file beside a local copy)",
                )
            } else {
                ("DigestNoFingerprint", "names no public key fingerprint")
            };
            return self.problem(code, name, what.into());
        };
        let fp = fp.to_ascii_lowercase();
        if !self.keys.contains_key(&fp) {
            self.fetch_keys(l);
        }
        let Some(key) = self.keys.get(&fp) else {
            let what = format!(
                "no public key for fingerprint {fp} (give it with --public-key {fp}=FILE, or fetch the keys with ListPublicKeys)"
            );
            return self.problem("DigestNoPublicKey", name, what);
        };
        if signature_ok(key, &d.string_to_sign(&l.hash), sig) {
            return true;
        }
        self.problem(
            "DigestSignatureInvalid",
            name,
            "signature does not verify: the digest was changed or not signed by CloudTrail".into(),
        )
    }

    /// Ask ListPublicKeys for the keys of this digest's region and time, when allowed.
    fn fetch_keys(&mut self, l: &Loaded) {
        let Some(f) = self.fetcher.as_mut() else {
            return;
        };
        let region = keys::digest_region(&l.digest.digest_s3_object)
            .or_else(|| keys::digest_region(&l.key))
            .unwrap_or("us-east-1");
        let at = time(&l.digest.digest_end_time).unwrap_or_else(Utc::now);
        match f.fetch(region, at) {
            Ok(found) => self.keys.extend(found),
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch CloudTrail's public keys");
            }
        }
    }

    /// The previous digest it names is there, with the hash and signature it records.
    fn check_chain(&mut self, l: &Loaded, known: &Known) -> bool {
        let d = &l.digest;
        let Some(prev) = d.previous_digest_s3_object.as_deref() else {
            return true;
        };
        let name = self.store.display(&l.key);
        let fetched;
        let found = match known.get(prev) {
            Some(k) => Some(k),
            None if self.fetch_previous => {
                fetched = self
                    .store
                    .read(prev)
                    .ok()
                    .map(|(content, sig)| (sha256_hex(&content), sig));
                fetched.as_ref()
            }
            None => None,
        };
        let Some((p_hash, p_sig)) = found else {
            // Missing: a break, unless it ends before the range asked for.
            let prev_end = file_name(prev)
                .trim_end_matches(".json.gz")
                .rsplit('_')
                .next()
                .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").ok())
                .map(|t| t.and_utc());
            if self.since.is_some_and(|s| prev_end.is_some_and(|e| e < s)) {
                return true;
            }
            let what = format!("the previous digest {prev} is missing: the chain is broken");
            return self.problem("DigestChainBroken", name, what);
        };
        let mut ok = true;
        if d.previous_digest_hash_value.as_deref() != Some(p_hash.as_str()) {
            let what = format!(
                "the previous digest {} does not have the hash this one records: it was changed",
                file_name(prev)
            );
            ok = self.problem("DigestChainBroken", name.clone(), what);
        }
        if p_sig.is_some() && d.previous_digest_signature != *p_sig {
            let what = format!(
                "the previous digest {} does not have the signature this one records",
                file_name(prev)
            );
            ok = self.problem("DigestChainBroken", name, what);
        }
        ok
    }

    /// Every log file a digest lists is there with the hash it records.
    fn check_listed(
        &mut self,
        keys: &[String],
        digests: &[Loaded],
        referenced: &mut HashSet<String>,
    ) {
        let logs_by_name = log_files(keys);
        for l in digests {
            for f in &l.digest.log_files {
                self.report.logs += 1;
                let fname = file_name(&f.s3_object);
                referenced.insert(fname.to_string());
                let Some(key) = logs_by_name.get(fname) else {
                    let what = format!("missing (listed in {})", file_name(&l.key));
                    self.problem("LogFileMissing", f.s3_object.clone(), what);
                    continue;
                };
                let name = self.store.display(key);
                match self.store.read(key) {
                    Ok((content, _)) => {
                        let h = sha256_hex(&content);
                        if h.eq_ignore_ascii_case(&f.hash_value) {
                            self.report.logs_valid += 1;
                        } else {
                            let what = format!(
                                "modified: SHA-256 {h}, the digest records {}",
                                f.hash_value
                            );
                            self.problem("LogFileModified", name, what);
                        }
                    }
                    Err(e) if e.is_missing() => {
                        let what = format!("missing (listed in {})", file_name(&l.key));
                        self.problem("LogFileMissing", name, what);
                    }
                    Err(e) => {
                        self.problem("LogFileUnreadable", name, format!("unreadable: {e}"));
                    }
                }
            }
        }
    }

    /// No log file that a digest should already cover (delivered before the newest digest
    /// began) is missing from all of them: a file slipped in afterwards.
    fn check_unlisted(
        &mut self,
        keys: &[String],
        referenced: &HashSet<String>,
        newest_start: Option<DateTime<Utc>>,
        reported: &mut HashSet<String>,
    ) {
        for (name, key) in log_files(keys) {
            let Some(t) = log_file_time(key) else {
                continue;
            };
            if referenced.contains(name) || !key.contains("/CloudTrail/") || reported.contains(name)
            {
                continue;
            }
            let in_range = self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u);
            if in_range && newest_start.is_some_and(|n| t < n) {
                reported.insert(name.to_string());
                self.report.logs += 1;
                let what = "not in any digest: added after delivery, or its digest is missing";
                self.problem("LogFileNotInDigest", self.store.display(key), what.into());
            }
        }
    }
}
