//! What is installed in a virtual environment, read from files:
//! `site-packages/*.dist-info/METADATA` and `pyvenv.cfg`. No process is
//! spawned. Used by the venv runtime (to make a venv match its
//! requirements) and by the inspector.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use camino::{Utf8Path, Utf8PathBuf};
use pep508_rs::{MarkerEnvironment, MarkerTree};

use super::{normalize_name, normalize_version, requirement_name};

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
