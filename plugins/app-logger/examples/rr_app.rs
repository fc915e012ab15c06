//! An `rr` with just `rpc` and `app`: the end-to-end test runs it to see what the server writes
//! to its stderr. `cargo run -p rr-app-logger --example rr_app -- serve -c .rr.yaml`

fn main() -> std::process::ExitCode {
    rr_runtime::cli::main(rr_runtime::Build::new("rr", "example").plugin::<rr_rpc::Plugin>().plugin::<rr_app_logger::Plugin>())
}
