//! The services of the configured .proto files, read at start without protoc (GRPC.md §2).
//!
//! As RoadRunner: each file is parsed for its package and services, and the services of the
//! files it imports (relative to its directory) are registered too; imports that cannot be read
//! (e.g. `google/protobuf/*.proto`) are skipped. Unlike RoadRunner, a root file that is missing
//! or does not parse, a service without a package and a service defined in two files are startup
//! errors naming the files. Full descriptors (types resolved, imports included) are compiled
//! separately for reflection; a failure there only turns reflection off.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One RPC of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// `returns (stream X)`: every frame the worker streams is one message.
    pub server_streaming: bool,
}

/// A service's methods by name, and the file that defines it.
#[derive(Debug, Clone)]
pub struct Service {
    pub file: PathBuf,
    pub methods: BTreeMap<String, Method>,
}

/// Registered services by full name (`pkg.Service`).
#[derive(Debug, Clone, Default)]
pub struct Services {
    pub services: BTreeMap<String, Service>,
    /// The root files, for the full descriptors.
    pub files: Vec<PathBuf>,
}

/// The files `grpc.proto` names: globs (`*?[`, `**`, `{a,b}`, as RoadRunner ≥ 2025.1.9)
/// expanded, empty items skipped.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let patterns: Vec<String> = patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).flat_map(braces).collect();
    for pattern in patterns.iter().map(String::as_str) {
        if pattern.contains(['*', '?', '[']) {
            let paths = glob::glob(pattern).map_err(|e| format!("config key `grpc.proto`: invalid glob `{pattern}`: {e}"))?;
            // A glob that matches nothing adds nothing, as in RoadRunner.
            files.extend(paths.filter_map(Result::ok).filter(|p| p.is_file()));
        } else if Path::new(pattern).exists() {
            files.push(PathBuf::from(pattern));
        } else {
            return Err(format!("proto file '{pattern}' does not exists (config key `grpc.proto`; paths are relative to the working directory)"));
        }
    }
    Ok(files)
}

/// `a/{b,c}/d` → `a/b/d`, `a/c/d` (the glob crate has no alternatives).
fn braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else { return vec![pattern.to_string()] };
    let Some(close) = pattern[open..].find('}').map(|i| open + i) else { return vec![pattern.to_string()] };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    pattern[open + 1..close].split(',').flat_map(|alt| braces(&format!("{head}{alt}{tail}"))).collect()
}

impl Services {
    /// Parse `files` and the files they import.
    pub fn load(files: Vec<PathBuf>) -> Result<Services, String> {
        let mut out = Services { services: BTreeMap::new(), files: files.clone() };
        let mut seen = BTreeSet::new();
        for file in &files {
            out.add(file, true, &mut seen)?;
        }
        Ok(out)
    }

    fn add(&mut self, path: &Path, root: bool, seen: &mut BTreeSet<PathBuf>) -> Result<(), String> {
        // The same file reached twice (listed twice, imported by two files) counts once.
        if !seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())) {
            return Ok(());
        }
        let shown = path.display();
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| format!("proto file '{shown}': {e}"))
            .and_then(|src| protox_parse::parse(&path.to_string_lossy(), &src).map_err(|e| format!("proto file '{shown}' does not parse: {e}")));
        let file = match parsed {
            Ok(file) => file,
            Err(e) if root => return Err(e),
            Err(e) => {
                tracing::debug!(target: "grpc", "imported file skipped: {e}");
                return Ok(());
            }
        };
        let package = file.package();
        for svc in &file.service {
            if package.is_empty() {
                return Err(format!(
                    "proto file '{shown}': service `{}` has no package; add a `package` statement (clients call `/<package>.{}/<method>`)",
                    svc.name(),
                    svc.name()
                ));
            }
            let name = format!("{package}.{}", svc.name());
            if name == crate::health::SERVICE {
                return Err(format!("proto file '{shown}': service `{name}` is served by rr itself; remove it from the configured protos"));
            }
            if let Some(first) = self.services.get(&name) {
                return Err(format!(
                    "duplicate service registration for \"{name}\": defined in '{}' and in '{shown}'; each service may be defined once in `grpc.proto`",
                    first.file.display()
                ));
            }
            let methods = svc.method.iter().map(|m| (m.name().to_string(), Method { server_streaming: m.server_streaming() })).collect();
            self.services.insert(name, Service { file: path.to_path_buf(), methods });
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        for import in &file.dependency {
            self.add(&dir.join(import), false, seen)?;
        }
        Ok(())
    }

    pub fn method(&self, service: &str, method: &str) -> Result<&Method, String> {
        let svc = self.services.get(service).ok_or_else(|| format!("unknown service {service}"))?;
        svc.methods.get(method).ok_or_else(|| format!("unknown method {method} for service {service}"))
    }

    /// The full descriptors of the root files and everything they import (well-known types
    /// included), each file named relative to its own directory as clients import it.
    pub fn descriptors(&self) -> Result<prost_types::FileDescriptorSet, String> {
        let dirs: BTreeSet<PathBuf> = self.files.iter().map(|f| f.parent().map(Path::to_path_buf).unwrap_or_default()).collect();
        let dirs: Vec<PathBuf> = dirs.into_iter().map(|d| if d.as_os_str().is_empty() { PathBuf::from(".") } else { d }).collect();
        let mut compiler = protox::Compiler::new(&dirs).map_err(|e| e.to_string())?;
        compiler.include_imports(true);
        for file in &self.files {
            compiler.open_file(file).map_err(|e| format!("{}: {e}", file.display()))?;
        }
        Ok(compiler.file_descriptor_set())
    }
}
