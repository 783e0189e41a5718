//! Where `trailship verify` reads from: a local directory or an S3 prefix (signatures from a
//! `.sig` file beside a local digest, or from the S3 object's `signature` metadata).

use std::io::Read;
use std::path::PathBuf;

use super::IntegrityError;

/// Where the files are read from.
pub enum Store {
    Local(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// Where the S3 calls run: the command's own runtime, or (inside the daemon) the
        /// pipeline's, from a `block_in_place` section.
        rt: tokio::runtime::Handle,
    },
}

fn gunzip_if(key: &str, data: Vec<u8>) -> Result<Vec<u8>, IntegrityError> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|source| IntegrityError::Gunzip {
                key: key.into(),
                source,
            })?;
        Ok(out)
    } else {
        Ok(data)
    }
}

impl Store {
    /// Every key under the location (local: paths relative to the directory, with `/`).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, IntegrityError> {
        match self {
            Store::Local(root) => {
                let mut out = Vec::new();
                for e in walkdir::WalkDir::new(root).sort_by_file_name() {
                    let e = e.map_err(|e| IntegrityError::Walk {
                        root: root.clone(),
                        detail: e.to_string(),
                    })?;
                    if e.file_type().is_file()
                        && let Ok(rel) = e.path().strip_prefix(root)
                    {
                        out.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
                Ok(out)
            }
            Store::S3 { client, bucket, rt } => {
                Ok(rt.block_on(crate::aws::list_keys(client, bucket, prefix))?)
            }
        }
    }

    /// The uncompressed content of a file, and its signature when the store keeps one.
    pub fn read(&self, key: &str) -> Result<(Vec<u8>, Option<String>), IntegrityError> {
        match self {
            Store::Local(root) => {
                let path = root.join(key);
                let data = std::fs::read(&path).map_err(|source| IntegrityError::ReadFile {
                    path: path.clone(),
                    source,
                })?;
                let sig = std::fs::read_to_string(format!("{}.sig", path.display()))
                    .ok()
                    .map(|s| s.trim().to_string());
                Ok((gunzip_if(key, data)?, sig))
            }
            Store::S3 { client, bucket, rt } => {
                let (body, meta) = rt.block_on(crate::aws::get_object(client, bucket, key))?;
                Ok((
                    gunzip_if(key, body.to_vec())?,
                    meta.get("signature").cloned(),
                ))
            }
        }
    }

    pub fn display(&self, key: &str) -> String {
        match self {
            Store::Local(root) => root.join(key).display().to_string(),
            Store::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}
