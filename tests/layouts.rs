//! Real Python project layouts as services, in the uv and venv runtimes:
//! each case is a synthetic upstream built by its real backend from PyPI
//! (setuptools, setuptools_scm, hatchling + hatch-vcs, flit_core,
//! poetry-core 1.x and 2.x, pdm-backend, maturin with a PyO3 crate built
//! by the machine's cargo), driven by real uv and real `python3 -m venv` +
//! pip. The expected outcome is written beside each
//! case: `Install` (sync and check pass, and check catches every kind of
//! drift) or `Refuse` (exit 2, and the error names the fix).
//!
//! The backends are downloaded from PyPI once per machine (see
//! `layouts_support::backends`); everything else is offline.
//!
//! CI runs one representative case per failure class; the rest of the
//! matrix is `#[ignore]`d to keep CI short. The whole matrix:
//! `cargo test --test layouts -- --include-ignored`.

mod layouts_support;
mod sync_support;

use std::process::Output;

use layouts_support::*;
use serde_json::Value;
use sync_support::{names, require, stderr, stdout, sync_actions, Sandbox};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Install,
    Refuse,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Src {
    Git,
    Local,
}

fn run(sb: &Sandbox, args: &[&str]) -> Output {
    hsm(sb, args).output().unwrap()
}

fn sync_ok(sb: &Sandbox, args: &[&str]) -> Output {
    let mut a = vec!["sync"];
    a.extend_from_slice(args);
    let o = run(sb, &a);
    assert!(
        o.status.success(),
        "sync {args:?} failed ({:?}):\n{}",
        o.status.code(),
        stderr(&o)
    );
    o
}

fn check_json(sb: &Sandbox) -> (Option<i32>, Value) {
    let o = run(sb, &["check", "--message-format", "json"]);
    let v: Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    (o.status.code(), v)
}

fn assert_clean(sb: &Sandbox, when: &str) {
    let (code, v) = check_json(sb);
    assert_eq!(code, Some(0), "check after {when} not clean: {v:#}");
}

fn manifest(source: &str, runtime: &str, extra: &str) -> String {
    format!(
        r#"[libraries]
standalone = ["beta"]

[services]
standalone = ["svc"]

[registry.libraries.beta.sources.prod]
type = "pypi"
version = "==2.0.0"

[registry.services.svc]
dependencies = ["delta==1.0"]
{extra}
[registry.services.svc.sources.prod]
{source}

[registry.services.svc.deployment-profiles.default]
runtime = "{runtime}"
"#
    )
}

fn git_source(url: &str, tag: &str) -> String {
    format!("type = \"git\"\nurl = \"{url}\"\nref = \"{tag}\"\n")
}

/// A sandbox with a root project, the service's upstream and the manifest.
/// Returns the sandbox and the service's target path.
fn sandbox(layout: &Layout, runtime: &str, src: Src) -> (Sandbox, String) {
    let sb = Sandbox::new();
    sb.root_pyproject("");
    let source = match src {
        Src::Git => {
            let url = git_upstream(&sb, "svc", layout, &["v1.0.0", "v1.1.0"]);
            git_source(&url, "v1.0.0")
        }
        Src::Local => {
            (layout.write)(&sb.path("components/svc"), "1.0.0");
            "type = \"local\"\npath = \"components/svc\"\n".to_string()
        }
    };
    sb.write("hsm.toml", &manifest(&source, runtime, ""));
    let target = match src {
        Src::Git => "services/svc",
        Src::Local => "components/svc",
    };
    (sb, target.to_string())
}

fn tools_ok() -> bool {
    require("uv") && require("git") && require("venv")
}

/// The whole protocol for one layout in one runtime.
fn case(layout: &Layout, runtime: &str, src: Src, expect: Expect) {
    case_in(layout, runtime, src, expect, None);
}

