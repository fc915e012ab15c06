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
fn a_reader_that_went_away_ends_the_output_without_a_panic() {
    // `rr --version | head -0`: the pipe's reader is gone before rr writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = rr().arg("--version").stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
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

/// A systemd stand-in: the datagram socket `NOTIFY_SOCKET` names.
struct Notify {
    socket: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
}

impl Notify {
    fn bind(dir: &std::path::Path) -> Notify {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Notify { socket, path }
    }

    /// The next message, without its trailing newline.
    fn next(&self) -> String {
        let mut buf = [0u8; 256];
        let n = self.socket.recv(&mut buf).expect("a notify message within 10 s");
        String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
    }
}

#[test]
fn systemd_notify_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".rr.yaml"), "version: '3'\nendure:\n  watchdog_sec: 1\n").unwrap();
    let notify = Notify::bind(dir.path());
    let mut child = rr()
        .args(["serve", "-p", "-c"])
        .arg(dir.path().join(".rr.yaml"))
        .env("NOTIFY_SOCKET", &notify.path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(notify.next(), "READY=1");
    // The first right away, then one a second.
    assert_eq!(notify.next(), "WATCHDOG=1");
    let start = Instant::now();
    assert_eq!(notify.next(), "WATCHDOG=1");
    assert!(start.elapsed() >= Duration::from_millis(500), "watchdog_sec paces the pings: {:?}", start.elapsed());

    // `rr stop` (run by systemd's ExecStop, with NOTIFY_SOCKET) says STOPPING=1 itself; serve
    // says it again on the signal.
    let stop = rr().args(["stop", "-c"]).arg(dir.path().join(".rr.yaml")).env("NOTIFY_SOCKET", &notify.path).output().unwrap();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    assert!(String::from_utf8_lossy(&stop.stderr).contains(&format!("stopping process with PID: {}", child.id())));
    let mut messages = vec![notify.next(), notify.next()];
    messages.retain(|m| m != "WATCHDOG=1");
    assert_eq!(messages.first().map(String::as_str), Some("STOPPING=1"));
    assert!(wait_exit(&mut child, Duration::from_secs(10)).expect("stops").success());
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    for line in ["[INFO] RoadRunner server started; version: 0.0.0-test", "[INFO] sdnotify: notified", "[INFO] sdnotify: watchdog enabled, timeout: 1 seconds", "stop signal received, grace timeout is: 30 seconds"] {
        assert!(out.contains(line), "RoadRunner's stdout line `{line}`: {out}");
    }
}

#[test]
fn silent_hides_roadrunners_stdout_lines_and_e_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".rr.yaml"), "version: '3'\n").unwrap();
    let notify = Notify::bind(dir.path());
    let mut child = rr()
        .args(["serve", "-s", "-e", "-p", "-c"])
        .arg(dir.path().join(".rr.yaml"))
        .env("NOTIFY_SOCKET", &notify.path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(notify.next(), "READY=1", "silent changes what is printed, not what systemd is told");
    nix_kill(child.id());
    assert!(wait_exit(&mut child, Duration::from_secs(10)).expect("stops").success());
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(out, "", "-s prints nothing on stdout");
}

#[test]
fn sigusr2_re_executes_the_binary_now_on_disk_with_the_same_pid() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("rr");
    std::fs::copy(env!("CARGO_BIN_EXE_rr-bare"), &bin).unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    // on_init notes the .env value the config was read with.
    std::fs::write(dir.path().join("app/.rr.yaml"), "version: '3'\nserver:\n  command: php w.php\n  on_init:\n    command: sh note.sh ${RELEASE}\n").unwrap();
    std::fs::write(dir.path().join("app/note.sh"), "echo $1 >> releases.txt\n").unwrap();
    std::fs::write(dir.path().join("app/.env"), "RELEASE=one\n").unwrap();
    let notify = Notify::bind(dir.path());
    // Relative `-c`, from the directory rr was started in: it must still hold after the re-exec
    // (serve itself runs in `app/`).
    let mut child = Command::new(&bin)
        .args(["serve", "-p", "-c", "app/.rr.yaml", "--dotenv", ".env"])
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &notify.path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(notify.next(), "READY=1");
    let pid = child.id();

    // An upgrade: the new binary is renamed over the running one, and a new .env.
    std::fs::write(dir.path().join("app/.env"), "RELEASE=two\n").unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_rr-bare"), dir.path().join("rr.new")).unwrap();
    std::fs::rename(dir.path().join("rr.new"), &bin).unwrap();
    assert!(std::fs::read_link(format!("/proc/{pid}/exe")).unwrap().to_string_lossy().ends_with(" (deleted)"));
    Command::new("kill").args(["-USR2", &pid.to_string()]).status().unwrap();
    assert_eq!(notify.next(), "READY=1", "the new image reports ready again");
    assert!(child.try_wait().unwrap().is_none(), "same process, still running");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, bin, "the process now runs the new binary");
    assert_eq!(std::fs::read_to_string(dir.path().join("app/.pid")).unwrap(), pid.to_string());
    assert_eq!(std::fs::read_to_string(dir.path().join("app/releases.txt")).unwrap(), "one\ntwo\n", "the new .env is read");

    nix_kill(pid);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).expect("stops").success());
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("restart signal [SIGUSR2] received"), "{out}");
    assert_eq!(out.matches("RoadRunner server started").count(), 2, "{out}");
}

