//! A built server in development mode: `app.*` lines on its console with the attributes, and
//! `app.Log` / `app.LogWithContext` written to its stderr as they are.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rr_runtime::testing::free_port;
use serde_json::json;

/// Build the `rr_app` example into the calling test's target directory.
fn rr_app() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>").to_path_buf();
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "rr-app-logger", "--example", "rr_app", "--target-dir"])
        .arg(profile.parent().unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --example rr_app failed");
    profile.join("examples/rr_app")
}

#[test]
fn development_console_and_raw_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    let config = dir.path().join(".rr.yaml");
    std::fs::write(&config, format!("version: '3'\nrpc:\n  listen: {rpc}\nlogs:\n  mode: development\n  level: info\n")).unwrap();
    let mut server = Command::new(rr_app()).args(["serve", "-c"]).arg(&config).stderr(Stdio::piped()).spawn().unwrap();

    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/app_logger_client.php");
    let calls = json!([
        ["info", "login", {"user": 42}],
        ["debug", "below the level", []],
        ["log", "raw one|", []],
        ["log", "raw two", {"k1": "v1", "k2": "v2"}],
        ["warning", "plain warning", []],
    ]);
    let mut replies = String::new();
    for _ in 0..500 {
        let out = Command::new("php").arg(&client).arg(calls.to_string()).env("RR_RPC", &rpc).output().unwrap();
        replies = String::from_utf8_lossy(&out.stdout).into_owned();
        if !replies.contains("cannot connect") && out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill().unwrap();
    let stderr = without_colours(&String::from_utf8_lossy(&server.wait_with_output().unwrap().stderr));
    assert!(!replies.contains("error"), "{replies}");
    assert!(stderr.contains("raw one|raw two k1:v1,k2:v2"), "no newline added, every character of the last value kept:\n{stderr}");
    let app: Vec<&str> = stderr.lines().filter(|l| l.contains(" app: ")).collect();
    assert_eq!(app.len(), 2, "{stderr}");
    assert!(app[0].contains("INFO") && app[0].ends_with(r#"app: login attrs={"user":"42"}"#), "{}", app[0]);
    assert!(app[1].contains("WARN") && app[1].ends_with("app: plain warning"), "{}", app[1]);
}

/// The console writer colours its output; drop the escape sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}
