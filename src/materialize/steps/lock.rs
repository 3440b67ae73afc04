//! Step 7, hsm.lock: env files of services that left the selection are
//! removed, then the lock is written, or compared with `--locked` /
//! `--frozen`.

use camino::Utf8PathBuf;

use crate::error::{Error, Result};
use crate::lock::{LockedGit, LockedLibrary, LockedService};
use crate::manifest::model::Source;
use crate::materialize::driver::Syncer;
use crate::materialize::ActionKind;

impl Syncer<'_> {
    /// Env files of services that left the selection.
    pub(in crate::materialize) fn stale_files(&mut self) -> Result<()> {
        let Some(prev) = self.previous.as_ref() else {
            return Ok(());
        };
        let kept: std::collections::HashSet<&Utf8PathBuf> =
            self.lock.files.iter().map(|n| &n.path).collect();
        let gone: Vec<Utf8PathBuf> = prev
            .files
            .iter()
            .filter(|f| f.path.starts_with(".hsm/env") && !kept.contains(&f.path))
            .map(|f| f.path.clone())
            .collect();
        for path in gone {
            let abs = self.root.join(&path);
            if !abs.exists() {
                continue;
            }
            self.act(
                ActionKind::Remove,
                "sync",
                path.to_string(),
                Some(&path),
                None,
            );
            if !self.opts.dry_run {
                self.txn
                    .remove(&abs)
                    .map_err(|e| Error::failed(format!("cannot remove `{path}`: {e}")))?;
            }
        }
        Ok(())
    }

    pub(in crate::materialize) fn write_lock(&mut self) -> Result<()> {
        // Clones no environment service asked for (a container's build context).
        self.finish_clones()?;
        let plan = self.plan;
        for l in &plan.libraries {
            self.lock.libraries.push(LockedLibrary {
                name: l.name.clone(),
                mode: l.mode.to_string(),
                source: crate::git::transport::redact_text(&l.source.describe()),
                requirement: l.requirement.clone(),
            });
        }
        for sv in &plan.services {
            let git = match (&sv.source, &sv.checkout_path, self.commits.get(&sv.name)) {
                (Some(Source::Git { url, reference, .. }), Some(co), Some(commit)) => {
                    Some(LockedGit {
                        url: crate::git::redact_url(url),
                        reference: reference.clone(),
                        commit: commit.clone(),
                        checkout: co.clone(),
                    })
                }
                _ => None,
            };
            self.lock.services.push(LockedService {
                name: sv.name.clone(),
                mode: sv.mode.to_string(),
                runtime: sv
                    .runtime()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "external".into()),
                source: sv
                    .source
                    .as_ref()
                    .map(|s| crate::git::transport::redact_text(&s.describe()))
                    .unwrap_or_else(|| "none".into()),
                git,
                target_path: sv.target_path.clone(),
                added_dependencies: self.added.get(&sv.name).cloned().unwrap_or_default(),
                lockfile: self.lockfiles.get(&sv.name).cloned(),
            });
        }
        self.lock.normalize();
        let rel = Utf8PathBuf::from(crate::lock::LOCK_FILE);
        let abs = self.root.join(&rel);
        let lock_changes = self.opts.dry_run && self.lock_changes;
        if !lock_changes && self.lock.on_disk_as(&abs) {
            // The file read at the start renders this very lock.
            return Ok(());
        }
        let text = self.lock.to_toml();
        let old = std::fs::read_to_string(&abs).ok();
        let predicted = lock_changes && old.is_some();
        if old.as_deref() == Some(text.as_str()) && !predicted {
            return Ok(());
        }
        if self.opts.locked() {
            let flag = if self.opts.frozen {
                "--frozen"
            } else {
                "--locked"
            };
            let detail = match &self.previous {
                Some(prev) => prev
                    .diff(&self.lock)
                    .into_iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                None => "  hsm.lock does not exist yet".to_string(),
            };
            return Err(Error::failed(format!(
                "`{flag}` was given, but sync would change `hsm.lock`:"
            ))
            .with_detail(detail)
            .with_help(format!(
                "run `cargo hsm sync` without `{flag}` to update `hsm.lock`"
            )));
        }
        let message = if predicted && old.as_deref() == Some(text.as_str()) {
            format!("{rel} (the tools will rewrite a lock file)")
        } else {
            rel.to_string()
        };
        self.act(ActionKind::Write, "hsm.lock", message, Some(&rel), None);
        self.write_file(&rel, text.as_bytes(), None)?;
        Ok(())
    }
}
