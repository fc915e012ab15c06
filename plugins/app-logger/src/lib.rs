//! The `app` plugin (RoadRunner's app-logger): the `app.*` RPC service PHP's
//! `roadrunner-php/app-logger` logs through. Messages go to the server's logger under the logger
//! name `app`, so `logs.mode`, `logs.level` and `logs.channels.app` apply; `app.Log` and
//! `app.LogWithContext` write the message to the server's stderr as it is. No config section:
//! the plugin is on whenever `rpc` is.
//!
//! | RPC | argument → reply |
//! |---|---|
//! | `app.Error`, `app.Warning`, `app.Info`, `app.Debug`, `app.Log` | JSON string → `false` |
//! | `app.<Level>WithContext`, `app.LogWithContext` | `applogger.v1.LogEntry` → empty `Response` |

pub mod proto;

use std::io::Write;

use rr_runtime::rpc::{RpcError, RpcRegistry};
use rr_runtime::{BoxError, InitContext};
use tracing::Level;

use proto::{LogAttrs, LogEntry};

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "app";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !ctx.config.has("rpc") {
            return Ok(None);
        }
        register_rpc(&ctx.services.rpc);
        Ok(Some(Plugin))
    }
}

macro_rules! at_level {
    ($level:expr, $($args:tt)+) => {
        match $level {
            Level::ERROR => tracing::error!(target: "app", $($args)+),
            Level::WARN => tracing::warn!(target: "app", $($args)+),
            Level::INFO => tracing::info!(target: "app", $($args)+),
            _ => tracing::debug!(target: "app", $($args)+),
        }
    };
}

/// One line through the server's logger; each attribute becomes a string field of it.
pub fn log(level: Level, entry: &LogEntry) {
    if entry.log_attrs.is_empty() {
        at_level!(level, "{}", entry.message);
    } else {
        let attrs: serde_json::Map<_, _> = entry.log_attrs.iter().map(|a| (a.key.clone(), a.value.clone().into())).collect();
        at_level!(level, attrs = %serde_json::Value::Object(attrs), "{}", entry.message);
    }
}

/// What `app.LogWithContext` writes: the message, then ` key:value,key:value` (RoadRunner cuts
/// one character too many at the end; we cut only the last comma).
pub fn raw_line(entry: &LogEntry) -> String {
    let attrs: Vec<String> = entry.log_attrs.iter().map(|LogAttrs { key, value }| format!("{key}:{value}")).collect();
    if attrs.is_empty() { entry.message.clone() } else { format!("{} {}", entry.message, attrs.join(",")) }
}

fn write_stderr(text: &str) -> Result<(), RpcError> {
    let mut stderr = std::io::stderr().lock();
    stderr.write_all(text.as_bytes()).and_then(|()| stderr.flush()).map_err(|e| RpcError::new(format!("cannot write to stderr: {e}")))
}

fn register_rpc(rpc: &RpcRegistry) {
    for (name, level) in [("Error", Level::ERROR), ("Warning", Level::WARN), ("Info", Level::INFO), ("Debug", Level::DEBUG)] {
        // The reply is never set: PHP reads `false`, as from RoadRunner.
        rpc.register_json(&format!("app.{name}"), move |message: String| async move {
            log(level, &LogEntry { message, log_attrs: Vec::new() });
            Ok(false)
        });
        rpc.register_proto(&format!("app.{name}WithContext"), move |entry: LogEntry| async move {
            log(level, &entry);
            Ok(proto::Response {})
        });
    }
    rpc.register_json("app.Log", |message: String| async move { write_stderr(&message).map(|()| false) });
    rpc.register_proto("app.LogWithContext", |entry: LogEntry| async move { write_stderr(&raw_line(&entry)).map(|()| proto::Response {}) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_line_keeps_every_character_of_the_last_value() {
        let attr = |k: &str, v: &str| LogAttrs { key: k.into(), value: v.into() };
        let entry = LogEntry { message: "login".into(), log_attrs: vec![attr("user", "42"), attr("ip", "10.0.0.1")] };
        assert_eq!(raw_line(&entry), "login user:42,ip:10.0.0.1");
        assert_eq!(raw_line(&LogEntry { message: "plain".into(), log_attrs: vec![] }), "plain");
    }
}
