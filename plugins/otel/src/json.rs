//! The `stdout` / `stderr` exporters: each span as pretty JSON, in the field names of Go's
//! `stdouttrace` that RoadRunner uses (a subset: no links or dropped counts).

use std::io::Write;
use std::time::SystemTime;

use opentelemetry::trace::{SpanContext, Status};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{Value, json};

#[derive(Debug)]
pub struct JsonExporter {
    stderr: bool,
    resource: Value,
}

impl JsonExporter {
    pub fn stdout() -> Self {
        JsonExporter { stderr: false, resource: Value::Null }
    }
    pub fn stderr() -> Self {
        JsonExporter { stderr: true, resource: Value::Null }
    }
}

impl SpanExporter for JsonExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let mut text = String::new();
        for span in &batch {
            text.push_str(&serde_json::to_string_pretty(&span_json(span, &self.resource)).expect("json values serialize"));
            text.push('\n');
        }
        let written = if self.stderr { std::io::stderr().lock().write_all(text.as_bytes()) } else { std::io::stdout().lock().write_all(text.as_bytes()) };
        std::future::ready(written.map_err(|e| opentelemetry_sdk::error::OTelSdkError::InternalFailure(e.to_string())))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = Value::Array(resource.iter().map(|(k, v)| attribute(k.as_str(), v)).collect());
    }
}

fn span_json(span: &SpanData, resource: &Value) -> Value {
    let (status_code, description) = match &span.status {
        Status::Unset => ("Unset", ""),
        Status::Error { description } => ("Error", description.as_ref()),
        Status::Ok => ("Ok", ""),
    };
    let parent = SpanContext::new(span.span_context.trace_id(), span.parent_span_id, span.span_context.trace_flags(), span.parent_span_is_remote, Default::default());
    json!({
        "Name": span.name,
        "SpanContext": context_json(&span.span_context),
        "Parent": context_json(&parent),
        "SpanKind": span_kind(&span.span_kind),
        "StartTime": unix_nanos(span.start_time),
        "EndTime": unix_nanos(span.end_time),
        "Attributes": span.attributes.iter().map(|kv| attribute(kv.key.as_str(), &kv.value)).collect::<Vec<_>>(),
        "Events": span.events.iter().map(|e| json!({"Name": e.name, "Attributes": e.attributes.iter().map(|kv| attribute(kv.key.as_str(), &kv.value)).collect::<Vec<_>>(), "Time": unix_nanos(e.timestamp)})).collect::<Vec<_>>(),
        "Status": {"Code": status_code, "Description": description},
        "Resource": resource,
        "InstrumentationScope": {"Name": span.instrumentation_scope.name(), "Version": span.instrumentation_scope.version().unwrap_or("")},
    })
}

fn context_json(cx: &SpanContext) -> Value {
    json!({
        "TraceID": cx.trace_id().to_string(),
        "SpanID": cx.span_id().to_string(),
        "TraceFlags": format!("{:02x}", cx.trace_flags().to_u8()),
        "TraceState": cx.trace_state().header(),
        "Remote": cx.is_remote(),
    })
}

/// Go's `trace.SpanKind` numbers.
fn span_kind(kind: &opentelemetry::trace::SpanKind) -> u8 {
    use opentelemetry::trace::SpanKind::*;
    match kind {
        Internal => 1,
        Server => 2,
        Client => 3,
        Producer => 4,
        Consumer => 5,
    }
}

fn attribute(key: &str, value: &opentelemetry::Value) -> Value {
    use opentelemetry::Value as V;
    let (kind, value) = match value {
        V::Bool(b) => ("BOOL", json!(b)),
        V::I64(i) => ("INT64", json!(i)),
        V::F64(f) => ("FLOAT64", json!(f)),
        other => ("STRING", json!(other.as_str())),
    };
    json!({"Key": key, "Value": {"Type": kind, "Value": value}})
}

/// Nanoseconds since the epoch (Go prints RFC 3339; a number needs no date crate). Documented.
fn unix_nanos(time: SystemTime) -> Value {
    json!(time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0))
}
