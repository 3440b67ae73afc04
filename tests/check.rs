//! `cargo hsm check` on real venvs: each test starts from a freshly synced
//! sandbox, tampers with one thing, and asserts the exact finding and exit 1.

mod sync_support;

use std::process::{Command, Output};

use serde_json::Value;
use sync_support::{require, stderr, stdout, Sandbox};

struct Synced {
    sb: Sandbox,
    shas: Vec<String>,
}

fn manifest(url: &str, services: &str) -> String {
    format!(
        r#"[project]
name = "sandbox"

[libraries]
standalone = ["beta"]

[services]
standalone = [{services}]

[registry.libraries.beta.sources.prod]
type = "pypi"
version = "==2.0.0"

[registry.services.foo]
# `winonly` is locked (uv locks for every platform) but never installed on
# Linux: its marker is evaluated for this platform, so it is not "missing".
dependencies = ["alpha", "winonly; sys_platform == 'win32'"]
env = {{ FOO_PORT = "8081", FOO_SECRET = "${{FOO_SECRET}}" }}
sources.prod = {{ type = "local", path = "services/foo" }}
deployment-profiles.default = {{ runtime = "uv" }}

[registry.services.emb]
sources.prod = {{ type = "git", url = "{url}", ref = "v1.0.0" }}
deployment-profiles.default = {{ runtime = "uv" }}

[registry.services.cache]
ports = ["6379:6379"]
sources.prod = {{ type = "docker-image", image = "redis:7" }}
"#
    )
}

const ALL: &str = r#""foo", "emb", "cache""#;

/// A sandbox with a uv service, a git-sourced uv service, a container
/// service and a root library, synced and checked clean.
fn synced() -> Option<Synced> {
    if !require("uv") || !require("git") {
        return None;
    }
    let sb = Sandbox::new();
    sb.wheel("gamma", "0.0.9", &[]);
    sb.wheel("winonly", "1.0", &[]);
    sb.root_pyproject("");
    sb.uv_service("services/foo", "");
    let (url, shas) = sb.git_remote("emb", &["v1.0.0", "v1.1.0"]);
    sb.write("hsm.toml", &manifest(&url, ALL));
    sb.sync(&[]);
    let s = Synced { sb, shas };
    let clean = s.check();
    assert_eq!(
        clean.status.code(),
        Some(0),
        "fresh sandbox not clean:\n{}",
        stderr(&clean)
    );
    Some(s)
}

impl Synced {
    fn check(&self) -> Output {
        self.sb.run(&["check"])
    }

    fn report(&self) -> (Option<i32>, Value) {
        let o = self.sb.run(&["check", "--message-format", "json"]);
        let v: Value =
            serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
        (o.status.code(), v)
    }

    /// `uv pip` on the venv of `project` (relative dir), offline from the wheels.
    fn uv_pip(&self, project: &str, args: &[&str]) {
        let python = self.sb.path(project).join(".venv/bin/python");
        let o = Command::new("uv")
            .arg("pip")
            .args(args)
            .arg("--python")
            .arg(&python)
            .args(["--no-index", "--find-links"])
            .arg(self.sb.path("wheels"))
            .env_remove("VIRTUAL_ENV")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "uv pip {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn uv_pip_uninstall(&self, project: &str, pkg: &str) {
        let python = self.sb.path(project).join(".venv/bin/python");
        let o = Command::new("uv")
            .args(["pip", "uninstall", pkg, "--python"])
            .arg(&python)
            .env_remove("VIRTUAL_ENV")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "uv pip uninstall: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Asserts exit 1 and exactly one finding, and returns it.
fn only_finding(s: &Synced) -> Value {
    let (code, v) = s.report();
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["schema"], 1);
    assert_eq!(v["clean"], false);
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "expected one finding: {v:#}");
    // The human rendering names the same thing and the fix.
    let human = stderr(&s.check());
    assert!(human.contains(f[0]["kind"].as_str().unwrap()), "{human}");
    assert!(
        human.contains("help: run `cargo hsm sync`") || human.contains("cargo hsm sync"),
        "{human}"
    );
    f[0].clone()
}

fn assert_finding(f: &Value, kind: &str, component: &str, package: Option<&str>) {
    assert_eq!(f["kind"], kind, "{f:#}");
    assert_eq!(f["component"], component, "{f:#}");
    assert_eq!(f["package"].as_str(), package, "{f:#}");
    assert!(
        f["fix"].as_str().unwrap().contains("cargo hsm sync"),
        "{f:#}"
    );
}

