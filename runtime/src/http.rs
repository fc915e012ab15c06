//! HTTP types shared by the http plugin and its middleware plugins (`static`, `headers`,
//! `gzip`, `sendfile`, `proxy_ip_parser`, ...). A middleware is RoadRunner's Go `Middleware(next)`,
//! i.e. a tower `Layer` in function form.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::BoxError;

pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
pub type Request = http::Request<Body>;
pub type Response = http::Response<Body>;

/// The next step of the chain: the following middleware, or finally the PHP worker pool.
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Response> + Send + Sync>;

/// A named middleware listed in `http.middleware`.
pub trait Middleware: Send + Sync {
    fn wrap(&self, next: Handler) -> Handler;
}

/// An endpoint another plugin serves on the http plugin's TCP listeners (plain and TLS), ahead of
/// the middleware chain and PHP, so one port serves the app and, say, its WebSockets. The request
/// keeps hyper's upgrade handle in its extensions: a route may answer 101 and take the
/// connection over with `hyper::upgrade::on(&mut request)` (HTTP/1.1 only).
#[derive(Clone)]
pub struct Route {
    /// Paths served: this one and those below it (`/ws` takes `/ws` and `/ws/x`, not `/wsx`).
    pub prefix: String,
    pub handler: Handler,
}

impl Route {
    pub fn matches(&self, path: &str) -> bool {
        let prefix = self.prefix.trim_end_matches('/');
        path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Attributes a middleware attaches to a request (request extension); they reach PHP as
/// `http.v1.Request.attributes` (e.g. `ipAddress` from proxy_ip_parser).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(pub BTreeMap<String, Vec<String>>);

/// Whether `http.middleware` lists `name`: middleware without settings of their own are on then.
/// Read as the http plugin reads it, so `-o http.middleware=static` (a string) counts.
pub fn middleware_listed(config: &crate::config::Config, name: &str) -> bool {
    config.section::<Vec<String>>("http.middleware").ok().flatten().is_some_and(|list| list.iter().any(|m| m == name))
}

/// The client address PHP sees as `remoteAddr` (request extension): the TCP peer, set by the
/// http listener; a middleware that knows better (`proxy_ip_parser`) replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

#[cfg(test)]
mod tests {
    #[test]
    fn a_route_takes_its_path_and_the_paths_below_it() {
        let handler: super::Handler = std::sync::Arc::new(|_| unreachable!());
        for prefix in ["/connection", "/connection/"] {
            let route = super::Route { prefix: prefix.into(), handler: handler.clone() };
            assert!(route.matches("/connection") && route.matches("/connection/websocket"), "{prefix}");
            assert!(!route.matches("/connections") && !route.matches("/") && !route.matches("/other/connection"), "{prefix}");
        }
    }
}
