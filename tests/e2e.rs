//! init → service init → sync → check, end to end, for a uv service and a
//! docker service, with real uv and a real compose parser.

mod sync_support;

use std::process::Command;

use sync_support::{require, stderr, Sandbox};

#[test]
fn init_service_init_sync_check_for_a_uv_and_a_docker_service() {
    if !require("uv") || !require("docker-compose") {
        return;
    }
    let sb = Sandbox::new();
    let ok = |args: &[&str]| {
        let o = sb.run(args);
        assert!(o.status.success(), "{args:?} failed:\n{}", stderr(&o));
        stderr(&o)
    };
    ok(&["init"]);
    ok(&["service", "init", "api", "--runtime", "uv"]);
    ok(&["service", "init", "web", "--runtime", "docker"]);

    let sync = ok(&["sync", "--offline"]);
    assert!(sync.contains("Syncing api (uv, services/api)"), "{sync}");
    assert!(
        sync.contains("Writing docker-compose.hsm.yml (1 container service)"),
        "{sync}"
    );
    assert!(sb.exists("services/api/.venv/pyvenv.cfg"));
    assert!(sb.exists("services/api/uv.lock"));

    let compose = sb.read("docker-compose.hsm.yml");
    assert!(
        compose.contains("\n  web:\n    build:\n      context: services/web\n"),
        "{compose}"
    );
    assert!(!compose.contains("api"), "{compose}");
    let v = Command::new("docker-compose")
        .args(["-f"])
        .arg(sb.path("docker-compose.hsm.yml"))
        .args(["config", "-q"])
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "docker-compose rejects the file: {}",
        String::from_utf8_lossy(&v.stderr)
    );

    let check = sb.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(
        stderr(&check)
            .contains("Checked 1 environment service, 1 container service, 0 libraries: no drift"),
        "{}",
        stderr(&check)
    );
    // A second sync has nothing to do.
    let again = ok(&["sync", "--offline"]);
    assert!(
        !again.contains("Syncing") && !again.contains("Writing"),
        "{again}"
    );
}
