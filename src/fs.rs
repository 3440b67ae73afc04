//! File writes that a build script can live with and a failed sync can undo:
//! atomic (temp file + rename), skipped when the content would not change
//! (mtimes matter to cargo), and journaled so that a failure restores every
//! file byte for byte, mode and owner included.

use std::io::Write;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

/// Writes `contents` to `path` atomically unless it already holds exactly
/// that. Returns whether the file was written. `mode` sets Unix permissions
/// (0o600 for files holding resolved environment values); without it an
/// existing file keeps its mode and owner, and a new one gets 0o644.
///
/// An existing file without any write bit is refused (even for root, which
/// could write it anyway): its owner made it read-only on purpose.
pub fn write_if_changed(
    path: &Utf8Path,
    contents: &[u8],
    mode: Option<u32>,
) -> std::io::Result<bool> {
    let meta = FileMeta::of(path)?;
    if let Some(m) = &meta {
        if std::fs::read(path).ok().as_deref() == Some(contents)
            && mode.is_none_or(|want| m.mode == Some(want))
        {
            return Ok(false);
        }
        if m.mode.is_some_and(|bits| bits & 0o222 == 0) {
            return Err(read_only(m.mode.unwrap_or(0)));
        }
    }
    write_atomically(path, contents, mode, meta.as_ref())?;
    Ok(true)
}

fn read_only(mode: u32) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "the file is read-only (mode {mode:04o}), so hsm leaves it alone; add a write bit (`chmod u+w`) if hsm may edit it"
        ),
    )
}

/// [`write_if_changed`] without the fsync, for a file whose loss or an
/// empty copy after a power loss costs nothing: a cache that is checked
/// before it is trusted, or a file rewritten whenever it is missing or
/// differs. A process that is killed still leaves the old file or the new
/// one (the rename).
pub fn write_cache_if_changed(
    path: &Utf8Path,
    contents: &[u8],
    mode: Option<u32>,
) -> std::io::Result<bool> {
    let meta = FileMeta::of(path)?;
    if meta.is_some() && std::fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(false);
    }
    write_atomically_as(path, contents, mode, meta.as_ref(), false)?;
    Ok(true)
}

/// Temp file + fsync + rename. The new file gets `mode`, else the mode and
/// owner of `old` (the file it replaces), else 0o644.
fn write_atomically(
    path: &Utf8Path,
    contents: &[u8],
    mode: Option<u32>,
    old: Option<&FileMeta>,
) -> std::io::Result<()> {
    write_atomically_as(path, contents, mode, old, true)
}

/// [`write_atomically`], with the fsync only when `durable`.
fn write_atomically_as(
    path: &Utf8Path,
    contents: &[u8],
    mode: Option<u32>,
    old: Option<&FileMeta>,
    durable: bool,
) -> std::io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", short_name(path)))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    let mode = mode.or(old.and_then(|m| m.mode)).unwrap_or(0o644);
    set_mode(tmp.path(), mode)?;
    if let Some(m) = old {
        m.chown(tmp.path())?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// What a run made of a file (parsed it into), kept while the file stays
/// the same: its size, modification time and inode decide, as the
/// fingerprints decide freshness. Several stages that each ask about the
/// same file then read and parse it once per run.
pub struct StatMemo<T> {
    map:
        std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<Utf8PathBuf, (StatKey, T)>>>,
}

/// Size, modification time (seconds, nanoseconds) and inode: what changes
/// when a file is rewritten, as cargo decides freshness.
pub type StatKey = (u64, i64, i64, u64);

pub fn stat_key(m: &std::fs::Metadata) -> StatKey {
    use std::os::unix::fs::MetadataExt;
    (m.len(), m.mtime(), m.mtime_nsec(), m.ino())
}

impl<T: Clone> StatMemo<T> {
    pub const fn new() -> Self {
        StatMemo {
            map: std::sync::OnceLock::new(),
        }
    }

    /// `path`'s text made into a `T` by `make`, or the `T` made earlier in
    /// this run from the same version of the file. `Ok(None)`: the file
    /// does not exist. What `make` refuses is not kept.
    pub fn get_or_make<E>(
        &self,
        path: &Utf8Path,
        make: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, MemoError<E>> {
        let map = self.map.get_or_init(Default::default);
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MemoError::Io(e)),
        };
        if let Some((k, v)) = map.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            if *k == stat_key(&meta) {
                return Ok(Some(v.clone()));
            }
        }
        let file = std::fs::File::open(path).map_err(MemoError::Io)?;
        // The key of the version read, taken from the open file.
        let key = stat_key(&file.metadata().map_err(MemoError::Io)?);
        let text = std::io::read_to_string(file).map_err(MemoError::Io)?;
        let v = make(&text).map_err(MemoError::Make)?;
        map.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned(), (key, v.clone()));
        Ok(Some(v))
    }
}

