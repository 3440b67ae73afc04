//! Step 5, libraries: `uv sync` in the shared project.

use camino::Utf8Path;

use crate::error::{Error, Result};
use crate::lock::{sha256_hex, LockedFile, LockedRoot};
use crate::materialize::driver::Syncer;
use crate::materialize::fingerprint;
use crate::materialize::runtimes;
use crate::materialize::{ActionKind, Progress};

impl Syncer<'_> {
    /// The shared project as it is on disk now (`abs_dir`: its directory).
    fn libraries_fingerprint(&self, abs_dir: &Utf8Path) -> Option<String> {
        let mut h = fingerprint::Hasher::new();
        h.value(
            "plan",
            &self
                .plan
                .libraries
                .iter()
                .map(fingerprint::LibraryInputs::of)
                .collect::<Vec<_>>(),
        );
        h.tool("uv");
        h.tool_env_vars();
        for f in ["pyproject.toml", "uv.lock", ".python-version"] {
            h.file(&abs_dir.join(f));
        }
        // Local libraries' own inputs: a dependency added to one of them
        // must reach the root venv.
        for l in &self.plan.libraries {
            if let Some(t) = &l.target_path {
                for f in fingerprint::PROJECT_INPUTS {
                    h.file(&self.root.join(t).join(f));
                }
            }
        }
        h.venv(&abs_dir.join(".venv"));
        h.finish()
    }

    pub(in crate::materialize) fn libraries(&mut self) -> Result<()> {
        if !self.root_exists {
            return Ok(());
        }
        let named = self.plan.libraries.iter().any(|l| self.acts_on(&l.name));
        if !self.acts_on("libraries") && !named {
            // `sync -p` of services: the shared project keeps its lock.
            self.lock.root = self.previous.as_ref().and_then(|p| p.root.clone());
            if let Some(fp) = self.fingerprints.get("libraries") {
                self.new_fingerprints.insert("libraries", fp.to_string());
            }
            return Ok(());
        }
        let project_dir = self.plan.project.python_project.clone();
        let abs_dir = crate::paths::normalize(&self.root.join(&project_dir));
        let lock_rel = crate::paths::normalize(&project_dir.join("uv.lock"));
        let lock_abs = self.root.join(&lock_rel);
        let mut flags = runtimes::uv_mode_flags(&self.opts);
        // `cargo hsm update`: all of the shared project's lock, or the
        // named libraries' packages only.
        let packages: Vec<String> = if self.updating("libraries") {
            Vec::new()
        } else {
            self.plan
                .libraries
                .iter()
                .filter(|l| self.update.as_ref().is_some_and(|u| u.contains(&l.name)))
                .map(|l| {
                    crate::python::requirements::parse_requirement(&l.requirement)
                        .map(|r| r.name.to_string())
                        .unwrap_or_else(|_| l.name.clone())
                })
                .collect()
        };
        let upgrade = self.updating("libraries") || !packages.is_empty();
        if upgrade && !self.opts.locked && !self.opts.frozen {
            if packages.is_empty() {
                flags.push("--upgrade".to_string());
            }
            for p in packages {
                flags.push("--upgrade-package".to_string());
                flags.push(p);
            }
        }
        let describe = format!("uv sync {}", flags.join(" "))
            .trim_end()
            .to_string();
        // Fresh when nothing changed since the last successful sync: no
        // process spawned (a dry run predicts the same).
        let unchanged = if self.root_edited || upgrade {
            None
        } else {
            self.fingerprints.unchanged(
                "libraries",
                self.libraries_fingerprint(&abs_dir).as_deref(),
                self.opts.frozen,
            )
        };
        if unchanged.is_none() && self.opts.dry_run && !self.opts.frozen {
            // Will `uv sync` rewrite `uv.lock` (and so `hsm.lock`)?
            self.lock_changes |=
                self.root_edited || runtimes::uv_lock_would_change(&abs_dir, &self.opts);
        }
        if unchanged.is_some() {
            self.act(
                ActionKind::Fresh,
                "libraries",
                format!("libraries (uv, {project_dir})"),
                Some(&project_dir),
                None,
            );
        } else {
            let uv = if self.opts.dry_run {
                None
            } else {
                Some(runtimes::find_uv(
                    &self.root,
                    &format!("the shared project `{project_dir}`"),
                    UV_HINT,
                )?)
            };
            let describe = match uv {
                Some(uv) => format!("{describe} ({})", uv.describe(self.opts.tool_versions)),
                None => describe,
            };
            self.act(
                ActionKind::Sync,
                "libraries",
                format!("libraries (uv, {project_dir})"),
                Some(&project_dir),
                Some(describe),
            );
            if let Some(uv) = uv {
                let uv = &uv.path;
                self.txn
                    .snapshot(&lock_abs)
                    .map_err(|e| Error::failed(format!("cannot read `{lock_rel}`: {e}")))?;
                let venv = abs_dir.join(".venv");
                if let Some(j) = &self.journal {
                    j.env(&venv)?;
                }
                let mut args = vec!["sync".to_string()];
                args.extend(flags);
                runtimes::run_tool("the shared project", uv, &args, &abs_dir, true)?;
                crate::materialize::journal::env_done(&venv);
                (self.progress)(Progress::Finished {
                    component: "libraries",
                    ok: true,
                });
            }
        }
        if !self.opts.dry_run {
            let fp = match &unchanged {
                Some(stored) => Some(stored.clone()),
                None => self
                    .libraries_fingerprint(&abs_dir)
                    .map(|fp| fingerprint::mark(&fp, self.opts.frozen)),
            };
            if let Some(fp) = fp {
                self.new_fingerprints.insert("libraries", fp);
            }
        }
        // Unchanged since the last sync: so is the recorded hash of uv.lock.
        let kept = unchanged
            .and(self.previous.as_ref())
            .and_then(|p| p.root.as_ref())
            .and_then(|r| r.lockfile.clone())
            .filter(|f| f.path == lock_rel);
        let lockfile = kept.or_else(|| {
            std::fs::read(&lock_abs).ok().map(|b| LockedFile {
                path: lock_rel.clone(),
                sha256: sha256_hex(&b),
            })
        });
        self.lock.root = Some(LockedRoot {
            python_project: project_dir,
            lockfile,
        });
        Ok(())
    }
}

const UV_HINT: &str =
    "install uv with `pip install uv` (or see https://docs.astral.sh/uv/getting-started/installation/)";
