//! `centrifuge.tls`: the API connection presents the configured client certificate and checks
//! Centrifugo's certificate against the system's roots. A process of its own: it points the
//! system roots (`SSL_CERT_FILE`, read by rustls-native-certs) at a test CA.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use rr_centrifuge::api_proto as api;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

#[path = "support/fake_centrifugo.rs"]
mod fake;

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A CA, and a certificate signed by it for `name` (PEM cert, PEM key).
struct Ca(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Ca(rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap())
    }
    fn pem(&self) -> String {
        self.0.as_ref().pem()
    }
    fn issue(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn php(rpc: &str, calls: Value) -> Vec<Value> {
    let out = Command::new("php").arg(root().join("tests/php/centrifuge_api_client.php")).arg(calls.to_string()).env("RR_RPC", rpc).output().unwrap();
    assert!(out.status.success(), "php failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn serve(api_port: u16, dir: &Path) -> (TestServer, String) {
    let (rpc, proxy) = (free_port(), free_port());
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{proxy}\n  grpc_api_address: tcp://127.0.0.1:{api_port}\n  tls: {{key: {}, cert: {}}}\n  pool: {{num_workers: 1}}\n",
        root().join("tests/php/workers/centrifuge.php").display(),
        dir.join("client.key").display(),
        dir.join("client.pem").display(),
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_centrifuge::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("the proxy listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", proxy)).await.ok() }).await;
    let address = format!("tcp://127.0.0.1:{rpc}");
    server.rpc(&address).await;
    (server, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_certificate_is_presented_and_the_server_checked_against_system_roots() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let (client_cert, client_key) = ca.issue(&["rr-client"]);
    std::fs::write(dir.path().join("client.pem"), client_cert).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key).unwrap();
    // SAFETY: set before any thread of this test process reads the environment for roots;
    // this file holds one test.
    unsafe { std::env::set_var("SSL_CERT_FILE", dir.path().join("ca.pem")) };

    // Centrifugo with a certificate from the trusted CA, requiring a client certificate from it.
    let (server_cert, server_key) = ca.issue(&["127.0.0.1", "localhost"]);
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(&server_cert, &server_key)).client_ca_root(Certificate::from_pem(ca.pem()));
    let (port, received, fake) = fake::fake_centrifugo(Some(tls)).await;
    let (server, rpc) = serve(port, dir.path()).await;
    let publish = api::PublishRequest { channel: "chat".into(), data: b"{}".to_vec(), ..Default::default() };
    let r = php(&rpc, json!([["centrifuge.Publish", STANDARD.encode(publish.encode_to_vec())]]));
    let reply = STANDARD.decode(r[0]["ok"].as_str().unwrap_or_else(|| panic!("{}", r[0]))).unwrap();
    assert_eq!(api::PublishResponse::decode(&reply[..]).unwrap().result.unwrap().offset, 7);
    assert_eq!(received.lock().unwrap().len(), 1);
    server.stop().await.unwrap();
    fake.abort();

    // The same Centrifugo with a certificate from a CA the system does not trust: refused.
    let stranger = Ca::new();
    let (cert, key) = stranger.issue(&["127.0.0.1"]);
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(&cert, &key)).client_ca_root(Certificate::from_pem(ca.pem()));
    let (port, received, fake) = fake::fake_centrifugo(Some(tls)).await;
    let (server, rpc) = serve(port, dir.path()).await;
    let r = php(&rpc, json!([["centrifuge.Publish", STANDARD.encode(publish.encode_to_vec())]]));
    let err = r[0]["error"].as_str().unwrap_or_else(|| panic!("{}", r[0]));
    assert!(err.contains("rpc error: code = Unavailable desc = "), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "the reason is named: {err}");
    assert!(received.lock().unwrap().is_empty());
    server.stop().await.unwrap();
    fake.abort();
}
