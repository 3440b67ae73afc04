//! `cargo hsm update` (issue 16): a branch ref pinned in `hsm.lock` stays
//! put on `sync` and moves to its tip on `update`, and a library locked in
//! the shared project's `uv.lock` moves to a newer version; the summary
//! says old -> new; then `clean` removes what sync rebuilds and keeps a
//! clone with local work. Real git (a local bare repository) and real uv.

mod sync_support;

use sync_support::{require, stderr, Sandbox};

#[test]
fn update_moves_a_branch_ref_and_upgrades_a_locked_library() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    let (url, shas) = sb.git_remote("api", &["v1"]);
    sb.root_pyproject("");
    sb.write(
        "hsm.toml",
        &format!(
            r#"[libraries]
standalone = ["alpha"]

[services]
standalone = ["api"]

[registry.libraries.alpha.sources.prod]
type = "pypi"
version = ">=1.0"

[registry.services.api.sources.prod]
type = "git"
url = "{url}"
ref = "main"

[registry.services.api.deployment-profiles.default]
runtime = "uv"
"#
        ),
    );
    sb.sync(&[]);
    assert!(sb.read("hsm.lock").contains(&shas[0]));
    assert!(sb
        .installed(".")
        .contains(&("alpha".into(), "1.0.0".into())));

    // Upstream moves on; a newer alpha is published.
    sb.write("remotes/api-work/VERSION", "v2\n");
    sb.git("remotes/api-work", &["commit", "-q", "-am", "v2"]);
    let bare = sb.path("remotes/api.git");
    sb.git(
        "remotes/api-work",
        &["push", "-q", bare.to_str().unwrap(), "main"],
    );
    let new = sb
        .git("remotes/api-work", &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    sb.wheel("alpha", "1.1.0", &["gamma"]);

    // A plain sync keeps both pins.
    sb.sync(&[]);
    assert!(sb.read("hsm.lock").contains(&shas[0]));
    assert_eq!(sb.read("services/api/VERSION"), "v1\n");
    assert!(sb
        .installed(".")
        .contains(&("alpha".into(), "1.0.0".into())));

    // `update --locked` finds something newer: exit 1, nothing changed.
    let lock_before = sb.read("hsm.lock");
    let o = sb.run(&["update", "--locked"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(sb.read("hsm.lock"), lock_before);
    assert_eq!(sb.read("services/api/VERSION"), "v1\n");

    // `update api`: the branch moves, the library stays.
    let o = sb.run(&["-vv", "update", "api"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // `-vv` shows uv's own output as it streams, after the component.
    assert!(err.contains("[service `api`] Resolved"), "{err}");
    assert!(err.contains("Finished update in"), "{err}");
    assert!(
        err.contains(&format!(
            "Updating api: main {} -> {}",
            &shas[0][..7],
            &new[..7]
        )),
        "{err}"
    );
    assert!(!err.contains("alpha"), "{err}");
    assert_eq!(sb.read("services/api/VERSION"), "v2\n");
    let lock = sb.read("hsm.lock");
    assert!(lock.contains(&new) && !lock.contains(&shas[0]), "{lock}");
    assert!(sb
        .installed(".")
        .contains(&("alpha".into(), "1.0.0".into())));

    // `update alpha`: its locked version moves, and says so.
    let o = sb.run(&["update", "alpha", "--message-format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["reason"], "update");
    let changes = doc["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["component"] == "libraries"
            && c["name"] == "alpha"
            && c["old"] == "1.0.0"
            && c["new"] == "1.1.0"),
        "{changes:?}"
    );
    assert!(sb
        .installed(".")
        .contains(&("alpha".into(), "1.1.0".into())));

    // Nothing newer: said so; and `check` agrees with the result.
    let o = sb.run(&["update"]);
    assert!(stderr(&o).contains("Unchanged"), "{}", stderr(&o));
    let check = sb.run(&["check"]);
    assert!(check.status.success(), "{}", stderr(&check));

    // clean: environments and caches go; a clone with local work stays.
    sb.write("services/api/VERSION", "mine\n");
    let o = sb.run(&["clean"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("Removed `services/api/.venv`") && err.contains("Removed `.venv`"),
        "{err}"
    );
    assert!(
        err.contains("kept the clone `services/api`: it has local work: modified: VERSION"),
        "{err}"
    );
    assert_eq!(sb.read("services/api/VERSION"), "mine\n");
    sb.write("services/api/VERSION", "v2\n");
    // `clean api` forgets api's fingerprint alone: the libraries stay fresh.
    sb.sync(&[]);
    assert!(sb
        .read(".hsm/fingerprints.json")
        .contains("\"service:api\""));
    let o = sb.run(&["clean", "api"]);
    assert!(
        stderr(&o).contains("Removed `services/api`"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("Forgot the fingerprint of `service:api`"),
        "{}",
        stderr(&o)
    );
    assert!(!sb.exists("services/api"));
    let fps = sb.read(".hsm/fingerprints.json");
    assert!(
        fps.contains("\"libraries\"") && !fps.contains("service:api"),
        "{fps}"
    );
    // An interrupted sync's journal: refused, nothing removed.
    sb.write(
        ".hsm/journal/log",
        "{\"op\":\"created-dir\",\"path\":\"made\"}\n",
    );
    let o = sb.run(&["clean"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted sync"), "{}", stderr(&o));
    std::fs::remove_file(sb.path(".hsm/journal/log")).unwrap();
    sb.sync(&["--frozen"]);
    assert_eq!(
        sb.read("services/api/VERSION"),
        "v2\n",
        "the locked commit again"
    );
    let check = sb.run(&["check"]);
    assert!(check.status.success(), "{}", stderr(&check));

    let o = sb.run(&["update", "alpah"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("did you mean `alpha`?"),
        "{}",
        stderr(&o)
    );
}

/// `update` re-resolves a git-sourced venv service's pins
/// (`hsm.locks/<service>/requirements.txt`), as `uv lock --upgrade` does a
/// `uv.lock`: a plain sync keeps the pinned version although a newer one
/// is published, `update --locked` keeps it too, and `update NAME`
/// installs the newest the requirements allow, rewrites the pins and says
/// old -> new. Real pip in a real venv, from local wheels.
#[test]
fn update_re_resolves_a_venv_services_pins() {
    if !require("venv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    // A service repository with nothing to build: pip installs its
    // `dependencies` only.
    sb.write("remotes/rr-work/VERSION", "v1\n");
    sb.git("remotes/rr-work", &["init", "-q", "-b", "main"]);
    sb.git("remotes/rr-work", &["add", "-A"]);
    sb.git("remotes/rr-work", &["commit", "-q", "-m", "v1"]);
    let bare = sb.path("remotes/rr.git");
    sb.git(
        ".",
        &[
            "clone",
            "-q",
            "--bare",
            "remotes/rr-work",
            bare.to_str().unwrap(),
        ],
    );
    sb.write(
        "hsm.toml",
        &format!(
            r#"[services]
standalone = ["rr"]

[registry.services.rr]
dependencies = ["alpha>=1.0"]
sources.prod = {{ type = "git", url = "file://{}", ref = "main" }}
deployment-profiles.default = {{ runtime = "venv", command = ["python", "-c", "pass"] }}
"#,
            bare.display()
        ),
    );
    let wheels = sb.path("wheels");
    let pip = |args: &[&str]| {
        sb.cmd(args)
            .env("PIP_NO_INDEX", "1")
            .env("PIP_FIND_LINKS", &wheels)
            .output()
            .unwrap()
    };
    let o = pip(&["sync"]);
    assert!(o.status.success(), "{}", stderr(&o));
    const PINS: &str = "hsm.locks/rr/requirements.txt";
    assert!(
        sb.read(PINS).contains("alpha==1.0.0\n"),
        "{}",
        sb.read(PINS)
    );
    assert!(sb
        .installed("services/rr")
        .contains(&("alpha".into(), "1.0.0".into())));

    sb.wheel("alpha", "1.1.0", &["gamma"]);
    // A plain sync (forced to run pip) keeps the pinned version.
    std::fs::remove_file(sb.path(".hsm/fingerprints.json")).unwrap();
    let o = pip(&["sync"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(sb.read(PINS).contains("alpha==1.0.0\n"));
    // `update --locked`: the pins stay as they are.
    let o = pip(&["update", "--locked", "rr"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(sb.read(PINS).contains("alpha==1.0.0\n"));

    let o = pip(&["update", "rr"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Updating rr: alpha v1.0.0 -> v1.1.0"), "{err}");
    assert!(!err.contains("gamma"), "gamma stays at its version: {err}");
    let pins = sb.read(PINS);
    assert!(
        pins.contains("alpha==1.1.0\n") && pins.contains("gamma=="),
        "{pins}"
    );
    assert!(sb
        .installed("services/rr")
        .contains(&("alpha".into(), "1.1.0".into())));
    // The result is what `check` and a locked sync agree with.
    let o = pip(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = pip(&["sync", "--locked"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Nothing newer: unchanged.
    let o = pip(&["update", "rr"]);
    assert!(stderr(&o).contains("Unchanged"), "{}", stderr(&o));
}
