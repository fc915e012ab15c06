//! gRPC status codes and `google.rpc.Status`, as grpc-go puts them on the wire.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use prost::Message;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// A call's failure: code, message and the details clients read from `grpc-status-details-bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: u32,
    pub message: String,
    pub details: Vec<prost_types::Any>,
}

pub const OK: u32 = 0;
pub const CANCELLED: u32 = 1;
pub const UNKNOWN: u32 = 2;
pub const INVALID_ARGUMENT: u32 = 3;
pub const DEADLINE_EXCEEDED: u32 = 4;
pub const NOT_FOUND: u32 = 5;
pub const RESOURCE_EXHAUSTED: u32 = 8;
pub const UNIMPLEMENTED: u32 = 12;
pub const INTERNAL: u32 = 13;
pub const UNAVAILABLE: u32 = 14;

/// grpc-go's `codes.Code.String()`: the `status_code` label of `rr_grpc_request_total`.
pub fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(code as usize).map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

impl Status {
    pub fn new(code: u32, message: impl Into<String>) -> Status {
        Status { code, message: message.into(), details: Vec::new() }
    }

    /// The `error` value of a worker's reply: standard padded base64 of a `google.rpc.Status`.
    /// `None` for code 0 (a success with an empty body, as `status.ErrorProto` gives nil).
    pub fn from_base64(text: &str) -> Result<Option<Status>, Status> {
        let bytes = STANDARD.decode(text).map_err(|e| Status::new(UNKNOWN, format!("illegal base64 data in the `error` of the worker's reply: {e}")))?;
        let st = RpcStatus::decode(&bytes[..]).map_err(|e| Status::new(UNKNOWN, format!("the `error` of the worker's reply is not a google.rpc.Status: {e}")))?;
        Ok((st.code != 0).then_some(Status { code: st.code as u32, message: st.message, details: st.details }))
    }

    /// A worker error text: `code|:|message|:|<Any>...` (roadrunner-grpc 2.0.0), else INTERNAL
    /// with RoadRunner's error chain text.
    pub fn from_worker_error(text: &str) -> Status {
        if text.contains("|:|") {
            let chunks: Vec<&str> = text.split("|:|").collect();
            return match chunks[0].parse::<u32>() {
                Ok(code) => Status {
                    code: if code > 0 { code } else { INTERNAL },
                    message: chunks[1].to_string(),
                    details: chunks[2..].iter().filter_map(|c| prost_types::Any::decode(c.as_bytes()).ok()).collect(),
                },
                Err(_) => Status::new(UNKNOWN, text),
            };
        }
        Status::new(INTERNAL, format!("sync_worker_receive_frame: SoftJobError: {text}"))
    }

    /// `grpc-status-details-bin`: the whole Status, unpadded base64, when there are details.
    pub fn details_bin(&self) -> Option<String> {
        if self.details.is_empty() {
            return None;
        }
        let st = RpcStatus { code: self.code as i32, message: self.message.clone(), details: self.details.clone() };
        Some(STANDARD_NO_PAD.encode(st.encode_to_vec()))
    }
}

/// `grpc-message`: bytes outside printable ASCII and `%` percent-encoded (gRPC HTTP/2 spec).
pub fn encode_message(message: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    percent_encoding::utf8_percent_encode(message, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_from_php_with_details_round_trips_to_details_bin() {
        let b64 = "CAcSBmRlbmllZBpDCih0eXBlLmdvb2dsZWFwaXMuY29tL2dvb2dsZS5ycGMuRXJyb3JJbmZvEhcKEFBlcm1pc3Npb25EZW5pZWQSA2FwcA==";
        let st = Status::from_base64(b64).unwrap().unwrap();
        assert_eq!((st.code, st.message.as_str()), (7, "denied"));
        assert_eq!(st.details_bin().unwrap(), b64.trim_end_matches('='));
        let plain = Status::from_base64("CA0SDUZPT09PT09PT09PT08=").unwrap().unwrap();
        assert_eq!((plain.code, plain.message.as_str(), plain.details_bin()), (13, "FOOOOOOOOOOOO", None));
        assert_eq!(Status::from_base64("").unwrap(), None);
        assert_eq!(Status::from_base64("!!").unwrap_err().code, UNKNOWN);
    }

    #[test]
    fn legacy_error_text() {
        let st = Status::from_worker_error("7|:|Unauthorized access `index`|:|garbage");
        assert_eq!((st.code, st.message.as_str()), (7, "Unauthorized access `index`"));
        assert_eq!(Status::from_worker_error("0|:|m").code, INTERNAL);
        assert_eq!(Status::from_worker_error("x|:|m").code, UNKNOWN);
        assert_eq!(Status::from_worker_error("boom").message, "sync_worker_receive_frame: SoftJobError: boom");
    }

    #[test]
    fn message_encoding() {
        assert_eq!(encode_message("a b%é\n"), "a b%25%C3%A9%0A");
        assert_eq!(code_name(7), "PermissionDenied");
        assert_eq!(code_name(99), "Code(99)");
    }
}