/// [`case`], optionally for a member of the upstream at `subdirectory`
/// (`(subdirectory, its distribution)`). Returns the sandbox and the
/// service's target path after an `Install` case, for further checks.
fn case_in(
    layout: &Layout,
    runtime: &str,
    src: Src,
    expect: Expect,
    sub: Option<(&str, &'static str)>,
) -> Option<(Sandbox, String)> {
    if !tools_ok() {
        return None;
    }
    let (sb, mut target) = sandbox(layout, runtime, src);
    let mut layout_dist = layout.dist;
    if let Some((dir, dist)) = sub {
        let text = sb.read("hsm.toml").replace(
            "ref = \"v1.0.0\"",
            &format!("ref = \"v1.0.0\"\nsubdirectory = \"{dir}\""),
        );
        sb.write("hsm.toml", &text);
        target = format!("{target}/{dir}");
        layout_dist = dist;
    }
    let layout = &Layout {
        dist: layout_dist,
        ..*layout
    };
    let first = run(&sb, &["sync"]);
    if expect == Expect::Refuse {
        let err = stderr(&first);
        assert_eq!(first.status.code(), Some(2), "{}: {err}", layout.name);
        assert!(err.contains("runtime = \"venv\""), "{}: {err}", layout.name);
        assert!(!sb.exists(&format!("{target}/.venv")), "{err}");
        return None;
    }
    assert!(
        first.status.success(),
        "{} ({runtime}): sync failed ({:?}):\n{}",
        layout.name,
        first.status.code(),
        stderr(&first)
    );
    assert_clean(&sb, "the first sync");

    // The project and its dependencies in the service's venv, none in the root's.
    let inst = sb.installed(&target);
    for want in [layout.dist, "alpha", "gamma", "delta"] {
        assert!(names(&inst).contains(&want), "{}: {inst:?}", layout.name);
    }
    assert!(!names(&inst).contains(&"beta"), "{inst:?}");
    let root = sb.installed(".");
    for not in [layout.dist, "alpha", "gamma"] {
        assert!(!names(&root).contains(&not), "root has {not}: {root:?}");
    }
    assert!(names(&root).contains(&"beta"), "{root:?}");

    // A second sync has nothing to do.
    let again = sync_ok(&sb, &["-v"]);
    assert!(
        stderr(&again).contains("Fresh svc"),
        "{}: {}",
        layout.name,
        stderr(&again)
    );

    // Drift of every kind: an extra package, a missing one, a wrong
    // version; then the project itself gone (a missing project hides what
    // it requires, so that round is separate).
    let old = wheel_into(&sb, "wheels-old", "delta", "0.9");
    let beta = sb.path("wheels/beta-2.0.0-py3-none-any.whl");
    uv_pip(
        &sb,
        &target,
        &["install", "--no-deps", beta.to_str().unwrap()],
    );
    uv_pip(
        &sb,
        &target,
        &["install", "--no-deps", old.to_str().unwrap()],
    );
    uv_pip(&sb, &target, &["uninstall", "gamma"]);
    let (code, v) = check_json(&sb);
    assert_eq!(code, Some(1), "{v:#}");
    let has = |v: &Value, kind: &str, pkg: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == kind && f["package"].as_str().unwrap_or("") == pkg)
    };
    assert!(has(&v, "package-extra", "beta"), "{}: {v:#}", layout.name);
    assert!(
        has(&v, "package-missing", "gamma"),
        "{}: {v:#}",
        layout.name
    );
    assert!(
        has(&v, "package-wrong-version", "delta"),
        "{}: {v:#}",
        layout.name
    );
    uv_pip(&sb, &target, &["uninstall", layout.dist]);
    let (code, v) = check_json(&sb);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(
        has(&v, "package-missing", layout.dist)
            || has(&v, "package-missing", "the service's own project"),
        "{}: the project itself missing is drift: {v:#}",
        layout.name
    );
    // One sync repairs all of it.
    sync_ok(&sb, &[]);
    assert_clean(&sb, "the repairing sync");
    let inst = sb.installed(&target);
    assert!(names(&inst).contains(&layout.dist) && !names(&inst).contains(&"beta"));

    // Moving the ref: the new commit's version is what gets installed.
    if src == Src::Git && sub.is_none() {
        let text = sb.read("hsm.toml").replace("v1.0.0", "v1.1.0");
        sb.write("hsm.toml", &text);
        sync_ok(&sb, &[]);
        assert_clean(&sb, "moving the ref");
        let inst = sb.installed(&target);
        let v = inst
            .iter()
            .find(|(n, _)| n == layout.dist)
            .map(|(_, v)| v.clone());
        // A version from the tag carries a local part when hsm's entries
        // (the service's `dependencies`) touched the checkout's pyproject.
        let v = v.unwrap_or_default();
        assert!(
            v == "1.1.0" || layout.from_tag && v.starts_with("1.1"),
            "{}: {inst:?}",
            layout.name
        );
    }
    Some((sb, target))
}

// setuptools ------------------------------------------------------------------
/// venv: Install (pip runs setup.py; the project is recognised by its direct_url.json).
#[test]
fn setup_py_only_venv() {
    case(&SETUP_PY_ONLY, "venv", Src::Git, Expect::Install);
}

/// uv: Refuse (no pyproject.toml: use runtime venv).
#[test]
fn setup_py_only_uv_refuses() {
    case(&SETUP_PY_ONLY, "uv", Src::Local, Expect::Refuse);
}

/// venv: Install (setup.cfg metadata, src layout).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn setup_cfg_venv() {
    case(&SETUP_CFG, "venv", Src::Local, Expect::Install);
}

/// uv: Refuse (pyproject.toml without `[project]`).
#[test]
fn setup_cfg_uv_refuses() {
    case(&SETUP_CFG, "uv", Src::Local, Expect::Refuse);
}

/// uv: Install (src layout, git source, ref moved).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn setuptools_pyproject_uv() {
    case(&SETUPTOOLS_PYPROJECT, "uv", Src::Git, Expect::Install);
}

