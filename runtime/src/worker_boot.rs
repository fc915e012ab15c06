//! Why a worker did not start, in one message that names the cause and the fix: a program not
//! found (which name, which PATH, how to install PHP), a worker script PHP cannot open (which
//! file, relative to which directory), a PHP error at boot (PHP's own lines).

use std::io;
use std::path::{Path, PathBuf};

/// The text after "cannot start `<command>`: " for a failed `exec` of `args[0]`.
pub fn start_failure(args: &[String], env: &[(String, String)], err: &io::Error) -> String {
    let program = args.first().map(String::as_str).unwrap_or("");
    if program.is_empty() {
        return "the command is empty; set `server.command`".into();
    }
    let install = install_hint(program);
    match err.kind() {
        io::ErrorKind::NotFound if !program.contains('/') => {
            // The child's PATH is what the lookup used: `server.env` may set its own.
            let path = env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).or_else(|| std::env::var("PATH").ok());
            let path = path.unwrap_or_default();
            format!("program `{program}` not found in PATH ({path}); {install}or set `server.command` to the program's full path")
        }
        io::ErrorKind::NotFound => {
            let full = in_workdir(Path::new(program));
            if full.exists() {
                // The file is there, so what exec did not find is its `#!` interpreter.
                format!("`{}` exists, but the interpreter on its `#!` line was not found ({err})", full.display())
            } else {
                format!("`{}` does not exist{}; {install}or fix the path in `server.command`", full.display(), relative_note(program))
            }
        }
        io::ErrorKind::PermissionDenied => {
            format!("`{}` is not executable by this user ({err}); `chmod +x` it or fix `server.command`", in_workdir(Path::new(program)).display())
        }
        _ => err.to_string(),
    }
}

/// How to install the program, for PHP (the common case on a fresh machine).
fn install_hint(program: &str) -> &'static str {
    let base = Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or(program);
    if base == "php" || base.starts_with("php8") || base.starts_with("php7") || base == "php-cli" {
        "install PHP's command line (Debian/Ubuntu: `apt-get install php-cli`), "
    } else {
        ""
    }
}

/// The message for PHP's "Could not open input file: X" (PHP prints it on stdout, which is the
/// relay, so it arrives as an invalid frame whose text is `seen`).
pub fn missing_script(command: &str, seen: &str) -> Option<String> {
    let rest = seen.split("Could not open input file: ").nth(1)?;
    // `seen` is escaped text (`frame::printable`): the line ends at a literal `\n`.
    let script = rest.split("\\n").next().unwrap_or(rest).split("\\r").next().unwrap_or(rest).trim();
    if script.is_empty() {
        return None;
    }
    let full = in_workdir(Path::new(script));
    Some(format!(
        "PHP cannot open the worker script `{script}` given in `{command}`: there is no `{}`{}; fix the script path in `server.command`",
        full.display(),
        relative_note(script)
    ))
}

/// The cause of a boot failure as PHP's stderr tells it: the last PHP error line, if any.
pub fn php_error(stderr: &str) -> Option<&str> {
    const MARKERS: [&str; 5] = ["Fatal error:", "Parse error:", "Uncaught ", "Warning:", "Could not open input file:"];
    stderr.lines().rev().find(|l| MARKERS.iter().any(|m| l.contains(m))).map(str::trim)
}

/// Where a relative path given in `server.command` is looked for: the worker's working
/// directory, which is rr's (the config file's directory, or `-w`).
fn in_workdir(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
}

fn relative_note(path: &str) -> String {
    if Path::new(path).is_absolute() {
        return String::new();
    }
    let dir = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "?".into());
    format!(" (relative paths in `server.command` are relative to `{dir}`: the config file's directory, or the `-w` directory)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_php_names_path_and_the_debian_package() {
        let args = vec!["php-no-such".to_string()];
        let err = io::Error::from(io::ErrorKind::NotFound);
        let text = start_failure(&args, &[("PATH".into(), "/a:/b".into())], &err);
        assert!(text.contains("program `php-no-such` not found in PATH (/a:/b)"), "{text}");
        assert!(!text.contains("apt-get"), "{text}");
        let text = start_failure(&["php".to_string()], &[("PATH".into(), "/a".into())], &err);
        assert!(text.contains("apt-get install php-cli"), "{text}");
    }

    #[test]
    fn could_not_open_names_the_file_and_directory() {
        let text = missing_script("php w.php", "Could not open input file: w.php\\n").unwrap();
        let dir = std::env::current_dir().unwrap();
        assert!(text.contains(&format!("there is no `{}`", dir.join("w.php").display())), "{text}");
        assert!(missing_script("php w.php", "garbage").is_none());
    }

    #[test]
    fn php_error_is_the_last_error_line() {
        let tail = "starting\nPHP Fatal error:  Uncaught Exception: boom in /w.php:3\nStack trace:\n#0 {main}";
        assert_eq!(php_error(tail), Some("PHP Fatal error:  Uncaught Exception: boom in /w.php:3"));
        assert_eq!(php_error("just output"), None);
    }
}
