//! The listening socket of one `tcp.servers` entry: TCP or a unix socket.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, UnixListener};

pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Connections the kernel queues until accepted (it caps this at `net.core.somaxconn`). A burst
/// of hundreds of connects overflows a small queue, and an overflowed connect waits for the
/// client's next packet; Go listens with somaxconn too.
const BACKLOG: u32 = 4096;

fn listen(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

impl Listener {
    /// Bind `addr` of server `name`; the error names the key and the address.
    pub async fn bind(name: &str, addr: &str) -> Result<Listener, String> {
        let fail = |e: std::io::Error| format!("config key `tcp.servers.{name}.addr`: cannot listen on `{addr}`: {e}");
        if let Some(path) = addr.strip_prefix("unix://") {
            // A socket file left by an earlier run would make bind fail.
            let _ = std::fs::remove_file(path);
            return UnixListener::bind(path).map(Listener::Unix).map_err(fail);
        }
        let host_port = addr.strip_prefix("tcp://").unwrap_or(addr);
        let host_port = if host_port.starts_with(':') { format!("0.0.0.0{host_port}") } else { host_port.to_string() };
        let mut last = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address");
        for address in tokio::net::lookup_host(&host_port).await.map_err(fail)? {
            match listen(address) {
                Ok(listener) => return Ok(Listener::Tcp(listener)),
                Err(e) => last = e,
            }
        }
        Err(fail(last))
    }

    /// The next connection and its peer address (`ip:port`; a unix peer has none: empty).
    pub async fn accept(&self) -> std::io::Result<(Box<dyn Stream>, String)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((Box::new(stream), peer.to_string()))
            }
            Listener::Unix(l) => {
                let (stream, _) = l.accept().await?;
                Ok((Box::new(stream), String::new()))
            }
        }
    }

    pub fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(l) => l.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string())).unwrap_or_default(),
        }
    }
}
