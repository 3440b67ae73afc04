//! `uv`: hsm's entries in the service's `pyproject.toml`, then an isolated
//! `uv sync` inside the target path, into the service's own `.venv`.

use camino::{Utf8Path, Utf8PathBuf};

use super::{find_uv, run_tool_env, FileEdit, RuntimeAdapter, RuntimeCtx, RuntimeOutcome};
use crate::error::{Error, Result};
use crate::materialize::pyproject::{self, Wanted};
use crate::plan::Dependency;
use crate::python::project::{uv_workspace_root, ProjectInfo};

pub struct UvAdapter;

const HINT: &str =
    "install uv with `pip install uv` (or see https://docs.astral.sh/uv/getting-started/installation/)";

/// `--frozen`, `--locked` and `--offline` as uv spells them.
pub fn mode_flags(opts: &crate::materialize::SyncOptions) -> Vec<String> {
    let mut v = Vec::new();
    if opts.frozen {
        v.push("--frozen".to_string());
    } else if opts.locked {
        v.push("--locked".to_string());
    }
    if opts.offline {
        v.push("--offline".to_string());
    }
    v
}

/// What hsm adds to a service's `pyproject.toml` for its `dependencies`.
pub fn wanted_for(deps: &[Dependency], project_dir: &Utf8Path) -> Wanted {
    let mut w = Wanted::default();
    for d in deps {
        match d {
            Dependency::Requirement { requirement } => w.dependencies.push(requirement.clone()),
            Dependency::Library {
                name,
                source,
                requirement,
                ..
            } => {
                w.dependencies.push(requirement.clone());
                if let Some(t) = pyproject::uv_source(source, project_dir) {
                    w.sources.push((name.clone(), t));
                }
            }
        }
    }
    w
}

