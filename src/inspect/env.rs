//! What is installed in a virtual environment and what its lock file says
//! should be, read from files: `site-packages/*.dist-info/METADATA`,
//! `pyvenv.cfg`, `uv.lock` and pinned `requirements.txt`. No process is
//! spawned, so inspecting a hundred services costs a hundred directory reads.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use camino::{Utf8Path, Utf8PathBuf};
use pep508_rs::{ExtraName, MarkerEnvironment, MarkerTree};

use crate::python::{normalize_name, normalize_version, requirement_name, same_version};
use serde::Deserialize;

/// The `site-packages` directory of a venv (POSIX or Windows layout).
pub fn site_packages(venv: &Utf8Path) -> Option<Utf8PathBuf> {
    let win = venv.join("Lib").join("site-packages");
    if win.is_dir() {
        return Some(win);
    }
    let lib = venv.join("lib");
    let mut candidates: Vec<Utf8PathBuf> = lib
        .read_dir_utf8()
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    candidates.sort();
    candidates.pop()
}

/// Installed distributions: normalised name → normalised version.
pub fn installed(venv: &Utf8Path) -> std::io::Result<BTreeMap<String, String>> {
    Ok(installed_distributions(venv)?
        .into_iter()
        .map(|(name, d)| (name, d.version))
        .collect())
}

/// One installed distribution: its version and its `Requires-Dist` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub version: String,
    pub requires: Vec<String>,
}

/// Installed distributions with their declared requirements, by normalised name.
pub fn installed_distributions(venv: &Utf8Path) -> std::io::Result<BTreeMap<String, Installed>> {
    let mut out = BTreeMap::new();
    let Some(sp) = site_packages(venv) else {
        return Ok(out);
    };
    for entry in sp.read_dir_utf8()? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.strip_suffix(".dist-info") else {
            continue;
        };
        let metadata = entry.path().join("METADATA");
        let (mut n, mut v, mut requires) = (None, None, Vec::new());
        if let Ok(text) = std::fs::read_to_string(&metadata) {
            for line in text.lines() {
                if line.is_empty() {
                    break; // end of the headers
                }
                if let Some(x) = line.strip_prefix("Name:") {
                    n = Some(x.trim().to_string());
                } else if let Some(x) = line.strip_prefix("Version:") {
                    v = Some(x.trim().to_string());
                } else if let Some(x) = line.strip_prefix("Requires-Dist:") {
                    requires.push(x.trim().to_string());
                }
            }
        }
        // Fall back on the directory name `name-version.dist-info`.
        let (n, v) = match (n, v) {
            (Some(n), Some(v)) => (n, v),
            _ => match stem.rsplit_once('-') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => continue,
            },
        };
        out.insert(
            normalize_name(&n),
            Installed {
                version: normalize_version(&v),
                requires,
            },
        );
    }
    Ok(out)
}

/// The names reachable from `roots` through installed `Requires-Dist`
/// lines whose markers hold here (no extras): what pip installed for them.
pub fn requirement_closure(
    roots: impl IntoIterator<Item = String>,
    installed: &BTreeMap<String, Installed>,
    env: &MarkerEnvironment,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.into_iter().collect();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(dist) = installed.get(&name) else {
            continue;
        };
        for req in &dist.requires {
            let (spec, marker) = match req.split_once(';') {
                Some((s, m)) => (s, Some(m.trim())),
                None => (req.as_str(), None),
            };
            if let Some(m) = marker {
                match MarkerTree::from_str(m) {
                    Ok(tree) if !tree.evaluate(env, &[]) => continue,
                    _ => {}
                }
            }
            let dep = normalize_name(requirement_name(spec.trim()));
            if !dep.is_empty() {
                stack.push(dep);
            }
        }
    }
    seen
}

/// The full Python version of a venv, from its `pyvenv.cfg`.
pub fn venv_python_version(venv: &Utf8Path) -> Option<String> {
    let text = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    let mut found = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "version_info" => return Some(v.trim().to_string()),
            "version" => found = Some(v.trim().to_string()),
            _ => {}
        }
    }
    found
}

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
    let lock: UvLock =
        toml::from_str(lock_text).map_err(|e| format!("cannot parse uv.lock: {}", e.message()))?;
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
        if let Some(v) = &root.version {
            out.insert(project.clone(), normalize_version(v));
        }
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
    Ok(out)
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
}
