//! The trace context plugins share ([`Services::tracing`](crate::Services)).
//!
//! RoadRunner propagates W3C TraceContext + Baggage + Jaeger (`uber-trace-id`) everywhere. The
//! `otel` plugin installs an exporting tracer provider at init; until then, and in builds
//! without it, spans come from a provider that samples everything and exports nothing, so jobs
//! and gRPC still hand PHP a `Traceparent` a downstream service can continue (as RoadRunner's
//! default SDK provider does). The http plugin itself never looks here: only the `otel`
//! middleware traces requests, so a server without it pays nothing per request.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::trace::TraceFlags;
pub use opentelemetry::{Context, KeyValue};

pub struct Tracing {
    installed: OnceLock<SdkTracerProvider>,
    silent: OnceLock<SdkTracerProvider>,
    propagator: TextMapCompositePropagator,
    baggage: BaggagePropagator,
}

impl Default for Tracing {
    fn default() -> Self {
        let propagator = TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
            Box::new(opentelemetry_jaeger_propagator::Propagator::new()),
        ]);
        Tracing { installed: OnceLock::new(), silent: OnceLock::new(), propagator, baggage: BaggagePropagator::new() }
    }
}

impl Tracing {
    /// Use `provider` for every span from now on (the `otel` plugin, once). False when one
    /// was installed before.
    pub fn install(&self, provider: SdkTracerProvider) -> bool {
        self.installed.set(provider).is_ok()
    }

    /// Whether spans are exported (the `otel` section is configured).
    pub fn is_exporting(&self) -> bool {
        self.installed.get().is_some()
    }

    /// A tracer named after the instrumenting plugin (`jobs`, `grpc`, `kv`, ...).
    pub fn tracer(&self, scope: &'static str) -> SdkTracer {
        use opentelemetry::trace::TracerProvider;
        let provider = self.installed.get().unwrap_or_else(|| self.silent.get_or_init(|| SdkTracerProvider::builder().build()));
        provider.tracer(scope)
    }

    /// The remote parent carried by `carrier` (an empty context when there is none).
    pub fn extract(&self, carrier: &dyn Extractor) -> Context {
        self.propagator.extract(carrier)
    }

    /// Write `cx`'s span (and baggage) into `carrier`: what the three propagators write, in
    /// their order, with the ids hex-encoded directly (the propagators' `format!` of them cost
    /// about as much as the rest of a traced request's span work; the test below holds the two
    /// to the same output).
    pub fn inject(&self, cx: &Context, carrier: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        let ids = sc.is_valid().then(|| {
            let mut ids = String::with_capacity(49);
            hex(&mut ids, &sc.trace_id().to_bytes());
            ids.push('-');
            hex(&mut ids, &sc.span_id().to_bytes());
            ids
        });
        if let Some(ids) = &ids {
            let sampled = if sc.is_sampled() { "01" } else { "00" };
            carrier.set("traceparent", concat(&["00-", ids, "-", sampled]));
            carrier.set("tracestate", sc.trace_state().header());
        }
        self.baggage.inject_context(cx, carrier);
        if let Some(ids) = ids {
            // Jaeger: `trace:span:0:flag`, flag 1 when sampled, 3 when sampled with debug (0x04).
            let debug = sc.trace_flags() & TraceFlags::new(0x04) == TraceFlags::new(0x04);
            let flag = match (sc.is_sampled(), debug) {
                (false, _) => "0",
                (true, false) => "1",
                (true, true) => "3",
            };
            carrier.set("uber-trace-id", concat(&[&ids.replacen('-', ":", 1), ":0:", flag]));
        }
    }

    /// Start a span of `kind` named `name` under `parent`; returns the context holding it.
    pub fn start(&self, scope: &'static str, name: impl Into<std::borrow::Cow<'static, str>>, kind: SpanKind, parent: &Context) -> Context {
        let tracer = self.tracer(scope);
        let span = tracer.span_builder(name).with_kind(kind).start_with_context(&tracer, parent);
        parent.with_span(span)
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|p| out.push_str(p));
    out
}

