//! The TOML pipeline: `data_dir`, `[sources.NAME]`, `[transforms.NAME]`, `[sinks.NAME]`.
//!
//! Loading interpolates the environment, parses, deserializes each component with
//! `deny_unknown_fields` (errors carry the key path, located back to a line), compiles what
//! can be compiled (globs, conditions, templates) and checks the graph. `trailship validate`
//! runs exactly this.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::graph;
use crate::buffer::BufferConfig;
use crate::config::{ApiConfig, ConfigError, FieldError, interpolate, locate, units};
use crate::sinks::{SinkCommon, SinkConfig};
use crate::sources::SourceConfig;
use crate::transforms::TransformConfig;

/// The pipeline run when no `--config` is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

#[derive(Debug)]
pub struct SourceSpec {
    pub line: Option<usize>,
    /// The component's table as written (after interpolation): what a reload compares.
    pub table: toml::Table,
    pub config: SourceConfig,
}

#[derive(Debug)]
pub struct TransformSpec {
    pub line: Option<usize>,
    pub table: toml::Table,
    pub inputs: Vec<String>,
    pub config: TransformConfig,
}

#[derive(Debug)]
pub struct SinkSpec {
    pub line: Option<usize>,
    pub table: toml::Table,
    pub inputs: Vec<String>,
    pub common: SinkCommon,
    /// `buffer = { … }`: what sits between the sink's input and its driver.
    pub buffer: Option<BufferConfig>,
    pub config: SinkConfig,
}

#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `[api]`: where the HTTP API listens (none: no API).
    pub api: Option<ApiConfig>,
    /// `[opentelemetry]`: OTLP export of the metrics and traces (none: no export).
    pub opentelemetry: Option<crate::telemetry::otel::OtelConfig>,
    pub shutdown_timeout: Duration,
    pub sources: BTreeMap<String, SourceSpec>,
    pub transforms: BTreeMap<String, TransformSpec>,
    pub sinks: BTreeMap<String, SinkSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    data_dir: Option<String>,
    #[serde(default)]
    api: Option<RawApi>,
    #[serde(default)]
    opentelemetry: Option<toml::Table>,
    #[serde(default, deserialize_with = "opt_duration")]
    shutdown_timeout: Option<Duration>,
    #[serde(default)]
    sources: BTreeMap<String, toml::Table>,
    #[serde(default)]
    transforms: BTreeMap<String, toml::Table>,
    #[serde(default)]
    sinks: BTreeMap<String, toml::Table>,
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    units::duration(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    address: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    stuck_after: Option<Duration>,
}

/// The API's settings: `[api]` alone means loopback, port 8686.
fn api_config(raw: Option<RawApi>) -> Result<Option<ApiConfig>, FieldError> {
    let Some(api) = raw else { return Ok(None) };
    let text = api.address.unwrap_or_else(|| "127.0.0.1:8686".into());
    let address = text.parse().map_err(|e| {
        FieldError::new(
            &["api", "address"],
            format!("api.address {text:?}: {e} (expected IP:PORT, e.g. \"127.0.0.1:8686\")"),
        )
    })?;
    Ok(Some(ApiConfig {
        address,
        stuck_after: api.stuck_after.unwrap_or(Duration::from_secs(300)),
    }))
}

/// A component's table as written, where it is, and its inputs.
struct Written {
    line: Option<usize>,
    table: toml::Table,
    inputs: Vec<String>,
}

/// A sink's table: the shared keys, its buffer, then its own keys.
fn sink_spec(w: Written, kind: &str, mut table: toml::Table) -> Result<SinkSpec, FieldError> {
    let parsed = SinkCommon::take(&mut table, SinkConfig::defaults(kind))
        .and_then(|c| Ok((c, BufferConfig::take(&mut table)?)));
    let (common, buffer, config) = match (parsed, SinkConfig::parse(kind, table)) {
        (Ok((common, buffer)), Ok(config)) => (common, buffer, config),
        (Err(e), _) | (_, Err(e)) => return Err(e.also_expected(&SinkConfig::shared_keys(kind))),
    };
    Ok(SinkSpec {
        line: w.line,
        table: w.table,
        inputs: w.inputs,
        common,
        buffer,
        config,
    })
}

/// More than one sink: each without a `buffer` spills to disk when it falls behind, instead of
/// holding up the sources, and with them the other sinks.
fn default_spills(sinks: &mut BTreeMap<String, SinkSpec>) {
    if sinks.len() > 1 {
        for s in sinks.values_mut() {
            s.buffer.get_or_insert(crate::buffer::DEFAULT_SPILL);
        }
    }
}

