//! Between this crate's PHP-facing protobuf structs ([`crate::proto`]) and Core's generated
//! `temporal.api` types. Both are the same wire schema, so a value crosses as its encoding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use temporalio_common::protos::temporal::api::common::v1 as api;

use crate::codec::json::{RetryPolicy, rfc3339_nano};
use crate::proto;

/// Re-read one message as another with the same schema.
pub fn recode<A: Message, B: Message + Default>(from: &A) -> Result<B, String> {
    B::decode(from.encode_to_vec().as_slice()).map_err(|e| format!("cannot convert {} to {}: {e}", std::any::type_name::<A>(), std::any::type_name::<B>()))
}

pub fn payload_to_php(p: &api::Payload) -> proto::Payload {
    proto::Payload { metadata: p.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), data: p.data.clone() }
}

pub fn payload_to_core(p: &proto::Payload) -> api::Payload {
    api::Payload { metadata: p.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), data: p.data.clone(), ..Default::default() }
}

pub fn payloads_to_php<'a>(ps: impl IntoIterator<Item = &'a api::Payload>) -> proto::Payloads {
    proto::Payloads { payloads: ps.into_iter().map(payload_to_php).collect() }
}

pub fn header_to_php(fields: &std::collections::HashMap<String, api::Payload>) -> Option<proto::Header> {
    (!fields.is_empty()).then(|| proto::Header { fields: fields.iter().map(|(k, v)| (k.clone(), payload_to_php(v))).collect() })
}

pub fn header_to_core(header: Option<&proto::Header>) -> std::collections::HashMap<String, api::Payload> {
    header.map(|h| h.fields.iter().map(|(k, v)| (k.clone(), payload_to_core(v))).collect()).unwrap_or_default()
}

/// A protobuf `Duration` (seconds, nanos) as a std one; negative is zero.
pub fn duration(seconds: i64, nanos: i32) -> Duration {
    Duration::new(seconds.max(0) as u64, nanos.max(0) as u32)
}

/// A protobuf `Timestamp` (seconds, nanos) as a time.
pub fn time(seconds: i64, nanos: i32) -> SystemTime {
    UNIX_EPOCH + duration(seconds, nanos)
}

/// RFC3339 with nanoseconds, or empty for an absent timestamp (Go's zero time is not sent).
pub fn rfc3339(t: Option<SystemTime>) -> String {
    t.map(rfc3339_nano).unwrap_or_default()
}

pub fn retry_policy_to_php(p: &api::RetryPolicy) -> RetryPolicy {
    let d = |d: &Option<prost_wkt_types::Duration>| d.as_ref().map_or(Duration::ZERO, |d| duration(d.seconds, d.nanos));
    RetryPolicy {
        initial_interval: d(&p.initial_interval),
        backoff_coefficient: p.backoff_coefficient,
        maximum_interval: d(&p.maximum_interval),
        maximum_attempts: p.maximum_attempts,
        non_retryable_error_types: p.non_retryable_error_types.clone(),
    }
}

pub fn proto_duration(d: Duration) -> prost_wkt_types::Duration {
    prost_wkt_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

pub fn retry_policy_to_core(p: &RetryPolicy) -> api::RetryPolicy {
    let d = |d: Duration| (!d.is_zero()).then(|| proto_duration(d));
    api::RetryPolicy {
        initial_interval: d(p.initial_interval),
        backoff_coefficient: p.backoff_coefficient,
        maximum_interval: d(p.maximum_interval),
        maximum_attempts: p.maximum_attempts,
        non_retryable_error_types: p.non_retryable_error_types.clone(),
    }
}

pub fn proto_timestamp(t: SystemTime) -> prost_wkt_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_wkt_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}