impl<T: Clone> StatMemo<T> {
    /// The `T` made earlier in this run from the version of `path` that is
    /// on disk now (one `stat`; nothing read).
    pub fn current(&self, path: &Utf8Path) -> Option<T> {
        let key = stat_key(&std::fs::metadata(path).ok()?);
        let map = self.map.get()?.lock().unwrap_or_else(|p| p.into_inner());
        map.get(path)
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }
}

impl<T: Clone> Default for StatMemo<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Why [`StatMemo::get_or_make`] has no value.
#[derive(Debug)]
pub enum MemoError<E> {
    Io(std::io::Error),
    Make(E),
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Utf8Path) -> &Utf8Path {
    path.parent()
        .filter(|p| !p.as_str().is_empty())
        .unwrap_or(Utf8Path::new("."))
}

/// A temp-file prefix that stays well under the file-name limit.
fn short_name(path: &Utf8Path) -> String {
    let name = path.file_name().unwrap_or("hsm");
    name.chars().take(64).collect()
}

/// Removes the temporary files that an atomic write of `path` killed
/// before its rename left beside it (`.<name>.<random>.tmp`).
pub fn remove_temp_files(path: &Utf8Path) {
    let prefix = format!(".{}.", short_name(path));
    let Ok(entries) = parent_dir(path).read_dir_utf8() else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name();
        if n.starts_with(&prefix) && n.ends_with(".tmp") && n.len() > prefix.len() + 4 {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Flushes a directory's entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Utf8Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Whether [`write_if_changed`] would write: the file's bytes or its
/// `mode` differ (a dry run asks the same question).
pub fn would_change(path: &Utf8Path, contents: &[u8], mode: Option<u32>) -> bool {
    match std::fs::read(path) {
        Ok(existing) => {
            existing != contents
                || mode.is_some_and(|m| {
                    FileMeta::of(path).ok().flatten().and_then(|f| f.mode) != Some(m)
                })
        }
        Err(_) => true,
    }
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &std::path::Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// The permission bits and owner of a file, kept across a rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileMeta {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl FileMeta {
    /// `None` when `path` does not exist (a symlink counts as its target).
    pub fn of(path: &Utf8Path) -> std::io::Result<Option<FileMeta>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(FileMeta::from_metadata(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[cfg(unix)]
    fn from_metadata(m: &std::fs::Metadata) -> FileMeta {
        use std::os::unix::fs::MetadataExt;
        FileMeta {
            mode: Some(m.mode() & 0o7777),
            uid: Some(m.uid()),
            gid: Some(m.gid()),
        }
    }

    #[cfg(not(unix))]
    fn from_metadata(_m: &std::fs::Metadata) -> FileMeta {
        FileMeta {
            mode: None,
            uid: None,
            gid: None,
        }
    }

    /// Gives `path` this owner. Only root may give a file away; anyone
    /// else keeps it as it is (their own files stay theirs).
    #[cfg(unix)]
    fn chown(&self, path: &std::path::Path) -> std::io::Result<()> {
        let cur = std::fs::metadata(path)?;
        use std::os::unix::fs::MetadataExt;
        if self.uid.is_none_or(|u| u == cur.uid()) && self.gid.is_none_or(|g| g == cur.gid()) {
            return Ok(());
        }
        match std::os::unix::fs::chown(path, self.uid, self.gid) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
            r => r,
        }
    }

    #[cfg(not(unix))]
    fn chown(&self, _path: &std::path::Path) -> std::io::Result<()> {
        Ok(())
    }
}

/// Puts a file back as it was: `contents` with its `meta`, or no file.
pub fn restore_file(
    path: &Utf8Path,
    contents: Option<&[u8]>,
    meta: Option<&FileMeta>,
) -> std::io::Result<()> {
    match contents {
        Some(c) => {
            let same = std::fs::read(path).ok().as_deref() == Some(c)
                && FileMeta::of(path)?.as_ref() == meta;
            if same {
                return Ok(());
            }
            match write_atomically(path, c, meta.and_then(|m| m.mode), meta) {
                // A rollback on a full disk: the temporary copy has no room,
                // but the file's own blocks do once it is truncated (the
                // journal keeps the backup until the restore succeeded).
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull && path.is_file() => {
                    restore_in_place(path, c, meta)
                }
                r => r,
            }
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// [`restore_file`] without a temporary copy: `path` truncated and
/// rewritten, then synced. Not atomic, so only for a rollback, whose journal
/// still holds the bytes should it be cut short.
fn restore_in_place(
    path: &Utf8Path,
    contents: &[u8],
    meta: Option<&FileMeta>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()?;
    if let Some(mode) = meta.and_then(|m| m.mode) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Where sync keeps its journal, relative to the workspace root (see
/// `materialize::journal`).
pub const SYNC_JOURNAL_DIR: &str = ".hsm/journal";

/// Whether an interrupted sync left its journal behind: the log exists and
/// no sync holds `.hsm/sync.lock` (a running one has a journal too).
/// Writes nothing, so `check` may ask.
pub fn sync_journal_pending(root: &Utf8Path) -> bool {
    if !journal_log_holds_records(root) {
        return false;
    }
    match std::fs::File::open(root.join(".hsm/sync.lock")) {
        Ok(f) => match f.try_lock_shared() {
            Ok(()) => true,
            Err(std::fs::TryLockError::WouldBlock) => false,
            Err(std::fs::TryLockError::Error(_)) => true,
        },
        Err(_) => true,
    }
}

/// Whether the sync journal's log holds records: an empty log is a
/// committed one (the journal is truncated, not deleted, at its commit).
pub fn journal_log_holds_records(root: &Utf8Path) -> bool {
    std::fs::metadata(root.join(SYNC_JOURNAL_DIR).join("log"))
        .is_ok_and(|m| m.is_file() && m.len() > 0)
}

/// Where a [`FileTxn`] writes down, before each change, what it is about
/// to change, so that another process can undo it after a crash (the sync
/// journal, `materialize::journal`).
pub trait TxnLog: Send + Sync + std::fmt::Debug {
    /// `path` is about to change; `original` is what it holds now (`None`:
    /// it does not exist). Must be durable when it returns.
    fn file(
        &self,
        path: &Utf8Path,
        original: Option<&[u8]>,
        meta: Option<&FileMeta>,
    ) -> std::io::Result<()>;
    /// The directory `path` is about to be created (with its children);
    /// need not be durable by itself: [`TxnLog::file`] of a file in it
    /// follows at once, before the directory is created.
    fn created_dir(&self, path: &Utf8Path) -> std::io::Result<()>;
}

/// The topmost ancestor of `path`'s directory that does not exist yet.
fn first_missing_dir(path: &Utf8Path) -> Option<Utf8PathBuf> {
    let mut missing = None;
    let mut dir = Some(parent_dir(path));
    while let Some(d) = dir {
        if d.as_str().is_empty() || d.exists() {
            break;
        }
        missing = Some(d.to_owned());
        dir = d.parent();
    }
    missing
}

#[derive(Debug)]
struct Original {
    path: Utf8PathBuf,
    /// `None`: the file did not exist.
    contents: Option<Vec<u8>>,
    meta: Option<FileMeta>,
}

/// A journal of every file a command changes, to restore them all if the
/// command fails half-way. Files that external tools (uv) will rewrite are
/// registered with [`FileTxn::snapshot`] before the tool runs. With a
/// [`TxnLog`] ([`FileTxn::journaled`]), each snapshot is also made durable
/// before the change, for recovery after a crash.
#[derive(Debug, Default)]
pub struct FileTxn {
    originals: Vec<Original>,
    log: Option<Arc<dyn TxnLog>>,
    /// The paths of `originals`: asking "journaled already?" once per file
    /// must not scan them all.
    seen: std::collections::HashSet<Utf8PathBuf>,
}

impl FileTxn {
    pub fn new() -> Self {
        Self::default()
    }

    /// A transaction whose snapshots also go to `log`.
    pub fn journaled(log: Arc<dyn TxnLog>) -> Self {
        FileTxn {
            log: Some(log),
            ..FileTxn::default()
        }
    }

    /// An empty transaction on the same log (for another thread); merge it
    /// back with [`FileTxn::absorb`].
    pub fn child(&self) -> Self {
        FileTxn {
            log: self.log.clone(),
            ..FileTxn::default()
        }
    }

    /// Remembers the current state of `path` (once) so rollback can restore it.
    pub fn snapshot(&mut self, path: &Utf8Path) -> std::io::Result<()> {
        if self.seen.contains(path) {
            return Ok(());
        }
        let contents = match std::fs::read(path) {
            Ok(c) => Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let meta = FileMeta::of(path)?;
        if let Some(log) = &self.log {
            if contents.is_none() {
                if let Some(d) = first_missing_dir(path) {
                    log.created_dir(&d)?;
                }
            }
            log.file(path, contents.as_deref(), meta.as_ref())?;
        }
        self.seen.insert(path.to_owned());
        self.originals.push(Original {
            path: path.to_owned(),
            meta,
            contents,
        });
        Ok(())
    }

    /// Atomic, journaled write; skipped when unchanged. Returns whether written.
    pub fn write(
        &mut self,
        path: &Utf8Path,
        contents: &[u8],
        mode: Option<u32>,
    ) -> std::io::Result<bool> {
        if let Some(m) = FileMeta::of(path)? {
            // Nothing to journal for a file that stays as it is; a refusal
            // comes before anything is journaled.
            if std::fs::read(path).ok().as_deref() == Some(contents) {
                if mode.is_none_or(|want| m.mode == Some(want)) {
                    return Ok(false);
                }
            } else if m.mode.is_some_and(|bits| bits & 0o222 == 0) {
                return Err(read_only(m.mode.unwrap_or(0)));
            }
        }
        self.snapshot(path)?;
        write_if_changed(path, contents, mode)
    }

    /// Journaled removal. Returns whether a file was removed.
    pub fn remove(&mut self, path: &Utf8Path) -> std::io::Result<bool> {
        if path.symlink_metadata().is_err() {
            return Ok(false);
        }
        self.snapshot(path)?;
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes over the journal of another transaction (one that ran on
    /// another thread), keeping the oldest snapshot of each file.
    pub fn absorb(&mut self, other: FileTxn) {
        for o in other.originals {
            if self.seen.insert(o.path.clone()) {
                self.originals.push(o);
            }
        }
    }

    /// The files registered so far.
    pub fn paths(&self) -> impl Iterator<Item = &Utf8Path> {
        self.originals.iter().map(|o| o.path.as_path())
    }

    /// Restores every registered file, newest first. Returns the files that
    /// could not be restored.
    pub fn rollback(mut self) -> Vec<(Utf8PathBuf, std::io::Error)> {
        let mut failed = Vec::new();
        while let Some(o) = self.originals.pop() {
            if let Err(e) = restore_file(&o.path, o.contents.as_deref(), o.meta.as_ref()) {
                failed.push((o.path, e));
            }
        }
        failed
    }

    /// Keeps every change.
    pub fn commit(mut self) {
        self.originals.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::tmp;

    #[test]
    fn skips_identical_content() {
        let (_d, dir) = tmp();
        let f = dir.join("a.txt");
        assert!(write_if_changed(&f, b"x", None).unwrap());
        assert!(!write_if_changed(&f, b"x", None).unwrap());
        assert!(write_if_changed(&f, b"y", None).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn sets_private_mode() {
        let (_d, dir) = tmp();
        let f = dir.join("secret.env");
        write_if_changed(&f, b"A=1\n", Some(0o600)).unwrap();
        assert_eq!(FileMeta::of(&f).unwrap().unwrap().mode, Some(0o600));
    }

    #[cfg(unix)]
    #[test]
    fn keeps_mode_and_owner_of_edited_files() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (_d, dir) = tmp();
        for mode in [0o600, 0o640, 0o755, 0o664] {
            let f = dir.join(format!("f{mode:o}"));
            std::fs::write(&f, b"old").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let mut txn = FileTxn::new();
            assert!(txn.write(&f, b"new", None).unwrap());
            assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o7777, mode);
            assert!(txn.rollback().is_empty());
            assert_eq!(std::fs::read(&f).unwrap(), b"old");
            assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o7777, mode);
        }
        // Another user's file stays theirs (only root can test this).
        let f = dir.join("theirs");
        std::fs::write(&f, b"old").unwrap();
        if std::os::unix::fs::chown(&f, Some(4242), Some(4343)).is_ok() {
            write_if_changed(&f, b"new", None).unwrap();
            let m = std::fs::metadata(&f).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4343));
        }
    }

    #[cfg(unix)]
    #[test]
    fn refuses_read_only_files_even_as_root() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, dir) = tmp();
        let f = dir.join("ro.toml");
        std::fs::write(&f, b"old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
        let mut txn = FileTxn::new();
        let e = txn.write(&f, b"new", None).unwrap_err();
        assert!(e.to_string().contains("read-only (mode 0444)"), "{e}");
        assert_eq!(std::fs::read(&f).unwrap(), b"old");
        assert!(
            !txn.write(&f, b"old", None).unwrap(),
            "no change: no refusal"
        );
        assert!(write_if_changed(&f, b"new", None).is_err());
    }

    #[test]
    fn rollback_restores_and_removes() {
        let (_d, dir) = tmp();
        let kept = dir.join("kept.toml");
        std::fs::write(&kept, b"original").unwrap();
        let created = dir.join("new/created.txt");
        let mut txn = FileTxn::new();
        txn.write(&kept, b"changed", None).unwrap();
        txn.write(&created, b"new", None).unwrap();
        txn.write(&kept, b"changed twice", None).unwrap();
        assert!(txn.rollback().is_empty());
        assert_eq!(std::fs::read(&kept).unwrap(), b"original");
        assert!(!created.exists());
    }
}
