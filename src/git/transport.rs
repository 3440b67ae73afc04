//! Talking to remotes through the user's own `git` command line (see the
//! module docs of [`crate::git`] for why). Only what a `ref` needs is
//! fetched: one shallow commit for a tag, branch, commit id or the default
//! branch; the full history only for an abbreviated commit id, which no
//! server can be asked for directly.

use camino::{Utf8Path, Utf8PathBuf};
use git2::{Oid, Repository};

use super::{fetched_ref, git_err, is_full_sha, redact_url, Artifacts};
use crate::error::{Error, Result};

/// Variables that would point `git` at another repository than the one
/// hsm names (set, for instance, when hsm runs from a git hook).
const REPO_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
];

/// git settings for the first fetch into a new clone (which is thrown
/// away if it fails, so `FETCH_HEAD` needs no care).
const NEW_CLONE_CONFIG: &[&str] = &["maintenance.auto=false", "gc.auto=0"];

/// Which git source: for every message, which names the service, the url
/// (without a password) and the ref.
#[derive(Debug, Clone, Copy)]
pub struct Remote<'a> {
    pub service: &'a str,
    pub url: &'a str,
    pub reference: Option<&'a str>,
}

impl Remote<'_> {
    fn shown_ref(&self) -> &str {
        self.reference.unwrap_or("the default branch")
    }

    /// ``service `x` (`url` @ ref)``.
    pub fn describe(&self) -> String {
        format!(
            "service `{}` (`{}` @ {})",
            self.service,
            redact_url(self.url),
            self.shown_ref()
        )
    }
}

/// What to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Whatever the manifest's `ref` names now.
    Ref,
    /// A commit known already (from `hsm.lock`), for the manifest's `ref`.
    Commit(Oid),
}

/// A finished clone in a temporary directory beside its destination.
pub struct Fetched {
    pub dir: tempfile::TempDir,
    pub commit: Oid,
}

fn git_program() -> Result<Utf8PathBuf> {
    let p = which::which("git").map_err(|_| {
        Error::failed("git sources need `git`, which was not found on `PATH`")
            .with_help("install git (Debian/Ubuntu: `apt-get install git`)")
    })?;
    Utf8PathBuf::from_path_buf(p)
        .map_err(|p| Error::failed(format!("`{}` is not a UTF-8 path", p.display())))
}

/// A `git` command that failed: its line, directory and (redacted) stderr.
struct Failure {
    line: String,
    dir: Utf8PathBuf,
    stderr: String,
}

impl Failure {
    /// Names the service, url and ref, shows the command and git's own
    /// words, and says what to do.
    fn error(self, remote: &Remote<'_>, doing: &str) -> Error {
        let help = help_for(&self.stderr, remote);
        Error::failed(format!("cannot {doing} {}", remote.describe()))
            .with_detail(format!(
                "`{}` in `{}` said:\n{}",
                self.line,
                self.dir,
                self.stderr.trim_end()
            ))
            .with_help(help)
    }
}

/// Runs `git -C dir args…` for `remote`.
fn run_git(
    remote: &Remote<'_>,
    dir: &Utf8Path,
    args: &[&str],
) -> Result<std::result::Result<(), Failure>> {
    let git = git_program()?;
    let mut expr = duct::cmd(git.as_std_path(), args)
        .dir(dir.as_std_path())
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    for k in REPO_ENV {
        expr = expr.env_remove(k);
    }
    let line = format!("git {}", args.join(" "));
    let out = expr.run().map_err(|e| {
        Error::failed(format!(
            "cannot run `{line}` for {}: {e}",
            remote.describe()
        ))
    })?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    Ok(Err(Failure {
        line,
        dir: dir.to_owned(),
        stderr: redact_text(&String::from_utf8_lossy(&out.stderr)),
    }))
}

/// [`run_git`], a failure as an error.
fn git_checked(remote: &Remote<'_>, dir: &Utf8Path, args: &[&str], doing: &str) -> Result<()> {
    run_git(remote, dir, args)?.map_err(|f| f.error(remote, doing))
}

