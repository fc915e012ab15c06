//! The `http` plugin: serves PHP over HTTP/1.1, HTTP/2 (h2c, TLS) and FastCGI from a pool of persistent
//! workers (`RR_MODE=http`), RoadRunner-compatible (PROTOCOL.md §3).
//!
//! Request flow: listener (`server`) → middleware from `http.middleware`, first listed outermost
//! (RoadRunner v6 order) → `handler`: encode (`request`) → pool exec → decode (`response`).

mod codec_choice;
pub mod config;
#[doc(hidden)]
pub mod decodable;
mod early_hints;
mod fcgi;
mod h2c_upgrade;
pub mod form;
pub mod host;
mod linger;
pub mod proto;
pub mod request;
pub mod response;
mod server;

use std::sync::Arc;
use std::time::Instant;

use rr_runtime::http::{Handler, Request, Response};
use rr_runtime::pool::Pool;
use rr_runtime::shards;
use rr_runtime::{BoxError, InitContext, Services};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub struct Plugin {
    cfg: Arc<Config>,
    services: Arc<Services>,
    pool: tokio::sync::OnceCell<Pool>,
    shards: std::sync::Mutex<Option<shards::Shards>>,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "http";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(cfg) = ctx.section::<Config>("http")? else { return Ok(None) };
        if cfg.address.is_none() && cfg.ssl.is_none() && cfg.fcgi.is_none() {
            return Err("unable to run http service, no method has been specified: set `http.address` (e.g. 127.0.0.1:8080), `http.ssl` or `http.fcgi.address`".into());
        }
        if !(100..=599).contains(&cfg.internal_error_code) {
            return Err(format!("config key `http.internal_error_code`: {} is not an HTTP status code", cfg.internal_error_code).into());
        }
        if let Some(ssl) = &cfg.ssl {
            server::tls_acceptor(ssl)?;
        }
        Ok(Some(Plugin { cfg: Arc::new(cfg), services: ctx.services.clone(), pool: Default::default(), shards: Default::default() }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let cfg = Arc::new(Config { codec: self.codec().await, ..(*self.cfg).clone() });
        let shards = shards::Shards::start("http", shards::count(self.cfg.pool.effective_workers()))?;
        let homes = shards.handles();
        *self.shards.lock().unwrap() = Some(shards);
        let pool = self.services.new_pool_on("http", "http", self.cfg.pool.clone(), homes.clone()).await?;
        let _ = self.pool.set(pool.clone());
        let handler = self.chain(php_handler(cfg.clone(), pool));
        let drain = self.cfg.pool.destroy_timeout;
        let redirect_port = self.cfg.ssl.as_ref().filter(|s| s.redirect).map(|s| s.address.rsplit(':').next().unwrap_or("443").to_string());
        // (address, its config key, TLS, handler) per listener.
        let mut listeners = Vec::new();
        if let Some(address) = &self.cfg.address {
            let plain = match redirect_port {
                Some(port) => redirect_handler(port),
                None => handler.clone(),
            };
            listeners.push((address.as_str(), "http.address", None, plain));
        }
        if let Some(ssl) = &self.cfg.ssl {
            listeners.push((ssl.address.as_str(), "http.ssl.address", Some(server::tls_acceptor(ssl)?), handler.clone()));
        }
        let mut servers = Vec::new();
        if let Some(fcgi) = &self.cfg.fcgi {
            let listener = fcgi::Listener::bind(&fcgi.address).await?;
            tracing::info!(target: "http", address = %listener.describe(), "fcgi server listening");
            let limits = fcgi::Limits { body: cfg.max_body_bytes(), params: cfg.max_header_bytes };
            servers.push(tokio::spawn(fcgi::run(listener, handler.clone(), limits, shutdown.clone(), drain)));
        }
        for (address, key, tls, handler) in listeners {
            let sockets = bind(address, key, homes.len()).await?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(target: "http", address = %sockets[0].local_addr()?, threads = sockets.len(), "{scheme} server listening");
            for (i, socket) in sockets.into_iter().enumerate() {
                let (cfg, tls, handler, shutdown) = (cfg.clone(), tls.clone(), handler.clone(), shutdown.clone());
                let h2c = tls.is_none() && cfg.http2.h2c;
                // Registered with the reactor of the runtime that serves it.
                let run = async move {
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(listener) => server::run(server::Listener { listener, tls, h2c, cfg }, handler, shutdown, drain).await,
                        Err(e) => tracing::error!(target: "http", error = %e, "{scheme}: cannot register a listener"),
                    }
                };
                servers.push(match homes.get(i) {
                    Some(rt) => rt.spawn(run),
                    None => tokio::spawn(run),
                });
            }
        }
        for s in servers {
            let _ = s.await;
        }
        Ok(())
    }

    async fn stop(&self) -> Result<(), BoxError> {
        if let Some(pool) = self.pool.get() {
            pool.destroy().await;
        }
        // The workers are gone: their I/O threads may end now.
        self.shards.lock().unwrap().take();
        Ok(())
    }
}

