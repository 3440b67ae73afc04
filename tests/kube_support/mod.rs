//! `kubernetes-validate` (PyPI, pinned in `.ci/run`) for the tests that
//! export Kubernetes manifests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The Kubernetes version whose schemas the files are validated against.
pub const K8S: &str = "1.31.0";

/// Whether `kubernetes-validate` runs here; without it, a skip with a
/// reason, or a failure under `CI=true`.
pub fn validator() -> bool {
    let ok = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("`kubernetes-validate` is required (CI=true): `pip install kubernetes-validate==1.31.0` (`.ci/run` does)");
        }
        eprintln!("skipping: `kubernetes-validate` is not available");
    }
    ok
}

/// `kubernetes-validate --strict` of `files`: its output when one fails.
pub fn validate(files: &[PathBuf]) -> Result<(), String> {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", K8S])
        .args(files)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
