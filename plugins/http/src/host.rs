//! The `Host` header, checked as RFC 9112 §3.2 demands before anything reads it: a request with
//! none (HTTP/1.1), two, or one that is not `uri-host [":" port]` is answered 400, as Go's
//! net/http does. Stricter than Go in one way: the port must be a number up to 65535 and the host
//! non-empty, since PHP builds the request URI from it (`x:abc` would fail in PSR-7, and
//! `x/admin` would change the path PHP sees).

use http::{HeaderMap, Version};

/// Why a request's `Host` (or the authority of an HTTP/2 or absolute-form target, which PHP's URI
/// is built from instead) is refused: the 400 body, Go's wording.
pub fn problem(version: Version, headers: &HeaderMap, authority: Option<&str>) -> Option<&'static str> {
    if authority.is_some_and(|a| !valid(a.as_bytes())) {
        return Some("malformed Host header");
    }
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Some("too many Host headers"),
        (None, _) if version == Version::HTTP_11 => Some("missing required Host header"),
        (None, _) => None,
        (Some(host), None) => (!valid(host.as_bytes())).then_some("malformed Host header"),
    }
}

/// `uri-host [":" port]` (RFC 3986 §3.2.2-3.2.3) with a non-empty host and a port ≤ 65535.
pub fn valid(host: &[u8]) -> bool {
    // An IP literal keeps its colons inside brackets: the port's colon comes after them.
    let literal = match host.first() {
        Some(b'[') => match host.iter().position(|&b| b == b']') {
            Some(end) => end + 1,
            None => return false,
        },
        _ => 0,
    };
    let (name, port) = match host[literal..].iter().position(|&b| b == b':') {
        Some(i) => (&host[..literal + i], Some(&host[literal + i + 1..])),
        None => (host, None),
    };
    let name_ok = match literal {
        0 => !name.is_empty() && name.iter().all(|&b| unreserved(b) || sub_delim(b) || b == b'%'),
        _ => name.len() == literal && name[1..literal - 1].iter().all(|&b| unreserved(b) || b == b':' || b == b'%'),
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit) && p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65535);
    name_ok && port_ok
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn sub_delim(b: u8) -> bool {
    matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        for ok in ["x", "example.com", "example.com:8080", "x:", "127.0.0.1:65535", "[::1]", "[::1]:80", "a_b.c", "xn--caf-dma.fr"] {
            assert!(valid(ok.as_bytes()), "{ok} is a valid Host");
        }
        for bad in ["", ":80", "x/admin", "x:abc", "x:99999", "x:123456", "x y", "x\u{e9}", "[::1", "[::1]x", "[::1]:80:1", "x@y", "x?y", "x#y", "a:b:c"] {
            assert!(!valid(bad.as_bytes()), "{bad:?} is not a valid Host");
        }
    }

    #[test]
    fn missing_and_duplicate() {
        let mut h = HeaderMap::new();
        assert_eq!(problem(Version::HTTP_11, &h, None), Some("missing required Host header"));
        assert_eq!(problem(Version::HTTP_10, &h, None), None);
        assert_eq!(problem(Version::HTTP_2, &h, Some("a:443")), None);
        assert_eq!(problem(Version::HTTP_2, &h, Some("a:abc")), Some("malformed Host header"), "an HTTP/2 :authority too");
        h.append(http::header::HOST, http::HeaderValue::from_static("a"));
        assert_eq!(problem(Version::HTTP_11, &h, None), None);
        h.append(http::header::HOST, http::HeaderValue::from_static("a"));
        assert_eq!(problem(Version::HTTP_11, &h, None), Some("too many Host headers"));
    }
}
