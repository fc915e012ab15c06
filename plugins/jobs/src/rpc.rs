//! `jobs.*` RPC methods (protobuf `jobs.v1`) with RoadRunner's error texts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rr_runtime::jobs::{Job, KafkaOptions};
use rr_runtime::rpc::RpcError;
use rr_runtime::trace::{Context, TraceContextExt};

use crate::State;
use crate::proto;
use crate::trace;

fn job_from(p: proto::Job) -> Result<Job, RpcError> {
    if p.id.is_empty() {
        return Err(RpcError::new("jobs_push: empty ID field not allowed"));
    }
    let options = p.options.unwrap_or_default();
    Ok(Job {
        id: p.id,
        name: p.job,
        payload: p.payload.into(),
        headers: p.headers.into_iter().map(|(k, v)| (k, v.value)).collect::<BTreeMap<_, _>>(),
        pipeline: options.pipeline,
        priority: options.priority,
        delay: options.delay.max(0) as u64,
        auto_ack: options.auto_ack,
        kafka: KafkaOptions { topic: options.topic, partition: options.partition, offset: options.offset, metadata: options.metadata },
    })
}

/// One job into its pipeline, traced under `rpc` (the `push`/`push_batch` span); `source`
/// (`single`, `batch`) labels the `rr_jobs_*` push metrics.
async fn push(state: &State, mut job: Job, source: &'static str, rpc: &Context) -> Result<(), RpcError> {
    let pipeline = pipeline_of(state, &job.pipeline)?;
    let (name, driver, started) = (job.pipeline.clone(), pipeline.state().driver, Instant::now());
    let span = trace::push_span(&state.services.tracing, rpc, &driver, &mut job.headers);
    let pushed = pipeline.push(job).await;
    span.span().end();
    state.metrics.pushed(&name, &driver, source, pushed.as_ref().ok().map(|()| started.elapsed()));
    pushed.map_err(|e| RpcError::new(format!("jobs_push: {e}")))
}

/// `jobs.PushBatch`: each run of consecutive jobs for one pipeline goes to that pipeline's
/// `push_batch` (a driver overlaps its broker's acknowledgements there); runs go in order and
/// the first failure ends the batch, as pushing one job after the other would.
async fn push_batch(state: &State, jobs: Vec<Job>, rpc: &Context) -> Result<(), RpcError> {
    let mut jobs = jobs.into_iter().peekable();
    while let Some(first) = jobs.next() {
        let pipeline = pipeline_of(state, &first.pipeline)?;
        let (name, driver, started) = (first.pipeline.clone(), pipeline.state().driver, Instant::now());
        let mut run = vec![first];
        while let Some(next) = jobs.next_if(|j| j.pipeline == name) {
            run.push(next);
        }
        let spans: Vec<Context> = run.iter_mut().map(|job| trace::push_span(&state.services.tracing, rpc, &driver, &mut job.headers)).collect();
        let results = pipeline.push_batch(run).await;
        spans.iter().for_each(|span| span.span().end());
        let took = started.elapsed();
        for pushed in &results {
            state.metrics.pushed(&name, &driver, "batch", pushed.as_ref().ok().map(|()| took));
        }
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(RpcError::new(format!("jobs_push: {e}")));
        }
    }
    Ok(())
}

fn pipeline_of(state: &State, name: &str) -> Result<Arc<dyn rr_runtime::jobs::Pipeline>, RpcError> {
    state.pipelines.read().unwrap().get(name).cloned().ok_or_else(|| RpcError::new(format!("jobs_push: no such pipeline, requested: {name}")))
}

fn named(state: &State, names: &[String], op: &str) -> Result<Vec<(String, Arc<dyn rr_runtime::jobs::Pipeline>)>, RpcError> {
    let map = state.pipelines.read().unwrap();
    names
        .iter()
        .map(|n| map.get(n).cloned().map(|p| (n.clone(), p)).ok_or_else(|| RpcError::new(format!("jobs_{op}: no such pipeline, requested: {n}"))))
        .collect()
}

