//! CloudTrail digest files: their fields, the string CloudTrail signs, RSA SHA-256 signature
//! checks (aws-lc-rs, already in the tree through rustls) and SHA-256 of uncompressed content.

use aws_lc_rs::{digest, signature};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileRef {
    pub s3_bucket: String,
    pub s3_object: String,
    pub hash_value: String,
    #[serde(default)]
    pub hash_algorithm: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Digest {
    #[serde(default)]
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    #[serde(default)]
    pub digest_public_key_fingerprint: Option<String>,
    #[serde(default)]
    pub digest_signature_algorithm: Option<String>,
    #[serde(default)]
    pub previous_digest_s3_bucket: Option<String>,
    #[serde(default)]
    pub previous_digest_s3_object: Option<String>,
    #[serde(default)]
    pub previous_digest_hash_value: Option<String>,
    #[serde(default)]
    pub previous_digest_signature: Option<String>,
    #[serde(default)]
    pub log_files: Vec<LogFileRef>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Digest {
    /// What CloudTrail signs: the end time, `bucket/key` of the digest, the hex SHA-256 of its
    /// uncompressed content and the previous digest's signature (`null` for the first).
    pub fn string_to_sign(&self, content_sha256_hex: &str) -> String {
        format!(
            "{}\n{}/{}\n{}\n{}",
            self.digest_end_time,
            self.digest_s3_bucket,
            self.digest_s3_object,
            content_sha256_hex,
            self.previous_digest_signature.as_deref().unwrap_or("null")
        )
    }
}

/// A public key to check signatures with: DER (PKCS#1 RSAPublicKey, as ListPublicKeys returns
/// it) or PEM of it.
pub fn key_der(bytes: &[u8]) -> Result<Vec<u8>, super::IntegrityError> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    use base64::Engine;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(super::IntegrityError::Pem)
}

/// Whether `signature` (hex) is a valid RSA PKCS#1 v1.5 SHA-256 signature of `message`.
pub fn signature_ok(key_der: &[u8], message: &str, signature_hex: &str) -> bool {
    let Some(sig) = unhex(signature_hex) else {
        return false;
    };
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key_der)
        .verify(message.as_bytes(), &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_digest_and_builds_the_string_to_sign() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cloudtrail/digest/awsdocs-digest-file-example-1.json"
        ))
        .unwrap();
        let d: Digest = serde_json::from_str(&text).unwrap();
        assert_eq!(d.log_files.len(), 1);
        let s = d.string_to_sign("abc");
        let lines: Vec<&str> = s.split('\n').collect();
        assert_eq!(lines[0], "2015-08-17T15:01:31Z");
        assert!(lines[1].starts_with("S3-bucket-name/AWSLogs/111122223333/CloudTrail-Digest/"));
        assert_eq!(lines[2], "abc");
        assert!(lines[3].starts_with("50887ccf"));
        assert_eq!(unhex("0aff"), Some(vec![10, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
