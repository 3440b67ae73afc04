//! Issue 13, the kill-point driver: sync is interrupted with SIGKILL (of its
//! whole process group), SIGINT and SIGTERM at every step boundary, before
//! each journaled write and while its tools (uv, `python3 -m venv`, pip)
//! run — reached through the test-only pause points of
//! `CARGO_HSM_TEST_PAUSE`. After each interruption:
//! - SIGINT / SIGTERM: exit 130 / 143, and the workspace is as before;
//! - SIGKILL: `check` reports `sync-interrupted` (when a journal was left),
//!   the next writing command rolls it back and says so, and the workspace
//!   is as before;
//! - then a sync exits 0 and `check` is clean, with every edited file's mode
//!   kept.
//!
//! "As before": every file byte for byte with its mode, every directory,
//! outside environments' contents and git internals (`.git/HEAD` counts).
//!
//! CI runs a representative subset; `CARGO_HSM_KILL_POINTS=all` runs every
//! point with every signal (63 cases; 35 to 250 s each on a loaded 2-core machine), and
//! `CARGO_HSM_KILL_POINTS=spawn:uv,after:compose` runs the named points.

mod sync_support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sync_support::{require, stderr, stdout, Sandbox};

/// Every pause point of a sync of manifest B over a workspace synced with A.
const POINTS: &[&str] = &[
    "before:git sources",
    "after:git sources",
    "before:root project",
    "write:pyproject.toml",
    "after:root project",
    "before:environment services",
    "write:.hsm/env/s0.env",
    "write:.hsm/env/rr.env",
    "spawn:uv",
    "spawn:python3",
    "spawn:python",
    "after:environment services",
    "before:libraries",
    "after:libraries",
    "before:compose",
    "after:compose",
    "before:stale files",
    "after:stale files",
    "before:hsm.lock",
    "write:hsm.lock",
    "after:hsm.lock",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Kill,
    Int,
    Term,
}

impl Sig {
    fn all() -> [Sig; 3] {
        [Sig::Kill, Sig::Int, Sig::Term]
    }
}

/// The CI subset: each signal, each kind of point, a tool of each runtime.
const CI_CASES: &[(&str, Sig)] = &[
    ("spawn:uv", Sig::Kill),
    ("spawn:python3", Sig::Term),
    ("spawn:python", Sig::Int),
    ("write:hsm.lock", Sig::Int),
    ("after:hsm.lock", Sig::Kill),
];

fn manifest(url: &str, b: bool) -> String {
    let mut m = String::from("[project]\nname = \"kills\"\n\n[libraries]\n");
    m.push_str(if b {
        "standalone = [\"beta\", \"gamma\"]\n"
    } else {
        "standalone = [\"beta\"]\n"
    });
    m.push_str(if b {
        "\n[services]\nstandalone = [\"s0\", \"rr\", \"g\", \"pg\", \"vv\"]\n"
    } else {
        "\n[services]\nstandalone = [\"s0\", \"rr\", \"g\", \"pg\", \"o1\"]\n"
    });
    m.push_str(
        "\n[registry.libraries.beta.sources.prod]\ntype = \"pypi\"\nversion = \"==2.0.0\"\n",
    );
    m.push_str(
        "\n[registry.libraries.gamma.sources.prod]\ntype = \"pypi\"\nversion = \"==0.1.0\"\n",
    );
    let s0_deps = if b {
        "\"alpha\", \"beta\""
    } else {
        "\"alpha\""
    };
    m.push_str(&format!(
        "\n[registry.services.s0]\ndependencies = [{s0_deps}]\nenv = {{ S0 = \"{}\" }}\n[registry.services.s0.sources.prod]\ntype = \"local\"\npath = \"services/s0\"\n[registry.services.s0.deployment-profiles.default]\nruntime = \"uv\"\n",
        if b { "two" } else { "one" }
    ));
    let rr_deps = if b {
        "\"beta==2.0.0\", \"delta==1.0\""
    } else {
        "\"beta==2.0.0\""
    };
    m.push_str(&format!(
        "\n[registry.services.rr]\ndependencies = [{rr_deps}]\nenv = {{ RR = \"{}\" }}\n[registry.services.rr.sources.prod]\ntype = \"local\"\npath = \"services/rr\"\n[registry.services.rr.deployment-profiles.default]\nruntime = \"venv\"\n",
        if b { "two" } else { "one" }
    ));
    m.push_str(&format!(
        "\n[registry.services.g.sources.prod]\ntype = \"git\"\nurl = \"{url}\"\nref = \"{}\"\n[registry.services.g.deployment-profiles.default]\nruntime = \"uv\"\n",
        if b { "v2" } else { "v1" }
    ));
    m.push_str(&format!(
        "\n[registry.services.pg]\nports = [{}]\n[registry.services.pg.sources.prod]\ntype = \"docker-image\"\nimage = \"postgres:16\"\n",
        if b { "\"5432:5432\", \"5433:5433\"" } else { "\"5432:5432\"" }
    ));
    m.push_str("\n[registry.services.vv.sources.prod]\ntype = \"local\"\npath = \"services/vv\"\n[registry.services.vv.deployment-profiles.default]\nruntime = \"venv\"\n");
    m.push_str("\n[registry.services.o1.sources.prod]\ntype = \"local\"\npath = \"services/o1\"\n[registry.services.o1.deployment-profiles.default]\nruntime = \"uv\"\n");
    m
}

