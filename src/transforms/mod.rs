//! Transforms: synchronous steps between sources and sinks. Each has one or more outputs; an
//! event it forwards to no output is acknowledged as deliberately dropped.

pub mod condition;
pub mod filter;
pub mod route;

use crate::config::FieldError;
use crate::event::Event;

pub type Batch = Vec<Event>;

pub trait Transform: Send + 'static {
    /// Process a batch; `out[i]` collects what goes to output `i` (see `TransformConfig::outputs`).
    fn process(&mut self, batch: Batch, out: &mut [Batch]);
}

#[derive(Debug, Clone)]
pub enum TransformConfig {
    Filter(Box<filter::FilterConfig>),
    Route(route::RouteConfig),
}

impl TransformConfig {
    pub fn parse(kind: &str, table: toml::Table) -> Result<Self, FieldError> {
        match kind {
            "filter" => filter::FilterConfig::parse(table).map(|c| Self::Filter(Box::new(c))),
            "route" => crate::config::from_table(table).map(Self::Route),
            other => Err(FieldError::new(
                &["type"],
                format!("unknown transform type {other:?}; expected one of: filter, route"),
            )),
        }
    }

    /// Output names; "" is a transform's single unnamed output.
    pub fn outputs(&self) -> Vec<String> {
        match self {
            Self::Filter(_) => vec![String::new()],
            Self::Route(r) => r.outputs(),
        }
    }

    pub fn build(&self) -> Result<Box<dyn Transform>, FieldError> {
        Ok(match self {
            Self::Filter(c) => Box::new(c.build()?),
            Self::Route(c) => Box::new(c.build()?),
        })
    }

    pub fn check(&self) -> Vec<FieldError> {
        self.build().err().into_iter().collect()
    }
}
