//! The same velox.lock, toolchain and target give a bit-identical binary whatever the cache,
//! recipe and target directories, and `velox verify` proves it for a published binary. The
//! smallest recipe that shows it: the runtime and no plugins, built twice in release (two target
//! directories, so the second build is cold too: about a minute each on 2 cores).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `velox ARGS` in `dir` with its own cache.
fn velox(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_velox"))
        .args(args)
        .current_dir(dir)
        .env("VELOX_CACHE", dir.join("cache"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "velox failed:\n{}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn recipe(dir: &Path) {
    let text = format!("[binary]\nname = \"rr\"\nversion = \"1.0.0\"\n\n[runtime]\npath = \"{}\"\n", workspace().join("runtime").display());
    std::fs::write(dir.join("velox.toml"), text).unwrap();
}

#[test]
fn two_builds_are_bit_identical_and_verify_says_so() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let targets = workspace().join("target/velox-repro");
    let mut sums = Vec::new();
    for (dir, target) in [(one.path(), targets.join("a")), (two.path(), targets.join("b"))] {
        recipe(dir);
        ok(&velox(dir, &["build", "-o", "dist", "--target-dir", target.to_str().unwrap()]));
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("dist/rr.manifest.json")).unwrap()).unwrap();
        sums.push(manifest["sha256"].as_str().unwrap().to_string());
    }
    assert_eq!(sums[0], sums[1], "two builds of one recipe differ");

    // The binary built in `one`, checked from `two` (another recipe path, cache and target dir).
    let published = one.path().join("dist/rr");
    let out = ok(&velox(two.path(), &["verify", published.to_str().unwrap(), "--target-dir", targets.join("b").to_str().unwrap()]));
    assert!(out.contains(&format!("the rebuilt binary has the same sha256 {}", sums[0])), "{out}");

    // A recorded input that differs is named before anything is compiled.
    let manifest_path = one.path().join("dist/rr.manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let rustc = serde_json::from_str::<serde_json::Value>(&text).unwrap()["rustc"].as_str().unwrap().to_string();
    std::fs::write(&manifest_path, text.replace(&rustc, "rustc 1.0.0 (old)")).unwrap();
    let out = velox(two.path(), &["verify", published.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("toolchain: `rustc 1.0.0 (old)` in the manifest, `{rustc}` here")), "{err}");
    std::fs::write(&manifest_path, &text).unwrap();
    std::fs::write(two.path().join("velox.toml"), std::fs::read_to_string(two.path().join("velox.toml")).unwrap().replace("1.0.0", "1.0.1")).unwrap();
    let err = String::from_utf8_lossy(&velox(two.path(), &["verify", published.to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("binary.version: `1.0.0` in the manifest, `1.0.1` here") && err.contains("template: the generated"), "{err}");
    // A binary that is not the manifest's.
    std::fs::write(&published, b"not rr").unwrap();
    let err = String::from_utf8_lossy(&velox(two.path(), &["verify", published.to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("is not the binary") && err.contains(&sums[0]), "{err}");
}