#[test]
fn clean_sandbox_passes_with_exit_0() {
    let Some(s) = synced() else { return };
    let lock = s.sb.read("services/foo/uv.lock");
    assert!(
        lock.contains("name = \"winonly\""),
        "the marker dependency is locked:\n{lock}"
    );
    let installed = s.sb.installed("services/foo");
    assert!(
        !installed.iter().any(|(n, _)| n == "winonly"),
        "{installed:?}"
    );
    let out = s.check();
    assert!(
        stderr(&out)
            .contains("Checked 2 environment services, 1 container service, 1 library: no drift"),
        "{}",
        stderr(&out)
    );
    let (code, v) = s.report();
    assert_eq!(code, Some(0));
    assert_eq!(
        v,
        serde_json::json!({ "schema": 1, "reason": "check", "clean": true, "findings": [] })
    );
}

#[test]
fn extra_package_in_a_service_venv() {
    let Some(s) = synced() else { return };
    s.uv_pip("services/foo", &["install", "delta"]);
    let f = only_finding(&s);
    assert_finding(&f, "package-extra", "service:foo", Some("delta"));
    assert_eq!(f["found"], "delta 1.0");
}

#[test]
fn package_removed_from_a_service_venv() {
    let Some(s) = synced() else { return };
    s.uv_pip_uninstall("services/foo", "gamma");
    let f = only_finding(&s);
    assert_finding(&f, "package-missing", "service:foo", Some("gamma"));
    assert_eq!(f["expected"], "gamma 0.1.0");
}

#[test]
fn package_downgraded_in_a_service_venv() {
    let Some(s) = synced() else { return };
    s.uv_pip("services/foo", &["install", "gamma==0.0.9"]);
    let f = only_finding(&s);
    assert_finding(&f, "package-wrong-version", "service:foo", Some("gamma"));
    assert_eq!(
        (f["expected"].as_str(), f["found"].as_str()),
        (Some("gamma 0.1.0"), Some("gamma 0.0.9"))
    );
}

#[test]
fn service_only_package_in_the_root_venv() {
    let Some(s) = synced() else { return };
    s.uv_pip(".", &["install", "--no-deps", "alpha"]);
    let f = only_finding(&s);
    assert_finding(&f, "root-has-service-package", "root", Some("alpha"));
}

#[test]
fn library_missing_from_the_root_venv() {
    let Some(s) = synced() else { return };
    s.uv_pip_uninstall(".", "beta");
    let f = only_finding(&s);
    assert_finding(&f, "root-library-missing", "library:beta", Some("beta"));
}

#[test]
fn compose_file_edited_by_hand() {
    let Some(s) = synced() else { return };
    let text =
        s.sb.read("docker-compose.hsm.yml")
            .replace("6379:6379", "6380:6379");
    s.sb.write("docker-compose.hsm.yml", &text);
    let f = only_finding(&s);
    assert_finding(&f, "compose-drift", "compose", None);
    assert!(f["found"].as_str().unwrap().contains("6380:6379"), "{f:#}");
}

#[test]
fn env_file_edited() {
    let Some(s) = synced() else { return };
    let text =
        s.sb.read(".hsm/env/foo.env")
            .replace("FOO_PORT=8081", "FOO_PORT=9999");
    s.sb.write(".hsm/env/foo.env", &text);
    let f = only_finding(&s);
    assert_finding(&f, "env-file-drift", "service:foo", None);
    assert!(
        f["found"].as_str().unwrap().contains("+FOO_PORT=9999"),
        "{f:#}"
    );
}

#[test]
fn git_service_moved_to_another_commit() {
    let Some(s) = synced() else { return };
    // hsm's clone is shallow: the user fetches the other tag first.
    s.sb.git(
        "services/emb",
        &["fetch", "-q", "--depth", "1", "origin", "tag", "v1.1.0"],
    );
    s.sb.git(
        "services/emb",
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "v1.1.0",
        ],
    );
    let f = only_finding(&s);
    assert_finding(&f, "git-wrong-commit", "service:emb", None);
    assert_eq!(
        f["expected"],
        format!("commit {} (hsm.lock)", &s.shas[0][..12])
    );
    assert_eq!(f["found"], format!("commit {}", &s.shas[1][..12]));
}

#[test]
fn git_service_with_an_uncommitted_change() {
    let Some(s) = synced() else { return };
    s.sb.write("services/emb/VERSION", "v9-local\n");
    let f = only_finding(&s);
    assert_eq!(f["kind"], "git-dirty");
    assert_eq!(f["component"], "service:emb");
    assert_eq!(f["found"], "modified: VERSION");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("commit, stash or discard"),
        "{f:#}"
    );
}