#[test]
fn workdir_flag_sets_where_serve_runs_and_writes_its_pid() {
    let (conf, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(conf.path().join(".rr.yaml"), "version: '3'\nserver:\n  command: php w.php\n  on_init:\n    command: \"touch on_init_ran\"\n").unwrap();
    let mut child = rr().args(["serve", "-p", "-w"]).arg(work.path()).arg("-c").arg(conf.path().join(".rr.yaml")).stdout(Stdio::null()).spawn().unwrap();
    wait_file(&work.path().join(".pid"));
    assert!(work.path().join("on_init_ran").exists(), "-w is the working directory");
    assert!(!conf.path().join(".pid").exists());
    // `rr stop -w` finds the pid file there.
    let stop = rr().args(["stop", "-w"]).arg(work.path()).arg("-c").arg(conf.path().join(".rr.yaml")).output().unwrap();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    assert!(wait_exit(&mut child, Duration::from_secs(10)).expect("stops").success());
}

#[test]
fn log_outputs_channels_and_line_ending() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".rr.yaml"),
        r#"version: '3'
unread_section: {}
logs:
  mode: production
  line_ending: "\r\n"
  output: [stdout, logs/all.log]
  channels:
    server:
      mode: raw
      output: [worker.log]
      line_ending: "\n"
server:
  command: php w.php
  on_init:
    command: "echo warmed-up"
"#,
    )
    .unwrap();
    let out = serve_briefly(dir.path(), &[]);
    // The section's logger: zap JSON lines ending in \r\n, to stdout and to the file.
    let warning = |text: &str| text.split("\r\n").any(|l| l.contains("\"level\":\"warn\"") && l.contains("unread_section"));
    let file = std::fs::read_to_string(dir.path().join("logs/all.log")).unwrap();
    assert!(warning(&out) && warning(&file), "stdout: {out}\nfile: {file}");
    assert!(!file.contains("warmed-up") && !out.contains("warmed-up"), "the server channel has its own output: {file}");
    // The `server` channel: raw, its own file, its own line ending.
    assert_eq!(std::fs::read_to_string(dir.path().join("worker.log")).unwrap(), "on_init: warmed-up\n");
}

#[test]
fn file_logger_options_rotate_and_compress() {
    let dir = tempfile::tempdir().unwrap();
    // About 3 MB of worker output through the log: rotated every megabyte, two backups kept.
    std::fs::write(dir.path().join("gen.sh"), "yes line-of-worker-output-for-the-rotation-test | head -n 40000\n").unwrap();
    std::fs::write(
        dir.path().join(".rr.yaml"),
        "version: '3'\nlogs:\n  file_logger_options:\n    log_output: logs/rr.log\n    max_size: 1\n    max_backups: 2\n    compress: true\nserver:\n  command: php w.php\n  on_init:\n    command: sh gen.sh\n",
    )
    .unwrap();
    serve_briefly(dir.path(), &[]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("logs")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let rotated: Vec<&String> = names.iter().filter(|n| n.starts_with("rr.log.")).collect();
    assert_eq!(rotated.len(), 2, "max_backups: {names:?}");
    assert!(rotated.iter().all(|n| n.ends_with(".gz")), "compress: {names:?}");
    let current = std::fs::read_to_string(dir.path().join("logs/rr.log")).unwrap();
    assert!(current.len() <= 1024 * 1024 + 200, "max_size: {} bytes", current.len());
    // JSON lines in the file, whatever the mode (RoadRunner's file logger).
    let line: serde_json::Value = serde_json::from_str(current.lines().last().unwrap()).unwrap();
    assert_eq!(line["logger"], "server", "{line}");
}

#[test]
fn a_failed_log_write_is_reported_to_err_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".rr.yaml"),
        "version: '3'\nlogs:\n  output: /dev/full\n  err_output: log-errors.txt\nserver:\n  command: php w.php\n  on_init:\n    command: \"echo warmed-up\"\n",
    )
    .unwrap();
    serve_briefly(dir.path(), &[]);
    let errors = std::fs::read_to_string(dir.path().join("log-errors.txt")).unwrap();
    assert!(errors.contains("write error: No space left on device"), "{errors}");
}

#[test]
fn bad_log_settings_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (logs, expected) in [
        ("logs:\n  channels:\n    http:\n      mode: loud\n", "`logs.channels.http.mode`: unknown mode `loud`"),
        ("logs:\n  channels:\n    http:\n      level: chatty\n", "`logs.channels.http.level`: unknown level `chatty`"),
        ("logs:\n  output: [/proc/rr.log]\n", "config key `logs.output`"),
        ("logs:\n  output: 5\n", "`stderr`, `stdout` or a file path, or a list of them"),
    ] {
        std::fs::write(dir.path().join(".rr.yaml"), format!("version: '3'\n{logs}")).unwrap();
        let out = rr().args(["serve", "-c"]).arg(dir.path().join(".rr.yaml")).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{logs}: {err}");
    }
}

/// Serve until the pid file appears (on_init has run by then), stop, and return stdout.
fn serve_briefly(dir: &std::path::Path, args: &[&str]) -> String {
    let mut child = rr().args(["serve", "-p", "-s"]).args(args).arg("-c").arg(dir.join(".rr.yaml")).stdout(Stdio::piped()).spawn().unwrap();
    wait_file(&dir.join(".pid"));
    nix_kill(child.id());
    assert!(wait_exit(&mut child, Duration::from_secs(20)).expect("stops").success());
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    out
}
