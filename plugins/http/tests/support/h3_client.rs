// A small HTTP/3 client (quinn + h3) for the HTTP/3 tests and benchmark; `#[path]`-included by both.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

type Stream = h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// One QUIC connection to `localhost:port` that trusts `ca_pem`; clones share it.
#[derive(Clone)]
pub struct H3Client {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    port: u16,
    _endpoint: quinn::Endpoint,
}

/// A response head and its stream, to read the body chunk by chunk.
pub struct Reply {
    pub head: http::Response<()>,
    stream: Stream,
}

impl H3Client {
    pub async fn connect(port: u16, ca_pem: &str) -> anyhow::Result<H3Client> {
        Self::connect_as(port, ca_pem, "localhost").await
    }

    /// As `connect`, checking the certificate against `server_name` instead of localhost.
    pub async fn connect_as(port: u16, ca_pem: &str, server_name: &str) -> anyhow::Result<H3Client> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let mut endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls)?)));
        let conn = endpoint.connect(([127, 0, 0, 1], port).into(), server_name)?.await?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        tokio::spawn(async move { futures::future::poll_fn(|cx| driver.poll_close(cx)).await });
        Ok(H3Client { send, port, _endpoint: endpoint })
    }

    /// The client's own UDP address (what the server sees as its peer).
    #[allow(dead_code)]
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self._endpoint.local_addr().expect("client endpoint address")
    }

    /// `https://localhost:port{path}`.
    pub fn uri(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// Send `req` with `body` and wait for the response head. A server may answer before it has
    /// read the whole body (413) and stop the upload: the answer counts then.
    pub async fn send(&self, req: http::Request<()>, body: Bytes) -> anyhow::Result<Reply> {
        self.send_frames(req, Some(body).filter(|b| !b.is_empty())).await
    }

    /// As `send`, with the body as one DATA frame per piece.
    pub async fn send_frames(&self, req: http::Request<()>, body: impl IntoIterator<Item = Bytes>) -> anyhow::Result<Reply> {
        let mut stream = self.send.clone().send_request(req).await?;
        let sent = async {
            for piece in body {
                stream.send_data(piece).await?;
            }
            stream.finish().await
        }
        .await;
        match stream.recv_response().await {
            Ok(head) => Ok(Reply { head, stream }),
            Err(e) => Err(sent.err().map_or(e.into(), Into::into)),
        }
    }

    /// GET `path`: status and the whole body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(http::StatusCode, Bytes)> {
        let reply = self.send(http::Request::get(self.uri(path)).body(())?, Bytes::new()).await?;
        let status = reply.head.status();
        Ok((status, reply.body().await?))
    }
}

impl Reply {
    /// The next piece of the body as it arrived; `None` at its end.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        Ok(self.stream.recv_data().await?.map(|mut data| data.copy_to_bytes(data.remaining())))
    }

    pub async fn body(mut self) -> anyhow::Result<Bytes> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}
