//! The `service.*` RPC methods on `service.v1` protobuf messages, with RoadRunner's error texts
//! (PLUGINS-MORE.md §F).

use std::sync::Arc;
use std::time::Duration;

use rr_runtime::pool::Command;
use rr_runtime::rpc::{RpcError, RpcRegistry};

use crate::proto::{self, CommonStatus};
use crate::{Group, Service, Supervisor};

fn missing(name: &str) -> RpcError {
    RpcError::new(format!("the service with {name} name doesn't exist"))
}

fn service(c: proto::Create) -> Result<Service, RpcError> {
    if c.name.trim().is_empty() {
        return Err(RpcError::new("the service name is empty; give the service a name"));
    }
    // The name is a key of `service.*` calls and shows in logs; a path in it is a mistake or an attack.
    if c.name.contains('/') || c.name.contains("..") {
        return Err(RpcError::new(format!("the service name `{}` must not contain `/` or `..`", c.name)));
    }
    if c.process_num <= 0 {
        return Err(RpcError::new(format!("the service with {} name should have at least 1 process", c.name)));
    }
    if c.command.trim().is_empty() {
        return Err(RpcError::new(format!("the service with {} name has an empty command", c.name)));
    }
    if c.exec_timeout < 0 {
        return Err(RpcError::new(format!("the service with {} name has a negative exec_timeout: {} seconds", c.name, c.exec_timeout)));
    }
    Ok(Service {
        command: Command::Line(c.command),
        env: c.env.into_iter().collect(),
        process_num: c.process_num as usize,
        exec_timeout: Duration::from_secs(c.exec_timeout as u64),
        remain_after_exit: c.remain_after_exit,
        restart_sec: c.restart_sec,
        timeout_stop_sec: c.timeout_stop_sec,
        _service_name_in_log: c.service_name_in_logs,
    })
}

/// One copy's process as `service.Statuses` reports it: on a probe error, the pid and command
/// with the error in `status`.
fn status(copy: &crate::Running, command: &str) -> proto::Status {
    match copy.probe.usage() {
        Ok(u) => proto::Status { cpu_percent: u.cpu_percent as f32, pid: u.pid as i32, memory_usage: u.memory, command: command.to_string(), status: None },
        Err((pid, message)) => {
            proto::Status { pid: pid as i32, command: command.to_string(), status: Some(CommonStatus { code: 0, message }), ..Default::default() }
        }
    }
}

fn ok() -> proto::Response {
    proto::Response { message: String::new(), ok: true }
}

pub(crate) fn register(rpc: &RpcRegistry, supervisor: &Arc<Supervisor>) {
    let s = supervisor.clone();
    rpc.register_proto("service.Create", move |c: proto::Create| {
        let s = s.clone();
        async move {
            let name = c.name.clone();
            let service = service(c)?;
            let mut groups = s.groups.lock().await;
            if s.stopping.is_cancelled() {
                return Err(RpcError::new("the server is stopping"));
            }
            if groups.contains_key(&name) {
                return Err(RpcError::new(format!("the service with {name} name already exists")));
            }
            let group = Group::start(&name, service, &s.stopping, true).await.map_err(RpcError::new)?;
            groups.insert(name, group);
            Ok(ok())
        }
    });
    let s = supervisor.clone();
    rpc.register_proto("service.Terminate", move |req: proto::Service| {
        let s = s.clone();
        async move {
            let mut groups = s.groups.lock().await;
            groups.remove(&req.name).ok_or_else(|| missing(&req.name))?.stop().await;
            Ok(ok())
        }
    });
    let s = supervisor.clone();
    rpc.register_proto("service.Restart", move |req: proto::Service| {
        let s = s.clone();
        async move {
            let mut groups = s.groups.lock().await;
            let service = groups.remove(&req.name).ok_or_else(|| missing(&req.name))?.stop().await;
            let group = Group::start(&req.name, service, &s.stopping, true).await.map_err(RpcError::new)?;
            groups.insert(req.name, group);
            Ok(ok())
        }
    });
    let s = supervisor.clone();
    rpc.register_proto("service.Status", move |req: proto::Service| {
        let s = s.clone();
        async move {
            let groups = s.groups.lock().await;
            let group = groups.get(&req.name).ok_or_else(|| missing(&req.name))?;
            // Deprecated in RoadRunner: the last copy, and a probe error is the call's error.
            let last = group.copies.last().map(|c| status(c, &command(group))).unwrap_or_default();
            match last.status {
                Some(e) => Err(RpcError::new(e.message)),
                None => Ok(last),
            }
        }
    });
    let s = supervisor.clone();
    rpc.register_proto("service.Statuses", move |req: proto::Service| {
        let s = s.clone();
        async move {
            let groups = s.groups.lock().await;
            let group = groups.get(&req.name).ok_or_else(|| missing(&req.name))?;
            Ok(proto::Statuses { status: group.copies.iter().map(|c| status(c, &command(group))).collect() })
        }
    });
    let s = supervisor.clone();
    rpc.register_proto("service.List", move |_: proto::Service| {
        let s = s.clone();
        async move { Ok(proto::List { services: s.groups.lock().await.keys().cloned().collect() }) }
    });
}

fn command(group: &Group) -> String {
    group.service.command.args().join(" ")
}
