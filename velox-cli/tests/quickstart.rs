//! README command 1's recipe, examples/hello/velox.toml, built from a clean target directory
//! with velox's output piped as in a CI log: a line per step and progress lines while cargo works.
//! The server serves the hello app; then the same `rr` meets a missing PHP, a missing worker
//! script and a PHP fatal at boot, each with one message naming the cause and the fix.
//!
//! The build is cold by design (the dev profile, to keep it cheap): it is what a newcomer runs.

use std::path::Path;
use std::process::{Command, Output};

#[path = "support/served.rs"]
mod served;
use served::{free_port, serve_hello, workspace};

#[test]
fn quick_start_builds_from_a_clean_target_serves_hello_and_explains_worker_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_velox"))
        .args(["build", "-c", "examples/hello/velox.toml", "--debug", "-o"])
        .arg(tmp.path().join("dist"))
        .arg("--target-dir")
        .arg(tmp.path().join("target"))
        .current_dir(workspace())
        .env("VELOX_CACHE", tmp.path().join("cache"))
        .env("VELOX_PROGRESS_SECS", "2")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "velox build failed:\n{log}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("built "), "{}", String::from_utf8_lossy(&out.stdout));
    // Not a terminal: plain lines, a line per step and periodic progress with counts.
    for step in ["load ", "resolve runtime", "render ", "compile rr (debug", "compiled ", "install "] {
        assert!(log.lines().any(|l| l.starts_with("  ") && l.trim_start().starts_with(step)), "no `{step}` line in:\n{log}");
    }
    let progress: Vec<&str> = log.lines().filter(|l| l.starts_with("  compiling ") && l.contains(" crates compiled, ")).collect();
    assert!(!progress.is_empty(), "no periodic progress line in:\n{log}");
    assert!(progress.iter().all(|l| l.split_whitespace().nth(1).is_some_and(|n| n.split_once('/').is_some())), "{progress:?}");
    assert!(!log.contains('\r') && !log.contains("\x1b["), "no terminal control codes in a log:\n{log}");

    let rr = tmp.path().join("dist/rr");
    let (reply, _) = serve_hello(&rr);
    assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("Hello, World!\n"), "{reply}");

    worker_failures(&rr, tmp.path());
}

/// `rr serve` with `command` in a config in `dir`; it must stop, and its error is returned.
fn serve_fails(rr: &Path, dir: &Path, command: &str, path_env: Option<&str>) -> String {
    let config = dir.join(".rr.yaml");
    let yaml = format!("version: '3'\nserver:\n  command: \"{command}\"\nhttp:\n  address: 127.0.0.1:{}\n  pool:\n    num_workers: 1\n", free_port());
    std::fs::write(&config, yaml).unwrap();
    let mut cmd = Command::new(rr);
    cmd.args(["serve", "-c"]).arg(&config).current_dir("/");
    if let Some(path) = path_env {
        cmd.env("PATH", path);
    }
    let out: Output = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success(), "rr serve should stop: {text}");
    assert!(!text.contains("allocate-timeout"), "the allocate-timeout link is for timeouts only: {text}");
    text
}

fn worker_failures(rr: &Path, tmp: &Path) {
    let dir = tmp.join("app");
    std::fs::create_dir_all(&dir).unwrap();

    // No PHP on the machine: the program, the PATH searched, the Debian package.
    let text = serve_fails(rr, &dir, "php worker.php", Some("/nonexistent-bin"));
    assert!(text.contains("cannot start `php worker.php`: program `php` not found in PATH (/nonexistent-bin)"), "{text}");
    assert!(text.contains("apt-get install php-cli"), "{text}");

    // A missing worker script: which file, relative to which directory (the config's).
    let text = serve_fails(rr, &dir, "php missing-worker.php", None);
    assert!(text.contains("PHP cannot open the worker script `missing-worker.php`"), "{text}");
    assert!(text.contains(&format!("there is no `{}`", dir.join("missing-worker.php").display())), "{text}");
    assert!(text.contains(&format!("relative to `{}`", dir.display())), "{text}");

    // A fatal error at boot: PHP's own words.
    std::fs::write(dir.join("boom.php"), "<?php\nthrow new RuntimeException('cannot reach the database');\n").unwrap();
    let text = serve_fails(rr, &dir, "php -d display_errors=stderr boom.php", None);
    assert!(text.contains("exited before the pid handshake"), "{text}");
    assert!(text.contains("Uncaught RuntimeException: cannot reach the database"), "{text}");
    assert!(text.contains("fix it in the worker script"), "{text}");
}
