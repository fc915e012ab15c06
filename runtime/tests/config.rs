//! `.rr.yaml` loading: expansion, overrides, includes, env files, and the messages of bad files.

use std::path::Path;

use rr_runtime::config::{Config, LoadOptions, expand};
use rr_runtime::pool::{Command, PoolConfig};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load(path: &Path, overrides: &[&str]) -> Result<Config, String> {
    Config::load(&LoadOptions { path: path.to_path_buf(), overrides: overrides.iter().map(|s| s.to_string()).collect(), dotenv: None, ..Default::default() })
        .map_err(|e| e.to_string())
}

#[test]
fn env_expansion_everywhere() {
    // SAFETY: variables unique to this test.
    unsafe {
        std::env::set_var("RRT_HOST", "10.0.0.1");
        std::env::set_var("RRT_EMPTY", "");
    }
    assert_eq!(expand("${RRT_HOST}:$RRT_HOST/${RRT_UNSET:-8080}"), "10.0.0.1:10.0.0.1/8080");
    assert_eq!(expand("${RRT_EMPTY:-fallback}"), "fallback", "the default applies to empty values too");
    assert_eq!(expand("cost: $$5 and $ alone"), "cost: $5 and $ alone");
    let c = Config::from_str("version: '3'\nserver:\n  env:\n    A: ${RRT_HOST}\n  command: [php, \"${RRT_UNSET:-w.php}\"]\n").unwrap();
    assert_eq!(c.value("server.env.A").unwrap(), "10.0.0.1");
    assert_eq!(c.value("server.command").unwrap()[1], "w.php", "strings inside lists too");
}

#[test]
fn overrides_nested_typed_and_expanded() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ".rr.yaml", "version: '3'\nhttp:\n  address: :8080\n  pool:\n    num_workers: 2\n");
    // SAFETY: unique variable.
    unsafe { std::env::set_var("RRT_WORKERS", "7") };
    let c = load(&path, &["http.pool.num_workers=${RRT_WORKERS}", "http.address=\"127.0.0.1:9000\"", "rpc.listen=tcp://127.0.0.1:6001"]).unwrap();
    let pool: PoolConfig = c.section("http.pool").unwrap().unwrap();
    assert_eq!(pool.num_workers, 7);
    assert_eq!(c.value("http.address").unwrap(), "127.0.0.1:9000");
    assert_eq!(c.value("rpc.listen").unwrap(), "tcp://127.0.0.1:6001", "new sections can be created");
    assert!(load(&path, &["novalue"]).unwrap_err().contains("expected `-o key=value`"));
    assert!(load(&path, &["=x"]).unwrap_err().contains("key should not be empty"));
    assert!(load(&path, &["a="]).unwrap_err().contains("value should not be empty"));
}

#[test]
fn a_string_override_fills_a_list_split_on_commas() {
    // What Laravel Octane passes (`-o http.middleware=static`), read as RoadRunner's viper does.
    #[derive(serde::Deserialize)]
    struct Http {
        middleware: Vec<String>,
        pool: Pool,
    }
    #[derive(serde::Deserialize)]
    struct Pool {
        ports: Vec<u16>,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ".rr.yaml", "version: '3'\nhttp:\n  middleware: [gzip]\n  pool:\n    ports: [1]\n");
    let c = load(&path, &["http.middleware=static", "http.pool.ports=80,443"]).unwrap();
    let http: Http = c.section("http").unwrap().unwrap();
    assert_eq!(http.middleware, ["static"]);
    assert_eq!(http.pool.ports, [80, 443], "each part read as the list's element type");
    assert!(rr_runtime::http::middleware_listed(&c, "static"));
    let c = load(&path, &["http.middleware=headers,static"]).unwrap();
    assert_eq!(c.section::<Http>("http").unwrap().unwrap().middleware, ["headers", "static"]);
    assert!(rr_runtime::http::middleware_listed(&c, "headers") && !rr_runtime::http::middleware_listed(&c, "gzip"));
    // A string that cannot be a list of numbers still fails, naming the key.
    let err = load(&path, &["http.pool.ports=http"]).unwrap().section::<Http>("http").err().unwrap().to_string();
    assert!(err.contains("http.pool.ports"), "{err}");
}

