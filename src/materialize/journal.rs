//! The sync journal, after sqlite's rollback journal: before a sync changes
//! anything, it writes down (and fsyncs) what it is about to change — the
//! original bytes, mode and owner of each file, each path it creates, each
//! git checkout it moves, each environment it lets a tool touch, each tool
//! it starts. A sync that ends normally deletes the journal (its commit
//! point) or replays it backwards (its rollback). A journal still on disk
//! when the next writing command starts is the trace of a sync that was
//! killed; that command replays it first and says what it restored.
//!
//! Layout: `.hsm/journal/log` (one JSON record per line, appended) and
//! `.hsm/journal/<n>.orig` (the original bytes of the n-th file, when they
//! are too big or not text; smaller text goes into its record, so that one
//! `fdatasync` of the log makes both durable).
//!
//! The commit truncates the log rather than deleting it (sqlite's
//! `TRUNCATE` journal mode): the next sync appends to a file whose
//! directory entry is durable already, and needs no directory fsync. An
//! empty log is a committed one.

use std::io::Write;
use std::sync::{Arc, Mutex};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fs::{restore_file, sync_dir, FileMeta, TxnLog};
use crate::git;

/// The journal's directory, relative to the workspace root.
pub const JOURNAL_DIR: &str = crate::fs::SYNC_JOURNAL_DIR;
const LOG: &str = "log";
/// The biggest backup kept inside its record rather than in a `.orig` file.
const INLINE_MAX: usize = 256 * 1024;

/// When a record must reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Before [`Journal::append_as`] returns: the change it guards follows
    /// at once.
    Now,
    /// Before the next tool starts (see [`Journal::barrier`]): the change
    /// it guards is made by that tool.
    BeforeTool,
    /// Only with the next record that is synced: its loss after a power
    /// cut costs nothing (see the callers).
    Lazy,
}

/// A git checkout change, undone on rollback.
#[derive(Debug)]
pub(super) enum DirChange {
    /// A fresh clone: removed.
    Created(Utf8PathBuf),
    /// An old checkout moved aside for a re-clone: put back.
    MovedAside {
        orig: Utf8PathBuf,
        aside: Utf8PathBuf,
    },
    /// HEAD moved: moved back.
    Moved {
        path: Utf8PathBuf,
        previous: git2::Oid,
    },
}

/// One line of the log. Paths are relative to the workspace root when
/// they lie inside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Record {
    /// A file about to be written or removed; `backup` holds its bytes
    /// (`None`: it did not exist).
    File {
        path: Utf8PathBuf,
        backup: Option<String>,
        /// The original bytes themselves, for small text files (then
        /// `backup` is `None`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inline: Option<String>,
        meta: Option<FileMeta>,
    },
    /// A directory about to be created.
    CreatedDir {
        path: Utf8PathBuf,
    },
    /// An environment a tool is about to create (`created`) or change.
    Env {
        path: Utf8PathBuf,
        created: bool,
    },
    Clone {
        path: Utf8PathBuf,
    },
    MovedAside {
        orig: Utf8PathBuf,
        aside: Utf8PathBuf,
    },
    Moved {
        path: Utf8PathBuf,
        previous: String,
    },
    /// A tool started in its own process group.
    Spawn {
        pgid: i32,
        program: String,
    },
}