/// The root of the upstream uv workspace the service is a member of, within
/// its git checkout; `None` otherwise (a local source, or a project of its own).
fn member_workspace(ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Option<Utf8PathBuf> {
    let checkout = ctx.workspace_root.join(ctx.service.checkout_path.as_ref()?);
    uv_workspace_root(target, &checkout)
}

/// The service's own project when its git checkout sits (after the git
/// step; in a dry run, would sit) at another commit than the previous sync
/// recorded, or none was recorded, or hsm put a kept `Cargo.lock` there. A
/// dry run that must fetch before it knows the commit has already reported
/// a checkout: so it moves. Not for the first sync of a service into a new
/// venv: it holds no old build, and uv's `--reinstall-package` costs a
/// rebuild (about 0.4 s per freshly cloned service).
fn moved_project(ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Option<String> {
    ctx.service.checkout_path.as_ref()?;
    let before = ctx.previous.and_then(|p| p.git.as_ref()).map(|g| &g.commit);
    if !ctx.rebuild && before.is_some() && before.map(String::as_str) == ctx.commit {
        return None;
    }
    if !ctx.rebuild && before.is_none() && !target.join(".venv/pyvenv.cfg").exists() {
        return None;
    }
    let info = ProjectInfo::read(target);
    info.name.filter(|_| info.has_project_table)
}

/// The arguments of the `uv sync` that sync runs, which the dry run shows.
fn sync_args(ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Vec<String> {
    let mut args = vec!["sync".to_string()];
    args.extend(mode_flags(ctx.opts));
    if ctx.upgrade && !ctx.opts.locked && !ctx.opts.frozen {
        // `cargo hsm update`: re-resolve the service's lock.
        args.push("--upgrade".to_string());
    }
    if let Some(project) = moved_project(ctx, target) {
        // uv rebuilds a project only when its `pyproject.toml` (or
        // `setup.py`, `setup.cfg`) changed: a compiled extension (maturin,
        // PyO3) would keep what the old commit built.
        args.push("--reinstall-package".into());
        args.push(project);
    }
    args
}

impl RuntimeAdapter for UvAdapter {
    fn tool(&self) -> &'static str {
        "uv"
    }
    fn install_hint(&self) -> &'static str {
        HINT
    }
    fn lockfile(&self, target: &Utf8Path) -> Option<Utf8PathBuf> {
        if !target.join("uv.lock").exists() {
            // A workspace member: the workspace's lock, relative to the member.
            if let Some(ws) = uv_workspace_root(target, Utf8Path::new("/")) {
                let up = target.strip_prefix(&ws).ok()?.components().count();
                return Some(Utf8PathBuf::from("../".repeat(up)).join("uv.lock"));
            }
        }
        Some("uv.lock".into())
    }

    fn committed_lockfile(&self, _target: &Utf8Path) -> Option<Utf8PathBuf> {
        Some("uv.lock".into())
    }

    fn half_made(&self, target: &Utf8Path) -> Option<String> {
        super::venv_half_made(target, false)
    }

    fn init_template(&self, name: &str, _module: &str) -> super::InitTemplate {
        // `--vcs git` does nothing inside an existing repository (the
        // monorepo): `service init` runs `git init` itself, as asked.
        let args = [
            "init",
            "--no-workspace",
            "--app",
            "--no-package",
            "--vcs",
            "none",
            "--name",
            name,
        ];
        super::InitTemplate {
            tool: Some((
                "uv",
                args.iter().map(|a| a.to_string()).collect(),
                "pyproject.toml",
            )),
            files: Vec::new(),
            command: vec!["python".into(), "main.py".into()],
        }
    }

    fn check_dependency(
        &self,
        dep: &str,
        is_library: bool,
    ) -> std::result::Result<(), super::BadDependency> {
        super::check_requirement(dep, is_library)
    }

    fn edited_manifest(&self) -> Option<&'static str> {
        Some("pyproject.toml")
    }

    fn fingerprint(&self, h: &mut super::Hasher, target: &Utf8Path) {
        for f in ["pyproject.toml", "uv.lock", ".python-version"] {
            h.file(&target.join(f));
        }
        if let Some(ws) = uv_workspace_root(target, Utf8Path::new("/")) {
            h.file(&ws.join("uv.lock"));
        }
        h.venv(&target.join(".venv"));
    }

    fn edits(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Result<Vec<FileEdit>> {
        let sv = ctx.service;
        let path = target.join("pyproject.toml");
        let rel_target = sv.target_path.clone().unwrap_or_else(|| ".".into());
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let help = if target.join("setup.py").is_file() {
                    format!(
                        "`{rel_target}` is a `setup.py` project, which uv cannot sync as a \
                         project: give the service `runtime = \"venv\"` (pip installs it)"
                    )
                } else {
                    format!(
                        "create it with `uv init --no-workspace {rel_target}`, or choose another runtime"
                    )
                };
                return Err(Error::config(format!(
                    "service `{}` runs with uv, but `{rel_target}/pyproject.toml` does not exist",
                    sv.name
                ))
                .with_help(help));
            }
            Err(e) => return Err(Error::failed(format!("cannot read `{path}`: {e}"))),
        };
        let info = ProjectInfo::read(target);
        if !info.has_project_table {
            return Err(Error::config(format!(
                "service `{}` runs with uv, but `{rel_target}/pyproject.toml` has no `[project]` table \
                 (a Poetry 1.x or legacy setuptools layout), so uv would sync an empty environment",
                sv.name
            ))
            .with_help(
                "give the service `runtime = \"venv\"` in its deployment profile: pip builds the \
                 project with the backend its `[build-system]` names",
            ));
        }
        if info.dynamic_dependencies() && !sv.dependencies.is_empty() {
            return Err(Error::config(format!(
                "service `{}` adds `dependencies`, but `{rel_target}/pyproject.toml` declares \
                 `dynamic = [\"dependencies\"]`: its build backend computes them and rejects a \
                 static list beside them",
                sv.name
            ))
            .with_help(
                "remove the service's `dependencies` (declare them in the project itself), or \
                 give the service `runtime = \"venv\"`, which installs them beside the project",
            ));
        }
        let want = wanted_for(&sv.dependencies, &rel_target);
        let edited = pyproject::apply(&text, &path, &want)?;
        if edited.text == text {
            return Ok(Vec::new());
        }
        Ok(vec![FileEdit {
            path,
            contents: edited.text,
            warnings: edited.warnings,
        }])
    }

    /// hsm's edits of `pyproject.toml` always change what uv locks;
    /// otherwise uv says (`uv lock --check`).
    fn lockfile_would_change(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Result<bool> {
        Ok(!ctx.opts.frozen && (ctx.edited || super::uv_lock_would_change(target, ctx.opts)))
    }

    fn describe(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> String {
        let line = super::command_line(Utf8Path::new("uv"), &sync_args(ctx, target));
        // Which uv will run (resolving a version manager's shim spawns it
        // once); its version only for `-v`, since asking costs a spawn.
        match (ctx.opts.dry_run, crate::tool::uv(ctx.workspace_root)) {
            (false, Some(uv)) => format!("{line} ({})", uv.describe(ctx.opts.tool_versions)),
            _ => line,
        }
    }

    fn sync(&self, ctx: &mut RuntimeCtx<'_>, target: &Utf8Path) -> Result<RuntimeOutcome> {
        let name = ctx.service.name.clone();
        let uv = &find_uv(ctx.workspace_root, &format!("service `{name}`"), HINT)?.path;
        // A member of the upstream's own uv workspace (a `subdirectory`):
        // synced alone into its own `.venv`, from the workspace's lock.
        let member_of = member_workspace(ctx, target);
        let lock = member_of.as_deref().unwrap_or(target).join("uv.lock");
        let venv = target.join(".venv");
        let venv_cfg = venv.join("pyvenv.cfg");
        let own: Vec<(&str, &str)> = match member_of {
            Some(_) => vec![("UV_PROJECT_ENVIRONMENT", venv.as_str())],
            None => Vec::new(),
        };
        let mut commands = Vec::new();

        ctx.txn
            .snapshot(&lock)
            .map_err(|e| Error::failed(format!("cannot read `{lock}`: {e}")))?;
        let args = sync_args(ctx, target);
        commands.push(super::command_line(uv, &args));
        let env = super::build_env(
            ctx,
            crate::envfile::resolved_env(ctx.workspace_root, ctx.service)?,
        );
        run_tool_env(
            &format!("service `{name}`"),
            uv,
            &args,
            target,
            true,
            &env,
            &own,
        )?;
        if !venv_cfg.exists() {
            return Err(Error::failed(format!(
                "`uv sync` for service `{name}` did not create `{}`",
                target.join(".venv")
            ))
            .with_help(
                "uv treated the service as a member of an enclosing uv workspace; \
                 exclude its path in that workspace's `[tool.uv.workspace].exclude`",
            ));
        }
        Ok(RuntimeOutcome {
            commands,
            pins: None,
        })
    }
}
