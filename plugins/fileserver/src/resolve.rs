//! From a request path to a file inside a root, never outside it.
//!
//! The path is percent-decoded once; a segment `..`, a backslash or a NUL refuses the request
//! instead of being normalised away, and the file found must still be inside the root after
//! symlinks are followed. A directory serves its `index.html`.

use std::path::{Path, PathBuf};

/// `prefix` matches `path` on whole segments, ignoring ASCII case: the rest of the path
/// (still percent-encoded) when it does.
pub fn strip_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let prefix = prefix.trim_end_matches('/');
    let head = path.get(..prefix.len())?;
    let rest = &path[prefix.len()..];
    (head.eq_ignore_ascii_case(prefix) && (rest.is_empty() || rest.starts_with('/'))).then_some(rest)
}

/// The file `rest` names under `root` (canonical), or `None`.
pub fn resolve(root: &Path, rest: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(rest).collect::<Vec<u8>>();
    let decoded = String::from_utf8(decoded).ok()?;
    if decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut path = root.to_path_buf();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            name => path.push(name),
        }
    }
    let mut file = path.canonicalize().ok()?;
    if file.is_dir() {
        file = file.join("index.html").canonicalize().ok()?;
    }
    (file.starts_with(root) && file.is_file()).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments_in_any_case() {
        assert_eq!(strip_prefix("/foo/a.txt", "/foo"), Some("/a.txt"));
        assert_eq!(strip_prefix("/FOO/a.txt", "/foo"), Some("/a.txt"));
        assert_eq!(strip_prefix("/foo", "/foo/"), Some(""));
        assert_eq!(strip_prefix("/foobar/a.txt", "/foo"), None);
        assert_eq!(strip_prefix("/a.txt", "/"), Some("/a.txt"));
        assert_eq!(strip_prefix("/f", "/foo"), None);
    }

    #[test]
    fn nothing_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/index.html"), "i").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("inside")).unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(resolve(&root, "/a.txt"), Some(root.join("a.txt")));
        assert_eq!(resolve(&root, "//sub//"), Some(root.join("sub/index.html")));
        assert_eq!(resolve(&root, "/inside"), Some(root.join("a.txt")));
        for hostile in [
            "/../secret", "/sub/../../secret", "/%2e%2e/secret", "/%2E%2E%2Fsecret", "/..%2fsecret", "/%2e%2e%5csecret",
            "/..\\secret", "/link", "/a.txt%00", "/%252e%252e/secret", "/nope", "/",
        ] {
            assert_eq!(resolve(&root, hostile), None, "{hostile}");
        }
    }
}
