//! The git cache through the `git` command, as cargo's `net.git-fetch-with-cli` does: every
//! machine that cloned this repository has git, and velox then builds no libgit2 or OpenSSL.
//!
//! Credentials in a source URL (`https://user:${TOKEN}@host/...`) never reach the command line
//! (other users can read it in `ps`): the URL is passed without them and a credential helper
//! reads them from this process's environment for git.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::ops::resolve::{net_timeout, timeout_hint};

/// A bare repository in the cache.
pub struct Git {
    dir: PathBuf,
}

impl Git {
    pub fn bare(dir: PathBuf) -> Git {
        Git { dir }
    }

    pub fn exists(&self) -> bool {
        self.dir.join("HEAD").is_file()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir").arg(&self.dir).env("GIT_TERMINAL_PROMPT", "0").env_remove("GIT_DIR").env_remove("GIT_WORK_TREE").env_remove("GIT_INDEX_FILE");
        cmd
    }

    pub fn init(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create `{}`", self.dir.display()))?;
        let out = self.command().args(["init", "--bare", "-q"]).output().map_err(not_installed)?;
        if !out.status.success() {
            bail!("cannot create the git cache `{}`: {}", self.dir.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Fetch every branch and tag of `url` (`shown` is the URL as errors may show it). A remote
    /// that sends nothing for `net_timeout()` is given up on.
    pub fn fetch(&self, what: &str, url: &str, shown: &str) -> anyhow::Result<()> {
        let (bare_url, user, password) = split_credentials(url);
        let secs = net_timeout().as_secs().to_string();
        let mut cmd = self.command();
        cmd.args(["-c", "http.lowSpeedLimit=1", "-c", &format!("http.lowSpeedTime={secs}")]);
        if let Some(user) = &user {
            cmd.args(["-c", "credential.helper=", "-c", CREDENTIAL_HELPER])
                .env("VELOX_GIT_USERNAME", user)
                .env("VELOX_GIT_PASSWORD", password.as_deref().unwrap_or(""));
        }
        cmd.args(["fetch", "--progress", "--force", "--tags", "--", &bare_url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(not_installed)?;
        // git reports progress on stderr while data flows; silence for the whole timeout is a stall.
        let last = Arc::new(Mutex::new(Instant::now()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let (mut stderr, last, output) = (child.stderr.take().unwrap(), last.clone(), output.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buf) {
                    *last.lock().unwrap() = Instant::now();
                    output.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if last.lock().unwrap().elapsed() > net_timeout() {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = reader.join();
        let text = String::from_utf8_lossy(&output.lock().unwrap()).replace(&bare_url, shown).replace(url, shown);
        match status {
            Some(s) if s.success() => Ok(()),
            Some(_) if text.contains("Operation too slow") || text.contains("timed out") => bail!("{what}: fetching `{shown}` timed out: {}", timeout_hint()),
            None => bail!("{what}: fetching `{shown}` timed out: {}", timeout_hint()),
            Some(s) => bail!("{what}: cannot fetch `{shown}` ({s}): {}", last_lines(&text)),
        }
    }

    /// The object id `name` resolves to, if any.
    pub fn rev_parse(&self, name: &str) -> Option<String> {
        let out = self.command().args(["rev-parse", "--verify", "--quiet", "--end-of-options", name]).output().ok()?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !id.is_empty()).then_some(id)
    }

    /// Write the tree of commit `id` into `dir` (through a private index file `index`).
    pub fn checkout(&self, id: &str, dir: &Path, index: &Path) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(index);
        for args in [&["read-tree", id][..], &["checkout-index", "--all", "--force"]] {
            let out = self.command().arg("--work-tree").arg(dir).env("GIT_INDEX_FILE", index).args(args).output().map_err(not_installed)?;
            if !out.status.success() {
                let _ = std::fs::remove_file(index);
                bail!("git {}: {}", args[0], String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        let _ = std::fs::remove_file(index);
        Ok(())
    }
}

/// Answers git's `get` with the credentials velox put in the environment.
const CREDENTIAL_HELPER: &str =
    "credential.helper=!f() { test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' \"$VELOX_GIT_USERNAME\" \"$VELOX_GIT_PASSWORD\"; }; f";

/// `scheme://user:pass@host/path` → (`scheme://host/path`, user, pass).
fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), None, None) };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return (url.to_string(), None, None) };
    let (creds, host) = (&rest[..at], &rest[at + 1..]);
    let (user, pass) = match creds.split_once(':') {
        Some((u, p)) => (u.to_string(), Some(p.to_string())),
        None => (creds.to_string(), None),
    };
    (format!("{scheme}://{host}"), Some(user), pass)
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("remote: ")).collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

fn not_installed(e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot run `git` ({e}); git sources need git installed (Debian: `apt-get install git`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        assert_eq!(split_credentials("https://u:p@h/r"), ("https://h/r".into(), Some("u".into()), Some("p".into())));
        assert_eq!(split_credentials("http://tok@h:1/a@b"), ("http://h:1/a@b".into(), Some("tok".into()), None));
        assert_eq!(split_credentials("file:///x/y"), ("file:///x/y".into(), None, None));
    }
}
