//! The `http` plugin: serves PHP over HTTP/1.1, HTTP/2 (h2c, TLS), HTTP/3 (QUIC) and FastCGI from a pool of persistent
//! workers (`RR_MODE=http`), RoadRunner-compatible (PROTOCOL.md §3).
//!
//! Request flow: listener (`server`) → middleware from `http.middleware`, first listed outermost
//! (RoadRunner v6 order) → `handler`: encode (`request`) → pool exec → decode (`response`).

pub mod acme;
mod access_log;
mod codec_choice;
pub mod config;
#[doc(hidden)]
pub mod decodable;
mod early_hints;
mod fcgi;
mod h2c_upgrade;
mod h3;
pub mod form;
pub mod host;
mod linger;
pub mod proto;
pub mod request;
pub mod response;
mod server;

use std::sync::Arc;

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
    /// Said once its listeners are bound (systemd `READY=1` waits for it).
    serving: rr_runtime::services::Starting,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "http";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(cfg) = ctx.section::<Config>("http")? else { return Ok(None) };
        if cfg.address.is_none() && cfg.ssl.is_none() && cfg.fcgi.is_none() && cfg.http3.is_none() {
            return Err("unable to run http service, no method has been specified: set `http.address` (e.g. 127.0.0.1:8080), `http.ssl`, `http.fcgi.address` or `http.http3`".into());
        }
        if !(100..=599).contains(&cfg.internal_error_code) {
            return Err(format!("config key `http.internal_error_code`: {} is not an HTTP status code", cfg.internal_error_code).into());
        }
        // ACME's certificates come in `serve`; an empty resolver stands in for the checks.
        let acme_certs = cfg.ssl.as_ref().and_then(|ssl| ssl.acme.as_ref()).map(|acme| acme.check().map(|()| Arc::new(rustls::server::ResolvesServerCertUsingSni::new()) as _)).transpose()?;
        if let Some(ssl) = &cfg.ssl {
            server::tls_acceptor(ssl, acme_certs.clone())?;
        }
        if let Some(http3) = &cfg.http3 {
            h3::resolver(http3, acme_certs)?;
        }
        Ok(Some(Plugin { cfg: Arc::new(cfg), services: ctx.services.clone(), pool: Default::default(), shards: Default::default(), serving: ctx.services.lifecycle.starting() }))
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
        // The ACME order loop starts first; the listeners answer its challenges.
        let acme_cfg = self.cfg.ssl.as_ref().and_then(|s| s.acme.as_ref());
        let (acme, first_cert) = acme_cfg.map(|a| acme::start(a, shutdown.clone())).transpose()?.unzip();
        let http01 = acme.clone().filter(|a| a.challenge == acme::Challenge::Http01);
        let mut servers = Vec::new();
        // Bound first: the TCP listeners advertise its port (not FastCGI, whose client is a proxy).
        let tcp_handler = match &self.cfg.http3 {
            Some(http3) => {
                // On the first I/O thread, beside its share of the workers.
                let endpoint = {
                    let _on = homes.first().map(|rt| rt.enter());
                    h3::bind(http3, h3::resolver(http3, acme.as_ref().map(|a| a.resolver()))?)?
                };
                let address = endpoint.local_addr()?;
                tracing::info!(target: "http", %address, "http3 server listening");
                let run = h3::run(endpoint, handler.clone(), cfg.max_header_bytes, shutdown.clone(), drain);
                servers.push(match homes.first() {
                    Some(rt) => rt.spawn(run),
                    None => tokio::spawn(run),
                });
                h3::advertise(handler.clone(), address.port())
            }
            None => handler.clone(),
        };
        // (address, its config key, TLS, handler, routed) per listener; `routed`: other plugins'
        // routes are served there (not where plain HTTP only redirects to HTTPS, nor on ACME's own).
        let mut listeners = Vec::new();
        if let Some(address) = &self.cfg.address {
            let routed = redirect_port.is_none();
            let plain = match redirect_port {
                Some(port) => redirect_handler(port),
                None => tcp_handler.clone(),
            };
            let plain = match &http01 {
                Some(acme) => acme::challenge::http01(acme.clone(), plain),
                None => plain,
            };
            listeners.push((address.clone(), "http.address", None, plain, routed));
        }
        let tls = self.cfg.ssl.as_ref().map(|ssl| server::tls_acceptor(ssl, acme.as_ref().map(|a| a.resolver()))).transpose()?;
        if let (Some(ssl), Some(tls)) = (&self.cfg.ssl, &tls) {
            listeners.push((ssl.address.clone(), "http.ssl.address", Some(tls.clone()), tcp_handler.clone(), true));
        }
        // A challenge port that no listener above has gets a listener of its own, on all
        // interfaces as certmagic's (RoadRunner).
        if let (Some(acme), Some(acme_cfg)) = (&acme, acme_cfg) {
            let (port, key, tls, answer) = acme::challenge::listener(acme, acme_cfg, tls);
            if !listeners.iter().any(|(address, _, t, _, _)| t.is_some() == tls.is_some() && port_of(address) == Some(port)) {
                listeners.push((format!("0.0.0.0:{port}"), key, tls, answer, false));
            }
        }
        if let Some(fcgi) = &self.cfg.fcgi {
            let listener = fcgi::Listener::bind(&fcgi.address).await?;
            tracing::info!(target: "http", address = %listener.describe(), "fcgi server listening");
            let limits = fcgi::Limits { body: cfg.max_body_bytes(), params: cfg.max_header_bytes, stall: Some(cfg.read_header_timeout).filter(|t| !t.is_zero()) };
            servers.push(tokio::spawn(fcgi::run(listener, handler.clone(), limits, shutdown.clone(), drain)));
        }
        // Every plugin initialised before any serves, so the routes are all registered by now.
        let routes: Arc<[rr_runtime::http::Route]> = self.services.http_routes.all().into_iter().map(|(_, r)| r).collect();
        for (address, key, tls, handler, routed) in listeners {
            let routes = if routed { routes.clone() } else { Arc::from([]) };
            let sockets = bind(&address, key, homes.len()).await?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(target: "http", address = %sockets[0].local_addr()?, threads = sockets.len(), "{scheme} server listening");
            for (i, socket) in sockets.into_iter().enumerate() {
                let (cfg, tls, handler, shutdown, routes) = (cfg.clone(), tls.clone(), handler.clone(), shutdown.clone(), routes.clone());
                let h2c = tls.is_none() && cfg.http2.h2c;
                // Registered with the reactor of the runtime that serves it.
                let run = async move {
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(listener) => server::run(server::Listener { listener, tls, h2c, cfg, routes }, handler, shutdown, drain).await,
                        Err(e) => tracing::error!(target: "http", error = %e, "{scheme}: cannot register a listener"),
                    }
                };
                servers.push(match homes.get(i) {
                    Some(rt) => rt.spawn(run),
                    None => tokio::spawn(run),
                });
            }
        }
        self.serving.serving();
        if let Some(first_cert) = first_cert {
            tokio::select! {
                got = first_cert => got.unwrap_or(Ok(()))?,
                _ = shutdown.cancelled() => {}
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

/// The port of a listen address (`host:port`, `:port`, `tcp://host:port`).
fn port_of(address: &str) -> Option<u16> {
    address.rsplit(':').next()?.parse().ok()
}

/// The innermost handler: the request goes to a PHP worker.
fn php_handler(cfg: Arc<Config>, pool: Pool) -> Handler {
    Arc::new(move |req: Request| {
        let (cfg, pool) = (cfg.clone(), pool.clone());
        Box::pin(async move { handle(req, &cfg, &pool).await })
    })
}

async fn handle(req: Request, cfg: &Config, pool: &Pool) -> Response {
    let (record, req) = access_log::Record::begin(req, cfg.access_logs);
    let (method, uri) = (req.method().clone(), req.uri().clone());
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
            // The parser's text may quote the body (a form key): one event, one line.
            tracing::debug!(target: "http", error = %one_line(&text), %method, %uri, "bad request body");
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
    record.finish(resp)
}

/// `text` with CR and LF escaped (`\r`, `\n`), for log fields that quote what a client sent.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\r', '\n']) { text.replace('\r', "\\r").replace('\n', "\\n").into() } else { text.into() }
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
    fn log_fields_stay_on_one_line() {
        assert_eq!(super::one_line("key 'a\r\nforged'"), r"key 'a\r\nforged'");
        assert!(matches!(super::one_line("plain"), std::borrow::Cow::Borrowed("plain")));
    }

    #[test]
    fn a_missing_middleware_section_is_named() {
        let compiled = ["http", "static"];
        assert!(super::missing_middleware("static", &compiled).contains("the `http.static` section is missing"));
        assert!(super::missing_middleware("gzip", &compiled).contains("no plugin compiled into this binary provides it"));
    }
}
