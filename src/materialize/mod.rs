//! The sync engine: makes a [`Plan`] real on disk, as an explicit ordered
//! sequence of steps (see [`sync`]). The [`driver`] runs them in order;
//! each step lives in a file of its own under [`steps`]. Every file a step
//! writes, or lets a tool such as uv write, goes through one
//! [`FileTxn`](crate::fs::FileTxn), and every git checkout it moves through
//! the [`journal`]: when a step fails, all of them are restored and the
//! error names the step.

mod cargo_workspace;
mod driver;
pub mod fingerprint;
pub mod interrupt;
pub mod journal;
pub mod pool;
pub mod pyproject;
pub mod runtimes;
mod steps;

use std::fs::{File, OpenOptions, TryLockError};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::lock::HsmLock;
use crate::plan::Plan;

pub use driver::STEPS;
pub use steps::root::root_wanted;

/// How `cargo hsm sync` was asked to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Fail if `hsm.lock` or a service's lock file would change.
    pub locked: bool,
    /// Use the commits in `hsm.lock` and the tools' lock files as they are;
    /// resolve nothing. Implies `locked`.
    pub frozen: bool,
    /// No network for git or uv.
    pub offline: bool,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
    /// How many environment syncs run at once; 0: the machine's available
    /// parallelism.
    pub jobs: usize,
    /// Name each tool's version in the actions (`-v`); costs a spawn of
    /// `uv --version`, so it is asked for, never the default.
    pub tool_versions: bool,
}

impl SyncOptions {
    pub fn locked(&self) -> bool {
        self.locked || self.frozen
    }

    fn jobs(&self) -> usize {
        match self.jobs {
            0 => pool::default_jobs(),
            n => n,
        }
    }
}

/// What sync tells its caller while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// An action starts (`Syncing`), or happened (`Fresh`, `Writing`, …).
    Action(&'a Action),
    /// The `Syncing` action of `component` ended.
    Finished { component: &'a str, ok: bool },
}

/// What one action did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Waiting for another sync to finish.
    Block,
    Clone,
    /// A checkout whose `url` changed, with nothing in it that exists only
    /// there, is cloned again; the message says why.
    Reclone,
    Fetch,
    Checkout,
    /// Edit of hsm's entries in a `pyproject.toml`.
    Edit,
    /// A generated file written (env file, `hsm.lock`).
    Write,
    /// A generated file that no longer belongs to the selection.
    Remove,
    /// An environment created or updated by its runtime's tool.
    Sync,
    /// Nothing to do.
    Fresh,
}

impl ActionKind {
    /// The status verb, in cargo's voice.
    pub fn verb(self) -> &'static str {
        match self {
            ActionKind::Block => "Blocking",
            ActionKind::Clone => "Cloning",
            ActionKind::Reclone => "Recloning",
            ActionKind::Fetch => "Fetching",
            ActionKind::Checkout => "Checking out",
            ActionKind::Edit => "Updating",
            ActionKind::Write => "Writing",
            ActionKind::Remove => "Removing",
            ActionKind::Sync => "Syncing",
            ActionKind::Fresh => "Fresh",
        }
    }
}

/// One line of sync's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub action: ActionKind,
    /// `service:embedder`, `libraries`, `hsm.lock`, …
    pub component: String,
    /// The human text after the verb.
    pub message: String,
    /// The file or directory acted on, relative to the workspace root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Utf8PathBuf>,
    /// The command line a runtime ran (or would run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The dry run's unified diff of a generated file it would rewrite
    /// (the compose file: disk → what sync would write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub actions: Vec<Action>,
    pub warnings: Vec<String>,
    /// The lock as written (or as it would be written).
    #[serde(skip)]
    pub lock: HsmLock,
}

impl SyncReport {
    /// The components every action of which was `Fresh`: unchanged since
    /// the last sync, so their verification holds.
    pub fn unchanged(&self) -> std::collections::BTreeSet<String> {
        let mut fresh = std::collections::BTreeSet::new();
        let mut changed = std::collections::BTreeSet::new();
        for a in &self.actions {
            match a.action {
                ActionKind::Fresh => fresh.insert(a.component.clone()),
                ActionKind::Block => false,
                _ => changed.insert(a.component.clone()),
            };
        }
        &fresh - &changed
    }
}