/// venv: Install (src layout, local editable source).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn setuptools_pyproject_venv() {
    case(&SETUPTOOLS_PYPROJECT, "venv", Src::Local, Expect::Install);
}

// dynamic versions ------------------------------------------------------------
/// uv: Install (uv.lock has no version for the root: any built version).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn setuptools_scm_uv() {
    case(&SETUPTOOLS_SCM, "uv", Src::Git, Expect::Install);
}

/// venv: Install (version from the tag).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn setuptools_scm_venv() {
    case(&SETUPTOOLS_SCM, "venv", Src::Git, Expect::Install);
}

/// uv: Install (hatchling + hatch-vcs, flat layout, ref moved).
#[test]
fn hatch_vcs_uv() {
    case(&HATCH_VCS, "uv", Src::Git, Expect::Install);
}

/// venv: Install.
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn hatch_vcs_venv() {
    case(&HATCH_VCS, "venv", Src::Git, Expect::Install);
}

// other backends --------------------------------------------------------------
/// uv: Install (`__version__`, dynamic; flat layout).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn flit_core_uv() {
    case(&FLIT, "uv", Src::Git, Expect::Install);
}

/// venv: Install.
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn flit_core_venv() {
    case(&FLIT, "venv", Src::Local, Expect::Install);
}

/// venv: Install (Poetry 1.x: no `[project]`, pip builds it).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn poetry_core_1_venv() {
    case(&POETRY_1, "venv", Src::Git, Expect::Install);
}

/// uv: Refuse (no `[project]`: use runtime venv).
#[test]
fn poetry_core_1_uv_refuses() {
    case(&POETRY_1, "uv", Src::Local, Expect::Refuse);
}

/// uv: Install.
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn poetry_core_2_uv() {
    case(&POETRY_2, "uv", Src::Local, Expect::Install);
}

/// venv: Install.
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn poetry_core_2_venv() {
    case(&POETRY_2, "venv", Src::Git, Expect::Install);
}

/// uv: Install.
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn pdm_backend_uv() {
    case(&PDM, "uv", Src::Local, Expect::Install);
}

/// venv: Install.
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn pdm_backend_venv() {
    case(&PDM, "venv", Src::Local, Expect::Install);
}

// maturin + PyO3 ---------------------------------------------------------------

/// Where the inner cargo build of a maturin case puts `target/`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CargoTarget {
    /// One directory shared by every case (and run): see
    /// `layouts_support::shared_cargo_target`.
    Shared,
    /// cargo's default, `target/` inside the checkout, as a user gets it.
    InCheckout,
}