/// A workspace synced with manifest A, with unusual modes on the files
/// sync edits; manifest B is written but not synced.
fn template() -> (Sandbox, String) {
    let sb = Sandbox::new();
    sb.root_pyproject("");
    sb.uv_service("services/s0", "");
    sb.uv_service("services/o1", "");
    let wheels = sb.path("wheels");
    for svc in ["rr", "vv"] {
        sb.write(
            &format!("services/{svc}/requirements.txt"),
            &format!(
                "--no-index\n--find-links {}\nalpha==1.0.0\n",
                wheels.display()
            ),
        );
    }
    let (url, _) = sb.git_remote("g", &["v1", "v2"]);
    sb.write("hsm.toml", &manifest(&url, false));
    sb.sync(&[]);
    for (f, mode) in [
        ("pyproject.toml", 0o640),
        ("services/s0/pyproject.toml", 0o600),
        ("hsm.lock", 0o600),
    ] {
        std::fs::set_permissions(sb.path(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = sb.run(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    sb.write("hsm.toml", &manifest(&url, true));
    (sb, url)
}

fn copy_of(template: &Sandbox) -> Sandbox {
    let sb = Sandbox::empty();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", template.root.display()))
        .arg(&sb.root)
        .status()
        .unwrap();
    assert!(st.success());
    sb
}

/// What "as before" compares: path → (bytes, mode), directories with no bytes.
type Tree = BTreeMap<PathBuf, (Option<Vec<u8>>, u32)>;

fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let s = rel.to_string_lossy().to_string();
            // hsm's own state and caches; the test's fixtures.
            if [
                ".hsm/sync.lock",
                ".hsm/fingerprints.json",
                ".hsm/.gitignore",
                ".hsm/journal",
                "wheels",
                "remotes",
                "paused-flag",
            ]
            .contains(&s.as_str())
            {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let name = e.file_name().to_string_lossy().to_string();
            if md.is_dir() {
                out.insert(rel, (None, mode));
                // Environments are not journaled file by file; git
                // internals are compared through `.git/HEAD`.
                if name == ".venv" || name == "__pycache__" {
                    continue;
                }
                if name == ".git" {
                    let head = std::fs::read(p.join("HEAD")).unwrap();
                    out.insert(
                        p.join("HEAD").strip_prefix(root).unwrap().into(),
                        (Some(head), 0),
                    );
                    continue;
                }
                stack.push(p);
            } else {
                out.insert(rel, (Some(std::fs::read(&p).unwrap_or_default()), mode));
            }
        }
    }
    out
}

fn diff(a: &Tree, b: &Tree) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("missing now: {}", k.display())),
            Some(w) if w != v => d.push(format!(
                "changed: {} (mode {:o} -> {:o})",
                k.display(),
                v.1,
                w.1
            )),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            d.push(format!("created: {}", k.display()));
        }
    }
    d
}

