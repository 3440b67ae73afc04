//! Git checkouts of services with a `git` source, with `git2`: clone, fetch,
//! resolve a `ref` (tag, branch or commit) and move a clean checkout to it.
//! A checkout with local changes or unpushed commits is never touched.

use camino::{Utf8Path, Utf8PathBuf};
use git2::{FetchOptions, Oid, Repository, StatusOptions};

use crate::error::{Error, Result};

fn git_err(what: impl std::fmt::Display, e: git2::Error) -> Error {
    Error::failed(format!("{what}: {}", e.message()))
}

/// Opens the repository at `path`, `None` when there is none.
pub fn open(path: &Utf8Path) -> Result<Option<Repository>> {
    if !path.exists() {
        return Ok(None);
    }
    match Repository::open(path) {
        Ok(r) => {
            // A directory inside some other repository is not a checkout.
            let workdir = r.workdir().map(|w| w.to_path_buf());
            let same = workdir.is_some_and(|w| {
                std::fs::canonicalize(&w).ok() == std::fs::canonicalize(path).ok()
            });
            if same {
                Ok(Some(r))
            } else {
                Ok(None)
            }
        }
        Err(_) => Ok(None),
    }
}

/// The URL of `origin`, if any.
pub fn origin_url(repo: &Repository) -> Option<String> {
    repo.find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(str::to_string))
}

pub fn head_commit(repo: &Repository) -> Option<Oid> {
    repo.head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id())
}

/// Clones `url` into `dest` (which must not exist) through a temporary
/// directory beside it, so that a failed clone leaves nothing behind.
pub fn clone(url: &str, dest: &Utf8Path) -> Result<Repository> {
    adopt(clone_into_temp(url, dest)?, url, dest)
}

/// Clones `url` (every branch and tag) into a new temporary directory beside
/// `dest`; dropping the result removes it. Independent clones run in
/// parallel this way before sync moves each into place.
pub fn clone_into_temp(url: &str, dest: &Utf8Path) -> Result<tempfile::TempDir> {
    let parent = dest.parent().unwrap_or(Utf8Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::failed(format!("cannot create `{parent}`: {e}")))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.clone-",
            dest.file_name().unwrap_or("checkout")
        ))
        .tempdir_in(parent)
        .map_err(|e| Error::failed(format!("cannot create a directory in `{parent}`: {e}")))?;
    let repo = git2::build::RepoBuilder::new()
        .clone(url, tmp.path())
        .map_err(|e| git_err(format!("cannot clone `{url}`"), e))?;
    fetch(&repo, url)?;
    Ok(tmp)
}

/// Moves a finished temporary clone to `dest` and opens it there.
pub fn adopt(tmp: tempfile::TempDir, url: &str, dest: &Utf8Path) -> Result<Repository> {
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, dest).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        Error::failed(format!("cannot move the clone of `{url}` to `{dest}`: {e}"))
    })?;
    Repository::open(dest).map_err(|e| git_err(format!("cannot open `{dest}`"), e))
}

/// Fetches every branch and tag of `url` into the checkout.
pub fn fetch(repo: &Repository, url: &str) -> Result<()> {
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(|e| git_err(format!("cannot fetch `{url}`"), e))?;
    let mut opts = FetchOptions::new();
    opts.download_tags(git2::AutotagOption::All);
    remote
        .fetch(
            &[
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
            Some(&mut opts),
            None,
        )
        .map_err(|e| git_err(format!("cannot fetch `{url}`"), e))?;
    // `origin/HEAD` follows the remote's default branch.
    if let Ok(default) = remote.default_branch() {
        if let Some(branch) = default
            .as_str()
            .ok()
            .and_then(|b| b.strip_prefix("refs/heads/"))
        {
            let target = format!("refs/remotes/origin/{branch}");
            if repo.find_reference(&target).is_ok() {
                let _ = repo.reference_symbolic(
                    "refs/remotes/origin/HEAD",
                    &target,
                    true,
                    "cargo hsm: default branch",
                );
            }
        }
    }
    Ok(())
}

/// What kind of thing a `ref` named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Tag,
    Branch,
    Commit,
    DefaultBranch,
}

impl RefKind {
    /// Branches move: they are fetched again on every sync that may resolve.
    pub fn moves(self) -> bool {
        matches!(self, RefKind::Branch | RefKind::DefaultBranch)
    }
}

