//! `velox build` / `velox generate`:
//!
//! 1. `plan::load`: parse and validate velox.toml (errors name file, line and key).
//! 2. `resolve`: path, git (the `git` command, cached), registry, tarball (sha256 checked before use).
//! 3. `inspect`: each plugin's entry metadata and runtime requirement, no duplicate names.
//! 4. `render`: the generated project from `plugin-templates/` (deterministic), then cargo
//!    metadata on it (registry plugins, a single runtime), and the `--locked` check.
//! 5. `compile`: cargo with a shared target directory, progress, cargo's own errors.
//! 6. `install`: binary, `velox.lock`, manifest, `--version` smoke test.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::ops::inspect::{self, PluginInfo};
use crate::ops::lock::{Lock, LockedCrate};
use crate::ops::render::{self, PluginDep};
use crate::ops::resolve::{Pin, Resolved, Resolver};
use crate::ops::install::Manifest;
use crate::ops::{compile, install};
use crate::plan::{self, Plan};
use crate::report::Reporter;

pub struct BuildOptions {
    pub recipe: PathBuf,
    pub out: PathBuf,
    pub offline: bool,
    pub locked: bool,
    pub debug: bool,
    pub target: Option<String>,
    pub jobs: Option<usize>,
    pub target_dir: Option<PathBuf>,
}

/// Steps 1-4: everything up to a generated project, resolved and checked.
pub struct Prepared {
    pub plan: Plan,
    pub project: PathBuf,
    pub plugins: Vec<PluginInfo>,
    pub lock: Lock,
    pub resolver: Resolver,
}

