//! Git checkouts of services with a `git` source.
//!
//! Two halves, for two reasons:
//! - [`transport`]: everything that talks to a remote (fetch, submodules)
//!   runs the user's own `git` command line, as uv does for git
//!   dependencies and cargo with `net.git-fetch-with-cli`. That honours the
//!   user's whole setup for free: credential helpers, `core.sshCommand` /
//!   `GIT_SSH_COMMAND`, `~/.ssh/config`, `known_hosts`, `http.sslCAInfo`,
//!   proxies, `insteadOf` and scp-like URLs. libgit2's transports read
//!   neither ssh config nor `core.sshCommand`.
//! - this module and [`status`]: local reads and moves (open, resolve,
//!   check out, local work) through `git2`, in process, so that a no-op
//!   sync spawns nothing.
//!
//! A checkout hsm cloned says so in its own `.git/config` (`hsm.managed`),
//! so that it is recognised wherever it comes from (e.g. a CI cache); a
//! directory without that mark is never replaced.

#[cfg(target_os = "linux")]
pub mod skeleton;
pub mod status;
pub mod transport;

use camino::{Utf8Path, Utf8PathBuf};
use git2::{Oid, Repository};

use crate::error::{Error, Result};

pub use status::{local_work, ArtifactPatterns, Artifacts, PYTHON_ARTIFACTS};
pub use transport::{Fetched, Remote, Want};

fn git_err(what: impl std::fmt::Display, e: git2::Error) -> Error {
    Error::failed(format!("{what}: {}", e.message()))
}

/// The `.git/config` key that marks a checkout as hsm's own clone.
pub const MANAGED_KEY: &str = "hsm.managed";
/// Where hsm records each commit it fetched for a `ref` of the manifest:
/// what the remote has, even when a shallow tag fetch left no
/// remote-tracking ref.
pub const FETCHED_REFS: &str = "refs/hsm/fetched";

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

/// The URL of `origin` as configured, if any: before `insteadOf`
/// rewrites, so that it compares with the manifest's `url`.
pub fn origin_url(repo: &Repository) -> Option<String> {
    repo.config().ok()?.get_string("remote.origin.url").ok()
}

/// Whether hsm cloned this checkout (its `.git/config` says so).
pub fn is_managed(repo: &Repository) -> bool {
    repo.config()
        .and_then(|c| c.get_bool(MANAGED_KEY))
        .unwrap_or(false)
}

/// Marks a checkout as hsm's own clone.
pub fn mark_managed(repo: &Repository) -> Result<()> {
    repo.config()
        .and_then(|mut c| c.set_bool(MANAGED_KEY, true))
        .map_err(|e| git_err("cannot write the checkout's `.git/config`", e))
}

pub fn head_commit(repo: &Repository) -> Option<Oid> {
    repo.head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id())
}

/// The ref under [`FETCHED_REFS`] for a manifest `ref` (`HEAD` for the
/// default branch).
pub fn fetched_ref(reference: Option<&str>) -> String {
    format!("{FETCHED_REFS}/{}", reference.unwrap_or("HEAD"))
}

fn looks_like_sha(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

/// Whether `r` is a full commit id, which a server can be asked for directly.
pub fn is_full_sha(r: &str) -> bool {
    r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit())
}

/// Resolves `reference` (or the default branch) to a commit with what the
/// checkout already has, without the network; `None` when it does not know
/// the ref. hsm's own record of its last fetch of the ref comes first.
pub fn resolve(repo: &Repository, reference: Option<&str>) -> Option<Oid> {
    let peel = |name: &str| -> Option<Oid> {
        repo.find_reference(name)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    };
    if let Some(o) = peel(&fetched_ref(reference)) {
        return Some(o);
    }
    match reference {
        None => peel("refs/remotes/origin/HEAD")
            .or_else(|| peel("refs/remotes/origin/main"))
            .or_else(|| peel("refs/remotes/origin/master")),
        Some(r) => {
            for name in [format!("refs/remotes/origin/{r}"), format!("refs/tags/{r}")] {
                if let Some(o) = peel(&name) {
                    return Some(o);
                }
            }
            if let Some(o) = peel(&format!("refs/remotes/origin/tags/{r}")) {
                return Some(o);
            }
            if looks_like_sha(r) {
                let obj = repo.revparse_single(r).ok()?;
                let c = obj.peel_to_commit().ok()?;
                if c.id().to_string().starts_with(&r.to_ascii_lowercase()) {
                    return Some(c.id());
                }
            }
            None
        }
    }
}

pub fn has_commit(repo: &Repository, oid: Oid) -> bool {
    repo.find_commit(oid).is_ok()
}

/// Whether the commit checked out tracks `path_in_repo` (e.g. whether the
/// upstream commits its own `uv.lock`).
pub fn tracks(checkout: &Utf8Path, path_in_repo: &Utf8Path) -> bool {
    let Ok(Some(repo)) = open(checkout) else {
        return false;
    };
    repo.head()
        .ok()
        .and_then(|h| h.peel_to_tree().ok())
        .is_some_and(|t| t.get_path(path_in_repo.as_std_path()).is_ok())
}

/// Moves a clean checkout to `oid` (detached HEAD).
pub fn checkout(repo: &Repository, oid: Oid) -> Result<()> {
    checkout_files(repo, oid)?;
    repo.set_head_detached(oid)
        .map_err(|e| git_err(format!("cannot move HEAD to {oid}"), e))?;
    Ok(())
}

/// The files and index of commit `oid`, HEAD left where it is.
pub fn checkout_files(repo: &Repository, oid: Oid) -> Result<()> {
    let commit = repo
        .find_commit(oid)
        .map_err(|e| git_err(format!("commit {oid} is not in the checkout"), e))?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    repo.checkout_tree(commit.as_object(), Some(&mut co))
        .map_err(|e| git_err(format!("cannot check out {oid}"), e))
}

/// Whether the checked-out tree has submodules to clone.
pub fn has_submodules(repo: &Repository) -> bool {
    repo.workdir()
        .is_some_and(|w| w.join(".gitmodules").is_file())
}

pub fn short(oid: Oid) -> String {
    oid.to_string()[..10].to_string()
}

/// Paths of a checkout relative to the workspace root.
pub fn workspace_path(checkout_rel: &Utf8Path, path_in_repo: &Utf8Path) -> Utf8PathBuf {
    checkout_rel.join(path_in_repo)
}

/// `url` without a password, for everything hsm prints or writes:
/// `https://user:secret@host/x` → `https://user@host/x`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..scheme_end + 3]);
    if !user.is_empty() {
        out.push_str(user);
        out.push('@');
    }
    out.push_str(&rest[at + 1..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("https://bob:s3cret@git.example/x.git"),
            "https://bob@git.example/x.git"
        );
        assert_eq!(
            redact_url("https://:tok@git.example/x"),
            "https://git.example/x"
        );
        assert_eq!(
            redact_url("ssh://git@host:22/x.git"),
            "ssh://git@host:22/x.git"
        );
        assert_eq!(redact_url("git@host:org/x.git"), "git@host:org/x.git");
        assert_eq!(redact_url("file:///a/b@c"), "file:///a/b@c");
    }
}
