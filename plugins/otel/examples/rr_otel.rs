//! An `rr` with `http` and `otel` (and mimalloc, as velox's generated servers have), for
//! `bench/otel.sh`: `cargo build --release -p rr-otel --example rr_otel`.

#[global_allocator]
static ALLOCATOR: rr_runtime::Allocator = rr_runtime::Allocator;

fn main() -> std::process::ExitCode {
    rr_runtime::cli::main(rr_runtime::Build::new("rr", "bench").plugin::<rr_otel::Plugin>().plugin::<rr_http::Plugin>())
}
