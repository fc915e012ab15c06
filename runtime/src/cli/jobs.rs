//! `rr jobs` (filled by the work that owns it).

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plugin or pipeline names.
    pub names: Vec<String>,
}

pub fn exec(_cli: &super::Cli, _args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("`rr jobs` is not implemented yet")
}