/// Removes `hsm.locks/svc/Cargo.lock`: `sync --locked` is then refused
/// (exit 1, naming the file) before anything builds, and changes nothing.
fn locked_without_the_kept_cargo_lock_is_refused(sb: &Sandbox) {
    std::fs::remove_file(sb.path("hsm.locks/svc/Cargo.lock")).unwrap();
    let lock_before = sb.read("hsm.lock");
    let o = run(sb, &["sync", "--locked"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "`--locked` needs the `Cargo.lock` of service `svc` in `hsm.locks/svc/Cargo.lock`"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(sb.read("hsm.lock"), lock_before);
}

/// The whole protocol for a git-sourced maturin/PyO3 upstream inside the
/// sandbox's Cargo workspace (a Rust monorepo), built by the machine's
/// cargo, one job at a time. Then: the extension module imports and was
/// rebuilt from the moved ref's source, the build's `target/` and
/// `Cargo.lock` in the checkout are neither local work nor drift, and the
/// root workspace's `Cargo.toml` keeps the checkout out of it.
fn maturin_case(runtime: &str, cargo_target: CargoTarget) {
    if !tools_ok() || !require("cargo") {
        return;
    }
    maturin_backend();
    let dir = match cargo_target {
        CargoTarget::Shared => Some(shared_cargo_target().display().to_string()),
        CargoTarget::InCheckout => None,
    };
    EXTRA_ENV.with(|e| {
        *e.borrow_mut() = vec![
            ("CARGO_TARGET_DIR", dir),
            ("CARGO_BUILD_JOBS", Some("1".into())),
        ]
    });
    let Some((sb, target)) = case_in(&MATURIN_PYO3, runtime, Src::Git, Expect::Install, None)
    else {
        return;
    };
    let python = sb.path(&format!("{target}/.venv/bin/python"));
    let o = std::process::Command::new(&python)
        .args(["-c", "import rust_ext; print(rust_ext.version())"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "1.1.0",
        "the moved ref's source was built"
    );
    assert!(sb.exists(&format!("{target}/Cargo.lock")));
    if cargo_target == CargoTarget::InCheckout {
        assert!(sb.exists(&format!("{target}/target")));
    }
    // The upstream commits no `Cargo.lock`: hsm keeps the one cargo wrote.
    let kept = "hsm.locks/svc/Cargo.lock";
    assert_eq!(sb.read(kept), sb.read(&format!("{target}/Cargo.lock")));
    // `--locked` without it: refused before any build, nothing changed.
    let bytes = sb.read(kept);
    locked_without_the_kept_cargo_lock_is_refused(&sb);
    sb.write(kept, &bytes);
    if cargo_target == CargoTarget::InCheckout {
        // A fresh clone of the monorepo: the checkout and its build are
        // gone. `--locked` clones again, puts the kept `Cargo.lock` back and
        // has cargo build from it as it is (maturin gets `--locked`).
        std::fs::remove_dir_all(sb.path(&target)).unwrap();
        sync_ok(&sb, &["--locked"]);
        assert_eq!(sb.read(&format!("{target}/Cargo.lock")), bytes);
        assert_eq!(sb.read(kept), bytes);
        assert_clean(&sb, "a locked sync from the kept Cargo.lock");
    }
    // A commit that changes only the Rust source (same version in
    // `pyproject.toml` and `Cargo.toml`): uv alone would keep the old build.
    // Without service `dependencies` first, so that hsm's entries do not
    // rewrite the checkout's `pyproject.toml` (which would make uv rebuild).
    let text = sb
        .read("hsm.toml")
        .replace("dependencies = [\"delta==1.0\"]\n", "");
    sb.write("hsm.toml", &text);
    sync_ok(&sb, &[]);
    let work = "remotes/svc-work";
    let lib = sb.read(&format!("{work}/src/lib.rs"));
    sb.write(
        &format!("{work}/src/lib.rs"),
        &lib.replace("\"1.1.0\"", "\"1.1.0, patched\""),
    );
    sb.git(work, &["commit", "-q", "-am", "patch"]);
    sb.git(work, &["tag", "v1.1.1"]);
    let bare = sb.path("remotes/svc.git");
    sb.git(work, &["push", "-q", bare.to_str().unwrap(), "v1.1.1"]);
    let text = sb.read("hsm.toml").replace("v1.1.0", "v1.1.1");
    sb.write("hsm.toml", &text);
    sync_ok(&sb, &[]);
    let o = std::process::Command::new(&python)
        .args(["-c", "import rust_ext; print(rust_ext.version())"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o).trim(), "1.1.0, patched", "{}", stderr(&o));
    assert_clean(&sb, "a source-only change");

    let cargo = sb.read("Cargo.toml");
    assert!(cargo.contains("\"services/svc\""), "{cargo}");
    // A second sync changes nothing, and the check stays clean.
    let again = sync_ok(&sb, &["-v"]);
    assert!(stderr(&again).contains("Fresh svc"), "{}", stderr(&again));
    assert_eq!(sb.read("Cargo.toml"), cargo);
    assert_clean(&sb, "the last sync");
}

/// uv: Install (`uv sync` builds the extension module with maturin; the
/// cheap representative that CI runs: shared inner target dir).
#[test]
fn maturin_pyo3_uv() {
    maturin_case("uv", CargoTarget::Shared);
}

/// venv: Install (`pip install .` builds it; `target/` in the checkout).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn maturin_pyo3_venv_target_in_checkout() {
    maturin_case("venv", CargoTarget::InCheckout);
}

/// uv: Install, with `target/` in the checkout.
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn maturin_pyo3_uv_target_in_checkout() {
    maturin_case("uv", CargoTarget::InCheckout);
}

/// venv, git source at a branch: after the branch gains a commit that
/// changes only the code (same version) and the lock entry is removed
/// (which lets the pin move), the checkout moves and the next sync
/// reinstalls the project (pip copies it into site-packages), though the
/// manifest and the project's files that decide freshness stay the same.
#[test]
fn a_checkout_moved_to_another_commit_is_installed_again() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    sb.root_pyproject("");
    let url = git_upstream(&sb, "svc", &SETUPTOOLS_PYPROJECT, &["v1.0.0"]);
    sb.write("hsm.toml", &manifest(&git_source(&url, "main"), "venv", ""));
    sync_ok(&sb, &[]);
    let work = "remotes/svc-work";
    sb.write(
        &format!("{work}/src/st_app/__init__.py"),
        "def hello():\n    return 'new'\n",
    );
    sb.git(work, &["commit", "-q", "-am", "code only"]);
    let bare = sb.path("remotes/svc.git");
    sb.git(work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    std::fs::remove_file(sb.path("hsm.lock")).unwrap();
    let o = sync_ok(&sb, &["-v"]);
    assert!(stderr(&o).contains("Syncing svc"), "{}", stderr(&o));
    let python = sb.path("services/svc/.venv/bin/python");
    let o = std::process::Command::new(&python)
        .args(["-c", "import st_app; print(st_app.hello())"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o).trim(), "new", "{}", stderr(&o));
    assert_clean(&sb, "the moved checkout");
}

/// The command of the `sync` action for service `svc` in sync's JSON report.
fn svc_sync_command(o: &Output) -> Option<String> {
    let v: Value =
        serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)));
    v["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["action"] == "sync" && a["component"] == "service:svc")
        .map(|a| a["command"].as_str().expect("a command").to_string())
}

