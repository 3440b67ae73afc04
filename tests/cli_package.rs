//! `-p/--package` on `sync`, `check` and `list` (issue 16): one service
//! is synced, checked or shown while the others keep what `hsm.lock`
//! recorded for them. Real uv, offline wheels.

mod sync_support;

use sync_support::{changes, require, stderr, sync_actions, Sandbox};

const MANIFEST: &str = r#"[libraries]
standalone = ["beta"]

[services]
standalone = ["api", "worker"]

[registry.libraries.beta.sources.prod]
type = "pypi"
version = "==2.0.0"

[registry.services.api.sources.prod]
type = "local"
path = "services/api"

[registry.services.api.deployment-profiles.default]
runtime = "uv"

[registry.services.worker.sources.prod]
type = "local"
path = "services/worker"

[registry.services.worker.deployment-profiles.default]
runtime = "uv"
"#;

#[test]
fn package_flag_syncs_checks_and_lists_one_service() {
    if !require("uv") {
        return;
    }
    let sb = Sandbox::new();
    sb.root_pyproject("");
    sb.uv_service("services/api", "");
    sb.uv_service("services/worker", "");
    sb.write("hsm.toml", MANIFEST);
    sb.sync(&[]);

    // Both services now want a new dependency; only `api` is synced.
    for s in ["api", "worker"] {
        let p = format!("services/{s}/pyproject.toml");
        sb.write(
            &p,
            &sb.read(&p)
                .replace("dependencies = []", "dependencies = [\"gamma\"]"),
        );
    }
    let worker_lock = sb.read("services/worker/uv.lock");
    let o = sb.run(&["sync", "-p", "api", "--message-format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let acted: Vec<String> = changes(&sync_actions(&o))
        .into_iter()
        .map(|a| a.1)
        .collect();
    assert!(acted.iter().any(|c| c == "service:api"), "{acted:?}");
    assert!(
        !acted
            .iter()
            .any(|c| c == "service:worker" || c == "libraries"),
        "only api is synced: {acted:?}"
    );
    assert!(sb
        .installed("services/api")
        .iter()
        .any(|(n, _)| n == "gamma"));
    assert!(!sb
        .installed("services/worker")
        .iter()
        .any(|(n, _)| n == "gamma"));
    assert_eq!(sb.read("services/worker/uv.lock"), worker_lock);
    let lock = sb.read("hsm.lock");
    assert!(
        lock.contains("name = \"worker\""),
        "worker stays in hsm.lock:\n{lock}"
    );
    assert!(lock.contains(".hsm/env/worker.env"), "{lock}");

    // check -p api: clean; the whole check still sees worker's drift.
    let o = sb.run(&["check", "-p", "api"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Checked 1 environment service"),
        "{}",
        stderr(&o)
    );
    let o = sb.run(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("service:worker"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("service:api"), "{}", stderr(&o));
    let o = sb.run(&["check", "-p", "worker"]);
    assert_eq!(o.status.code(), Some(1));

    // list -p: only the named ones, in the tree and the JSON plan.
    let o = sb.run(&["list", "-p", "worker"]);
    let tree = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        tree.contains("worker") && !tree.contains("api") && !tree.contains("beta"),
        "{tree}"
    );
    let o = sb.run(&["list", "-p", "beta", "--message-format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["reason"], "plan");
    assert_eq!(
        doc["plan"]["services"].as_array().map(Vec::len),
        Some(0),
        "{doc}"
    );
    assert_eq!(doc["plan"]["libraries"][0]["name"], "beta");

    let o = sb.run(&["sync", "-p", "wrker"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("did you mean `worker`?"),
        "{}",
        stderr(&o)
    );

    // A whole sync then brings worker along, and everything is clean.
    sb.sync(&[]);
    let o = sb.run(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
