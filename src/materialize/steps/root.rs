//! Step 3, root project: hsm's entries in the shared `pyproject.toml`
//! (libraries, and uv workspace exclusions for isolated services).

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::materialize::driver::Syncer;
use crate::materialize::ActionKind;
use crate::materialize::{cargo_workspace, pyproject};
use crate::plan::Plan;

/// What hsm manages in the shared `pyproject.toml` (text at `abs`): the
/// selected libraries, and `[tool.uv.workspace].exclude` entries for the
/// isolated services its `members` globs would otherwise adopt.
pub fn root_wanted(plan: &Plan, text: &str, abs: &Utf8Path) -> Result<pyproject::Wanted> {
    let project_dir = &plan.project.python_project;
    let mut want = pyproject::Wanted::default();
    for l in &plan.libraries {
        want.dependencies.push(l.requirement.clone());
        if let Some(t) = pyproject::uv_source(&l.source, project_dir) {
            want.sources.push((l.name.clone(), t));
        }
    }
    // Isolated services matched by the root's uv workspace `members`
    // would be synced into the root venv: exclude them.
    if let Some((members, excludes)) = pyproject::workspace_globs(text, abs)? {
        let ours = pyproject::managed_excludes(text, abs)?;
        let user_excludes: Vec<&String> = excludes.iter().filter(|e| !ours.contains(e)).collect();
        for sv in plan.environment_services() {
            let Some(t) = &sv.target_path else { continue };
            let p = pyproject::relative_path(project_dir, t);
            if p.as_str() == "." || p.starts_with("..") || p.is_absolute() {
                continue;
            }
            let member = members.iter().any(|m| pyproject::glob_match(m, p.as_str()));
            let excluded = user_excludes
                .iter()
                .any(|e| pyproject::exclude_glob_match(e, p.as_str()));
            if member && !excluded && !want.workspace_exclude.contains(&p.to_string()) {
                want.workspace_exclude.push(p.to_string());
            }
        }
        want.workspace_exclude.sort();
    }
    Ok(want)
}

impl Syncer<'_> {
    fn root_pyproject(&self) -> Utf8PathBuf {
        crate::paths::normalize(&self.plan.project.python_project.join("pyproject.toml"))
    }

    /// The checkouts of Rust-crate services (maturin/PyO3) that the
    /// workspace's `Cargo.toml` must exclude, so that cargo builds them
    /// (see [`crate::materialize::cargo_workspace`]).
    pub(in crate::materialize) fn cargo_workspace(&mut self) -> Result<()> {
        let mut paths = Vec::new();
        let mut first = None;
        for sv in self.plan.environment_services() {
            let (Some(co), Some(t)) = (&sv.checkout_path, &sv.target_path) else {
                continue;
            };
            if cargo_workspace::crate_needs_exclude(&self.root.join(co), &self.root.join(t)) {
                paths.push(crate::paths::normalize(co));
                first.get_or_insert_with(|| format!("service:{}", sv.name));
            }
        }
        let Some(component) = first else {
            return Ok(());
        };
        let rel = Utf8PathBuf::from("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(self.root.join(&rel)) else {
            return Ok(());
        };
        let edited = cargo_workspace::with_excludes(&text, &rel, &paths)?;
        if edited != text {
            self.act(
                ActionKind::Edit,
                &component,
                format!("{rel} (`[workspace].exclude` for the checkouts of Rust crates)"),
                Some(&rel),
                None,
            );
            self.write_file(&rel, edited.as_bytes(), None)?;
        }
        Ok(())
    }

    pub(in crate::materialize) fn root_project(&mut self) -> Result<()> {
        self.cargo_workspace()?;
        let plan = self.plan;
        let rel = self.root_pyproject();
        let abs = self.root.join(&rel);
        let text = match std::fs::read_to_string(&abs) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if plan.libraries.is_empty() {
                    return Ok(());
                }
                let names: Vec<String> = plan
                    .libraries
                    .iter()
                    .map(|l| format!("`{}`", l.name))
                    .collect();
                return Err(Error::config(format!(
                    "the libraries {} go into the shared project at `{}`, but `{rel}` does not exist",
                    names.join(", "),
                    plan.project.python_project
                ))
                .with_help(format!(
                    "create it with `uv init --bare {}` (or set `[project] python-project` in the manifest)",
                    plan.project.python_project
                )));
            }
            Err(e) => return Err(Error::failed(format!("cannot read `{rel}`: {e}"))),
        };
        self.root_exists = true;
        if plan.project.package_manager != "uv" {
            return Err(Error::config(format!(
                "`[libraries] package-manager = \"{}\"` is not supported",
                plan.project.package_manager
            ))
            .with_help("use `package-manager = \"uv\"`"));
        }
        let want = root_wanted(plan, &text, &abs)?;
        let edited = pyproject::apply(&text, &abs, &want)?;
        self.warnings.extend(edited.warnings.iter().cloned());
        if edited.text != text {
            self.act(
                ActionKind::Edit,
                "libraries",
                format!("{rel} (hsm's entries)"),
                Some(&rel),
                None,
            );
            self.write_file(&rel, edited.text.as_bytes(), None)?;
            self.root_edited = true;
        }
        Ok(())
    }
}
