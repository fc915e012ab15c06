//! The `http.ssl.acme` section: RoadRunner's keys and defaults (its `acme/acme_config.go`), plus
//! `directory_url` and `ca_root` of ours so that any ACME CA works, not only Let's Encrypt.

use std::path::PathBuf;

use serde::Deserialize;

pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the account key and the certificate (with its private key) are kept between runs.
    pub cache_dir: PathBuf,
    /// The account's contact; required.
    pub email: String,
    /// The names the certificate is for; required.
    pub domains: Vec<String>,
    pub challenge_type: Challenge,
    /// The port the CA's http-01 check comes to (behind a port forward it differs from ours).
    pub alt_http_port: u16,
    /// The port the CA's tls-alpn-01 check comes to.
    pub alt_tlsalpn_port: u16,
    /// Let's Encrypt production instead of its staging CA; ignored when `directory_url` is set.
    pub use_production_endpoint: bool,
    /// Ours: the directory of any ACME CA (step-ca, ZeroSSL, Pebble, ...).
    pub directory_url: Option<String>,
    /// Ours: a PEM file with the root that the CA's own HTTPS API is verified against, for a CA
    /// whose API certificate no public root signs. Replaces the public roots.
    pub ca_root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Challenge {
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tlsalpn-01")]
    TlsAlpn01,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cache_dir: default_cache_dir(),
            email: String::new(),
            domains: Vec::new(),
            challenge_type: Challenge::default(),
            alt_http_port: DEFAULT_ALT_HTTP_PORT,
            alt_tlsalpn_port: DEFAULT_ALT_TLSALPN_PORT,
            use_production_endpoint: false,
            directory_url: None,
            ca_root: None,
        }
    }
}

/// RoadRunner's default, relative to the working directory.
fn default_cache_dir() -> PathBuf {
    "rr_cache_dir".into()
}

/// certmagic's defaults, which RoadRunner keeps.
const DEFAULT_ALT_HTTP_PORT: u16 = 80;
const DEFAULT_ALT_TLSALPN_PORT: u16 = 443;

impl Config {
    /// The CA's directory: `directory_url`, else Let's Encrypt (staging unless
    /// `use_production_endpoint`).
    pub fn directory(&self) -> &str {
        match (&self.directory_url, self.use_production_endpoint) {
            (Some(url), _) => url,
            (None, true) => LETS_ENCRYPT_PRODUCTION,
            (None, false) => LETS_ENCRYPT_STAGING,
        }
    }

    /// Required keys and their shape, checked before anything starts.
    pub fn check(&self) -> Result<(), String> {
        if self.email.trim().is_empty() {
            return Err("config key `http.ssl.acme.email`: required (the CA's contact for the account), e.g. `email: admin@example.com`".into());
        }
        if self.domains.is_empty() {
            return Err("config key `http.ssl.acme.domains`: at least one domain is required, e.g. `domains: [example.com]`".into());
        }
        if let Some(bad) = self.domains.iter().find(|d| d.is_empty() || d.contains(['/', ':', ' '])) {
            return Err(format!("config key `http.ssl.acme.domains`: `{bad}` is not a domain name; list bare names such as `example.com`"));
        }
        if let Some(url) = &self.directory_url
            && !url.starts_with("https://")
        {
            return Err(format!("config key `http.ssl.acme.directory_url`: `{url}` must be an https:// URL (ACME runs over HTTPS only)"));
        }
        if let Some(root) = &self.ca_root {
            crate::acme::client_tls(root)?;
        }
        if self.alt_http_port == 0 || self.alt_tlsalpn_port == 0 {
            let key = if self.alt_http_port == 0 { "alt_http_port" } else { "alt_tlsalpn_port" };
            return Err(format!("config key `http.ssl.acme.{key}`: 0 is not a port; leave the key out for the default"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Config {
        rr_runtime::config::Config::from_str(&format!("version: '3'\nacme:\n{yaml}")).unwrap().section("acme").unwrap().unwrap()
    }

    #[test]
    fn defaults_are_roadrunners() {
        let c = parse("  email: a@b.c\n  domains: [example.com]");
        assert_eq!(c.cache_dir, PathBuf::from("rr_cache_dir"));
        assert_eq!((c.challenge_type, c.alt_http_port, c.alt_tlsalpn_port), (Challenge::Http01, 80, 443));
        assert_eq!(c.directory(), LETS_ENCRYPT_STAGING);
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_directory_url_wins_over_the_lets_encrypt_switch() {
        let c = parse("  email: a@b.c\n  domains: [x.test]\n  use_production_endpoint: true\n  challenge_type: tlsalpn-01");
        assert_eq!((c.directory(), c.challenge_type), (LETS_ENCRYPT_PRODUCTION, Challenge::TlsAlpn01));
        let c = parse("  email: a@b.c\n  domains: [x.test]\n  use_production_endpoint: true\n  directory_url: https://ca.test/dir");
        assert_eq!(c.directory(), "https://ca.test/dir");
    }

    #[test]
    fn a_misspelt_key_is_named() {
        let root = rr_runtime::config::Config::from_str("version: '3'\nacme:\n  emial: a@b.c\n  domains: [x.test]").unwrap();
        root.section::<Config>("acme").unwrap();
        let unknown = root.unknown_keys().join("\n");
        assert!(unknown.contains("acme.emial") && unknown.contains("`email`"), "{unknown}");
    }

    #[test]
    fn bad_values_are_named() {
        assert!(parse("  domains: [x.test]").check().unwrap_err().contains("http.ssl.acme.email"));
        assert!(parse("  email: a@b.c").check().unwrap_err().contains("http.ssl.acme.domains"));
        assert!(parse("  email: a@b.c\n  domains: ['https://x.test']").check().unwrap_err().contains("not a domain name"));
        assert!(parse("  email: a@b.c\n  domains: [x.test]\n  directory_url: http://ca.test").check().unwrap_err().contains("https://"));
        let err = parse("  email: a@b.c\n  domains: [x.test]\n  ca_root: /nope.pem").check().unwrap_err();
        assert!(err.contains("http.ssl.acme.ca_root") && err.contains("/nope.pem"), "{err}");
        let err = rr_runtime::config::Config::from_str("version: '3'\nacme:\n  challenge_type: dns-01").unwrap().section::<Config>("acme").unwrap_err().to_string();
        assert!(err.contains("http-01") && err.contains("tlsalpn-01"), "{err}");
    }
}
