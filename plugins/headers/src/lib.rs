//! The `headers` middleware: fixed `request` headers added before PHP, `response` headers added
//! to every answer, and CORS (`http.headers.cors`): preflight `OPTIONS` answered here with
//! `options_success_status` (200), `Access-Control-*` headers and `Vary: Origin` on the rest.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Empty};
use rr_runtime::http::{Handler, Middleware, Request};
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub request: BTreeMap<String, String>,
    pub response: BTreeMap<String, String>,
    pub cors: Option<Cors>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Cors {
    /// Comma-separated origins, or `*`.
    pub allowed_origin: String,
    pub allowed_headers: String,
    pub allowed_methods: String,
    pub allow_credentials: bool,
    pub exposed_headers: String,
    pub max_age: u64,
    pub options_success_status: u16,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            allowed_origin: "*".into(),
            allowed_headers: "*".into(),
            allowed_methods: "GET,POST,PUT,PATCH,DELETE,OPTIONS".into(),
            allow_credentials: false,
            exposed_headers: String::new(),
            max_age: 0,
            options_success_status: 200,
        }
    }
}

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "headers";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(config) = ctx.section::<Config>("http.headers")? else { return Ok(None) };
        let parse = |map: &BTreeMap<String, String>, key: &str| -> Result<HeaderMap, BoxError> {
            let mut out = HeaderMap::new();
            for (k, v) in map {
                let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("config key `http.headers.{key}`: `{k}` is not a header name"))?;
                let value = HeaderValue::from_str(v).map_err(|_| format!("config key `http.headers.{key}.{k}`: invalid header value"))?;
                out.insert(name, value);
            }
            Ok(out)
        };
        let headers = Headers { request: parse(&config.request, "request")?, response: parse(&config.response, "response")?, cors: config.cors };
        ctx.services.http_middleware.register("headers", Arc::new(headers) as Arc<dyn Middleware>);
        Ok(Some(Plugin))
    }
}

#[derive(Clone)]
pub struct Headers {
    pub request: HeaderMap,
    pub response: HeaderMap,
    pub cors: Option<Cors>,
}

fn list_has(list: &str, item: &str) -> bool {
    list.split(',').map(str::trim).any(|x| x == "*" || x.eq_ignore_ascii_case(item))
}

impl Headers {
    fn cors_headers(&self, cors: &Cors, origin: &str, out: &mut HeaderMap, preflight: bool) {
        if !list_has(&cors.allowed_origin, origin) {
            return;
        }
        let allow_origin = if cors.allowed_origin.trim() == "*" && !cors.allow_credentials { "*".to_string() } else { origin.to_string() };
        let set = |out: &mut HeaderMap, name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.insert(HeaderName::from_static(name), v);
            }
        };
        set(out, "access-control-allow-origin", &allow_origin);
        out.append(http::header::VARY, HeaderValue::from_static("Origin"));
        if cors.allow_credentials {
            set(out, "access-control-allow-credentials", "true");
        }
        if preflight {
            set(out, "access-control-allow-methods", &cors.allowed_methods);
            set(out, "access-control-allow-headers", &cors.allowed_headers);
            if cors.max_age > 0 {
                set(out, "access-control-max-age", &cors.max_age.to_string());
            }
        } else if !cors.exposed_headers.is_empty() {
            set(out, "access-control-expose-headers", &cors.exposed_headers);
        }
    }
}

impl Middleware for Headers {
    fn wrap(&self, next: Handler) -> Handler {
        let this = Arc::new(self.clone());
        Arc::new(move |mut req: Request| {
            let (this, next) = (this.clone(), next.clone());
            Box::pin(async move {
                let origin = req.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
                if let (Some(cors), Some(origin)) = (&this.cors, &origin)
                    && req.method() == http::Method::OPTIONS
                    && req.headers().contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
                {
                    let mut resp = http::Response::new(Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync());
                    *resp.status_mut() = http::StatusCode::from_u16(cors.options_success_status).unwrap_or(http::StatusCode::OK);
                    this.cors_headers(cors, origin, resp.headers_mut(), true);
                    return resp;
                }
                for (k, v) in &this.request {
                    req.headers_mut().insert(k.clone(), v.clone());
                }
                let mut resp = next(req).await;
                for (k, v) in &this.response {
                    resp.headers_mut().insert(k.clone(), v.clone());
                }
                if let (Some(cors), Some(origin)) = (&this.cors, &origin) {
                    this.cors_headers(cors, origin, resp.headers_mut(), false);
                }
                resp
            })
        })
    }
}
