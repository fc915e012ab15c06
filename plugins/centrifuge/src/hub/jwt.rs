//! Connection tokens: HS256 JWTs signed with `hub.token_hmac_secret_key`, read as Centrifugo
//! reads them (`sub` the user, `exp`, `info`, `channels` for server-side subscriptions).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Claims {
    pub sub: String,
    pub exp: Option<i64>,
    pub info: Option<serde_json::Value>,
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Disconnect 3500 "invalid token".
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// Error 109 "token expired".
    #[error("token expired")]
    Expired,
}

/// Verify `token` with `secret` at `now` (Unix seconds).
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Invalid("not a JWT"));
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD.decode(header).ok().and_then(|h| serde_json::from_slice(&h).ok()).ok_or(TokenError::Invalid("bad header"))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Invalid("only HS256 is accepted"));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid("bad signature encoding"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&token.as_bytes()[..header_and_payload_len(token)]);
    mac.verify_slice(&signature).map_err(|_| TokenError::Invalid("signature mismatch"))?;
    let claims: Claims = URL_SAFE_NO_PAD.decode(payload).ok().and_then(|p| serde_json::from_slice(&p).ok()).ok_or(TokenError::Invalid("bad claims"))?;
    if claims.exp.is_some_and(|exp| exp > 0 && exp <= now) {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// Sign claims (tests and tools).
pub fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7519_example_is_verified() {
        // jwt.io's HS256 example, key "your-256-bit-secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert_eq!(verify(token, b"your-256-bit-secret", 0).unwrap().sub, "1234567890");
        assert_eq!(verify(token, b"other", 0), Err(TokenError::Invalid("signature mismatch")));
    }

    #[test]
    fn claims_expiry_and_algorithms() {
        let t = sign(&json!({"sub": "42", "exp": 100, "channels": ["news"], "info": {"n": "a"}}), b"k");
        let c = verify(&t, b"k", 99).unwrap();
        assert_eq!((c.sub.as_str(), c.channels, c.info), ("42", vec!["news".to_string()], Some(json!({"n": "a"}))));
        assert_eq!(verify(&t, b"k", 100), Err(TokenError::Expired));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(br#"{"sub":"1"}"#));
        assert_eq!(verify(&none, b"k", 0), Err(TokenError::Invalid("only HS256 is accepted")));
        assert_eq!(verify("x.y", b"k", 0), Err(TokenError::Invalid("not a JWT")));
    }
}
