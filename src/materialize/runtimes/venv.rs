//! `venv`: `python3 -m venv .venv` in the target path, then pip installs
//! `requirements.txt` (or the project itself when it has a
//! `pyproject.toml`) and the service's `dependencies`.

use camino::{Utf8Path, Utf8PathBuf};

use super::{find_tool, run_tool, RuntimeAdapter, RuntimeCtx, RuntimeOutcome};
use crate::error::{Error, Result};
use crate::lock::sha256_hex;
use crate::manifest::model::Source;
use crate::plan::Dependency;

pub struct VenvAdapter;

const HINT: &str =
    "install Python 3 with its `venv` module (Debian/Ubuntu: `apt-get install python3-venv`)";
/// Hash of what pip installed last time, inside the venv (a derived directory).
const STAMP: &str = ".hsm-stamp";

impl VenvAdapter {
    /// pip's arguments after `install`.
    fn install_args(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Vec<String> {
        let mut args = Vec::new();
        if ctx.opts.offline || ctx.opts.frozen {
            args.push("--no-index".to_string());
        }
        if target.join("requirements.txt").is_file() {
            args.push("-r".into());
            args.push("requirements.txt".into());
        } else if target.join("pyproject.toml").is_file() {
            args.push(".".into());
        }
        let rel_target = ctx
            .service
            .target_path
            .clone()
            .unwrap_or_else(|| ".".into());
        for d in &ctx.service.dependencies {
            match d {
                Dependency::Requirement { requirement } => args.push(requirement.clone()),
                Dependency::Library {
                    name,
                    source,
                    requirement,
                    ..
                } => match source {
                    Source::Local { path, .. } => args.push(
                        crate::materialize::pyproject::relative_path(&rel_target, path).to_string(),
                    ),
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
                        args.push(s);
                    }
                    _ => args.push(requirement.clone()),
                },
            }
        }
        args
    }

    fn stamp(&self, target: &Utf8Path, args: &[String]) -> String {
        let mut input = args.join("\n");
        for f in ["requirements.txt", "pyproject.toml"] {
            if let Ok(b) = std::fs::read(target.join(f)) {
                input.push_str(&format!("\n{f}:{}", sha256_hex(&b)));
            }
        }
        sha256_hex(input.as_bytes())
    }
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

    fn describe(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> String {
        format!(
            "python3 -m venv .venv && .venv/bin/python -m pip install {}",
            self.install_args(ctx, target).join(" ")
        )
    }

    /// The venv exists and pip last installed exactly these inputs.
    fn is_fresh(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Result<bool> {
        let venv_python = target.join(".venv").join("bin").join("python");
        let stamp = self.stamp(target, &self.install_args(ctx, target));
        Ok(venv_python.exists()
            && std::fs::read_to_string(target.join(".venv").join(STAMP))
                .ok()
                .as_deref()
                == Some(stamp.as_str()))
    }

    fn sync(&self, ctx: &mut RuntimeCtx<'_>, target: &Utf8Path) -> Result<RuntimeOutcome> {
        let name = ctx.service.name.clone();
        let python = find_tool("python3", &name, HINT)?;
        let venv_python = target.join(".venv").join("bin").join("python");
        let args = self.install_args(ctx, target);
        let stamp_path = target.join(".venv").join(STAMP);
        let stamp = self.stamp(target, &args);
        let mut commands = Vec::new();
        if !venv_python.exists() {
            let a = vec!["-m".to_string(), "venv".into(), ".venv".into()];
            commands.push(super::command_line(&python, &a));
            run_tool(&format!("service `{name}`"), &python, &a, target, true).map_err(|e| {
                e.with_help(format!("`python3 -m venv` needs the venv module: {HINT}"))
            })?;
        }
        let has_something = args.iter().any(|a| a != "--no-index");
        if has_something {
            let mut a = vec![
                "-m".to_string(),
                "pip".into(),
                "install".into(),
                "--disable-pip-version-check".into(),
            ];
            a.extend(args);
            commands.push(super::command_line(&venv_python, &a));
            run_tool(&format!("service `{name}`"), &venv_python, &a, target, true)?;
        }
        std::fs::write(&stamp_path, &stamp)
            .map_err(|e| Error::failed(format!("cannot write `{stamp_path}`: {e}")))?;
        Ok(RuntimeOutcome { commands })
    }
}
