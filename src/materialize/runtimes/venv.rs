//! `venv`: `python3 -m venv .venv` in the target path, then pip installs
//! `requirements.txt`, the project itself (`.`, or `-e .` for an editable
//! local source) when it can be built, and the service's `dependencies`;
//! then uninstalls whatever none of them needs, as `pip-sync` does, so that
//! one sync always converges.
//!
//! A git-sourced service's upstream may pin nothing: what pip installed is
//! kept in `hsm.locks/<service>/requirements.txt` (`name==version`, sorted),
//! given to pip as constraints on every later sync. With `--locked` or
//! `--frozen` the environment must be exactly that set.
//!
//! A dependency pip took from a git URL is pinned there at its commit
//! (`name @ git+URL@<commit>`, see [`crate::python::pins`]), so that a
//! branch moving upstream changes nothing until `cargo hsm update`. pip
//! cannot take such a pin as a constraint (it conflicts with the branch a
//! requirement names), so a sync first installs each pinned commit that is
//! not installed with `--no-deps`, then installs the rest constrained by the
//! `name==version` lines: pip keeps an installed git dependency whose
//! version the branch did not change, and hsm names the pinned commit
//! itself in the service's own `dependencies`.

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};

use super::{
    find_tool, pins_path, run_tool_env, Hasher, RuntimeAdapter, RuntimeCtx, RuntimeOutcome,
};
use crate::error::{Error, Result};
use crate::manifest::model::Source;
use crate::plan::{Dependency, PlannedService};
use crate::python::installed::{self, Installed};
use crate::python::pins::{self as git_pins, GitPin, GitReq};
use crate::python::project::ProjectInfo;
use crate::python::requirements::{self, RequirementsFile};
use crate::python::{marker_environment, requirement_key};

pub struct VenvAdapter;

const HINT: &str =
    "install Python 3 with its `venv` module (Debian/Ubuntu: `apt-get install python3-venv`)";

/// Distributions a venv keeps although nothing requires them: the
/// installers `python -m venv` seeds.
const SEEDS: [&str; 3] = ["pip", "setuptools", "wheel"];

/// The pins of a git-sourced service, in `hsm.locks/<service>/`.
const PINS: &str = git_pins::FILE;

/// The `name==version` lines of pins that also pin git commits, for pip's
/// `-c` (relative to the target path; the venv is hsm's to write in).
const CONSTRAINTS: &str = ".venv/hsm-constraints.txt";

/// What pip is asked to install, read from the service's files.
struct Inputs {
    requirements: Option<RequirementsFile>,
    project: ProjectInfo,
    /// `.` or `-e .` when pip installs the project itself.
    project_arg: Option<&'static str>,
    /// pip's arguments after `install`.
    args: Vec<String>,
    /// A second `pip install` (the project and the dependencies after
    /// hashed requirements); empty when one install does it all.
    then: Vec<String>,
}

fn rel_target(sv: &PlannedService) -> Utf8PathBuf {
    sv.target_path.clone().unwrap_or_else(|| ".".into())
}

