//! `cargo_hsm::build` from real build scripts: a real `cargo build` of a
//! copy of `examples/build-script/`, with this crate as a path
//! build-dependency (`default-features = false`).
//!
//! Every build uses one target directory under this repo's `target/`, so
//! this crate and its dependencies compile once for all tests and runs.

mod sync_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use sync_support::{require, Sandbox};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Copies the example's tracked files (no `target/`, `.venv`, `.hsm/`),
/// points its path dependency at this crate, and reuses this repo's
/// `Cargo.lock` so `--offline` resolves to the versions already built.
fn copy_example(sb: &Sandbox) {
    fn copy(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().to_string();
            if matches!(name.as_str(), "target" | ".venv" | ".hsm" | "__pycache__") {
                continue;
            }
            let dst = to.join(&name);
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(&dst).unwrap();
                copy(&entry.path(), &dst);
            } else {
                std::fs::copy(entry.path(), &dst).unwrap();
            }
        }
    }
    copy(&repo().join("examples/build-script"), &sb.root);
    let manifest = sb.read("crates/app/Cargo.toml");
    let rewritten = manifest.replace(
        "path = \"../../../..\"",
        &format!("path = {:?}", repo().to_str().unwrap()),
    );
    assert_ne!(manifest, rewritten, "the example's path dependency moved");
    sb.write("crates/app/Cargo.toml", &rewritten);
    std::fs::copy(repo().join("Cargo.lock"), sb.path("Cargo.lock")).unwrap();
}

/// A second crate like `app`, with the same build script.
fn add_crate(sb: &Sandbox, name: &str) {
    sb.write(
        &format!("crates/{name}/Cargo.toml"),
        &sb.read("crates/app/Cargo.toml")
            .replace("name = \"app\"", &format!("name = \"{name}\"")),
    );
    sb.write(
        &format!("crates/{name}/build.rs"),
        &sb.read("crates/app/build.rs"),
    );
    sb.write(&format!("crates/{name}/src/lib.rs"), "");
}

fn target_dir() -> PathBuf {
    repo().join("target").join("build-script-tests")
}

/// `cargo build -vv --offline` in the sandbox: `-v` prints `Running` for a
/// build script that runs and `Fresh` for one that does not; `-vv` shows the
/// build scripts' output lines (`[app 0.1.0] hsm: ...`).
fn cargo_build(sb: &Sandbox, mode: Option<&str>, extra: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["build", "-vv", "--offline", "--color", "never"])
        .args(extra)
        .current_dir(&sb.root)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        .env_remove("VIRTUAL_ENV")
        .env_remove("UV_PROJECT_ENVIRONMENT")
        .env_remove("CARGO_HSM_BUILD")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    if let Some(m) = mode {
        c.env("CARGO_HSM_BUILD", m);
    }
    if let Some(py) = python_exe() {
        c.env("UV_PYTHON", py);
    }
    c
}

fn python_exe() -> Option<String> {
    let o = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Cargo's stderr, then its stdout (where `-vv` puts build scripts' lines).
fn build(sb: &Sandbox, mode: Option<&str>) -> (Output, String) {
    let o = cargo_build(sb, mode, &[]).output().unwrap();
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    (o, err)
}

fn build_ok(sb: &Sandbox, mode: Option<&str>) -> String {
    let (o, err) = build(sb, mode);
    assert!(o.status.success(), "cargo build failed:\n{err}");
    err
}

/// How many times a build ran `app`'s build script (not compiled it, and
/// not a dependency's: a cold target dir runs those too).
fn script_runs(cargo_stderr: &str) -> usize {
    cargo_stderr
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("Running `")
                && l.ends_with("/build-script-build`")
                && l.contains("/build/app-")
        })
        .count()
}

/// The build scripts' sync progress: `(crate, verb, message)`.
fn hsm_lines(cargo_stderr: &str) -> Vec<(String, String)> {
    cargo_stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (krate, line) = rest.split_once("] ")?;
            let progress = line.strip_prefix("hsm: ")?;
            Some((
                krate.split(' ').next().unwrap().to_string(),
                progress.trim().to_string(),
            ))
        })
        .collect()
}