#[test]
fn manifest_changed_after_sync() {
    let Some(s) = synced() else { return };
    let url = s.sb.read("hsm.toml");
    s.sb.write("hsm.toml", &url.replace(ALL, r#""foo", "emb""#));
    let (code, v) = s.report();
    assert_eq!(code, Some(1));
    let kinds: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["component"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("compose-drift".to_string(), "compose".to_string()),
            ("lock-stale".to_string(), "service:cache".to_string())
        ],
        "{v:#}"
    );
    // `check --locked` also says what stops `sync --locked`: the change
    // to `hsm.lock`, line by line.
    let o = s.sb.run(&["check", "--locked", "--message-format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let locked = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["component"] == "sync")
        .unwrap_or_else(|| panic!("no finding of `sync --locked`: {v:#}"));
    let found = locked["found"].as_str().unwrap();
    assert!(
        found.starts_with("sync --locked would fail: ")
            && found.contains("`--locked` was given, but sync would change `hsm.lock`")
            && found.contains("service[cache]: removed"),
        "{found}"
    );
    // Sync brings it back in line.
    s.sb.sync(&[]);
    assert_eq!(s.check().status.code(), Some(0));
    assert_eq!(s.sb.run(&["check", "--locked"]).status.code(), Some(0));
}

/// `CARGO_NET_OFFLINE=true` is `--offline`, as cargo has it, on `sync` and
/// `check`: a service that needs a clone is refused, with the fix; `false`
/// is no `--offline`.
#[test]
fn cargo_net_offline_is_offline() {
    let Some(s) = synced() else { return };
    std::fs::remove_dir_all(s.sb.path("services/emb")).unwrap();
    let o =
        s.sb.cmd(&["sync"])
            .env("CARGO_NET_OFFLINE", "true")
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`--offline` forbids the network"),
        "{}",
        stderr(&o)
    );
    assert!(!s.sb.exists("services/emb"));
    let o = s.sb.cmd(&["check", "--offline"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o =
        s.sb.cmd(&["sync"])
            .env("CARGO_NET_OFFLINE", "false")
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o =
        s.sb.cmd(&["check"])
            .env("CARGO_NET_OFFLINE", "true")
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn json_report_snapshot() {
    let Some(s) = synced() else { return };
    s.uv_pip("services/foo", &["install", "delta", "gamma==0.0.9"]);
    let o = s.sb.run(&["check", "--message-format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    snapbox::assert_data_eq!(
        stdout(&o),
        snapbox::file!["snapshots/check-report.json"].raw()
    );
}

/// pixi cannot be installed here: a stand-in `pixi` that exits 0 but creates
/// no environment. Sync's own verification catches what the tool did not do.
#[test]
fn sync_whose_result_fails_inspection_exits_1_pixi_stand_in() {
    let sb = Sandbox::new();
    sb.write(
        "bin/pixi",
        "#!/bin/sh\necho 'version = 6' > \"$(dirname \"$3\")/pixi.lock\"\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(sb.path("bin/pixi"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    sb.write(
        "gpu/pixi.toml",
        "[workspace]\nname = \"gpu\"\nchannels = []\nplatforms = []\n",
    );
    sb.write(
        "hsm.toml",
        "[services]\nstandalone = [\"gpu\"]\n[registry.services.gpu]\nsources.prod = { type = \"local\", path = \"gpu\" }\ndeployment-profiles.default = { runtime = \"pixi\" }\n",
    );
    let path = format!(
        "{}:{}",
        sb.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("drift: service:gpu [venv-missing]"), "{err}");
    // The sync itself completed (files stay); `--no-verify` skips the inspection.
    assert!(sb.exists("hsm.lock"));
    let o = sb
        .cmd(&["sync", "--no-verify"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // And the JSON document carries the verification.
    let o = sb
        .cmd(&["sync", "--message-format", "json"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["verification"]["findings"][0]["kind"], "venv-missing",
        "{v:#}"
    );
}

/// A venv service pins only its top-level requirement: what pip pulled in
/// for it (found through installed `Requires-Dist`) is not drift, but a
/// package nobody asked for is.
#[test]
fn venv_service_extras_are_judged_by_what_pip_pulled_in() {
    if !require("venv") || !require("uv") {
        return;
    }
    let sb = Sandbox::new();
    sb.write(
        "svc/rr/requirements.txt",
        &format!(
            "--no-index\n--find-links {}\nalpha==1.0.0\n",
            sb.path("wheels").display()
        ),
    );
    sb.write(
        "hsm.toml",
        "[services]\nstandalone = [\"rr\"]\n[registry.services.rr]\ndependencies = [\"beta==2.0.0\"]\nsources.prod = { type = \"local\", path = \"svc/rr\" }\ndeployment-profiles.default = { runtime = \"venv\" }\n",
    );
    sb.sync(&[]);
    let s = Synced { sb, shas: vec![] };
    assert_eq!(s.check().status.code(), Some(0), "{}", stderr(&s.check()));
    s.uv_pip("svc/rr", &["install", "delta"]);
    let f = only_finding(&s);
    assert_finding(&f, "package-extra", "service:rr", Some("delta"));
}
