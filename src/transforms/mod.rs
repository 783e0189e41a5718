//! The transform registry: one line per kind in `KINDS`. Transforms are synchronous steps
//! between sources and sinks, each with one or more outputs; an event a transform forwards to
//! no output is acknowledged as deliberately dropped. A transform is a file (or folder) with
//! its config, its `Transform` and its `KIND`; transforms import `util`, never each other or
//! this registry.

pub mod dedup;
pub mod filter;
pub mod insights;
pub mod normalize;
pub mod route;
pub mod util;

use std::sync::Arc;

pub use crate::core::Batch;
pub use util::Transform;
use util::kind::{TransformBuild, TransformKind};

use crate::config::FieldError;

/// Every transform kind. Adding a transform: its file, `pub mod` above, and one line here.
pub const KINDS: &[TransformKind] = &[
    filter::KIND,
    route::KIND,
    dedup::KIND,
    normalize::KIND,
    insights::KIND,
];

/// A configured transform of one of the `KINDS`.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    pub kind: &'static str,
    config: Arc<dyn TransformBuild>,
}

impl TransformConfig {
    pub fn parse(kind: &str, table: toml::Table) -> Result<Self, FieldError> {
        let Some(k) = KINDS.iter().find(|k| k.name == kind) else {
            let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
            return Err(FieldError::new(
                &["type"],
                format!(
                    "unknown transform type {kind:?}; expected one of: {}",
                    names.join(", ")
                ),
            ));
        };
        Ok(TransformConfig {
            kind: k.name,
            config: (k.parse)(table)?,
        })
    }

    /// Output names; "" is a transform's single unnamed output.
    pub fn outputs(&self) -> Vec<String> {
        self.config.outputs()
    }

    /// `data_dir`: where state lives (None when only checking the config).
    pub fn build(
        &self,
        name: &str,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Box<dyn Transform>, FieldError> {
        self.config.build(name, data_dir)
    }

    pub fn check(&self) -> Vec<FieldError> {
        self.build("check", None).err().into_iter().collect()
    }
}
