//! The README's main job: velox builds `rr` from the root velox.toml, and it serves the hello
//! app in examples/ with its own .rr.yaml (the address moved to a free port with `-o`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/served.rs"]
mod served;
use served::{free_port, get, serve_hello, workspace};

#[test]
fn velox_builds_rr_that_serves_the_hello_app() {
    let dist = tempfile::tempdir().unwrap();
    let target = std::env::var_os("VELOX_E2E_TARGET").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/velox-e2e"));
    let out = Command::new(env!("CARGO_BIN_EXE_velox"))
        .args(["build", "-c", "velox.toml", "--debug", "-o"])
        .arg(dist.path())
        .arg("--target-dir")
        .arg(&target)
        .current_dir(workspace())
        .env("VELOX_CACHE", dist.path().join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "velox build failed: {}", String::from_utf8_lossy(&out.stderr));
    let rr = dist.path().join("rr");
    let version = String::from_utf8(Command::new(&rr).arg("--version").output().unwrap().stdout).unwrap();
    assert!(version.contains("  http"), "{version}");

    let (reply, status) = serve_hello(&rr);
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("Hello, World!\n"), "{reply}");
    assert!(status.success(), "graceful stop exits 0: {status}");

    pid1_reaps_orphans(&rr);
}

/// As PID 1 of its own PID namespace (a container without init), rr reaps the orphans its
/// workers leave behind (RoadRunner issue #2384) and still stops cleanly on SIGTERM.
fn pid1_reaps_orphans(rr: &Path) {
    let port = free_port();
    let worker = workspace().join("tests/php/workers/http.php");
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(rr)
        .args(["serve", "-c", "examples/hello/.rr.yaml", "-o"])
        .arg(format!("http.address=127.0.0.1:{port}"))
        .arg("-o")
        .arg(format!("server.command=php {}", worker.display()))
        .current_dir(workspace())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) is needed; tests/run.sh installs it");
    let started = Instant::now();
    while get(port, "/").is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "rr as PID 1 never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    // rr is the child of unshare on this side of the namespace.
    let rr_pid = children(unshare.id())[0];
    for _ in 0..5 {
        assert!(get(port, "/orphan").unwrap().ends_with("orphaned"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let zombies: Vec<u32> = children(rr_pid).into_iter().filter(|p| state(*p) == "Z").collect();
    assert!(zombies.is_empty(), "zombies left under rr as PID 1: {zombies:?}");
    Command::new("kill").arg(rr_pid.to_string()).status().unwrap();
    let status = unshare.wait().unwrap();
    assert!(status.success(), "rr as PID 1 stops on SIGTERM: {status}");
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')').map(|i| stat[i + 2..i + 3].to_string()).unwrap_or_default()
}
