//! The `rr` command line as users run it: `--version`, `serve` (working directory, `-o`,
//! `on_init`, `-p`), `stop`, signals.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `rr` CLI with no plugins (`src/bin/rr-bare.rs`).
fn rr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rr-bare"))
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn wait_file(path: &std::path::Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn version_lists_plugins() {
    let out = rr().arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(text.starts_with("rr version 0.0.0-test"), "{text}");
    assert!(text.contains("plugins:"), "{text}");
}

#[test]
fn serve_runs_in_the_config_dir_runs_on_init_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".rr.yaml"),
        "version: '3'\nserver:\n  command: php worker.php\n  on_init:\n    command: \"touch on_init_ran\"\n",
    )
    .unwrap();
    // Started from elsewhere: serve changes into the config's directory, writes .pid there.
    let mut child = rr()
        .args(["serve", "-p", "-c"])
        .arg(dir.path().join(".rr.yaml"))
        .current_dir("/")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_file(&dir.path().join(".pid"));
    assert!(dir.path().join("on_init_ran").exists(), "on_init ran in the config's directory");
    let pid = std::fs::read_to_string(dir.path().join(".pid")).unwrap();
    assert_eq!(pid.trim(), child.id().to_string());

    let stop = rr().args(["stop", "-c"]).arg(dir.path().join(".rr.yaml")).output().unwrap();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("serve exits after rr stop");
    assert!(status.success(), "graceful stop exits 0: {status}");
    assert!(!dir.path().join(".pid").exists(), "the pid file is removed");
}

#[test]
fn bad_config_stops_serve_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".rr.yaml"), "version: '3'\nserver:\n  command: php w.php\n  relay: \"udp://x\"\n").unwrap();
    let out = rr().args(["serve", "-c"]).arg(dir.path().join(".rr.yaml")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.relay") && err.contains("udp://x"), "{err}");

    let out = rr().args(["serve", "-c", "/nonexistent/.rr.yaml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/.rr.yaml"));
}

#[test]
fn gomaxprocs_sets_the_runtime_threads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".rr.yaml"), "version: '3'\n").unwrap();
    let threads = |child: &Child| {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap();
        tasks.filter(|t| std::fs::read_to_string(t.as_ref().unwrap().path().join("comm")).unwrap().starts_with("tokio-rt-worker")).count()
    };
    let mut child = rr().args(["serve", "-p", "-c"]).arg(dir.path().join(".rr.yaml")).env("GOMAXPROCS", "3").stderr(Stdio::null()).spawn().unwrap();
    wait_file(&dir.path().join(".pid"));
    let counted = threads(&child);
    nix_kill(child.id());
    wait_exit(&mut child, Duration::from_secs(10)).expect("serve stops on SIGTERM");
    assert_eq!(counted, 3, "GOMAXPROCS=3 gives three runtime threads");

    let out = rr().args(["serve", "-c"]).arg(dir.path().join(".rr.yaml")).env("GOMAXPROCS", "lots").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GOMAXPROCS=`lots` is not a positive number"), "{err}");
}

#[test]
fn failing_on_init_with_exit_on_error_stops_serve() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".rr.yaml"),
        "version: '3'\nserver:\n  command: php w.php\n  on_init:\n    command: \"false\"\n    exit_on_error: true\n",
    )
    .unwrap();
    let out = rr().args(["serve", "-c"]).arg(dir.path().join(".rr.yaml")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("on_init command `false` failed"));
}

#[test]
fn stop_without_pid_file_explains_serve_p() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".rr.yaml"), "version: '3'\n").unwrap();
    let out = rr().args(["stop", "-c"]).arg(dir.path().join(".rr.yaml")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rr serve -p"));
}

#[test]
fn logs_section_json_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".rr.yaml"),
        "version: '3'\nlogs:\n  mode: production\n  output: rr.log\nserver:\n  command: php w.php\n  on_init:\n    command: \"echo warmed-up\"\n",
    )
    .unwrap();
    let mut child = rr().args(["serve", "-p", "-c"]).arg(dir.path().join(".rr.yaml")).spawn().unwrap();
    wait_file(&dir.path().join(".pid"));
    nix_kill(child.id());
    wait_exit(&mut child, Duration::from_secs(10)).expect("exits");
    let log = std::fs::read_to_string(dir.path().join("rr.log")).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).expect("json lines")).collect();
    // RoadRunner's (zap's) line shape, which tools such as Laravel Octane parse.
    let line = lines.iter().find(|l| l["msg"] == "on_init: warmed-up").unwrap_or_else(|| panic!("{log}"));
    assert_eq!((line["level"].as_str(), line["logger"].as_str()), (Some("info"), Some("server")), "{line}");
    assert!(line["ts"].as_f64().unwrap() > 1.7e9, "{line}");
    assert!(lines.iter().all(|l| l["msg"].is_string() && l["level"].is_string() && l["logger"].is_string()), "{log}");
}

fn nix_kill(pid: u32) {
    Command::new("kill").arg(pid.to_string()).status().unwrap();
}
