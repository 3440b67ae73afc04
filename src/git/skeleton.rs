//! The `.git` of a new clone, written in one go.
//!
//! A clone's fixed cost on disk is mostly the files and directories it
//! creates, and on a busy file system (ext4 without a journal skips every
//! inode freed in the last minute when it allocates one) each creation
//! costs far more than the bytes written. `git init` and libgit2's init
//! create about twenty-five: the template's `hooks/`, `description`,
//! `refs/heads` and `refs/tags`, `objects/info`, and a `config.lock` for
//! each key they set. The repository layout (`gitrepository-layout(5)`)
//! needs only `HEAD`, `config`, `objects/` and `refs/`; hsm adds
//! `info/exclude`. Each file is written once, in place: the clone sits in
//! a temporary directory that nobody else reads and that is thrown away
//! whole if anything fails, as `git clone` throws away its own.
//!
//! The refs a new clone gets (what was fetched, and the ref under its
//! usual name) go into one `packed-refs` file, as `git clone` writes the
//! refs it fetched; `HEAD` is written detached at the commit without a
//! reflog entry for it (the first move of the checkout starts the reflog,
//! since `core.logAllRefUpdates` is on). Later fetches and moves of an
//! existing checkout go through git and libgit2 as before.
//!
//! Linux only: there, hsm probes what libgit2's init probes (the
//! executable bit, symlinks, case) itself. Elsewhere libgit2's init runs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use camino::{Utf8Path, Utf8PathBuf};
use git2::{Oid, Repository};

use crate::error::{Error, Result};

/// An empty repository at `dir` (an existing empty directory) with
/// `origin` at `url`, marked as hsm's clone, with `exclude` as its
/// `.git/info/exclude`.
pub fn init(dir: &Utf8Path, url: &str, exclude: &str) -> Result<Repository> {
    let git = dir.join(".git");
    let io = |what: &Utf8Path, e: std::io::Error| {
        Error::failed(format!("cannot create `{what}` in a new clone: {e}"))
    };
    for d in [
        &git,
        &git.join("objects"),
        &git.join("refs"),
        &git.join("info"),
    ] {
        std::fs::create_dir(d).map_err(|e| io(d, e))?;
    }
    let head = git.join("HEAD");
    std::fs::write(&head, "ref: refs/heads/master\n").map_err(|e| io(&head, e))?;
    let probes = Probes {
        filemode: executable_bit_sticks(&head),
        symlinks: symlinks_work(&git, dir.parent().unwrap_or(dir)),
        ignorecase: git.join("head").symlink_metadata().is_ok(),
    };
    let config = git.join("config");
    std::fs::write(&config, config_text(url, probes)).map_err(|e| io(&config, e))?;
    let info = git.join("info").join("exclude");
    std::fs::write(&info, exclude).map_err(|e| io(&info, e))?;
    Repository::open(dir).map_err(|e| {
        Error::failed(format!(
            "cannot open the new clone at `{dir}`: {}",
            e.message()
        ))
    })
}

#[derive(Debug, Clone, Copy)]
struct Probes {
    filemode: bool,
    symlinks: bool,
    ignorecase: bool,
}

/// The config libgit2's init writes (the same keys, in its order), the
/// remote as `git remote add` writes it, and hsm's mark.
fn config_text(url: &str, p: Probes) -> String {
    let mut s = String::from("[core]\n\tbare = false\n\trepositoryformatversion = 0\n");
    s.push_str(&format!("\tfilemode = {}\n", p.filemode));
    if !p.symlinks {
        s.push_str("\tsymlinks = false\n");
    }
    if p.ignorecase {
        s.push_str("\tignorecase = true\n");
    }
    s.push_str("\tlogallrefupdates = true\n");
    s.push_str(&format!(
        "[remote \"origin\"]\n\turl = {}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
        quoted(url)
    ));
    // `hsm.managed` (super::MANAGED_KEY).
    s.push_str("[hsm]\n\tmanaged = true\n");
    s
}

/// A config value in double quotes, with git's escapes: a URL may hold
/// `#` or `;` (comments when unquoted), backslashes or quotes.
fn quoted(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Whether the file system keeps the executable bit (git's own probe,
/// which flips it on a file of the new `.git`).
fn executable_bit_sticks(file: &Utf8Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(before) = file.symlink_metadata() else {
        return false;
    };
    let mode = before.permissions().mode();
    let flipped = std::fs::Permissions::from_mode(mode ^ 0o100);
    if std::fs::set_permissions(file, flipped).is_err() {
        return false;
    }
    let after = file.symlink_metadata().map(|m| m.permissions().mode());
    let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode));
    after.is_ok_and(|m| m != mode)
}

