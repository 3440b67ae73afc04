//! What is installed in a virtual environment, read from files:
//! `site-packages/*.dist-info/METADATA` and `pyvenv.cfg`. No process is
//! spawned. Used by the venv runtime (to make a venv match its
//! requirements) and by the inspector.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use camino::{Utf8Path, Utf8PathBuf};
use pep508_rs::{ExtraName, MarkerEnvironment, MarkerTree};

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

/// One installed distribution: its version, its `Requires-Dist` lines,
/// and the directory it was installed from (`direct_url.json`, written by
/// pip and uv for `pip install .`, `-e .` and path dependencies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub version: String,
    pub requires: Vec<String>,
    /// Absolute, for distributions installed from a local directory.
    pub from_dir: Option<Utf8PathBuf>,
    /// Installed from a URL or a directory (it has a `direct_url.json`),
    /// not by name from an index: no `name==version` pins it.
    pub direct: bool,
    /// Installed from a git URL: where from, and at which commit.
    pub vcs: Option<Vcs>,
}

/// The git source of a distribution pip installed from a git URL
/// (`direct_url.json`'s `vcs_info`, PEP 610).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vcs {
    /// Without `git+` and without the ref.
    pub url: String,
    pub commit: String,
    pub subdirectory: Option<String>,
    /// The ref it was asked for (a branch, a tag, the commit itself).
    pub requested: Option<String>,
}

#[derive(serde::Deserialize)]
struct DirectUrl {
    url: String,
    #[serde(default)]
    vcs_info: Option<VcsInfo>,
    #[serde(default)]
    subdirectory: Option<String>,
}

#[derive(serde::Deserialize)]
struct VcsInfo {
    vcs: String,
    commit_id: String,
    #[serde(default)]
    requested_revision: Option<String>,
}

/// The git source in a `direct_url.json`, if the distribution came from git.
fn direct_url_vcs(d: &DirectUrl) -> Option<Vcs> {
    let v = d.vcs_info.as_ref().filter(|v| v.vcs == "git")?;
    Some(Vcs {
        url: d.url.clone(),
        commit: v.commit_id.clone(),
        subdirectory: d.subdirectory.clone(),
        requested: v.requested_revision.clone(),
    })
}

/// The local directory of a `direct_url.json` (`file:///abs/dir`).
fn direct_url_dir(d: &DirectUrl) -> Option<Utf8PathBuf> {
    if d.vcs_info.is_some() {
        return None;
    }
    let path = d.url.strip_prefix("file://")?;
    let decoded = percent_decode(path)?;
    Some(crate::paths::normalize(Utf8Path::new(
        decoded.trim_end_matches('/'),
    )))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The distribution installed from directory `dir` (absolute), if any.
pub fn installed_from<'a>(
    installed: &'a BTreeMap<String, Installed>,
    dir: &Utf8Path,
) -> Option<(&'a String, &'a Installed)> {
    let dir = crate::paths::normalize(dir);
    installed
        .iter()
        .find(|(_, d)| d.from_dir.as_deref() == Some(dir.as_path()))
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
        let text = std::fs::read_to_string(entry.path().join("direct_url.json")).ok();
        let direct: Option<DirectUrl> = text.as_deref().and_then(|t| serde_json::from_str(t).ok());
        out.insert(
            normalize_name(&n),
            Installed {
                version: normalize_version(&v),
                requires,
                from_dir: direct.as_ref().and_then(direct_url_dir),
                vcs: direct.as_ref().and_then(direct_url_vcs),
                direct: text.is_some(),
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
    closure_with_extras(
        roots.into_iter().map(|r| (r, BTreeSet::new())),
        installed,
        env,
    )
}

/// Like [`requirement_closure`], with the extras requested of each root
/// (`pkg[cli]`) followed through `extra == "cli"` markers.
pub fn closure_with_extras(
    roots: impl IntoIterator<Item = (String, BTreeSet<String>)>,
    installed: &BTreeMap<String, Installed>,
    env: &MarkerEnvironment,
) -> BTreeSet<String> {
    let mut seen: BTreeSet<(String, BTreeSet<String>)> = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut stack: Vec<(String, BTreeSet<String>)> = roots.into_iter().collect();
    while let Some((name, extras)) = stack.pop() {
        if !seen.insert((name.clone(), extras.clone())) {
            continue;
        }
        names.insert(name.clone());
        let Some(dist) = installed.get(&name) else {
            continue;
        };
        let extra_names: Vec<ExtraName> = extras
            .iter()
            .filter_map(|e| ExtraName::from_str(e).ok())
            .collect();
        for req in &dist.requires {
            let (spec, marker) = match req.split_once(';') {
                Some((s, m)) => (s, Some(m.trim())),
                None => (req.as_str(), None),
            };
            if let Some(m) = marker {
                match MarkerTree::from_str(m) {
                    Ok(tree) if !tree.evaluate(env, &extra_names) => continue,
                    _ => {}
                }
            }
            let spec = spec.trim();
            let raw = requirement_name(spec);
            let dep = normalize_name(raw);
            if dep.is_empty() {
                continue;
            }
            let rest = spec[raw.len()..].trim_start();
            let dep_extras = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((x, _)) => x
                    .split(',')
                    .map(normalize_name)
                    .filter(|e| !e.is_empty())
                    .collect(),
                None => BTreeSet::new(),
            };
            stack.push((dep, dep_extras));
        }
    }
    names
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
