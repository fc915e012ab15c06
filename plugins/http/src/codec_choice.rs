//! `http.codec: auto`: send JSON contexts to PHP apps whose spiral/roadrunner-http accepts them
//! (PROTOCOL.md §3.2: before 3.5 only JSON, 3.5 and later 3.x both), because protobuf costs about
//! twice as much in PHP's pure protobuf runtime; protobuf, RoadRunner's codec, where unsure or where
//! ext-protobuf makes it cheap. Looked up once at start, from composer's `installed.php`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Codec;

const PACKAGE: &str = "spiral/roadrunner-http";

/// The codec requests are sent with, and why (logged at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub codec: Codec,
    pub why: String,
}

/// Resolve `setting` for workers started by `command` (the pool's argv) from `cwd` with `env`.
pub async fn choose(setting: Codec, command: &[String], cwd: &Path, env: &BTreeMap<String, String>) -> Choice {
    let choice = |codec, why: String| Choice { codec, why };
    if setting != Codec::Auto {
        return choice(setting, "set by `http.codec`".into());
    }
    let run = Invocation::of(command, cwd);
    let script_dir = run.script.as_deref().and_then(|s| cwd.join(s).parent().map(Path::to_path_buf));
    let Some(installed) = script_dir.as_deref().and_then(installed_php).or_else(|| installed_php(cwd)) else {
        let why = "no vendor/composer/installed.php above the worker script or the working directory";
        return choice(Codec::Proto, format!("{why}, so the {PACKAGE} version is unknown"));
    };
    let version = std::fs::read_to_string(&installed).ok().and_then(|text| package_version(&text, PACKAGE));
    let Some(version) = version else {
        return choice(Codec::Proto, format!("{} does not list {PACKAGE}", installed.display()));
    };
    let found = format!("{PACKAGE} {version} in {}", installed.display());
    match major_minor(&version) {
        Some((major, minor)) if major < 3 || (major == 3 && minor < 5) => choice(Codec::Json, format!("{found} accepts JSON only")),
        Some((3, _)) => match &run.php {
            None => choice(Codec::Proto, format!("{found}; the command's program is not PHP, so whether ext-protobuf is loaded is not known")),
            Some(php) => match ext_protobuf(php, env).await {
                Some(false) => choice(Codec::Json, format!("{found} accepts both and ext-protobuf is not loaded: JSON is about twice as fast")),
                Some(true) => choice(Codec::Proto, format!("{found} accepts both and ext-protobuf is loaded")),
                None => choice(Codec::Proto, format!("{found}; `{} -m` failed, so whether ext-protobuf is loaded is unknown", php[0])),
            },
        },
        _ => choice(Codec::Proto, format!("{found}: which codecs this version accepts is unknown")),
    }
}

/// How a worker command runs PHP.
#[derive(Debug, Default, PartialEq, Eq)]
struct Invocation {
    /// The PHP binary with the options that decide which extensions load (`-c`, `-n`, `-d`,
    /// `-z`): what `-m` is asked of. `None` when the program is not PHP.
    php: Option<Vec<String>>,
    /// The script, as written in the command (relative to the working directory).
    script: Option<String>,
}

impl Invocation {
    /// `php [options] script [args]` (`php`, `php8.2`, `/usr/bin/php8.2`; the script is the
    /// first argument that is not one of PHP's options, or `-f`'s, whatever its name), a script
    /// run by its `#!` line naming PHP (Octane's `vendor/bin/roadrunner-worker`, Symfony's
    /// `bin/console`), else only a `.php` argument if there is one.
    fn of(command: &[String], cwd: &Path) -> Invocation {
        let Some(program) = command.first() else { return Invocation::default() };
        // `env [-i] [VAR=value…] php …` runs what follows.
        if Path::new(program).file_name().is_some_and(|n| n == "env") {
            let rest = command[1..].iter().position(|a| !a.starts_with('-') && !a.contains('=')).map_or(&[][..], |i| &command[1 + i..]);
            return Invocation::of(rest, cwd);
        }
        if is_php(program) {
            return php_args(program, &command[1..]);
        }
        if let Some(php) = shebang_php(&cwd.join(program)) {
            return Invocation { php: Some(php), script: Some(program.clone()) };
        }
        Invocation { php: None, script: command.iter().find(|a| a.ends_with(".php")).cloned() }
    }
}

/// `php`, `php8.2`, `php82`, `php-cli`, `php8.3-zts`, by any path.
fn is_php(program: &str) -> bool {
    let name = Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some(rest) = name.strip_prefix("php") else { return false };
    let version = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    matches!(version, "" | "-cli" | "-zts")
}