/// One plain instruction for what git's stderr says went wrong.
fn help_for(stderr: &str, remote: &Remote<'_>) -> String {
    let s = stderr.to_ascii_lowercase();
    let url = redact_url(remote.url);
    if s.contains("authentication failed")
        || s.contains("could not read username")
        || s.contains("could not read password")
        || s.contains("error: 401")
        || s.contains("error: 403")
    {
        format!("give git the credentials for `{url}` through a credential helper (`git config --global credential.helper store`, then `git ls-remote {url}` once)")
    } else if s.contains("host key verification failed")
        || s.contains("remote host identification has changed")
        || s.contains("no matching host key")
    {
        "check the server's host key and fix its line in `~/.ssh/known_hosts` (`ssh-keygen -R HOST` removes a stale one); hsm never accepts host keys for you".to_string()
    } else if s.contains("permission denied (publickey") {
        "give ssh a key this server accepts (`ssh-add`, or `IdentityFile` in `~/.ssh/config`)"
            .to_string()
    } else if s.contains("ssl certificate problem") || s.contains("certificate verify") {
        "trust the server's CA in git (`git config --global http.sslCAInfo /path/to/ca.pem`)"
            .to_string()
    } else if s.contains("couldn't find remote ref") || s.contains("not our ref") {
        format!(
            "check the `ref` of service `{}`: `git ls-remote {url}` lists what the remote has",
            remote.service
        )
    } else if s.contains("could not resolve")
        || s.contains("connection refused")
        || s.contains("proxy")
    {
        "check the network, the host name and any `http.proxy` setting, then run `cargo hsm sync` again".to_string()
    } else {
        format!("check the service's git source and that `git ls-remote {url}` works in this shell")
    }
}