/// Reads the service's requirements and project files.
/// `constraints`: the service's pins, relative to the target path;
/// `pinned`: the git commits its `dependencies` are installed at.
fn inputs(
    sv: &PlannedService,
    opts_no_index: bool,
    target: &Utf8Path,
    constraints: Option<&Utf8Path>,
    pinned: &[GitPin],
) -> Result<Inputs> {
    let req_path = target.join("requirements.txt");
    let requirements = if req_path.is_file() {
        Some(requirements::read(&req_path).map_err(|e| {
            let rel = rel_target(sv).join("requirements.txt");
            Error::config(format!(
                "cannot read the requirements of service `{}`: {e}",
                sv.name
            ))
            .with_help(format!("fix `{rel}` (pip's requirements file format)"))
        })?)
    } else {
        None
    };
    let project = ProjectInfo::read(target);
    let listed_itself = requirements
        .as_ref()
        .is_some_and(|r| r.local.iter().any(|l| l.path == "."));
    let editable = matches!(
        &sv.source,
        Some(Source::Local { editable, .. }) if *editable != Some(false)
    );
    let project_arg =
        (project.installable() && !listed_itself).then_some(if editable { "-e ." } else { "." });

    let mut args = Vec::new();
    if opts_no_index {
        args.push("--no-index".to_string());
    }
    if requirements.is_some() {
        args.push("-r".into());
        args.push("requirements.txt".into());
    }
    // Hashed requirements put pip in hash-checking mode for the whole
    // install, which a local project cannot pass: it goes in a second one.
    let hashed = requirements.as_ref().is_some_and(|r| r.hashed);
    let mut then = Vec::new();
    {
        let rest = if hashed { &mut then } else { &mut args };
        if let Some(p) = project_arg {
            rest.extend(p.split(' ').map(str::to_string));
        }
        let rel = rel_target(sv);
        for d in &sv.dependencies {
            rest.push(pinned_arg(dependency_arg(d, &rel), pinned));
        }
    }
    if !then.is_empty() && opts_no_index {
        then.insert(0, "--no-index".to_string());
    }
    // Hashes pin the requirements already; the pins constrain the rest.
    if let Some(c) = constraints {
        let step = if hashed { &mut then } else { &mut args };
        if !step.is_empty() {
            step.extend(["-c".to_string(), c.to_string()]);
        }
    }
    let rel = rel_target(sv);
    if requirements.is_none() && project_arg.is_none() && sv.dependencies.is_empty() {
        return Err(Error::config(format!(
            "service `{}` runs with venv, but `{rel}` has nothing to install",
            sv.name
        ))
        .with_help(
            "add a `requirements.txt`, a `setup.py` or a `pyproject.toml` with a `[project]` \
             or `[build-system]` table, or give the service `dependencies`",
        ));
    }
    Ok(Inputs {
        requirements,
        project,
        project_arg,
        args,
        then,
    })
}

/// How pip is told about one of the service's `dependencies`.
fn dependency_arg(d: &Dependency, rel_target: &Utf8Path) -> String {
    match d {
        Dependency::Requirement { requirement } => requirement.clone(),
        Dependency::Library {
            name,
            source,
            requirement,
            ..
        } => match source {
            Source::Local { path, .. } => {
                crate::materialize::pyproject::relative_path(rel_target, path).to_string()
            }
            Source::Git {
                url,
                reference,
                subdirectory,
                ..
            } => {
                let mut s = format!("{name} @ git+{}", git_pins::pip_url(url));
                if let Some(r) = reference {
                    s.push_str(&format!("@{r}"));
                }
                if let Some(sub) = subdirectory {
                    s.push_str(&format!("#subdirectory={sub}"));
                }
                s
            }
            _ => requirement.clone(),
        },
    }
}

/// A git URL requirement of the service's own, at its pinned commit when
/// `pinned` holds one for the same repository and ref.
fn pinned_arg(arg: String, pinned: &[GitPin]) -> String {
    let Some(req) = git_pins::git_requirement(&arg) else {
        return arg;
    };
    pinned
        .iter()
        .find(|p| req.pinned_by(p))
        .map_or(arg, GitPin::requirement)
}

/// The git URL requirements the service names itself: in its
/// `dependencies` and its requirements files.
fn wanted(sv: &PlannedService, target: &Utf8Path) -> Vec<GitReq> {
    let rel = rel_target(sv);
    let mut out: Vec<GitReq> = sv
        .dependencies
        .iter()
        .filter_map(|d| git_pins::git_requirement(&dependency_arg(d, &rel)))
        .collect();
    let req = target.join("requirements.txt");
    if let Ok(r) = requirements::read(&req) {
        for f in &r.files {
            if let Ok(text) = std::fs::read_to_string(f) {
                out.extend(git_pins::git_requirements(&text));
            }
        }
    }
    out
}

/// `pip install --no-deps --force-reinstall` of the pinned commits that are
/// not installed (`None` when all are): pip would keep another commit of
/// the same version.
fn pin_install_args(
    pinned: &[GitPin],
    dists: &BTreeMap<String, Installed>,
    no_index: bool,
    index_options: &[String],
) -> Option<Vec<String>> {
    let stale: Vec<String> = pinned
        .iter()
        .filter(|p| !p.holds(dists.get(&p.name)))
        .map(GitPin::requirement)
        .collect();
    if stale.is_empty() {
        return None;
    }
    let mut a = vec!["--no-deps".to_string(), "--force-reinstall".into()];
    if no_index {
        a.push("--no-index".into());
    }
    // The index of the service's requirements file builds them too.
    for o in index_options {
        a.extend(o.split_whitespace().map(str::to_string));
    }
    a.extend(stale);
    Some(a)
}

