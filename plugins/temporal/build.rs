//! Copies the file descriptor set that `temporalio-protos` compiled (its `links` metadata names
//! it) next to this crate's code: the replay RPCs read and write histories as protojson with it.

fn main() {
    let Ok(path) = std::env::var("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH") else {
        panic!("temporalio-protos did not report its descriptor set (DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH)");
    };
    println!("cargo:rerun-if-changed={path}");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("temporal_descriptors.bin");
    std::fs::copy(&path, &out).unwrap_or_else(|e| panic!("copy {path} to {}: {e}", out.display()));
}