#[test]
fn version_is_required_and_a_string() {
    let dir = tempfile::tempdir().unwrap();
    let missing = write(dir.path(), "a.yaml", "server:\n  command: php w.php\n");
    assert_eq!(load(&missing, &[]).unwrap_err(), "rr configuration file should contain a version e.g: version: 3");
    let number = write(dir.path(), "b.yaml", "version: 3\n");
    assert_eq!(load(&number, &[]).unwrap_err(), "config key `version`: version should be a string: write `version: \"3\"` (found a number)");
    let unknown = write(dir.path(), "c.yaml", "version: '4'\n");
    assert!(load(&unknown, &[]).unwrap_err().contains("unknown configuration version \"4\""));
    // An override can fix it: the check runs after overrides.
    assert!(load(&number, &["version=\"3\""]).is_ok());
}

#[test]
fn includes_overwrite_top_level_keys() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "extra.yaml", "version: '3'\nhttp:\n  address: 127.0.0.1:1\nlogs:\n  level: debug\n");
    let main = write(dir.path(), ".rr.yaml", &format!("version: '3'\ninclude: [{}]\nhttp:\n  address: :8080\n  raw_body: true\n", base.display()));
    let c = load(&main, &[]).unwrap();
    assert_eq!(c.value("http.address").unwrap(), "127.0.0.1:1");
    assert!(c.value("http.raw_body").is_none(), "a top-level key is replaced whole");
    assert_eq!(c.value("logs.level").unwrap(), "debug");
    let other = write(dir.path(), "v2.yaml", "version: '2.7'\n");
    let bad = write(dir.path(), "bad.yaml", &format!("version: '3'\ninclude: [{}]\n", other.display()));
    assert!(load(&bad, &[]).unwrap_err().contains("they must match"));
}

#[test]
fn envfile_and_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".env", "RRT_FROM_ENVFILE=envfile-value\n");
    let path = write(dir.path(), ".rr.yaml", "version: '3'\nenvfile: .env\nserver:\n  env:\n    X: ${RRT_FROM_ENVFILE}\n");
    assert_eq!(load(&path, &[]).unwrap().value("server.env.X").unwrap(), "envfile-value");

    let dotenv = write(dir.path(), "other.env", "RRT_FROM_DOTENV=dotenv-value\n");
    let path = write(dir.path(), "d.yaml", "version: '3'\na: ${RRT_FROM_DOTENV}\n");
    let c = Config::load(&LoadOptions { path, overrides: vec![], dotenv: Some(dotenv), ..Default::default() }).unwrap();
    assert_eq!(c.value("a").unwrap(), "dotenv-value");
}

#[test]
fn bad_files_and_keys_get_specific_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.yaml", "version: '3'\nhttp: [unclosed\n");
    let e = load(&path, &[]).unwrap_err();
    assert!(e.starts_with(&format!("{}: invalid YAML", path.display())), "{e}");
    assert!(load(&dir.path().join("nope.yaml"), &[]).unwrap_err().contains("nope.yaml"));

    let c = Config::from_str("version: '3'\nhttp:\n  pool:\n    num_workers: abc\n").unwrap();
    let e = c.section::<PoolConfig>("http.pool").unwrap_err().to_string();
    assert_eq!(e, "config key `http.pool.num_workers`: invalid type: string \"abc\", expected usize");
    let c = Config::from_str("version: '3'\nhttp:\n  pool:\n    allocate_timeout: forever\n").unwrap();
    let e = c.section::<PoolConfig>("http.pool").unwrap_err().to_string();
    assert_eq!(e, "config key `http.pool.allocate_timeout`: invalid duration `forever`: expected a Go duration such as `60s`, `1m30s` or `500ms`, found string \"forever\"");

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Needs {
        command: String,
    }
    let c = Config::from_str("version: '3'\nserver:\n  relay: pipes\n").unwrap();
    assert_eq!(c.section::<Needs>("server").unwrap_err().to_string(), "config key `server`: missing field `command`");
}

#[test]
fn unknown_relay_scheme_names_the_key() {
    let c = Config::from_str("version: '3'\nserver:\n  command: php w.php\n  relay: udp://x:1\n").unwrap();
    let e = rr_runtime::server::Server::from_config(&c, "t").err().unwrap().to_string();
    assert_eq!(e, "config key `server.relay`: unknown relay `udp://x:1`: expected `pipes`, `tcp://host:port` or `unix://path`");
}

#[test]
fn go_durations() {
    use rr_runtime::config::duration::parse;
    use std::time::Duration;
    assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse("0").unwrap(), Duration::ZERO);
    assert!(parse("10 minutes").is_err());
}