/// Steps 1-4 into `project` (default: one per recipe in the cache). `cargo_lock` seeds the
/// project's Cargo.lock (`velox verify` replays the recorded dependency versions).
pub fn prepare(recipe: &Path, project: Option<&Path>, cargo_lock: Option<&str>, offline: bool, report: &Reporter) -> anyhow::Result<Prepared> {
    report.step("load", &recipe.display().to_string());
    let plan = plan::load(recipe)?;
    let resolver = Resolver::new(offline)?;

    report.step("resolve", &format!("runtime ({})", plan.runtime.describe()));
    let runtime_at = plan.at(plan.runtime_line, "runtime");
    let runtime = resolver.resolve(&runtime_at, &plan.runtime)?;
    let mut resolved = Vec::new();
    for spec in &plan.plugins {
        report.step("resolve", &format!("{} ({})", spec.key, spec.source.describe()));
        resolved.push(resolver.resolve(&plan.at_plugin(spec), &spec.source)?);
    }

    // Step 3 for crates on disk; registry crates are inspected from the project's metadata below.
    let mut links = render::Links::default();
    let runtime_info = match &runtime {
        Resolved::Dir { dir, .. } => {
            let (pkg, root) = inspect::package_at(dir).with_context(|| runtime_at.clone())?;
            links.add("runtime", root, dir);
            Some(inspect::runtime(dir, &pkg)?)
        }
        Resolved::Registry { .. } => None,
    };
    let mut infos: Vec<Option<PluginInfo>> = Vec::new();
    for (spec, r) in plan.plugins.iter().zip(&resolved) {
        infos.push(match r {
            Resolved::Dir { dir, .. } => {
                report.step("inspect", &spec.key);
                let (pkg, root) = inspect::package_at(dir).with_context(|| plan.at_plugin(spec))?;
                links.add(&spec.key, root, dir);
                match &runtime_info {
                    Some(rt) => Some(inspect::plugin(&spec.key, &pkg, rt)?),
                    None => None,
                }
            }
            Resolved::Registry { .. } => None,
        });
    }

    let project = match project {
        Some(p) => p.to_path_buf(),
        None => resolver.cache.join("projects").join(format!("{}-{}", plan.name, crate::ops::resolve::short_hash(&std::fs::canonicalize(recipe)?.display().to_string()))),
    };
    let crate_names: Vec<String> =
        plan.plugins.iter().zip(&infos).map(|(spec, info)| info.as_ref().map(|i| i.crate_name.clone()).unwrap_or_else(|| spec.key.clone())).collect();
    // Two keys for one crate would give the generated Cargo.toml a duplicate key.
    for (i, (spec, name)) in plan.plugins.iter().zip(&crate_names).enumerate() {
        if let Some(first) = crate_names[..i].iter().position(|n| n == name) {
            let other = &plan.plugins[first];
            bail!("{}: crate `{name}` is already the plugin `{}` (line {}); keep one of them", plan.at_plugin(spec), other.key, other.line);
        }
    }
    let mut crates = vec![("rr-runtime".to_string(), runtime_info.as_ref().map(|r| r.features.clone()))];
    crates.extend(crate_names.iter().zip(&infos).map(|(n, info)| (n.clone(), info.as_ref().map(|i| i.features.clone()))));
    let features = render::features_by_crate(&plan, &crates)?;
    let feature_list = |name: &str| features.get(name).map(Vec::as_slice).unwrap_or(&[]);
    let deps: Vec<PluginDep> = crate_names
        .into_iter()
        .zip(&resolved)
        .zip(&infos)
        .map(|((crate_name, r), info)| PluginDep {
            lib_name: crate_name.replace('-', "_"),
            entry: info.as_ref().map(|i| i.entry.clone()).unwrap_or_else(|| "Plugin".into()),
            dep: render::dependency(&links.local(r), feature_list(&crate_name)),
            crate_name,
        })
        .collect();
    let runtime_dep = render::dependency(&links.local(&runtime), feature_list("rr-runtime"));
    let runtime_patch = matches!(runtime, Resolved::Dir { .. }).then(|| render::dependency(&links.local(&runtime), &[]));
    let render = |deps: &[PluginDep]| render::render(recipe, &plan.name, &plan.version, &runtime_dep, runtime_patch.as_deref(), deps, &links);
    report.step("render", &project.display().to_string());
    render::write(&project, &render(&deps)?)?;
    if let Some(text) = cargo_lock {
        std::fs::write(project.join("Cargo.lock"), text).with_context(|| format!("cannot write `{}`", project.join("Cargo.lock").display()))?;
    }

    report.step("inspect", "generated project (cargo metadata)");
    let meta = inspect::generated(&project, offline)?;
    inspect::single_runtime(&meta)?;
    let rt_pkg = meta.packages.iter().find(|p| p.name.as_str() == "rr-runtime").context("the generated project does not link rr-runtime")?;
    let rt = inspect::RuntimeInfo { version: rt_pkg.version.clone(), features: Vec::new() };
    let mut plugins = Vec::new();
    for ((spec, info), dep) in plan.plugins.iter().zip(infos).zip(&deps) {
        let info = match info {
            Some(i) => i,
            None => {
                let pkg = meta
                    .packages
                    .iter()
                    .find(|p| p.name.as_str() == dep.crate_name)
                    .with_context(|| format!("plugin `{}`: crate `{}` not found in the registry resolution", spec.key, dep.crate_name))?;
                inspect::plugin(&spec.key, pkg, &rt)?
            }
        };
        plugins.push(info);
    }
    inspect::check_duplicates(&plugins)?;
    // Registry-resolved entry types may differ from the "Plugin" default assumed while rendering.
    if deps.iter().zip(&plugins).any(|(d, p)| d.entry != p.entry) {
        let deps: Vec<PluginDep> = deps.into_iter().zip(&plugins).map(|(d, p)| PluginDep { entry: p.entry.clone(), ..d }).collect();
        render::write(&project, &render(&deps)?)?;
    }

    let locked = |key: &str, name: &str, crate_name: &str, version: &str, source: &plan::Source, r: &Resolved| LockedCrate {
        key: key.into(),
        name: name.into(),
        crate_name: crate_name.into(),
        version: version.into(),
        source: source.describe(),
        commit: match r {
            Resolved::Dir { pin: Pin::Git { commit }, .. } => Some(commit.clone()),
            _ => None,
        },
        sha256: match r {
            Resolved::Dir { pin: Pin::Url { sha256 }, .. } => Some(sha256.clone()),
            _ => None,
        },
    };
    let lock = Lock {
        rustc: crate::ops::lock::rustc_version(),
        runtime: locked("runtime", "", "rr-runtime", &rt.version.to_string(), &plan.runtime, &runtime),
        plugins: plan
            .plugins
            .iter()
            .zip(&plugins)
            .zip(&resolved)
            .map(|((spec, info), r)| locked(&spec.key, &info.name, &info.crate_name, &info.version, &spec.source, r))
            .collect(),
    };
    Ok(Prepared { plan, project, plugins, lock, resolver })
}

