//! The fileserver plugin over real sockets, requests written by hand so hostile paths reach the
//! server exactly as sent: prefixes, index files, ranges, ETags, Cache-Control, gzip, and no path
//! that leaves a root (dot segments, encoded and doubled separators, backslashes, symlinks).

use std::io::Read;
use std::path::Path;

use rr_runtime::testing::{TestServer, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TEXT: &str = "0123456789 the quick brown fox jumps over the lazy dog, again and again and again\n";

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `path` sent verbatim.
async fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    stream.write_all(format!("{head}\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut reply = Reply { status, headers, body: raw[split + 4..].to_vec() };
    if reply.header("transfer-encoding") == Some("chunked") {
        reply.body = dechunk(&reply.body);
    }
    reply
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = raw.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[line + 2..line + 2 + size]);
        raw = &raw[line + 4 + size..];
    }
}

/// A tree: `root/` (served), `root/sub/index.html`, `secret` beside the root, symlinks out of it.
fn tree(dir: &Path) {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), TEXT).unwrap();
    std::fs::write(root.join("sub/index.html"), "<p>index</p>").unwrap();
    std::fs::create_dir_all(dir.join("outside")).unwrap();
    std::fs::write(dir.join("secret"), "secret content").unwrap();
    std::fs::write(dir.join("outside/secret"), "secret content").unwrap();
    std::os::unix::fs::symlink(dir.join("secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(dir.join("outside"), root.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(root.join("a.txt"), root.join("alias.txt")).unwrap();
}

async fn serve(dir: &Path, top: &str) -> (TestServer, u16) {
    let port = free_port();
    let root = dir.join("root");
    let yaml = format!(
        "version: '3'\nfileserver:\n  address: 127.0.0.1:{port}\n{top}  serve:\n\
         \x20   - {{prefix: /assets, root: \"{root}\", bytes_range: true, max_age: 60, compress: true}}\n\
         \x20   - {{prefix: /plain/, root: \"{root}/\"}}\n",
        root = root.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_fileserver::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("the file server", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    (server, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_under_their_prefix() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (server, port) = serve(dir.path(), "").await;
    for path in ["/assets/a.txt", "/ASSETS/a.txt", "/plain/a.txt", "/assets//a.txt", "/assets/./a.txt", "/assets/alias.txt", "/assets/a%2Etxt"] {
        let r = request(port, "GET", path, &[]).await;
        assert_eq!((r.status, r.body.as_slice()), (200, TEXT.as_bytes()), "{path}");
    }
    let r = request(port, "GET", "/assets/a.txt", &[]).await;
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(request(port, "GET", "/plain/a.txt", &[]).await.header("cache-control"), None, "max_age 0: none");
    let r = request(port, "GET", "/assets/sub/", &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<p>index</p>"[..]));
    let r = request(port, "HEAD", "/assets/a.txt", &[]).await;
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some(TEXT.len().to_string().as_str()), 0));

    let r = request(port, "GET", "/assetsx/a.txt", &[]).await;
    assert_eq!((r.status, String::from_utf8_lossy(&r.body).as_ref()), (404, "Cannot GET /assetsx/a.txt"));
    assert_eq!(r.header("cache-control"), None);
    let r = request(port, "POST", "/assets/a.txt", &[("Content-Length", "0")]).await;
    assert_eq!((r.status, String::from_utf8_lossy(&r.body).as_ref()), (404, "Cannot POST /assets/a.txt"));
    assert_eq!(request(port, "GET", "/assets/", &[]).await.status, 404, "a directory without index.html: no listing");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_reads_outside_its_root() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (server, port) = serve(dir.path(), "").await;
    for path in [
        "/assets/../secret",
        "/assets/sub/../../secret",
        "/assets/%2e%2e/secret",
        "/assets/%2E%2E/secret",
        "/assets/..%2fsecret",
        "/assets/%2e%2e%2fsecret",
        "/assets/sub%2f..%2f..%2fsecret",
        "/assets//..//secret",
        "/assets/..\\secret",
        "/assets/%5c..%5csecret",
        "/assets/..%5csecret",
        "/assets/%252e%252e/secret",
        "/assets/link",
        "/assets/linkdir/secret",
        "/assets/%2e%2e/outside/secret",
        "/plain/../outside/secret",
        "/assets/a.txt%00",
        "/../secret",
        "/assets/....//secret",
    ] {
        let r = request(port, "GET", path, &[]).await;
        assert!(!String::from_utf8_lossy(&r.body).contains("secret content"), "{path} leaked the file");
        assert!(r.status == 404 || r.status == 400, "{path}: {}", r.status);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_ranges_only_where_enabled() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (server, port) = serve(dir.path(), "").await;
    let r = request(port, "GET", "/assets/a.txt", &[("Range", "bytes=2-5")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &b"2345"[..]));
    assert_eq!(r.header("content-range"), Some(format!("bytes 2-5/{}", TEXT.len()).as_str()));
    assert_eq!(request(port, "GET", "/assets/a.txt", &[]).await.header("accept-ranges"), Some("bytes"));
    let r = request(port, "GET", "/assets/a.txt", &[("Range", "bytes=0-59"), ("Accept-Encoding", "gzip")]).await;
    assert_eq!((r.status, r.header("content-encoding"), r.body.as_slice()), (206, None, &TEXT.as_bytes()[..60]), "a range is never gzipped");
    let r = request(port, "GET", "/assets/a.txt", &[("Range", "bytes=500-600")]).await;
    assert_eq!(r.status, 416);

    let r = request(port, "GET", "/plain/a.txt", &[("Range", "bytes=2-5")]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, TEXT.as_bytes()), "bytes_range off: the whole file");
    assert_eq!(r.header("accept-ranges"), None);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_where_compress_is_set() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (server, port) = serve(dir.path(), "").await;
    let r = request(port, "GET", "/assets/a.txt", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(r.body.as_slice()).read_to_string(&mut plain).unwrap();
    assert_eq!(plain, TEXT);
    let r = request(port, "GET", "/plain/a.txt", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!((r.header("content-encoding"), r.body.as_slice()), (None, TEXT.as_bytes()));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_strong_and_weak() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    for (top, weak) in [("  calculate_etag: true\n", false), ("  calculate_etag: true\n  weak: true\n", true)] {
        let (server, port) = serve(dir.path(), top).await;
        let r = request(port, "GET", "/plain/a.txt", &[]).await;
        let tag = r.header("etag").expect("an ETag").to_string();
        assert_eq!(tag.starts_with("W/\""), weak, "{tag}");
        assert!(tag.trim_start_matches("W/").starts_with(&format!("\"{}-", TEXT.len())), "{tag}");
        let r = request(port, "GET", "/plain/a.txt", &[("If-None-Match", &tag)]).await;
        assert_eq!((r.status, r.body.len(), r.header("etag")), (304, 0, Some(tag.as_str())));
        let r = request(port, "GET", "/plain/a.txt", &[("If-None-Match", "\"other\", *")]).await;
        assert_eq!(r.status, 304);
        let r = request(port, "GET", "/plain/a.txt", &[("If-None-Match", "\"other\"")]).await;
        assert_eq!(r.status, 200);
        server.stop().await.unwrap();
    }
    let (server, port) = serve(dir.path(), "").await;
    assert_eq!(request(port, "GET", "/plain/a.txt", &[]).await.header("etag"), None, "calculate_etag off");
    server.stop().await.unwrap();
}

#[test]
fn config_errors_name_the_key() {
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_fileserver::Plugin>();
    let err = |section: &str| {
        let yaml = format!("version: '3'\nfileserver:\n{section}");
        rr_runtime::host::Host::init(&build, &rr_runtime::config::Config::from_str(&yaml).unwrap()).err().unwrap().to_string()
    };
    assert!(err("  serve: [{prefix: /a}]\n").contains("`fileserver.address`: required"));
    assert!(err("  address: 127.0.0.1:1\n").contains("`fileserver.serve`: at least one entry"));
    assert!(err("  address: 127.0.0.1:1\n  serve: [{prefix: a}]\n").contains("`fileserver.serve[0].prefix`: `a` must start with `/`"));
    let missing = err("  address: 127.0.0.1:1\n  serve: [{prefix: /a, root: /no/such/dir}]\n");
    assert!(missing.contains("`fileserver.serve[0].root`: `/no/such/dir`"), "{missing}");
    let unknown = err("  address: 127.0.0.1:1\n  serve: [{prefix: /a, bytes_ranges: true}]\n");
    assert!(unknown.contains("bytes_ranges"), "{unknown}");
}