/// What may stay installed: everything the requirements, the project, the
/// service's dependencies and (with `seeds`) the seeds need, through
/// `Requires-Dist`.
fn keep(
    sv: &PlannedService,
    inputs: &Inputs,
    target: &Utf8Path,
    dists: &BTreeMap<String, Installed>,
    python_version: &str,
    seeds: bool,
) -> BTreeSet<String> {
    let unnamed = inputs.requirements.as_ref().is_some_and(|r| r.unnamed);
    let Some(env) = marker_environment(python_version).filter(|_| !unnamed) else {
        // An unknown interpreter, or a requirement without a name (a bare
        // URL): uninstall nothing rather than guess.
        return dists
            .keys()
            .filter(|n| seeds || !SEEDS.contains(&n.as_str()))
            .cloned()
            .collect();
    };
    let mut roots: Vec<(String, BTreeSet<String>)> = SEEDS
        .iter()
        .filter(|_| seeds)
        .map(|s| (s.to_string(), BTreeSet::new()))
        .collect();
    if let Some(r) = &inputs.requirements {
        let e = r.expected(&env);
        for n in e.pinned.keys().chain(&e.unpinned) {
            roots.push((n.clone(), e.extras.get(n).cloned().unwrap_or_default()));
        }
        for l in &e.local {
            if let Some((n, _)) = installed::installed_from(dists, &target.join(&l.path)) {
                roots.push((n.clone(), l.extras.iter().cloned().collect()));
            }
        }
    }
    if inputs.project_arg.is_some() {
        if let Some((n, _)) = installed::installed_from(dists, target) {
            roots.push((n.clone(), BTreeSet::new()));
        }
    }
    for d in &sv.dependencies {
        let req = match d {
            Dependency::Requirement { requirement } | Dependency::Library { requirement, .. } => {
                requirement
            }
        };
        let r = requirements::parse_text(req, Utf8Path::new("dependencies"), target)
            .ok()
            .and_then(|f| f.requirements.into_iter().next());
        match r {
            Some(r) => roots.push((r.name, r.extras.into_iter().collect())),
            None => roots.push((requirement_key(req), BTreeSet::new())),
        }
        if let Dependency::Library {
            source: Source::Local { path, .. },
            ..
        } = d
        {
            let abs = crate::paths::normalize(&target.join(
                crate::materialize::pyproject::relative_path(&rel_target(sv), path),
            ));
            if let Some((n, _)) = installed::installed_from(dists, &abs) {
                roots.push((n.clone(), BTreeSet::new()));
            }
        }
    }
    installed::closure_with_extras(roots, dists, &env)
}

