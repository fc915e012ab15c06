//! `rr` started as Laravel Octane, the Symfony bundle and runtime, Spiral and the Temporal SDK
//! start it (docs/INTEGRATIONS.md lists each invocation and file), with a PHP worker of our own
//! (tests/php/workers/framework.php) standing in for the framework's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---- Laravel Octane (`php artisan octane:start --server=roadrunner`) ----

/// `octane:start`: an empty `.rr.yaml` it touched, everything else as `-o`, run in the app's base
/// path; JSON logs on stdout read back line by line; `octane:reload` is `rr reset -o rpc.listen=…
/// -s` (any stderr output is an error); `octane:stop` is SIGTERM.
#[test]
fn laravel_octane() {
    let app = App::new();
    std::fs::write(app.path(".rr.yaml"), "").unwrap();
    std::fs::create_dir(app.path("public")).unwrap();
    std::fs::write(app.path("public/robots.txt"), "User-agent: *\n").unwrap();
    let (http, rpc) = (free_port(), free_port());

    // The version check Octane makes first: `rr version X …`, X ≥ 2023.3.0.
    let out = rr().arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let version = text.strip_prefix("rr version ").and_then(|t| t.split(' ').next()).unwrap_or_else(|| panic!("{text}"));
    assert!(version.split('.').next().unwrap().parse::<u32>().unwrap() >= 2023, "{text}");

    let public = app.path("public");
    let server = Server::start(
        rr().current_dir(&app.dir).env("APP_ENV", "local").env("APP_BASE_PATH", &app.dir).env("LARAVEL_OCTANE", "1").args([
            "-c",
            app.path(".rr.yaml").to_str().unwrap(),
            "-o",
            "version=3",
            "-o",
            &format!("http.address=127.0.0.1:{http}"),
            "-o",
            &format!("server.command={},{}", php(), worker()),
            "-o",
            "http.pool.num_workers=1",
            "-o",
            "http.pool.max_jobs=500",
            "-o",
            &format!("rpc.listen=tcp://127.0.0.1:{rpc}"),
            "-o",
            "http.pool.supervisor.exec_ttl=30s",
            "-o",
            &format!("http.static.dir={}", public.display()),
            "-o",
            "http.middleware=static",
            "-o",
            "logs.mode=production",
            "-o",
            "logs.level=debug",
            "-o",
            "logs.output=stdout",
            "-o",
            "logs.encoding=json",
            "serve",
        ]),
    );
    let first = server.get(http, "/");
    assert_eq!(first["argv"], serde_json::json!([worker()]), "the comma-joined command is php and the script");
    assert_eq!((first["env"]["LARAVEL_OCTANE"].as_str(), first["env"]["RR_MODE"].as_str()), (Some("1"), Some("http")), "{first}");
    assert_eq!(first["env"]["APP_BASE_PATH"], app.dir.display().to_string());
    assert_eq!(get(http, "/robots.txt").1, "User-agent: *\n", "`-o http.static.dir` + `-o http.middleware=static`");

    // What Octane prints of our stdout: JSON lines; worker stderr under logger `server`.
    server.get(http, "/log?hello-from-php");
    server.wait_for("the worker's stderr on stdout as logger `server`", |out, _| {
        json_lines(out).iter().any(|l| l["logger"] == "server" && l["msg"] == "hello-from-php")
    });
    // Octane's request lines: `http log` at info with these fields (elapsed in ms; Octane only
    // checks that remote_address is there, host:port as RoadRunner logs it).
    server.wait_for("an `http log` line as Octane reads it", |out, _| {
        json_lines(out).iter().any(|l| {
            l["level"] == "info" && l["msg"] == "http log" && l["URI"] == "/log?hello-from-php" && l["method"] == "GET" && l["status"] == 200
                && l["remote_address"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")) && l["elapsed"].is_u64()
        })
    });
    // Octane's worker reports exceptions as JSON on stderr; Octane decodes `msg` to show them.
    server.get(http, "/log?%7B%22type%22%3A%22throwable%22%2C%22message%22%3A%22boom%22%7D");
    server.wait_for("the worker's JSON line as `msg`", |out, _| {
        json_lines(out).iter().filter(|l| l["logger"] == "server").any(|l| {
            serde_json::from_str::<Value>(l["msg"].as_str().unwrap_or_default()).is_ok_and(|m| m == serde_json::json!({"type": "throwable", "message": "boom"}))
        })
    });

    // `octane:reload`, run in the base path next to the empty `.rr.yaml`.
    let reset = rr().current_dir(&app.dir).args(["reset", "-o", &format!("rpc.listen=tcp://127.0.0.1:{rpc}"), "-s"]).output().unwrap();
    assert!(reset.status.success() && reset.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&reset.stderr));
    assert!(reset.stdout.is_empty(), "-s prints nothing: {}", String::from_utf8_lossy(&reset.stdout));
    assert_ne!(server.get(http, "/")["pid"], first["pid"], "the worker was replaced");

    let (out, err) = server.stop();
    assert!(json_lines(&out).len() == out.lines().filter(|l| l.starts_with('{')).count(), "{out}");
    // Octane shows every stderr line without DEBUG/INFO/WARN in it as an error.
    let errors: Vec<&str> = err.lines().filter(|l| !["DEBUG", "INFO", "WARN"].iter().any(|w| l.contains(w))).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!json_lines(&out).iter().any(|l| l["msg"].as_str().is_some_and(|m| m.contains("not read by this server"))), "{out}");
}

