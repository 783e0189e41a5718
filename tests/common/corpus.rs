//! A synthetic CloudTrail corpus: realistic record shapes and sizes (management, data, console
//! sign-in, service and insight events; IAM users, assumed roles, services, root), a long tail
//! of large records (policy documents, big request parameters), deterministic from a seed.
//! Shared by the integration tests and the throughput benchmark.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Gen {
    rng: fastrand::Rng,
    seq: u64,
    /// Seconds since 2026-11-01T00:00:00Z (or `base`) of the next event.
    clock: u64,
    /// Unix time of the first event, instead of November 2026's 28-day cycle.
    base: Option<i64>,
    /// Largest step between two events, in seconds (exclusive).
    step: u64,
}

const ACCOUNTS: &[&str] = &["111122223333", "444455556666", "123456789012"];
const REGIONS: &[&str] = &["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"];
const AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023 prompt/off command/s3.cp",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1.79 md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "console.amazonaws.com",
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.149.1",
    "terraform-provider-aws/5.40.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.25.2",
];
/// (eventSource, eventName, readOnly, data event)
const CALLS: &[(&str, &str, bool, bool)] = &[
    ("ec2.amazonaws.com", "DescribeInstances", true, false),
    ("ec2.amazonaws.com", "RunInstances", false, false),
    ("ec2.amazonaws.com", "DescribeSecurityGroups", true, false),
    (
        "ec2.amazonaws.com",
        "AuthorizeSecurityGroupIngress",
        false,
        false,
    ),
    ("iam.amazonaws.com", "GetUser", true, false),
    ("iam.amazonaws.com", "CreateRole", false, false),
    ("iam.amazonaws.com", "PutRolePolicy", false, false),
    ("iam.amazonaws.com", "ListRoles", true, false),
    ("sts.amazonaws.com", "AssumeRole", true, false),
    ("sts.amazonaws.com", "GetCallerIdentity", true, false),
    ("s3.amazonaws.com", "GetObject", true, true),
    ("s3.amazonaws.com", "PutObject", false, true),
    ("s3.amazonaws.com", "ListBuckets", true, false),
    ("s3.amazonaws.com", "CreateBucket", false, false),
    ("kms.amazonaws.com", "Decrypt", true, false),
    ("kms.amazonaws.com", "GenerateDataKey", true, false),
    ("lambda.amazonaws.com", "Invoke", false, true),
    ("dynamodb.amazonaws.com", "GetItem", true, true),
    ("cloudtrail.amazonaws.com", "LookupEvents", true, false),
    ("logs.amazonaws.com", "PutLogEvents", false, false),
];

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen {
            rng: fastrand::Rng::with_seed(seed),
            seq: 0,
            clock: 0,
            base: None,
            step: 3,
        }
    }

    /// Events from Unix time `base` on, each `0..step` seconds after the one before (for
    /// destinations that refuse old events, such as CloudWatch Logs).
    pub fn starting_at(seed: u64, base: i64, step: u64) -> Self {
        Gen {
            base: Some(base),
            step: step.max(1),
            ..Gen::new(seed)
        }
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.rng.u32(0..16), 16).unwrap_or('0'))
            .collect()
    }

    fn upper(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| (b'A' + self.rng.u8(0..26)) as char)
            .collect()
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(4),
            self.hex(4),
            self.hex(12)
        )
    }

    fn time(&mut self) -> String {
        self.clock += self.rng.u64(0..self.step);
        let secs = self.clock;
        if let Some(base) = self.base {
            let t = chrono::DateTime::from_timestamp(base + secs as i64, 0).unwrap();
            return t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        }
        let day = 1 + (secs / 86_400) % 28;
        format!(
            "2026-11-{:02}T{:02}:{:02}:{:02}Z",
            day,
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60
        )
    }

    fn identity(&mut self, account: &str) -> String {
        match self.rng.u8(0..10) {
            0..=3 => {
                let user = format!("user-{}", self.rng.u8(0..40));
                format!(
                    r#"{{"type":"IAMUser","principalId":"AIDA{}","arn":"arn:aws:iam::{account}:user/{user}","accountId":"{account}","accessKeyId":"AKIA{}","userName":"{user}"}}"#,
                    self.upper(17),
                    self.upper(16)
                )
            }
            4..=7 => {
                let role = [
                    "ops-admin",
                    "ci-deployer",
                    "data-pipeline",
                    "readonly-audit",
                ][self.rng.usize(0..4)];
                let sess = self.hex(16);
                format!(
                    r#"{{"type":"AssumedRole","principalId":"AROA{p}:{sess}","arn":"arn:aws:sts::{account}:assumed-role/{role}/{sess}","accountId":"{account}","accessKeyId":"ASIA{k}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROA{p}","arn":"arn:aws:iam::{account}:role/{role}","accountId":"{account}","userName":"{role}"}},"webIdFederationData":{{}},"attributes":{{"creationDate":"2026-11-01T00:00:00Z","mfaAuthenticated":"false"}}}}}}"#,
                    p = self.upper(17),
                    k = self.upper(16)
                )
            }
            8 => r#"{"type":"AWSService","invokedBy":"ec2.amazonaws.com"}"#.to_string(),
            _ => format!(
                r#"{{"type":"Root","principalId":"{account}","arn":"arn:aws:iam::{account}:root","accountId":"{account}","accessKeyId":"ASIA{}"}}"#,
                self.upper(16)
            ),
        }
    }

    /// Request parameters: mostly small, with a long tail of large ones.
    fn params(&mut self, name: &str) -> String {
        let roll = self.rng.u32(0..1000);
        if roll < 5 {
            // A large policy document (tens of KiB), as in CreateRole/PutRolePolicy.
            let stmts: Vec<String> = (0..self.rng.usize(50..400))
                .map(|i| format!(r#"{{\"Sid\":\"S{i}\",\"Effect\":\"Allow\",\"Action\":[\"s3:GetObject\",\"s3:PutObject\"],\"Resource\":\"arn:aws:s3:::bucket-{i}/*\"}}"#))
                .collect();
            return format!(
                r#"{{"roleName":"role-{}","policyDocument":"{{\"Version\":\"2012-10-17\",\"Statement\":[{}]}}"}}"#,
                self.hex(6),
                stmts.join(",")
            );
        }
        if roll < 50 {
            let ids: Vec<String> = (0..self.rng.usize(10..80))
                .map(|_| format!(r#"{{"instanceId":"i-{}"}}"#, self.hex(17)))
                .collect();
            return format!(
                r#"{{"instancesSet":{{"items":[{}]}},"filterSet":{{}}}}"#,
                ids.join(",")
            );
        }
        match name {
            "GetObject" | "PutObject" => format!(
                r#"{{"bucketName":"logs-{}","Host":"logs.s3.us-east-1.amazonaws.com","key":"app/2026/11/{}/part-{}.parquet"}}"#,
                self.hex(4),
                self.rng.u8(1..29),
                self.hex(8)
            ),
            "AssumeRole" => format!(
                r#"{{"roleArn":"arn:aws:iam::111122223333:role/ci-deployer","roleSessionName":"gha-{}","durationSeconds":3600}}"#,
                self.hex(10)
            ),
            "Decrypt" | "GenerateDataKey" => format!(
                r#"{{"encryptionAlgorithm":"SYMMETRIC_DEFAULT","keyId":"arn:aws:kms:us-east-1:111122223333:key/{}"}}"#,
                self.uuid()
            ),
            _ => format!(
                r#"{{"maxResults":{},"nextToken":"{}"}}"#,
                self.rng.u8(1..100),
                self.hex(24)
            ),
        }
    }

    /// One record, compact JSON (as CloudTrail writes it). Returns (eventID, json).
    pub fn record(&mut self) -> (String, String) {
        self.seq += 1;
        let account = ACCOUNTS[self.rng.usize(0..ACCOUNTS.len())];
        let region = REGIONS[self.rng.usize(0..REGIONS.len())];
        let id = self.uuid();
        let time = self.time();
        let kind = self.rng.u16(0..1000);
        let json = if kind < 3 {
            format!(
                r#"{{"eventVersion":"1.08","eventTime":"{time}","awsRegion":"{region}","eventID":"{id}","eventType":"AwsCloudTrailInsight","recipientAccountId":"{account}","sharedEventID":"{}","insightDetails":{{"state":"Start","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","insightType":"ApiCallRateInsight","insightContext":{{"statistics":{{"baseline":{{"average":0.01}},"insight":{{"average":2.5}},"insightDuration":3}}}}}},"eventCategory":"Insight"}}"#,
                self.uuid()
            )
        } else if kind < 15 {
            let ok = self.rng.bool();
            format!(
                r#"{{"eventVersion":"1.08","userIdentity":{},"eventTime":"{time}","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.{}","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","requestParameters":null,"responseElements":{{"ConsoleLogin":"{}"}},{}"additionalEventData":{{"LoginTo":"https://console.aws.amazon.com/console/home","MobileVersion":"No","MFAUsed":"No"}},"eventID":"{id}","readOnly":false,"eventType":"AwsConsoleSignIn","managementEvent":true,"recipientAccountId":"{account}","eventCategory":"Management"}}"#,
                self.identity(account),
                self.rng.u8(1..255),
                if ok { "Success" } else { "Failure" },
                if ok {
                    ""
                } else {
                    r#""errorMessage":"Failed authentication","#
                }
            )
        } else {
            let (src, name, ro, data) = CALLS[self.rng.usize(0..CALLS.len())];
            let err = if self.rng.u8(0..20) == 0 {
                r#""errorCode":"AccessDenied","errorMessage":"User is not authorized to perform this operation","#
            } else {
                ""
            };
            let ua = AGENTS[self.rng.usize(0..AGENTS.len())];
            let ident = self.identity(account);
            let params = self.params(name);
            format!(
                r#"{{"eventVersion":"1.09","userIdentity":{ident},"eventTime":"{time}","eventSource":"{src}","eventName":"{name}","awsRegion":"{region}","sourceIPAddress":"198.51.100.{}","userAgent":"{ua}",{err}"requestParameters":{params},"responseElements":null,"requestID":"{}","eventID":"{id}","readOnly":{ro},"eventType":"AwsApiCall","managementEvent":{},"recipientAccountId":"{account}","eventCategory":"{}","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"{}"}}}}"#,
                self.rng.u8(1..255),
                self.uuid(),
                !data,
                if data { "Data" } else { "Management" },
                src
            )
        };
        (id, json)
    }

    /// A `{"Records":[...]}` document of `n` records.
    pub fn document(&mut self, n: usize) -> (Vec<String>, String) {
        let mut ids = Vec::with_capacity(n);
        let mut out = String::from("{\"Records\":[");
        for i in 0..n {
            let (id, r) = self.record();
            if i > 0 {
                out.push(',');
            }
            out.push_str(&r);
            ids.push(id);
        }
        out.push_str("]}");
        (ids, out)
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

/// Write `files` gzip CloudTrail files of `records` each, in the AWSLogs layout under `dir`.
/// Returns every eventID written and the total uncompressed bytes.
pub fn write_corpus(dir: &Path, files: usize, records: usize, seed: u64) -> (Vec<String>, u64) {
    let mut g = Gen::new(seed);
    let mut ids = Vec::new();
    let mut bytes = 0u64;
    for f in 0..files {
        let sub: PathBuf = dir.join(format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/{:02}",
            1 + f % 28
        ));
        std::fs::create_dir_all(&sub).expect("corpus dir");
        let (fids, doc) = g.document(records);
        bytes += doc.len() as u64;
        let name = sub.join(format!(
            "111122223333_CloudTrail_us-east-1_20261101T{:04}Z_{:016x}.json.gz",
            f % 10000,
            seed.wrapping_mul(31).wrapping_add(f as u64)
        ));
        std::fs::write(&name, gzip(doc.as_bytes())).expect("corpus file");
        ids.extend(fids);
    }
    (ids, bytes)
}

/// Write `files` gzip `{"Records":[...]}` documents of `records` records each into `dir` (named
/// `SEED-N.json.gz`), keeping only records shorter than `max_len` bytes. Returns the written
/// records as (eventID, JSON).
pub fn write_documents(
    dir: &Path,
    files: usize,
    records: usize,
    seed: u64,
    max_len: usize,
) -> Vec<(String, String)> {
    let mut g = Gen::new(seed);
    let mut out = Vec::new();
    std::fs::create_dir_all(dir).expect("corpus dir");
    for f in 0..files {
        let recs: Vec<(String, String)> = (0..records)
            .map(|_| g.record())
            .filter(|(_, r)| r.len() < max_len)
            .collect();
        let doc = format!(
            "{{\"Records\":[{}]}}",
            recs.iter()
                .map(|(_, r)| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        std::fs::write(
            dir.join(format!("{seed}-{f}.json.gz")),
            gzip(doc.as_bytes()),
        )
        .expect("corpus file");
        out.extend(recs);
    }
    out
}

/// The eventIDs of records.
pub fn ids(records: &[(String, String)]) -> Vec<String> {
    records.iter().map(|(id, _)| id.clone()).collect()
}

/// A plain document at `path` holding one minimal record with this eventID.
pub fn write_one(path: &Path, event_id: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("corpus dir");
    }
    std::fs::write(
        path,
        format!(
            r#"{{"Records":[{{"eventVersion":"1.08","eventTime":"2026-11-29T10:00:00Z","eventID":"{event_id}"}}]}}"#
        ),
    )
    .expect("corpus file");
}