impl RuntimeAdapter for VenvAdapter {
    fn tool(&self) -> &'static str {
        "python3"
    }
    fn install_hint(&self) -> &'static str {
        HINT
    }
    fn lockfile(&self, target: &Utf8Path) -> Option<Utf8PathBuf> {
        target
            .join("requirements.txt")
            .is_file()
            .then(|| "requirements.txt".into())
    }

    /// The requirements file and every file it includes, the project's
    /// build inputs, and the venv's state.
    fn fingerprint(&self, h: &mut Hasher, target: &Utf8Path) {
        let req = target.join("requirements.txt");
        h.file(&req);
        if let Ok(r) = requirements::read(&req) {
            for f in r.files.iter().skip(1) {
                h.file(f);
            }
        }
        for f in ["pyproject.toml", "setup.py", "setup.cfg", ".python-version"] {
            h.file(&target.join(f));
        }
        h.venv(&target.join(".venv"));
    }

    fn pins_file(&self) -> Option<&'static str> {
        Some(PINS)
    }

    fn half_made(&self, target: &Utf8Path) -> Option<String> {
        super::venv_half_made(target, true)
    }

    fn init_template(&self, name: &str, module: &str) -> super::InitTemplate {
        let vars = [("name", name), ("module", module)];
        let mut files = vec![(
            "requirements.txt".to_string(),
            super::fill(
                include_str!("../../../templates/venv/requirements.txt"),
                &vars,
            ),
        )];
        files.extend(super::python_module(&vars, module));
        super::InitTemplate {
            tool: None,
            files,
            command: vec!["python".into(), "-m".into(), module.into()],
        }
    }

    fn check_dependency(
        &self,
        dep: &str,
        is_library: bool,
    ) -> std::result::Result<(), super::BadDependency> {
        super::check_requirement(dep, is_library)
    }

    fn describe(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> String {
        let pins = Pins::of(ctx, target);
        let pinned = &pins.git;
        let pip = ".venv/bin/python -m pip";
        let mut steps = vec!["python3 -m venv .venv".to_string()];
        let dists = installed::installed_distributions(&target.join(".venv")).unwrap_or_default();
        if let Some(names) = pins.released(&dists, ctx.upgrade) {
            steps.push(format!("{pip} uninstall -y {}", names.join(" ")));
        }
        if let Some(a) = pin_install_args(pinned, &dists, false, &pins.index_options) {
            steps.push(format!("{pip} install {}", a.join(" ")));
        }
        if let Ok(i) = inputs(
            ctx.service,
            false,
            target,
            pins.constraint().as_deref(),
            pinned,
        ) {
            for step in [&i.args, &i.then].into_iter().filter(|a| !a.is_empty()) {
                steps.push(format!("{pip} install {}", step.join(" ")));
            }
        }
        steps.join(" && ")
    }

    fn sync(&self, ctx: &mut RuntimeCtx<'_>, target: &Utf8Path) -> Result<RuntimeOutcome> {
        let sv = ctx.service;
        let name = sv.name.clone();
        let who = format!("service `{name}`");
        let pins = Pins::of(ctx, target);
        pins.require()?;
        let no_index = ctx.opts.offline || ctx.opts.frozen;
        let python = find_tool("python3", &name, HINT)?;
        let venv = target.join(".venv");
        let venv_python = venv.join("bin").join("python");
        let env = super::build_env(ctx, crate::envfile::resolved_env(ctx.workspace_root, sv)?);
        let run = |program: &Utf8Path, args: &[String]| {
            run_tool_env(&who, program, args, target, true, &env, &[])
        };
        let mut commands = Vec::new();
        if !venv_python.exists() {
            let a = vec!["-m".to_string(), "venv".into(), ".venv".into()];
            commands.push(super::command_line(&python, &a));
            run(&python, &a).map_err(|e| {
                // The module missing (a Debian python3 without
                // python3-venv) in Python's words; any other cause (a full
                // disk) keeps the help it has.
                let text = e.plain();
                if text.contains("ensurepip is not") || text.contains("No module named") {
                    e.with_help(format!("`python3 -m venv` needs the venv module: {HINT}"))
                } else {
                    e
                }
            })?;
        }
        // `cargo hsm update`: resolve afresh, as `uv sync --upgrade` does:
        // without the pins, and every distribution at the newest version
        // the requirements allow (not with `--locked` / `--frozen`).
        let upgrade = ctx.upgrade && !pins.strict;
        let pip = |verb: &str| {
            vec![
                "-m".to_string(),
                "pip".into(),
                verb.into(),
                "--disable-pip-version-check".into(),
            ]
        };
        if let Some(text) = pins.constraints_text() {
            let path = target.join(CONSTRAINTS);
            std::fs::write(&path, text)
                .map_err(|e| Error::failed(format!("cannot write `{path}`: {e}")))?;
        }
        let mut pinned: &[GitPin] = &pins.git;
        let dists = installed::installed_distributions(&venv).unwrap_or_default();
        if let Some(names) = pins.released(&dists, ctx.upgrade) {
            let mut u = pip("uninstall");
            u.push("-y".into());
            u.extend(names);
            commands.push(super::command_line(&venv_python, &u));
            run(&venv_python, &u)?;
        }
        if let Some(a) = pin_install_args(pinned, &dists, no_index, &pins.index_options) {
            let mut a2 = pip("install");
            a2.extend(a);
            commands.push(super::command_line(&venv_python, &a2));
            if let Err(e) = run(&venv_python, &a2) {
                if pins.strict {
                    return Err(pins.explain(e));
                }
                // A pinned commit that cannot be had (the branch was
                // force-pushed): resolve afresh, and pin that.
                pinned = &[];
            }
        }
        let install = |inputs: &Inputs, commands: &mut Vec<String>| -> Result<()> {
            let mut a = pip("install");
            if upgrade {
                a.extend([
                    "--upgrade".into(),
                    "--upgrade-strategy".into(),
                    "eager".into(),
                ]);
            }
            for step in [&inputs.args, &inputs.then] {
                if step.is_empty() {
                    continue;
                }
                let mut a = a.clone();
                a.extend(step.iter().cloned());
                commands.push(super::command_line(&venv_python, &a));
                run(&venv_python, &a)?;
            }
            Ok(())
        };
        let constraint = pins.constraint().filter(|_| !upgrade);
        let mut inputs = inputs(sv, no_index, target, constraint.as_deref(), pinned)?;
        if let Err(e) = install(&inputs, &mut commands) {
            if pins.strict || constraint.is_none() {
                return Err(pins.explain(e));
            }
            // The pins no longer fit the service's requirements (a new ref
            // asks for other versions): resolve afresh, and pin that.
            inputs = self::inputs(sv, no_index, target, None, &[])?;
            install(&inputs, &mut commands)?;
        }

        let mut dists = installed::installed_distributions(&venv)
            .map_err(|e| Error::failed(format!("cannot read the packages in `{venv}`: {e}")))?;
        if inputs.project_arg.is_some() && installed::installed_from(&dists, target).is_none() {
            let what = inputs
                .project
                .name
                .clone()
                .unwrap_or_else(|| rel_target(sv).to_string());
            return Err(Error::failed(format!(
                "pip ran for {who} but did not install its own project `{what}` from `{}`",
                rel_target(sv)
            ))
            .with_help("check the project's build configuration (`setup.py`, `pyproject.toml`)"));
        }
        let pyver = installed::venv_python_version(&venv).unwrap_or_default();
        let kept = keep(sv, &inputs, target, &dists, &pyver, true);
        let extra: Vec<String> = dists
            .keys()
            .filter(|n| !kept.contains(*n))
            .cloned()
            .collect();
        if !extra.is_empty() {
            let mut u = pip("uninstall");
            u.push("-y".into());
            u.extend(extra.iter().cloned());
            commands.push(super::command_line(&venv_python, &u));
            run(&venv_python, &u)?;
            dists.retain(|n, _| !extra.contains(n));
        }
        let now = pins.path.as_ref().map(|_| {
            // Without the seeds, unless something needs them.
            let needed = keep(sv, &inputs, target, &dists, &pyver, false);
            render_pins(&name, &dists, &needed, &pins)
        });
        if let Some(now) = &now {
            pins.check(now)?;
        }
        Ok(RuntimeOutcome {
            commands,
            pins: now,
        })
    }
}