/// `traceparent` -> `Traceparent`, `uber-trace-id` -> `Uber-Trace-Id`: the keys RoadRunner (Go's
/// `http.Header`) hands PHP in job headers and gRPC contexts.
pub fn canonical_key(key: &str) -> String {
    let mut upper = true;
    key.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// Job headers and gRPC contexts (`map[string][]string`) as a carrier: injected keys replace any
/// spelling of the same key, reads ignore case.
pub struct MultiMap<'a>(pub &'a mut BTreeMap<String, Vec<String>>);

impl Injector for MultiMap<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return; // an empty `tracestate` or `baggage` is not sent (RoadRunner neither)
        }
        self.0.retain(|k, _| !k.eq_ignore_ascii_case(key));
        self.0.insert(canonical_key(key), vec![value]);
    }
}

/// Reads a `map[string][]string` carrier (case-insensitive, first value).
pub struct MultiMapReader<'a>(pub &'a BTreeMap<String, Vec<String>>);

impl Extractor for MultiMapReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).and_then(|(_, v)| v.first()).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// HTTP request headers as a carrier (the `otel` middleware).
pub struct HeaderMapCarrier<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderMapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        // The value moves into the header (no copy).
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

pub struct HeaderMapReader<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderMapReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_started_under_an_incoming_traceparent_continues_its_trace_in_all_three_formats() {
        let tracing = Tracing::default();
        let mut incoming = BTreeMap::new();
        incoming.insert("traceparent".to_string(), vec!["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string()]);
        incoming.insert("baggage".to_string(), vec!["user=alice".to_string()]);
        let parent = tracing.extract(&MultiMapReader(&incoming));
        let cx = tracing.start("test", "child", SpanKind::Internal, &parent);
        let span_id = cx.span().span_context().span_id().to_string();
        assert_ne!(span_id, "00f067aa0ba902b7");
        tracing.inject(&cx, &mut MultiMap(&mut incoming));
        assert_eq!(incoming.get("Traceparent").unwrap()[0], format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{span_id}-01"));
        assert!(!incoming.contains_key("traceparent"), "the old spelling is replaced: {incoming:?}");
        assert_eq!(incoming.get("Uber-Trace-Id").unwrap()[0], format!("4bf92f3577b34da6a3ce929d0e0e4736:{span_id}:0:1"));
        assert_eq!(incoming.get("Baggage").unwrap()[0], "user=alice");
    }

    #[test]
    fn inject_writes_what_the_three_propagators_write() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceId, TraceState};
        let tracing = Tracing::default();
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let state = TraceState::from_key_value([("vendor", "x")]).unwrap();
        let baggage = vec![KeyValue::new("user", "alice")];
        for (flags, state, baggage) in [
            (TraceFlags::SAMPLED, TraceState::default(), vec![]),
            (TraceFlags::default(), state.clone(), vec![]),
            (TraceFlags::SAMPLED | TraceFlags::new(0x04), state, baggage.clone()),
        ] {
            use opentelemetry::baggage::BaggageExt;
            let cx = Context::new().with_remote_span_context(SpanContext::new(trace_id, span_id, flags, true, state)).with_baggage(baggage);
            let (mut fast, mut reference) = (BTreeMap::new(), BTreeMap::new());
            tracing.inject(&cx, &mut MultiMap(&mut fast));
            tracing.propagator.inject_context(&cx, &mut MultiMap(&mut reference));
            assert_eq!(fast, reference);
        }
        let (mut fast, mut reference) = (BTreeMap::new(), BTreeMap::new());
        tracing.inject(&Context::new(), &mut MultiMap(&mut fast));
        tracing.propagator.inject_context(&Context::new(), &mut MultiMap(&mut reference));
        assert_eq!(fast, reference, "no span: nothing written");
    }

    #[test]
    fn without_an_incoming_trace_a_new_sampled_trace_starts() {
        let tracing = Tracing::default();
        let cx = tracing.start("test", "root", SpanKind::Server, &Context::new());
        let mut headers = BTreeMap::new();
        tracing.inject(&cx, &mut MultiMap(&mut headers));
        let value = &headers.get("Traceparent").unwrap()[0];
        assert!(value.starts_with("00-") && value.ends_with("-01"), "{value}");
        assert!(!tracing.is_exporting());
    }
}
