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
    fn locked(&self) -> bool {
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
/// time. Calls `on_wait` once before blocking on another holder.
pub fn acquire_sync_lock(
    workspace_root: &Utf8Path,
    on_wait: &mut dyn FnMut(&Utf8Path),
) -> Result<SyncLock> {
    let path = workspace_root.join(SYNC_LOCK);
    let dir = path.parent().expect("has a parent");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::failed(format!("cannot create `{dir}`: {e}")))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        let _ = crate::fs::write_if_changed(&ignore, b"# Generated by cargo hsm.\n*\n", None);
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::failed(format!("cannot open `{path}`: {e}")))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            on_wait(Utf8Path::new(SYNC_LOCK));
            file.lock()
                .map_err(|e| Error::failed(format!("cannot lock `{path}`: {e}")))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error::failed(format!("cannot lock `{path}`: {e}")))
        }
    }
    Ok(SyncLock { _file: file })
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
    let failed = |e: std::io::Error| Error::failed(format!("cannot lock `{path}`: {e}"));
    match file.try_lock_shared() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            on_wait(Utf8Path::new(SYNC_LOCK));
            file.lock_shared().map_err(failed)?;
        }
        Err(TryLockError::Error(e)) => return Err(failed(e)),
    }
    Ok(Some(file))
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
    driver::run(plan, opts, progress)
}
