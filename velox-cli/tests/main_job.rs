//! The README's main job: velox builds `rr` from the root velox.toml, and it serves the hello
//! app in examples/ with its own .rr.yaml (the address moved to a free port with `-o`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

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

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(&rr)
        .args(["serve", "-c", "examples/hello/.rr.yaml", "-o"])
        .arg(format!("http.address=127.0.0.1:{port}"))
        .current_dir(workspace())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let reply = loop {
        if let Some(r) = get(port, "/") {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "rr never answered on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    };
    Command::new("kill").arg(server.id().to_string()).status().unwrap();
    let status = server.wait().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("Hello, World!\n"), "{reply}");
    assert!(status.success(), "graceful stop exits 0: {status}");
}