fn touch(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now()).unwrap();
}

#[test]
fn example_build_syncs_once_reruns_on_manifest_change_and_check_fails_when_stale() {
    if !require("uv") {
        return;
    }
    let sb = Sandbox::new();
    copy_example(&sb);
    let locks = [sb.read("hsm.lock"), sb.read("python/greeter/uv.lock")];

    // 1. Sync mode (the example's choice) materializes the service.
    let t = Instant::now();
    let err = build_ok(&sb, None);
    eprintln!("first build: {:?}", t.elapsed());
    assert_eq!(script_runs(&err), 1, "{err}");
    let lines = hsm_lines(&err);
    assert!(
        lines
            .iter()
            .any(|(k, l)| k == "app" && l.starts_with("Syncing greeter (uv")),
        "no sync of greeter in:\n{err}"
    );
    assert!(sb.exists("python/greeter/.venv/pyvenv.cfg"));
    // The committed lock files were right: sync wrote neither, so they
    // are not newer than the build script's run.
    assert_eq!(
        locks,
        [sb.read("hsm.lock"), sb.read("python/greeter/uv.lock")]
    );
    let output = std::fs::read_dir(target_dir().join("debug/build"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("output"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.contains(&format!("{}/hsm.toml", sb.root.display())))
        })
        .collect::<Vec<_>>();
    assert_eq!(output.len(), 1, "one build script output names this copy");
    let directives = std::fs::read_to_string(&output[0]).unwrap();
    let rerun: Vec<&str> = directives
        .lines()
        .filter_map(|l| l.strip_prefix("cargo:rerun-if-changed="))
        .collect();
    let root = sb.root.to_str().unwrap();
    let want: Vec<String> = [
        "Cargo.toml",
        "hsm.lock",
        "hsm.toml",
        "python/greeter/pyproject.toml",
        "python/greeter/uv.lock",
    ]
    .iter()
    .map(|f| format!("{root}/{f}"))
    .collect();
    assert_eq!(rerun, want, "{directives}");
    assert!(directives.contains("cargo:rerun-if-env-changed=CARGO_HSM_BUILD\n"));

    // 2. Nothing changed: the build script does not run.
    let err = build_ok(&sb, None);
    assert_eq!(script_runs(&err), 0, "{err}");
    assert!(err.contains("Fresh app v0.1.0"), "{err}");

    // 3. The manifest changed: it runs, and finds the work done.
    touch(&sb.path("hsm.toml"));
    let err = build_ok(&sb, None);
    assert_eq!(script_runs(&err), 1, "{err}");
    let lines = hsm_lines(&err);
    assert!(!lines.is_empty(), "{err}");
    assert!(
        lines.iter().all(|(_, l)| l.starts_with("Fresh ")),
        "a second sync did work: {lines:?}"
    );

    // 4. Check mode on a fresh environment passes (the changed variable
    //    re-runs the script).
    let err = build_ok(&sb, Some("check"));
    assert_eq!(script_runs(&err), 1, "{err}");
    assert!(hsm_lines(&err).is_empty(), "check mode synced:\n{err}");

    // 5. Check mode on a stale environment fails the build with what is
    //    stale and the command to run, and writes nothing.
    std::fs::remove_dir_all(sb.path("python/greeter/.venv")).unwrap();
    touch(&sb.path("hsm.toml"));
    let (o, err) = build(&sb, Some("check"));
    assert!(!o.status.success(), "a stale environment built:\n{err}");
    for needle in [
        "service:greeter [venv-missing]",
        "is stale: 1 finding",
        "error: app@0.1.0:   help: run `cargo hsm sync` in",
        "error: app@0.1.0: the Python environment of workspace",
        "error: build script logged errors",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!sb.exists("python/greeter/.venv"), "check mode wrote");

    // 6. A bad override is a readable error, not a panic.
    let (o, err) = build(&sb, Some("sometimes"));
    assert!(!o.status.success());
    assert!(
        err.contains("CARGO_HSM_BUILD=`sometimes` is not one of `off`, `check`, `sync`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // 7. Back to sync mode: the build repairs the environment.
    let err = build_ok(&sb, None);
    assert!(sb.exists("python/greeter/.venv/pyvenv.cfg"), "{err}");

    // 8. A sync that writes one of its own inputs (here `hsm.lock`) is run
    //    once more by Cargo, which finds it newer than the run's start; that
    //    run writes nothing, and the build after it is fresh.
    std::fs::remove_file(sb.path("hsm.lock")).unwrap();
    touch(&sb.path("hsm.toml"));
    let err = build_ok(&sb, None);
    assert!(
        hsm_lines(&err).iter().any(|(_, l)| l == "Writing hsm.lock"),
        "{err}"
    );
    let err = build_ok(&sb, None);
    assert_eq!(script_runs(&err), 1, "{err}");
    let lines = hsm_lines(&err);
    assert!(
        !lines.is_empty() && lines.iter().all(|(_, l)| l.starts_with("Fresh ")),
        "{lines:?}"
    );
    let err = build_ok(&sb, None);
    assert_eq!(script_runs(&err), 0, "{err}");
}

/// Two crates whose build scripts both sync, built with `-j 2` while this
/// test holds hsm's lock: both scripts wait on it, then one does the work
/// and the other finds it done.
#[test]
fn two_build_scripts_serialise_through_the_sync_lock() {
    if !require("uv") {
        return;
    }
    let sb = Sandbox::new();
    copy_example(&sb);
    add_crate(&sb, "second");
    // Not `app`: Cargo keys a workspace member's build-script unit by its
    // name and path inside the workspace, so the other test's `app` (same
    // target dir) would count as this one's, fresh, and not run.
    sb.write(
        "crates/app/Cargo.toml",
        &sb.read("crates/app/Cargo.toml")
            .replace("name = \"app\"", "name = \"first\""),
    );
    let root = camino::Utf8PathBuf::from_path_buf(sb.root.clone()).unwrap();
    let held = cargo_hsm::materialize::acquire_sync_lock(&root, &mut |_| {
        panic!("nothing else holds the lock yet")
    })
    .unwrap();

    let mut child = cargo_build(&sb, None, &["-j", "2"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // `-vv` streams build scripts' lines on cargo's stdout, as they come.
    let (tx, rx) = mpsc::channel::<String>();
    let tx2 = tx.clone();
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        }),
    ];
    let mut log = String::new();
    let mut blocked = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while blocked.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some((k, l)) = hsm_lines(&line).pop() {
                    if l.starts_with("Blocking ") {
                        blocked.insert(k);
                    }
                }
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("both build scripts should wait for the lock; they did not:\n{log}");
            }
        }
    }
    drop(held);
    let status = child.wait().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    log.extend(rx.try_iter().map(|l| l + "\n"));
    assert!(status.success(), "cargo build -j 2 failed:\n{log}");
    assert_eq!(
        blocked.into_iter().collect::<Vec<_>>(),
        ["first", "second"],
        "{log}"
    );

    let lines = hsm_lines(&log);
    let syncs: Vec<&(String, String)> = lines
        .iter()
        .filter(|(_, l)| l.starts_with("Syncing "))
        .collect();
    assert_eq!(syncs.len(), 1, "the work happens once:\n{log}");
    let first = &syncs[0].0;
    let second: Vec<&String> = lines
        .iter()
        .filter(|(k, l)| k != first && !l.starts_with("Blocking "))
        .map(|(_, l)| l)
        .collect();
    assert!(
        !second.is_empty() && second.iter().all(|l| l.starts_with("Fresh ")),
        "the second build script should find the work done: {second:?}\n{log}"
    );
    assert!(sb.exists("python/greeter/.venv/pyvenv.cfg"));
}
