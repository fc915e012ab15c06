//! The two exposition formats, written as Go's `expfmt` writes them for RoadRunner:
//! the Prometheus text format 0.0.4 (the default) and OpenMetrics 1.0.0 (when `Accept` asks).
//! Names are always valid here (declarations are checked), so they are never quoted.

use std::fmt::Write;

use rr_runtime::metrics::{Family, Kind, Value};

pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// The format a scraper's `Accept` prefers: OpenMetrics only when it ranks
    /// `application/openmetrics-text` above `text/plain` (and `*/*`); text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best = (Format::Text, 0.0);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let format = match parts.next().unwrap_or("") {
                "application/openmetrics-text" => Format::OpenMetrics,
                "text/plain" | "*/*" => Format::Text,
                _ => continue,
            };
            let q = parts.find_map(|p| p.strip_prefix("q=")).map_or(1.0, |q| q.parse().unwrap_or(0.0));
            if q > best.1 {
                best = (format, q);
            }
        }
        best.0
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT,
            Format::OpenMetrics => OPENMETRICS,
        }
    }
}

pub fn encode(families: &[Family], format: Format) -> String {
    let mut out = String::new();
    for family in families {
        write_family(&mut out, family, format);
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// One family as expfmt writes it. OpenMetrics differs in: a counter named `x_total` is the
/// family `x` (its samples keep `x_total`), a counter named otherwise is typed `unknown`; `"` is
/// escaped in HELP; integral floats get `.0` and counts are written as integers.
fn write_family(out: &mut String, f: &Family, format: Format) {
    let om = format == Format::OpenMetrics;
    let (family, kind) = match f.kind {
        Kind::Counter if om => f.name.strip_suffix("_total").map_or((f.name.as_str(), "unknown"), |stem| (stem, "counter")),
        Kind::Counter => (f.name.as_str(), "counter"),
        Kind::Gauge => (f.name.as_str(), "gauge"),
        Kind::Histogram => (f.name.as_str(), "histogram"),
        Kind::Summary => (f.name.as_str(), "summary"),
    };
    let _ = writeln!(out, "# HELP {family} {}\n# TYPE {family} {kind}", escape(&f.help, om));
    let float = |v: f64| if om { om_float(v) } else { go_float(v) };
    let count = |n: u64| if om { n.to_string() } else { go_float(n as f64) };
    let sample = |out: &mut String, suffix: &str, labels: &[(String, String)], extra: Option<(&str, f64)>, value: String| {
        write_series(out, &f.name, suffix, labels, extra.map(|(k, v)| (k, float(v))));
        let _ = writeln!(out, " {value}");
    };
    for m in &f.metrics {
        match &m.value {
            Value::Single(v) => sample(out, "", &m.labels, None, float(*v)),
            Value::Histogram { buckets, sum, count: n } => {
                for (le, cumulative) in buckets {
                    sample(out, "_bucket", &m.labels, Some(("le", *le)), count(*cumulative));
                }
                sample(out, "_bucket", &m.labels, Some(("le", f64::INFINITY)), count(*n));
                sample(out, "_sum", &m.labels, None, float(*sum));
                sample(out, "_count", &m.labels, None, count(*n));
            }
            Value::Summary { quantiles, sum, count: n } => {
                for (q, v) in quantiles {
                    sample(out, "", &m.labels, Some(("quantile", *q)), float(*v));
                }
                sample(out, "_sum", &m.labels, None, float(*sum));
                sample(out, "_count", &m.labels, None, count(*n));
            }
        }
    }
}

/// `name_suffix{labels,extra="…"}` without the value.
fn write_series(out: &mut String, name: &str, suffix: &str, labels: &[(String, String)], extra: Option<(&str, String)>) {
    out.push_str(name);
    out.push_str(suffix);
    let extra = extra.iter().map(|(k, v)| (*k, v.as_str()));
    let mut pairs = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(extra).peekable();
    if pairs.peek().is_none() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in pairs.enumerate() {
        let _ = write!(out, "{}{k}=\"{}\"", if i == 0 { "" } else { "," }, escape(v, true));
    }
    out.push('}');
}

/// Go's escaping: `\` and newline always, `"` in label values (and in OpenMetrics HELP).
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A float as Go's expfmt writes it: `strconv.FormatFloat(f, 'g', -1, 64)` (the shortest
/// digits that round-trip, in exponent form such as `1e+06` when the exponent is below -4 or at
/// least 6), and `+Inf`, `-Inf`, `NaN`, `0`.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `d.ddde±x`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes a decimal exponent");
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.abs());
    }
    if exp < 0 {
        return format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize));
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

/// OpenMetrics floats as client_golang writes them: Go's form, `.0` added to integral ones.
fn om_float(f: f64) -> String {
    let s = go_float(f);
    if s.contains(['.', 'e', 'I', 'N']) { s } else { s + ".0" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_formats_them() {
        // Expected values are Go's strconv.FormatFloat(f, 'g', -1, 64).
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (5.0, "5"),
            (0.1, "0.1"),
            (2.5, "2.5"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (123456.0, "123456"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (-2.5e-300, "-2.5e-300"),
            (9007199254740992.0, "9.007199254740992e+15"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123.456, "123.456"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f:?}");
        }
        assert_eq!(om_float(5.0), "5.0");
        assert_eq!(om_float(1e6), "1e+06");
        assert_eq!(om_float(0.5), "0.5");
        assert_eq!(om_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn negotiation_prefers_text_unless_openmetrics_ranks_higher() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4,application/openmetrics-text")), Format::Text);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0.3,text/plain;q=0.2")), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("application/json")), Format::Text);
    }

    #[test]
    fn escaping_as_go_writes_help_and_label_values() {
        assert_eq!(escape("a\\b\n\"c\"", false), "a\\\\b\\n\"c\"");
        assert_eq!(escape("a\\b\n\"c\"", true), "a\\\\b\\n\\\"c\\\"");
    }
}
