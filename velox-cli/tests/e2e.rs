//! velox end to end, offline: path, git (file://) and tarball (local HTTP) sources, trimmed
//! binaries, `--locked`, plugin checks before compiling, `new-plugin`. Every build shares one
//! target directory (`target/velox-e2e`, or `$VELOX_E2E_TARGET`) and the dev profile, so the
//! runtime's dependencies compile once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("VELOX_E2E_TARGET").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/velox-e2e"))
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn velox(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_velox"))
            .args(args)
            .current_dir(self.dir.path())
            .env("VELOX_CACHE", self.path("cache"))
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap()
    }

    fn build(&self, recipe: &str, extra: &[&str]) -> Output {
        let target = target_dir();
        let mut args = vec!["build", "-c", recipe, "-o", "dist", "--debug", "--target-dir", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.velox(&args)
    }

    /// A velox.toml with the workspace runtime and the given `[plugins.*]` tables.
    fn recipe(&self, name: &str, plugins: &str) -> String {
        let text = format!("[binary]\nname = \"rr\"\nversion = \"9.9.9\"\n\n[runtime]\npath = \"{}\"\n\n{plugins}", workspace().join("runtime").display());
        std::fs::write(self.path(name), text).unwrap();
        name.to_string()
    }
}

/// A tiny plugin crate named `crate_name` whose `.rr.yaml` name is `plugin`.
fn fixture(dir: &Path, crate_name: &str, plugin: &str, runtime_req: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{crate_name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[package.metadata.rr-plugin]\nname = \"{plugin}\"\nentry = \"Plugin\"\n\n[dependencies]\nrr-runtime = \"{runtime_req}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        format!(
            "pub struct Plugin;\nimpl rr_runtime::Plugin for Plugin {{\n    const NAME: &'static str = \"{plugin}\";\n    fn init(_: &rr_runtime::InitContext<'_>) -> Result<Option<Self>, rr_runtime::BoxError> {{ Ok(None) }}\n}}\n"
        ),
    )
    .unwrap();
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "velox failed:\n{stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "velox should have failed:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn plugins_of(binary: &Path) -> Vec<String> {
    let out = Command::new(binary).arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().skip_while(|l| !l.starts_with("plugins:")).skip(1).map(|l| l.trim().to_string()).collect()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn path_sources_trimmed_binaries_and_new_plugin() {
    let env = Env::new();
    fixture(&env.path("alpha"), "rr-alpha", "alpha", "0.1");
    fixture(&env.path("beta"), "rr-beta", "beta", "0.1");
    let both = env.recipe("both.toml", "[plugins.alpha]\npath = \"alpha\"\n\n[plugins.beta]\npath = \"beta\"\n");
    ok(&env.build(&both, &[]));
    assert_eq!(plugins_of(&env.path("dist/rr")), ["alpha", "beta"]);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(env.path("dist/rr.manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["plugins"][1]["crate"], "rr-beta");
    assert_eq!(manifest["sha256"].as_str().unwrap().len(), 64);
    assert!(env.path("velox.lock").exists());

    // A trimmed build carries only what it lists.
    let trimmed = env.recipe("trimmed.toml", "[plugins.alpha]\npath = \"alpha\"\n");
    ok(&env.build(&trimmed, &[]));
    assert_eq!(plugins_of(&env.path("dist/rr")), ["alpha"]);

    // new-plugin → add → build.
    let runtime_dep = format!("{{ version = \"0.1\", path = \"{}\" }}", workspace().join("runtime").display());
    ok(&env.velox(&["new-plugin", "greeter", "--dir", "greeter", "--runtime", &runtime_dep]));
    let test = Command::new(env!("CARGO"))
        .args(["test", "-q", "--manifest-path"])
        .arg(env.path("greeter/Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(test.status.success(), "the scaffold's own test fails: {}", String::from_utf8_lossy(&test.stderr));
    ok(&env.velox(&["add", "greeter", "-c", &trimmed, "--path", "greeter"]));
    ok(&env.build(&trimmed, &[]));
    assert_eq!(plugins_of(&env.path("dist/rr")), ["alpha", "greeter"]);

    // Two crates that are the same plugin.
    fixture(&env.path("alpha2"), "rr-alpha-two", "alpha", "0.1");
    let dup = env.recipe("dup.toml", "[plugins.alpha]\npath = \"alpha\"\n\n[plugins.other]\npath = \"alpha2\"\n");
    let e = err(&env.build(&dup, &[]));
    assert!(e.contains("plugins `alpha` and `other` are both the `alpha` plugin"), "{e}");
}

#[test]
fn incompatible_runtime_is_rejected_before_compiling() {
    let env = Env::new();
    fixture(&env.path("old"), "rr-old", "old", "0.9");
    let recipe = env.recipe("velox.toml", "[plugins.old]\npath = \"old\"\n");
    let e = err(&env.build(&recipe, &[]));
    assert!(e.contains("plugin `old` (crate `rr-old` 0.1.0) requires rr-runtime ^0.9, but the selected runtime is 0.1.0"), "{e}");
    assert!(!e.contains("Compiling"), "nothing compiled: {e}");
    // A crate that is no plugin at all.
    std::fs::create_dir_all(env.path("lib/src")).unwrap();
    std::fs::write(env.path("lib/Cargo.toml"), "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n").unwrap();
    std::fs::write(env.path("lib/src/lib.rs"), "").unwrap();
    let recipe = env.recipe("plain.toml", "[plugins.plain]\npath = \"lib\"\n");
    assert!(err(&env.build(&recipe, &[])).contains("no `[package.metadata.rr-plugin]`"));
}

#[test]
fn git_sources_by_tag_branch_rev_and_locked() {
    let env = Env::new();
    let repo = env.path("repo");
    fixture(&repo.join("crates/geo"), "rr-geo", "geo", "0.1");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "add", "."]);
    git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "v1"]);
    git(&repo, &["tag", "v1"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());

    let by_tag = env.recipe("velox.toml", &format!("[plugins.geo]\ngit = \"{url}\"\ntag = \"v1\"\nsubdir = \"crates/geo\"\n"));
    ok(&env.build(&by_tag, &[]));
    assert_eq!(plugins_of(&env.path("dist/rr")), ["geo"]);
    let lock = std::fs::read_to_string(env.path("velox.lock")).unwrap();
    assert!(lock.contains(&first), "the lock pins the commit: {lock}");
    ok(&env.build(&by_tag, &["--locked"]));

    // Branch and rev resolve too (steps 1-4 only; the crate compiled above).
    std::fs::write(repo.join("crates/geo/src/extra.rs"), "").unwrap();
    git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "add", "."]);
    git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "v2"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let by_branch = env.recipe("branch.toml", &format!("[plugins.geo]\ngit = \"{url}\"\nbranch = \"main\"\nsubdir = \"crates/geo\"\n"));
    assert!(ok(&env.velox(&["plugins", "-c", &by_branch])).contains(&second));
    let by_rev = env.recipe("rev.toml", &format!("[plugins.geo]\ngit = \"{url}\"\nrev = \"{first}\"\nsubdir = \"crates/geo\"\n"));
    assert!(ok(&env.velox(&["plugins", "-c", &by_rev])).contains(&first));

    // The tag moves: --locked refuses, naming the change.
    git(&repo, &["tag", "-f", "v1"]);
    let e = err(&env.build(&by_tag, &["--locked"]));
    assert!(e.contains("--locked: the resolution differs") && e.contains("plugin `geo`"), "{e}");

    // Offline uses the cache only.
    assert!(ok(&env.velox(&["plugins", "-c", &by_tag, "--offline"])).contains(&second));
    let missing = env.recipe("missing.toml", "[plugins.geo]\ngit = \"file:///nonexistent/repo\"\ntag = \"v1\"\n");
    assert!(err(&env.velox(&["plugins", "-c", &missing, "--offline"])).contains("--offline forbids fetching"));
}