/// Runs `sync` paused at `point`, sends `sig`, returns the finished output.
fn interrupted_sync(sb: &Sandbox, point: &str, sig: Sig) -> std::process::Output {
    let flag = sb.path("paused-flag");
    let _ = std::fs::remove_file(&flag);
    let mut cmd = sb.cmd(&["sync"]);
    cmd.env("CARGO_HSM_TEST_PAUSE", point)
        .env("CARGO_HSM_TEST_PAUSE_FILE", &flag)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    // SAFETY: resets two signal dispositions between fork and exec (a test
    // run from a non-interactive shell inherits SIGINT ignored).
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    let start = Instant::now();
    while !flag.exists() {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("sync ended without reaching `{point}`:\n{}", stderr(&out));
        }
        if start.elapsed() > Duration::from_secs(300) {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = child.wait_with_output().unwrap();
            panic!("sync never reached `{point}`:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: our own child (and, for SIGKILL, its process group).
    unsafe {
        match sig {
            Sig::Kill => libc::kill(-pid, libc::SIGKILL),
            Sig::Int => libc::kill(pid, libc::SIGINT),
            Sig::Term => libc::kill(pid, libc::SIGTERM),
        };
    }
    child.wait_with_output().unwrap()
}

/// Whether a sync left its journal to roll back: its log holds records (a
/// committed journal is an empty log, kept for the next sync).
fn journal_pending(sb: &Sandbox) -> bool {
    std::fs::metadata(sb.path(".hsm/journal/log")).is_ok_and(|m| m.len() > 0)
}

fn mode(sb: &Sandbox, rel: &str) -> u32 {
    std::fs::metadata(sb.path(rel))
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

fn run_case(template: &Sandbox, point: &str, sig: Sig) {
    let sb = copy_of(template);
    let before = tree(&sb.root);
    let out = interrupted_sync(&sb, point, sig);
    let err = stderr(&out);
    let case = format!("{point} / {sig:?}");
    match sig {
        Sig::Int | Sig::Term => {
            let (code, name) = if sig == Sig::Int {
                (130, "SIGINT")
            } else {
                (143, "SIGTERM")
            };
            assert_eq!(out.status.code(), Some(code), "{case}:\n{err}");
            assert!(
                err.contains(&format!("interrupted by {name}")),
                "{case}:\n{err}"
            );
            assert!(
                err.contains("rolled back") || err.contains("nothing was changed"),
                "{case}:\n{err}"
            );
            assert!(!journal_pending(&sb), "{case}: journal left");
        }
        Sig::Kill => {
            assert_eq!(out.status.code(), None, "{case}: not killed:\n{err}");
            let pending = journal_pending(&sb);
            let check = sb.run(&["check"]);
            let text = format!("{}{}", stdout(&check), stderr(&check));
            assert_eq!(check.status.code(), Some(1), "{case}:\n{text}");
            assert_eq!(
                text.contains("sync-interrupted"),
                pending,
                "{case}:\n{text}"
            );
            assert_eq!(pending, journal_pending(&sb), "check wrote");
            // The next writing command rolls back first, and says so.
            let edit = sb.run(&["library", "add", "beta"]);
            let e = stderr(&edit);
            assert!(edit.status.success(), "{case}:\n{e}");
            if pending {
                assert!(e.contains("was rolled back"), "{case}:\n{e}");
            }
            assert!(!journal_pending(&sb), "{case}: journal left");
        }
    }
    let changed = diff(&before, &tree(&sb.root));
    assert!(
        changed.is_empty(),
        "{case}: not as before:\n{}",
        changed.join("\n")
    );

    let out = sb.run(&["sync"]);
    assert!(
        out.status.success(),
        "{case}: sync after:\n{}",
        stderr(&out)
    );
    let check = sb.run(&["check"]);
    assert!(
        check.status.success(),
        "{case}: check after:\n{}{}",
        stdout(&check),
        stderr(&check)
    );
    assert_eq!(mode(&sb, "pyproject.toml"), 0o640, "{case}");
    assert_eq!(mode(&sb, "services/s0/pyproject.toml"), 0o600, "{case}");
    assert_eq!(mode(&sb, "hsm.lock"), 0o600, "{case}");
}

fn cases() -> Vec<(String, Sig)> {
    match std::env::var("CARGO_HSM_KILL_POINTS").ok().as_deref() {
        Some("all") => POINTS
            .iter()
            .flat_map(|p| Sig::all().map(|s| (p.to_string(), s)))
            .collect(),
        Some(list) if !list.trim().is_empty() => list
            .split(',')
            .flat_map(|p| Sig::all().map(|s| (p.trim().to_string(), s)))
            .collect(),
        _ => CI_CASES.iter().map(|(p, s)| (p.to_string(), *s)).collect(),
    }
}

#[test]
fn sync_recovers_from_sigkill_sigint_and_sigterm_at_every_point() {
    if !require("uv") || !require("venv") || !require("git") {
        return;
    }
    let (template, _) = template();
    let cases = cases();
    let start = Instant::now();
    // Every case runs: the failures are reported together at the end.
    let mut failed = Vec::new();
    for (point, sig) in &cases {
        assert!(POINTS.contains(&point.as_str()), "unknown point `{point}`");
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_case(&template, point, *sig)
        }));
        let took = t.elapsed().as_secs_f64();
        match r {
            Ok(()) => eprintln!("ok   {point} / {sig:?} ({took:.1} s)"),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("FAIL {point} / {sig:?} ({took:.1} s)");
                failed.push(msg);
            }
        }
    }
    eprintln!(
        "{} of {} kill-point cases passed in {:.0} s",
        cases.len() - failed.len(),
        cases.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// A failed sync (not a signal) removes the environments it created and
/// says so: the message tells exactly what was restored.
#[test]
fn a_failed_sync_removes_the_venv_it_created() {
    if !require("venv") {
        return;
    }
    let sb = Sandbox::new();
    sb.write(
        "services/bad/requirements.txt",
        "--no-index\nno-such-package==1\n",
    );
    sb.write(
        "hsm.toml",
        "[services]\nstandalone = [\"bad\"]\n[registry.services.bad.sources.prod]\ntype = \"local\"\npath = \"services/bad\"\n[registry.services.bad.deployment-profiles.default]\nruntime = \"venv\"\n",
    );
    let before = tree(&sb.root);
    let out = sb.run(&["sync"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("removed"), "{err}");
    assert!(err.contains("services/bad/.venv"), "{err}");
    assert!(!sb.exists("services/bad/.venv"), "{err}");
    assert!(!sb.exists(".hsm"), "a failed first sync leaves no `.hsm/`");
    let changed = diff(&before, &tree(&sb.root));
    assert!(changed.is_empty(), "{}", changed.join("\n"));
}

/// A venv that `python -m venv` left without pip (killed half-way) is
/// `venv-broken` for check, and the next sync recreates it.
#[test]
fn a_half_made_venv_is_reported_and_recreated() {
    if !require("venv") {
        return;
    }
    let sb = Sandbox::new();
    let wheels = sb.path("wheels");
    sb.write(
        "services/rr/requirements.txt",
        &format!(
            "--no-index\n--find-links {}\nbeta==2.0.0\n",
            wheels.display()
        ),
    );
    sb.write(
        "hsm.toml",
        "[services]\nstandalone = [\"rr\"]\n[registry.services.rr.sources.prod]\ntype = \"local\"\npath = \"services/rr\"\n[registry.services.rr.deployment-profiles.default]\nruntime = \"venv\"\n",
    );
    sb.sync(&[]);
    // What a kill during ensurepip leaves: an interpreter, no pip.
    let lib = sb.path("services/rr/.venv/lib");
    let py = std::fs::read_dir(&lib)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_dir_all(py.join("site-packages")).unwrap();
    std::fs::create_dir(py.join("site-packages")).unwrap();
    let check = sb.run(&["check"]);
    let text = stdout(&check) + &stderr(&check);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(text.contains("venv-broken"), "{text}");
    assert!(text.contains("no pip"), "{text}");
    let out = sb.sync(&[]);
    assert!(stderr(&out).contains("half-made"), "{}", stderr(&out));
    let check = sb.run(&["check"]);
    assert!(check.status.success(), "{}", stdout(&check));
}

/// uv missing from `PATH`: the sync fails, and the venv of the other
/// service (made with `python3 -m venv`) does not stay behind.
#[test]
fn a_sync_without_uv_leaves_no_venv() {
    if !require("venv") {
        return;
    }
    let sb = Sandbox::new();
    sb.uv_service("services/s0", "");
    sb.write("services/rr/requirements.txt", "--no-index\n");
    sb.write(
        "hsm.toml",
        "[services]\nstandalone = [\"rr\", \"s0\"]\n[registry.services.rr.sources.prod]\ntype = \"local\"\npath = \"services/rr\"\n[registry.services.rr.deployment-profiles.default]\nruntime = \"venv\"\n[registry.services.s0.sources.prod]\ntype = \"local\"\npath = \"services/s0\"\n[registry.services.s0.deployment-profiles.default]\nruntime = \"uv\"\n",
    );
    // A `PATH` with python3 and git, without uv.
    let bin = sb.path("bin-without-uv");
    std::fs::create_dir_all(&bin).unwrap();
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap();
    std::os::unix::fs::symlink(python.trim(), bin.join("python3")).unwrap();
    let before = tree(&sb.root);
    let out = sb.cmd(&["sync"]).env("PATH", &bin).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`uv`, which was not found"), "{err}");
    assert!(
        err.contains("removed `.hsm/env`, `services/rr/.venv`"),
        "{err}"
    );
    assert!(!sb.exists("services/rr/.venv"), "{err}");
    assert!(!sb.exists("services/s0/.venv"), "{err}");
    assert!(!sb.exists(".hsm"), "a failed first sync leaves no `.hsm/`");
    let changed = diff(&before, &tree(&sb.root));
    assert!(changed.is_empty(), "{}", changed.join("\n"));
}

/// `cargo hsm up` after a sync killed with its journal pending recovers as
/// `sync` does: its own sync rolls the journal back first, says so, then
/// syncs and starts the service. With `--no-sync` (start from what is on
/// disk) it rolls back first too, and starts from the restored workspace,
/// not from half-written files.
#[test]
fn up_recovers_an_interrupted_sync_as_sync_does() {
    if !require("uv") {
        return;
    }
    let sb = Sandbox::new();
    sb.root_pyproject("");
    sb.uv_service("services/s0", "");
    let manifest = |deps: &str| {
        format!("[services]\nstandalone = [\"s0\"]\n[registry.services.s0]\ndependencies = [{deps}]\n[registry.services.s0.sources.prod]\ntype = \"local\"\npath = \"services/s0\"\n[registry.services.s0.deployment-profiles.default]\nruntime = \"uv\"\ncommand = [\"python\", \"-c\", \"import alpha; print('s0 ran')\"]\n")
    };
    sb.write("hsm.toml", &manifest("\"alpha\""));
    sb.sync(&[]);
    // What `up` itself writes: its run state and logs.
    let ours = |d: &String| !d.contains(".hsm/run");
    let kill_a_sync = |deps: &str| {
        sb.write("hsm.toml", &manifest(deps));
        let before = tree(&sb.root);
        let edited = sb.read("services/s0/pyproject.toml");
        let out = interrupted_sync(&sb, "after:environment services", Sig::Kill);
        assert_eq!(out.status.code(), None, "not killed:\n{}", stderr(&out));
        assert!(journal_pending(&sb), "no journal left");
        assert_ne!(
            sb.read("services/s0/pyproject.toml"),
            edited,
            "the killed sync had not edited the service yet"
        );
        before
    };

    kill_a_sync("\"alpha\", \"beta\"");
    let out = sb.cmd(&["up"]).env("UV_OFFLINE", "1").output().unwrap();
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert!(
        e.contains("an earlier sync was interrupted; it was rolled back before this command"),
        "{e}"
    );
    assert!(o.contains("s0 ran"), "{o}\n{e}");
    assert!(!journal_pending(&sb), "journal left:\n{e}");
    assert!(
        sb.read("services/s0/pyproject.toml").contains("beta"),
        "up synced"
    );
    let check = sb.run(&["check"]);
    assert!(check.status.success(), "{}", stderr(&check));

    let before = kill_a_sync("\"alpha\"");
    let out = sb
        .cmd(&["up", "--no-sync"])
        .env("UV_OFFLINE", "1")
        .output()
        .unwrap();
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert!(e.contains("it was rolled back before this command"), "{e}");
    assert!(o.contains("s0 ran"), "{o}\n{e}");
    assert!(!journal_pending(&sb), "journal left:\n{e}");
    let changed: Vec<String> = diff(&before, &tree(&sb.root))
        .into_iter()
        .filter(ours)
        .collect();
    assert!(changed.is_empty(), "not as before:\n{}", changed.join("\n"));
}

/// A tmpfs of a few megabytes mounted for one test (as root), unmounted
/// when dropped: a disk that fills up.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl SmallDisk {
    /// `None`, with the reason printed, where mounting is impossible (not
    /// root, no tmpfs); under `CI=true` that fails the test instead.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().canonicalize().unwrap().join("disk");
        std::fs::create_dir(&mnt).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&mnt)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(SmallDisk { _dir: dir, mnt }),
            Ok(o) => stderr(&o),
            Err(e) => e.to_string(),
        };
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the disk-full test needs `mount -t tmpfs` (root) under CI=true: {why}");
        }
        eprintln!("skipping: cannot mount a small tmpfs: {}", why.trim());
        None
    }

    /// Fills the disk but for about `keep` bytes.
    fn fill(&self, keep: u64) {
        let free = fs_free(&self.mnt);
        let n = free.saturating_sub(keep) as usize;
        std::fs::write(self.mnt.join("ballast"), vec![0x5a_u8; n]).unwrap();
    }

    fn empty_again(&self) {
        std::fs::remove_file(self.mnt.join("ballast")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mnt)
            .status();
    }
}