/// `hsm.locks/<service>/requirements.txt`: the distributions of `needed`
/// that pip installed by name, as `name==version` lines, and those it took
/// from a git URL, as `name @ git+URL@<commit>`, sorted by PEP 503 name;
/// those installed from another URL or a directory (the project itself, a
/// path dependency) are pinned by their source, not here.
fn render_pins(
    service: &str,
    dists: &BTreeMap<String, Installed>,
    needed: &BTreeSet<String>,
    pins: &Pins,
) -> Vec<u8> {
    let mut lines = String::new();
    let mut git = false;
    for (n, d) in dists.iter().filter(|(n, _)| needed.contains(*n)) {
        if let Some(mut p) = GitPin::of(n, d, None) {
            p.reference = pins.reference_of(&p, d);
            lines.push_str(&format!("{}\n", p.line()));
            git = true;
        } else if !d.direct {
            lines.push_str(&format!("{n}=={}\n", d.version));
        }
    }
    let mut out = format!(
        "# Generated by `cargo hsm sync`: what pip installed for service `{service}`.\n\
         # Given to pip as constraints; `--locked` and `--frozen` install exactly this set.\n"
    );
    if git {
        out.push_str(
            "# Git dependencies stay at the commit named here; `cargo hsm update` moves them.\n",
        );
    }
    out.push_str(&lines);
    out.into_bytes()
}

