//! Step 2: resolve every source to something cargo can use. Path sources are used in place; git
//! sources are fetched with the `git` command into `$VELOX_CACHE` and checked out at the pinned commit;
//! tarballs are downloaded once, verified against their sha256 before use, and unpacked;
//! registry versions are left to cargo (their resolution is read back after `cargo metadata`).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use sha2::{Digest, Sha256};

use crate::git;
use crate::plan::{GitRef, Source, redact};

/// How the generated Cargo.toml refers to a crate, and what it was pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A crate directory on disk (path, git checkout, unpacked tarball).
    Dir { dir: PathBuf, pin: Pin },
    Registry { version: String, registry: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    Path,
    Git { commit: String },
    Url { sha256: String },
}

pub struct Resolver {
    pub cache: PathBuf,
    pub offline: bool,
}

impl Resolver {
    pub fn new(offline: bool) -> anyhow::Result<Self> {
        let cache = match std::env::var_os("VELOX_CACHE") {
            Some(dir) => PathBuf::from(dir),
            None => dirs::cache_dir().ok_or_else(|| anyhow!("no user cache directory; set VELOX_CACHE"))?.join("velox"),
        };
        std::fs::create_dir_all(&cache).with_context(|| format!("cannot create the cache directory `{}`", cache.display()))?;
        Ok(Resolver { cache, offline })
    }

    pub fn resolve(&self, what: &str, source: &Source) -> anyhow::Result<Resolved> {
        match source {
            Source::Path(p) => {
                let dir = std::fs::canonicalize(p).map_err(|e| anyhow!("{what}: path `{}`: {e}; point `path` at the crate's directory", p.display()))?;
                if !dir.is_dir() {
                    bail!("{what}: path `{}` is not a directory; point `path` at the crate's directory", p.display());
                }
                if !dir.join("Cargo.toml").is_file() {
                    bail!("{what}: `{}` has no Cargo.toml; point `path` at the crate's directory", dir.display());
                }
                Ok(Resolved::Dir { dir, pin: Pin::Path })
            }
            Source::Registry { version, registry } => Ok(Resolved::Registry { version: version.clone(), registry: registry.clone() }),
            Source::Git { url, reference, subdir } => {
                let (checkout, commit) = self.git(what, url, reference)?;
                let missing = || anyhow!("{what}: no Cargo.toml at the root of the checkout{}; set `subdir` to the crate's directory", subdir.as_ref().map(|s| format!(" in `{s}`")).unwrap_or_default());
                let dir = match subdir {
                    // `subdir` has no `..` (plan); a symlink in the repository must not lead out either.
                    Some(s) => {
                        let dir = std::fs::canonicalize(checkout.join(s)).map_err(|_| missing())?;
                        if !dir.starts_with(std::fs::canonicalize(&checkout)?) {
                            bail!("{what}: `subdir = \"{s}\"` leads outside the repository (through a symlink); name a directory inside it");
                        }
                        dir
                    }
                    None => checkout,
                };
                if !dir.join("Cargo.toml").is_file() {
                    return Err(missing());
                }
                Ok(Resolved::Dir { dir, pin: Pin::Git { commit } })
            }
            Source::Url { url, sha256 } => Ok(Resolved::Dir { dir: self.tarball(what, url, sha256)?, pin: Pin::Url { sha256: sha256.clone() } }),
        }
    }

    /// Fetch (unless offline) into a bare cache repo, pin the reference, check it out. With the
    /// `git` command (`git::Git`), so velox itself builds no C library and needs no OpenSSL.
    fn git(&self, what: &str, url: &str, reference: &GitRef) -> anyhow::Result<(PathBuf, String)> {
        let key = short_hash(url);
        let repo = git::Git::bare(self.cache.join("git").join(&key));
        if !repo.exists() {
            if self.offline {
                bail!("{what}: `{}` is not in the cache and --offline forbids fetching it", redact(url));
            }
            repo.init().with_context(|| what.to_string())?;
        }
        if !self.offline {
            repo.fetch(what, &expand_env(url)?, &redact(url))?;
        }
        let name = match reference {
            GitRef::Tag(t) => format!("refs/tags/{t}"),
            GitRef::Branch(b) => format!("refs/heads/{b}"),
            GitRef::Rev(r) => r.clone(),
        };
        let not_found = || anyhow!("{what}: {} not found in `{}`{}", reference.describe(), redact(url), if self.offline { " (offline: only the cache was searched)" } else { "" });
        repo.rev_parse(&name).ok_or_else(not_found)?;
        let id = repo.rev_parse(&format!("{name}^{{commit}}")).ok_or_else(|| anyhow!("{what}: {} is not a commit", reference.describe()))?;
        let checkout = self.cache.join("checkouts").join(&key).join(&id);
        if !checkout.join(".velox-complete").exists() {
            let _ = std::fs::remove_dir_all(&checkout);
            std::fs::create_dir_all(&checkout)?;
            repo.checkout(&id, &checkout, &self.cache.join("git").join(format!("{key}.index"))).with_context(|| format!("{what}: cannot check out {id}"))?;
            std::fs::write(checkout.join(".velox-complete"), &id)?;
        }
        Ok((checkout, id))
    }