/// uv, git source: the dry run shows the `uv sync` that sync then runs,
/// `--reinstall-package` included exactly when the checkout moves (issue
/// 14's invariant: the dry run's actions are sync's).
#[test]
fn the_dry_run_shows_the_uv_sync_that_sync_runs() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    sb.root_pyproject("");
    let url = git_upstream(&sb, "svc", &SETUPTOOLS_PYPROJECT, &["v1.0.0", "v1.1.0"]);
    sb.write("hsm.toml", &manifest(&git_source(&url, "v1.0.0"), "uv", ""));
    sync_ok(&sb, &[]);
    let json = ["--message-format", "json"];
    let dry_then_real = |sb: &Sandbox| {
        let dry = svc_sync_command(&sync_ok(sb, &["--dry-run", json[0], json[1]]));
        let real = svc_sync_command(&sync_ok(sb, &json));
        let (dry, real) = (
            dry.expect("the dry run syncs svc"),
            real.expect("sync syncs svc"),
        );
        // sync adds which uv ran: `(<path> …)`.
        assert!(
            real.starts_with(&format!("{dry} (")),
            "dry run: {dry}\nsync:    {real}"
        );
        dry
    };
    // The ref moves: uv must rebuild the project, and the dry run says so.
    let text = sb.read("hsm.toml").replace("v1.0.0", "v1.1.0");
    sb.write("hsm.toml", &text);
    let dry = dry_then_real(&sb);
    assert_eq!(dry, "uv sync --reinstall-package st-app");
    // Only the service's dependencies change: the checkout stays, no reinstall.
    let text = sb.read("hsm.toml").replace("delta==1.0", "delta");
    sb.write("hsm.toml", &text);
    let dry = dry_then_real(&sb);
    assert_eq!(dry, "uv sync");
    assert_clean(&sb, "the dependency change");
}

/// setuptools beside a Rust crate whose upstream commits no `Cargo.lock`:
/// its `setup.py` writes one, as cargo does in a maturin build, when there
/// is none (cargo keeps the one it finds while it still fits).
const SETUPTOOLS_WITH_CRATE: Layout = Layout {
    name: "setuptools-with-crate",
    dist: "st-app",
    write: |d, v| {
        (SETUPTOOLS_PYPROJECT.write)(d, v);
        std::fs::write(
            d.join("Cargo.toml"),
            "[package]\nname = \"ext\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("setup.py"),
            "import pathlib\nlock = pathlib.Path(__file__).with_name('Cargo.lock')\nif not lock.exists():\n    lock.write_text('# written by the build\\n')\nfrom setuptools import setup\nsetup()\n",
        )
        .unwrap();
    },
    from_tag: false,
    uv_refuses: false,
};

/// uv, git source, a crate whose upstream commits no `Cargo.lock`: the one
/// the build wrote is kept in `hsm.locks/svc/`; a changed kept one (a
/// teammate's update) is put back into the checkout and the project
/// rebuilt, which the dry run predicts action for action; `--locked`
/// without it is refused before anything runs.
#[test]
fn a_crate_lock_is_kept_put_back_and_predicted() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    sb.root_pyproject("");
    let url = git_upstream(&sb, "svc", &SETUPTOOLS_WITH_CRATE, &["v1.0.0"]);
    sb.write("hsm.toml", &manifest(&git_source(&url, "v1.0.0"), "uv", ""));
    let o = sync_ok(&sb, &[]);
    let kept = "hsm.locks/svc/Cargo.lock";
    assert_eq!(sb.read(kept), "# written by the build\n", "{}", stderr(&o));
    assert_clean(&sb, "the first sync");

    sb.write(kept, "# updated by a teammate\n");
    let json = ["--message-format", "json"];
    let dry = sync_ok(&sb, &["--dry-run", json[0], json[1]]);
    let real = sync_ok(&sb, &json);
    assert_eq!(sync_actions(&dry), sync_actions(&real));
    let (d, r) = (
        svc_sync_command(&dry).unwrap(),
        svc_sync_command(&real).unwrap(),
    );
    assert_eq!(d, "uv sync --reinstall-package st-app");
    assert!(r.starts_with(&format!("{d} (")), "{r}");
    assert_eq!(
        sb.read("services/svc/Cargo.lock"),
        "# updated by a teammate\n"
    );
    assert_eq!(sb.read(kept), "# updated by a teammate\n");
    assert_clean(&sb, "the teammate's lock");

    locked_without_the_kept_cargo_lock_is_refused(&sb);
}

// upstream uv workspaces ----------------------------------------------------

