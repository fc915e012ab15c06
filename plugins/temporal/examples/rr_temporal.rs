//! An `rr` with `rpc`, `metrics` and `temporal` (and mimalloc, as velox's generated servers
//! have), for `bench/temporal.sh`: `cargo build --release -p rr-temporal --example rr_temporal`.

#[global_allocator]
static ALLOCATOR: rr_runtime::Allocator = rr_runtime::Allocator;

fn main() -> std::process::ExitCode {
    rr_runtime::cli::main(rr_runtime::Build::new("rr", "bench").plugin::<rr_rpc::Plugin>().plugin::<rr_temporal::Plugin>())
}