pub fn register(state: &Arc<State>) {
    let rpc = &state.services.rpc;
    let s = state.clone();
    rpc.register_proto("jobs.Push", move |req: proto::PushRequest| {
        let s = s.clone();
        async move {
            let job = job_from(req.job.ok_or_else(|| RpcError::new("jobs_push: no job in the request"))?)?;
            let rpc = trace::rpc_span(&s.services.tracing, "push", [&job.headers]);
            let pushed = push(&s, job, "single", &rpc).await;
            rpc.span().end();
            pushed.map(|()| proto::Empty {})
        }
    });
    let s = state.clone();
    rpc.register_proto("jobs.PushBatch", move |req: proto::PushBatchRequest| {
        let s = s.clone();
        async move {
            let jobs = req.jobs.into_iter().map(job_from).collect::<Result<Vec<_>, _>>()?;
            let rpc = trace::rpc_span(&s.services.tracing, "push_batch", jobs.iter().map(|j| &j.headers));
            let pushed = push_batch(&s, jobs, &rpc).await;
            rpc.span().end();
            pushed.map(|()| proto::Empty {})
        }
    });
    let s = state.clone();
    rpc.register_proto("jobs.Pause", move |req: proto::Pipelines| {
        let found = named(&s, &req.pipelines, "pause");
        async move {
            for (_, p) in found? {
                p.pause().await.map_err(|e| RpcError::new(format!("jobs_pause: {e}")))?;
            }
            Ok(proto::Empty {})
        }
    });
    let s = state.clone();
    rpc.register_proto("jobs.Resume", move |req: proto::Pipelines| {
        let s = s.clone();
        async move {
            for (_, p) in named(&s, &req.pipelines, "resume")? {
                s.resume(&p).await.map_err(|e| RpcError::new(format!("jobs_resume: {e}")))?;
            }
            Ok(proto::Empty {})
        }
    });
    let s = state.clone();
    rpc.register_proto("jobs.List", move |_: proto::Empty| {
        let pipelines = s.pipelines.read().unwrap().keys().cloned().collect();
        async move { Ok(proto::Pipelines { pipelines }) }
    });
    let s = state.clone();
    rpc.register_proto("jobs.Declare", move |req: proto::DeclareRequest| {
        let s = s.clone();
        async move {
            let name = req.pipeline.get("name").cloned().unwrap_or_default();
            let driver = req.pipeline.get("driver").cloned().unwrap_or_default();
            if name.is_empty() {
                return Err(RpcError::new("jobs_declare: the pipeline needs a `name`"));
            }
            if driver.is_empty() {
                return Err(RpcError::new(format!("jobs_declare: no associated driver with the pipeline, pipeline name: {name}")));
            }
            if let Some(existing) = s.pipelines.read().unwrap().get(&name) {
                return Err(RpcError::new(format!("jobs_declare: pipeline already exists, name: {name}, driver: {}", existing.state().driver)));
            }
            let config = serde_json::to_value(&req.pipeline).unwrap_or_default();
            let pipeline = s.create(&name, &driver, &config).await.map_err(|e| RpcError::new(format!("jobs_declare: {e}")))?;
            s.resume(&pipeline).await.map_err(|e| RpcError::new(format!("jobs_declare: {e}")))?;
            Ok(proto::Empty {})
        }
    });
    let s = state.clone();
    rpc.register_proto("jobs.Destroy", move |req: proto::Pipelines| {
        let s = s.clone();
        async move {
            let mut destroyed = Vec::new();
            for name in req.pipelines {
                let removed = s.pipelines.write().unwrap().remove(&name);
                if let Some(p) = removed {
                    let _ = p.stop().await;
                    destroyed.push(name);
                }
            }
            Ok(proto::Pipelines { pipelines: destroyed })
        }
    });
    let s = state.clone();
    rpc.register_proto("jobs.Stat", move |_: proto::Empty| {
        let stats = s
            .pipelines
            .read()
            .unwrap()
            .values()
            .map(|p| {
                let st = p.state();
                proto::Stat {
                    pipeline: st.pipeline,
                    driver: st.driver,
                    queue: st.queue,
                    active: st.active,
                    delayed: st.delayed,
                    reserved: st.reserved,
                    ready: st.ready,
                    priority: st.priority,
                }
            })
            .collect();
        async move { Ok(proto::Stats { stats }) }
    });
}