/// Held while a sync runs; dropping it releases `.hsm/sync.lock`.
#[derive(Debug)]
pub struct SyncLock {
    _file: File,
}

/// Where the sync lock lives, relative to the workspace root.
pub const SYNC_LOCK: &str = ".hsm/sync.lock";

/// Takes `.hsm/sync.lock` so that only one sync (or build script) runs at a
/// time. Calls `on_wait` once before blocking on another holder. While
/// `cargo hsm up` runs services (it holds the lock shared, see
/// [`hold_sync_lock_for`]), waiting would last until they stop: that is an
/// error naming them instead.
pub fn acquire_sync_lock(
    workspace_root: &Utf8Path,
    on_wait: &mut dyn FnMut(&Utf8Path),
) -> Result<SyncLock> {
    match lock_or_holders(workspace_root, on_wait)? {
        Locked::Yes(l) => Ok(l),
        Locked::InUse(holders) => Err(in_use(&holders, None)),
    }
}

/// Where the notes of [`hold_sync_lock_for`] live: one file per holder,
/// named by its pid.
pub const HOLDERS_DIR: &str = ".hsm/sync.lock.holders";

/// The sync lock held shared for a long time by `cargo hsm up` (its
/// services run from the environments a sync would rewrite), with a note
/// saying so; dropping it removes the note and releases the lock.
#[derive(Debug)]
pub struct SharedHold {
    _file: File,
    note: Utf8PathBuf,
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.note);
    }
}

/// Holds `.hsm/sync.lock` shared (after waiting for a running sync, with
/// `on_wait`) and leaves the note `who` for the sync that would have to
/// wait: it refuses with that note instead, unless it has nothing to do.
pub fn hold_sync_lock_for(
    workspace_root: &Utf8Path,
    who: &str,
    on_wait: &mut dyn FnMut(&Utf8Path),
) -> Result<SharedHold> {
    let file = open_lock_file(workspace_root)?;
    lock_shared(&file, workspace_root, on_wait)?;
    let dir = workspace_root.join(HOLDERS_DIR);
    let _ = std::fs::create_dir_all(&dir);
    let me = std::process::id() as i32;
    let ticks = interrupt::proc_start(me).map_or(0, |(t, _)| t);
    let note = dir.join(me.to_string());
    let _ = std::fs::write(&note, format!("{me} {ticks}\n{who}\n"));
    Ok(SharedHold { _file: file, note })
}

/// The notes of the live holders of [`hold_sync_lock_for`] (a note whose
/// process is gone, or whose pid was reused, is removed).
fn live_holders(workspace_root: &Utf8Path) -> Vec<String> {
    let dir = workspace_root.join(HOLDERS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let (head, who) = text.split_once('\n').unwrap_or((&text, ""));
        let mut w = head.split_whitespace().map(|x| x.parse::<u64>().ok());
        let alive = match (w.next().flatten(), w.next().flatten()) {
            (Some(pid), Some(t)) => {
                matches!(interrupt::proc_start(pid as i32), Some((s, false)) if s == t)
            }
            _ => false,
        };
        if alive {
            out.push(who.trim_end().to_string());
        } else {
            let _ = std::fs::remove_file(e.path());
        }
    }
    out.sort();
    out
}

/// The refusal of a sync while `cargo hsm up` runs services; `changes`:
/// what the sync would have changed.
fn in_use(holders: &[String], changes: Option<&[String]>) -> Error {
    let mut detail: Vec<String> = holders.iter().map(|h| format!("held by {h}")).collect();
    if let Some(c) = changes {
        detail.push(format!("the sync would change: {}", c.join(", ")));
    }
    Error::failed(format!(
        "cannot sync while `cargo hsm up` runs services from these environments (`{SYNC_LOCK}` is held)"
    ))
    .with_detail(detail.join("\n"))
    .with_help("stop them first (`cargo hsm down`, or Ctrl-C where `cargo hsm up` runs), then sync again")
}

/// What [`lock_or_holders`] got.
enum Locked {
    Yes(SyncLock),
    /// `cargo hsm up` holds the lock shared: these notes say who.
    InUse(Vec<String>),
}

fn open_lock_file(workspace_root: &Utf8Path) -> Result<File> {
    let path = workspace_root.join(SYNC_LOCK);
    let dir = path.parent().expect("has a parent");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::failed(format!("cannot create `{dir}`: {e}")))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        // Written again whenever it is missing: no fsync.
        let _ = crate::fs::write_cache_if_changed(&ignore, b"# Generated by cargo hsm.\n*\n", None);
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::failed(format!("cannot open `{path}`: {e}")))
}

