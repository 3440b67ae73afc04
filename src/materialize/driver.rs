//! Runs the steps of a sync in order over one [`Syncer`], and on failure
//! restores everything they changed (see [`super::journal`]).

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};

use super::fingerprint::Fingerprints;
use super::journal::{annotate, rollback_dirs, DirChange};
use super::{acquire_sync_lock, Action, ActionKind, Progress, SyncOptions, SyncReport};
use crate::error::{Error, Result};
use crate::fs::FileTxn;
use crate::lock::{HsmLock, LockedFile};
use crate::plan::Plan;

/// [`sync`], also telling when each running action ends (for a progress
/// display).
pub(super) fn run(
    plan: &Plan,
    opts: &SyncOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<SyncReport> {
    let root = plan.project.workspace_root.clone();
    let _guard = if opts.dry_run {
        None
    } else {
        let mut on_wait = |p: &Utf8Path| {
            progress(Progress::Action(&Action {
                action: ActionKind::Block,
                component: "sync".into(),
                message: format!("waiting for file lock on {p}"),
                path: Some(p.to_owned()),
                command: None,
            }))
        };
        Some(acquire_sync_lock(&root, &mut on_wait)?)
    };
    let previous = HsmLock::read(&HsmLock::path(&root))?;
    let fingerprints = Fingerprints::load(&root);
    let mut s = Syncer {
        fingerprints,
        new_fingerprints: Fingerprints::default(),
        plan,
        opts: *opts,
        root,
        txn: FileTxn::new(),
        dirs: Vec::new(),
        previous,
        lock: HsmLock::new(),
        commits: BTreeMap::new(),
        prefetched: BTreeMap::new(),
        lockfiles: BTreeMap::new(),
        root_edited: false,
        root_exists: false,
        lock_changes: false,
        actions: Vec::new(),
        warnings: Vec::new(),
        progress,
    };
    match s.run_steps() {
        Ok(()) => {
            let Syncer {
                txn,
                dirs,
                lock,
                actions,
                warnings,
                new_fingerprints,
                fingerprints: s_fingerprints,
                root,
                ..
            } = s;
            txn.commit();
            if !opts.dry_run && !new_fingerprints.same(&s_fingerprints) {
                // A cache: failing to write it only costs a real sync next time.
                let _ = new_fingerprints.save(&root);
            }
            for d in dirs {
                if let DirChange::MovedAside { aside, .. } = d {
                    let _ = std::fs::remove_dir_all(&aside);
                }
            }
            Ok(SyncReport {
                dry_run: opts.dry_run,
                actions,
                warnings,
                lock,
            })
        }
        Err((step, e)) => {
            let Syncer {
                txn, dirs, root, ..
            } = s;
            let touched: Vec<Utf8PathBuf> = txn
                .paths()
                .map(|p| crate::paths::relative_to(p, &root))
                .collect();
            let failed = txn.rollback();
            let dir_failed = rollback_dirs(dirs);
            Err(annotate(e, step, &touched, &failed, &dir_failed))
        }
    }
}

pub(super) type StepResult = std::result::Result<(), (&'static str, Error)>;

pub(super) struct Syncer<'a> {
    pub(super) plan: &'a Plan,
    pub(super) opts: SyncOptions,
    /// Absolute workspace root.
    pub(super) root: Utf8PathBuf,
    pub(super) txn: FileTxn,
    pub(super) dirs: Vec<DirChange>,
    pub(super) previous: Option<HsmLock>,
    /// The lock being built.
    pub(super) lock: HsmLock,
    /// Resolved commit of each git-sourced service.
    pub(super) commits: BTreeMap<String, String>,
    /// Clones made in parallel ahead of the git step, by service name.
    pub(super) prefetched: BTreeMap<String, crate::git::Fetched>,
    /// Each environment service's own lock file.
    pub(super) lockfiles: BTreeMap<String, LockedFile>,
    pub(super) root_edited: bool,
    pub(super) root_exists: bool,
    /// With `--dry-run`: a tool is predicted to rewrite a lock file, so
    /// `hsm.lock` will change although the lock built here looks the same.
    pub(super) lock_changes: bool,
    pub(super) actions: Vec<Action>,
    pub(super) warnings: Vec<String>,
    pub(super) progress: &'a mut dyn FnMut(Progress<'_>),
    /// What the last successful sync left (`.hsm/fingerprints.json`).
    pub(super) fingerprints: Fingerprints,
    /// What this sync leaves.
    pub(super) new_fingerprints: Fingerprints,
}

/// One error for several failed services, each with its whole message.
pub(super) fn combine_failures(mut failed: Vec<(String, Error)>) -> Error {
    if failed.len() == 1 {
        return failed.pop().expect("one").1;
    }
    let names: Vec<String> = failed.iter().map(|(n, _)| format!("`{n}`")).collect();
    let detail = failed
        .iter()
        .map(|(_, e)| {
            e.plain()
                .lines()
                .enumerate()
                .map(|(i, l)| format!("{}{l}", if i == 0 { "- " } else { "  " }))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n");
    Error::failed(format!(
        "{} services failed to sync: {}",
        failed.len(),
        names.join(", ")
    ))
    .with_detail(detail)
}

impl Syncer<'_> {
    fn run_steps(&mut self) -> StepResult {
        fn step(name: &'static str, r: Result<()>) -> StepResult {
            r.map_err(|e| (name, e))
        }
        step("git sources", self.git_sources())?;
        step("root project", self.root_project())?;
        step("environment services", self.environment_services())?;
        step("libraries", self.libraries())?;
        step("compose", self.compose())?;
        step("stale files", self.stale_files())?;
        step("hsm.lock", self.write_lock())?;
        Ok(())
    }

    pub(super) fn act(
        &mut self,
        action: ActionKind,
        component: impl Into<String>,
        message: impl Into<String>,
        path: Option<&Utf8Path>,
        command: Option<String>,
    ) {
        let a = Action {
            action,
            component: component.into(),
            message: message.into(),
            path: path.map(|p| p.to_owned()),
            command,
        };
        (self.progress)(Progress::Action(&a));
        self.actions.push(a);
    }

    pub(super) fn write_file(
        &mut self,
        rel: &Utf8Path,
        contents: &[u8],
        mode: Option<u32>,
    ) -> Result<bool> {
        let abs = self.root.join(rel);
        if self.opts.dry_run {
            return Ok(crate::fs::would_change(&abs, contents, mode));
        }
        self.txn
            .write(&abs, contents, mode)
            .map_err(|e| Error::failed(format!("cannot write `{rel}`: {e}")))
    }
}
