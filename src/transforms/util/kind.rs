//! What a transform kind gives the registry: one `TransformKind` value per kind (its name and
//! how to parse its table) and the `TransformBuild` a parsed table becomes (its outputs, and
//! the running transform). A kind is registered by one line in `transforms::KINDS`.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use super::Transform;
use crate::config::FieldError;

/// One kind of transform, as the registry knows it.
pub struct TransformKind {
    /// The `type` that selects it.
    pub name: &'static str,
    /// Its table (`type` and `inputs` taken out) into a configured transform.
    pub parse: fn(toml::Table) -> Result<Arc<dyn TransformBuild>, FieldError>,
}

/// A configured transform.
pub trait TransformBuild: Debug + Send + Sync {
    /// Output names; "" is a transform's single unnamed output.
    fn outputs(&self) -> Vec<String> {
        vec![String::new()]
    }
    /// The running transform named `name`; `data_dir`: where state lives (None when only
    /// checking the config).
    fn build(&self, name: &str, data_dir: Option<&Path>) -> Result<Box<dyn Transform>, FieldError>;
}

/// A kind's `parse` for a config read with serde alone.
pub fn parse_with<C>(table: toml::Table) -> Result<Arc<dyn TransformBuild>, FieldError>
where
    C: TransformBuild + serde::de::DeserializeOwned + 'static,
{
    crate::config::from_table::<C>(table).map(|c| Arc::new(c) as Arc<dyn TransformBuild>)
}
