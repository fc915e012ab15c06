//! The `rr` command line with no plugins: what velox generates, minus the plugin list.
//! The CLI tests (`tests/cli.rs`) run it; it is also handy to check a config (`rr-bare serve`).

fn main() -> std::process::ExitCode {
    rr_runtime::cli::main(rr_runtime::Build::new("rr", "0.0.0-test"))
}