impl Plugin {
    /// `http.codec` resolved for the pool's command, the choice logged with its reason.
    async fn codec(&self) -> config::Codec {
        let server = self.services.server.config.as_ref();
        let command = self.cfg.pool.command.as_ref().or(server.map(|s| &s.command)).map(|c| c.args()).unwrap_or_default();
        let cwd = std::env::current_dir().unwrap_or_default();
        let env = server.map(|s| s.env.clone()).unwrap_or_default();
        let choice = codec_choice::choose(self.cfg.codec, &command, &cwd, &env).await;
        tracing::info!(target: "http", codec = ?choice.codec, "requests are sent to PHP as {}: {}", if choice.codec == config::Codec::Json { "JSON" } else { "protobuf" }, choice.why);
        choice.codec
    }

    /// Wrap the PHP handler in the listed middleware; the first listed is the outermost.
    fn chain(&self, php: Handler) -> Handler {
        let mut handler = php;
        for name in self.cfg.middleware.iter().rev() {
            match self.services.http_middleware.get(name) {
                Some(mw) => handler = mw.wrap(handler),
                None => tracing::warn!(target: "http", middleware = %name, "{}", missing_middleware(name, &self.services.compiled)),
            }
        }
        handler
    }
}

/// Why a listed middleware is not there: the plugin is not in this binary, or it is but was not
/// enabled because its section (`http.static`, `http.headers`) is missing.
fn missing_middleware(name: &str, compiled: &[&str]) -> String {
    if compiled.contains(&name) {
        format!("http.middleware lists `{name}`, but the `http.{name}` section is missing, so the `{name}` plugin is not enabled; add the section (see docs/HTTP.md); skipped")
    } else {
        format!("http.middleware lists `{name}`, but no plugin compiled into this binary provides it; skipped")
    }
}

/// `address` bound once per I/O thread (once without shard threads).
async fn bind(address: &str, key: &str, threads: usize) -> Result<Vec<std::net::TcpListener>, BoxError> {
    let address = address.strip_prefix("tcp://").unwrap_or(address);
    let address = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_string() };
    shards::bind(&address, threads).await.map_err(|e| format!("config key `{key}`: cannot listen on `{address}`: {e}").into())
}

/// The innermost handler: the request goes to a PHP worker.
fn php_handler(cfg: Arc<Config>, pool: Pool) -> Handler {
    Arc::new(move |req: Request| {
        let (cfg, pool) = (cfg.clone(), pool.clone());
        Box::pin(async move { handle(req, &cfg, &pool).await })
    })
}

async fn handle(req: Request, cfg: &Config, pool: &Pool) -> Response {
    let started = Instant::now();
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let remote = req.extensions().get::<rr_runtime::http::ClientAddr>().map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0);
    let debug = pool.config().debug;
    // 1xx may go to HTTP/1.1 clients only (RFC 9110 §15.2); hyper's HTTP/2 server cannot send them.
    let hints = req.extensions().get::<early_hints::EarlyHints>().filter(|_| req.version() == http::Version::HTTP_11).cloned();
    let unread = req.extensions().get::<linger::UnreadBody>().cloned();
    let prepared = request::prepare(req, cfg).await;
    // Refused bodies are not read to their end: the connection must linger before it closes.
    if let (Err(_), Some(unread)) = (&prepared, unread) {
        unread.mark();
    }
    let resp = match prepared {
        Err(request::RequestError::TooLarge) => response::error_response(413, None),
        Err(request::RequestError::BadBody(text)) => {
            tracing::debug!(target: "http", error = %text, %method, %uri, "bad request body");
            response::error_response(400, debug.then_some(text))
        }
        Ok(prepared) => match pool.exec(prepared.payload).await {
            Ok(reply) => match response::build(reply, prepared.uploads, hints, method == http::Method::HEAD).await {
                Ok(resp) => resp,
                Err(text) => {
                    tracing::error!(target: "http", error = %text, "invalid response from worker");
                    response::error_response(500, debug.then_some(text))
                }
            },
            Err(e) => {
                tracing::error!(target: "http", error = %e, %method, %uri, "request failed");
                response::error_response(cfg.internal_error_code, debug.then(|| e.to_string()))
            }
        },
    };
    // RoadRunner's line (info, these field names, `elapsed` in ms): Laravel Octane prints a
    // request from each `http log` line it reads on rr's stdout.
    let (status, elapsed) = (resp.status().as_u16(), started.elapsed().as_millis() as u64);
    let message = if cfg.access_logs { "http access log" } else { "http log" };
    tracing::info!(target: "http", status, %method, URI = %uri, remote_address = %remote, elapsed, "{message}");
    resp
}

/// `ssl.redirect`: the plain listener answers 308 to the https URL.
fn redirect_handler(port: String) -> Handler {
    Arc::new(move |req: Request| {
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let host = host.split(':').next().unwrap_or(host);
        let port = if port == "443" { String::new() } else { format!(":{port}") };
        let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let location = format!("https://{host}{port}{path}");
        let mut resp = response::error_response(308, None);
        if let Ok(v) = http::HeaderValue::from_str(&location) {
            resp.headers_mut().insert(http::header::LOCATION, v);
        }
        resp.headers_mut().insert(
            http::header::STRICT_TRANSPORT_SECURITY,
            http::HeaderValue::from_static("max-age=31536000; includeSubDomains; preload"),
        );
        Box::pin(async move { resp })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_middleware_section_is_named() {
        let compiled = ["http", "static"];
        assert!(super::missing_middleware("static", &compiled).contains("the `http.static` section is missing"));
        assert!(super::missing_middleware("gzip", &compiled).contains("no plugin compiled into this binary provides it"));
    }
}
