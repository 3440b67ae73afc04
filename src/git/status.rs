//! What exists only in a checkout, so that replacing or moving it would
//! lose it: git's own promise, kept for hsm's checkouts. In process with
//! `git2`; nothing is spawned.
//!
//! Local work is: a commit reachable from a local ref (HEAD, a branch, a
//! tag, the stash) that no remote-tracking ref and no commit hsm fetched
//! for a manifest `ref` contains; a tracked modification other than hsm's
//! own recorded edits; an untracked file; an ignored file that neither hsm
//! nor the service runtime's tools produced ([`Artifacts`]).

use camino::{Utf8Path, Utf8PathBuf};
use git2::{Oid, Repository, StatusOptions};

use super::{git_err, head_commit, short, FETCHED_REFS};
use crate::error::Result;

/// The files that a runtime's tools make inside a checkout, which are
/// never local work. Each runtime names its own (see
/// `RuntimeAdapter::artifacts`); one list, used both to judge local work
/// and to write `.git/info/exclude`.
#[derive(Debug)]
pub struct ArtifactPatterns {
    /// Who makes them, for the head of `.git/info/exclude`.
    pub made_by: &'static str,
    /// Directory names that are derived wherever they appear.
    pub dirs: &'static [&'static str],
    /// Name endings that are derived wherever they appear (`.egg-info`, `.pyc`).
    pub suffixes: &'static [&'static str],
    /// Directories derived at the project's root only (`build`).
    pub project_dirs: &'static [&'static str],
    /// Files and directories (with a trailing `/`) derived at the root of
    /// the project and at the root of the repository (what a tool writes at
    /// its workspace's root).
    pub root_files: &'static [&'static str],
}

/// What sync and the Python tools make: environments, bytecode,
/// setuptools' `build/` and `*.egg-info/`, and a `uv.lock` that the
/// upstream does not commit. uv writes `uv.lock` at the root of the uv
/// workspace, and cargo (run by maturin for a Rust extension module)
/// `target/` and `Cargo.lock` at the root of the Cargo workspace: the
/// project, or the repository's root for a member in a `subdirectory`.
pub const PYTHON_ARTIFACTS: ArtifactPatterns = ArtifactPatterns {
    made_by: "the Python tools",
    dirs: &[".venv", "__pycache__", ".pixi"],
    suffixes: &[".egg-info", ".pyc", ".pyo"],
    project_dirs: &["build"],
    root_files: &["uv.lock", "target/", "Cargo.lock"],
};

/// The derived files of one checkout: its runtime's patterns, anchored at
/// the service's directory inside the repository.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The service's directory inside the repository (its `subdirectory`),
    /// empty for the repository's root.
    project: Utf8PathBuf,
    patterns: &'static ArtifactPatterns,
}

impl Artifacts {
    pub fn new(subdirectory: Option<&str>, patterns: &'static ArtifactPatterns) -> Artifacts {
        let project = subdirectory
            .map(|s| s.trim_matches('/'))
            .filter(|s| !s.is_empty() && *s != ".")
            .unwrap_or("");
        Artifacts {
            project: project.into(),
            patterns,
        }
    }

    /// Whether an untracked or ignored path (relative to the repository,
    /// a directory possibly with a trailing `/`) is a derived file.
    pub fn contains(&self, path: &Utf8Path) -> bool {
        let p = self.patterns;
        let path = Utf8Path::new(path.as_str().trim_end_matches('/'));
        let derived = path.components().any(|c| {
            let c = c.as_str();
            p.dirs.contains(&c) || p.suffixes.iter().any(|s| c.ends_with(s))
        });
        let root_file = |f: &Utf8Path| {
            p.root_files
                .iter()
                .any(|r| f.starts_with(r.trim_end_matches('/')))
        };
        if derived || root_file(path) {
            return true;
        }
        let Ok(in_project) = path.strip_prefix(&self.project) else {
            return false;
        };
        p.project_dirs.iter().any(|d| in_project.starts_with(d)) || root_file(in_project)
    }

