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

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};

use super::{
    find_tool, pins_path, run_tool_env, Hasher, RuntimeAdapter, RuntimeCtx, RuntimeOutcome,
};
use crate::error::{Error, Result};
use crate::manifest::model::Source;
use crate::plan::{Dependency, PlannedService};
use crate::python::installed::{self, Installed};
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
const PINS: &str = "requirements.txt";

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
/// `constraints`: the service's pins, relative to the target path.
fn inputs(
    sv: &PlannedService,
    opts_no_index: bool,
    target: &Utf8Path,
    constraints: Option<&Utf8Path>,
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
            rest.push(dependency_arg(d, &rel));
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
                let mut s = format!("{name} @ git+{url}");
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
        let pins = Pins::of(ctx);
        let args = inputs(ctx.service, false, target, pins.constraint().as_deref())
            .map(|i| match i.then.is_empty() {
                true => i.args.join(" "),
                false => format!(
                    "{} && .venv/bin/python -m pip install {}",
                    i.args.join(" "),
                    i.then.join(" ")
                ),
            })
            .unwrap_or_default();
        format!("python3 -m venv .venv && .venv/bin/python -m pip install {args}")
    }

    fn sync(&self, ctx: &mut RuntimeCtx<'_>, target: &Utf8Path) -> Result<RuntimeOutcome> {
        let sv = ctx.service;
        let name = sv.name.clone();
        let who = format!("service `{name}`");
        let pins = Pins::of(ctx);
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
        let install = |inputs: &Inputs, commands: &mut Vec<String>| -> Result<()> {
            let mut a = vec![
                "-m".to_string(),
                "pip".into(),
                "install".into(),
                "--disable-pip-version-check".into(),
            ];
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
        let mut inputs = inputs(sv, no_index, target, constraint.as_deref())?;
        if let Err(e) = install(&inputs, &mut commands) {
            if pins.strict || constraint.is_none() {
                return Err(pins.explain(e));
            }
            // The pins no longer fit the service's requirements (a new ref
            // asks for other versions): resolve afresh, and pin that.
            inputs = self::inputs(sv, no_index, target, None)?;
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
            let mut u = vec![
                "-m".to_string(),
                "pip".into(),
                "uninstall".into(),
                "--disable-pip-version-check".into(),
                "-y".into(),
            ];
            u.extend(extra.iter().cloned());
            commands.push(super::command_line(&venv_python, &u));
            run(&venv_python, &u)?;
            dists.retain(|n, _| !extra.contains(n));
        }
        let pinned = pins.path.as_ref().map(|_| {
            // Without the seeds, unless something needs them.
            let needed = keep(sv, &inputs, target, &dists, &pyver, false);
            render_pins(&name, &dists, &needed)
        });
        if let Some(now) = &pinned {
            pins.check(now)?;
        }
        Ok(RuntimeOutcome {
            commands,
            pins: pinned,
        })
    }
}

/// `hsm.locks/<service>/requirements.txt`: the distributions of `needed`
/// that pip installed by name, as `name==version` lines, sorted by PEP 503
/// name; those installed from a URL or a directory (the project itself, a
/// path or git dependency) are pinned by their source, not here.
fn render_pins(
    service: &str,
    dists: &BTreeMap<String, Installed>,
    needed: &BTreeSet<String>,
) -> Vec<u8> {
    let mut out = format!(
        "# Generated by `cargo hsm sync`: what pip installed for service `{service}`.\n\
         # Given to pip as constraints; `--locked` and `--frozen` install exactly this set.\n"
    );
    for (n, d) in dists {
        if needed.contains(n) && !d.direct {
            out.push_str(&format!("{n}=={}\n", d.version));
        }
    }
    out.into_bytes()
}

/// The pins of the service being synced, when it has a git source.
struct Pins {
    /// Relative to the workspace root; `None` for a service without pins.
    path: Option<Utf8PathBuf>,
    /// The target path, relative to the workspace root.
    rel_target: Utf8PathBuf,
    /// What the file held before the sync.
    before: Option<Vec<u8>>,
    /// `--locked` or `--frozen`: the set must be exactly the pinned one.
    strict: bool,
    flag: &'static str,
}

impl Pins {
    fn of(ctx: &RuntimeCtx<'_>) -> Pins {
        let path = pins_path(ctx.service);
        let before = path
            .as_ref()
            .and_then(|p| std::fs::read(ctx.workspace_root.join(p)).ok());
        Pins {
            path,
            rel_target: rel_target(ctx.service),
            before,
            strict: ctx.opts.locked || ctx.opts.frozen,
            flag: if ctx.opts.frozen {
                "--frozen"
            } else {
                "--locked"
            },
        }
    }

    /// The pins as pip's `-c` argument, relative to the target path.
    fn constraint(&self) -> Option<Utf8PathBuf> {
        let p = self.path.as_ref().filter(|_| self.before.is_some())?;
        Some(crate::materialize::pyproject::relative_path(
            &self.rel_target,
            p,
        ))
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
        let text = String::from_utf8(render_pins("svc", &dists, &needed)).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["alpha==1.0.0", "zeta-x==2.0"]);
        assert!(text.contains("service `svc`"));
    }
}
