//! The log lines of this test process as `rr serve` writes them: the `logs` section (the
//! runtime's logging, one global subscriber per process) goes to a file the tests read back.
//! Servers of every test in the process log there; each test looks for its own lines.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();

/// Log every event of this process with `logs` (YAML keys under `logs:`, no `output`) to a file;
/// the first call sets it up.
pub fn capture(logs: &str) -> &'static Path {
    &FILE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("rr.log");
            let yaml = format!("version: '3'\nlogs:\n{logs}\n  output: {}\n", path.display());
            let config = rr_runtime::config::Config::from_str(&yaml).unwrap_or_else(|e| panic!("logs config: {e}"));
            rr_runtime::logging::init(&config).expect("logging");
            (dir, path)
        })
        .1
}

/// Every line logged so far.
pub fn lines() -> Vec<String> {
    let path = &FILE.get().expect("logs::capture first").1;
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// The lines holding every one of `needles`, once there is one (the record of a request is
/// written once its response is sent, so it may come just after the client has it).
pub async fn wait_for(needles: &[&str]) -> Vec<String> {
    for _ in 0..400 {
        let found: Vec<String> = lines().into_iter().filter(|l| needles.iter().all(|n| l.contains(n))).collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no log line with {needles:?} in 20 s:\n{}", lines().join("\n"));
}