    /// The body of `.git/info/exclude` that keeps these files out of the
    /// user's `git status` too.
    pub fn exclude_file(&self) -> String {
        let p = self.patterns;
        let anchor = if self.project.as_str().is_empty() {
            String::from("/")
        } else {
            format!("/{}/", self.project)
        };
        let mut s = format!(
            "# Written by cargo hsm: files that sync and {} make in this\n\
             # checkout. They are not local work (see `cargo hsm sync --help`).\n",
            p.made_by
        );
        for d in p.dirs {
            s.push_str(&format!("{d}/\n"));
        }
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for x in p.suffixes {
            // `.pyc` and `.pyo` as git's one glob, as before.
            match *x {
                ".pyo" => {}
                ".pyc" => files.push("*.py[co]\n".to_string()),
                _ => dirs.push(format!("*{x}/\n")),
            }
        }
        s.extend(files);
        s.extend(dirs);
        for d in p.project_dirs {
            s.push_str(&format!("{anchor}{d}/\n"));
        }
        for f in p.root_files {
            s.push_str(&format!("{anchor}{f}\n"));
        }
        if anchor != "/" {
            for f in p.root_files {
                s.push_str(&format!("/{f}\n"));
            }
        }
        s
    }

    /// Writes `.git/info/exclude` when it differs (a no-op sync writes nothing).
    pub fn write_exclude(&self, repo: &Repository) -> Result<()> {
        let path = repo.path().join("info").join("exclude");
        let Ok(path) = Utf8PathBuf::from_path_buf(path) else {
            return Ok(());
        };
        crate::fs::write_if_changed(&path, self.exclude_file().as_bytes(), None)
            .map(|_| ())
            .map_err(|e| crate::error::Error::failed(format!("cannot write `{path}`: {e}")))
    }

    /// [`Artifacts::write_exclude`] into a new clone in a temporary
    /// directory: a plain write, no fsync and no rename, since a failed
    /// or interrupted clone is thrown away whole (and every later sync
    /// writes the file again when it differs).
    #[cfg(not(target_os = "linux"))]
    pub fn write_new_exclude(&self, repo: &Repository) -> Result<()> {
        let info = repo.path().join("info");
        let write = std::fs::create_dir_all(&info)
            .and_then(|()| std::fs::write(info.join("exclude"), self.exclude_file()));
        write.map_err(|e| {
            crate::error::Error::failed(format!(
                "cannot write `{}`: {e}",
                info.join("exclude").display()
            ))
        })
    }
}

/// Everything in the checkout that replacing or moving it would lose, one
/// line each (`modified: x`, `untracked: y`, `ignored: .env`, `branch
/// work at 1a2b3c4d5e: 2 commits …`). `is_ours` accepts hsm's own recorded
/// edits of tracked files.
pub fn local_work(
    repo: &Repository,
    artifacts: &Artifacts,
    is_ours: &dyn Fn(&Utf8Path) -> bool,
) -> Result<Vec<String>> {
    let mut out = changes(repo, artifacts, is_ours, true)?;
    out.extend(unpublished(repo)?);
    Ok(out)
}

/// Files with local changes: modified, staged, deleted, untracked, and
/// (with `ignored`) ignored files that are not [`Artifacts`].
pub fn changes(
    repo: &Repository,
    artifacts: &Artifacts,
    is_ours: &dyn Fn(&Utf8Path) -> bool,
    ignored: bool,
) -> Result<Vec<String>> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(ignored)
        .recurse_ignored_dirs(false)
        .exclude_submodules(true);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|e| git_err("cannot read the checkout's status", e))?;
    let mut out = Vec::new();
    for s in statuses.iter() {
        let Ok(path) = s.path() else { continue };
        let path = Utf8Path::new(path);
        let st = s.status();
        let untracked = st.is_wt_new() && !st.is_index_new();
        if (untracked || st.is_ignored()) && artifacts.contains(path) {
            continue;
        }
        if is_ours(path) {
            continue;
        }
        let what = if st.is_ignored() {
            "ignored"
        } else if untracked {
            "untracked"
        } else if st.is_wt_deleted() || st.is_index_deleted() {
            "deleted"
        } else if st.is_conflicted() {
            "conflicted"
        } else if st.is_index_new() {
            "added"
        } else {
            "modified"
        };
        out.push(format!("{what}: {path}"));
    }
    out.sort();
    Ok(out)
}

