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
/// away if it fails, so `FETCH_HEAD` needs no care). A new shallow clone
/// has nothing to collect: no `git maintenance run --auto` after its
/// fetch (one process less per clone, as `git clone`).
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
    let r = fetch_inner(repo, dir, remote, want, &[], Refs::Loose);
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

/// How [`fetch_inner`] records what it fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refs {
    /// As loose refs, through git and libgit2: an existing checkout.
    Loose,
    /// In the `packed-refs` file of a new clone (see [`super::skeleton`]):
    /// git fetches into `FETCH_HEAD` alone.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    NewClone,
}

/// `config`: `-c key=value` pairs for git itself, before `fetch`.
fn fetch_inner(
    repo: &Repository,
    dir: &Utf8Path,
    remote: &Remote<'_>,
    want: Want,
    config: &[&str],
    refs: Refs,
) -> Result<Oid> {
    let record = fetched_ref(remote.reference);
    let shallow = ["fetch", "--quiet", "--no-tags", "--depth", "1"];
    let src = match (want, remote.reference) {
        (Want::Commit(oid), _) => oid.to_string(),
        (Want::Ref, Some(r)) => r.to_string(),
        (Want::Ref, None) => "HEAD".to_string(),
    };
    let spec = match refs {
        Refs::Loose => format!("+{src}:{record}"),
        Refs::NewClone => src.clone(),
    };
    let mut args: Vec<&str> = config.iter().flat_map(|c| ["-c", *c]).collect();
    args.extend(shallow);
    if refs == Refs::NewClone {
        // No remote-tracking ref updated on the side: hsm writes the refs.
        args.push("--refmap=");
    }
    args.extend(["origin", spec.as_str()]);
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
    // What git fetched, and whether the remote has it as a tag or a branch.
    let head = fetch_head(repo);
    let (fetched, oid) = match refs {
        Refs::Loose => {
            let r = repo
                .find_reference(&record)
                .map_err(|_| not_found(remote))?;
            (r.target(), r.peel_to_commit().map(|c| c.id()))
        }
        Refs::NewClone => {
            let o = head.as_ref().map(|h| h.oid);
            let commit = o
                .ok_or_else(|| git2::Error::from_str("no FETCH_HEAD"))
                .and_then(|o| {
                    repo.find_object(o, None)
                        .and_then(|x| x.peel_to_commit())
                        .map(|c| c.id())
                });
            (o, commit)
        }
    };
    let (Some(fetched), Ok(oid)) = (fetched, oid) else {
        return Err(not_found(remote));
    };
    if let Want::Commit(want) = want {
        if want != oid {
            return Err(not_found(remote));
        }
    }
    // A user looking into the checkout sees the ref by its usual name.
    let usual = match (want, remote.reference, head.and_then(|h| h.kind)) {
        (Want::Ref, Some(r), Some(Kind::Tag)) => Some(format!("refs/tags/{r}")),
        (Want::Ref, Some(r), Some(Kind::Branch)) => Some(format!("refs/remotes/origin/{r}")),
        _ => None,
    };
    match refs {
        Refs::Loose => {
            if let Some(name) = usual {
                let _ = repo.reference(&name, oid, true, "cargo hsm: fetched");
            }
        }
        Refs::NewClone => {
            let mut all = vec![(record, fetched)];
            all.extend(usual.map(|n| (n, oid)));
            super::skeleton::write_refs(repo, &all)?;
        }
    }
    Ok(oid)
}

/// The first line of `FETCH_HEAD`, as git writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FetchHead {
    oid: Oid,
    kind: Option<Kind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tag,
    Branch,
}

/// Reads `FETCH_HEAD` (libgit2's reader asserts on the line of a fetch of
/// `HEAD` or of a commit id, which names no ref).
fn fetch_head(repo: &Repository) -> Option<FetchHead> {
    let text = std::fs::read_to_string(repo.path().join("FETCH_HEAD")).ok()?;
    parse_fetch_head(&text)
}

/// `<oid> TAB [not-for-merge] TAB <what> of <url>`, where `<what>` is
/// `tag 'v1'`, `branch 'main'`, or a quoted name or nothing for anything else.
fn parse_fetch_head(text: &str) -> Option<FetchHead> {
    let mut fields = text.lines().next()?.splitn(3, '\t');
    let oid = Oid::from_str(fields.next()?).ok()?;
    let what = fields.nth(1).unwrap_or("");
    let kind = if what.starts_with("tag '") {
        Some(Kind::Tag)
    } else if what.starts_with("branch '") {
        Some(Kind::Branch)
    } else {
        None
    };
    Some(FetchHead { oid, kind })
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
    let prefix = format!(".{}.clone-", dest.file_name().unwrap_or("checkout"));
    remove_unfinished_clones(parent, &prefix);
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(TEMP_RANDOM_LEN)
        .tempdir_in(parent)
        .map_err(|e| Error::failed(format!("cannot create a directory in `{parent}`: {e}")))?;
    let dir = Utf8Path::from_path(tmp.path())
        .ok_or_else(|| Error::failed(format!("`{}` is not a UTF-8 path", tmp.path().display())))?
        .to_owned();
    let (repo, commit) = new_clone(&dir, remote, want, artifacts)?;
    submodules(&repo, &dir, remote)?;
    Ok(Fetched { dir: tmp, commit })
}