/// uv: Install (the workspace root with its member, into the service's venv).
#[test]
#[ignore = "full layout matrix: cargo test --test layouts -- --include-ignored"]
fn upstream_that_is_a_uv_workspace() {
    case(&UV_WORKSPACE_ROOT, "uv", Src::Git, Expect::Install);
}

/// uv: Install (the member alone, into `<target>/.venv`, checked against the
/// upstream workspace's `uv.lock`; the upstream's files stay as they are).
#[test]
fn member_of_the_upstream_uv_workspace_through_subdirectory() {
    case_in(
        &UV_WORKSPACE_ROOT,
        "uv",
        Src::Git,
        Expect::Install,
        Some(("packages/ws-core", "ws-core")),
    );
}

// the service's env reaches its build ----------------------------------------

/// A local library whose hatchling build hook fails unless
/// `HSM_BUILD_FLAG=on` is in the build environment.
fn hooked_library(sb: &Sandbox) {
    sb.write(
        "libs/hooked/pyproject.toml",
        "[project]\nname = \"hooked\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n\n[tool.hatch.build.hooks.custom]\n\n[tool.hatch.build.targets.wheel]\npackages = [\"hooked\"]\n",
    );
    sb.write(
        "libs/hooked/hatch_build.py",
        "import os\nfrom hatchling.builders.hooks.plugin.interface import BuildHookInterface\n\n\nclass CustomBuildHook(BuildHookInterface):\n    def initialize(self, version, build_data):\n        if os.environ.get(\"HSM_BUILD_FLAG\") != \"on\":\n            raise RuntimeError(\"HSM_BUILD_FLAG is not in the build environment\")\n",
    );
    sb.write("libs/hooked/hooked/__init__.py", "");
}

fn env_manifest(runtime: &str, env: &str) -> String {
    format!(
        r#"[services]
standalone = ["svc"]

[registry.libraries.hooked.sources.prod]
type = "local"
path = "libs/hooked"

[registry.services.svc]
dependencies = ["hooked"]
{env}

[registry.services.svc.sources.prod]
type = "local"
path = "components/svc"

[registry.services.svc.deployment-profiles.default]
runtime = "{runtime}"
"#
    )
}

/// uv runtime, the variable given through the service's `env` as
/// `${HSM_TEST_FLAG}`: expanded from the user's environment for the build,
/// never written out.
#[test]
fn service_env_reaches_the_build_hook_uv_env_table() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    hooked_library(&sb);
    sb.write(
        "components/svc/pyproject.toml",
        "[project]\nname = \"svc\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[tool.uv]\npackage = false\n",
    );
    sb.write(
        "hsm.toml",
        &env_manifest("uv", "env = { HSM_BUILD_FLAG = \"${HSM_TEST_FLAG}\" }"),
    );
    // Without the variable the hook refuses: proof that it is what matters.
    let o = hsm(&sb, &["sync"])
        .env_remove("HSM_TEST_FLAG")
        .env("UV_NO_CACHE", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not in the build environment"),
        "{}",
        stderr(&o)
    );
    let o = hsm(&sb, &["sync"])
        .env("HSM_TEST_FLAG", "on")
        .env("UV_NO_CACHE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(names(&sb.installed("components/svc")).contains(&"hooked"));
    let env_file = sb.read(".hsm/env/svc.env");
    assert!(
        env_file.contains("HSM_BUILD_FLAG=${HSM_TEST_FLAG}"),
        "{env_file}"
    );
    assert!(!env_file.contains("=on"), "{env_file}");
}

/// venv runtime, the variable given through an env file.
#[test]
fn service_env_reaches_the_build_hook_venv_env_file() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    hooked_library(&sb);
    sb.write("components/svc/requirements.txt", "alpha\n");
    sb.write("config/svc.env", "HSM_BUILD_FLAG=off\n");
    sb.write(
        "hsm.toml",
        &env_manifest("venv", "env-file = [\"config/svc.env\"]"),
    );
    let o = run(&sb, &["sync"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not in the build environment"),
        "{}",
        stderr(&o)
    );
    sb.write("config/svc.env", "HSM_BUILD_FLAG=on\n");
    sync_ok(&sb, &[]);
    let inst = sb.installed("components/svc");
    assert!(
        names(&inst).contains(&"hooked") && names(&inst).contains(&"alpha"),
        "{inst:?}"
    );
    assert_clean(&sb, "the env-file sync");
}

// uv behind a shim ------------------------------------------------------------