/// Whether symlinks can be made, probed in the new `git_dir` as git does,
/// once per process for all clones into `parent` (every clone of a sync
/// goes into the same services directory).
fn symlinks_work(git_dir: &Utf8Path, parent: &Utf8Path) -> bool {
    static SEEN: Mutex<BTreeMap<Utf8PathBuf, bool>> = Mutex::new(BTreeMap::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&b) = seen.get(parent) {
        return b;
    }
    let probe = git_dir.join("symlink-probe");
    let ok = std::os::unix::fs::symlink("testing", &probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    seen.insert(parent.to_owned(), ok);
    ok
}

/// The refs of a new clone, in one `packed-refs` file (sorted, as git
/// writes it; peeled on demand by whoever reads it).
pub fn write_refs(repo: &Repository, refs: &[(String, Oid)]) -> Result<()> {
    let mut refs: Vec<&(String, Oid)> = refs.iter().collect();
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    refs.dedup_by(|a, b| a.0 == b.0);
    let mut s = String::from("# pack-refs with: sorted \n");
    for (name, oid) in refs {
        s.push_str(&format!("{oid} {name}\n"));
    }
    let path = repo.path().join("packed-refs");
    std::fs::write(&path, s).map_err(|e| {
        Error::failed(format!(
            "cannot write `{}` in a new clone: {e}",
            path.display()
        ))
    })
}

/// `HEAD` of a new clone, detached at `oid`, written in place.
pub fn detach_head(repo: &Repository, oid: Oid) -> Result<()> {
    let path = repo.path().join("HEAD");
    std::fs::write(&path, format!("{oid}\n")).map_err(|e| {
        Error::failed(format!(
            "cannot write `{}` in a new clone: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Utf8Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn git_and_libgit2_read_the_skeleton_as_git_init_would_write_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap().join("clone");
        std::fs::create_dir(&dir).unwrap();
        // `#` and `;` start comments unless quoted; `\` and `"` are escaped.
        let url = "https://user@example.org/a b/x.git#frag;y\\\"z";
        let repo = init(&dir, url, "# hsm\n.venv/\n").unwrap();
        assert_eq!(super::super::origin_url(&repo).as_deref(), Some(url));
        assert!(super::super::is_managed(&repo));
        assert_eq!(git(&dir, &["config", "--get", "remote.origin.url"]), url);
        assert_eq!(git(&dir, &["config", "--get", "hsm.managed"]), "true");
        assert_eq!(git(&dir, &["config", "--get", "core.filemode"]), "true");
        assert_eq!(git(&dir, &["rev-parse", "--is-bare-repository"]), "false");
        assert_eq!(git(&dir, &["rev-parse", "--git-dir"]), ".git");
        assert_eq!(
            git(&dir, &["check-ignore", ".venv/x"]),
            ".venv/x",
            "info/exclude is read"
        );
        // Refs and a detached HEAD, as git itself reads them.
        std::fs::write(dir.join("f"), "x\n").unwrap();
        let blob = repo.blob(b"x\n").unwrap();
        let mut tb = repo.treebuilder(None).unwrap();
        tb.insert("f", blob, 0o100644).unwrap();
        let tree = repo.find_tree(tb.write().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let c = repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap();
        write_refs(
            &repo,
            &[
                ("refs/tags/v1".into(), c),
                ("refs/hsm/fetched/v1".into(), c),
            ],
        )
        .unwrap();
        detach_head(&repo, c).unwrap();
        let cs = c.to_string();
        assert_eq!(git(&dir, &["rev-parse", "HEAD"]), cs);
        assert_eq!(git(&dir, &["rev-parse", "v1"]), cs);
        assert_eq!(git(&dir, &["rev-parse", "refs/hsm/fetched/v1"]), cs);
        assert_eq!(git(&dir, &["fsck", "--no-progress"]), "");
        let repo = Repository::open(&dir).unwrap();
        assert_eq!(super::super::head_commit(&repo), Some(c));
        assert_eq!(super::super::resolve(&repo, Some("v1")), Some(c));
        assert!(repo.head_detached().unwrap());
    }
}