/// PHP CLI options that take a value (`php -h`); the ones that load extensions are kept for `-m`.
const SHORT_WITH_VALUE: &[u8] = b"cdfrBRFEzSt";
const LONG_WITH_VALUE: &[&str] = &["php-ini", "define", "file", "run", "process-begin", "process-code", "process-file", "process-end", "zend-extension", "rf", "rc", "re", "rz", "ri"];

/// Read PHP's own options up to the script: `-d x=y`, `-dx=y`, `--define=x=y`, clusters like
/// `-nd x=y`, `-f file`, `--` (the script follows).
fn php_args(program: &str, args: &[String]) -> Invocation {
    let mut php = vec![program.to_string()];
    let mut script = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        // `(option, value)` per option in this argument; a missing value is the next argument.
        let mut options: Vec<(String, Option<String>)> = Vec::new();
        if arg == "--" {
            script = args.get(i).cloned();
            break;
        } else if let Some(long) = arg.strip_prefix("--") {
            let (name, value) = long.split_once('=').map_or((long, None), |(n, v)| (n, Some(v.to_string())));
            let value = if LONG_WITH_VALUE.contains(&name) { value.or_else(|| take(args, &mut i)) } else { None };
            options.push((format!("--{name}"), value));
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (at, c) in short.char_indices() {
                if SHORT_WITH_VALUE.contains(&(c as u8)) && c.is_ascii() {
                    let attached = &short[at + 1..];
                    let value = if attached.is_empty() { take(args, &mut i) } else { Some(attached.to_string()) };
                    options.push((format!("-{c}"), value));
                    break;
                }
                options.push((format!("-{c}"), None));
            }
        } else {
            script = Some(arg.clone());
            break;
        }
        for (option, value) in options {
            match option.as_str() {
                "-f" | "--file" => script = value,
                "-c" | "-d" | "-z" | "--php-ini" | "--define" | "--zend-extension" => php.extend([option].into_iter().chain(value)),
                "-n" | "--no-php-ini" => php.push(option),
                // Code or a server instead of a script.
                "-r" | "--run" | "-B" | "-R" | "-F" | "-E" | "-S" | "--process-begin" | "--process-code" | "--process-file" | "--process-end" => {
                    return Invocation { php: Some(php), script: None };
                }
                _ => {}
            }
        }
        if script.is_some() {
            break;
        }
    }
    Invocation { php: Some(php), script }
}

fn take(args: &[String], i: &mut usize) -> Option<String> {
    let value = args.get(*i).cloned();
    *i += 1;
    value
}

/// The PHP of an executable script's `#!` line (`#!/usr/bin/env php`, `#!/usr/bin/php8.2 -n`).
fn shebang_php(script: &Path) -> Option<Vec<String>> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?.strip_prefix("#!")?.lines().next()?;
    let mut words = line.split_whitespace();
    let mut program = words.next()?;
    if Path::new(program).file_name().is_some_and(|n| n == "env") {
        program = words.find(|w| !w.starts_with('-'))?;
    }
    is_php(program).then(|| std::iter::once(program.to_string()).chain(words.map(str::to_string)).collect())
}

/// The first `vendor/composer/installed.php` from `dir` upwards, stopping at the project root
/// (the first directory with a `composer.json`).
fn installed_php(dir: &Path) -> Option<PathBuf> {
    for dir in dir.ancestors() {
        let installed = dir.join("vendor/composer/installed.php");
        if installed.is_file() {
            return Some(installed);
        }
        if dir.join("composer.json").is_file() {
            return None;
        }
    }
    None
}

/// A package's `'version' => '…'` in composer's `installed.php` (a PHP array literal Composer
/// writes, read as text: executing it would need a PHP process for a one-line lookup).
fn package_version(installed: &str, package: &str) -> Option<String> {
    let entry = &installed[installed.find(&format!("'{package}' =>"))?..];
    let value = &entry[entry.find("'version' => '")? + "'version' => '".len()..];
    Some(value[..value.find('\'')?].to_string())
}

