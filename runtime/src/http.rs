//! HTTP types shared by the http plugin and its middleware plugins (`static`, `headers`,
//! `gzip`, `sendfile`, `proxy_ip_parser`, ...). A middleware is RoadRunner's Go `Middleware(next)`,
//! i.e. a tower `Layer` in function form.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::plugin::BoxError;

pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
pub type Request = http::Request<Body>;
pub type Response = http::Response<Body>;

/// The next step of the chain: the following middleware, or finally the PHP worker pool.
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Response> + Send + Sync>;

/// A named middleware listed in `http.middleware`.
pub trait Middleware: Send + Sync {
    fn wrap(&self, next: Handler) -> Handler;
}

/// Attributes a middleware attaches to a request (request extension); they reach PHP as
/// `http.v1.Request.attributes` (e.g. `ipAddress` from proxy_ip_parser).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(pub BTreeMap<String, Vec<String>>);

/// Whether `http.middleware` lists `name`: middleware without settings of their own are on then.
pub fn middleware_listed(config: &crate::config::Config, name: &str) -> bool {
    config.value("http.middleware").and_then(|v| v.as_array()).is_some_and(|list| list.iter().any(|m| m == name))
}

/// The client address PHP sees as `remoteAddr` (request extension): the TCP peer, set by the
/// http listener; a middleware that knows better (`proxy_ip_parser`) replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The headers `proxy_ip_parser` reads, in RoadRunner's default order (`http.trusted_headers`).
pub const PROXY_HEADERS: [&str; 5] = ["forwarded", "x-forwarded-for", "x-real-ip", "true-client-ip", "cf-connecting-ip"];

/// The leftmost client address a trusted proxy put in the first of `headers` (lower-case names)
/// that holds one; `None` when none does.
pub fn forwarded_client(headers: &http::HeaderMap, names: &[String]) -> Option<IpAddr> {
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
