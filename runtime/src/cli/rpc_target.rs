//! Where the client commands find the server: `rpc.listen` from the same config.

use crate::rpc::client::RpcClient;

pub fn address(cli: &super::Cli) -> anyhow::Result<String> {
    let config = cli.load_config()?;
    if !config.has("rpc") {
        anyhow::bail!("rpc service not specified in the configuration. Tip: add\n rpc:\n   listen: tcp://127.0.0.1:6001\nto `{}`", cli.config.display());
    }
    Ok(config.value("rpc.listen").and_then(|v| v.as_str()).unwrap_or("tcp://127.0.0.1:6001").to_string())
}

pub async fn connect(address: &str) -> anyhow::Result<RpcClient> {
    Ok(RpcClient::connect(address).await?)
}