// ---- Symfony: baldinof/roadrunner-bundle and runtime/roadrunner-symfony-nyholm ----

/// The bundle's shipped `.rr.yaml`, copied into the project and run as `rr serve`: version "2.7"
/// (warning on stderr), `server.env` as a list of one-key maps, static files from `public`.
#[test]
fn symfony_bundle_shipped_config() {
    let app = App::symfony("symfony-bundle.rr.yaml");
    let (http, rpc) = (free_port(), free_port());
    let server = Server::start(rr().current_dir(&app.dir).args([
        "serve",
        "-o",
        &format!("http.address=127.0.0.1:{http}"),
        "-o",
        &format!("rpc.listen=tcp://127.0.0.1:{rpc}"),
    ]));
    let page = server.get(http, "/");
    assert_eq!(page["env"]["APP_RUNTIME"], r"Baldinof\RoadRunnerBundle\Runtime\Runtime");
    assert_eq!(page["argv"], serde_json::json!(["public/index.php"]));
    assert_eq!(get(http, "/app.css").1, "body {}\n");
    server.get(http, "/log?from-symfony");
    let (_, err) = server.stop();
    assert!(err.contains("please, update your configuration version from version: '2.7' to version: '3'"), "{err}");
    // `logs.channels.server.mode: raw`: worker output as written; the rest zap's JSON lines.
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.contains(&"framework worker booted") && lines.contains(&"from-symfony"), "{err}");
    assert!(json_lines(&err).iter().any(|l| l["logger"] == "http" && l["msg"] == "http log"), "channel http at debug: {err}");
    assert!(!err.contains("not read by this server"), "every key of the shipped file is read: {err}");
}

/// `.rr.dev.yaml` (`rr serve -c .rr.dev.yaml`): `pool.debug`, a fresh worker per request.
#[test]
fn symfony_bundle_dev_config() {
    let app = App::symfony("symfony-bundle.rr.dev.yaml");
    let http = free_port();
    let server = Server::start(rr().current_dir(&app.dir).args(["serve", "-c", "symfony-bundle.rr.dev.yaml", "-o", &format!("http.address=127.0.0.1:{http}")]));
    let (a, b) = (server.get(http, "/"), server.get(http, "/"));
    assert_eq!(a["env"]["APP_RUNTIME"], r"Baldinof\RoadRunnerBundle\Runtime\Runtime");
    assert_ne!(a["pid"], b["pid"]);
    server.stop();
}

