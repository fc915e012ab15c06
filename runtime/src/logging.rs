//! The `logs` section → a tracing subscriber.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `mode` | `development` | `development` (console, debug), `production` (json, info), `raw` (message only), `off`/`none` |
//! | `level` | by mode | `debug`, `info`, `warn`, `error` (`panic`/`fatal` read as `error`) |
//! | `encoding` | by mode | `console` or `json` |
//! | `output` | `[stderr]` | `stderr`, `stdout` or a file path (appended); the first entry is used |
//! | `channels.<plugin>` | | per-plugin `level` (e.g. `channels: {http: {level: debug}}`) and `mode`: `raw` (that plugin's lines are the message only, e.g. worker output under `server`), `off`/`none`; `development`/`production` give their default level (the encoding stays the main one) |
//!
//! `RUST_LOG`, when set, overrides the levels (tracing's usual filter syntax).
//!
//! JSON lines have RoadRunner's (zap's) shape, `{"level":"info","ts":1700000000.5,
//! "logger":"server","msg":"…", …fields}`: tools read them (Laravel Octane's `octane:start`
//! reads `level`, `logger` and `msg` of every line RoadRunner prints). An `attrs` field holding a
//! JSON object (fields whose names are only known at run time) is spread into the line.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Logs {
    pub mode: Option<String>,
    pub level: Option<String>,
    pub encoding: Option<String>,
    pub output: Output,
    pub channels: BTreeMap<String, Channel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum Output {
    #[default]
    Stderr,
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Channel {
    pub level: Option<String>,
    pub mode: Option<String>,
}

/// Keeps the log file open for the life of the process.
pub struct Guard;

fn level(name: &str) -> anyhow::Result<&'static str> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "dpanic" | "panic" | "fatal" => "error",
        other => anyhow::bail!("config key `logs.level`: unknown level `{other}`; use debug, info, warn or error"),
    })
}

pub fn init(config: &Config) -> anyhow::Result<Guard> {
    let logs: Logs = config.section("logs")?.unwrap_or_default();
    let mode = logs.mode.as_deref().unwrap_or("development");
    let (default_level, json) = match mode {
        "development" => ("debug", false),
        "production" => ("info", true),
        "raw" => ("info", false),
        "off" | "none" => return Ok(Guard),
        other => anyhow::bail!("config key `logs.mode`: unknown mode `{other}`; use development, production, raw or off"),
    };
    let json = match logs.encoding.as_deref() {
        None => json,
        Some("json") => true,
        Some("console") => false,
        Some(other) => anyhow::bail!("config key `logs.encoding`: unknown encoding `{other}`; use console or json"),
    };
    let base = match &logs.level {
        Some(l) => level(l)?,
        None => default_level,
    };
    let mut directives = vec![base.to_string()];
    let mut raw = BTreeSet::new();
    for (plugin, channel) in &logs.channels {
        let mode_level = match channel.mode.as_deref() {
            None => None,
            Some("off" | "none") => Some("off"),
            Some("raw") => {
                raw.insert(plugin.clone());
                None
            }
            Some("development") => Some("debug"),
            Some("production") => Some("info"),
            Some(other) => anyhow::bail!("config key `logs.channels.{plugin}.mode`: unknown mode `{other}`; use development, production, raw or off"),
        };
        let channel_level = match (&channel.level, mode_level) {
            (_, Some("off")) => Some("off"),
            (Some(l), _) => Some(level(l)?),
            (None, l) => l,
        };
        if let Some(l) = channel_level {
            directives.push(format!("{plugin}={l}"));
        }
    }
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::new(env),
        _ => EnvFilter::new(directives.join(",")),
    };
    let output = match &logs.output {
        Output::Stderr => "stderr".to_string(),
        Output::One(s) => s.clone(),
        Output::Many(v) => v.first().cloned().unwrap_or_else(|| "stderr".into()),
    };
    let writer = match output.as_str() {
        "stderr" => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
        "stdout" => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout),
        path => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("config key `logs.output`: cannot open `{path}`"))?;
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(file))
        }
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let text = tracing_subscriber::fmt::format();
    let _ = if json {
        builder.event_format(RawChannels { raw, inner: ZapJson }).try_init()
    } else if mode == "raw" {
        builder.event_format(RawChannels { raw, inner: text.without_time().with_level(false).with_target(false) }).try_init()
    } else {
        builder.with_ansi(output == "stderr" || output == "stdout").event_format(RawChannels { raw, inner: text }).try_init()
    };
    Ok(Guard)
}

/// `logs.channels.<plugin>.mode: raw`: that plugin's events are written as their message alone
/// (the Symfony bundle sets it for `server`, so worker output reads as the worker wrote it).
struct RawChannels<F> {
    raw: BTreeSet<String>,
    inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for RawChannels<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if !self.raw.contains(logger_name(event.metadata().target())) {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut fields = serde_json::Map::new();
        event.record(&mut ZapFields(&mut fields));
        match fields.get("msg") {
            Some(serde_json::Value::String(msg)) => writeln!(writer, "{msg}"),
            _ => writeln!(writer),
        }
    }
}

/// One event as zap's JSON encoder writes it: level, `ts` (Unix seconds), `logger` (the plugin),
/// `msg`, then the event's fields.
struct ZapJson;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for ZapJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert("level".into(), meta.level().as_str().to_ascii_lowercase().into());
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
        line.insert("ts".into(), ts.into());
        line.insert("logger".into(), logger_name(meta.target()).into());
        event.record(&mut ZapFields(&mut line));
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// The plugin name for a target: `http` stays `http`, `rr_runtime::pool::handle` is `runtime`.
fn logger_name(target: &str) -> &str {
    target.strip_prefix("rr_").map_or(target, |t| t.split("::").next().unwrap_or(t))
}

struct ZapFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl ZapFields<'_> {
    fn put(&mut self, field: &tracing::field::Field, value: serde_json::Value) {
        let name = if field.name() == "message" { "msg" } else { field.name() };
        // Fields named at run time (the app-logger's attributes from PHP) arrive as one JSON
        // object in `attrs`; zap writes them as fields of the line. They never replace the
        // line's own `level`, `ts`, `logger` or `msg`.
        if name == "attrs"
            && let Some(serde_json::Value::Object(attrs)) = value.as_str().and_then(|s| serde_json::from_str(s).ok())
        {
            for (key, value) in attrs {
                self.0.entry(key).or_insert(value);
            }
            return;
        }
        self.0.insert(name.to_string(), value);
    }
}

impl tracing::field::Visit for ZapFields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.put(field, value.into());
    }
}
