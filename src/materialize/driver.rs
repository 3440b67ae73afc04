//! Runs the steps of a sync in order over one [`Syncer`], and on failure
//! restores everything they changed (see [`super::journal`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use super::fingerprint::Fingerprints;
use super::interrupt;
use super::journal::{self, annotate, DirChange, Journal};
use super::{Action, ActionKind, Progress, SyncOptions, SyncReport};
use crate::error::{Error, Result};
use crate::fs::FileTxn;
use crate::lock::{HsmLock, LockedFile};
use crate::plan::Plan;

/// While `cargo hsm up` holds the sync lock: the sync as a dry run; when
/// it finds nothing to do, that is the sync's report (a fresh sync writes
/// nothing), else the refusal names the holders and what would change.
fn fresh_or_refused(
    plan: &Plan,
    opts: &SyncOptions,
    scope: &super::Scope,
    progress: &mut dyn FnMut(Progress<'_>),
    holders: &[String],
) -> Result<SyncReport> {
    let dry = SyncOptions {
        dry_run: true,
        ..*opts
    };
    let mut report = run(plan, &dry, scope, &mut |_| {})?;
    let changes: Vec<String> = report
        .actions
        .iter()
        .filter(|a| !matches!(a.action, ActionKind::Fresh | ActionKind::Block))
        .map(|a| a.component.clone())
        .collect();
    if !changes.is_empty() {
        let mut changes = changes;
        changes.dedup();
        return Err(super::in_use(holders, Some(&changes)));
    }
    for a in &report.actions {
        progress(Progress::Action(a));
    }
    report.dry_run = false;
    Ok(report)
}

/// [`sync`], also telling when each running action ends (for a progress
/// display).
pub(super) fn run(
    plan: &Plan,
    opts: &SyncOptions,
    scope: &super::Scope,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<SyncReport> {
    let root = plan.project.workspace_root.clone();
    let hsm_dir = root.join(".hsm");
    let hsm_existed = hsm_dir.symlink_metadata().is_ok();
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
                diff: None,
            }))
        };
        match super::lock_or_holders(&root, &mut on_wait)? {
            super::Locked::Yes(l) => Some(l),
            // `cargo hsm up` runs services: a sync with nothing to do
            // goes ahead (it writes nothing), any other is refused.
            super::Locked::InUse(holders) => {
                return fresh_or_refused(plan, opts, scope, progress, &holders)
            }
        }
    };
    let mut warnings = Vec::new();
    // A sync that was killed: roll it back before anything else.
    let recovered = if opts.dry_run {
        if journal::pending(&root) {
            warnings.push(
                "an earlier sync was interrupted; `cargo hsm sync` rolls it back before it syncs"
                    .to_string(),
            );
        }
        None
    } else {
        journal::recover(&root)?
    };
    if let Some(r) = &recovered {
        warnings.push(journal::recovery_note(r));
    }
    let journal = (!opts.dry_run).then(|| Journal::new(&root));
    let _signals = journal
        .as_ref()
        .map(|j| interrupt::install(Some(j.clone() as Arc<dyn interrupt::SpawnLog>)));
    let previous = HsmLock::read(&HsmLock::path(&root))?;
    let recorded = previous
        .iter()
        .flat_map(|l| &l.files)
        .map(|f| (f.path.clone(), f.sha256.clone()))
        .collect();
    let fingerprints = Fingerprints::load(&root);
    let txn = match &journal {
        Some(j) => FileTxn::journaled(j.clone()),
        None => FileTxn::new(),
    };
    let mut s = Syncer {
        fingerprints,
        new_fingerprints: Fingerprints::default(),
        plan,
        opts: *opts,
        root,
        txn,
        journal: journal.clone(),
        dirs: Vec::new(),
        previous,
        recorded,
        lock: HsmLock::new(),
        commits: BTreeMap::new(),
        prefetched: Default::default(),
        lockfiles: BTreeMap::new(),
        added: BTreeMap::new(),
        root_edited: false,
        root_exists: false,
        update: scope.update.clone(),
        only: scope.only.clone(),
        lock_changes: false,
        actions: Vec::new(),
        warnings,
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
            if let Some(j) = &journal {
                j.commit();
            }
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
            let e = match interrupt::signalled() {
                Some(sig) => {
                    interrupt::mark_handled();
                    interrupt::interrupted(sig)
                }
                None => e,
            };
            // The journal on disk is the one record of what changed: the
            // same replay as after a crash.
            drop(s.txn);
            let r = journal.map(|j| j.rollback()).unwrap_or_default();
            if !hsm_existed && r.failed.is_empty() {
                // Made by this sync (its lock), which changed nothing.
                let _ = std::fs::remove_dir_all(&hsm_dir);
            }
            let mut e = annotate(e, step, &r);
            if let Some(rec) = &recovered {
                e = e.with_help(journal::recovery_note(rec));
            }
            Err(e)
        }
    }
}

