//! Stage four: inspect what sync made — HSM's EnvironmentInspector, as a
//! check that fails on drift instead of printing warnings.
//!
//! Everything here reads files: `pyvenv.cfg`, `*.dist-info/METADATA`,
//! `uv.lock`, `requirements.txt`; for node services the lock file and the
//! installed `package.json` files. No process is spawned, so inspecting a
//! hundred services stays cheap.

pub mod drift;
pub mod env;
mod node;
mod pip;

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::manifest::model::RuntimeType;
use crate::plan::{Plan, PlannedService};
use crate::python;
use env::PackageDiff;

/// Version of the JSON report of `cargo hsm check`.
pub const REPORT_SCHEMA: u32 = 1;

/// One difference between what is on disk and what the manifest and the
/// lock files say. `kind` is stable: CI scripts may match on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// `service:embedder`, `library:my-utils`, `root`, `compose`, `lock`.
    pub component: String,
    /// The Python distribution concerned, for package findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    pub expected: String,
    pub found: String,
    /// The command that fixes it.
    pub fix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    VenvMissing,
    VenvBroken,
    LockfileMissing,
    /// A local project's requirements differ from what its `uv.lock` recorded.
    LockfileStale,
    PackageMissing,
    PackageExtra,
    PackageWrongVersion,
    RootLibraryMissing,
    RootLibraryWrongVersion,
    RootHasServicePackage,
    ComposeDrift,
    EnvFileDrift,
    GitWrongCommit,
    GitDirty,
    GitMissing,
    LockMissing,
    LockStale,
    /// A sync was killed and its journal is still on disk.
    SyncInterrupted,
    /// An entry hsm added to a node service's `package.json` that the
    /// registry no longer lists (the next sync removes it).
    DependencyLeftover,
    /// Something `cargo hsm sync` would still change (a file it would
    /// write, edit or remove, a checkout it would move): what its dry run
    /// predicts.
    SyncPending,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::VenvMissing => "venv-missing",
            FindingKind::VenvBroken => "venv-broken",
            FindingKind::LockfileMissing => "lockfile-missing",
            FindingKind::LockfileStale => "lockfile-stale",
            FindingKind::PackageMissing => "package-missing",
            FindingKind::PackageExtra => "package-extra",
            FindingKind::PackageWrongVersion => "package-wrong-version",
            FindingKind::RootLibraryMissing => "root-library-missing",
            FindingKind::RootLibraryWrongVersion => "root-library-wrong-version",
            FindingKind::RootHasServicePackage => "root-has-service-package",
            FindingKind::ComposeDrift => "compose-drift",
            FindingKind::EnvFileDrift => "env-file-drift",
            FindingKind::GitWrongCommit => "git-wrong-commit",
            FindingKind::GitDirty => "git-dirty",
            FindingKind::GitMissing => "git-missing",
            FindingKind::LockMissing => "lock-missing",
            FindingKind::LockStale => "lock-stale",
            FindingKind::SyncInterrupted => "sync-interrupted",
            FindingKind::DependencyLeftover => "dependency-leftover",
            FindingKind::SyncPending => "sync-pending",
        }
    }
}

impl Finding {
    /// The fix as one plain instruction: a bare command in backticks after
    /// "run", prose (which quotes its own commands) as it is.
    pub fn help(&self) -> String {
        if self.fix.starts_with("cargo ") {
            format!("run `{}`", self.fix)
        } else {
            self.fix.clone()
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}]: expected {}, found {} ({})",
            self.component,
            self.kind.as_str(),
            self.expected,
            self.found,
            self.help()
        )
    }
}

const FIX_SYNC: &str = "cargo hsm sync";

impl Finding {
    /// The finding with another fix than `cargo hsm sync`.
    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }
}