    /// Download once, verify, unpack; the crate is the archive's single top directory (or its root).
    fn tarball(&self, what: &str, url: &str, sha256: &str) -> anyhow::Result<PathBuf> {
        let dir = self.cache.join("url").join(sha256);
        let archive = self.cache.join("url").join(format!("{sha256}.tar.gz"));
        if !dir.join(".velox-complete").exists() {
            if !archive.exists() {
                if self.offline {
                    bail!("{what}: `{}` is not in the cache and --offline forbids downloading it", redact(url));
                }
                let bytes = download(&expand_env(url)?).map_err(|e| match e {
                    ureq::Error::Timeout(_) => anyhow!("{what}: downloading `{}` timed out: {}", redact(url), timeout_hint()),
                    // ureq's errors do not carry the URL, so no expanded token can show.
                    e => anyhow!("{what}: cannot download `{}`: {e}", redact(url)),
                })?;
                let actual = hex::encode(Sha256::digest(&bytes));
                if actual != sha256 {
                    bail!("{what}: sha256 mismatch for `{}`: velox.toml pins {sha256}, the download is {actual}; nothing was built", redact(url));
                }
                std::fs::create_dir_all(archive.parent().unwrap())?;
                std::fs::write(&archive, &bytes)?;
            }
            let bytes = std::fs::read(&archive)?;
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual != sha256 {
                let _ = std::fs::remove_file(&archive);
                bail!("{what}: cached tarball is corrupt (sha256 {actual}); it was removed, build again to download it");
            }
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            if let Err(e) = unpack(&bytes, &dir) {
                let _ = std::fs::remove_dir_all(&dir);
                bail!("{what}: cannot unpack `{}`: {e:#}", redact(url));
            }
            std::fs::write(dir.join(".velox-complete"), sha256)?;
        }
        crate_root(&dir).ok_or_else(|| anyhow!("{what}: the tarball has no Cargo.toml at its root or in its single top directory"))
    }
}

/// GET `url` whole; each network wait (connect, answer, next body bytes) within `net_timeout()`.
fn download(url: &str) -> Result<Vec<u8>, ureq::Error> {
    let t = Some(net_timeout());
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_connect(t).timeout_recv_response(t).timeout_per_read(t).build().into();
    agent.get(url).call()?.body_mut().with_config().limit(MAX_TARBALL).read_to_vec()
}

/// The largest tarball velox downloads (a crate tarball is a few MB).
const MAX_TARBALL: u64 = 1 << 30;

/// Unpack regular files and directories only: a link could point anywhere on the machine.
fn unpack(bytes: &[u8], dir: &Path) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().context("not a .tar.gz archive")? {
        let mut entry = entry.context("not a .tar.gz archive")?;
        let path = entry.path()?.display().to_string();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            kind => bail!("`{path}` is a {kind:?} entry; only files and directories are unpacked, so publish the crate with `cargo package`"),
        }
        if !entry.unpack_in(dir).with_context(|| format!("`{path}`"))? {
            bail!("`{path}` would land outside the archive's directory");
        }
    }
    Ok(())
}

/// `VELOX_NET_TIMEOUT` (seconds, default 30): how long any network step may wait for the other
/// side to connect or send the next bytes.
pub fn net_timeout() -> std::time::Duration {
    let secs = std::env::var("VELOX_NET_TIMEOUT").ok().and_then(|v| v.parse::<u64>().ok()).filter(|s| *s > 0).unwrap_or(30);
    std::time::Duration::from_secs(secs)
}

pub fn timeout_hint() -> String {
    format!("no answer within {}s; check the address and the network, or raise VELOX_NET_TIMEOUT", net_timeout().as_secs())
}

fn crate_root(dir: &Path) -> Option<PathBuf> {
    if dir.join("Cargo.toml").is_file() {
        return Some(dir.to_path_buf());
    }
    let entries: Vec<_> = std::fs::read_dir(dir).ok()?.filter_map(Result::ok).filter(|e| e.path().is_dir()).collect();
    match entries.as_slice() {
        [one] if one.path().join("Cargo.toml").is_file() => Some(one.path()),
        _ => None,
    }
}

/// `${VAR}` in source URLs (tokens); an unset variable is an error naming it.
pub fn expand_env(text: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| anyhow!("unclosed `${{` in a source URL"))? + start;
        let name = &rest[start + 2..end];
        out.push_str(&std::env::var(name).map_err(|_| anyhow!("environment variable `{name}` used in a source URL is not set"))?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion_in_urls() {
        // SAFETY: test-local variable name.
        unsafe { std::env::set_var("VELOX_TEST_TOKEN", "s3cret") };
        assert_eq!(expand_env("https://x:${VELOX_TEST_TOKEN}@h/r").unwrap(), "https://x:s3cret@h/r");
        assert!(expand_env("https://${VELOX_NOPE_UNSET}@h").unwrap_err().to_string().contains("VELOX_NOPE_UNSET"));
    }
}