struct Loader<'a> {
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Loader<'_> {
    fn err(&mut self, path: &[&str], message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: None,
            line: locate::locate(self.text, path),
            key: path.join("."),
            message: message.into(),
        });
    }

    fn field_err(&mut self, base: &[&str], e: FieldError) {
        let mut path: Vec<&str> = base.to_vec();
        path.extend(e.path.iter().map(String::as_str));
        self.err(&path, e.message);
    }

    /// Every `[SECTION.NAME]` table through `parse` (after `type` and `inputs` are taken out);
    /// each error is recorded under the component's key path.
    fn section<S>(
        &mut self,
        section: &str,
        tables: BTreeMap<String, toml::Table>,
        with_inputs: bool,
        parse: impl Fn(Written, &str, toml::Table) -> Result<S, FieldError>,
    ) -> BTreeMap<String, S> {
        let mut out = BTreeMap::new();
        for (name, mut table) in tables {
            let line = locate::locate(self.text, &[section, &name]);
            let written = table.clone();
            let Some((kind, inputs)) = self.header(section, &name, &mut table, with_inputs) else {
                continue;
            };
            let w = Written {
                line,
                table: written,
                inputs,
            };
            match parse(w, &kind, table) {
                Ok(spec) => {
                    out.insert(name, spec);
                }
                Err(e) => self.field_err(&[section, &name], e),
            }
        }
        out
    }

    /// Take `type` and (for transforms and sinks) `inputs` out of a component table.
    fn header(
        &mut self,
        section: &str,
        name: &str,
        table: &mut toml::Table,
        with_inputs: bool,
    ) -> Option<(String, Vec<String>)> {
        let kind = match table.remove("type") {
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => {
                self.err(&[section, name, "type"], "`type` must be a string");
                None
            }
            None => {
                self.err(&[section, name], "missing key `type`");
                None
            }
        };
        let mut inputs = Vec::new();
        if with_inputs {
            match table.remove("inputs") {
                Some(toml::Value::Array(a)) => {
                    for v in a {
                        match v {
                            toml::Value::String(s) => inputs.push(s),
                            _ => self.err(
                                &[section, name, "inputs"],
                                "`inputs` must be a list of component names",
                            ),
                        }
                    }
                    if inputs.is_empty() {
                        self.err(
                            &[section, name, "inputs"],
                            "`inputs` is empty: name at least one source or transform",
                        );
                    }
                }
                Some(_) => self.err(
                    &[section, name, "inputs"],
                    "`inputs` must be a list of component names",
                ),
                // A sink fed only as another sink's dead_letter has none (checked with the graph).
                None if section == "sinks" => {}
                None => self.err(&[section, name], "missing key `inputs`"),
            }
        } else if table.contains_key("inputs") {
            self.err(&[section, name, "inputs"], "sources take no `inputs`");
            table.remove("inputs");
        }
        kind.map(|k| (k, inputs))
    }
}

impl Config {
    /// Load and check a config file.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                file: Some(label.clone()),
                line: None,
                key: String::new(),
                message: format!("cannot read the config file: {e}"),
            }]
        })?;
        Self::parse(&text, &label)
    }

    /// Parse and check config text; `label` names it in errors.
    pub fn parse(text: &str, label: &str) -> Result<Config, Vec<ConfigError>> {
        let with_file = |mut errs: Vec<ConfigError>| {
            for e in &mut errs {
                e.file = Some(label.to_string());
            }
            errs
        };
        let text = interpolate::interpolate(text, |k| std::env::var(k).ok()).map_err(with_file)?;
        Self::parse_interpolated(&text).map_err(with_file)
    }

    fn parse_interpolated(text: &str) -> Result<Config, Vec<ConfigError>> {
        let raw: RawRoot = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            vec![ConfigError {
                file: None,
                line,
                key: String::new(),
                message: e.message().trim().to_string(),
            }]
        })?;
        let mut l = Loader {
            text,
            errors: Vec::new(),
        };
        let data_dir = PathBuf::from(raw.data_dir.unwrap_or_else(|| "/var/lib/trailship".into()));
        let api = match api_config(raw.api) {
            Ok(a) => a,
            Err(m) => {
                let line = locate::locate(text, &["api", "address"]).unwrap_or(1);
                l.errors
                    .push(ConfigError::at_line(line, "api.address", m.message));
                None
            }
        };
        let opentelemetry = match raw
            .opentelemetry
            .map(crate::telemetry::otel::OtelConfig::parse)
            .transpose()
        {
            Ok(o) => o,
            Err(e) => {
                l.field_err(&["opentelemetry"], e);
                None
            }
        };
        let mut cfg = Config {
            data_dir,
            api,
            opentelemetry,
            shutdown_timeout: raw.shutdown_timeout.unwrap_or(Duration::from_secs(30)),
            sources: BTreeMap::new(),
            transforms: BTreeMap::new(),
            sinks: BTreeMap::new(),
        };
        cfg.sources = l.section("sources", raw.sources, false, |w, kind, table| {
            let config = SourceConfig::parse(kind, table)
                .map_err(|e| e.also_expected(&SourceConfig::shared_keys(kind)))?;
            Ok(SourceSpec {
                line: w.line,
                table: w.table,
                config,
            })
        });
        cfg.transforms = l.section("transforms", raw.transforms, true, |w, kind, table| {
            Ok(TransformSpec {
                line: w.line,
                table: w.table,
                inputs: w.inputs,
                config: TransformConfig::parse(kind, table)?,
            })
        });
        cfg.sinks = l.section("sinks", raw.sinks, true, sink_spec);
        default_spills(&mut cfg.sinks);
        // Compile what can be compiled, without starting anything.
        let checks = (cfg
            .sources
            .iter()
            .map(|(n, s)| ("sources", n, s.config.check())))
        .chain(
            cfg.transforms
                .iter()
                .map(|(n, t)| ("transforms", n, t.config.check())),
        )
        .chain(
            cfg.sinks
                .iter()
                .map(|(n, s)| ("sinks", n, s.config.check())),
        );
        for (section, name, errs) in checks {
            for e in errs {
                l.field_err(&[section, name], e);
            }
        }
        for e in graph::check(&cfg) {
            let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
            l.err(&path, e.message);
        }
        if l.errors.is_empty() {
            Ok(cfg)
        } else {
            l.errors.sort_by_key(|e| e.line.unwrap_or(0));
            Err(l.errors)
        }
    }
}