/// The pins of the service being synced, when it has a git source.
#[derive(Default)]
struct Pins {
    /// Relative to the workspace root; `None` for a service without pins.
    path: Option<Utf8PathBuf>,
    /// The target path, relative to the workspace root.
    rel_target: Utf8PathBuf,
    /// What the file held before the sync.
    before: Option<Vec<u8>>,
    /// Its git lines that still hold: all but those whose requirement now
    /// names another ref; none for `cargo hsm update`.
    git: Vec<GitPin>,
    /// All its git lines.
    git_before: Vec<GitPin>,
    /// The git URL requirements the service names itself.
    wanted: Vec<GitReq>,
    /// The `--index-url`, `--find-links`, … lines of its requirements file.
    index_options: Vec<String>,
    /// `--locked` or `--frozen`: the set must be exactly the pinned one.
    strict: bool,
    flag: &'static str,
}

impl Pins {
    fn of(ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Pins {
        let path = pins_path(ctx.service);
        let before = path
            .as_ref()
            .and_then(|p| std::fs::read(ctx.workspace_root.join(p)).ok());
        let git_before = before
            .as_deref()
            .map(|b| git_pins::read(&String::from_utf8_lossy(b)))
            .unwrap_or_default();
        let wanted = wanted(ctx.service, target);
        let git = git_before
            .iter()
            .filter(|p| !ctx.upgrade && git_pins::wanted_by(p, &wanted) != Some(false))
            .cloned()
            .collect();
        let index_options = requirements::read(&target.join("requirements.txt"))
            .map(|r| r.index_options)
            .unwrap_or_default();
        Pins {
            path,
            rel_target: rel_target(ctx.service),
            before,
            git,
            git_before,
            wanted,
            index_options,
            strict: ctx.opts.locked || ctx.opts.frozen,
            flag: if ctx.opts.frozen {
                "--frozen"
            } else {
                "--locked"
            },
        }
    }

    /// The pins as pip's `-c` argument, relative to the target path: the
    /// file itself, or its `name==version` lines in [`CONSTRAINTS`] when it
    /// also pins git commits.
    fn constraint(&self) -> Option<Utf8PathBuf> {
        let p = self.path.as_ref().filter(|_| self.before.is_some())?;
        if !self.git_before.is_empty() {
            return Some(CONSTRAINTS.into());
        }
        Some(crate::materialize::pyproject::relative_path(
            &self.rel_target,
            p,
        ))
    }

    /// What sync writes to [`CONSTRAINTS`], when the pins name git commits.
    fn constraints_text(&self) -> Option<String> {
        let b = self
            .before
            .as_ref()
            .filter(|_| !self.git_before.is_empty())?;
        Some(git_pins::constraints(&String::from_utf8_lossy(b)))
    }

    /// The installed git dependencies whose pins no longer hold, by name,
    /// which pip must take from their refs again (it would keep an installed
    /// one of the same version): all for `cargo hsm update`, else those
    /// whose requirement now names another ref.
    fn released(&self, dists: &BTreeMap<String, Installed>, upgrade: bool) -> Option<Vec<String>> {
        let names: Vec<String> = dists
            .iter()
            .filter(|(n, d)| {
                d.vcs.is_some()
                    && (upgrade
                        || (self.git_before.iter().any(|p| &p.name == *n)
                            && !self.git.iter().any(|p| &p.name == *n)))
            })
            .map(|(n, _)| n.clone())
            .collect();
        (!names.is_empty()).then_some(names)
    }

    /// The ref a git dependency installed at `p` is pinned for: the one
    /// the service's requirement names, else the one its previous pin at
    /// the same commit had, else the one pip was asked for.
    fn reference_of(&self, p: &GitPin, d: &Installed) -> Option<String> {
        let same =
            |q: &GitPin| q.name == p.name && q.url == p.url && q.subdirectory == p.subdirectory;
        if let Some(r) = self
            .wanted
            .iter()
            .find(|r| r.name == p.name && r.url == p.url && r.subdirectory == p.subdirectory)
        {
            return r.reference.clone();
        }
        if let Some(q) = self
            .git_before
            .iter()
            .find(|q| same(q) && q.commit == p.commit)
        {
            return q.reference.clone();
        }
        d.vcs
            .as_ref()
            .and_then(|v| v.requested.clone())
            .filter(|r| *r != p.commit)
    }

    fn help(&self) -> String {
        format!(
            "run `cargo hsm sync` without `{}` to resolve the service again and update `{}`, then commit it",
            self.flag,
            self.path.as_deref().map(Utf8Path::as_str).unwrap_or(PINS)
        )
    }

    /// With `--locked` / `--frozen`, a git-sourced service needs its pins.
    fn require(&self) -> Result<()> {
        match &self.path {
            Some(p) if self.strict && self.before.is_none() => Err(Error::failed(format!(
                "`{}` needs the pinned requirements of service `{}` in `{p}`, which does not exist",
                self.flag,
                p.parent().and_then(Utf8Path::file_name).unwrap_or_default()
            ))
            .with_help(self.help())),
            _ => Ok(()),
        }
    }

    /// A failed install under the pins says which file pip could not meet.
    fn explain(&self, e: Error) -> Error {
        match (&self.path, self.strict) {
            (Some(p), true) => e.with_help(format!(
                "pip could not install the set pinned in `{p}`; {}",
                self.help()
            )),
            _ => e,
        }
    }

    /// With `--locked` / `--frozen`, what was installed must be the pins.
    fn check(&self, now: &[u8]) -> Result<()> {
        let (Some(p), Some(before)) = (&self.path, &self.before) else {
            return Ok(());
        };
        if !self.strict || before.as_slice() == now {
            return Ok(());
        }
        let lines = |b: &[u8]| -> BTreeSet<String> {
            String::from_utf8_lossy(b)
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        };
        let (was, is) = (lines(before), lines(now));
        let mut detail: Vec<String> = was
            .difference(&is)
            .map(|l| format!("  pinned:    {l}"))
            .collect();
        detail.extend(is.difference(&was).map(|l| format!("  installed: {l}")));
        Err(Error::failed(format!(
            "`{}`: pip installed another set for service `{}` than `{p}` pins",
            self.flag,
            p.parent().and_then(Utf8Path::file_name).unwrap_or_default()
        ))
        .with_detail(detail.join("\n"))
        .with_help(self.help()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(version: &str, direct: bool) -> Installed {
        Installed {
            version: version.into(),
            requires: Vec::new(),
            from_dir: None,
            direct,
            vcs: None,
        }
    }

    #[test]
    fn pins_are_sorted_exact_and_leave_out_what_a_source_pins() {
        let dists: BTreeMap<String, Installed> = [
            ("zeta-x", dist("2.0", false)),
            ("alpha", dist("1.0.0", false)),
            ("the-project", dist("0.1.0", true)),
            ("pip", dist("23.2.1", false)),
        ]
        .into_iter()
        .map(|(n, d)| (n.to_string(), d))
        .collect();
        let needed: BTreeSet<String> = ["zeta-x", "alpha", "the-project"]
            .into_iter()
            .map(str::to_string)
            .collect();
        let text =
            String::from_utf8(render_pins("svc", &dists, &needed, &Pins::default())).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["alpha==1.0.0", "zeta-x==2.0"]);
        assert!(text.contains("service `svc`"));
        assert!(!text.contains("Git dependencies"));

        // A git dependency: at its commit, with the ref pip was asked for.
        let mut dists = dists;
        let mut delta = dist("0.1.0", true);
        delta.vcs = Some(installed::Vcs {
            url: "file://localhost/r/delta.git".into(),
            commit: "c0ffee".into(),
            subdirectory: None,
            requested: Some("main".into()),
        });
        dists.insert("delta".into(), delta);
        let needed: BTreeSet<String> = needed.into_iter().chain(["delta".into()]).collect();
        let text =
            String::from_utf8(render_pins("svc", &dists, &needed, &Pins::default())).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "alpha==1.0.0",
                "delta @ git+file://localhost/r/delta.git@c0ffee  # ref: main",
                "zeta-x==2.0"
            ]
        );
        assert!(text.contains("`cargo hsm update` moves them"));
        assert_eq!(git_pins::read(&text).len(), 1);
    }
}