/// RoadRunner's weak decoding (viper + mapstructure `WeaklyTypedInput`), one row per rule:
/// the YAML of one key, and what the section reads from it.
#[test]
fn weak_typing_follows_roadrunner() {
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Typed {
        list: Vec<String>,
        ports: Vec<u16>,
        env: std::collections::BTreeMap<String, String>,
        n: u32,
        i: i64,
        f: f64,
        b: bool,
        s: String,
        #[serde(with = "rr_runtime::config::duration")]
        d: Duration,
        cmd: Option<Command>,
        opt: Option<u8>,
        inner: Inner,
    }
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Inner {
        x: u8,
        y: u8,
    }
    use std::time::Duration;
    fn args(t: &Typed) -> Vec<String> {
        t.cmd.as_ref().map(Command::args).unwrap_or_default()
    }
    type Row = (&'static str, fn(&Typed) -> bool);
    let rows: &[Row] = &[
        // A string for a list: split on commas (`-o http.middleware=static,gzip`).
        ("list: static", |t| t.list == ["static"]),
        ("list: headers,static", |t| t.list == ["headers", "static"]),
        ("list: ''", |t| t.list.is_empty()),
        ("list:", |t| t.list.is_empty()),
        ("list: [a, b]", |t| t.list == ["a", "b"]),
        ("list: 7", |t| t.list == ["7"]),
        ("ports: 80,443", |t| t.ports == [80, 443]),
        ("ports: 80", |t| t.ports == [80]),
        // A list of maps for a map (the Symfony bundle's `server.env`), later keys winning.
        ("env: [{APP_RUNTIME: R}, {APP_ENV: prod}]", |t| t.env.len() == 2 && t.env["APP_RUNTIME"] == "R" && t.env["APP_ENV"] == "prod"),
        ("env: [{A: x}, {A: y}]", |t| t.env["A"] == "y"),
        ("env: []", |t| t.env.is_empty()),
        ("env: {PORT: 8080, DEBUG: true}", |t| t.env["PORT"] == "8080" && t.env["DEBUG"] == "1"),
        ("inner: [{x: 1}, {y: 2}]", |t| t.inner.x == 1 && t.inner.y == 2),
        // Numbers and booleans written as strings, and the other way round.
        ("n: '42'", |t| t.n == 42),
        ("n: '0x10'", |t| t.n == 16),
        ("n: true", |t| t.n == 1),
        ("i: ' -5 '", |t| t.i == -5),
        ("f: '1.5'", |t| t.f == 1.5),
        ("b: 'true'", |t| t.b),
        ("b: '1'", |t| t.b),
        ("b: T", |t| t.b),
        ("b: 'F'", |t| !t.b),
        ("b: 1", |t| t.b),
        ("b: 0", |t| !t.b),
        ("s: 8080", |t| t.s == "8080"),
        ("s: true", |t| t.s == "1"),
        ("opt: '7'", |t| t.opt == Some(7)),
        // Durations as Go writes them, and bare numbers as seconds.
        ("d: 30s", |t| t.d == Duration::from_secs(30)),
        ("d: 1m30s", |t| t.d == Duration::from_secs(90)),
        ("d: 1h2m3.5s", |t| t.d == Duration::from_millis(3_723_500)),
        ("d: 500ms", |t| t.d == Duration::from_millis(500)),
        ("d: 30", |t| t.d == Duration::from_secs(30)),
        ("d: '30'", |t| t.d == Duration::from_secs(30)),
        // Commands: a string is split on commas (Laravel Octane's `-o server.command=`), a
        // list of one item on spaces.
        ("cmd: php worker.php", |t| args(t) == ["php", "worker.php"]),
        ("cmd: /usr/bin/php,/app/vendor/bin/roadrunner-worker", |t| args(t) == ["/usr/bin/php", "/app/vendor/bin/roadrunner-worker"]),
        ("cmd: ['php worker.php']", |t| args(t) == ["php", "worker.php"]),
        ("cmd: [php, 'my worker.php']", |t| args(t) == ["php", "my worker.php"]),
    ];
    for (yaml, check) in rows {
        let c = Config::from_str(&format!("t:\n  {yaml}\n")).unwrap();
        let typed: Typed = c.section("t").unwrap_or_else(|e| panic!("`{yaml}`: {e}")).unwrap();
        assert!(check(&typed), "`{yaml}` read as {typed:?}");
    }
    let errors = [
        ("n: abc", "config key `t.n`: invalid type: string \"abc\", expected u32"),
        ("b: maybe", "config key `t.b`: invalid type: string \"maybe\", expected a boolean"),
        ("env: [a, b]", "config key `t.env`: invalid type: sequence, expected a map"),
        ("d: 10 minutes", "config key `t.d`: invalid duration `10 minutes`: expected a Go duration such as `60s`, `1m30s` or `500ms`, found string \"10 minutes\""),
    ];
    for (yaml, expected) in errors {
        let c = Config::from_str(&format!("t:\n  {yaml}\n")).unwrap();
        assert_eq!(c.section::<Typed>("t").unwrap_err().to_string(), expected, "`{yaml}`");
    }
}

#[test]
fn version_2_7_is_read_with_the_3_changes_and_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let logs = write(dir.path(), "logs.yaml", "version: '2.7'\nlogs:\n  level: warn\n");
    let text = format!("version: '2.7'\ninclude: [{}]\nhttp:\n  address: :8080\n  otel:\n    exporter: otlp\nreload:\n  interval: 1s\n", logs.display());
    let path = write(dir.path(), ".rr.yaml", &text);
    let c = load(&path, &[]).unwrap();
    assert_eq!(c.value("logs.level").unwrap(), "warn", "2.7 files include 2.7 files");
    assert_eq!(c.value("version").unwrap(), "3");
    assert_eq!(c.value("otel.exporter").unwrap(), "otlp", "`http.otel` moved to the top level");
    assert!(c.value("http.otel").is_none() && c.value("reload").is_none());
    assert_eq!(c.value("http.address").unwrap(), ":8080");
}

