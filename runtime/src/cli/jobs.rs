//! `rr jobs --pause|--resume|--destroy p1,p2` and `rr jobs --list`, over RPC (`jobs.v1`).

use prost::Message;

use super::rpc_target;
use crate::rpc::Codec;

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false, id = "action")]
pub struct Args {
    /// Pause consuming these pipelines.
    #[arg(long, group = "action")]
    pub pause: bool,
    /// Resume consuming these pipelines.
    #[arg(long, group = "action")]
    pub resume: bool,
    /// Destroy these pipelines.
    #[arg(long, group = "action")]
    pub destroy: bool,
    /// List the pipelines.
    #[arg(long, group = "action")]
    pub list: bool,
    /// Pipelines, comma-separated: `p1,p2`.
    pub pipelines: Option<String>,
}

/// `jobs.v1.Pipelines`.
#[derive(Clone, PartialEq, prost::Message)]
struct Pipelines {
    #[prost(string, repeated, tag = "1")]
    pipelines: Vec<String>,
}

pub fn exec(cli: &super::Cli, args: &Args) -> anyhow::Result<()> {
    let address = rpc_target::address(cli)?;
    let names: Vec<String> = args.pipelines.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    let method = match (args.pause, args.resume, args.destroy) {
        (true, _, _) => "jobs.Pause",
        (_, true, _) => "jobs.Resume",
        (_, _, true) => "jobs.Destroy",
        _ => "jobs.List",
    };
    if method != "jobs.List" && names.is_empty() {
        anyhow::bail!("command should be in form of: rr jobs --<destroy/resume/pause> pipe1,pipe2");
    }
    super::block_on(async {
        let mut client = rpc_target::connect(&address).await?;
        let body = if method == "jobs.List" { Vec::new() } else { Pipelines { pipelines: names.clone() }.encode_to_vec() };
        let reply = client.call(method, Codec::Proto, &body).await?;
        let shown = match method {
            "jobs.List" | "jobs.Destroy" => Pipelines::decode(reply)?.pipelines,
            _ => names,
        };
        if method == "jobs.List" || !cli.silent {
            super::out(format_args!("Pipeline(s)\n"));
            for p in shown {
                super::out(format_args!("{p}\n"));
            }
        }
        anyhow::Ok(())
    })
}
