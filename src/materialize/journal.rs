//! What a sync changed outside its [`FileTxn`](crate::fs::FileTxn) (git
//! checkouts), and how a failed sync reports what it restored.

use camino::Utf8PathBuf;

use crate::error::Error;
use crate::git;

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

pub(super) fn rollback_dirs(dirs: Vec<DirChange>) -> Vec<String> {
    let mut failed = Vec::new();
    for d in dirs.into_iter().rev() {
        let r: std::result::Result<(), String> = match &d {
            DirChange::Created(p) => std::fs::remove_dir_all(p).map_err(|e| format!("{p}: {e}")),
            DirChange::MovedAside { orig, aside } => {
                let _ = std::fs::remove_dir_all(orig);
                std::fs::rename(aside, orig).map_err(|e| format!("{orig}: {e}"))
            }
            DirChange::Moved { path, previous } => git2::Repository::open(path)
                .map_err(|e| e.message().to_string())
                .and_then(|r| git::checkout(&r, *previous).map_err(|e| e.to_string()))
                .map_err(|e| format!("{path}: {e}")),
        };
        if let Err(e) = r {
            failed.push(e);
        }
    }
    failed
}

/// Names the failed step and what was restored.
pub(super) fn annotate(
    mut e: Error,
    step: &str,
    touched: &[Utf8PathBuf],
    failed: &[(Utf8PathBuf, std::io::Error)],
    dir_failed: &[String],
) -> Error {
    let mut note = if touched.is_empty() {
        "nothing was changed".to_string()
    } else {
        format!(
            "every file sync had changed was restored ({})",
            touched
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if !failed.is_empty() || !dir_failed.is_empty() {
        note = format!(
            "restoring failed for: {}",
            failed
                .iter()
                .map(|(p, e)| format!("`{p}` ({e})"))
                .chain(dir_failed.iter().cloned())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
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