/// The steps of a sync, in order (also the names of the test pause points
/// `before:<step>` and `after:<step>`).
pub const STEPS: [&str; 7] = [
    "git sources",
    "root project",
    "environment services",
    "libraries",
    "compose",
    "stale files",
    "hsm.lock",
];

pub(super) type StepResult = std::result::Result<(), (&'static str, Error)>;

pub(super) struct Syncer<'a> {
    pub(super) plan: &'a Plan,
    pub(super) opts: SyncOptions,
    /// Absolute workspace root.
    pub(super) root: Utf8PathBuf,
    pub(super) txn: FileTxn,
    /// `None` on a dry run.
    pub(super) journal: Option<Arc<Journal>>,
    /// Checkout changes, for the clean-up after success.
    pub(super) dirs: Vec<DirChange>,
    pub(super) previous: Option<HsmLock>,
    /// The generated files `previous` records, path → SHA-256: looked up
    /// once per service, so not a scan.
    pub(super) recorded: std::collections::HashMap<Utf8PathBuf, String>,
    /// The lock being built.
    pub(super) lock: HsmLock,
    /// Resolved commit of each git-sourced service.
    pub(super) commits: BTreeMap<String, String>,
    /// The clones the git step started in the background.
    pub(super) prefetched: super::steps::clones::Clones,
    /// Each environment service's own lock file.
    pub(super) lockfiles: BTreeMap<String, LockedFile>,
    /// The entries hsm added to each environment service's manifest, where
    /// that file cannot record them (see [`crate::lock::LockedService::added_dependencies`]).
    pub(super) added: BTreeMap<String, Vec<String>>,
    pub(super) root_edited: bool,
    pub(super) root_exists: bool,
    /// `cargo hsm update`: the components whose pins (git commits, the
    /// tools' locks) are resolved again; empty: all of them.
    pub(super) update: Option<std::collections::BTreeSet<String>>,
    /// `sync -p NAME…`: the services (or libraries) acted on; the others'
    /// pins and recorded hashes are carried over from `hsm.lock`.
    pub(super) only: Option<std::collections::BTreeSet<String>>,
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
    /// Whether `cargo hsm update` re-resolves `name` (a service, or
    /// `libraries`): its lock pins do not hold.
    pub(super) fn updating(&self, name: &str) -> bool {
        self.update
            .as_ref()
            .is_some_and(|u| u.is_empty() || u.contains(name))
    }

    /// Whether this sync acts on `name` (a service, or `libraries`).
    pub(super) fn acts_on(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(name))
    }

    fn run_steps(&mut self) -> StepResult {
        for name in STEPS {
            interrupt::test_point(&format!("before:{name}"));
            interrupt::check().map_err(|e| (name, e))?;
            let r = match name {
                "git sources" => self.git_sources(),
                "root project" => self.root_project(),
                "environment services" => self.environment_services(),
                "libraries" => self.libraries(),
                "compose" => self.compose(),
                "stale files" => self.stale_files(),
                _ => self.write_lock(),
            };
            r.map_err(|e| (self.prefetched.failed_step(name), e))?;
            interrupt::test_point(&format!("after:{name}"));
        }
        // The last moment a signal can still roll the sync back.
        interrupt::check().map_err(|e| ("hsm.lock", e))?;
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
        self.push(Action {
            action,
            component: component.into(),
            message: crate::error::one_line(message),
            path: path.map(|p| p.to_owned()),
            command,
            diff: None,
        });
    }

    /// Reports `a` and keeps it in the report.
    pub(super) fn push(&mut self, a: Action) {
        (self.progress)(Progress::Action(&a));
        self.actions.push(a);
    }

    /// Writes down a checkout change before it is made.
    pub(super) fn record_dir(&mut self, d: DirChange) -> Result<()> {
        if let Some(j) = &self.journal {
            j.dir_change(&d)?;
        }
        self.dirs.push(d);
        Ok(())
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
        interrupt::test_point(&format!("write:{rel}"));
        interrupt::check()?;
        self.txn
            .write(&abs, contents, mode)
            .map_err(|e| Error::failed(format!("cannot write `{rel}`: {e}")))
    }
}