/// Takes the sync lock, waiting for another sync or a check; but not for
/// a running `cargo hsm up`, whose notes it returns instead.
fn lock_or_holders(
    workspace_root: &Utf8Path,
    on_wait: &mut dyn FnMut(&Utf8Path),
) -> Result<Locked> {
    let path = workspace_root.join(SYNC_LOCK);
    let file = open_lock_file(workspace_root)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holders = live_holders(workspace_root);
            if !holders.is_empty() {
                return Ok(Locked::InUse(holders));
            }
            on_wait(Utf8Path::new(SYNC_LOCK));
            file.lock()
                .map_err(|e| Error::failed(format!("cannot lock `{path}`: {e}")))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error::failed(format!("cannot lock `{path}`: {e}")))
        }
    }
    Ok(Locked::Yes(SyncLock { _file: file }))
}

/// Waits until no sync holds `.hsm/sync.lock`, then holds it shared (so
/// that no sync starts while a check reads). Calls `on_wait` once before
/// blocking. Creates nothing: without the lock file no sync has ever run
/// there, and `Ok(None)` says so.
pub fn wait_for_sync(
    workspace_root: &Utf8Path,
    on_wait: &mut dyn FnMut(&Utf8Path),
) -> Result<Option<File>> {
    let path = workspace_root.join(SYNC_LOCK);
    let file = match OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::failed(format!("cannot open `{path}`: {e}"))),
    };
    lock_shared(&file, workspace_root, on_wait)?;
    Ok(Some(file))
}

/// Takes the sync lock file `file` shared, calling `on_wait` once before
/// blocking on a sync that holds it.
fn lock_shared(
    file: &File,
    workspace_root: &Utf8Path,
    on_wait: &mut dyn FnMut(&Utf8Path),
) -> Result<()> {
    let path = workspace_root.join(SYNC_LOCK);
    let failed = |e: std::io::Error| Error::failed(format!("cannot lock `{path}`: {e}"));
    match file.try_lock_shared() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            on_wait(Utf8Path::new(SYNC_LOCK));
            file.lock_shared().map_err(failed)?;
        }
        Err(TryLockError::Error(e)) => return Err(failed(e)),
    }
    Ok(())
}

/// Runs `cargo hsm sync` for a resolved plan. `progress` sees every action
/// as it starts; the report holds them all.
///
/// The steps, in order:
/// 1. take `.hsm/sync.lock`;
/// 2. **git sources**: clone or move each git-sourced service's checkout;
/// 3. **root project**: hsm's entries in the shared `pyproject.toml`
///    (libraries, and uv workspace exclusions for isolated services);
/// 4. **environment services**: env file, then the runtime adapter (uv, venv, pixi);
/// 5. **libraries**: `uv sync` in the shared project;
/// 6. **compose**: the compose file of the container services;
/// 7. **hsm.lock**: written, or compared with `--locked` / `--frozen`.
pub fn sync(
    plan: &Plan,
    opts: &SyncOptions,
    progress: &mut dyn FnMut(&Action),
) -> Result<SyncReport> {
    sync_with_progress(plan, opts, &mut |p| {
        if let Progress::Action(a) = p {
            progress(a)
        }
    })
}

/// [`sync`], also telling when each running action ends (for a progress
/// display).
pub fn sync_with_progress(
    plan: &Plan,
    opts: &SyncOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<SyncReport> {
    driver::run(plan, opts, &Scope::default(), progress)
}

/// What part of the selection a sync acts on, and what it resolves again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `cargo hsm update`: the components (services, library names, or
    /// `libraries`) whose pins do not hold; empty: all.
    pub update: Option<std::collections::BTreeSet<String>>,
    /// `sync -p NAME…`: only these services (or `libraries`) are synced;
    /// the others keep what `hsm.lock` recorded for them.
    pub only: Option<std::collections::BTreeSet<String>>,
}

/// [`sync_with_progress`] of a [`Scope`].
pub fn sync_scoped(
    plan: &Plan,
    opts: &SyncOptions,
    scope: &Scope,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<SyncReport> {
    driver::run(plan, opts, scope, progress)
}
