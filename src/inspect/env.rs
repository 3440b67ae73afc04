//! What is installed in a virtual environment and what its lock file says
//! should be, read from files: `site-packages/*.dist-info/METADATA`,
//! `pyvenv.cfg`, `uv.lock` and pinned `requirements.txt`. No process is
//! spawned, so inspecting a hundred services costs a hundred directory reads.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use pep508_rs::{ExtraName, MarkerEnvironment, MarkerTree};

pub use crate::python::installed::{
    closure_with_extras, installed, installed_distributions, requirement_closure, site_packages,
    venv_python_version, Installed,
};
use crate::python::{normalize_name, normalize_version, same_version};
use camino::Utf8Path;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct UvLock {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct LockPackage {
    name: String,
    version: Option<String>,
    #[serde(default)]
    source: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dependencies: Vec<LockDep>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<LockDep>>,
    #[serde(default)]
    dev_dependencies: BTreeMap<String, Vec<LockDep>>,
    metadata: Option<LockMetadata>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct LockMetadata {
    #[serde(default)]
    requires_dist: Vec<LockDep>,
}

#[derive(Debug, Deserialize)]
struct LockDep {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    #[serde(default)]
    extra: Vec<String>,
}

/// What `uv sync` installs for `project` from a `uv.lock`: the project's
/// dependencies and its default groups, transitively, keeping only edges
/// whose markers hold in `env`. A virtual project itself is not installed.
pub fn expected_from_uv_lock(
    lock_text: &str,
    project: &str,
    groups: &[String],
    env: &MarkerEnvironment,
) -> Result<BTreeMap<String, String>, String> {
    uv_lock_expectation(lock_text, None, project, groups, env).map(|(e, _)| e)
}

/// The local projects (the root, path and editable dependencies) whose
/// `pyproject.toml` names other requirements than `uv.lock` recorded for
/// them: the lock is older than their files (e.g. a library gained a
/// dependency after the last sync). Names only: no process, no resolver.
fn stale_local_packages(lock: &UvLock, lock_dir: &Utf8Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in &lock.package {
        let Some(path) = ["virtual", "editable", "directory"]
            .iter()
            .find_map(|k| p.source.get(*k).and_then(|v| v.as_str()))
        else {
            continue;
        };
        // uv writes no `[package.metadata]` for a project without requirements.
        let no_requirements = Vec::new();
        let requires_dist = p
            .metadata
            .as_ref()
            .map(|m| &m.requires_dist)
            .unwrap_or(&no_requirements);
        let Some(t) =
            crate::python::project::pyproject(&lock_dir.join(path).join("pyproject.toml"))
                .flatten()
        else {
            continue;
        };
        let Some(project) = t.get("project").and_then(|p| p.as_table()) else {
            continue;
        };
        let dynamic = project
            .get("dynamic")
            .and_then(|d| d.as_array())
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("dependencies")));
        if dynamic {
            continue;
        }
        let mut declared: BTreeSet<String> = BTreeSet::new();
        let mut add = |list: Option<&toml::Value>| {
            for r in list.and_then(|l| l.as_array()).into_iter().flatten() {
                if let Some(r) = r.as_str() {
                    declared.insert(normalize_name(crate::python::requirement_name(r.trim())));
                }
            }
        };
        add(project.get("dependencies"));
        if let Some(opt) = project
            .get("optional-dependencies")
            .and_then(|o| o.as_table())
        {
            for list in opt.values() {
                add(Some(list));
            }
        }
        // An extra that names the project itself (`cov = ["attrs[tests]"]`):
        // uv records the other extra's requirements in its place.
        declared.remove(&normalize_name(&p.name));
        let locked: BTreeSet<String> = requires_dist
            .iter()
            .map(|d| normalize_name(&d.name))
            .collect();
        if declared != locked {
            out.push(normalize_name(&p.name));
        }
    }
    out
}

