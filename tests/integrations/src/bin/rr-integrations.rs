//! `rr` with http, rpc, gzip and static: what the integration tests start (`tests/*.rs`).

fn main() -> std::process::ExitCode {
    rr_runtime::cli::main(
        rr_runtime::Build::new("rr", "2025.1.0-test")
            .plugin::<rr_http::Plugin>()
            .plugin::<rr_rpc::Plugin>()
            .plugin::<rr_gzip::Plugin>()
            .plugin::<rr_static::Plugin>(),
    )
}
