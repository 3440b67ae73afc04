//! What a venv-runtime service should hold: its `requirements.txt` (with
//! its includes), its own project when pip can build it, and its
//! `dependencies`. Read from files; the project is recognised by the
//! `direct_url.json` pip writes for `pip install .` / `-e .`.

use std::collections::{BTreeMap, BTreeSet};

use camino::Utf8Path;
use pep508_rs::MarkerEnvironment;

use crate::python::installed::{installed_from, Installed};
use crate::python::project::ProjectInfo;
use crate::python::requirements::{self, RequirementsFile};

/// Expected packages (empty version = any) and the extras asked of each.
pub(super) struct PipExpectation {
    pub expected: BTreeMap<String, String>,
    pub extras: BTreeMap<String, BTreeSet<String>>,
    /// Local projects that are not installed: (what, directory relative to the service).
    pub missing_local: Vec<(String, String)>,
}

/// `Err` holds why the requirements cannot be read (file, line, what).
pub(super) fn expectation(
    project_dir: &Utf8Path,
    dependencies: &[String],
    dists: &BTreeMap<String, Installed>,
    env: &MarkerEnvironment,
) -> Result<PipExpectation, String> {
    let req_path = project_dir.join("requirements.txt");
    let mut file = if req_path.is_file() {
        requirements::read(&req_path).map_err(|e| e.to_string())?
    } else {
        RequirementsFile::default()
    };
    for d in dependencies {
        if let Ok(f) = requirements::parse_text(d, Utf8Path::new("dependencies"), project_dir) {
            file.extend(f);
        }
    }
    let e = file.expected(env);
    let mut out = PipExpectation {
        expected: e.pinned,
        extras: e.extras,
        missing_local: Vec::new(),
    };
    for n in e.unpinned {
        out.expected.entry(n).or_default();
    }
    let project = ProjectInfo::read(project_dir);
    let mut locals: Vec<(String, BTreeSet<String>)> = e
        .local
        .iter()
        .map(|l| (l.path.to_string(), l.extras.iter().cloned().collect()))
        .collect();
    if project.installable() && !locals.iter().any(|(p, _)| p == ".") {
        locals.push((".".to_string(), BTreeSet::new()));
    }
    for (path, extras) in locals {
        match installed_from(dists, &project_dir.join(&path)) {
            Some((name, _)) => {
                out.expected.entry(name.clone()).or_default();
                out.extras.entry(name.clone()).or_default().extend(extras);
            }
            None => {
                let what = match (&project.name, path.as_str()) {
                    (Some(n), ".") => n.clone(),
                    (None, ".") => "the service's own project".to_string(),
                    (_, p) => format!("the project at `{p}`"),
                };
                out.missing_local.push((what, path));
            }
        }
    }
    Ok(out)
}
