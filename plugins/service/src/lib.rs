//! The `service` plugin: processes that live beside the server (queue listeners, schedulers,
//! sidecars), with RoadRunner's keys. Each `service.<name>` runs `process_num` copies of
//! `command`, each in its own process group, their stdout and stderr logged line by line. A copy
//! that exits is started again after `restart_sec` when `remain_after_exit` is set; one that runs
//! longer than `exec_timeout` is killed (with `remain_after_exit`, a periodic job). On stop every
//! copy gets SIGINT and, after `timeout_stop_sec`, SIGKILL. The `service.*` RPC methods
//! (spiral/roadrunner-services) create, restart, terminate, list and probe services at run time.

mod process;
pub mod proto;
mod rpc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rr_runtime::pool::Command;
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use process::Running;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    command: Command,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default = "one")]
    process_num: usize,
    /// 0: no limit.
    #[serde(default, with = "rr_runtime::config::duration")]
    exec_timeout: Duration,
    #[serde(default)]
    remain_after_exit: bool,
    /// Seconds before a copy that exited is started again.
    #[serde(default = "thirty")]
    restart_sec: u64,
    /// Seconds between SIGINT and SIGKILL on stop.
    #[serde(default = "five")]
    timeout_stop_sec: u64,
    /// Accepted for RoadRunner's configs; our log lines always carry the service's name.
    #[serde(default, rename = "service_name_in_log")]
    _service_name_in_log: bool,
}

fn one() -> usize {
    1
}
fn thirty() -> u64 {
    30
}
fn five() -> u64 {
    5
}

/// The running services, from the config and from `service.Create`.
#[derive(Default)]
struct Supervisor {
    /// Held across a whole RPC call, as RoadRunner serialises them.
    groups: tokio::sync::Mutex<BTreeMap<String, Group>>,
    stopping: CancellationToken,
}

/// The copies of one service.
struct Group {
    service: Service,
    cancel: CancellationToken,
    copies: Vec<Running>,
}

impl Group {
    /// Start every copy. `strict` (RPC): a copy that cannot be started stops the others and is
    /// the error; otherwise it is logged and, with `remain_after_exit`, tried again later.
    async fn start(name: &str, service: Service, parent: &CancellationToken, strict: bool) -> Result<Group, String> {
        let mut group = Group { cancel: parent.child_token(), copies: Vec::new(), service };
        for copy in 0..group.service.process_num {
            let first = match process::spawn(&group.service) {
                Ok(child) => Some(child),
                Err(e) => {
                    let error = format!("cannot start `{}`: {e}", group.service.command.args().join(" "));
                    if strict {
                        group.stop().await;
                        return Err(error);
                    }
                    tracing::error!(target: "service", service = %name, "{error}");
                    None
                }
            };
            group.copies.push(process::watch(name.to_string(), copy, group.service.clone(), first, group.cancel.clone()));
        }
        Ok(group)
    }

    /// Stop every copy (SIGINT, SIGKILL after `timeout_stop_sec`) and wait for them.
    async fn stop(self) -> Service {
        self.cancel.cancel();
        for copy in self.copies {
            let _ = copy.task.await;
        }
        self.service
    }
}

pub struct Plugin {
    configured: BTreeMap<String, Service>,
    supervisor: Arc<Supervisor>,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "service";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(configured) = ctx.section::<BTreeMap<String, Service>>("service")? else { return Ok(None) };
        for (name, s) in &configured {
            if s.command.args().is_empty() {
                return Err(format!("config key `service.{name}.command`: command should not be empty").into());
            }
        }
        let supervisor = Arc::new(Supervisor::default());
        rpc::register(&ctx.services.rpc, &supervisor);
        Ok(Some(Plugin { configured, supervisor }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        {
            let mut groups = self.supervisor.groups.lock().await;
            for (name, s) in &self.configured {
                let group = Group::start(name, s.clone(), &self.supervisor.stopping, false).await?;
                groups.insert(name.clone(), group);
            }
        }
        shutdown.cancelled().await;
        let groups = {
            let mut groups = self.supervisor.groups.lock().await;
            self.supervisor.stopping.cancel();
            std::mem::take(&mut *groups)
        };
        futures::future::join_all(groups.into_values().map(Group::stop)).await;
        Ok(())
    }
}