fn fs_free(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a zeroed statvfs filled in by the call on success.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut s), 0);
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

/// A sync that fills the disk (`python3 -m venv` of a new service, uv and
/// pip writing into environments on a full tmpfs): a clear error naming
/// the cause, exit 1, and nothing half-written: the journal rolled back
/// (the new venv removed, the edited files byte for byte as before,
/// `hsm.lock` and the compose file untouched). With space again, the next
/// sync succeeds and check is clean.
#[test]
fn a_sync_that_fills_the_disk_fails_clearly_and_rolls_back() {
    if !require("uv") || !require("venv") {
        return;
    }
    let Some(disk) = SmallDisk::mount("64m") else {
        return;
    };
    let template = Sandbox::new();
    template.root_pyproject("");
    template.uv_service("services/s0", "");
    let root = disk.mnt.join("ws");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&template.root)
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let sb = Sandbox::at(root);
    let wheels = sb.path("wheels");
    sb.write(
        "services/vv/requirements.txt",
        &format!(
            "--no-index\n--find-links {}\nbeta==2.0.0\n",
            wheels.display()
        ),
    );
    let manifest = |b: bool| {
        let mut m = format!(
            "[services]\nstandalone = [\"s0\", \"pg\"{}]\n[registry.services.s0]\ndependencies = [{}]\n[registry.services.s0.sources.prod]\ntype = \"local\"\npath = \"services/s0\"\n[registry.services.s0.deployment-profiles.default]\nruntime = \"uv\"\n",
            if b { ", \"vv\"" } else { "" },
            if b { "\"alpha\", \"beta\"" } else { "\"alpha\"" },
        );
        m.push_str(&format!(
            "[registry.services.pg]\nports = [\"{}:5432\"]\n[registry.services.pg.sources.prod]\ntype = \"docker-image\"\nimage = \"postgres:16\"\n",
            if b { 5433 } else { 5432 }
        ));
        m.push_str("[registry.services.vv.sources.prod]\ntype = \"local\"\npath = \"services/vv\"\n[registry.services.vv.deployment-profiles.default]\nruntime = \"venv\"\n");
        m
    };
    sb.write("hsm.toml", &manifest(false));
    sb.sync(&[]);
    sb.write("hsm.toml", &manifest(true));
    let before = tree(&sb.root);
    let (lock, compose) = (sb.read("hsm.lock"), sb.read("docker-compose.hsm.yml"));

    // Room for the journal and the small edits, not for a venv with pip.
    disk.fill(3 << 20);
    let out = sb.run(&["sync"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("is full"), "{err}");
    assert!(err.contains("free some space"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert!(
        err.contains("services/vv/.venv"),
        "the new venv, removed:\n{err}"
    );
    assert!(!journal_pending(&sb), "journal left:\n{err}");
    assert!(!sb.exists("services/vv/.venv"), "{err}");
    assert_eq!(sb.read("hsm.lock"), lock);
    assert_eq!(sb.read("docker-compose.hsm.yml"), compose);
    let changed: Vec<String> = diff(&before, &tree(&sb.root))
        .into_iter()
        .filter(|d| !d.ends_with("ballast"))
        .collect();
    assert!(
        changed.is_empty(),
        "not as before:\n{}\n{err}",
        changed.join("\n")
    );

    disk.empty_again();
    let out = sb.run(&["sync"]);
    assert!(
        out.status.success(),
        "sync with space again:\n{}",
        stderr(&out)
    );
    let check = sb.run(&["check"]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
}