fn looks_like_sha(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

/// Resolves `reference` (or the default branch) to a commit with what the
/// checkout already has; `None` when it does not know the ref.
pub fn resolve(repo: &Repository, reference: Option<&str>) -> Option<(Oid, RefKind)> {
    let peel = |name: &str| -> Option<Oid> {
        repo.find_reference(name)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    };
    match reference {
        None => peel("refs/remotes/origin/HEAD")
            .or_else(|| peel("refs/remotes/origin/main"))
            .or_else(|| peel("refs/remotes/origin/master"))
            .map(|o| (o, RefKind::DefaultBranch)),
        Some(r) => {
            if let Some(o) = peel(&format!("refs/tags/{r}")) {
                return Some((o, RefKind::Tag));
            }
            if let Some(o) = peel(&format!("refs/remotes/origin/{r}")) {
                return Some((o, RefKind::Branch));
            }
            if looks_like_sha(r) {
                let obj = repo.revparse_single(r).ok()?;
                let c = obj.peel_to_commit().ok()?;
                if c.id().to_string().starts_with(&r.to_ascii_lowercase()) {
                    return Some((c.id(), RefKind::Commit));
                }
            }
            None
        }
    }
}

pub fn has_commit(repo: &Repository, oid: Oid) -> bool {
    repo.find_commit(oid).is_ok()
}

/// Files with local changes, relative to the checkout: modified, staged,
/// deleted or untracked (ignored files do not count). `is_ours` filters out
/// files that hsm itself wrote.
pub fn local_changes(
    repo: &Repository,
    is_ours: &dyn Fn(&Utf8Path) -> bool,
) -> Result<Vec<String>> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|e| git_err("cannot read the checkout's status", e))?;
    let mut out = Vec::new();
    for s in statuses.iter() {
        let Ok(path) = s.path() else { continue };
        if is_ours(Utf8Path::new(path)) {
            continue;
        }
        let st = s.status();
        let what = if st.is_wt_new() && !st.is_index_new() {
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

/// Commits that exist only in this checkout: HEAD or a local branch that no
/// remote-tracking branch or tag contains.
pub fn unpushed(repo: &Repository) -> Result<Vec<String>> {
    let mut published: Vec<Oid> = Vec::new();
    for glob in ["refs/remotes/*", "refs/tags/*"] {
        if let Ok(refs) = repo.references_glob(glob) {
            for r in refs.flatten() {
                if let Ok(c) = r.peel_to_commit() {
                    published.push(c.id());
                }
            }
        }
    }
    let is_published = |oid: Oid| {
        published
            .iter()
            .any(|p| *p == oid || repo.graph_descendant_of(*p, oid).unwrap_or(false))
    };
    let mut tips: Vec<(String, Oid)> = Vec::new();
    if let Some(h) = head_commit(repo) {
        tips.push(("HEAD".into(), h));
    }
    if let Ok(refs) = repo.references_glob("refs/heads/*") {
        for r in refs.flatten() {
            if let (Ok(name), Ok(c)) = (r.shorthand().map(str::to_string), r.peel_to_commit()) {
                tips.push((format!("branch {name}"), c.id()));
            }
        }
    }
    let mut out = Vec::new();
    for (name, oid) in tips {
        if !is_published(oid) {
            let (ahead, _) = published
                .iter()
                .filter_map(|p| repo.graph_ahead_behind(oid, *p).ok())
                .min()
                .unwrap_or((1, 0));
            out.push(format!(
                "{name} at {} has {} commit(s) that no remote branch or tag contains",
                short(oid),
                ahead.max(1)
            ));
        }
    }
    Ok(out)
}

/// Moves a clean checkout to `oid` (detached HEAD).
pub fn checkout(repo: &Repository, oid: Oid) -> Result<()> {
    let commit = repo
        .find_commit(oid)
        .map_err(|e| git_err(format!("commit {oid} is not in the checkout"), e))?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    repo.checkout_tree(commit.as_object(), Some(&mut co))
        .map_err(|e| git_err(format!("cannot check out {oid}"), e))?;
    repo.set_head_detached(oid)
        .map_err(|e| git_err(format!("cannot move HEAD to {oid}"), e))?;
    Ok(())
}

pub fn short(oid: Oid) -> String {
    oid.to_string()[..10].to_string()
}

/// Paths of a checkout relative to the workspace root.
pub fn workspace_path(checkout_rel: &Utf8Path, path_in_repo: &Utf8Path) -> Utf8PathBuf {
    checkout_rel.join(path_in_repo)
}
