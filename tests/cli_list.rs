//! `cargo hsm list` on the bundled example, human and JSON, and the rendering
//! of a configuration error. Snapshots live in tests/snapshots/; refresh them
//! with `SNAPSHOTS=overwrite cargo test --test cli_list`.

use std::path::PathBuf;

use snapbox::cmd::{cargo_bin, Command};
use snapbox::{Assert, Redactions};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/rag-stack")
}

fn assert_with_root(root: &std::path::Path) -> Assert {
    let mut r = Redactions::new();
    r.insert("[ROOT]", root.to_path_buf()).unwrap();
    Assert::new().action_env("SNAPSHOTS").redact_with(r)
}

fn hsm() -> Command {
    Command::new(cargo_bin!("cargo-hsm"))
        .arg("hsm")
        .args(["--color", "never"])
}

#[test]
fn list_human_on_the_example() {
    let root = example();
    hsm()
        .with_assert(assert_with_root(&root))
        .arg("list")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .assert()
        .success()
        .stdout_eq(snapbox::file!["snapshots/list-rag-stack.txt"])
        .stderr_eq("");
}

#[test]
fn list_json_is_the_whole_plan_with_a_schema_version() {
    let root = example();
    let out = hsm()
        .with_assert(assert_with_root(&root))
        .args(["list", "--message-format", "json", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .assert()
        .success()
        .stdout_eq(snapbox::file!["snapshots/list-rag-stack.json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["plan"]["services"].as_array().unwrap().len(), 8);
}

#[test]
fn list_runs_from_a_subdirectory_without_manifest_path() {
    let root = example();
    hsm()
        .with_assert(assert_with_root(&root))
        .arg("list")
        .current_dir(root.join("crates/api"))
        .assert()
        .success()
        .stdout_eq(snapbox::file!["snapshots/list-rag-stack.txt"]);
}

/// Discovery without `cargo metadata`: from a directory that is no package
/// (`config/`) the nearest `Cargo.toml` is the workspace root itself.
#[test]
fn list_runs_from_a_non_package_directory_without_manifest_path() {
    let root = example();
    hsm()
        .with_assert(assert_with_root(&root))
        .arg("list")
        .current_dir(root.join("config"))
        .env("CARGO", "/nonexistent/cargo")
        .assert()
        .success()
        .stdout_eq(snapbox::file!["snapshots/list-rag-stack.txt"]);
}

#[test]
fn configuration_error_rendering() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::write(
        dir.path().join("hsm.toml"),
        "# services of the stack\n[services]\nstandalone = [{ name = \"api\", profile = \"cloud\" }]\n\n[registry.services.api]\nsources.prod = { type = \"local\", path = \"api\" }\ndeployment-profiles.default = { runtime = \"uv\" }\ndeployment-profiles.cluod = { runtime = \"uv\" }\n",
    )
    .unwrap();
    hsm()
        .with_assert(assert_with_root(dir.path()))
        .arg("list")
        .arg("--manifest-path")
        .arg(dir.path().join("Cargo.toml"))
        .assert()
        .code(2)
        .stdout_eq("")
        .stderr_eq(snapbox::file!["snapshots/error-undefined-profile.txt"]);
}

#[test]
fn usage_error_exits_with_2() {
    hsm().arg("lisst").assert().code(2);
}

#[test]
fn outside_a_cargo_workspace_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = hsm().arg("list").current_dir(dir.path()).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("could not find or read the Cargo workspace"),
        "{stderr}"
    );
}

#[test]
fn list_verbose_shows_commands_ports_and_requirements() {
    let root = example();
    let run = |verbose: bool| {
        let mut c = hsm()
            .arg("list")
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"));
        if verbose {
            c = c.arg("-v");
        }
        String::from_utf8(c.output().unwrap().stdout).unwrap()
    };
    let (plain, verbose) = (run(false), run(true));
    for detail in [
        "command: python -m embedder  (in .)",
        "ports: 18080:8080",
        "volumes: pgdata:/var/lib/postgresql/data",
        "requirement: my-utils",
        "dependencies: tokenizer-lib",
    ] {
        assert!(verbose.contains(detail), "{detail} not in:\n{verbose}");
        assert!(!plain.contains(detail), "{detail} in plain list");
    }
}

/// A pypi library that names no `package` installs its own name: `list`,
/// the JSON Plan and the requirement all say which, never a placeholder,
/// and a bare version reads as `==`.
#[test]
fn pypi_library_without_package_is_shown_by_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::write(
        dir.path().join("hsm.toml"),
        "[libraries]\nstandalone = [\"black\", \"ruff\"]\n\n[registry.libraries.black]\nsources.prod = { type = \"pypi\", version = \"23.2.0\" }\n\n[registry.libraries.ruff]\nsources.prod = { type = \"pypi\", package = \"ruff\", version = \">=0.5\" }\n",
    )
    .unwrap();
    let out = hsm()
        .arg("list")
        .arg("--manifest-path")
        .arg(dir.path().join("Cargo.toml"))
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(!text.contains("<name>"), "{text}");
    assert!(text.contains("source=pypi black==23.2.0"), "{text}");
    assert!(text.contains("source=pypi ruff>=0.5"), "{text}");
    let out = hsm()
        .args(["list", "--message-format", "json", "--manifest-path"])
        .arg(dir.path().join("Cargo.toml"))
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let black = &doc["plan"]["libraries"][0];
    assert_eq!(black["name"], "black");
    assert_eq!(black["requirement"], "black==23.2.0");
    assert_eq!(black["source"]["package"], "black", "{black}");
}

#[test]
fn list_marks_a_local_source_outside_the_workspace() {
    let top = tempfile::tempdir().unwrap();
    let ws = top.path().join("ws");
    std::fs::create_dir_all(ws.join("inside")).unwrap();
    std::fs::create_dir_all(top.path().join("embedder")).unwrap();
    std::fs::write(ws.join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::write(
        ws.join("hsm.toml"),
        "[services]\nstandalone = [\"embedder\", \"inside\"]\n\n[registry.services.embedder]\nsources.prod = { type = \"local\", path = \"../embedder\" }\ndeployment-profiles.default = { runtime = \"venv\" }\n\n[registry.services.inside]\nsources.prod = { type = \"local\", path = \"inside\" }\ndeployment-profiles.default = { runtime = \"venv\" }\n",
    )
    .unwrap();
    let out = hsm()
        .arg("list")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap().to_string();
    assert!(
        line("embedder").ends_with("path=../embedder  (outside the workspace)"),
        "{text}"
    );
    assert!(!line("inside ").contains("outside"), "{text}");
}
