//! The zipkin exporter's HTTP client, adding what opentelemetry-zipkin 0.31 leaves out: every
//! span's `localEndpoint.serviceName`, without which zipkin lists the spans under no service.

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use serde_json::Value;

#[derive(Debug)]
pub struct ServiceNamed {
    client: reqwest::blocking::Client,
    service: String,
}

impl ServiceNamed {
    /// Made on a thread of its own: a blocking client must not be made on a tokio thread.
    pub fn new(service: String) -> Self {
        ServiceNamed { client: reqwest::blocking::Client::new(), service }
    }
}

#[async_trait::async_trait]
impl HttpClient for ServiceNamed {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = request.map(|body| named(&body, &self.service).unwrap_or(body));
        self.client.send_bytes(request).await
    }
}

/// The JSON span list with `localEndpoint.serviceName` set on each span; `None` if it is not one.
fn named(body: &[u8], service: &str) -> Option<Bytes> {
    let mut spans: Vec<Value> = serde_json::from_slice(body).ok()?;
    for span in &mut spans {
        let endpoint = span.as_object_mut()?.entry("localEndpoint").or_insert_with(|| Value::Object(Default::default()));
        endpoint.as_object_mut()?.insert("serviceName".into(), Value::String(service.to_string()));
    }
    serde_json::to_vec(&spans).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_span_gets_the_service_name() {
        let body = br#"[{"id":"a","localEndpoint":{"ipv4":"127.0.0.1"}},{"id":"b"}]"#;
        let named: serde_json::Value = serde_json::from_slice(&super::named(body, "shop").unwrap()).unwrap();
        assert_eq!(named, serde_json::json!([{"id":"a","localEndpoint":{"ipv4":"127.0.0.1","serviceName":"shop"}},{"id":"b","localEndpoint":{"serviceName":"shop"}}]));
        assert!(super::named(b"not json", "shop").is_none());
    }
}
