//! Transforms: synchronous steps between sources and sinks. Each has one or more outputs; an
//! event it forwards to no output is acknowledged as deliberately dropped.

pub mod dedup;
pub mod filter;
pub mod insights;
pub mod normalize;
pub mod route;
pub mod util;

use crate::config::FieldError;

pub use crate::core::Batch;
pub use util::Transform;

#[derive(Debug, Clone)]
pub enum TransformConfig {
    Filter(Box<filter::FilterConfig>),
    Route(route::RouteConfig),
    Dedup(dedup::DedupConfig),
    Normalize(normalize::NormalizeConfig),
    Insights(insights::InsightsConfig),
}

impl TransformConfig {
    pub fn parse(kind: &str, table: toml::Table) -> Result<Self, FieldError> {
        match kind {
            "filter" => filter::FilterConfig::parse(table).map(|c| Self::Filter(Box::new(c))),
            "route" => crate::config::from_table(table).map(Self::Route),
            "dedup" => crate::config::from_table(table).map(Self::Dedup),
            "normalize" => crate::config::from_table(table).map(Self::Normalize),
            "insights" => crate::config::from_table(table).map(Self::Insights),
            other => Err(FieldError::new(
                &["type"],
                format!(
                    "unknown transform type {other:?}; expected one of: filter, route, dedup, normalize, insights"
                ),
            )),
        }
    }

    /// Output names; "" is a transform's single unnamed output.
    pub fn outputs(&self) -> Vec<String> {
        match self {
            Self::Filter(_) | Self::Dedup(_) | Self::Normalize(_) | Self::Insights(_) => {
                vec![String::new()]
            }
            Self::Route(r) => r.outputs(),
        }
    }

    /// `data_dir`: where state lives (None when only checking the config).
    pub fn build(
        &self,
        name: &str,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Box<dyn Transform>, FieldError> {
        Ok(match self {
            Self::Filter(c) => Box::new(c.build()?),
            Self::Route(c) => Box::new(c.build()?),
            Self::Normalize(c) => Box::new(c.build(name)),
            Self::Insights(c) => Box::new(c.build(name)?),
            Self::Dedup(c) => Box::new(c.build(
                name,
                data_dir.map(|d| d.join("dedup").join(format!("{name}.state"))),
            )?),
        })
    }

    pub fn check(&self) -> Vec<FieldError> {
        self.build("check", None).err().into_iter().collect()
    }
}