#[test]
fn symfony_runtime_readme_config() {
    let app = App::symfony("symfony-runtime.rr.yaml");
    let http = free_port();
    let server = Server::start(rr().current_dir(&app.dir).args(["serve", "-c", "symfony-runtime.rr.yaml", "-o", &format!("http.address=127.0.0.1:{http}")]));
    assert_eq!(server.get(http, "/")["env"]["APP_RUNTIME"], r"Runtime\RoadRunnerSymfonyNyholm\Runtime");
    server.stop();
}

// ---- Spiral (spiral/app with spiral/roadrunner-bridge) ----

/// `./rr serve` in the app: the worker dispatches on RR_MODE and reaches rr through RR_RPC.
#[test]
fn spiral_app_config() {
    let app = App::new();
    std::fs::copy(fixture("spiral.rr.yaml"), app.path(".rr.yaml")).unwrap();
    std::fs::write(app.path("app.php"), format!("<?php require '{}';\n", worker())).unwrap();
    std::fs::create_dir(app.path("public")).unwrap();
    let (http, rpc) = (free_port(), free_port());
    let server = Server::start(rr().current_dir(&app.dir).args([
        "serve",
        "-o",
        &format!("http.address=127.0.0.1:{http}"),
        "-o",
        &format!("rpc.listen=tcp://127.0.0.1:{rpc}"),
    ]));
    let page = server.get(http, "/");
    assert_eq!((page["env"]["RR_MODE"].as_str(), page["env"]["RR_RPC"].as_str()), (Some("http"), Some(&*format!("tcp://127.0.0.1:{rpc}"))), "{page}");
    let workers = rr().current_dir(&app.dir).args(["workers", "-o", &format!("rpc.listen=tcp://127.0.0.1:{rpc}")]).output().unwrap();
    assert!(String::from_utf8_lossy(&workers.stdout).contains("Workers of [http]"), "{workers:?}");
    let (_, err) = server.stop();
    assert!(!err.contains("not read by this server"), "every key of the skeleton's file is read: {err}");
}

// ---- Temporal PHP SDK testing environment ----

/// `rr serve -c FILE -w DIR -o server.command=php,worker.php`; ready once stdout says
/// `RoadRunner server started` and `rr workers -c FILE` prints `Workers of`; stopped with SIGTERM.
/// Its acceptance runner passes `-w DIR` alone: the `.rr.yaml` in DIR is the config.
#[test]
fn temporal_test_environment() {
    let app = App::new();
    std::fs::copy(fixture("temporal.rr.yaml"), app.path(".rr.yaml")).unwrap();
    std::fs::write(app.path("worker.php"), format!("<?php require '{}';\n", worker())).unwrap();
    for with_config in [true, false] {
        let (http, rpc) = (free_port(), free_port());
        let config = app.path(".rr.yaml");
        let mut cmd = rr();
        cmd.current_dir("/").arg("serve");
        if with_config {
            cmd.args(["-c", config.to_str().unwrap()]);
        }
        cmd.args(["-w", app.dir.to_str().unwrap()]);
        cmd.args(["-o", &format!("server.command={},worker.php", php())]);
        cmd.args(["-o", &format!("http.address=127.0.0.1:{http}"), "-o", &format!("rpc.listen=tcp://127.0.0.1:{rpc}")]);
        let server = Server::start(&mut cmd);
        // Its readiness check, polled as the SDK polls it.
        server.wait_for("the start line on stdout, then `Workers of` from `rr workers`", |out, _| {
            out.contains("RoadRunner server started") && {
                let workers = rr().args(["workers", "-c", config.to_str().unwrap(), "-o", &format!("rpc.listen=tcp://127.0.0.1:{rpc}")]).output().unwrap();
                String::from_utf8_lossy(&workers.stdout).contains("Workers of")
            }
        });
        let page = server.get(http, "/");
        assert_eq!(page["cwd"], app.dir.display().to_string(), "-w is the workers' directory");
        assert_eq!(page["argv"], serde_json::json!(["worker.php"]));
        server.stop();
    }
}

// ---- Config mistakes (issue #21): what a user sees ----

