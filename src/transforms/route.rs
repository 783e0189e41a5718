//! `type = "route"`: `[transforms.NAME.routes]` maps output names to conditions. An event goes
//! to every route it matches; events matching none go to `NAME._unmatched`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::util::Transform;
use super::util::condition::{Condition, ConditionConfig};
use crate::config::FieldError;
use crate::core::Batch;

pub const UNMATCHED: &str = "_unmatched";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub routes: BTreeMap<String, ConditionConfig>,
}

impl RouteConfig {
    /// Output names in output-index order: the routes, then `_unmatched`.
    pub fn outputs(&self) -> Vec<String> {
        self.routes
            .keys()
            .cloned()
            .chain(std::iter::once(UNMATCHED.to_string()))
            .collect()
    }

    pub fn build(&self) -> Result<Route, FieldError> {
        if self.routes.is_empty() {
            return Err(FieldError::new(
                &["routes"],
                "a route needs at least one entry in [transforms.NAME.routes]",
            ));
        }
        let mut routes = Vec::new();
        for (name, c) in &self.routes {
            if name.is_empty() || name.contains('.') || name == UNMATCHED {
                return Err(FieldError::new(
                    &["routes", name],
                    "route names must be non-empty, without '.', and not `_unmatched`",
                ));
            }
            routes.push(Condition::compile(c.clone()).map_err(|e| e.under(name).under("routes"))?);
        }
        Ok(Route { routes })
    }
}

#[derive(Clone)]
pub struct Route {
    routes: Vec<Condition>,
}

impl Transform for Route {
    fn worker(&self) -> Option<Box<dyn Transform>> {
        Some(Box::new(self.clone()))
    }
    fn process(&mut self, batch: Batch, out: &mut [Batch]) {
        let unmatched = self.routes.len();
        for e in batch {
            let mut hits = self
                .routes
                .iter()
                .enumerate()
                .filter(|(_, c)| c.matches(&e.data))
                .map(|(i, _)| i);
            let Some(first) = hits.next() else {
                out[unmatched].push(e);
                continue;
            };
            for i in hits {
                out[i].push(e.clone());
            }
            out[first].push(e);
        }
    }
}

/// The `route` transform kind (registered in `transforms::KINDS`).
pub const KIND: crate::transforms::util::kind::TransformKind =
    crate::transforms::util::kind::TransformKind {
        name: "route",
        parse: crate::transforms::util::kind::parse_with::<RouteConfig>,
    };

impl crate::transforms::util::kind::TransformBuild for RouteConfig {
    fn outputs(&self) -> Vec<String> {
        RouteConfig::outputs(self)
    }
    fn build(
        &self,
        name: &str,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Box<dyn crate::transforms::util::Transform>, crate::config::FieldError> {
        let _ = (name, data_dir);
        Ok(Box::new(RouteConfig::build(self)?))
    }
}
