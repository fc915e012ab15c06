//! `rr reset [plugin...]`: replace the workers of the named plugins (all resettable plugins when
//! none is named), in parallel, over RPC. Under systemd (`ExecReload=rr reset`, with
//! `NotifyAccess=all`) it says `RELOADING=1` before and `READY=1` after, as RoadRunner's does.

use sd_notify::NotifyState;

use super::{rpc_target, sdnotify};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plugins to reset (default: all).
    pub plugins: Vec<String>,
}

pub fn exec(cli: &super::Cli, args: &Args) -> anyhow::Result<()> {
    let address = rpc_target::address(cli)?;
    super::block_on(async {
        let plugins = if args.plugins.is_empty() {
            rpc_target::connect(&address).await?.call_json::<_, Vec<String>>("resetter.List", &true).await?
        } else {
            args.plugins.clone()
        };
        let _ = sdnotify::notify(NotifyState::Reloading);
        let tasks: Vec<_> = plugins
            .into_iter()
            .map(|plugin| {
                let address = address.clone();
                let silent = cli.silent;
                tokio::spawn(async move {
                    if !silent {
                        super::out(format_args!("resetting plugin: [{plugin}]\n"));
                    }
                    let mut client = rpc_target::connect(&address).await?;
                    client.call_json::<_, bool>("resetter.Reset", &plugin).await?;
                    if !silent {
                        super::out(format_args!("plugin reset: [{plugin}]\n"));
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        let mut first_error = None;
        for t in tasks {
            if let Err(e) = t.await? {
                first_error.get_or_insert(e);
            }
        }
        let _ = sdnotify::notify(NotifyState::Ready);
        first_error.map_or(Ok(()), Err)
    })
}