/// What a rollback did, for the message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Files put back as they were.
    pub restored: Vec<Utf8PathBuf>,
    /// Files, directories and checkouts sync had created, removed.
    pub removed: Vec<Utf8PathBuf>,
    /// Checkouts moved back to their previous commit or place.
    pub reverted: Vec<Utf8PathBuf>,
    /// Environments a tool had changed, left marked so the next sync
    /// rebuilds them (an environment is not journaled file by file).
    pub marked: Vec<Utf8PathBuf>,
    /// Tools of the killed sync that were still running, stopped.
    pub stopped: Vec<String>,
    /// What could not be undone, with the reason.
    pub failed: Vec<String>,
    /// Something could not be undone: the journal stays on disk for the
    /// next writing command to finish the rollback.
    pub kept: bool,
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        self.restored.is_empty()
            && self.removed.is_empty()
            && self.reverted.is_empty()
            && self.marked.is_empty()
            && self.stopped.is_empty()
            && self.failed.is_empty()
    }

    /// "restored `a`, `b`; removed `c`; …", or "nothing had changed yet".
    pub fn summary(&self) -> String {
        let list = |v: &[Utf8PathBuf]| {
            v.iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.restored.is_empty() {
            parts.push(format!("restored {}", list(&self.restored)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {}", list(&self.removed)));
        }
        if !self.reverted.is_empty() {
            parts.push(format!("moved back {}", list(&self.reverted)));
        }
        if !self.marked.is_empty() {
            parts.push(format!(
                "left {} marked as unfinished: the next sync rebuilds it",
                list(&self.marked)
            ));
        }
        if !self.stopped.is_empty() {
            parts.push(format!("stopped {}", self.stopped.join(", ")));
        }
        if !self.failed.is_empty() {
            parts.push(format!("could NOT restore: {}", self.failed.join(", ")));
        }
        if self.kept {
            parts.push(format!(
                "the journal stays in `{JOURNAL_DIR}`: once the cause is fixed (a full disk?), the next `cargo hsm sync` finishes the rollback"
            ));
        }
        if parts.is_empty() {
            "nothing had been changed yet".into()
        } else {
            parts.join("; ")
        }
    }
}

#[derive(Debug, Default)]
struct State {
    log: Option<std::fs::File>,
    backups: usize,
    /// A [`Durability::BeforeTool`] record is not synced yet.
    unsynced: bool,
    /// The files with a record already: replayed newest first, the oldest
    /// record of a file restores it last, so a later one would add nothing
    /// but a backup and an fsync (a lock file hsm placed, then snapshotted
    /// again before its tool runs).
    files: std::collections::HashSet<Utf8PathBuf>,
}

/// The journal of the running sync. Nothing is on disk until the first
/// change, so a no-op sync writes nothing.
#[derive(Debug)]
pub struct Journal {
    root: Utf8PathBuf,
    dir: Utf8PathBuf,
    state: Mutex<State>,
}

impl Journal {
    pub fn new(root: &Utf8Path) -> Arc<Journal> {
        Arc::new(Journal {
            root: root.to_owned(),
            dir: root.join(JOURNAL_DIR),
            state: Mutex::new(State::default()),
        })
    }

    fn rel(&self, p: &Utf8Path) -> Utf8PathBuf {
        crate::paths::relative_to(p, &self.root)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `rec`, given the name of its backup file or its inline
    /// backup, synced to disk as `durability` says. A record that is not
    /// synced yet still reaches every later rollback and the recovery after
    /// a killed process (the page cache survives a process); only a power
    /// loss can drop it.
    fn append_as(
        &self,
        rec: impl FnOnce(Option<String>, Option<String>) -> Record,
        backup: Option<&[u8]>,
        durability: Durability,
    ) -> std::io::Result<()> {
        let mut st = self.state();
        if st.log.is_none() {
            st.log = Some(self.open_log()?);
        }
        let (name, inline) = match backup {
            Some(bytes) if bytes.len() <= INLINE_MAX && std::str::from_utf8(bytes).is_ok() => {
                let text = std::str::from_utf8(bytes).expect("checked above");
                (None, Some(text.to_string()))
            }
            Some(bytes) => {
                let name = format!("{}.orig", st.backups);
                st.backups += 1;
                let mut f = std::fs::File::create(self.dir.join(&name))?;
                f.write_all(bytes)?;
                f.sync_all()?;
                // Its directory entry too: the record names it.
                sync_dir(&self.dir)?;
                (Some(name), None)
            }
            None => (None, None),
        };
        let mut line = serde_json::to_string(&rec(name, inline)).expect("plain data serialises");
        line.push('\n');
        let log = st.log.as_mut().expect("opened above");
        log.write_all(line.as_bytes())?;
        match durability {
            Durability::Now => {
                log.sync_data()?;
                st.unsynced = false;
            }
            Durability::BeforeTool => st.unsynced = true,
            Durability::Lazy => {}
        }
        Ok(())
    }

    /// Opens the log for a new sync. Its directory entries are synced only
    /// when they are new: a committed log stays on disk, empty.
    fn open_log(&self) -> std::io::Result<std::fs::File> {
        let path = self.dir.join(LOG);
        let (dir_new, log_new) = if path.is_file() {
            (false, false)
        } else {
            (!self.dir.is_dir(), true)
        };
        if dir_new {
            std::fs::create_dir_all(&self.dir)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        if log_new {
            sync_dir(&self.dir)?;
        }
        if dir_new {
            if let Some(p) = self.dir.parent() {
                sync_dir(p)?;
            }
        }
        Ok(log)
    }

    /// Makes every record written so far durable if one of them must be
    /// before a tool starts. Called before each tool is spawned.
    pub fn barrier(&self) -> std::io::Result<()> {
        let mut st = self.state();
        if !st.unsynced {
            return Ok(());
        }
        if let Some(log) = &st.log {
            log.sync_data()?;
        }
        st.unsynced = false;
        Ok(())
    }

    fn record_as(&self, rec: Record, durability: Durability) -> Result<()> {
        self.append_as(|_, _| rec, None, durability).map_err(|e| {
            Error::failed(format!("cannot write the sync journal `{}`: {e}", self.dir))
        })
    }

    /// Writes down a git checkout change before it is made. A new clone's
    /// record is not synced by itself (one fsync less per clone): after a
    /// power loss that drops it, the clone stays where nothing was, marked
    /// as hsm's, and the next sync simply uses it; nothing of the user's
    /// is at stake.
    pub(super) fn dir_change(&self, d: &DirChange) -> Result<()> {
        let durability = match d {
            DirChange::Created(_) => Durability::Lazy,
            _ => Durability::Now,
        };
        let rec = match d {
            DirChange::Created(p) => Record::Clone { path: self.rel(p) },
            DirChange::MovedAside { orig, aside } => Record::MovedAside {
                orig: self.rel(orig),
                aside: self.rel(aside),
            },
            DirChange::Moved { path, previous } => Record::Moved {
                path: self.rel(path),
                previous: previous.to_string(),
            },
        };
        self.record_as(rec, durability)
    }

    /// Writes down that a tool is about to create or change the
    /// environment at `path`; an existing one gets the unfinished marker
    /// until [`Journal::env_done`]. The record is synced before the tool
    /// starts, with the records written in between (one `fdatasync` for
    /// the environment and the lock file its tool rewrites).
    pub fn env(&self, path: &Utf8Path) -> Result<()> {
        let created = !path.exists();
        self.record_as(
            Record::Env {
                path: self.rel(path),
                created,
            },
            Durability::BeforeTool,
        )?;
        if !created {
            mark_unfinished(path)
                .map_err(|e| Error::failed(format!("cannot mark `{path}` as unfinished: {e}")))?;
        }
        Ok(())
    }

    /// Writes down the file at `path` as it is now, for a change that a
    /// later step will most likely make (`hsm.lock`, once a tool runs), with
    /// the record of the tool's environment: it is synced before the tool
    /// starts, in the same `fdatasync`, and the step's own write then needs
    /// none. Should the step leave the file as it is, a rollback finds it
    /// unchanged and neither rewrites nor reports it. A missing file is not
    /// written down (the step's write journals its creation itself).
    pub fn file_ahead(&self, path: &Utf8Path) -> Result<()> {
        let rel = self.rel(path);
        if self.state().files.contains(&rel) {
            return Ok(());
        }
        let cannot = |e: std::io::Error| {
            Error::failed(format!("cannot write the sync journal `{}`: {e}", self.dir))
        };
        let contents = match std::fs::read(path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(cannot(e)),
        };
        let meta = FileMeta::of(path).map_err(cannot)?;
        self.record_file(rel, Some(&contents), meta, Durability::BeforeTool)
            .map_err(cannot)
    }

    /// The record of the file at `rel` (`original`: what it holds, `None`:
    /// it does not exist), its one record in this journal.
    fn record_file(
        &self,
        rel: Utf8PathBuf,
        original: Option<&[u8]>,
        meta: Option<FileMeta>,
        durability: Durability,
    ) -> std::io::Result<()> {
        self.append_as(
            |backup, inline| Record::File {
                path: rel.clone(),
                backup,
                inline,
                meta,
            },
            original,
            durability,
        )?;
        self.state().files.insert(rel);
        Ok(())
    }

    /// Whether anything was written down.
    pub fn is_empty(&self) -> bool {
        self.state().log.is_none()
    }

    /// Keeps every change: emptying the log is the commit point. It is not
    /// synced to disk, as sqlite does not sync it in its `TRUNCATE` journal
    /// mode: after a power loss that undoes it, the log is whole (every
    /// record that a change depended on was synced before the change), and
    /// the next command rolls the sync back as if it had been killed just
    /// before its commit, which leaves every file as it was.
    pub fn commit(&self) {
        let mut st = self.state();
        if let Some(log) = st.log.take() {
            let _ = log.set_len(0);
            for n in 0..st.backups {
                let _ = std::fs::remove_file(self.dir.join(format!("{n}.orig")));
            }
            st.backups = 0;
            st.unsynced = false;
            st.files.clear();
        }
    }

    /// Undoes everything written down, newest first, and deletes the journal.
    pub fn rollback(&self) -> Recovery {
        let mut st = self.state();
        if st.log.take().is_none() {
            return Recovery::default();
        }
        drop(st);
        replay(&self.root)
    }
}

impl TxnLog for Journal {
    fn file(
        &self,
        path: &Utf8Path,
        original: Option<&[u8]>,
        meta: Option<&FileMeta>,
    ) -> std::io::Result<()> {
        let rel = self.rel(path);
        {
            let mut st = self.state();
            if st.files.contains(&rel) {
                // Written down ahead ([`Journal::file_ahead`]): durable
                // now, if no tool started since.
                if st.unsynced {
                    if let Some(log) = &st.log {
                        log.sync_data()?;
                    }
                    st.unsynced = false;
                }
                return Ok(());
            }
        }
        self.record_file(rel, original, meta.copied(), Durability::Now)
    }

    /// Not synced by itself: [`FileTxn::snapshot`] writes the record of
    /// the file in that directory next, durably, before either is created.
    ///
    /// [`FileTxn::snapshot`]: crate::fs::FileTxn::snapshot
    fn created_dir(&self, path: &Utf8Path) -> std::io::Result<()> {
        let path = self.rel(path);
        self.append_as(|_, _| Record::CreatedDir { path }, None, Durability::Lazy)
    }
}

impl super::interrupt::SpawnLog for Journal {
    /// Not synced by itself: the record only matters after hsm itself was
    /// killed (to stop the process groups it left running), which keeps the
    /// page cache; after a power loss no process is left to stop.
    fn spawned(&self, pgid: i32, program: &str) {
        let program = program.to_string();
        let _ = self.append_as(
            |_, _| Record::Spawn { pgid, program },
            None,
            Durability::Lazy,
        );
    }

    fn barrier(&self) -> std::io::Result<()> {
        Journal::barrier(self)
    }
}

/// Marks an environment as one a tool did not finish (see
/// [`crate::python::venv::INCOMPLETE_MARKER`]).
pub fn mark_unfinished(env: &Utf8Path) -> std::io::Result<()> {
    let f = env.join(crate::python::venv::INCOMPLETE_MARKER);
    match std::fs::write(&f, b"a sync changed this environment and did not finish\n") {
        // On a full disk an empty marker may still fit (it needs no data
        // block), and only its existence counts.
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
            std::fs::File::create(&f).map(drop)
        }
        r => r,
    }
}

/// The tool finished: the environment is whole again.
pub fn env_done(env: &Utf8Path) {
    let _ = std::fs::remove_file(env.join(crate::python::venv::INCOMPLETE_MARKER));
}

/// Whether an interrupted sync left a journal (the caller holds the sync
/// lock): its log holds records. An empty log is a committed one.
pub fn pending(root: &Utf8Path) -> bool {
    crate::fs::journal_log_holds_records(root)
}

/// Rolls back the journal an interrupted sync left, if any; the caller
/// holds the sync lock. When part of it cannot be undone (a full disk),
/// the journal stays and the command must not go on: its own changes
/// would be undone by the rollback that finishes later.
pub fn recover(root: &Utf8Path) -> Result<Option<Recovery>> {
    if !pending(root) {
        // A journal directory without its log, or with an empty one, is a
        // committed one; only leftovers of the older layout go.
        if !root.join(JOURNAL_DIR).join(LOG).is_file() {
            let _ = std::fs::remove_dir_all(root.join(JOURNAL_DIR));
        }
        return Ok(None);
    }
    let r = replay(root);
    if r.kept {
        return Err(Error::failed(
            "an earlier sync was interrupted, and its rollback could not finish: nothing else was done",
        )
        .with_detail(r.summary())
        .with_help("fix what stopped it (free disk space, permissions), then run the command again"));
    }
    Ok(Some(r))
}

/// [`recover`] for the commands that write outside a sync (the editing
/// commands): takes the sync lock for the time of the rollback. `Ok(None)`
/// when there was nothing to recover.
pub fn recover_interrupted(root: &Utf8Path) -> Result<Option<Recovery>> {
    if !pending(root) {
        return Ok(None);
    }
    let _lock = super::acquire_sync_lock(root, &mut |_| {})?;
    recover(root)
}

/// The sentence a command prints after recovering.
pub fn recovery_note(r: &Recovery) -> String {
    format!(
        "an earlier sync was interrupted; it was rolled back before this command: {}",
        r.summary()
    )
}

/// Names the failed step and says what the rollback restored.
pub(super) fn annotate(mut e: Error, step: &str, r: &Recovery) -> Error {
    let note = if r.is_empty() {
        "nothing was changed".to_string()
    } else {
        format!("rolled back: {}", r.summary())
    };
    match &mut e {
        Error::Config(d) => {
            d.message = format!("sync failed in step `{step}`: {}\n{note}", d.message);
        }
        Error::Failed(f) => {
            f.message = format!("sync failed in step `{step}`: {}", f.message);
            let detail = f.detail.take().unwrap_or_default();
            let detail = detail.trim_end();
            f.detail = Some(if detail.is_empty() {
                note
            } else {
                format!("{detail}\n{note}")
            });
        }
    }
    e
}

fn read_log(dir: &Utf8Path) -> Vec<Record> {
    let text = std::fs::read_to_string(dir.join(LOG)).unwrap_or_default();
    // A torn last line is a record whose change never started.
    text.lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .collect()
}

fn replay(root: &Utf8Path) -> Recovery {
    let dir = root.join(JOURNAL_DIR);
    let records = read_log(&dir);
    let mut r = Recovery::default();
    // Tools first: nothing may write while files are put back.
    for rec in &records {
        if let Record::Spawn { pgid, program } = rec {
            if stop_group(*pgid, program) {
                r.stopped.push(format!("`{program}`"));
            }
        }
    }
    for rec in records.iter().rev() {
        let res: std::result::Result<(), String> = match rec {
            Record::File {
                path,
                backup,
                inline,
                meta,
            } => {
                let abs = root.join(path);
                // A write killed between its temporary file and the rename
                // (sync prepares the next service while a runtime runs).
                crate::fs::remove_temp_files(&abs);
                let bytes = match (backup, inline) {
                    (_, Some(text)) => Some(text.as_bytes().to_vec()),
                    (Some(b), None) => match std::fs::read(dir.join(b)) {
                        Ok(bytes) => Some(bytes),
                        Err(e) => {
                            r.failed
                                .push(format!("`{path}` (its backup is unreadable: {e})"));
                            continue;
                        }
                    },
                    (None, None) => None,
                };
                let changed = match &bytes {
                    Some(b) => {
                        std::fs::read(&abs).ok().as_deref() != Some(b.as_slice())
                            || FileMeta::of(&abs).ok().flatten() != *meta
                    }
                    None => abs.exists(),
                };
                match restore_file(&abs, bytes.as_deref(), meta.as_ref()) {
                    Ok(()) => {
                        let list = if bytes.is_some() {
                            &mut r.restored
                        } else {
                            &mut r.removed
                        };
                        if changed && !list.contains(path) {
                            list.push(path.clone());
                        }
                        Ok(())
                    }
                    Err(e) => Err(format!("`{path}` ({e})")),
                }
            }
            Record::CreatedDir { path } | Record::Clone { path } => {
                remove_dir(root, path, &mut r.removed)
            }
            Record::Env { path, created } => {
                if *created {
                    remove_dir(root, path, &mut r.removed)
                } else {
                    let abs = root.join(path);
                    if abs.is_dir() && !r.marked.contains(path) {
                        r.marked.push(path.clone());
                        mark_unfinished(&abs).map_err(|e| format!("`{path}` ({e})"))
                    } else {
                        Ok(())
                    }
                }
            }
            Record::MovedAside { orig, aside } => {
                let (o, a) = (root.join(orig), root.join(aside));
                if a.exists() {
                    let _ = std::fs::remove_dir_all(&o);
                    match std::fs::rename(&a, &o) {
                        Ok(()) => {
                            r.reverted.push(orig.clone());
                            Ok(())
                        }
                        Err(e) => Err(format!("`{orig}` ({e})")),
                    }
                } else {
                    Ok(())
                }
            }
            Record::Moved { path, previous } => {
                let moved_back = git2::Oid::from_str(previous)
                    .map_err(|e| e.message().to_string())
                    .and_then(|oid| {
                        let repo = git2::Repository::open(root.join(path))
                            .map_err(|e| e.message().to_string())?;
                        if git::head_commit(&repo) == Some(oid) {
                            return Ok(false);
                        }
                        git::checkout(&repo, oid).map_err(|e| e.to_string())?;
                        Ok(true)
                    });
                match moved_back {
                    Ok(true) => {
                        r.reverted.push(path.clone());
                        Ok(())
                    }
                    Ok(false) => Ok(()),
                    Err(e) => Err(format!("`{path}` ({e})")),
                }
            }
            Record::Spawn { .. } => Ok(()),
        };
        if let Err(e) = res {
            r.failed.push(e);
        }
    }
    r.restored.sort();
    r.removed.sort();
    r.removed.dedup();
    // A removed directory stands for what was removed inside it.
    let dirs = r.removed.clone();
    r.removed
        .retain(|p| !dirs.iter().any(|d| d != p && p.starts_with(d)));
    if !r.failed.is_empty() {
        // Kept, backups and all: the next writing command replays it again
        // (every record undoes idempotently) once the cause, a full disk
        // say, is gone. Deleting it would lose the only copy of the files.
        r.kept = true;
        return r;
    }
    // The log goes first: a journal without it is a finished rollback.
    let _ = std::fs::remove_file(dir.join(LOG));
    let _ = sync_dir(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn remove_dir(
    root: &Utf8Path,
    path: &Utf8Path,
    removed: &mut Vec<Utf8PathBuf>,
) -> std::result::Result<(), String> {
    let abs = root.join(path);
    if !abs.exists() && abs.symlink_metadata().is_err() {
        return Ok(());
    }
    match std::fs::remove_dir_all(&abs) {
        Ok(()) => {
            removed.push(path.to_owned());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("`{path}` ({e})")),
    }
}

/// Stops a tool a killed sync left running: only when its process group
/// still runs that program (a reused id is left alone). Returns whether
/// one was stopped.
fn stop_group(pgid: i32, program: &str) -> bool {
    #[cfg(target_os = "linux")]
    {
        if pgid <= 1 || !super::interrupt::group_alive(pgid) {
            return false;
        }
        let cmdline = std::fs::read(format!("/proc/{pgid}/cmdline")).unwrap_or_default();
        let name = Utf8Path::new(program).file_name().unwrap_or(program);
        let runs_it = cmdline
            .split(|b| *b == 0)
            .next()
            .is_some_and(|argv0| String::from_utf8_lossy(argv0).ends_with(name));
        if !runs_it {
            return false;
        }
        // SAFETY: kill(2) on a group verified to run our tool.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while super::interrupt::group_alive(pgid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pgid, program);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FileTxn;
    use crate::test_support::tmp;

    #[test]
    fn a_journal_left_on_disk_rolls_back_files_and_created_dirs() {
        let (_d, root) = tmp();
        let kept = root.join("pyproject.toml");
        std::fs::write(&kept, b"original").unwrap();
        let j = Journal::new(&root);
        let mut txn = FileTxn::journaled(j.clone());
        txn.write(&kept, b"changed", None).unwrap();
        txn.write(&root.join("new/dir/file.env"), b"x", None)
            .unwrap();
        j.env(&root.join("svc/.venv")).unwrap();
        std::fs::create_dir_all(root.join("svc/.venv/bin")).unwrap();
        // The process dies here: neither commit nor rollback runs.
        std::mem::forget(txn);
        drop(j);
        assert!(pending(&root));
        let r = recover(&root).unwrap().expect("a journal was pending");
        assert_eq!(std::fs::read(&kept).unwrap(), b"original");
        assert!(!root.join("new").exists());
        assert!(!root.join("svc/.venv").exists());
        assert_eq!(r.restored, vec![Utf8PathBuf::from("pyproject.toml")]);
        // `new/dir/file.env` is in `new`.
        assert_eq!(
            r.removed,
            vec![Utf8PathBuf::from("new"), Utf8PathBuf::from("svc/.venv")],
            "{r:?}"
        );
        assert!(!pending(&root));
        assert!(!root.join(JOURNAL_DIR).exists());
    }

    /// A file that cannot be put back (here a directory now stands in its
    /// place; on a full disk, the write fails): the journal stays, the
    /// command is refused, and once the cause is gone the next recovery
    /// finishes the rollback.
    #[test]
    fn a_file_has_one_record_however_many_transactions_snapshot_it() {
        let (_d, root) = tmp();
        let placed = root.join("svc/uv.lock");
        let j = Journal::new(&root);
        let mut txn = FileTxn::journaled(j.clone());
        txn.write(&placed, b"placed by hsm", None).unwrap();
        // Another thread's transaction, before its tool rewrites the file.
        let mut child = txn.child();
        child.snapshot(&placed).unwrap();
        std::fs::write(&placed, b"rewritten by the tool").unwrap();
        txn.absorb(child);
        let log = std::fs::read_to_string(root.join(JOURNAL_DIR).join(LOG)).unwrap();
        assert_eq!(log.matches("svc/uv.lock").count(), 1, "{log}");
        assert!(!root.join(JOURNAL_DIR).join("0.orig").exists());
        std::mem::forget(txn);
        drop(j);
        recover(&root).unwrap().expect("a journal was pending");
        assert!(
            !placed.exists(),
            "the oldest record holds: it did not exist"
        );
        assert!(!root.join("svc").exists());
    }

    #[test]
    fn a_file_written_down_ahead_is_restored_and_an_unchanged_one_is_not_reported() {
        let (_d, root) = tmp();
        let (lock, other) = (root.join("hsm.lock"), root.join("other.lock"));
        std::fs::write(&lock, b"version = 1\n").unwrap();
        std::fs::write(&other, b"kept").unwrap();
        let j = Journal::new(&root);
        j.file_ahead(&lock).unwrap();
        j.file_ahead(&other).unwrap();
        j.file_ahead(&root.join("absent.lock")).unwrap();
        j.env(&root.join("svc/.venv")).unwrap();
        // Before the tool: one fdatasync for the three records.
        j.barrier().unwrap();
        let mut txn = FileTxn::journaled(j.clone());
        txn.write(&lock, b"version = 1\n# changed\n", None).unwrap();
        std::fs::write(root.join("absent.lock"), b"made by a tool").unwrap();
        let log = std::fs::read_to_string(root.join(JOURNAL_DIR).join(LOG)).unwrap();
        assert_eq!(log.matches("\"hsm.lock\"").count(), 1, "one record: {log}");
        assert!(!log.contains("absent.lock"), "{log}");
        std::mem::forget(txn);
        drop(j);
        let r = recover(&root).unwrap().expect("a journal was pending");
        assert_eq!(std::fs::read(&lock).unwrap(), b"version = 1\n");
        assert_eq!(std::fs::read(&other).unwrap(), b"kept");
        assert_eq!(r.restored, vec![Utf8PathBuf::from("hsm.lock")], "{r:?}");
    }

    #[test]
    fn a_rollback_that_cannot_finish_keeps_the_journal() {
        let (_d, root) = tmp();
        let (a, b) = (root.join("a.toml"), root.join("b.toml"));
        std::fs::write(&a, b"a1").unwrap();
        std::fs::write(&b, b"b1").unwrap();
        let j = Journal::new(&root);
        let mut txn = FileTxn::journaled(j.clone());
        txn.write(&a, b"a2", None).unwrap();
        txn.write(&b, b"b2", None).unwrap();
        std::mem::forget(txn);
        drop(j);
        std::fs::remove_file(&a).unwrap();
        std::fs::create_dir_all(a.join("in-the-way")).unwrap();
        let e = recover(&root).unwrap_err();
        let text = e.plain();
        assert!(text.contains("could NOT restore: `a.toml`"), "{text}");
        assert!(
            text.contains("the journal stays in `.hsm/journal`"),
            "{text}"
        );
        assert_eq!(std::fs::read(&b).unwrap(), b"b1", "the rest was undone");
        assert!(pending(&root));
        std::fs::remove_dir_all(&a).unwrap();
        let r = recover(&root).unwrap().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"a1");
        assert!(r.failed.is_empty() && !r.kept, "{r:?}");
        assert!(!pending(&root));
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_commit_deletes_the_journal() {
        let (_d, root) = tmp();
        let f = root.join("a.txt");
        std::fs::write(&f, b"1").unwrap();
        let j = Journal::new(&root);
        let mut txn = FileTxn::journaled(j.clone());
        txn.write(&f, b"2", None).unwrap();
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join(JOURNAL_DIR).join(LOG))
            .unwrap();
        log.write_all(b"{\"op\":\"file\",\"pa").unwrap();
        let r = recover(&root).unwrap().unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"1");
        assert!(r.failed.is_empty(), "{r:?}");

        let j = Journal::new(&root);
        assert!(j.is_empty());
        let mut txn = FileTxn::journaled(j.clone());
        txn.write(&f, b"3", None).unwrap();
        txn.commit();
        j.commit();
        assert!(!pending(&root));
        let log = root.join(JOURNAL_DIR).join(LOG);
        assert_eq!(std::fs::read(&log).unwrap(), b"", "committed: emptied");
        assert_eq!(std::fs::read(&f).unwrap(), b"3");
        assert!(recover(&root).unwrap().is_none());
        assert!(log.is_file(), "a committed log stays for the next sync");
    }

    /// Small text goes into its record; binary or big files get a `.orig`
    /// file, which the commit removes. Both are restored byte for byte.
    #[test]
    fn backups_are_inline_for_small_text_and_files_otherwise() {
        let (_d, root) = tmp();
        let text = root.join("uv.lock");
        let binary = root.join("data.bin");
        let big = root.join("big.txt");
        std::fs::write(&text, "version = 1\n\"quoted\"\n").unwrap();
        std::fs::write(&binary, [0u8, 159, 146, 150, 255]).unwrap();
        let big_text = "x".repeat(INLINE_MAX + 1);
        std::fs::write(&big, &big_text).unwrap();
        let j = Journal::new(&root);
        let mut txn = FileTxn::journaled(j.clone());
        for f in [&text, &binary, &big] {
            txn.write(f, b"new", None).unwrap();
        }
        let dir = root.join(JOURNAL_DIR);
        let log = std::fs::read_to_string(dir.join(LOG)).unwrap();
        assert!(
            log.contains("\"inline\":\"version = 1\\n\\\"quoted"),
            "{log}"
        );
        assert!(dir.join("0.orig").is_file() && dir.join("1.orig").is_file());
        assert!(!dir.join("2.orig").exists());
        std::mem::forget(txn);
        drop(j);
        recover(&root).unwrap().expect("a journal was pending");
        assert_eq!(
            std::fs::read_to_string(&text).unwrap(),
            "version = 1\n\"quoted\"\n"
        );
        assert_eq!(std::fs::read(&binary).unwrap(), [0u8, 159, 146, 150, 255]);
        assert_eq!(std::fs::read_to_string(&big).unwrap(), big_text);

        let j = Journal::new(&root);
        let mut txn = FileTxn::journaled(j.clone());
        txn.write(&binary, b"newer", None).unwrap();
        assert!(dir.join("0.orig").is_file());
        txn.commit();
        j.commit();
        assert!(!dir.join("0.orig").exists(), "the commit removes backups");
        assert!(!pending(&root));
    }

    #[test]
    fn an_existing_environment_is_marked_not_removed() {
        let (_d, root) = tmp();
        let venv = root.join("svc/.venv");
        std::fs::create_dir_all(&venv).unwrap();
        let j = Journal::new(&root);
        j.env(&venv).unwrap();
        let r = j.rollback();
        assert!(venv.join(crate::python::venv::INCOMPLETE_MARKER).is_file());
        assert_eq!(r.marked, vec![Utf8PathBuf::from("svc/.venv")]);
        assert!(
            r.summary().contains("next sync rebuilds it"),
            "{}",
            r.summary()
        );
    }
}
