//! Where sync, check, dry-run and compose used to disagree (issue 14, §1):
//! one test per disagreement, each on a real sandbox (uv, local wheels,
//! offline).

mod sync_support;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sync_support::{require, stderr, Sandbox};

/// One uv service with a dependency, one container service, one library.
fn sandbox() -> Option<Sandbox> {
    if !require("uv") {
        return None;
    }
    let sb = Sandbox::new();
    sb.root_pyproject("");
    sb.uv_service("services/api", "");
    sb.uv_service("services/worker", "");
    sb.write("hsm.toml", &manifest("\"api\", \"worker\", \"cache\"", "6379"));
    Some(sb)
}

fn manifest(services: &str, port: &str) -> String {
    format!(
        r#"[libraries]
standalone = ["beta"]

[services]
standalone = [{services}]

[registry.libraries.beta.sources.prod]
type = "pypi"
version = "==2.0.0"

[registry.services.api]
dependencies = ["alpha"]
env = {{ API_PORT = "8081" }}
sources.prod = {{ type = "local", path = "services/api" }}
deployment-profiles.default = {{ runtime = "uv" }}

[registry.services.worker]
sources.prod = {{ type = "local", path = "services/worker" }}
deployment-profiles.default = {{ runtime = "uv" }}

[registry.services.cache]
ports = ["{port}:6379"]
sources.prod = {{ type = "docker-image", image = "redis:7" }}
"#
    )
}

/// `cargo hsm check` during a sync waits for it, says so, and then
/// reports on the finished result instead of on temporary drift.
#[test]
fn check_waits_for_a_running_sync_and_says_so() {
    let Some(sb) = sandbox() else { return };
    sb.sync(&[]);
    let held = cargo_hsm::materialize::acquire_sync_lock(
        camino::Utf8Path::from_path(&sb.root).unwrap(),
        &mut |_| {},
    )
    .unwrap();
    let mut child = sb
        .cmd(&["check"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "check finished while a sync held the lock"
    );
    drop(held);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(700));
    assert!(
        err.contains("Blocking") && err.contains("waiting for file lock on .hsm/sync.lock"),
        "{err}"
    );
    assert_eq!(status.code(), Some(0), "{err}");
}
