//! `type = "filter"`: keep events matching every given condition, minus those matching
//! `[transforms.NAME.exclude]`. Dropped events count as delivered for their unit.

use serde::Deserialize;

use super::util::Transform;
use super::util::condition::{Condition, ConditionConfig};
use crate::config::{FieldError, from_table};
use crate::core::Batch;

#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub include: ConditionConfig,
    pub exclude: Option<ConditionConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExcludeOnly {
    exclude: Option<ConditionConfig>,
}

impl FilterConfig {
    pub fn parse(mut table: toml::Table) -> Result<Self, FieldError> {
        let mut ex = toml::Table::new();
        if let Some(v) = table.remove("exclude") {
            ex.insert("exclude".into(), v);
        }
        let ExcludeOnly { exclude } = from_table(ex)?;
        Ok(FilterConfig {
            include: from_table(table)?,
            exclude,
        })
    }

    pub fn build(&self) -> Result<Filter, FieldError> {
        let include = Condition::compile(self.include.clone())?;
        let exclude = match &self.exclude {
            Some(c) => Some(Condition::compile(c.clone()).map_err(|e| e.under("exclude"))?),
            None => None,
        };
        if include.is_empty() && exclude.as_ref().is_none_or(Condition::is_empty) {
            return Err(FieldError::new(
                &[],
                "a filter needs at least one condition (or an `exclude` table)",
            ));
        }
        Ok(Filter { include, exclude })
    }
}

#[derive(Clone)]
pub struct Filter {
    include: Condition,
    exclude: Option<Condition>,
}

impl Transform for Filter {
    fn worker(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(self.clone()))
    }
    fn process(&mut self, batch: Batch, out: &mut [Batch]) {
        for e in batch {
            let keep = self.include.matches(&e.data)
                && !self.exclude.as_ref().is_some_and(|x| x.matches(&e.data));
            if keep {
                out[0].push(e);
            } else {
                e.ack();
            }
        }
    }
}

/// The `filter` transform kind (registered in `transforms::KINDS`).
pub const KIND: crate::transforms::util::kind::TransformKind =
    crate::transforms::util::kind::TransformKind {
        name: "filter",
        parse: |t| FilterConfig::parse(t).map(|c| std::sync::Arc::new(c) as _),
    };

impl crate::transforms::util::kind::TransformBuild for FilterConfig {
    fn build(
        &self,
        name: &str,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Box<dyn crate::transforms::util::Transform>, crate::config::FieldError> {
        let _ = (name, data_dir);
        Ok(Box::new(FilterConfig::build(self)?))
    }
}