#[test]
fn config_mistakes_are_named() {
    let app = App::new();
    let http = free_port();
    let config = format!(
        "version: '3'\nserver:\n  command: php {}\nhttp:\n  address: 127.0.0.1:{http}\n  adress_typo: x\n  pool:\n    num_wrokers: 1\n",
        worker()
    );
    std::fs::write(app.path(".rr.yaml"), config).unwrap();
    let server = Server::start(rr().current_dir(&app.dir).arg("serve"));
    server.get(http, "/");
    let (_, err) = server.stop();
    for warning in [
        "config key `http.adress_typo` is not read by this server (misspelt?): did you mean `address`?",
        "config key `http.pool.num_wrokers` is not read by this server (misspelt?): did you mean `num_workers`?",
    ] {
        assert!(err.contains(warning), "{warning}\n{err}");
    }

    std::fs::write(app.path(".rr.yaml"), "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:1\nrpc:\n  listen: tcp://127.0.0.1:2\n").unwrap();
    let out = rr().current_dir(&app.dir).arg("serve").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(".rr.yaml: duplicate key `rpc` at lines 2 and 4"), "{err}");

    let out = rr().args(["serve", "-c"]).arg(&app.dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is a directory, not a config file: pass the file, e.g. `-c "), "{err}");
}

// ---- helpers ----

/// The `rr` these tests start: http, rpc, gzip and static (`src/bin/rr-integrations.rs`).
fn rr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rr-integrations"))
}

fn php() -> String {
    let out = Command::new("sh").args(["-c", "command -v php"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn worker() -> String {
    format!("{}/../php/workers/framework.php", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A project directory.
struct App {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl App {
    fn new() -> App {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        App { _tmp: tmp, dir }
    }

    /// A Symfony project: the config as `.rr.yaml` and under its own name, `public/index.php`
    /// (the front controller the runtime boots), a static file.
    fn symfony(config: &str) -> App {
        let app = App::new();
        std::fs::copy(fixture(config), app.path(".rr.yaml")).unwrap();
        std::fs::copy(fixture(config), app.path(config)).unwrap();
        std::fs::create_dir(app.path("public")).unwrap();
        std::fs::write(app.path("public/index.php"), format!("<?php require '{}';\n", worker())).unwrap();
        std::fs::write(app.path("public/app.css"), "body {}\n").unwrap();
        app
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A running `rr serve` with its stdout and stderr collected.
struct Server {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Server {
    fn start(cmd: &mut Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let collect = |mut stream: Box<dyn Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            text
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Server { child, out, err }
    }

    /// Poll until `ready(stdout, stderr)`; fails with both outputs if rr exits or 20 s pass.
    fn wait_for(&self, what: &str, mut ready: impl FnMut(&str, &str) -> bool) {
        let start = Instant::now();
        loop {
            let (out, err) = (self.out.lock().unwrap().clone(), self.err.lock().unwrap().clone());
            if ready(&out, &err) {
                return;
            }
            let exited = std::fs::metadata(format!("/proc/{}", self.child.id())).is_err() || start.elapsed() > Duration::from_secs(20);
            assert!(!exited, "{what} never came\nstdout:\n{out}\nstderr:\n{err}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `path` once the listener answers; the JSON the framework worker answers with.
    fn get(&self, port: u16, path: &str) -> Value {
        let mut answer = None;
        self.wait_for(&format!("an answer on port {port}"), |_, _| {
            answer = Some(get(port, path)).filter(|(status, _)| *status != 0);
            answer.is_some()
        });
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// SIGTERM, as Symfony's `Process::stop` and `octane:stop` send; rr exits 0. Returns the output.
    fn stop(mut self) -> (String, String) {
        Command::new("kill").arg(self.child.id().to_string()).status().unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "rr did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50)); // let the readers drain the pipes
        let (out, err) = (self.out.lock().unwrap().clone(), self.err.lock().unwrap().clone());
        assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
        (out, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: (status, body); status 0 when nothing answers yet.
fn get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return (0, String::new()) };
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(Value::is_object).collect()
}