/// Serve one file over HTTP on 127.0.0.1 (enough for reqwest's GET).
fn serve_file(bytes: Vec<u8>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", bytes.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&bytes);
        }
    });
    port
}

#[test]
fn tarball_sources_are_verified_before_use() {
    let env = Env::new();
    fixture(&env.path("pkg/rr-tarred-0.1.0"), "rr-tarred", "tarred", "0.1");
    let status = Command::new("tar").args(["czf", "tarred.tar.gz", "-C", "pkg", "rr-tarred-0.1.0"]).current_dir(env.dir.path()).status().unwrap();
    assert!(status.success());
    let bytes = std::fs::read(env.path("tarred.tar.gz")).unwrap();
    let sha = { use sha2::Digest; hex::encode(sha2::Sha256::digest(&bytes)) };
    let port = serve_file(bytes);
    let url = format!("http://127.0.0.1:{port}/tarred.tar.gz");

    let wrong = env.recipe("wrong.toml", &format!("[plugins.tarred]\nurl = \"{url}\"\nsha256 = \"{}\"\n", "0".repeat(64)));
    let e = err(&env.build(&wrong, &[]));
    assert!(e.contains("sha256 mismatch") && e.contains(&sha) && e.contains("nothing was built"), "{e}");

    let right = env.recipe("velox.toml", &format!("[plugins.tarred]\nurl = \"{url}\"\nsha256 = \"{sha}\"\n"));
    ok(&env.build(&right, &[]));
    assert_eq!(plugins_of(&env.path("dist/rr")), ["tarred"]);
    assert!(std::fs::read_to_string(env.path("velox.lock")).unwrap().contains(&sha));
}