// Config mistakes (issue #21): each gets one clear message.

#[test]
fn a_duplicate_key_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ".rr.yaml", "version: '3'\nhttp:\n  address: :8080\n  pool:\n    num_workers: 2\n  address: :9090\n");
    let e = load(&path, &[]).unwrap_err();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    assert_eq!(e, format!("{}: duplicate key `address` at lines 3 and 6: a key may appear once in a mapping; remove or merge one of them", path.display()));
    // The same key in different mappings is fine.
    assert!(Config::from_str("a:\n  x: 1\nb:\n  x: 2\n").is_ok());
}

#[test]
fn a_directory_for_the_config_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path(), &[]).unwrap_err();
    assert!(e.contains("is a directory") && e.contains(&format!("-c {}", dir.path().join(".rr.yaml").display())), "{e}");
}

#[test]
fn misspelt_keys_are_named_with_the_nearest_valid_key() {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Http {
        address: Option<String>,
        pool: Option<PoolConfig>,
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Static {
        dir: String,
    }
    let c = Config::from_str(
        "version: '3'\nhttp:\n  adress_typo: :8080\n  pool:\n    num_wrokers: 2\n    max_jobs: 1\n  static:\n    dir: .\n  zzz: 1\n",
    )
    .unwrap();
    c.section::<Http>("http").unwrap();
    assert_eq!(c.unknown_keys().len(), 4, "`http.static` too: {:?}", c.unknown_keys());
    // The static plugin reads `http.static`: no longer unknown.
    c.section::<Static>("http.static").unwrap();
    let unknown = c.unknown_keys();
    assert_eq!(
        unknown,
        [
            "`http.adress_typo` is not read by this server (misspelt?): did you mean `address`?",
            "`http.pool.num_wrokers` is not read by this server (misspelt?): did you mean `num_workers`?",
            "`http.zzz` is not read by this server (misspelt?): the keys here are `address`, `pool`",
        ]
    );
}

#[test]
fn config_handed_on_decodes_with_the_same_rules() {
    // What the kv and jobs plugins hand their drivers (`kv.<name>.config`), e.g. from `-o`.
    #[derive(Debug, serde::Deserialize)]
    struct Redis {
        addrs: Vec<String>,
        db: i64,
    }
    let redis: Redis = rr_runtime::config::decode(&serde_json::json!({"addrs": "a:1,b:2", "db": "2"}), "kv.cache.config").unwrap();
    assert_eq!((redis.addrs, redis.db), (vec!["a:1".to_string(), "b:2".to_string()], 2));
    let e = rr_runtime::config::decode::<Redis>(&serde_json::json!({"addrs": [], "db": "x"}), "kv.cache.config").unwrap_err();
    assert_eq!(e.to_string(), "config key `kv.cache.config.db`: invalid type: string \"x\", expected i64");
}
