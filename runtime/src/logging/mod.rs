//! The `logs` section → a tracing subscriber: one logger for the section itself and one per
//! `channels` entry, each with its own mode, level, encoding and outputs.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `mode` | `development` | `development` (console), `production` (zap's JSON), `raw` (message only), `off`/`none` |
//! | `level` | `debug` | `debug`, `info`, `warn`, `error` (`dpanic`/`panic`/`fatal` read as `error`) |
//! | `encoding` | by mode | `console` or `json` |
//! | `line_ending` | `\n` | what ends each line |
//! | `output` | `[stderr]` | `stderr`, `stdout` and file paths (appended), one or a list: every line goes to each |
//! | `err_output` | `[stderr]` | where a failed write to an output is reported |
//! | `file_logger_options` | | `log_output`, `max_size` (MB), `max_age`, `max_backups`, `compress`: JSON lines to that one file, rotated by size (replaces `output`) |
//! | `channels.<logger>` | | the same keys for one logger (`http`, `server`, `rpc`, ...); a key a channel leaves out is the section's, and a level neither sets is its mode's (`production`/`raw`: `info`) |
//!
//! `RUST_LOG`, when set, overrides the levels (tracing's usual filter syntax).
//!
//! JSON lines have RoadRunner's (zap's) shape, `{"level":"info","ts":1700000000000000000,
//! "logger":"server","msg":"…", …fields}` (`ts` in Unix nanoseconds): tools read them (Laravel
//! Octane's `octane:start` reads `level`, `logger` and `msg` of every line RoadRunner prints). An
//! `attrs` field holding a JSON object (fields whose names are only known at run time) is spread
//! into the line.

mod format;
mod sink;

use std::collections::BTreeMap;

use serde::Deserialize;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

pub use self::sink::FileLogger;
use self::format::{Format, logger_name};
use self::sink::Sink;
use crate::config::Config;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Logs {
    pub mode: Option<String>,
    pub level: Option<String>,
    pub encoding: Option<String>,
    pub line_ending: Option<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub output: Option<Vec<String>>,
    #[serde(deserialize_with = "one_or_many")]
    pub err_output: Option<Vec<String>>,
    pub file_logger_options: Option<FileLogger>,
    pub channels: BTreeMap<String, Logs>,
}

/// `output: stdout` or `output: [stdout, rr.log]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "`stderr`, `stdout` or a file path, or a list of them")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    }))
}

impl Logs {
    /// A channel's settings: its own keys, else the section's as written.
    fn under(&self, section: &Logs) -> Logs {
        Logs {
            mode: self.mode.clone().or_else(|| section.mode.clone()),
            level: self.level.clone().or_else(|| section.level.clone()),
            encoding: self.encoding.clone().or_else(|| section.encoding.clone()),
            line_ending: self.line_ending.clone().or_else(|| section.line_ending.clone()),
            output: self.output.clone().or_else(|| section.output.clone()),
            err_output: self.err_output.clone().or_else(|| section.err_output.clone()),
            file_logger_options: self.file_logger_options.clone().or_else(|| section.file_logger_options.clone()),
            channels: BTreeMap::new(),
        }
    }
}

/// Kept for the life of the process (files are flushed line by line).
pub struct Guard;

/// The subscriber every logger layer sits on: `RUST_LOG`, when set, filters first.
type Base = Layered<Option<EnvFilter>, Registry>;

pub fn init(config: &Config) -> anyhow::Result<Guard> {
    let logs: Logs = config.section("logs")?.unwrap_or_default();
    let env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()).map(EnvFilter::new);
    let by_env = env.is_some();
    let mut layers = Vec::new();
    // RoadRunner's defaults for the section (not for channels): debug, whatever the mode.
    let section = Logs { level: logs.level.clone().or_else(|| Some("debug".into())), channels: BTreeMap::new(), ..logs.clone() };
    if let Some(logger) = Logger::build(&section, "logs")? {
        let channels: Vec<String> = logs.channels.keys().cloned().collect();
        layers.push(logger.layer(by_env, move |name| !channels.iter().any(|c| c == name)));
    }
    for (name, channel) in &logs.channels {
        let key = format!("logs.channels.{name}");
        if !channel.channels.is_empty() {
            anyhow::bail!("config key `{key}.channels`: channels do not nest; list each logger under `logs.channels`");
        }
        if let Some(logger) = Logger::build(&channel.under(&logs), &key)? {
            let name = name.clone();
            layers.push(logger.layer(by_env, move |n| n == name));
        }
    }
    let _ = tracing_subscriber::registry().with(env).with(layers).try_init();
    Ok(Guard)
}

/// One logger's resolved settings.
struct Logger {
    level: LevelFilter,
    format: Format,
    sink: Sink,
}

impl Logger {
    /// `None` for `mode: off`.
    fn build(logs: &Logs, key: &str) -> anyhow::Result<Option<Logger>> {
        let (default_level, default_format) = match logs.mode.as_deref().unwrap_or("development") {
            "development" => (LevelFilter::DEBUG, Format::Console),
            "production" => (LevelFilter::INFO, Format::Json),
            "raw" => (LevelFilter::INFO, Format::Raw),
            "off" | "none" => return Ok(None),
            other => anyhow::bail!("config key `{key}.mode`: unknown mode `{other}`; use development, production, raw or off"),
        };
        let level = match &logs.level {
            Some(name) => level(name, key)?,
            None => default_level,
        };
        let format = match (logs.encoding.as_deref(), default_format) {
            (None, format) | (Some("console"), format @ Format::Raw) => format,
            (Some("console"), _) => Format::Console,
            (Some("json"), _) => Format::Json,
            (Some(other), _) => anyhow::bail!("config key `{key}.encoding`: unknown encoding `{other}`; use console or json"),
        };
        let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
        let line_ending = logs.line_ending.as_deref().unwrap_or("\n");
        let sink = Sink::open(key, &list(&logs.output), &list(&logs.err_output), logs.file_logger_options.as_ref(), line_ending)?;
        // RoadRunner writes its rotated file with zap's JSON encoder, whatever the mode.
        let format = if sink.is_rotated_file() { Format::Json } else { format };
        Ok(Some(Logger { level, format, sink }))
    }

    /// A layer writing the events of the loggers `select` takes, at this logger's level (or
    /// every level `RUST_LOG` let through).
    fn layer(self, by_env: bool, select: impl Fn(&str) -> bool + Send + Sync + 'static) -> Box<dyn Layer<Base> + Send + Sync> {
        let level = if by_env { LevelFilter::TRACE } else { self.level };
        let filter = tracing_subscriber::filter::filter_fn(move |meta| level >= *meta.level() && select(logger_name(meta.target())));
        let ansi = self.format == Format::Console && self.sink.is_terminal();
        Box::new(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(self.sink).event_format(self.format).with_filter(filter))
    }
}

fn level(name: &str, key: &str) -> anyhow::Result<LevelFilter> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warn" | "warning" => LevelFilter::WARN,
        "error" | "dpanic" | "panic" | "fatal" => LevelFilter::ERROR,
        other => anyhow::bail!("config key `{key}.level`: unknown level `{other}`; use debug, info, warn or error"),
    })
}
