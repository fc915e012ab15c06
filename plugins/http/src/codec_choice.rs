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
    let script = command.iter().position(|a| a.ends_with(".php"));
    let script_dir = script.and_then(|i| cwd.join(&command[i]).parent().map(Path::to_path_buf));
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
        Some((3, _)) => match script.map(|i| ext_protobuf(&command[..i], env)) {
            None => choice(Codec::Proto, format!("{found}; the PHP binary is not known, so whether ext-protobuf is loaded is not either")),
            Some(loaded) => match loaded.await {
                Some(false) => choice(Codec::Json, format!("{found} accepts both and ext-protobuf is not loaded: JSON is about twice as fast")),
                Some(true) => choice(Codec::Proto, format!("{found} accepts both and ext-protobuf is loaded")),
                None => choice(Codec::Proto, format!("{found}; `{} -m` failed, so whether ext-protobuf is loaded is unknown", command[0])),
            },
        },
        _ => choice(Codec::Proto, format!("{found}: which codecs this version accepts is unknown")),
    }
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

/// Whether the worker's PHP (its binary with the options before the script, e.g. `-d` and `-c`)
/// loads ext-protobuf, by `php -m`; `None` when that cannot be run or the binary is not PHP.
async fn ext_protobuf(interpreter: &[String], env: &BTreeMap<String, String>) -> Option<bool> {
    let program = Path::new(interpreter.first()?).file_name()?.to_str()?;
    if !program.starts_with("php") {
        return None;
    }
    let mut cmd = tokio::process::Command::new(&interpreter[0]);
    cmd.args(&interpreter[1..]).arg("-m").envs(env.iter().map(|(k, v)| (k.to_uppercase(), v))).kill_on_drop(true);
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
}
