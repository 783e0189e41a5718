//! Public keys for digest signatures fetched through CloudTrail's ListPublicKeys, per region
//! (CloudTrail signs each region's digests with that region's key), for the fingerprints no
//! configured key matches.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::aws::AwsAccess;

pub struct KeyFetcher {
    sdk: aws_config::SdkConfig,
    rt: tokio::runtime::Handle,
    clients: HashMap<String, aws_sdk_cloudtrail::Client>,
    /// (region, hour) already asked: each is asked once.
    asked: HashSet<(String, i64)>,
}

impl KeyFetcher {
    /// Build with the AWS access given; call from outside the runtime, or from a blocking
    /// section of it.
    pub fn new(access: &AwsAccess, rt: tokio::runtime::Handle) -> KeyFetcher {
        let sdk = rt.block_on(access.sdk_config());
        KeyFetcher {
            sdk,
            rt,
            clients: HashMap::new(),
            asked: HashSet::new(),
        }
    }

    /// The keys valid around `at` in `region`, as (fingerprint, DER). Empty when that region
    /// and hour were asked already.
    pub fn fetch(
        &mut self,
        region: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<(String, Vec<u8>)>, super::IntegrityError> {
        if !self
            .asked
            .insert((region.to_string(), at.timestamp() / 3600))
        {
            return Ok(Vec::new());
        }
        let client = self
            .clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = aws_sdk_cloudtrail::config::Builder::from(&self.sdk)
                    .region(aws_config::Region::new(region.to_string()))
                    .build();
                aws_sdk_cloudtrail::Client::from_conf(conf)
            })
            .clone();
        let window =
            |t: DateTime<Utc>| aws_sdk_cloudtrail::primitives::DateTime::from_secs(t.timestamp());
        let (start, end) = (
            window(at - chrono::Duration::hours(2)),
            window(at + chrono::Duration::hours(1)),
        );
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .rt
                .block_on(
                    client
                        .list_public_keys()
                        .start_time(start)
                        .end_time(end)
                        .set_next_token(token.clone())
                        .send(),
                )
                .map_err(|e| super::IntegrityError::ListPublicKeys {
                    region: region.into(),
                    detail: crate::aws::error_text(&e),
                })?;
            for k in resp.public_key_list() {
                if let (Some(fp), Some(v)) = (k.fingerprint(), k.value()) {
                    out.push((fp.to_ascii_lowercase(), v.as_ref().to_vec()));
                }
            }
            token = resp.next_token().map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

/// The region of a digest, from its key (`…/CloudTrail-Digest/REGION/…`).
pub fn digest_region(key: &str) -> Option<&str> {
    let mut parts = key.split('/');
    parts.find(|p| *p == "CloudTrail-Digest")?;
    parts.next().filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn region_from_the_digest_key() {
        assert_eq!(
            super::digest_region("AWSLogs/1/CloudTrail-Digest/eu-west-1/2026/11/01/x.json.gz"),
            Some("eu-west-1")
        );
        assert_eq!(
            super::digest_region("AWSLogs/1/CloudTrail/eu-west-1/x"),
            None
        );
    }
}
