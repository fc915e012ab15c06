//! Job tracing as RoadRunner's jobs plugin does it, with or without the otel plugin: the RPC
//! span (`push`, `push_batch`) continues a trace the job headers carry, the driver's push span
//! (`in_memory_push`, `amqp_push`, ...) is injected into the job headers, so the trace travels
//! through the broker; the consumer continues it (`<driver>_listener`, then `jobs_listener`)
//! and PHP sees the listener span as the job's `Traceparent`.

use std::collections::BTreeMap;

use rr_runtime::trace::{Context, MultiMap, MultiMapReader, SpanKind, TraceContextExt, Tracing};

const SCOPE: &str = "jobs";

/// RoadRunner's driver span prefix: the memory driver says `in_memory`.
fn driver_span(driver: &str, what: &str) -> String {
    match driver {
        "memory" => format!("in_memory_{what}"),
        other => format!("{other}_{what}"),
    }
}

/// The RPC span of a push; its parent is the first trace found in the jobs' headers.
pub fn rpc_span<'a>(tracing: &Tracing, name: &'static str, headers: impl IntoIterator<Item = &'a BTreeMap<String, Vec<String>>>) -> Context {
    let parent = headers.into_iter().map(|h| tracing.extract(&MultiMapReader(h))).find(|cx| cx.span().span_context().is_valid()).unwrap_or_default();
    tracing.start(SCOPE, name, SpanKind::Server, &parent)
}

/// Open the driver's push span under `rpc` and write it into the job's headers; end it (and
/// the RPC span) once the driver accepted the job.
pub fn push_span(tracing: &Tracing, rpc: &Context, driver: &str, headers: &mut BTreeMap<String, Vec<String>>) -> Context {
    let cx = tracing.start(SCOPE, driver_span(driver, "push"), SpanKind::Producer, rpc);
    tracing.inject(&cx, &mut MultiMap(headers));
    cx
}

/// The spans of one consumed job: the driver's listener span (the one PHP sees), and
/// `jobs_listener` under it; ended when dropped.
pub struct Consumed {
    pub listener: Context,
    pub jobs_listener: Context,
}

impl Consumed {
    /// Continue the trace in `headers` and return the headers PHP sees.
    pub fn start(tracing: &Tracing, driver: &str, headers: &BTreeMap<String, Vec<String>>) -> (Consumed, BTreeMap<String, Vec<String>>) {
        let listener = tracing.start(SCOPE, driver_span(driver, "listener"), SpanKind::Consumer, &tracing.extract(&MultiMapReader(headers)));
        let mut seen = headers.clone();
        tracing.inject(&listener, &mut MultiMap(&mut seen));
        let jobs_listener = tracing.start(SCOPE, "jobs_listener", SpanKind::Internal, &listener);
        (Consumed { listener, jobs_listener }, seen)
    }
}

impl Drop for Consumed {
    fn drop(&mut self) {
        self.jobs_listener.span().end();
        self.listener.span().end();
    }
}