/// `uv` on `PATH` is a shim that fails, as pyenv's does, wherever a
/// `.python-version` is present, e.g. in the service's checkout. sync
/// resolves the real uv once from the workspace root and says which.
#[test]
fn uv_behind_a_failing_shim_is_resolved_once() {
    if !tools_ok() {
        return;
    }
    let real = std::process::Command::new("python3")
        .args(["-c", "import uv; print(uv.find_uv_bin())"])
        .output()
        .unwrap();
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    assert!(
        std::path::Path::new(&real).is_file(),
        "no pip-installed uv: {real}"
    );
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();

    let sb = Sandbox::new();
    // The shim, and a PATH on which it is the only `uv`.
    let shim = sb.path("shims/uv");
    sb.write(
        "shims/uv",
        &format!(
            "#!/bin/sh\n# pyenv's shim runs: exec \"$PYENV_ROOT/libexec/pyenv\" exec uv; like it, this one\n# fails where a .python-version selects an interpreter without uv\nif [ -f .python-version ]; then\n  echo \"pyenv: uv: command not found\" >&2\n  exit 127\nfi\nexec {real} \"$@\"\n"
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&python, sb.path("shims/python3")).unwrap();
    let mut path = vec![sb.path("shims")];
    for d in std::env::split_paths(&std::env::var_os("PATH").unwrap()) {
        if !d.join("uv").exists() {
            path.push(d);
        }
    }
    let path = std::env::join_paths(path).unwrap();

    sb.write(
        "components/svc/pyproject.toml",
        &format!(
            "[project]\nname = \"svc\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[tool.uv]\npackage = false\nfind-links = [\"{}\"]\nno-index = true\n",
            sb.path("wheels").display()
        ),
    );
    sb.write("components/svc/.python-version", "3.11\n");
    sb.write(
        "hsm.toml",
        "[services]\nstandalone = [\"svc\"]\n\n[registry.services.svc.sources.prod]\ntype = \"local\"\npath = \"components/svc\"\n\n[registry.services.svc.deployment-profiles.default]\nruntime = \"uv\"\n",
    );
    // The shim does fail inside the checkout.
    let direct = std::process::Command::new(&shim)
        .arg("--version")
        .current_dir(sb.path("components/svc"))
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(127));

    let o = sb.cmd(&["sync", "-v"]).env("PATH", &path).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("at `{real}`")), "{err}");
    assert!(err.contains("with uv 0."), "{err}");
    assert!(names(&sb.installed("components/svc")).contains(&"alpha"));
    let c = sb.cmd(&["check"]).env("PATH", &path).output().unwrap();
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
}

// requirements.txt as people write it; exact convergence ---------------------

fn sha256_of(path: &std::path::Path) -> String {
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// venv: `-r`, `-c`, `--hash` pins with `\` continuations, comments and
/// index options all understood (the project itself, which pip cannot hash,
/// installed in a second step): sync and check converge, a
/// second sync is Fresh, and a requirement removed is uninstalled.
#[test]
fn venv_requirements_txt_as_people_write_it_and_exact_convergence() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    let gamma = sha256_of(&sb.path("wheels/gamma-0.1.0-py3-none-any.whl"));
    let d = "components/svc";
    let alpha = sha256_of(&sb.path("wheels/alpha-1.0.0-py3-none-any.whl"));
    let beta = sha256_of(&sb.path("wheels/beta-2.0.0-py3-none-any.whl"));
    sb.write(
        &format!("{d}/pyproject.toml"),
        "[project]\nname = \"req-app\"\nversion = \"1.0.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[tool.setuptools]\npackages = [\"req_app\"]\n",
    );
    sb.write(&format!("{d}/req_app/__init__.py"), "");
    // pip-compile style: hashed pins with continuations, an include, a
    // constraint, a marker, index options, comments.
    sb.write(
        &format!("{d}/requirements.txt"),
        &format!(
            "# pinned by hand\n--find-links {wheels}\n-r reqs/base.txt   # shared\n-c constraints.txt\ngamma==0.1.0 \\\n    --hash=sha256:{gamma}\n    # via alpha\n",
            wheels = sb.path("wheels").display()
        ),
    );
    sb.write(
        &format!("{d}/reqs/base.txt"),
        &format!("alpha==1.0.0 --hash=sha256:{alpha}\nbeta==2.0.0 \\\n    --hash=sha256:{beta}\n"),
    );
    sb.write(&format!("{d}/constraints.txt"), "alpha==1.0.0\n");
    sb.write(
        "hsm.toml",
        "[services]\nstandalone = [\"svc\"]\n\n[registry.services.svc.sources.prod]\ntype = \"local\"\npath = \"components/svc\"\n\n[registry.services.svc.deployment-profiles.default]\nruntime = \"venv\"\n",
    );
    sync_ok(&sb, &[]);
    assert_clean(&sb, "the first sync");
    let inst = sb.installed(d);
    for want in ["req-app", "alpha", "beta", "gamma"] {
        assert!(names(&inst).contains(&want), "{inst:?}");
    }
    let again = sync_ok(&sb, &["-v"]);
    assert!(stderr(&again).contains("Fresh svc"), "{}", stderr(&again));

    // `beta` leaves the requirements: one sync removes it, check is clean.
    sb.write(
        &format!("{d}/reqs/base.txt"),
        &format!("alpha==1.0.0 --hash=sha256:{alpha}\n"),
    );
    sync_ok(&sb, &[]);
    assert!(
        !names(&sb.installed(d)).contains(&"beta"),
        "{:?}",
        sb.installed(d)
    );
    assert_clean(&sb, "removing a requirement");
    // A package nobody asked for is drift that sync repairs.
    let beta = sb.path("wheels/beta-2.0.0-py3-none-any.whl");
    uv_pip(&sb, d, &["install", "--no-deps", beta.to_str().unwrap()]);
    let (code, v) = check_json(&sb);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(v["findings"][0]["fix"]
        .as_str()
        .unwrap()
        .contains("cargo hsm sync"));
    sync_ok(&sb, &[]);
    assert_clean(&sb, "the repairing sync");
}

