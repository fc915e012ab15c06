//! Answers to the CA's http-01 checks: `GET /.well-known/acme-challenge/<token>` gets the key
//! authorization of an order in progress (RFC 8555 §8.3); every other request goes on to `next`.

use std::sync::Arc;

use rr_runtime::http::{Handler, Request};

use super::Acme;
use crate::response::{error_response, full};

const PREFIX: &str = "/.well-known/acme-challenge/";

/// `next` with http-01 answers in front (the plain listener's handler, or [`not_found`] on a
/// listener of its own).
pub fn http01(acme: Acme, next: Handler) -> Handler {
    Arc::new(move |req: Request| {
        let answer = req.uri().path().strip_prefix(PREFIX).and_then(|token| acme.http01_answer(token));
        match answer {
            Some(key_auth) => {
                let mut resp = http::Response::new(full(key_auth.into()));
                resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
                Box::pin(async move { resp })
            }
            None => next(req),
        }
    })
}

/// The handler behind a challenge-only listener.
pub fn not_found() -> Handler {
    Arc::new(|_req: Request| Box::pin(async { error_response(404, None) }))
}