/// The whole pipeline; returns the installed binary's path.
pub fn build(opts: &BuildOptions, report: &Reporter) -> anyhow::Result<serde_json::Value> {
    let prepared = prepare(&opts.recipe, None, None, opts.offline, report)?;
    let lock_path = prepared.plan.dir().join("velox.lock");
    let recorded = Lock::read(&lock_path)?;
    if opts.locked {
        prepared.lock.check_locked(recorded.as_ref(), &lock_path)?;
        if let Some(r) = &recorded
            && r.rustc != prepared.lock.rustc
        {
            report.warn(&format!("velox.lock was made with {}, this build uses {}", r.rustc, prepared.lock.rustc));
        }
    }
    let debug = opts.debug || prepared.plan.debug;
    let target = opts.target.clone().or_else(|| prepared.plan.target.clone()).unwrap_or_else(host_target);
    let inputs = compile::Inputs::from_env()?;
    let built = compile_prepared(&prepared, &Settings { debug, target: &target, inputs: &inputs, jobs: opts.jobs, target_dir: opts.target_dir.as_deref(), offline: opts.offline }, report)?;

    let Prepared { plan, project, plugins, lock, .. } = prepared;
    report.step("install", &opts.out.display().to_string());
    let binary = install::copy_binary(&built, &opts.out, &plan.name)?;
    let names: Vec<String> = plugins.iter().map(|p| p.name.clone()).collect();
    install::smoke_test(&binary, &names)?;
    lock.write(&lock_path)?;
    let cargo_lock = project.join("Cargo.lock");
    let manifest = Manifest {
        name: plan.name.clone(),
        version: plan.version.clone(),
        binary: plan.name.clone(),
        sha256: install::sha256_file(&binary)?,
        target,
        profile: if debug { "debug" } else { "release" }.into(),
        rustc: lock.rustc.clone(),
        velox: env!("CARGO_PKG_VERSION").into(),
        rustflags: inputs.rustflags,
        source_date_epoch: inputs.source_date_epoch,
        generated: install::generated_sha256(&project)?,
        cargo_lock: std::fs::read_to_string(&cargo_lock).with_context(|| format!("cannot read `{}`", cargo_lock.display()))?,
        runtime: lock.runtime,
        plugins: lock.plugins,
    };
    let manifest_path = manifest.write(&opts.out)?;
    Ok(serde_json::json!({
        "binary": binary,
        "manifest": manifest_path,
        "lock": lock_path,
        "plugins": names,
        "sha256": manifest.sha256,
    }))
}

/// How step 5 runs: what `velox build` takes from its flags and `velox verify` from the manifest.
pub struct Settings<'a> {
    pub debug: bool,
    pub target: &'a str,
    pub inputs: &'a compile::Inputs,
    pub jobs: Option<usize>,
    pub target_dir: Option<&'a Path>,
    pub offline: bool,
}

/// Step 5 on a prepared project; the binary's path in the target directory.
pub fn compile_prepared(prepared: &Prepared, settings: &Settings, report: &Reporter) -> anyhow::Result<PathBuf> {
    let target_dir = match settings.target_dir {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| prepared.resolver.cache.join("target")),
    };
    let profile = if settings.debug { "debug" } else { "release" };
    report.step("compile", &format!("{} ({profile}, {}, target dir {})", prepared.plan.name, settings.target, target_dir.display()));
    compile::compile(
        &compile::CompileOptions {
            project: &prepared.project,
            target_dir: &target_dir,
            debug: settings.debug,
            target: settings.target,
            inputs: settings.inputs,
            jobs: settings.jobs,
            offline: settings.offline,
            bin: &prepared.plan.name,
        },
        report,
    )
}

fn host_target() -> String {
    let out = std::process::Command::new("rustc").arg("-vV").output().ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("host: ").map(str::to_string)))
        .unwrap_or_else(|| format!("{}-unknown-{}", std::env::consts::ARCH, std::env::consts::OS))
}
