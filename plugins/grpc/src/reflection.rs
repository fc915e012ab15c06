//! Server reflection v1 and v1alpha (the same messages under two names) from the full
//! descriptors of the configured files, so grpcurl, Postman or evans need no .proto at hand.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use hyper::body::{Frame, Incoming};
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};
use tokio::sync::mpsc;

use crate::Shared;
use crate::handler::{Body, CallLog, streaming_response};
use crate::status::{self, Status};
use crate::wire::{self, Messages};

pub const V1: &str = "grpc.reflection.v1.ServerReflection";
pub const V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

#[derive(Clone, PartialEq, prost::Message)]
struct ReflectionRequest {
    #[prost(string, tag = "1")]
    host: String,
    #[prost(oneof = "Ask", tags = "3, 4, 5, 6, 7")]
    ask: Option<Ask>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Ask {
    #[prost(string, tag = "3")]
    FileByFilename(String),
    #[prost(string, tag = "4")]
    FileContainingSymbol(String),
    #[prost(message, tag = "5")]
    FileContainingExtension(ExtensionRequest),
    #[prost(string, tag = "6")]
    AllExtensionNumbersOfType(String),
    #[prost(string, tag = "7")]
    ListServices(String),
}

#[derive(Clone, PartialEq, prost::Message)]
struct ExtensionRequest {
    #[prost(string, tag = "1")]
    containing_type: String,
    #[prost(int32, tag = "2")]
    extension_number: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ReflectionResponse {
    #[prost(string, tag = "1")]
    valid_host: String,
    #[prost(message, optional, tag = "2")]
    original_request: Option<ReflectionRequest>,
    #[prost(oneof = "Answer", tags = "4, 6, 7")]
    answer: Option<Answer>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Answer {
    #[prost(message, tag = "4")]
    Files(FileDescriptorResponse),
    #[prost(message, tag = "6")]
    Services(ListServiceResponse),
    #[prost(message, tag = "7")]
    Error(ErrorResponse),
}

#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file_descriptor_proto: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListServiceResponse {
    #[prost(message, repeated, tag = "1")]
    service: Vec<ServiceResponse>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServiceResponse {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ErrorResponse {
    #[prost(int32, tag = "1")]
    error_code: i32,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// The descriptors, indexed by file name and by every symbol they define.
pub struct Reflection {
    files: BTreeMap<String, (Vec<u8>, Vec<String>)>,
    symbols: BTreeMap<String, String>,
    services: Vec<String>,
}

impl Reflection {
    /// `services`: the names the server answers (services of files that are only imported for
    /// their types are not listed unless registered).
    pub fn new(set: FileDescriptorSet, services: &[String]) -> Reflection {
        let mut r = Reflection { files: BTreeMap::new(), symbols: BTreeMap::new(), services: services.to_vec() };
        for file in set.file {
            let name = file.name().to_string();
            let prefix = if file.package().is_empty() { String::new() } else { format!("{}.", file.package()) };
            let mut add = |symbol: String| {
                r.symbols.insert(symbol, name.clone());
            };
            for svc in &file.service {
                let full = format!("{prefix}{}", svc.name());
                for m in &svc.method {
                    add(format!("{full}.{}", m.name()));
                }
                add(full);
            }
            for e in &file.enum_type {
                add(format!("{prefix}{}", e.name()));
            }
            for e in &file.extension {
                add(format!("{prefix}{}", e.name()));
            }
            fn messages(prefix: &str, list: &[DescriptorProto], add: &mut dyn FnMut(String)) {
                for m in list {
                    let full = format!("{prefix}{}", m.name());
                    for e in &m.enum_type {
                        add(format!("{full}.{}", e.name()));
                    }
                    messages(&format!("{full}."), &m.nested_type, add);
                    add(full);
                }
            }
            messages(&prefix, &file.message_type, &mut add);
            let deps = file.dependency.clone();
            r.files.insert(name, (file.encode_to_vec(), deps));
        }
        r
    }

    /// A file and, for clients that resolve types, everything it imports.
    fn file_with_deps(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut stack = vec![name.to_string()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let (bytes, deps) = self.files.get(&n)?;
            out.push(bytes.clone());
            stack.extend(deps.iter().cloned());
        }
        Some(out)
    }

    fn answer(&self, ask: &Option<Ask>) -> Answer {
        let not_found = |what: &str| Answer::Error(ErrorResponse { error_code: status::NOT_FOUND as i32, error_message: format!("{what} not found") });
        match ask {
            Some(Ask::ListServices(_)) => Answer::Services(ListServiceResponse { service: self.services.iter().map(|name| ServiceResponse { name: name.clone() }).collect() }),
            Some(Ask::FileByFilename(name)) => match self.file_with_deps(name) {
                Some(files) => Answer::Files(FileDescriptorResponse { file_descriptor_proto: files }),
                None => not_found(&format!("file {name}")),
            },
            Some(Ask::FileContainingSymbol(symbol)) => match self.symbols.get(symbol.trim_start_matches('.')).and_then(|f| self.file_with_deps(f)) {
                Some(files) => Answer::Files(FileDescriptorResponse { file_descriptor_proto: files }),
                None => not_found(&format!("symbol {symbol}")),
            },
            Some(Ask::FileContainingExtension(_)) | Some(Ask::AllExtensionNumbersOfType(_)) => {
                Answer::Error(ErrorResponse { error_code: status::UNIMPLEMENTED as i32, error_message: "extensions are not supported".into() })
            }
            None => Answer::Error(ErrorResponse { error_code: status::INVALID_ARGUMENT as i32, error_message: "empty request".into() }),
        }
    }
}

/// `ServerReflectionInfo`: a bidirectional stream, one answer per request.
pub fn serve(shared: Arc<Shared>, req: Request<Incoming>, log: CallLog) -> http::Response<Body> {
    let (tx, rx) = mpsc::channel::<Frame<Bytes>>(4);
    let resp = streaming_response(&[], false, rx);
    let mut messages = Messages::new(req.into_body(), false, shared.cfg.max_recv_bytes(), shared.shutdown.clone());
    tokio::spawn(async move {
        let reflection = shared.reflection.as_ref().expect("routed here only when on");
        let end = loop {
            let msg = match messages.next().await {
                Ok(Some(m)) => m,
                Ok(None) => break None,
                Err(st) => break Some(st),
            };
            let Ok(request) = ReflectionRequest::decode(msg) else {
                break Some(Status::new(status::INVALID_ARGUMENT, "invalid ServerReflectionRequest"));
            };
            let answer = reflection.answer(&request.ask);
            let response = ReflectionResponse { valid_host: request.host.clone(), original_request: Some(request), answer: Some(answer) };
            let data = wire::encode_message(&response.encode_to_vec(), false, usize::MAX).unwrap_or_default();
            if tx.send(Frame::data(data)).await.is_err() {
                return;
            }
        };
        let mut map = http::HeaderMap::new();
        crate::call::put_status(&mut map, end.as_ref());
        log.record(end.as_ref().map_or(status::OK, |s| s.code));
        let _ = tx.send(Frame::trailers(map)).await;
    });
    resp
}
