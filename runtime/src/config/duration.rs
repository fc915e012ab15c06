//! Durations as Go writes them (`60s`, `1m30s`, `1h2m3.5s`, `500ms`), for `#[serde(with)]`.
//! A bare number, or a string holding one, is seconds: RoadRunner (mapstructure) would read it
//! as nanoseconds, which no one means (docs/WORKERS.md says so).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct GoDuration;
    impl Visitor<'_> for GoDuration {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a Go duration such as `60s`, `1m30s` or `500ms`, or a number of seconds")
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(n))
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            u64::try_from(n).map(Duration::from_secs).map_err(|_| E::custom(format!("invalid duration {n}: it should not be negative")))
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(n).map_err(|_| E::custom(format!("invalid duration {n}: expected a number of seconds")))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse(s).map_err(E::custom)
        }
    }
    d.deserialize_any(GoDuration)
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

/// Parse a Go duration string; a bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{text}`: expected a Go duration such as `60s`, `1m30s` or `500ms`");
    let s = text.trim();
    if let Ok(seconds) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| bad());
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}