fn package_finding(
    kind: FindingKind,
    component: &str,
    package: &str,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> Finding {
    Finding {
        package: Some(package.to_string()),
        ..finding(kind, component, expected, found)
    }
}

pub(crate) fn finding(
    kind: FindingKind,
    component: &str,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> Finding {
    Finding {
        kind,
        component: component.to_string(),
        package: None,
        expected: expected.into(),
        found: found.into(),
        fix: FIX_SYNC.to_string(),
    }
}

/// What an environment should hold, and what it holds.
struct EnvState {
    expected: BTreeMap<String, String>,
    /// Everything that may be installed (the lock, or what pip pulled in).
    allowed: std::collections::BTreeSet<String>,
    installed: BTreeMap<String, String>,
}

/// The venv of an environment service: `<target>/.venv`.
pub fn service_venv(plan: &Plan, svc: &PlannedService) -> Option<Utf8PathBuf> {
    svc.target_path
        .as_ref()
        .map(|t| plan.project.workspace_root.join(t).join(".venv"))
}

/// The shared project's venv.
pub fn root_venv(plan: &Plan) -> Utf8PathBuf {
    plan.project
        .workspace_root
        .join(&plan.project.python_project)
        .join(".venv")
}

/// The `[project].name` of a pyproject.toml, for finding it in uv.lock.
fn project_name(pyproject: &Utf8Path) -> Option<String> {
    let v = python::project::pyproject(pyproject).flatten()?;
    v.get("project")?.get("name")?.as_str().map(str::to_string)
}

/// Default dependency groups uv installs: `[tool.uv].default-groups`, else `dev`.
fn default_groups(pyproject: &Utf8Path) -> Vec<String> {
    let from_file = python::project::pyproject(pyproject)
        .flatten()
        .and_then(|v| {
            let groups = v.get("tool")?.get("uv")?.get("default-groups")?;
            Some(
                groups
                    .as_array()?
                    .iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect(),
            )
        });
    from_file.unwrap_or_else(|| vec!["dev".to_string()])
}

/// Checks one uv or venv environment against its lock. Returns the state so
/// the root check can tell service-only packages apart.
fn inspect_python_env(
    component: &str,
    project_dir: &Utf8Path,
    runtime: RuntimeType,
    dependencies: &[String],
    pins: Option<(&Utf8Path, &Utf8Path)>,
    findings: &mut Vec<Finding>,
) -> Option<EnvState> {
    let venv = project_dir.join(".venv");
    let cfg = venv.join("pyvenv.cfg");
    if !cfg.is_file() {
        findings.push(finding(
            FindingKind::VenvMissing,
            component,
            format!("a virtual environment at `{venv}`"),
            "none",
        ));
        return None;
    }
    if let Some(why) = python::venv::broken(&venv, runtime == RuntimeType::Venv) {
        findings.push(finding(
            FindingKind::VenvBroken,
            component,
            format!("a whole virtual environment at `{venv}`"),
            why,
        ));
        return None;
    }
    let Some(pyver) = env::venv_python_version(&venv) else {
        findings.push(finding(
            FindingKind::VenvBroken,
            component,
            "`pyvenv.cfg` with the Python version",
            "no version in it",
        ));
        return None;
    };
    let interpreter = venv.join("bin").join("python");
    let interpreter_ok = std::fs::metadata(&interpreter).is_ok()
        || venv.join("Scripts").join("python.exe").is_file();
    if !interpreter_ok {
        findings.push(finding(
            FindingKind::VenvBroken,
            component,
            format!("a usable interpreter `{interpreter}`"),
            "a dangling or missing interpreter (its base Python moved?)",
        ));
        return None;
    }
    let Some(marker_env) = python::marker_environment(&pyver) else {
        findings.push(finding(
            FindingKind::VenvBroken,
            component,
            "a parsable Python version",
            pyver,
        ));
        return None;
    };
    let dists = match env::installed_distributions(&venv) {
        Ok(i) => i,
        Err(e) => {
            findings.push(finding(
                FindingKind::VenvBroken,
                component,
                "a readable site-packages",
                e.to_string(),
            ));
            return None;
        }
    };
    if let Some((root, rel)) = pins {
        git_pins(component, root, rel, &dists, findings);
    }
    let mut extras: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let expected = match runtime {
        RuntimeType::Uv => {
            // A member of an upstream uv workspace is locked by the workspace.
            let lock_dir = match project_dir.join("uv.lock").exists() {
                true => project_dir.to_path_buf(),
                false => python::project::uv_workspace_root(project_dir, Utf8Path::new("/"))
                    .unwrap_or_else(|| project_dir.to_path_buf()),
            };
            let lock = lock_dir.join("uv.lock");
            let Ok(text) = std::fs::read_to_string(&lock) else {
                findings.push(finding(
                    FindingKind::LockfileMissing,
                    component,
                    format!("`{lock}`"),
                    "no lock file",
                ));
                return None;
            };
            let pyproject = project_dir.join("pyproject.toml");
            let Some(name) = project_name(&pyproject) else {
                // Poetry 1.x, legacy setuptools: uv cannot sync it as a
                // project, so a sync would not fix this.
                let mut f = finding(
                    FindingKind::VenvBroken,
                    component,
                    format!("a `[project]` table in `{pyproject}` (uv syncs PEP 621 projects)"),
                    "none",
                );
                f.fix = "give the service `runtime = \"venv\"` (pip builds the project with its \
                         `[build-system]`), or add a `[project]` table upstream"
                    .to_string();
                findings.push(f);
                return None;
            };
            match env::uv_lock_expectation(
                &text,
                Some(&lock_dir),
                &name,
                &default_groups(&pyproject),
                &marker_env,
            ) {
                Ok((e, stale)) => {
                    for pkg in stale {
                        findings.push(package_finding(
                            FindingKind::LockfileStale,
                            component,
                            &pkg,
                            format!("`{lock}` recording what `{pkg}`'s pyproject.toml requires"),
                            "other requirements (the lock is older than the project's files)",
                        ));
                    }
                    e
                }
                Err(why) => {
                    findings.push(finding(
                        FindingKind::LockfileMissing,
                        component,
                        format!("a readable `{lock}`"),
                        why,
                    ));
                    return None;
                }
            }
        }
        _ => {
            let pip = match pip::expectation(project_dir, dependencies, &dists, &marker_env) {
                Ok(p) => p,
                Err(why) => {
                    let mut f = finding(
                        FindingKind::LockfileMissing,
                        component,
                        "a readable `requirements.txt`",
                        why,
                    );
                    f.fix = "fix the requirements file".to_string();
                    findings.push(f);
                    return None;
                }
            };
            for (what, path) in &pip.missing_local {
                findings.push(package_finding(
                    FindingKind::PackageMissing,
                    component,
                    what,
                    format!("{what} installed from `{path}`"),
                    "not installed",
                ));
            }
            extras = pip.extras;
            pip.expected
        }
    };
    // What may be installed: the lock's packages for uv; for pip, what was
    // asked for and what it pulled in (`Requires-Dist`, markers and extras
    // evaluated).
    let allowed: std::collections::BTreeSet<String> = match runtime {
        RuntimeType::Uv => expected.keys().cloned().collect(),
        _ => env::closure_with_extras(
            expected
                .keys()
                .map(|k| (k.clone(), extras.get(k).cloned().unwrap_or_default())),
            &dists,
            &marker_env,
        ),
    };
    let installed: BTreeMap<String, String> =
        dists.into_iter().map(|(n, d)| (n, d.version)).collect();
    if runtime != RuntimeType::Uv {
        // What the installed packages require, transitively, must be there too.
        for n in allowed.difference(&expected.keys().cloned().collect()) {
            if !installed.contains_key(n) && !env::SEED_PACKAGES.contains(&n.as_str()) {
                findings.push(package_finding(
                    FindingKind::PackageMissing,
                    component,
                    n,
                    format!("{n} installed (required by the installed packages)"),
                    "not installed",
                ));
            }
        }
    }
    for d in env::compare(&expected, &installed) {
        let f = match d {
            PackageDiff::Missing { package, expected } => package_finding(
                FindingKind::PackageMissing,
                component,
                &package,
                format!(
                    "{package} {}",
                    if expected.is_empty() {
                        "installed".to_string()
                    } else {
                        expected
                    }
                ),
                "not installed",
            ),
            PackageDiff::Extra { package, .. } if allowed.contains(&package) => continue,
            PackageDiff::Extra { package, found } => package_finding(
                FindingKind::PackageExtra,
                component,
                &package,
                format!(
                    "no {package} ({} does not need it)",
                    if runtime == RuntimeType::Uv {
                        "uv.lock"
                    } else {
                        "the requirements"
                    }
                ),
                format!("{package} {found}"),
            ),
            PackageDiff::WrongVersion {
                package,
                expected,
                found,
            } => package_finding(
                FindingKind::PackageWrongVersion,
                component,
                &package,
                format!("{package} {expected}"),
                format!("{package} {found}"),
            ),
        };
        findings.push(f);
    }
    Some(EnvState {
        expected,
        allowed,
        installed,
    })
}

/// One environment service's findings, and the packages its environment
/// may hold (for the root's check).
fn inspect_service_env(
    plan: &Plan,
    svc: &crate::plan::PlannedService,
    lock: Option<&crate::lock::HsmLock>,
) -> (Vec<Finding>, BTreeSet<String>) {
    let mut findings = Vec::new();
    let mut allowed = BTreeSet::new();
    let component = format!("service:{}", svc.name);
    let Some(target) = &svc.target_path else {
        return (findings, allowed);
    };
    let dir = plan.project.workspace_root.join(target);
    match svc.runtime() {
        Some(rt @ (RuntimeType::Uv | RuntimeType::Venv)) => {
            let deps: Vec<String> = svc
                .dependencies
                .iter()
                .map(|d| match d {
                    crate::plan::Dependency::Library { requirement, .. } => requirement.clone(),
                    crate::plan::Dependency::Requirement { requirement } => requirement.clone(),
                })
                .collect();
            // A git-sourced venv service's pins (see the venv runtime).
            let pins = (rt == RuntimeType::Venv && svc.checkout_path.is_some())
                .then(|| crate::lock::committed_lock(&svc.name, Utf8Path::new(python::pins::FILE)));
            let pins = pins
                .as_deref()
                .map(|p| (plan.project.workspace_root.as_path(), p));
            if let Some(state) =
                inspect_python_env(&component, &dir, rt, &deps, pins, &mut findings)
            {
                allowed.extend(state.allowed);
            }
        }
        Some(RuntimeType::Node) => {
            let recorded = lock
                .and_then(|l| l.service(&svc.name))
                .map(|s| s.added_dependencies.as_slice())
                .unwrap_or_default();
            let root = &plan.project.workspace_root;
            node::inspect(&component, &dir, svc, recorded, &mut findings);
            node::inspect_root(root, target, svc, &mut findings);
        }
        Some(RuntimeType::Pixi) => {
            let env_dir = dir.join(".pixi").join("envs").join("default");
            if !env_dir.is_dir() {
                findings.push(finding(
                    FindingKind::VenvMissing,
                    &component,
                    format!("a pixi environment at `{env_dir}`"),
                    "none",
                ));
            }
            if !dir.join("pixi.lock").is_file() {
                findings.push(finding(
                    FindingKind::LockfileMissing,
                    &component,
                    format!("`{}`", dir.join("pixi.lock")),
                    "no lock file",
                ));
            }
        }
        _ => {}
    }
    (findings, allowed)
}

/// A venv service's git dependencies sit at the commits its pins name
/// (`rel`, under the workspace `root`).
fn git_pins(
    component: &str,
    root: &Utf8Path,
    rel: &Utf8Path,
    dists: &BTreeMap<String, python::installed::Installed>,
    findings: &mut Vec<Finding>,
) {
    let Ok(text) = std::fs::read_to_string(root.join(rel)) else {
        return;
    };
    for pin in python::pins::read(&text) {
        let Some(d) = dists.get(&pin.name) else {
            // Not needed any more, or reported missing against the requirements.
            continue;
        };
        if pin.holds(Some(d)) {
            continue;
        }
        let short = |c: &str| c.chars().take(12).collect::<String>();
        let found = match &d.vcs {
            Some(v) if v.url == pin.url => format!("{} at commit {}", pin.name, short(&v.commit)),
            Some(v) => format!(
                "{} from `{}` at commit {}",
                pin.name,
                v.url,
                short(&v.commit)
            ),
            None => format!("{} {} (not installed from git)", pin.name, d.version),
        };
        findings.push(package_finding(
            FindingKind::PackageWrongVersion,
            component,
            &pin.name,
            format!(
                "{} at commit {} (pinned in `{rel}`)",
                pin.name,
                short(&pin.commit)
            ),
            found,
        ));
    }
}

/// Inspects every environment service and the shared root environment,
/// except the components in `skip` (see [`verify`]).
pub fn inspect_environments(
    plan: &Plan,
    lock: Option<&crate::lock::HsmLock>,
    skip: &BTreeSet<String>,
) -> Vec<Finding> {
    // Inspecting writes nothing: each directory's workspace is read once.
    let _workspaces = python::project::remember_workspaces();
    // The root is judged against every service's packages: skipping a
    // service is only sound when the root is skipped too.
    let skip_root = skip.contains("libraries") || plan.libraries.is_empty();
    let services: Vec<&crate::plan::PlannedService> = plan
        .environment_services()
        .filter(|svc| !(skip_root && skip.contains(&format!("service:{}", svc.name))))
        .collect();
    // Each service is its own directory tree: the inspections split over
    // the cores, and their findings keep Plan order.
    let per_service = crate::materialize::pool::map_split(
        &services,
        32,
        python::project::remember_workspaces,
        |svc| inspect_service_env(plan, svc, lock),
    );
    let mut findings = Vec::new();
    let mut service_packages: BTreeSet<String> = BTreeSet::new();
    for (found, allowed) in per_service {
        findings.extend(found);
        service_packages.extend(allowed);
    }

    if plan.libraries.is_empty() || skip_root {
        return findings;
    }
    let root_dir = plan
        .project
        .workspace_root
        .join(&plan.project.python_project);
    let Some(root) =
        inspect_python_env("root", &root_dir, RuntimeType::Uv, &[], None, &mut findings)
    else {
        return findings;
    };
    for lib in &plan.libraries {
        let name = python::normalize_name(python::requirement_name(&lib.requirement));
        let component = format!("library:{}", lib.name);
        // A selected library's package is reported once, as the library.
        findings.retain(|f| {
            !(f.component == "root"
                && f.kind != FindingKind::LockfileStale
                && f.package.as_deref() == Some(name.as_str()))
        });
        match (root.installed.get(&name), root.expected.get(&name)) {
            (None, want) => findings.push(package_finding(
                FindingKind::RootLibraryMissing,
                &component,
                &name,
                format!(
                    "{name} {} in the root environment",
                    want.map(String::as_str).unwrap_or("installed")
                ),
                "not installed",
            )),
            (Some(have), Some(want)) if !python::same_version(have, want) => {
                findings.push(package_finding(
                    FindingKind::RootLibraryWrongVersion,
                    &component,
                    &name,
                    format!("{name} {want}"),
                    format!("{name} {have}"),
                ))
            }
            _ => {}
        }
    }
    for pkg in service_packages.difference(&root.allowed) {
        if let Some(v) = root.installed.get(pkg) {
            // Reported once, as what it is: a service's package in the root.
            findings.retain(|f| {
                !(f.component == "root"
                    && f.kind == FindingKind::PackageExtra
                    && f.package.as_deref() == Some(pkg))
            });
            findings.push(package_finding(
                FindingKind::RootHasServicePackage,
                "root",
                pkg,
                format!("no {pkg} (only services need it)"),
                format!("{pkg} {v}"),
            ));
        }
    }
    findings.sort();
    findings.dedup();
    findings
}

/// The result of `cargo hsm check`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub clean: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Adds what a sync would still change (`what`: component and the
    /// action as a sentence), except for components already reported.
    pub fn add_pending(&mut self, what: impl IntoIterator<Item = (String, String)>) {
        let reported: BTreeSet<String> =
            self.findings.iter().map(|f| f.component.clone()).collect();
        let lock_reported = self
            .findings
            .iter()
            .any(|f| matches!(f.kind, FindingKind::LockStale | FindingKind::LockMissing));
        for (component, action) in what {
            let is_lock = component == "hsm.lock";
            if reported.contains(&component) || (is_lock && lock_reported) {
                continue;
            }
            self.findings.push(finding(
                FindingKind::SyncPending,
                if is_lock { "lock" } else { &component },
                "nothing left for `cargo hsm sync` to change",
                action,
            ));
        }
        self.findings.sort();
        self.findings.dedup();
        self.clean = self.findings.is_empty();
    }
}

/// Everything `cargo hsm check` inspects, without changing anything:
/// environments, git checkouts, the compose file, env files and `hsm.lock`.
pub fn check(plan: &Plan) -> crate::Result<Report> {
    let lock_path = crate::lock::HsmLock::path(&plan.project.workspace_root);
    let lock = crate::lock::HsmLock::read(&lock_path)?;
    verify(plan, lock.as_ref(), &BTreeSet::new())
}

/// Sync's verification of its own result: [`check`], except for the
/// components in `unchanged` (`service:<name>`, `libraries`), which sync
/// found `Fresh` — their fingerprint, unchanged since the last verified
/// sync, already covers their environment's state. `check` itself always
/// inspects everything. `lock`: `hsm.lock` as the sync left it.
pub fn verify(
    plan: &Plan,
    lock: Option<&crate::lock::HsmLock>,
    unchanged: &BTreeSet<String>,
) -> crate::Result<Report> {
    let mut findings = inspect_environments(plan, lock, unchanged);
    if crate::fs::sync_journal_pending(&plan.project.workspace_root) {
        findings.push(finding(
            FindingKind::SyncInterrupted,
            "sync",
            "no unfinished sync",
            format!(
                "the journal `{}` of a sync that was interrupted (the next sync rolls it back)",
                crate::fs::SYNC_JOURNAL_DIR
            ),
        ));
    }
    drift::git_services(plan, lock, unchanged, &mut findings);
    drift::compose(plan, &mut findings)?;
    drift::env_files(plan, unchanged, &mut findings)?;
    drift::lock(plan, lock, unchanged, &mut findings);
    findings.sort();
    findings.dedup();
    Ok(Report {
        schema: REPORT_SCHEMA,
        clean: findings.is_empty(),
        findings,
    })
}

#[cfg(test)]
mod help_tests {
    use super::*;

    #[test]
    fn help_is_one_plain_instruction() {
        let mut f = finding(FindingKind::GitDirty, "service:beta", "a", "b");
        assert_eq!(f.help(), "run `cargo hsm sync`");
        f.fix =
            "commit, stash or discard the changes in `services/beta`, then run `cargo hsm sync`"
                .into();
        assert_eq!(f.help(), f.fix);
        assert!(f.to_string().ends_with(&format!("({})", f.fix)));
    }
}