/// [`expected_from_uv_lock`], and the stale local packages of the lock
/// (see [`stale_local_packages`]) when `lock_dir` is given.
pub fn uv_lock_expectation(
    lock_text: &str,
    lock_dir: Option<&Utf8Path>,
    project: &str,
    groups: &[String],
    env: &MarkerEnvironment,
) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let lock: UvLock =
        toml::from_str(lock_text).map_err(|e| format!("cannot parse uv.lock: {}", e.message()))?;
    let stale = lock_dir
        .map(|d| stale_local_packages(&lock, d))
        .unwrap_or_default();
    let project = normalize_name(project);
    fn find<'a>(
        packages: &'a [LockPackage],
        name: &str,
        version: Option<&str>,
    ) -> Option<&'a LockPackage> {
        let n = normalize_name(name);
        let mut it = packages.iter().filter(|p| normalize_name(&p.name) == n);
        match version {
            Some(v) => it.find(|p| p.version.as_deref() == Some(v)),
            None => it.next(),
        }
    }
    let packages = lock.package.as_slice();
    let root = find(packages, &project, None)
        .ok_or_else(|| format!("uv.lock has no package `{project}`"))?;

    let mut out = BTreeMap::new();
    let mut seen: BTreeSet<(String, Option<String>, Vec<String>)> = BTreeSet::new();
    let mut stack: Vec<(&LockPackage, Vec<String>)> = Vec::new();
    fn holds(dep: &LockDep, extras: &[String], env: &MarkerEnvironment) -> bool {
        match &dep.marker {
            None => true,
            Some(m) => match MarkerTree::from_str(m) {
                Ok(tree) => {
                    let ex: Vec<ExtraName> = extras
                        .iter()
                        .filter_map(|e| ExtraName::from_str(e).ok())
                        .collect();
                    tree.evaluate(env, &ex)
                }
                // A marker we cannot read: assume it applies, so nothing is hidden.
                Err(_) => true,
            },
        }
    }
    fn push_deps<'a>(
        packages: &'a [LockPackage],
        deps: &[LockDep],
        extras: &[String],
        env: &MarkerEnvironment,
        stack: &mut Vec<(&'a LockPackage, Vec<String>)>,
    ) {
        for d in deps {
            if holds(d, extras, env) {
                if let Some(p) = find(packages, &d.name, d.version.as_deref()) {
                    stack.push((p, d.extra.clone()));
                }
            }
        }
    }
    if !root.source.contains_key("virtual") {
        // A dynamic version (setuptools_scm, hatch-vcs, flit's
        // `__version__`) is not in the lock: any built version will do.
        out.insert(
            project.clone(),
            root.version
                .as_deref()
                .map(normalize_version)
                .unwrap_or_default(),
        );
    }
    push_deps(packages, &root.dependencies, &[], env, &mut stack);
    for g in groups {
        if let Some(deps) = root.dev_dependencies.get(g) {
            push_deps(packages, deps, &[], env, &mut stack);
        }
    }
    while let Some((pkg, extras)) = stack.pop() {
        let key = (
            normalize_name(&pkg.name),
            pkg.version.clone(),
            extras.clone(),
        );
        if !seen.insert(key) {
            continue;
        }
        if !pkg.source.contains_key("virtual") {
            out.insert(
                normalize_name(&pkg.name),
                pkg.version
                    .as_deref()
                    .map(normalize_version)
                    .unwrap_or_default(),
            );
        }
        push_deps(packages, &pkg.dependencies, &extras, env, &mut stack);
        for e in &extras {
            if let Some(deps) = pkg.optional_dependencies.get(e) {
                push_deps(packages, deps, &extras, env, &mut stack);
            }
        }
    }
    Ok((out, stale))
}

/// One difference between what should be installed and what is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PackageDiff {
    Missing {
        package: String,
        expected: String,
    },
    Extra {
        package: String,
        found: String,
    },
    WrongVersion {
        package: String,
        expected: String,
        found: String,
    },
}

/// Packages a venv may hold without any lock mentioning them: the
/// installers `python -m venv` seeds.
pub const SEED_PACKAGES: [&str; 3] = ["pip", "setuptools", "wheel"];