/// A server that accepts connections and never answers.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    port
}

#[test]
fn network_steps_time_out_naming_the_source_without_its_token() {
    let env = Env::new();
    let port = silent_server();
    let silent = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_velox"))
            .args(args)
            .current_dir(env.dir.path())
            .env("VELOX_CACHE", env.path("cache"))
            .env("VELOX_NET_TIMEOUT", "1")
            .env("CARGO_NET_RETRY", "0")
            .env("CARGO_REGISTRIES_SILENT_INDEX", format!("sparse+http://127.0.0.1:{port}/index/"))
            .output()
            .unwrap()
    };
    let git = env.recipe("git.toml", &format!("[plugins.geo]\ngit = \"http://ghp_SECRET@127.0.0.1:{port}/acme/geo\"\ntag = \"v1\"\n"));
    let e = err(&silent(&["plugins", "-c", &git]));
    assert!(e.contains(&format!("git.toml:8: `plugins.geo`: fetching `http://***@127.0.0.1:{port}/acme/geo` timed out: no answer within 1s")), "{e}");
    let json = silent(&["build", "-c", &git, "--json"]);
    let out = format!("{}{}", String::from_utf8_lossy(&json.stdout), String::from_utf8_lossy(&json.stderr));
    assert!(out.contains("timed out") && !out.contains("SECRET"), "{out}");

    let url = env.recipe("url.toml", &format!("[plugins.geo]\nurl = \"http://u:SECRET@127.0.0.1:{port}/geo.tar.gz\"\nsha256 = \"{}\"\n", "0".repeat(64)));
    let e = err(&silent(&["plugins", "-c", &url]));
    assert!(e.contains(&format!("url.toml:8: `plugins.geo`: downloading `http://***@127.0.0.1:{port}/geo.tar.gz` timed out")) && !e.contains("SECRET"), "{e}");

    let registry = env.recipe("registry.toml", "[plugins.rr-geo]\nversion = \"1\"\nregistry = \"silent\"\n");
    let e = err(&silent(&["plugins", "-c", &registry]));
    assert!(e.contains("Updating `silent` index") && e.contains(&format!("failed to download from `http://127.0.0.1:{port}/index/config.json`")), "{e}");
    assert!(e.contains("a registry named above timed out (cargo's http.timeout, set from VELOX_NET_TIMEOUT = 1s)"), "{e}");
}

#[test]
fn unreachable_and_hostile_tarballs() {
    let env = Env::new();
    // Nothing listens on a port we bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = env.recipe("refused.toml", &format!("[plugins.geo]\nurl = \"http://127.0.0.1:{port}/geo.tar.gz\"\nsha256 = \"{}\"\n", "0".repeat(64)));
    let e = err(&env.velox(&["plugins", "-c", &refused]));
    assert!(e.contains("refused.toml:8: `plugins.geo`: cannot download") && e.contains("onnection refused"), "the cause is shown: {e}");

    // A symlink entry is refused by name, and nothing of the archive stays in the cache.
    fixture(&env.path("pkg/rr-geo"), "rr-geo", "geo", "0.1");
    std::os::unix::fs::symlink("/etc/passwd", env.path("pkg/rr-geo/passwd")).unwrap();
    assert!(Command::new("tar").args(["czf", "geo.tar.gz", "-C", "pkg", "rr-geo"]).current_dir(env.dir.path()).status().unwrap().success());
    let bytes = std::fs::read(env.path("geo.tar.gz")).unwrap();
    let sha = { use sha2::Digest; hex::encode(sha2::Sha256::digest(&bytes)) };
    let port = serve_file(bytes);
    let recipe = env.recipe("velox.toml", &format!("[plugins.geo]\nurl = \"http://127.0.0.1:{port}/geo.tar.gz\"\nsha256 = \"{sha}\"\n"));
    let e = err(&env.velox(&["plugins", "-c", &recipe]));
    assert!(e.contains("velox.toml:8: `plugins.geo`: cannot unpack") && e.contains("`rr-geo/passwd` is a Symlink entry"), "{e}");
    assert!(!env.path(&format!("cache/url/{sha}")).exists(), "no half-unpacked archive is left");
}

