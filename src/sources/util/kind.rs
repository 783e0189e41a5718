//! What a source kind gives the registry: one `SourceKind` value per kind (its name, the
//! shared keys it takes, how to parse its table) and the `Source` a parsed table becomes
//! (check it, start it). A kind is registered by one line in `sources::KINDS`.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::integrity::DigestOptions;
use crate::aws::AwsAccess;
use crate::config::FieldError;
use crate::core::run::{SourceContext, SourceReport};

/// Why a source could not start; the topology names the source. It never starts then, and a
/// reload that fixes its config starts it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read the current directory: {0}")]
    CurrentDir(std::io::Error),
    /// A setting that only fails when it is used (a glob, a key filter, a time bound, a key
    /// file); the message names the key.
    #[error("{0}")]
    Setting(String),
    /// The digest check's public keys could not be read (the message names the file).
    #[error("{0}")]
    PublicKeys(crate::integrity::IntegrityError),
    /// The checkpoint store could not be opened or read (the message names its file).
    #[error("{0}")]
    Checkpoint(std::io::Error),
}

impl From<FieldError> for StartError {
    fn from(e: FieldError) -> Self {
        StartError::Setting(e.message)
    }
}

/// One kind of source, as the registry knows it.
pub struct SourceKind {
    /// The `type` that selects it.
    pub name: &'static str,
    /// Keys of this kind taken out of its table before its own are read, besides
    /// `DigestOptions::KEYS` (which every source takes).
    pub keys: &'static [&'static str],
    /// Its table (shared keys taken out) and its digest options into a configured source.
    pub parse: fn(toml::Table, DigestOptions) -> Result<Arc<dyn Source>, FieldError>,
}

/// What a source's config gives to be a `Source` (every source kind implements this; the
/// digest checks and the rest of `Source` come with it).
pub trait SourceParts: Debug + Clone + Send + Sync + 'static {
    /// Its own checks (globs, bounds, filters); the digest options are checked as well.
    fn check_own(&self) -> Vec<FieldError>;
    /// `validate_digests` and its keys.
    fn digests(&self) -> &DigestOptions;
    /// Its AWS access, for a source that reads from AWS.
    fn aws_access(&self) -> Option<&AwsAccess> {
        None
    }
    /// Prepare (open the checkpoint store) and start it.
    fn start(self, ctx: SourceContext) -> Result<JoinHandle<SourceReport>, StartError>;
}

impl<T: SourceParts> Source for T {
    fn check(&self) -> Vec<FieldError> {
        let mut errs = self.check_own();
        errs.extend(self.digests().check());
        errs
    }
    fn spawn(&self, ctx: SourceContext) -> Result<JoinHandle<SourceReport>, StartError> {
        self.clone().start(ctx)
    }
    fn aws(&self) -> Option<&AwsAccess> {
        self.aws_access()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A configured source: what `validate` checks and the topology starts.
pub trait Source: Debug + Send + Sync + Any {
    /// Compile what can be compiled (globs, bounds, digest options) without starting anything.
    fn check(&self) -> Vec<FieldError>;
    /// Prepare the source (open its checkpoint store: errors stop start-up) and start it.
    fn spawn(&self, ctx: SourceContext) -> Result<JoinHandle<SourceReport>, StartError>;
    /// Its AWS access, for a source that reads from AWS.
    fn aws(&self) -> Option<&AwsAccess> {
        None
    }
    /// For a caller that knows the kind (the backfill, tests).
    fn as_any(&self) -> &dyn Any;
}
