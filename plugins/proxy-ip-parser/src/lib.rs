//! The `proxy_ip_parser` middleware (RoadRunner's name and keys): when the TCP peer is in
//! `http.trusted_subnets`, the leftmost address of the first of `http.trusted_headers` that holds
//! one becomes the `remoteAddr` PHP sees. An untrusted peer cannot claim another address. Like
//! RoadRunner, it is on only when `http.middleware` lists it.

use std::sync::Arc;

use ipnet::IpNet;
use rr_runtime::http::{ClientAddr, Handler, Middleware, PROXY_HEADERS, Request, forwarded_client};
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;

/// RoadRunner's documented list: loopback and the private ranges.
const DEFAULT_TRUSTED: [&str; 7] = ["10.0.0.0/8", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7", "fe80::/10"];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    trusted_subnets: Option<Vec<String>>,
    trusted_headers: Option<Vec<String>>,
}

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "proxy_ip_parser";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::http::middleware_listed(ctx.config, "proxy_ip_parser") {
            return Ok(None);
        }
        let cfg = ctx.section::<Config>("http")?.unwrap_or_default();
        let subnets = cfg.trusted_subnets.unwrap_or_else(|| DEFAULT_TRUSTED.iter().map(|s| s.to_string()).collect());
        let trusted = subnets
            .iter()
            .map(|s| s.parse::<IpNet>().map_err(|e| format!("config key `http.trusted_subnets`: `{s}` is not a CIDR subnet ({e}); write e.g. 10.0.0.0/8")))
            .collect::<Result<Vec<_>, _>>()?;
        let headers: Vec<String> = match cfg.trusted_headers {
            Some(names) => names.iter().map(|h| h.to_ascii_lowercase()).collect(),
            None => PROXY_HEADERS.iter().map(|h| h.to_string()).collect(),
        };
        if let Some(bad) = headers.iter().find(|h| http::HeaderName::from_bytes(h.as_bytes()).is_err()) {
            return Err(format!("config key `http.trusted_headers`: `{bad}` is not a header name").into());
        }
        let parser = ProxyIpParser { trusted: Arc::new(trusted), headers: Arc::new(headers) };
        ctx.services.http_middleware.register("proxy_ip_parser", Arc::new(parser) as Arc<dyn Middleware>);
        Ok(Some(Plugin))
    }
}

struct ProxyIpParser {
    trusted: Arc<Vec<IpNet>>,
    headers: Arc<Vec<String>>,
}

impl Middleware for ProxyIpParser {
    fn wrap(&self, next: Handler) -> Handler {
        let (trusted, headers) = (self.trusted.clone(), self.headers.clone());
        Arc::new(move |mut req: Request| {
            let peer = req.extensions().get::<ClientAddr>().map(|c| c.0);
            if peer.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
                && let Some(client) = forwarded_client(req.headers(), &headers)
            {
                req.extensions_mut().insert(ClientAddr(client));
            }
            next(req)
        })
    }
}