// a local library's new dependency -------------------------------------------

/// A local library (hatchling) in the root venv gains a dependency: check
/// reports the stale lock, sync is not Fresh and installs it.
#[test]
fn local_library_new_dependency_reaches_the_root_venv() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    sb.root_pyproject("");
    let lib = |deps: &str| {
        format!("[project]\nname = \"mylib\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = [{deps}]\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n\n[tool.hatch.build.targets.wheel]\npackages = [\"mylib\"]\n")
    };
    sb.write("libs/mylib/pyproject.toml", &lib(""));
    sb.write("libs/mylib/mylib/__init__.py", "");
    sb.write(
        "hsm.toml",
        "[libraries]\nstandalone = [\"mylib\"]\n\n[registry.libraries.mylib.sources.prod]\ntype = \"local\"\npath = \"libs/mylib\"\n",
    );
    sync_ok(&sb, &[]);
    assert_clean(&sb, "the first sync");
    sb.write("libs/mylib/pyproject.toml", &lib("\"gamma\""));
    let (code, v) = check_json(&sb);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "lockfile-stale" && f["package"] == "mylib"),
        "{v:#}"
    );
    let o = sync_ok(&sb, &["-v"]);
    assert!(stderr(&o).contains("Syncing libraries"), "{}", stderr(&o));
    assert!(
        names(&sb.installed(".")).contains(&"gamma"),
        "{:?}",
        sb.installed(".")
    );
    assert_clean(&sb, "the library's new dependency");
}

// uv workspace globs ------------------------------------------------------------

/// The root's uv workspace adopts `services/[a]*` (a character class): hsm
/// excludes the matching service, which syncs into its own venv.
#[test]
fn root_workspace_character_class_glob_is_excluded() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    sb.root_pyproject("\n[tool.uv.workspace]\nmembers = [\"services/[a]*\"]\n");
    sb.uv_service("services/api", "");
    sb.write(
        "hsm.toml",
        "[libraries]\nstandalone = [\"beta\"]\n\n[services]\nstandalone = [\"api\"]\n\n[registry.libraries.beta.sources.prod]\ntype = \"pypi\"\n\n[registry.services.api]\ndependencies = [\"alpha\"]\n\n[registry.services.api.sources.prod]\ntype = \"local\"\npath = \"services/api\"\n\n[registry.services.api.deployment-profiles.default]\nruntime = \"uv\"\n",
    );
    sync_ok(&sb, &[]);
    let root = sb.read("pyproject.toml");
    let ws = root.split("[tool.uv.workspace]").nth(1).unwrap_or("");
    assert!(
        ws.contains("exclude") && ws.contains("\"services/api\""),
        "{root}"
    );
    assert!(names(&sb.installed("services/api")).contains(&"alpha"));
    assert!(!names(&sb.installed(".")).contains(&"alpha"));
    assert_clean(&sb, "the sync");
}

// dynamic dependencies ------------------------------------------------------------

/// uv: Refuse (exit 2) service `dependencies` for a project that declares
/// `dynamic = ["dependencies"]`, naming the service and the fix, with no
/// file changed; venv installs them beside the project.
#[test]
fn dependencies_for_a_project_with_dynamic_dependencies() {
    if !tools_ok() {
        return;
    }
    let sb = Sandbox::new();
    sb.write(
        "components/svc/pyproject.toml",
        "[project]\nname = \"dyn-deps\"\nversion = \"1.0.0\"\ndynamic = [\"dependencies\"]\n\n[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[tool.setuptools.dynamic]\ndependencies = { file = [\"deps.txt\"] }\n",
    );
    let before = sb.read("components/svc/pyproject.toml");
    sb.write(
        "hsm.toml",
        &manifest("type = \"local\"\npath = \"components/svc\"\n", "uv", "")
            .replace("[libraries]\nstandalone = [\"beta\"]\n", ""),
    );
    let o = run(&sb, &["sync"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("service `svc`") && err.contains("dynamic"),
        "{err}"
    );
    assert!(err.contains("runtime = \"venv\""), "{err}");
    assert_eq!(sb.read("components/svc/pyproject.toml"), before);
}