#[test]
fn subdir_cannot_leave_the_checkout_through_a_symlink() {
    let env = Env::new();
    fixture(&env.path("outside"), "rr-outside", "outside", "0.1");
    let repo = env.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::symlink(env.path("outside"), repo.join("crate")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "add", "."]);
    git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "v1"]);
    let recipe = env.recipe("velox.toml", &format!("[plugins.o]\ngit = \"file://{}\"\nbranch = \"main\"\nsubdir = \"crate\"\n", repo.display()));
    let e = err(&env.velox(&["plugins", "-c", &recipe]));
    assert!(e.contains("velox.toml:8: `plugins.o`: `subdir = \"crate\"` leads outside the repository"), "{e}");
}

#[test]
fn features_are_applied_or_refused_with_their_line() {
    let env = Env::new();
    fixture(&env.path("geo"), "rr-geo", "geo", "0.1");
    let toml = env.path("geo/Cargo.toml");
    std::fs::write(&toml, std::fs::read_to_string(&toml).unwrap() + "\n[features]\nfast = []\n").unwrap();
    let with = |features: &str| {
        let text = format!(
            "[binary]\nfeatures = [{features}]\n\n[runtime]\npath = \"{}\"\n\n[plugins.geo]\npath = \"geo\"\n",
            workspace().join("runtime").display()
        );
        std::fs::write(env.path("velox.toml"), text).unwrap();
        let _ = std::fs::remove_dir_all(env.path("gen"));
        env.velox(&["generate", "-o", "gen"])
    };
    ok(&with("\"rr-geo/fast\", \"rr-runtime/testing\""));
    let cargo = std::fs::read_to_string(env.path("gen/Cargo.toml")).unwrap();
    assert!(cargo.contains("\"rr-geo\" = { path = \"deps/1-geo\", features = [\"fast\"] }"), "{cargo}");
    assert!(cargo.contains("rr-runtime = { path = \"deps/0-runtime/runtime\", features = [\"testing\"] }"), "{cargo}");
    let e = err(&with("\"rr-nope/fast\""));
    assert!(e.contains("velox.toml:2: `binary.features`: `rr-nope` is not a crate of this build; name one of rr-runtime, rr-geo"), "{e}");
    let e = err(&with("\"rr-geo/slow\""));
    assert!(e.contains("velox.toml:2: `binary.features`: crate `rr-geo` has no feature `slow`; it has fast"), "{e}");
}

#[test]
fn generate_refuses_what_it_did_not_generate() {
    let env = Env::new();
    let recipe = env.recipe("velox.toml", "");
    // Someone's crate.
    std::fs::create_dir_all(env.path("mine")).unwrap();
    std::fs::write(env.path("mine/Cargo.toml"), "[package]\nname = \"mine\"\n").unwrap();
    let e = err(&env.velox(&["generate", "-c", &recipe, "-o", "mine"]));
    assert!(e.contains("`mine` is not empty and was not generated by velox"), "{e}");
    assert_eq!(std::fs::read_to_string(env.path("mine/Cargo.toml")).unwrap(), "[package]\nname = \"mine\"\n");
    assert!(!env.path("mine/src").exists());
    std::fs::write(env.path("file"), "").unwrap();
    assert!(err(&env.velox(&["generate", "-c", &recipe, "-o", "file"])).contains("`file` is a file; give `-o` a new or empty directory"));
    // Its own output is regenerated in place.
    ok(&env.velox(&["generate", "-c", &recipe, "-o", "gen"]));
    ok(&env.velox(&["generate", "-c", &recipe, "-o", "gen"]));
}

#[test]
fn mistakes_in_sources_name_file_line_and_key() {
    let env = Env::new();
    fixture(&env.path("alpha"), "rr-alpha", "alpha", "0.1");
    std::fs::write(env.path("plain-file"), "").unwrap();
    let cases = [
        ("[plugins.a]\npath = \"alpha\"\n\n[plugins.b]\npath = \"alpha\"\n", "velox.toml:11: `plugins.b`: crate `rr-alpha` is already the plugin `a` (line 8); keep one of them"),
        ("[plugins.a]\npath = \"missing\"\n", "velox.toml:8: `plugins.a`: path `"),
        ("[plugins.a]\npath = \"plain-file\"\n", "velox.toml:8: `plugins.a`: path `"),
    ];
    for (plugins, want) in cases {
        let recipe = env.recipe("velox.toml", plugins);
        let e = err(&env.velox(&["generate", "-c", &recipe, "-o", "gen"]));
        assert!(e.contains(want), "{e}");
        assert!(!env.path("gen").exists(), "nothing half-written: {e}");
    }
    let e = err(&env.velox(&["new-plugin", "x", "--dir", "plain-file/x"]));
    assert!(e.contains("cannot create `plain-file/x"), "{e}");
}