/// Local refs whose commits the remote does not have: HEAD, branches, tags
/// and the stash, against remote-tracking refs and what hsm fetched.
pub fn unpublished(repo: &Repository) -> Result<Vec<String>> {
    let mut published: Vec<Oid> = Vec::new();
    for glob in ["refs/remotes/*", &format!("{FETCHED_REFS}/*")] {
        if let Ok(refs) = repo.references_glob(glob) {
            for r in refs.flatten() {
                if let Ok(c) = r.peel_to_commit() {
                    published.push(c.id());
                }
            }
        }
    }
    let mut tips: Vec<(String, Oid)> = Vec::new();
    if let Some(h) = head_commit(repo) {
        tips.push(("HEAD".into(), h));
    }
    for (glob, label) in [
        ("refs/heads/*", "branch"),
        ("refs/tags/*", "tag"),
        ("refs/stash", "stash"),
    ] {
        if let Ok(refs) = repo.references_glob(glob) {
            for r in refs.flatten() {
                let name = r.shorthand().unwrap_or("?").to_string();
                if let Ok(c) = r.peel_to_commit() {
                    let label = if label == "stash" {
                        "the stash".to_string()
                    } else {
                        format!("{label} {name}")
                    };
                    tips.push((label, c.id()));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (name, oid) in tips {
        let n = only_here(repo, oid, &published)
            .map_err(|e| git_err("cannot walk the checkout's history", e))?;
        if n > 0 {
            out.push(format!(
                "{name} at {}: {n} commit{} that the remote does not have",
                short(oid),
                if n == 1 { "" } else { "s" }
            ));
        }
    }
    Ok(out)
}

/// How many commits reachable from `tip` none of `published` reaches.
fn only_here(
    repo: &Repository,
    tip: Oid,
    published: &[Oid],
) -> std::result::Result<usize, git2::Error> {
    if published.contains(&tip) {
        return Ok(0);
    }
    let mut walk = repo.revwalk()?;
    walk.push(tip)?;
    for p in published {
        walk.hide(*p)?;
    }
    let mut n = 0;
    for oid in walk {
        oid?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_derived_files_only() {
        let a = Artifacts::new(Some("svc/"), &PYTHON_ARTIFACTS);
        for p in [
            ".venv/",
            "svc/.venv",
            "svc/src/beta.egg-info/",
            "svc/beta.egg-info/PKG-INFO",
            "svc/build/",
            "svc/build/lib/x.py",
            "svc/uv.lock",
            "uv.lock",
            "svc/target/",
            "svc/Cargo.lock",
            "target/release/x.so",
            "Cargo.lock",
            "svc/pkg/__pycache__/",
            "x.pyc",
        ] {
            assert!(a.contains(Utf8Path::new(p)), "{p}");
        }
        for p in [
            ".env",
            "svc/.env",
            "build/",
            "svc/data/",
            "svc/builder.py",
            "svc/targets.txt",
            "svc/src/target/",
        ] {
            assert!(!a.contains(Utf8Path::new(p)), "{p}");
        }
        let root = Artifacts::new(None, &PYTHON_ARTIFACTS);
        assert!(root.contains(Utf8Path::new("build/")));
        assert!(root.contains(Utf8Path::new("uv.lock")));
        assert!(root
            .exclude_file()
            .contains("\n/build/\n/uv.lock\n/target/\n/Cargo.lock\n"));
        assert!(a.exclude_file().contains(
            "\n/svc/build/\n/svc/uv.lock\n/svc/target/\n/svc/Cargo.lock\n/uv.lock\n/target/\n/Cargo.lock\n"
        ));
    }
}
