//! `cargo hsm init`, `service init` and `library init`, including the seed's
//! L2 acceptance: a uv service created under a root uv workspace is
//! standalone, and `uv sync` inside it never touches the root venv.

mod edit_support;

use edit_support::{have, Sandbox};
use snapbox::{assert_data_eq, str};

#[test]
fn init_creates_manifest_registry_and_gitignore() {
    let sb = Sandbox::new(&[(".gitignore", "/target\n")]);
    let r = sb.ok(&["init"]);
    assert!(r.stderr.contains("Created `hsm.toml`"), "{}", r.stderr);
    for d in ["libraries", "services", "library_groups", "service_groups"] {
        assert!(sb.path(&format!("hsm-registry/{d}")).is_dir(), "{d}");
    }
    assert_data_eq!(
        sb.read(".gitignore"),
        str![[r#"
/target

# cargo hsm: clones of git-sourced services (services created with
# `cargo hsm service init` are re-included below), hsm's state, environments,
# and cargo's build output
/services/*
/.hsm/
.venv/
.pixi/
.env

"#]]
    );
    assert!(sb.read("hsm.toml").contains("name = \"sandbox\""));
    // The manifest it wrote is valid and empty.
    let list = sb.ok(&["list"]).stdout;
    assert!(list.contains("(none)"), "{list}");
    // A second init refuses and changes nothing.
    let e = sb.refused(&["init"]);
    assert!(e.contains("refusing to overwrite"), "{e}");
}

#[test]
fn init_metadata_writes_workspace_metadata_and_keeps_cargo_toml() {
    let cargo = "# my workspace\n[workspace]\nmembers = []   # none yet\n";
    let sb = Sandbox::new(&[("Cargo.toml", cargo), ("src/lib.rs", "")]);
    sb.ok(&["init", "--metadata", "--registry", "registry"]);
    let text = sb.read("Cargo.toml");
    assert!(text.starts_with(cargo), "{text}");
    assert_data_eq!(
        &text[cargo.len()..],
        str![[r#"

# The hsm manifest: which Python libraries and services this workspace uses.
# `cargo hsm list` shows the selection; `cargo hsm sync` makes it real.
[workspace.metadata.hsm.project]
name = "[..]"
services-dir = "services"

[workspace.metadata.hsm.registry]
path = "registry"

[workspace.metadata.hsm.libraries]
standalone = []

[workspace.metadata.hsm.services]
standalone = []

"#]]
    );
    assert!(sb.path("registry/services").is_dir());
    let e = sb.refused(&["init"]);
    assert!(e.contains("workspace.metadata.hsm"), "{e}");
    // Edits then go to Cargo.toml.
    sb.ok(&[
        "registry",
        "service",
        "add",
        "db",
        "--prod",
        "type=docker-image,image=postgres:16",
    ]);
    sb.ok(&["service", "add", "db"]);
    assert!(sb.read("Cargo.toml").contains("standalone = [\"db\"]"));
}

#[test]
fn init_metadata_in_a_single_crate_repo_uses_package_metadata() {
    let sb = Sandbox::new(&[]);
    sb.ok(&["init", "--metadata"]);
    assert!(sb
        .read("Cargo.toml")
        .contains("[package.metadata.hsm.project]"));
    sb.ok(&["list"]);
}

const ROOT_PYPROJECT: &str = r#"[project]
name = "root"
version = "0.1.0"
requires-python = ">=3.8"
dependencies = []

[tool.uv.workspace]
members = ["services/*"]
"#;

/// Seed L2: `service init` in a workspace whose root `pyproject.toml` has a
/// uv workspace with `members = ["services/*"]`.
#[test]
fn service_init_uv_is_standalone_and_uv_sync_stays_inside_it() {
    if !have("uv") {
        return;
    }
    let sb = Sandbox::new(&[("pyproject.toml", ROOT_PYPROJECT)]);
    sb.ok(&["init"]);
    // The root venv exists before; it must stay as it was.
    let venv = std::process::Command::new("uv")
        .args(["venv", "--offline", "--quiet"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert!(
        venv.status.success(),
        "{}",
        String::from_utf8_lossy(&venv.stderr)
    );
    let root_venv_before = listing(&sb.path(".venv"));

    let r = sb.ok(&["service", "init", "embedder", "--runtime", "uv"]);
    assert!(
        r.stderr
            .contains("Created service `embedder` (uv) in `services/embedder`"),
        "{}",
        r.stderr
    );
    // The root's members list is unchanged; the new service is excluded from
    // the root workspace (and recorded as hsm's own entry).
    let root_after = sb.read("pyproject.toml");
    assert!(
        root_after.contains("members = [\"services/*\"]"),
        "{root_after}"
    );
    assert!(
        root_after.contains("exclude = [\"services/embedder\"]"),
        "{root_after}"
    );
    let py = sb.read("services/embedder/pyproject.toml");
    assert!(py.contains("name = \"embedder\""), "{py}");
    // A standalone project: no workspace table of its own (which would make
    // the root's `uv sync` fail with "Nested workspaces are not supported").
    assert!(!py.contains("[tool.uv.workspace]"), "{py}");
    assert!(!sb.path("services/embedder/.git").exists());

    let sync = std::process::Command::new("uv")
        .args(["sync", "--offline"])
        .current_dir(sb.path("services/embedder"))
        .output()
        .unwrap();
    assert!(
        sync.status.success(),
        "uv sync: {}",
        String::from_utf8_lossy(&sync.stderr)
    );
    assert!(sb.path("services/embedder/.venv/pyvenv.cfg").is_file());
    assert!(sb.path("services/embedder/uv.lock").is_file());
    assert!(!sb.path("uv.lock").exists(), "uv locked the root workspace");
    assert_eq!(
        listing(&sb.path(".venv")),
        root_venv_before,
        "the root venv changed"
    );
    assert_eq!(sb.read("pyproject.toml"), root_after);

    // The root still syncs, in its own venv, without adopting the service.
    let root_sync = std::process::Command::new("uv")
        .args(["sync", "--offline"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert!(
        root_sync.status.success(),
        "root uv sync: {}",
        String::from_utf8_lossy(&root_sync.stderr)
    );
    let root_lock = sb.read("uv.lock");
    assert!(!root_lock.contains("embedder"), "{root_lock}");
    assert!(!sb
        .path(".venv/lib/python3.11/site-packages/embedder")
        .exists());

    // Registered with local sources and the uv profile, and selected.
    assert_data_eq!(
        sb.read("hsm-registry/services/embedder.toml"),
        str![[r#"
description = "embedder (created by `cargo hsm service init`)"

[sources.prod]
type = "local"
path = "services/embedder"

[sources.dev]
type = "local"
path = "services/embedder"

[deployment-profiles.default]
mode = "managed"
runtime = "uv"
command = ["python", "main.py"]

"#]]
    );
    assert!(sb.read("hsm.toml").contains("standalone = [\"embedder\"]"));
    assert!(sb.read(".gitignore").contains("!/services/embedder/"));
    let list = sb.ok(&["list"]).stdout;
    assert!(
        list.contains("embedder") && list.contains("runtime=uv"),
        "{list}"
    );
}

fn listing(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut v = Vec::new();
    fn walk(root: &std::path::Path, d: &std::path::Path, v: &mut Vec<(String, u64)>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if md.is_dir() {
                walk(root, &p, v);
            } else {
                v.push((rel, md.len()));
            }
        }
    }
    walk(dir, dir, &mut v);
    v.sort();
    v
}

#[test]
fn service_init_templates_for_venv_pixi_docker_podman() {
    let sb = Sandbox::new(&[]);
    sb.ok(&["init"]);
    sb.ok(&["service", "init", "rerank-er", "--runtime", "venv"]);
    assert!(sb
        .read("services/rerank-er/requirements.txt")
        .starts_with("# rerank-er:"));
    assert!(sb
        .read("services/rerank-er/rerank_er/__main__.py")
        .contains("python -m rerank_er"));
    assert!(sb
        .read("hsm-registry/services/rerank-er.toml")
        .contains("command = [\"python\", \"-m\", \"rerank_er\"]"));

    sb.ok(&["service", "init", "gpu", "--runtime", "pixi"]);
    let pixi = sb.read("services/gpu/pixi.toml");
    assert!(
        pixi.contains("name = \"gpu\"") && pixi.contains("start = \"python -m gpu\""),
        "{pixi}"
    );
    assert!(pixi.parse::<toml_edit::DocumentMut>().is_ok());

    sb.ok(&["service", "init", "gateway", "--runtime", "docker"]);
    sb.ok(&[
        "service",
        "init",
        "edge",
        "--runtime",
        "podman",
        "--path",
        "components/edge",
    ]);
    assert_data_eq!(
        sb.read("services/gateway/Dockerfile"),
        str![[r#"
# gateway: built by `cargo hsm sync` from this directory (the service's local source).
FROM python:3.12-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY gateway/ gateway/
CMD ["python", "-m", "gateway"]

"#]]
    );
    assert!(sb.path("components/edge/Dockerfile").is_file());
    assert!(sb
        .read("hsm-registry/services/edge.toml")
        .contains("path = \"components/edge\""));
    let list = sb.ok(&["list"]).stdout;
    for (n, rt) in [
        ("rerank-er", "venv"),
        ("gpu", "pixi"),
        ("gateway", "docker"),
        ("edge", "podman"),
    ] {
        assert!(
            list.lines()
                .any(|l| l.contains(n) && l.contains(&format!("runtime={rt}"))),
            "{n}: {list}"
        );
    }
    assert_data_eq!(
        sb.read("hsm.toml")
            .lines()
            .find(|l| l.starts_with("standalone = [\""))
            .unwrap(),
        str![[r#"standalone = ["rerank-er", "gpu", "gateway", "edge"]"#]]
    );
}

#[test]
fn service_init_refusals_leave_everything_as_it_was() {
    let sb = Sandbox::new(&[]);
    sb.ok(&["init"]);
    sb.write("services/taken/keep.txt", "mine");
    let e = sb.refused(&["service", "init", "taken", "--runtime", "venv"]);
    assert!(e.contains("already exists and is not empty"), "{e}");
    sb.ok(&["service", "init", "svc", "--runtime", "venv"]);
    // Duplicate registration: the directory is new but the name is taken.
    let e = sb.refused(&[
        "service",
        "init",
        "svc",
        "--runtime",
        "venv",
        "--path",
        "other",
    ]);
    assert!(e.contains("already registered"), "{e}");
    let e = sb.refused(&["service", "init", "Bad/Name"]);
    assert!(e.contains("invalid service name"), "{e}");
    let e = sb.refused(&["service", "init", "x", "--runtime", "deno"]);
    assert!(e.contains("unknown runtime"), "{e}");
    let e = sb.refused(&["service", "init", "y", "--path", "../outside"]);
    assert!(e.contains("outside the workspace"), "{e}");
}

#[test]
fn service_init_no_register_leaves_the_manifest_alone() {
    let sb = Sandbox::new(&[]);
    sb.ok(&["init"]);
    let before = sb.read("hsm.toml");
    sb.ok(&[
        "service",
        "init",
        "loose",
        "--runtime",
        "venv",
        "--no-register",
        "--git-init",
    ]);
    assert_eq!(sb.read("hsm.toml"), before);
    assert!(!sb.path("hsm-registry/services/loose.toml").exists());
    assert!(sb.path("services/loose/requirements.txt").is_file());
    if have("git") {
        assert!(sb.path("services/loose/.git").is_dir());
    }
}

#[test]
fn library_init_registers_an_editable_dev_library() {
    if !have("uv") {
        return;
    }
    let sb = Sandbox::new(&[]);
    sb.ok(&["init"]);
    sb.ok(&["library", "init", "my-utils"]);
    assert!(sb.path("packages/my-utils/pyproject.toml").is_file());
    assert!(sb
        .path("packages/my-utils/src/my_utils/__init__.py")
        .is_file());
    assert_data_eq!(
        sb.read("hsm-registry/libraries/my-utils.toml"),
        str![[r#"
description = "my-utils (created by `cargo hsm library init`)"

[sources.dev]
type = "local"
path = "packages/my-utils"
editable = true

"#]]
    );
    assert!(sb
        .read("hsm.toml")
        .contains("standalone = [{ name = \"my-utils\", mode = \"dev\" }]"));
    let e = sb.refused(&["library", "init", "my-utils"]);
    assert!(e.contains("already exists and is not empty"), "{e}");
}