/// The random part of a temporary clone's name.
const TEMP_RANDOM_LEN: usize = 6;

/// Removes the temporary clones (`.<name>.clone-XXXXXX`) that a sync
/// killed before it moved them into place left in `parent`. Only a sync
/// makes them, and it holds the workspace's sync lock, so none of them is
/// in use.
fn remove_unfinished_clones(parent: &Utf8Path, prefix: &str) {
    let Ok(entries) = parent.read_dir_utf8() else {
        return;
    };
    for e in entries.flatten() {
        // `tempfile`'s six random letters and digits after the prefix: not
        // the clone of another service whose name starts the same way.
        let random = e.file_name().strip_prefix(prefix);
        let unfinished = random.is_some_and(|r| {
            r.len() == TEMP_RANDOM_LEN && r.chars().all(|c| c.is_ascii_alphanumeric())
        }) && e.file_type().is_ok_and(|t| t.is_dir());
        if unfinished {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The `.git` in one go, one `git fetch`, the refs in `packed-refs` and
/// the files checked out (see [`super::skeleton`]).
#[cfg(target_os = "linux")]
fn new_clone(
    dir: &Utf8Path,
    remote: &Remote<'_>,
    want: Want,
    artifacts: &Artifacts,
) -> Result<(Repository, Oid)> {
    let repo = super::skeleton::init(dir, remote.url, &artifacts.exclude_file())?;
    let commit = fetch_inner(&repo, dir, remote, want, NEW_CLONE_CONFIG, Refs::NewClone)?;
    super::checkout_files(&repo, commit)?;
    super::skeleton::detach_head(&repo, commit)?;
    Ok((repo, commit))
}

/// libgit2's init (without git's template directory: sample hooks,
/// `description`), the remote and hsm's mark, one `git fetch`, and the
/// files checked out.
#[cfg(not(target_os = "linux"))]
fn new_clone(
    dir: &Utf8Path,
    remote: &Remote<'_>,
    want: Want,
    artifacts: &Artifacts,
) -> Result<(Repository, Oid)> {
    let mut init = git2::RepositoryInitOptions::new();
    init.external_template(false);
    let repo = Repository::init_opts(dir, &init).map_err(|e| {
        git_err(
            format!("cannot create a clone for {}", remote.describe()),
            e,
        )
    })?;
    repo.remote("origin", remote.url)
        .map_err(|e| git_err(format!("cannot add the remote of {}", remote.describe()), e))?;
    super::mark_managed(&repo)?;
    artifacts.write_new_exclude(&repo)?;
    let commit = fetch_inner(&repo, dir, remote, want, NEW_CLONE_CONFIG, Refs::Loose)?;
    super::checkout(&repo, commit)?;
    Ok((repo, commit))
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
    fn reads_fetch_head_as_git_writes_it() {
        let sha = "0bc34f902e868ab2df56f3eb61abef21e4b6b568";
        let oid = Oid::from_str(sha).unwrap();
        let line = |what: &str| format!("{sha}\t\t{what}\n");
        let kind = |text: &str| parse_fetch_head(text).map(|h| (h.oid, h.kind));
        assert_eq!(
            kind(&line("tag 'v1' of file:///r.git")),
            Some((oid, Some(Kind::Tag)))
        );
        assert_eq!(
            kind(&line("branch 'main' of https://h/r")),
            Some((oid, Some(Kind::Branch)))
        );
        // A fetch of `HEAD` or of a commit id names no ref.
        assert_eq!(kind(&line("file:///r.git")), Some((oid, None)));
        assert_eq!(kind(&line(&format!("'{sha}' of h:r"))), Some((oid, None)));
        assert_eq!(
            kind(&format!("{sha}\tnot-for-merge\tbranch 'x' of u\n")),
            Some((oid, Some(Kind::Branch)))
        );
        assert_eq!(kind(""), None);
        assert_eq!(kind("garbage\n"), None);
    }

    #[test]
    fn redacts_every_url_in_text() {
        assert_eq!(
            redact_text("fatal: Authentication failed for 'https://bob:pw@h/x.git/'\n"),
            "fatal: Authentication failed for 'https://bob@h/x.git/'\n"
        );
        assert_eq!(redact_text("no url here"), "no url here");
    }
}
