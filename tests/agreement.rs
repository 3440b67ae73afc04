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
    sb.write(
        "hsm.toml",
        &manifest("\"api\", \"worker\", \"cache\"", "6379"),
    );
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
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(700));
    assert!(
        err.contains("Blocking") && err.contains("waiting for file lock on .hsm/sync.lock"),
        "{err}"
    );
    assert_eq!(status.code(), Some(0), "{err}");
}

fn json_sync(sb: &Sandbox, args: &[&str]) -> Vec<(String, String, String)> {
    let mut a = vec!["sync", "--message-format", "json"];
    a.extend_from_slice(args);
    let o = sb.run(&a);
    assert!(o.status.success(), "sync {args:?}:\n{}", stderr(&o));
    sync_support::sync_actions(&o)
}

/// `sync --dry-run` uses the fingerprints the sync uses: after a sync it
/// predicts nothing to do, and after a manifest change it predicts exactly
/// the actions the sync then reports (hsm.lock included, whose change
/// comes from uv rewriting a `uv.lock`).
#[test]
fn dry_run_predicts_exactly_what_sync_does() {
    let Some(sb) = sandbox() else { return };
    let first_dry = json_sync(&sb, &["--dry-run"]);
    let first = json_sync(&sb, &[]);
    assert_eq!(first_dry, first, "first sync");

    let dry = json_sync(&sb, &["--dry-run"]);
    assert!(
        sync_support::changes(&dry).is_empty(),
        "dry run after a sync: {dry:?}"
    );
    assert_eq!(dry, json_sync(&sb, &[]));

    // worker gains a dependency: hsm edits its pyproject, uv relocks.
    let m = sb.read("hsm.toml").replace(
        "[registry.services.worker]\n",
        "[registry.services.worker]\ndependencies = [\"beta\"]\n",
    );
    sb.write("hsm.toml", &m);
    let dry = json_sync(&sb, &["--dry-run"]);
    let real = json_sync(&sb, &[]);
    assert_eq!(dry, real, "after adding a dependency");
    let kinds: Vec<String> = sync_support::changes(&real)
        .into_iter()
        .map(|a| a.0)
        .collect();
    for k in ["edit", "sync", "write"] {
        assert!(kinds.iter().any(|x| x == k), "{real:?}");
    }

    // A deleted venv: the sync reinstalls it; uv.lock (so hsm.lock) stays.
    std::fs::remove_dir_all(sb.path("services/api/.venv")).unwrap();
    let dry = json_sync(&sb, &["--dry-run"]);
    assert_eq!(
        sync_support::changes(&dry),
        vec![(
            "sync".to_string(),
            "service:api".to_string(),
            "services/api".to_string()
        )]
    );
    assert_eq!(dry, json_sync(&sb, &[]));
}

/// `--frozen` after a plain sync is a no-op, and stays one; a plain sync
/// after a `--frozen` one re-checks the lock once, then settles too.
#[test]
fn frozen_settles_to_a_no_op() {
    let Some(sb) = sandbox() else { return };
    sb.sync(&[]);
    for args in [
        &["--frozen"][..],
        &["--frozen"],
        &[],
        &["--locked"],
        &["--frozen"],
    ] {
        let a = json_sync(&sb, args);
        assert!(
            sync_support::changes(&a).is_empty(),
            "sync {args:?} after a sync: {a:?}"
        );
    }
    std::fs::remove_dir_all(sb.path("services/api/.venv")).unwrap();
    let a = json_sync(&sb, &["--frozen"]);
    assert_eq!(sync_support::changes(&a).len(), 1, "{a:?}");
    assert!(sync_support::changes(&json_sync(&sb, &["--frozen"])).is_empty());
    // What --frozen left has not had uv's lock check: a plain sync runs it.
    let a = json_sync(&sb, &[]);
    assert_eq!(
        sync_support::changes(&a),
        vec![(
            "sync".to_string(),
            "service:api".to_string(),
            "services/api".to_string()
        )]
    );
    assert!(sync_support::changes(&json_sync(&sb, &[])).is_empty());
}

