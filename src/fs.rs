//! File writes that a build script can live with and a failed sync can undo:
//! atomic (temp file + rename), skipped when the content would not change
//! (mtimes matter to cargo), and journaled so that a failure restores every
//! file byte for byte.

use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};

/// Writes `contents` to `path` atomically unless it already holds exactly
/// that. Returns whether the file was written. `mode` sets Unix permissions
/// (0o600 for files holding resolved environment values).
pub fn write_if_changed(
    path: &Utf8Path,
    contents: &[u8],
    mode: Option<u32>,
) -> std::io::Result<bool> {
    if !would_change(path, contents, mode) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_str().is_empty())
        .unwrap_or(Utf8Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", path.file_name().unwrap_or("hsm")))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    set_mode(tmp.path(), mode.unwrap_or(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(true)
}

/// Whether [`write_if_changed`] would write: the file's bytes or its
/// `mode` differ (a dry run asks the same question).
pub fn would_change(path: &Utf8Path, contents: &[u8], mode: Option<u32>) -> bool {
    match std::fs::read(path) {
        Ok(existing) => existing != contents || mode.is_some_and(|m| current_mode(path) != Some(m)),
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

#[cfg(unix)]
fn current_mode(path: &Utf8Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn current_mode(_path: &Utf8Path) -> Option<u32> {
    None
}

#[derive(Debug)]
struct Original {
    path: Utf8PathBuf,
    /// `None`: the file did not exist.
    contents: Option<Vec<u8>>,
    mode: Option<u32>,
}

/// A journal of every file a command changes, to restore them all if the
/// command fails half-way. Files that external tools (uv) will rewrite are
/// registered with [`FileTxn::snapshot`] before the tool runs.
#[derive(Debug, Default)]
pub struct FileTxn {
    originals: Vec<Original>,
    /// The paths of `originals`: asking "journaled already?" once per file
    /// must not scan them all.
    seen: std::collections::HashSet<Utf8PathBuf>,
}

impl FileTxn {
    pub fn new() -> Self {
        Self::default()
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
        self.seen.insert(path.to_owned());
        self.originals.push(Original {
            path: path.to_owned(),
            mode: current_mode(path),
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
        // Most files a sync writes are unchanged: one read decides, and
        // only a file about to change is journaled.
        if !would_change(path, contents, mode) {
            return Ok(false);
        }
        self.snapshot(path)?;
        write_if_changed(path, contents, mode)
    }

    /// Journaled removal. Returns whether a file was removed.
    pub fn remove(&mut self, path: &Utf8Path) -> std::io::Result<bool> {
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
            let r = match &o.contents {
                Some(c) => write_if_changed(&o.path, c, o.mode).map(|_| ()),
                None => match std::fs::remove_file(&o.path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            };
            if let Err(e) = r {
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

    fn tmp() -> (tempfile::TempDir, Utf8PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(d.path().to_owned()).unwrap();
        (d, p)
    }

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
        assert_eq!(current_mode(&f), Some(0o600));
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