/// `3.5.1.0` → (3, 5); branch aliases such as `dev-master` are unknown.
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether the worker's PHP (its binary with the options that load extensions) loads
/// ext-protobuf, by `php -m`; `None` when that cannot be run.
async fn ext_protobuf(php: &[String], env: &BTreeMap<String, String>) -> Option<bool> {
    let mut cmd = tokio::process::Command::new(php.first()?);
    cmd.args(&php[1..]).arg("-m").envs(env.iter().map(|(k, v)| (k.to_uppercase(), v))).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output()).await.ok()?.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim().eq_ignore_ascii_case("protobuf")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTALLED: &str = "<?php return array(\n    'root' => array(\n        'name' => 'app/app',\n        'pretty_version' => 'dev-main',\n        'version' => 'dev-main',\n    ),\n    'versions' => array(\n        'nyholm/psr7' => array(\n            'pretty_version' => '1.8.2',\n            'version' => '1.8.2.0',\n        ),\n        'spiral/roadrunner-http' => array(\n            'pretty_version' => 'v3.4.0',\n            'version' => '3.4.0.0',\n            'dev_requirement' => false,\n        ),\n    ),\n);\n";

    #[test]
    fn the_version_is_read_from_the_package_entry() {
        assert_eq!(package_version(INSTALLED, PACKAGE).as_deref(), Some("3.4.0.0"));
        assert_eq!(package_version(INSTALLED, "nyholm/psr7").as_deref(), Some("1.8.2.0"));
        assert_eq!(package_version(INSTALLED, "spiral/roadrunner-worker"), None);
        assert_eq!(package_version("<?php return array('spiral/roadrunner-http' => array('version' => ", PACKAGE), None);
    }

    #[test]
    fn versions_are_read_as_major_minor() {
        assert_eq!(major_minor("3.5.1.0"), Some((3, 5)));
        assert_eq!(major_minor("v2.2.0"), Some((2, 2)));
        assert_eq!(major_minor("dev-master"), None);
        assert_eq!(major_minor("3"), None);
    }

    /// The lookup from the working directory stops at the project root.
    #[tokio::test]
    async fn the_working_directory_is_searched_up_to_the_project_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("app/vendor/composer")).unwrap();
        std::fs::create_dir_all(root.path().join("app/public")).unwrap();
        std::fs::write(root.path().join("app/vendor/composer/installed.php"), INSTALLED).unwrap();
        let command = ["php".to_string(), "-r".into(), "echo 1;".into()];
        let env = BTreeMap::new();
        let found = choose(Codec::Auto, &command, &root.path().join("app/public"), &env).await;
        assert_eq!(found.codec, Codec::Json, "{}", found.why);
        assert!(found.why.contains("spiral/roadrunner-http 3.4.0.0"), "{}", found.why);
        std::fs::create_dir_all(root.path().join("other")).unwrap();
        std::fs::write(root.path().join("other/composer.json"), "{}").unwrap();
        std::fs::create_dir_all(root.path().join("vendor/composer")).unwrap();
        std::fs::write(root.path().join("vendor/composer/installed.php"), INSTALLED).unwrap();
        let unsure = choose(Codec::Auto, &command, &root.path().join("other"), &env).await;
        assert_eq!(unsure.codec, Codec::Proto, "{}", unsure.why);
        assert_eq!(choose(Codec::Json, &command, &root.path().join("other"), &env).await.codec, Codec::Json);
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    /// PHP's own options are skipped, whatever their spelling; the script is the first argument
    /// that is not one, or `-f`'s, whatever its name.
    #[test]
    fn the_script_follows_php_options() {
        let cwd = Path::new("/nonexistent");
        let of = |words: &[&str]| Invocation::of(&argv(words), cwd);
        let run = |php: &[&str], script: &str| Invocation { php: Some(argv(php)), script: Some(script.into()) };
        assert_eq!(of(&["php", "vendor/bin/roadrunner-worker"]), run(&["php"], "vendor/bin/roadrunner-worker"));
        assert_eq!(of(&["/usr/bin/php8.2", "/app/vendor/bin/roadrunner-worker"]), run(&["/usr/bin/php8.2"], "/app/vendor/bin/roadrunner-worker"));
        assert_eq!(of(&["php", "bin/console", "baldinof:roadrunner:worker"]), run(&["php"], "bin/console"));
        assert_eq!(of(&["php", "app.php", "serve"]), run(&["php"], "app.php"));
        assert_eq!(
            of(&["php8.3", "-d", "memory_limit=1G", "-dopcache.enable_cli=1", "--define", "a=b", "--define=c=d", "-n", "-c", "/etc/php.ini", "worker", "-d", "x"]),
            run(&["php8.3", "-d", "memory_limit=1G", "-d", "opcache.enable_cli=1", "--define", "a=b", "--define", "c=d", "-n", "-c", "/etc/php.ini"], "worker")
        );
        assert_eq!(of(&["php", "-nd", "x=y", "-e", "-f", "bin/worker", "--", "arg"]), run(&["php", "-n", "-d", "x=y"], "bin/worker"));
        assert_eq!(of(&["php-zts", "-zxdebug.so", "--", "-weird-name"]), run(&["php-zts", "-z", "xdebug.so"], "-weird-name"));
        // Code instead of a script; programs that are not PHP.
        assert_eq!(of(&["/usr/bin/env", "-i", "APP_ENV=prod", "php8.2", "-n", "app.php", "serve"]), run(&["php8.2", "-n"], "app.php"));
        assert_eq!(of(&["php", "-r", "echo 1;", "x.php"]), Invocation { php: Some(argv(&["php"])), script: None });
        assert_eq!(of(&["phpunit", "x.php"]), Invocation { php: None, script: Some("x.php".into()) });
        assert_eq!(of(&["/bin/sh", "run-worker"]), Invocation::default());
        assert!(["php", "php8.2", "php82", "/usr/local/bin/php-cli", "php8.3-zts"].iter().all(|p| is_php(p)));
        assert!(!["php-fpm", "phpstan", "sh", "/opt/php/bin/wrapper"].iter().any(|p| is_php(p)));
    }

    /// The PHP on `PATH` by its real path (`/usr/bin/php8.2`), as Octane passes it.
    fn php_binary() -> String {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let php = std::env::split_paths(&path).map(|d| d.join("php")).find(|p| p.is_file()).expect("php on PATH");
        std::fs::canonicalize(php).unwrap().display().to_string()
    }

    /// A project laid out as Laravel, Symfony and Spiral lay theirs out, on
    /// spiral/roadrunner-http 3.5.1; the worker scripts the frameworks run.
    fn project() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        };
        write("composer.json", "{}");
        write("vendor/composer/installed.php", &INSTALLED.replace("v3.4.0", "v3.5.1").replace("3.4.0.0", "3.5.1.0"));
        write("vendor/laravel/octane/composer.json", "{}");
        write("vendor/laravel/octane/bin/roadrunner-worker", "#!/usr/bin/env php\n<?php\n");
        write("vendor/bin/roadrunner-worker", "#!/usr/bin/env php\n<?php\ninclude __DIR__ . '/../laravel/octane/bin/roadrunner-worker';\n");
        write("bin/console", "#!/usr/bin/env php\n<?php\n");
        write("public/index.php", "<?php\n");
        write("app.php", "<?php\n");
        root
    }

    /// Every way docs/INTEGRATIONS.md lists, from the project's directory and from elsewhere:
    /// the script is found whatever its name, so a 3.5 app without ext-protobuf gets JSON.
    #[tokio::test]
    async fn every_framework_command_finds_its_script() {
        let project = project();
        let (root, php) = (project.path().display().to_string(), php_binary());
        let elsewhere = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, Vec<String>, &Path)> = vec![
            ("Octane: PHP,BASE/vendor/bin/roadrunner-worker", argv(&[&php, &format!("{root}/vendor/bin/roadrunner-worker")]), elsewhere.path()),
            ("Octane, relative", argv(&["php", "vendor/bin/roadrunner-worker"]), project.path()),
            ("Symfony bundle: php public/index.php", argv(&["php", "public/index.php"]), project.path()),
            ("Symfony bin/console", argv(&["php", &format!("{root}/bin/console"), "baldinof:roadrunner:worker"]), elsewhere.path()),
            ("bin/console run by its #! line", argv(&[&format!("{root}/bin/console"), "baldinof:roadrunner:worker"]), elsewhere.path()),
            ("Spiral: php app.php serve", argv(&["php", "app.php", "serve"]), project.path()),
            ("Temporal: PHP,[php args],worker.php,[args]", argv(&[&php, "-d", "opcache.enable_cli=0", "-dmemory_limit=256M", &format!("{root}/app.php"), "--flag"]), elsewhere.path()),
            ("-f", argv(&["php", "-n", "-f", &format!("{root}/bin/console"), "--", "serve"]), elsewhere.path()),
        ];
        for (what, command, cwd) in cases {
            let found = choose(Codec::Auto, &command, cwd, &BTreeMap::new()).await;
            assert_eq!(found.codec, Codec::Json, "{what}: {}", found.why);
            assert!(found.why.contains("spiral/roadrunner-http 3.5.1.0") && found.why.contains("ext-protobuf is not loaded"), "{what}: {}", found.why);
        }
        // A program that is not PHP nor a PHP script: protobuf, saying why.
        let unsure = choose(Codec::Auto, &argv(&["/bin/sh", "-c", "exec php worker"]), project.path(), &BTreeMap::new()).await;
        assert_eq!(unsure.codec, Codec::Proto, "{}", unsure.why);
        assert!(unsure.why.contains("not PHP"), "{}", unsure.why);
    }
}
