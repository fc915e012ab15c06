//! The `proxy_ip_parser` middleware (RoadRunner's name and keys): when the TCP peer is in
//! `http.trusted_subnets`, the leftmost address of the first of `http.trusted_headers` that holds
//! one becomes the `remoteAddr` PHP sees. An untrusted peer cannot claim another address. Like
//! RoadRunner, it is on only when `http.middleware` lists it.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use rr_runtime::http::{ClientAddr, Handler, Middleware, Request};
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

/// The headers `proxy_ip_parser` reads, in RoadRunner's default order (`http.trusted_headers`).
const PROXY_HEADERS: [&str; 5] = ["forwarded", "x-forwarded-for", "x-real-ip", "true-client-ip", "cf-connecting-ip"];

/// The leftmost client address a trusted proxy put in the first of `headers` (lower-case names)
/// that holds one; `None` when none does.
fn forwarded_client(headers: &http::HeaderMap, names: &[String]) -> Option<IpAddr> {
    names.iter().find_map(|name| {
        let value = headers.get(name.as_str())?.to_str().ok()?;
        let first = value.split(',').next()?.trim();
        if name == "forwarded" { forwarded_for(first) } else { first.parse().ok() }
    })
}

/// RFC 7239 `for=` of one `Forwarded` element: `for=192.0.2.1`, `for="[2001:db8::1]:80"`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        if !k.eq_ignore_ascii_case("for") {
            return None;
        }
        let v = v.trim_matches('"');
        let v = v.strip_prefix('[').and_then(|s| s.split(']').next()).unwrap_or(v);
        v.parse().ok().or_else(|| v.rsplit_once(':')?.0.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_client_takes_the_first_header_in_order_and_its_leftmost_address() {
        let names: Vec<String> = PROXY_HEADERS.iter().map(|s| s.to_string()).collect();
        let mut h = http::HeaderMap::new();
        h.insert("x-real-ip", "198.51.100.2".parse().unwrap());
        assert_eq!(forwarded_client(&h, &names), Some("198.51.100.2".parse().unwrap()));
        h.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        assert_eq!(forwarded_client(&h, &names), Some("203.0.113.7".parse().unwrap()));
        h.insert("forwarded", "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.1".parse().unwrap());
        assert_eq!(forwarded_client(&h, &names), Some("2001:db8::1".parse().unwrap()));
        h.insert("forwarded", "for=unknown".parse().unwrap());
        assert_eq!(forwarded_client(&h, &names), Some("203.0.113.7".parse().unwrap()), "an unusable header is skipped");
        assert_eq!(forwarded_client(&h, &["cf-connecting-ip".to_string()]), None);
    }
}