/// `cargo hsm compose` writes the compose file and records its hash in
/// `hsm.lock`, so that `check` and `sync --locked` agree with it; `check`
/// reports a stale record that `sync --locked` would change.
#[test]
fn compose_updates_hsm_lock_and_check_sees_what_locked_sync_would_change() {
    let Some(sb) = sandbox() else { return };
    sb.sync(&[]);
    // A change that affects only the compose file.
    let m = sb.read("hsm.toml").replace("6379:6379", "6380:6379");
    sb.write("hsm.toml", &m);
    let o = sb.run(&["compose"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("Writing") && err.contains("hsm.lock"), "{err}");
    assert!(sb.read("docker-compose.hsm.yml").contains("6380:6379"));
    let check = sb.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let locked = sb.run(&["sync", "--locked"]);
    assert_eq!(locked.status.code(), Some(0), "{}", stderr(&locked));

    // hsm.lock's record of the compose file goes stale behind sync's back
    // (a compose file from another branch, say): check reports what
    // `sync --locked` would refuse.
    let lock = sb.read("hsm.lock");
    let stale = sb.read("hsm.toml").replace("6380:6379", "6381:6379");
    sb.write("hsm.toml", &stale);
    assert!(sb.run(&["compose"]).status.success());
    sb.write("hsm.toml", &m);
    std::fs::write(sb.path("docker-compose.hsm.yml"), {
        let o = sb.run(&["compose", "--check"]);
        assert_eq!(o.status.code(), Some(1));
        sb.read("docker-compose.hsm.yml")
            .replace("6381:6379", "6380:6379")
    })
    .unwrap();
    assert_ne!(sb.read("hsm.lock"), lock);
    let check = sb.run(&["check"]);
    let err = stderr(&check);
    assert_eq!(check.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sync-pending") && err.contains("hsm.lock"),
        "{err}"
    );
    let locked = sb.run(&["sync", "--locked"]);
    assert_ne!(locked.status.code(), Some(0));
    assert!(
        stderr(&locked).contains("docker-compose.hsm.yml"),
        "{}",
        stderr(&locked)
    );
    // Without a lock, compose says it did not record anything.
    std::fs::remove_file(sb.path("hsm.lock")).unwrap();
    let o = sb.run(&["compose"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("`hsm.lock` was not updated"),
        "{}",
        stderr(&o)
    );
    assert!(!sb.exists("hsm.lock"));
}

/// A git service unselected, its ref moved, then selected again: the
/// `uv.lock` its earlier sync made is untracked and hsm.lock forgot it, but
/// checking out the new ref keeps it (the target commit has no such
/// file), so it is not local work that the checkout would lose. (Found by
/// tests/model.rs.)
#[test]
fn reselected_git_service_moves_past_its_own_untracked_lock_file() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    let (url, _) = sb.git_remote("emb", &["v1.0.0", "v1.1.0"]);
    let m = |sel: &str, r: &str| {
        format!(
            "[services]\nstandalone = [{sel}]\n\n[registry.services.emb]\nsources.prod = {{ type = \"git\", url = \"{url}\", ref = \"{r}\" }}\ndeployment-profiles.default = {{ runtime = \"uv\" }}\n"
        )
    };
    sb.write("hsm.toml", &m("\"emb\"", "v1.0.0"));
    sb.sync(&[]);
    assert!(sb.exists("services/emb/uv.lock"));
    sb.write("hsm.toml", &m("", "v1.0.0"));
    sb.sync(&[]);
    sb.write("hsm.toml", &m("\"emb\"", "v1.1.0"));
    let dry = json_sync(&sb, &["--dry-run"]);
    assert_eq!(dry, json_sync(&sb, &[]));
    assert_eq!(sb.read("services/emb/VERSION"), "v1.1.0\n");
    let check = sb.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    // Local work the checkout would lose is still refused.
    sb.write("services/emb/VERSION", "mine\n");
    sb.write("hsm.toml", &m("\"emb\"", "v1.0.0"));
    let o = sb.run(&["sync"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("modified: VERSION"), "{}", stderr(&o));
}