/// Every `scheme://user:password@` in `text` without the password.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c)))
            .map(|j| j + 1)
            .unwrap_or(0);
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || "'\"`<>".contains(c))
            .unwrap_or(tail.len());
        out.push_str(&redact_url(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Fetches what `want` needs into `repo` (at `dir`), records it under
/// [`super::FETCHED_REFS`] and returns its commit. A failed fetch leaves
/// the checkout byte-identical (git truncates `FETCH_HEAD` before it
/// connects; it is put back).
pub fn fetch(repo: &Repository, dir: &Utf8Path, remote: &Remote<'_>, want: Want) -> Result<Oid> {
    let fetch_head = repo.path().join("FETCH_HEAD");
    let saved = std::fs::read(&fetch_head).ok();
    let record = fetched_ref(remote.reference);
    let before = repo.refname_to_id(&record).ok();
    let r = fetch_inner(repo, dir, remote, want, &[]);
    if let (Ok(now), Some(old)) = (&r, before) {
        if *now != old {
            // A branch that moved (`cargo hsm update`): the commit fetched
            // before still came from the remote, so the checkout sitting
            // at it (until it moves, or after a rollback) holds no local work.
            let _ = repo.reference(
                &format!("{record}.previous"),
                old,
                true,
                "cargo hsm: fetched before",
            );
        }
    }
    if r.is_err() {
        let _ = match &saved {
            Some(bytes) => std::fs::write(&fetch_head, bytes),
            None => std::fs::remove_file(&fetch_head),
        };
    }
    r
}

/// `config`: `-c key=value` pairs for git itself, before `fetch`.
fn fetch_inner(
    repo: &Repository,
    dir: &Utf8Path,
    remote: &Remote<'_>,
    want: Want,
    config: &[&str],
) -> Result<Oid> {
    let record = fetched_ref(remote.reference);
    let shallow = ["fetch", "--quiet", "--no-tags", "--depth", "1", "origin"];
    let src = match (want, remote.reference) {
        (Want::Commit(oid), _) => oid.to_string(),
        (Want::Ref, Some(r)) => r.to_string(),
        (Want::Ref, None) => "HEAD".to_string(),
    };
    let spec = format!("+{src}:{record}");
    let mut args: Vec<&str> = config.iter().flat_map(|c| ["-c", *c]).collect();
    args.extend(shallow);
    args.push(&spec);
    let first = run_git(remote, dir, &args)?;
    let abbreviated = matches!(want, Want::Ref)
        && remote.reference.is_some_and(|r| {
            !is_full_sha(r) && r.len() >= 7 && r.chars().all(|c| c.is_ascii_hexdigit())
        });
    match first {
        Ok(()) => {}
        Err(f) if !abbreviated && !refused_by_id(&f.stderr) => return Err(f.error(remote, "fetch")),
        Err(f) if !abbreviated && !matches!(want, Want::Commit(_)) => {
            return Err(not_found(remote).with_detail(f.stderr.trim_end().to_string()));
        }
        Err(_) => {
            // An abbreviated commit id, or a server that refuses to send a
            // commit by its id: every branch and tag, then a local lookup.
            let mut args: Vec<&str> = config.iter().flat_map(|c| ["-c", *c]).collect();
            args.extend(["fetch", "--quiet", "--no-tags"]);
            if repo.is_shallow() {
                args.push("--unshallow");
            }
            args.extend([
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/remotes/origin/tags/*",
            ]);
            git_checked(remote, dir, &args, "fetch")?;
            let oid = match want {
                Want::Commit(oid) => oid,
                Want::Ref => {
                    let r = remote.reference.unwrap_or("HEAD");
                    repo.revparse_single(r)
                        .and_then(|o| o.peel_to_commit())
                        .map(|c| c.id())
                        .map_err(|_| not_found(remote))?
                }
            };
            if repo.find_commit(oid).is_err() {
                return Err(not_found(remote));
            }
            repo.reference(&record, oid, true, "cargo hsm: fetched")
                .map_err(|e| {
                    git_err(
                        format!("cannot record the fetch of {}", remote.describe()),
                        e,
                    )
                })?;
            return Ok(oid);
        }
    }
    let oid = repo
        .find_reference(&record)
        .and_then(|r| r.peel_to_commit())
        .map(|c| c.id())
        .map_err(|_| not_found(remote))?;
    if let Want::Commit(want) = want {
        if want != oid {
            return Err(not_found(remote));
        }
    }
    // A user looking into the checkout sees the ref by its usual name.
    if let (Want::Ref, Some(r)) = (want, remote.reference) {
        let mut kind = None;
        let _ = repo.fetchhead_foreach(|name, _, _, _| {
            if name.starts_with("refs/tags/") {
                kind = Some(format!("refs/tags/{r}"));
            } else if name.starts_with("refs/heads/") {
                kind = Some(format!("refs/remotes/origin/{r}"));
            }
            false
        });
        if let Some(name) = kind {
            let _ = repo.reference(&name, oid, true, "cargo hsm: fetched");
        }
    }
    Ok(oid)
}

/// Whether git's stderr says the server lacks the asked ref or refuses to
/// send a commit by its id (not a transport or auth failure).
fn refused_by_id(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "couldn't find remote ref",
        "not our ref",
        "unadvertised object",
        "no such remote ref",
    ]
    .iter()
    .any(|w| s.contains(w))
}

fn not_found(remote: &Remote<'_>) -> Error {
    Error::failed(format!(
        "`{}` has no tag, branch or commit `{}` ({})",
        redact_url(remote.url),
        remote.reference.unwrap_or("HEAD"),
        remote.describe()
    ))
    .with_help(format!(
        "check the `ref` of service `{}`: `git ls-remote {}` lists what the remote has",
        remote.service,
        redact_url(remote.url)
    ))
}

/// Clones submodules at the commits the superproject records.
pub fn submodules(repo: &Repository, dir: &Utf8Path, remote: &Remote<'_>) -> Result<()> {
    if !super::has_submodules(repo) {
        return Ok(());
    }
    git_checked(
        remote,
        dir,
        &["submodule", "update", "--quiet", "--init", "--recursive"],
        "clone the submodules of",
    )
}

/// A new clone of `remote` at what `want` names, checked out, with its
/// submodules, in a temporary directory beside `dest`: a failed clone
/// leaves nothing behind. Independent clones run in parallel this way
/// before sync moves each into place.
pub fn clone_into_temp(
    remote: &Remote<'_>,
    want: Want,
    artifacts: &Artifacts,
    dest: &Utf8Path,
) -> Result<Fetched> {
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
    let dir = Utf8Path::from_path(tmp.path())
        .ok_or_else(|| Error::failed(format!("`{}` is not a UTF-8 path", tmp.path().display())))?
        .to_owned();
    // Without git's template directory (sample hooks, `description`):
    // about fifteen files fewer to copy per clone, none of which hsm uses.
    let mut init = git2::RepositoryInitOptions::new();
    init.external_template(false);
    let repo = Repository::init_opts(&dir, &init).map_err(|e| {
        git_err(
            format!("cannot create a clone for {}", remote.describe()),
            e,
        )
    })?;
    repo.remote("origin", remote.url)
        .map_err(|e| git_err(format!("cannot add the remote of {}", remote.describe()), e))?;
    super::mark_managed(&repo)?;
    artifacts.write_new_exclude(&repo)?;
    // A new shallow clone has nothing to collect: no `git maintenance run
    // --auto` after its fetch (one process less per clone, as `git clone`).
    let commit = fetch_inner(&repo, &dir, remote, want, NEW_CLONE_CONFIG)?;
    super::checkout(&repo, commit)?;
    submodules(&repo, &dir, remote)?;
    Ok(Fetched { dir: tmp, commit })
}

/// Moves a finished temporary clone to `dest` and opens it there.
pub fn adopt(fetched: Fetched, remote: &Remote<'_>, dest: &Utf8Path) -> Result<Repository> {
    let tmp_path = fetched.dir.keep();
    std::fs::rename(&tmp_path, dest).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        Error::failed(format!(
            "cannot move the clone of {} to `{dest}`: {e}",
            remote.describe()
        ))
    })?;
    Repository::open(dest).map_err(|e| git_err(format!("cannot open `{dest}`"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_url_in_text() {
        assert_eq!(
            redact_text("fatal: Authentication failed for 'https://bob:pw@h/x.git/'\n"),
            "fatal: Authentication failed for 'https://bob@h/x.git/'\n"
        );
        assert_eq!(redact_text("no url here"), "no url here");
    }
}
