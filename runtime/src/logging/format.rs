//! How one event becomes one line: zap's JSON (`production`), the message alone (`raw`), or
//! tracing's console text (`development`). The line ending is the sink's business.

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// tracing's full text format: time, level, target, message, fields.
    Console,
    /// zap's production JSON: `{"level":"info","ts":<unix nanos>,"logger":"http","msg":"…",…}`.
    Json,
    /// The message alone (zap would append fields as JSON; ours carry e.g. the worker's `pid`,
    /// which would spoil worker output printed as written).
    Raw,
}

impl<S, N> FormatEvent<S, N> for Format
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &tracing::Event<'_>) -> std::fmt::Result {
        let mut fields = serde_json::Map::new();
        match self {
            Format::Console => tracing_subscriber::fmt::format().format_event(ctx, writer, event),
            Format::Json => {
                let meta = event.metadata();
                fields.insert("level".into(), meta.level().as_str().to_ascii_lowercase().into());
                let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default();
                fields.insert("ts".into(), ts.into());
                fields.insert("logger".into(), logger_name(meta.target()).into());
                event.record(&mut ZapFields(&mut fields));
                writeln!(writer, "{}", serde_json::Value::Object(fields))
            }
            Format::Raw => {
                event.record(&mut ZapFields(&mut fields));
                match fields.get("msg") {
                    Some(serde_json::Value::String(msg)) => writeln!(writer, "{msg}"),
                    _ => writeln!(writer),
                }
            }
        }
    }
}

/// The logger (channel) name of a target: `http` stays `http`, `rr_runtime::pool::handle` is
/// `runtime`.
pub fn logger_name(target: &str) -> &str {
    target.strip_prefix("rr_").map_or(target, |t| t.split("::").next().unwrap_or(t))
}

/// An event's fields as zap names them (`message` is `msg`).
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
