//! `rr serve` as a system service with a real PHP HTTP worker (docs/OPERATIONS.md): SIGUSR2
//! re-executes the server in place with the config as it now is, and a second stop signal
//! forces the exit.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigusr2_serves_again_with_the_new_config_in_the_same_process() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(dir.path(), port, "");
    let mut server = start(dir.path());
    let pid = server.0.id();
    let (status, head, _) = wait_for_http(port, "/big");
    assert_eq!(status, 200);
    assert!(!head.contains("content-encoding: gzip"), "no gzip middleware yet: {head}");
    let old_worker = wait_for_http(port, "/pid").2;
    let fds = open_fds(pid);

    // The new release: gzip on. SIGUSR2 stops gracefully and executes rr again.
    write_config(dir.path(), port, "  middleware: [gzip]\n");
    Command::new("kill").args(["-USR2", &pid.to_string()]).status().unwrap();
    let start = Instant::now();
    loop {
        let (status, _, worker) = get(port, "/pid");
        if status == 200 && worker != old_worker {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no new worker answers after SIGUSR2");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, head, _) = get(port, "/big");
    assert_eq!(status, 200);
    assert!(head.contains("content-encoding: gzip"), "the new config is served: {head}");
    assert!(server.0.try_wait().unwrap().is_none(), "the same process goes on");
    assert_eq!(std::fs::read_to_string(dir.path().join(".pid")).unwrap(), pid.to_string(), "same pid");
    assert!(gone(&old_worker), "the old worker was stopped, not left behind");
    // Close-on-exec: no listener, worker pipe or file of the old image lives on in the new one.
    assert!(fds.contains(&"tcp listener".to_string()), "{fds:?}");
    assert_eq!(open_fds(pid), fds, "the same descriptors as after the first start");

    Command::new("kill").arg(pid.to_string()).status().unwrap();
    assert!(wait_exit(&mut server.0, Duration::from_secs(20)).expect("stops on SIGTERM").success());
    let mut out = String::new();
    server.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("restart signal [SIGUSR2] received"), "{out}");
}

#[test]
fn a_second_stop_signal_forces_the_exit_with_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(dir.path(), port, "");
    let mut server = start(dir.path());
    let worker = wait_for_http(port, "/pid").2;
    // A request that holds the graceful stop up for 30 s.
    let slow = std::thread::spawn(move || get(port, "/sleep?ms=30000"));
    std::thread::sleep(Duration::from_secs(1));
    let pid = server.0.id().to_string();
    Command::new("kill").arg(&pid).status().unwrap();
    // Two signals close together are one to the kernel: wait until rr has taken the first.
    let mut out = std::io::BufReader::new(server.0.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("stop signal received") {
        assert_ne!(std::io::BufRead::read_line(&mut out, &mut printed).unwrap(), 0, "{printed}");
    }
    assert!(printed.contains("stop signal received, grace timeout is: 30 seconds"), "{printed}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.0.try_wait().unwrap().is_none(), "the graceful stop waits for the request");
    Command::new("kill").arg(&pid).status().unwrap();
    let status = wait_exit(&mut server.0, Duration::from_secs(10)).expect("the second signal ends rr at once");
    assert_eq!(status.code(), Some(1), "RoadRunner's exit code for a forced exit");
    out.read_to_string(&mut printed).unwrap();
    assert!(printed.ends_with("exit forced\n"), "{printed}");
    let start = Instant::now();
    while !gone(&worker) && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone(&worker), "the busy worker is killed with it");
    let _ = slow.join();
}

/// `READY=1` means the server answers: the http workers are up and its port is bound.
#[test]
fn ready_comes_once_http_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(dir.path(), port, "");
    let notify = std::os::unix::net::UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rr-integrations"))
        .args(["serve", "-c", ".rr.yaml"])
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", dir.path().join("notify.sock"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("READY=1 within 20 s");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim_end(), "READY=1");
    // No retry: the first request after READY=1 is answered by PHP.
    let (status, _, body) = get(port, "/");
    assert_eq!(status, 200, "READY=1 came before the http port answered");
    assert!(!body.is_empty());
}

/// `rr reset` as systemd's `ExecReload`: `RELOADING=1`, the workers replaced, `READY=1`.
#[test]
fn reset_tells_systemd_it_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let (port, rpc) = (free_port(), free_port());
    write_config(dir.path(), port, "");
    let config = std::fs::read_to_string(dir.path().join(".rr.yaml")).unwrap();
    std::fs::write(dir.path().join(".rr.yaml"), format!("{config}rpc:\n  listen: tcp://127.0.0.1:{rpc}\n")).unwrap();
    let _server = start(dir.path());
    let old_worker = wait_for_http(port, "/pid").2;
    let notify = std::os::unix::net::UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reset = Command::new(env!("CARGO_BIN_EXE_rr-integrations"))
        .args(["reset", "-c", ".rr.yaml"])
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", dir.path().join("notify.sock"))
        .output()
        .unwrap();
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let next = || {
        let mut buf = [0u8; 64];
        let n = notify.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
    };
    assert_eq!((next(), next()), ("RELOADING=1".to_string(), "READY=1".to_string()));
    assert_ne!(wait_for_http(port, "/pid").2, old_worker, "the workers were replaced");
}

fn write_config(dir: &Path, port: u16, middleware: &str) {
    let worker = format!("{}/../php/workers/http.php", env!("CARGO_MANIFEST_DIR"));
    let config = format!(
        "version: '3'\nserver:\n  command: php {worker}\nlogs:\n  mode: off\nhttp:\n  address: 127.0.0.1:{port}\n{middleware}  pool:\n    num_workers: 1\n    destroy_timeout: 60s\n"
    );
    std::fs::write(dir.join(".rr.yaml"), config).unwrap();
}

/// `rr serve -p` in `dir`, as a service manager starts it; killed if the test fails.
fn start(dir: &Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_rr-integrations"))
        .args(["serve", "-p", "-c", ".rr.yaml"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Server(child)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// No such process, or only its zombie (whoever inherited it has not reaped it yet).
fn gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
}

/// The descriptors of a process, by what they point at; TCP sockets as listeners or not at all
/// (a connection just answered may still be closing), other sockets by kind.
fn open_fds(pid: u32) -> Vec<String> {
    // inode → state (0A: listening) of every TCP socket the process can see.
    let mut tcp = std::collections::HashMap::new();
    for table in ["tcp", "tcp6"] {
        for line in std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default().lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 {
                tcp.insert(cols[9].to_string(), cols[3].to_string());
            }
        }
    }
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy();
            let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) else {
                return Some(t.split_once(":[").map_or(t.to_string(), |(kind, _)| kind.to_string()));
            };
            match tcp.get(inode).map(String::as_str) {
                Some("0A") => Some("tcp listener".to_string()),
                Some(_) => None,
                None => Some("socket".to_string()),
            }
        })
        .collect();
    fds.sort();
    fds
}

/// GET until the server answers (it is (re)starting), at most 20 s.
fn wait_for_http(port: u16, path: &str) -> (u16, String, String) {
    let start = Instant::now();
    loop {
        let response = get(port, path);
        if response.0 != 0 {
            return response;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no answer on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Status, lowercased head and body of one `Connection: close` request; status 0 when nothing
/// answered.
fn get(port: u16, path: &str) -> (u16, String, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new(), String::new()) };
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new(), String::new());
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else { return (0, String::new(), String::new()) };
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, String::from_utf8_lossy(&response[split + 4..]).into_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
