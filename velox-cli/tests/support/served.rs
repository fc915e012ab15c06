//! What the velox tests that run a built `rr` share: the workspace root, a free port and one
//! plain HTTP/1.1 GET; `#[path]`-included by each.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The whole reply to `GET path` on 127.0.0.1:`port`, or None while nothing answers.
pub fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Serve examples/hello with `rr` on a free port until it answers `GET /` (30 s at most), then
/// stop it with SIGTERM: its reply and how it exited.
pub fn serve_hello(rr: &Path) -> (String, std::process::ExitStatus) {
    use std::process::{Command, Stdio};
    let port = free_port();
    let mut server = Command::new(rr)
        .args(["serve", "-c", "examples/hello/.rr.yaml", "-o"])
        .arg(format!("http.address=127.0.0.1:{port}"))
        .current_dir(workspace())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let reply = loop {
        if let Some(r) = get(port, "/") {
            break r;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = server.kill();
            panic!("rr never answered on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Command::new("kill").arg(server.id().to_string()).status().unwrap();
    (reply, server.wait().unwrap())
}
