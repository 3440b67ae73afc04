//! A setuptools project from git, built by real setuptools from PyPI
//! through uv: its build artifacts are not local work, the checkout stays
//! clean in the user's own `git status`, and ref moves work. Its upstream
//! commits no `uv.lock`: hsm keeps the resolved one in
//! `hsm.locks/<service>/uv.lock`, so a fresh clone of the monorepo
//! elsewhere installs the same distributions with `sync --frozen`.

mod git_support;
mod sync_support;

use git_support::{manifest, upstream};
use sync_support::{git_in, require, stderr, Sandbox};

const PYPROJECT: &str = r#"[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "beta-svc"
version = "{tag}"
requires-python = ">=3.8"
dependencies = ["alpha"]

[tool.setuptools]
packages = ["beta_svc"]

[tool.uv]
find-links = ["../../wheels"]
"#;

#[test]
fn setuptools_upstream_without_uv_lock_is_clean_movable_and_reproducible() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    // No .gitignore upstream: every artifact is hsm's to keep out of sight.
    let (url, shas) = upstream(
        &sb,
        "beta",
        &["0.1.0", "0.2.0"],
        &[
            ("pyproject.toml", PYPROJECT),
            ("beta_svc/__init__.py", "VERSION = \"{tag}\"\n"),
        ],
    );
    sb.write("hsm.toml", &manifest(&[("beta", &url, "0.1.0")]));
    sb.sync(&[]);
    let check = sb.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(
        sb.exists("services/beta/beta_svc.egg-info")
            || sb.exists("services/beta/build")
            || sb.exists("services/beta/uv.lock"),
        "setuptools and uv left their files"
    );
    assert_eq!(sb.git("services/beta", &["status", "--porcelain"]), "");
    assert!(sb.exists("hsm.locks/beta/uv.lock"));
    assert!(sb
        .read("hsm.lock")
        .contains("path = \"hsm.locks/beta/uv.lock\""));

    sb.write("hsm.toml", &manifest(&[("beta", &url, "0.2.0")]));
    let out = sb.sync(&[]);
    assert!(
        stderr(&out).contains("Checking out beta (0.2.0"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sb.git("services/beta", &["rev-parse", "HEAD"]).trim(),
        shas[1]
    );
    let check = sb.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert_eq!(sb.git("services/beta", &["status", "--porcelain"]), "");
    let installed = sb.installed("services/beta");
    assert!(
        installed.contains(&("beta-svc".to_string(), "0.2.0".to_string())),
        "{installed:?}"
    );

    // The monorepo, committed and cloned elsewhere: the same set, frozen.
    sb.write(".gitignore", "services/\n.hsm/\nremotes/\n");
    sb.git(".", &["init", "-q", "-b", "main"]);
    sb.git(".", &["add", "-A"]);
    sb.git(".", &["commit", "-q", "-m", "monorepo"]);
    let other = tempfile::tempdir().unwrap();
    let elsewhere = other.path().join("mono");
    git_in(
        other.path(),
        &["clone", "-q", sb.root.to_str().unwrap(), "mono"],
    );
    let sb2 = Sandbox::at(elsewhere);
    let out = sb2.run(&["sync", "--frozen"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sb2.installed("services/beta"), installed);
    assert_eq!(
        sb2.bytes("services/beta/uv.lock"),
        sb.bytes("hsm.locks/beta/uv.lock")
    );
    assert_eq!(sb2.git("services/beta", &["status", "--porcelain"]), "");
}
