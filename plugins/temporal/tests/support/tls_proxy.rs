//! Temporal Cloud's side of a connection, in front of the dev server (which takes neither TLS
//! nor API keys): a TLS listener that demands a client certificate from its own CA, decodes
//! the HTTP/2 (gRPC) requests, records each request's `authorization` header, and forwards the
//! requests and their answers over plain HTTP/2 to the dev server.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use h2::{RecvStream, SendStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// PEM files of one certificate and its key.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A CA that signs the proxy's certificate and the client's.
pub struct Ca(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl Ca {
    /// A CA named `name` (two CAs of one name would be told apart only by their signatures).
    pub fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Ca(rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap())
    }

    pub fn pem(&self) -> String {
        self.0.pem()
    }

    pub fn issue(&self, name: &str) -> Pem {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().signed_by(&key, &self.0).unwrap();
        Pem { cert: cert.pem(), key: key.serialize_pem() }
    }
}

pub struct Proxy {
    pub address: String,
    /// The `authorization` header of every request so far ("" when a request had none).
    pub authorizations: Arc<Mutex<Vec<String>>>,
}

/// A proxy on a free port with the certificate `server` (signed by `ca`) that requires client
/// certificates signed by `ca`, forwarding to the plain HTTP/2 server at `upstream`.
pub async fn start(ca: &Ca, server: &Pem, upstream: &str) -> Proxy {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from_pem_slice(server.cert.as_bytes()).unwrap()], PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let authorizations: Arc<Mutex<Vec<String>>> = Arc::default();
    let (seen, upstream) = (authorizations.clone(), upstream.to_string());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen, upstream) = (acceptor.clone(), seen.clone(), upstream.clone());
            tokio::spawn(async move {
                // A failed handshake (no or a foreign client certificate) just ends the connection.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = serve(tls, &upstream, seen).await;
                }
            });
        }
    });
    Proxy { address, authorizations }
}

/// One client connection: each of its streams forwarded on one upstream connection.
async fn serve(tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>, upstream: &str, seen: Arc<Mutex<Vec<String>>>) -> Result<(), Error> {
    let mut incoming = h2::server::handshake(tls).await?;
    let (client, connection) = h2::client::handshake(tokio::net::TcpStream::connect(upstream).await?).await?;
    tokio::spawn(connection);
    while let Some(request) = incoming.accept().await {
        let (request, respond) = request?;
        let authorization = request.headers().get("authorization").map(|v| String::from_utf8_lossy(v.as_bytes()).to_string());
        seen.lock().unwrap().push(authorization.unwrap_or_default());
        let client = client.clone();
        tokio::spawn(async move {
            let _ = forward(request, respond, client).await;
        });
    }
    Ok(())
}

async fn forward(request: http::Request<RecvStream>, mut respond: h2::server::SendResponse<Bytes>, client: h2::client::SendRequest<Bytes>) -> Result<(), Error> {
    let (parts, body) = request.into_parts();
    let mut client = client.ready().await?;
    let end = body.is_end_stream();
    let (response, upload) = client.send_request(http::Request::from_parts(parts, ()), end)?;
    if !end {
        tokio::spawn(pipe(body, upload));
    }
    let (parts, body) = response.await?.into_parts();
    let end = body.is_end_stream();
    let download = respond.send_response(http::Response::from_parts(parts, ()), end)?;
    if !end {
        pipe(body, download).await?;
    }
    Ok(())
}

/// A stream's data and trailers (gRPC's status travels in them).
async fn pipe(mut from: RecvStream, mut to: SendStream<Bytes>) -> Result<(), h2::Error> {
    while let Some(data) = from.data().await {
        let data = data?;
        let _ = from.flow_control().release_capacity(data.len());
        to.send_data(data, false)?;
    }
    match from.trailers().await? {
        Some(trailers) => to.send_trailers(trailers),
        None => to.send_data(Bytes::new(), true),
    }
}