/// Compares expected (`name → version`, empty version = any) with installed.
pub fn compare(
    expected: &BTreeMap<String, String>,
    installed: &BTreeMap<String, String>,
) -> Vec<PackageDiff> {
    let mut out = Vec::new();
    for (name, want) in expected {
        match installed.get(name) {
            None => out.push(PackageDiff::Missing {
                package: name.clone(),
                expected: want.clone(),
            }),
            Some(have) if !want.is_empty() && !same_version(have, want) => {
                out.push(PackageDiff::WrongVersion {
                    package: name.clone(),
                    expected: want.clone(),
                    found: have.clone(),
                })
            }
            _ => {}
        }
    }
    for (name, have) in installed {
        if !expected.contains_key(name) && !SEED_PACKAGES.contains(&name.as_str()) {
            out.push(PackageDiff::Extra {
                package: name.clone(),
                found: have.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::marker_environment;

    const LOCK: &str = r#"
version = 1
revision = 5
requires-python = ">=3.9"

[[package]]
name = "alpha"
version = "1.0.0"
source = { registry = "../w" }
dependencies = [{ name = "beta", extra = ["fast"] }]

[[package]]
name = "beta"
version = "2.0.0"
source = { registry = "../w" }
[package.optional-dependencies]
fast = [{ name = "Speed_Up" }]

[[package]]
name = "speed-up"
version = "01.02"
source = { registry = "../w" }

[[package]]
name = "devtool"
version = "0.1"
source = { registry = "../w" }

[[package]]
name = "svc"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "alpha" },
    { name = "winonly", marker = "sys_platform == 'win32'" },
    { name = "oldpy", marker = "python_full_version < '3.10'" },
]
[package.dev-dependencies]
dev = [{ name = "devtool" }]

[[package]]
name = "winonly"
version = "1.0"
source = { registry = "../w" }

[[package]]
name = "oldpy"
version = "1.0"
source = { registry = "../w" }
"#;

    #[test]
    fn lock_expectation_follows_markers_extras_and_groups() {
        let env = marker_environment("3.11.7").unwrap();
        let got = expected_from_uv_lock(LOCK, "svc", &["dev".into()], &env).unwrap();
        let names: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if cfg!(windows) {
            return;
        }
        assert_eq!(
            names,
            [
                ("alpha", "1.0.0"),
                ("beta", "2.0.0"),
                ("devtool", "0.1"),
                ("speed-up", "1.2")
            ]
        );
        let old = marker_environment("3.9.1").unwrap();
        let got = expected_from_uv_lock(LOCK, "svc", &[], &old).unwrap();
        assert!(got.contains_key("oldpy") && !got.contains_key("devtool"));
    }

    #[test]
    fn compare_names_each_difference() {
        let exp: BTreeMap<String, String> = [("a", "1.0"), ("b", "2"), ("c", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let inst: BTreeMap<String, String> = [
            ("a", "1"),
            ("b", "1"),
            ("c", "9"),
            ("pip", "24"),
            ("x", "0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            compare(&exp, &inst),
            vec![
                PackageDiff::WrongVersion {
                    package: "b".into(),
                    expected: "2".into(),
                    found: "1".into()
                },
                PackageDiff::Extra {
                    package: "x".into(),
                    found: "0.1".into()
                },
            ]
        );
    }

    /// attrs' layout: an extra that names the project's own other extras.
    #[test]
    fn a_self_referencing_extra_is_not_a_stale_lock() {
        let (_d, dir) = crate::test_support::tmp();
        std::fs::write(
            dir.join("pyproject.toml"),
            "[project]\nname = \"Attrs\"\ndynamic = [\"version\"]\n[project.optional-dependencies]\ntests = [\"pytest\"]\ncov = [\"attrs[tests]\", \"coverage\"]\n",
        )
        .unwrap();
        let lock = |deps: &str| {
            format!("version = 1\n[[package]]\nname = \"attrs\"\nsource = {{ editable = \".\" }}\n[package.metadata]\nrequires-dist = [{deps}]\n")
        };
        let flattened = lock("{ name = \"coverage\", marker = \"extra == 'cov'\" }, { name = \"pytest\", marker = \"extra == 'cov'\" }, { name = \"pytest\", marker = \"extra == 'tests'\" }");
        let env = marker_environment("3.11.7").unwrap();
        let (_, stale) = uv_lock_expectation(&flattened, Some(&dir), "attrs", &[], &env).unwrap();
        assert!(stale.is_empty(), "{stale:?}");
        let older = lock("{ name = \"pytest\", marker = \"extra == 'tests'\" }");
        let (_, stale) = uv_lock_expectation(&older, Some(&dir), "attrs", &[], &env).unwrap();
        assert_eq!(stale, ["attrs"]);
    }

    #[test]
    fn dynamic_version_root_is_expected_at_any_version() {
        let lock = "version = 1\n[[package]]\nname = \"dyn\"\nsource = { editable = \".\" }\ndependencies = [{ name = \"six\" }]\n[[package]]\nname = \"six\"\nversion = \"1.16.0\"\nsource = { registry = \"x\" }\n";
        let env = marker_environment("3.11.7").unwrap();
        let got = expected_from_uv_lock(lock, "dyn", &[], &env).unwrap();
        assert_eq!(got.get("dyn").map(String::as_str), Some(""));
        assert_eq!(got.get("six").map(String::as_str), Some("1.16.0"));
    }
}
