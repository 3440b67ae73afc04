//! `pixi`: `pixi install --manifest-path <target>/pixi.toml`, with
//! `--locked` / `--frozen` passed on.

use camino::{Utf8Path, Utf8PathBuf};

use super::{find_tool, run_tool, Hasher, RuntimeAdapter, RuntimeCtx, RuntimeOutcome};
use crate::error::{Error, Result};

pub struct PixiAdapter;

const HINT: &str = "install pixi (see https://pixi.sh/latest/#installation)";

impl PixiAdapter {
    fn manifest(&self, target: &Utf8Path) -> Utf8PathBuf {
        let pixi = target.join("pixi.toml");
        if !pixi.exists() && target.join("pyproject.toml").exists() {
            return target.join("pyproject.toml");
        }
        pixi
    }

    fn args(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Vec<String> {
        let mut a = vec![
            "install".to_string(),
            "--manifest-path".into(),
            self.manifest(target).to_string(),
        ];
        if ctx.opts.frozen {
            a.push("--frozen".into());
        } else if ctx.opts.locked {
            a.push("--locked".into());
        }
        a
    }
}

impl RuntimeAdapter for PixiAdapter {
    fn tool(&self) -> &'static str {
        "pixi"
    }
    fn install_hint(&self) -> &'static str {
        HINT
    }
    fn lockfile(&self, _target: &Utf8Path) -> Option<Utf8PathBuf> {
        Some("pixi.lock".into())
    }

    fn env_dir(&self, target: &Utf8Path) -> Utf8PathBuf {
        target.join(".pixi")
    }

    fn run_env(&self, target: &Utf8Path) -> super::RunEnv {
        super::RunEnv {
            bin: target.join(".pixi/envs/default/bin"),
            // `pixi run` makes it when it is missing.
            required: None,
            vars: Vec::new(),
        }
    }

    /// As pixi itself runs a command in its environment.
    fn wrap_command(
        &self,
        service: &str,
        target: &Utf8Path,
        command: &[String],
    ) -> Result<Option<(Utf8PathBuf, Vec<String>)>> {
        let pixi = find_tool("pixi", service, HINT)?;
        let mut a = vec![
            "run".to_string(),
            "--manifest-path".into(),
            self.manifest(target).to_string(),
            "--frozen".into(),
        ];
        a.extend(command.iter().cloned());
        Ok(Some((pixi, a)))
    }

    fn init_template(&self, name: &str, module: &str) -> super::InitTemplate {
        let vars = [("name", name), ("module", module)];
        let mut files = vec![(
            "pixi.toml".to_string(),
            super::fill(include_str!("../../../templates/pixi/pixi.toml"), &vars),
        )];
        files.extend(super::python_module(&vars, module));
        super::InitTemplate {
            tool: None,
            files,
            command: vec!["python".into(), "-m".into(), module.into()],
        }
    }

    fn fingerprint(&self, h: &mut Hasher, target: &Utf8Path) {
        for f in ["pixi.toml", "pyproject.toml", "pixi.lock"] {
            h.file(&target.join(f));
        }
        h.env_dir(&target.join(".pixi/envs/default/conda-meta"));
    }

    fn describe(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> String {
        format!("pixi {}", self.args(ctx, target).join(" "))
    }

    fn sync(&self, ctx: &mut RuntimeCtx<'_>, target: &Utf8Path) -> Result<RuntimeOutcome> {
        let name = ctx.service.name.clone();
        let manifest = self.manifest(target);
        if !manifest.exists() {
            let rel = ctx.service.target_path.clone().unwrap_or_default();
            return Err(Error::config(format!(
                "service `{name}` runs with pixi, but `{rel}/pixi.toml` does not exist"
            ))
            .with_help(format!("create it with `pixi init {rel}`")));
        }
        let pixi = find_tool("pixi", &name, HINT)?;
        let lock = target.join("pixi.lock");
        ctx.txn
            .snapshot(&lock)
            .map_err(|e| Error::failed(format!("cannot read `{lock}`: {e}")))?;
        let args = self.args(ctx, target);
        let line = super::command_line(&pixi, &args);
        run_tool(&format!("service `{name}`"), &pixi, &args, target, true)?;
        Ok(RuntimeOutcome {
            commands: vec![line],
            pins: None,
        })
    }
}
