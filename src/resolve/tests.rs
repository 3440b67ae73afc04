//! L1: resolution without uv, git or writes — only fixture files in a temp dir.

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Error;
use crate::manifest::model::{Mode, RuntimeType};
use crate::plan::{Deployment, EnvLayer, Plan};

struct Sandbox {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
}

fn sandbox(files: &[(&str, &str)]) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    Sandbox { _dir: dir, root }
}

fn plan_at(root: &Utf8Path) -> Result<Plan, Error> {
    crate::plan(root).map(|(_, p)| p)
}

fn plan(files: &[(&str, &str)]) -> Plan {
    let sb = sandbox(files);
    match plan_at(&sb.root) {
        Ok(p) => p,
        Err(e) => panic!("resolution failed: {}", e.plain()),
    }
}

fn fails(files: &[(&str, &str)]) -> String {
    let sb = sandbox(files);
    match plan_at(&sb.root) {
        Ok(_) => panic!("resolution should fail"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "configuration errors exit with 2");
            e.plain()
        }
    }
}

// ---------------------------------------------------------------- target paths

const PATHS: &str = r#"
[services]
standalone = ["from-local", "from-git", "from-subdir", "image"]

[registry.services.from-local]
sources.prod = { type = "local", path = "../checkouts/./from-local" }
deployment-profiles.default = { runtime = "uv" }

[registry.services.from-git]
sources.prod = { type = "git", url = "https://example.org/g.git", ref = "v1" }
deployment-profiles.default = { runtime = "venv" }

[registry.services.from-subdir]
sources.prod = { type = "git", url = "https://example.org/m.git", subdirectory = "python/worker" }

[registry.services.image]
sources.prod = { type = "docker-image", image = "redis:7" }
"#;

#[test]
fn target_paths_for_local_git_and_subdirectory_sources() {
    let p = plan(&[("hsm.toml", PATHS)]);
    let t = |n: &str| {
        p.service(n)
            .unwrap()
            .target_path
            .clone()
            .map(|p| p.to_string())
    };
    assert_eq!(t("from-local").as_deref(), Some("../checkouts/from-local"));
    assert_eq!(t("from-git").as_deref(), Some("services/from-git"));
    assert_eq!(
        t("from-subdir").as_deref(),
        Some("services/from-subdir/python/worker")
    );
    assert_eq!(
        p.service("from-subdir")
            .unwrap()
            .checkout_path
            .as_deref()
            .map(|p| p.as_str()),
        Some("services/from-subdir")
    );
    assert_eq!(t("image"), None);
    // No profile: uv for a git source, docker for an image.
    assert_eq!(
        p.service("from-subdir").unwrap().runtime(),
        Some(RuntimeType::Uv)
    );
    assert_eq!(
        p.service("image").unwrap().runtime(),
        Some(RuntimeType::Docker)
    );
}

#[test]
fn target_paths_follow_a_custom_services_dir() {
    let text = format!("[project]\nservices-dir = \"./vendor//svc/\"\n{PATHS}");
    let p = plan(&[("hsm.toml", &text)]);
    assert_eq!(p.project.services_dir, Utf8PathBuf::from("vendor/svc"));
    assert_eq!(
        p.service("from-git").unwrap().target_path.as_deref(),
        Some(Utf8Path::new("vendor/svc/from-git"))
    );
    assert_eq!(
        p.service("from-local").unwrap().target_path.as_deref(),
        Some(Utf8Path::new("../checkouts/from-local"))
    );
}

#[test]
fn target_paths_do_not_depend_on_the_current_directory() {
    let sb = sandbox(&[("hsm.toml", PATHS)]);
    // The test process runs in the crate directory, not in the sandbox.
    let cwd = std::env::current_dir().unwrap();
    assert_ne!(cwd, sb.root.as_std_path());
    let p = plan_at(&sb.root).unwrap();
    assert_eq!(p.project.workspace_root, sb.root);
    let git = p.service("from-git").unwrap().target_path.clone().unwrap();
    assert!(git.is_relative());
    assert_eq!(
        p.project.workspace_root.join(&git),
        sb.root.join("services/from-git")
    );
}

// ---------------------------------------------------------------- implication merging

/// `api` (uv) and `web` (docker) both pass `db_name` to `target`.
fn merging_fixture(target_runtime: &str, target_source: &str) -> String {
    format!(
        r#"
[services]
standalone = ["web", "api"]

[registry.services.api]
sources.prod = {{ type = "local", path = "api" }}
deployment-profiles.default = {{ runtime = "uv" }}
implies = {{ "service:target" = {{ params = {{ db_name = "billing_db" }} }} }}

[registry.services.web]
sources.prod = {{ type = "docker-image", image = "nginx:1" }}
implies = {{ "service:target" = {{ params = {{ db_name = "auth_db", pool = "5" }} }} }}

[registry.services.target]
sources.prod = {target_source}
env = {{ DATABASES = "${{HSM_MERGED_PARAMS.db_name}}", SECRET = "${{DB_SECRET}}" }}
deployment-profiles.default = {{ runtime = "{target_runtime}" }}
"#
    )
}

fn assert_merged(p: &Plan) {
    let t = p.service("target").unwrap();
    let merged = &t.params["db_name"];
    // Stable order: by who passed the value (service:api < service:web).
    assert_eq!(merged.value, "billing_db,auth_db");
    let froms: Vec<&str> = merged
        .contributions
        .iter()
        .map(|c| c.from.as_str())
        .collect();
    assert_eq!(froms, ["service:api", "service:web"]);
    assert_eq!(t.params["pool"].value, "5");
    assert_eq!(t.env["db_name"].value, "billing_db,auth_db");
    assert_eq!(t.env["db_name"].layer, EnvLayer::Params);
    assert_eq!(t.env["DATABASES"].value, "billing_db,auth_db");
    // Other `${VAR}` stay literal.
    assert_eq!(t.env["SECRET"].value, "${DB_SECRET}");
    // The target was selected only by implication.
    assert!(t
        .selected_by
        .iter()
        .all(|w| w.reason.starts_with("implied by ")));
}

#[test]
fn merging_into_a_docker_service_from_uv_and_docker_services() {
    let p = plan(&[(
        "hsm.toml",
        &merging_fixture(
            "docker",
            r#"{ type = "docker-image", image = "postgres:16" }"#,
        ),
    )]);
    assert!(p.service("target").unwrap().is_container());
    assert_merged(&p);
}

#[test]
fn merging_into_a_uv_service_from_uv_and_docker_services() {
    let p = plan(&[(
        "hsm.toml",
        &merging_fixture("uv", r#"{ type = "local", path = "target" }"#),
    )]);
    assert!(p.service("target").unwrap().is_environment());
    assert_merged(&p);
}

#[test]
fn merging_drops_repeated_values() {
    let text = merging_fixture(
        "docker",
        r#"{ type = "docker-image", image = "postgres:16" }"#,
    )
    .replace("billing_db", "auth_db");
    let p = plan(&[("hsm.toml", &text)]);
    assert_eq!(
        p.service("target").unwrap().params["db_name"].value,
        "auth_db"
    );
}

// ---------------------------------------------------------------- transitive, cycles, order

const CHAIN: &str = r#"
[services]
standalone = ["a"]

[registry.services.a]
sources.prod = { type = "local", path = "a" }
implies = { "service:b" = true }

[registry.services.b]
sources.prod = { type = "local", path = "b" }
implies = { "library:lib" = true, "service:a" = { params = { from_b = "yes" } } }

[registry.libraries.lib]
sources.prod = { type = "pypi", version = "1.2" }
implies = { "library_group:client" = "fast" }

[registry.libraries.fast]
sources.prod = { type = "pypi", package = "fast-client", version = ">=2" }

[registry.libraries.slow]
sources.prod = { type = "pypi" }

[registry.library_groups.client]
strategy = "1-of-N"
options = ["fast", "slow"]
"#;

#[test]
fn implications_apply_transitively_and_cycles_converge() {
    let p = plan(&[("hsm.toml", CHAIN)]);
    let names: Vec<&str> = p.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let libs: Vec<(&str, &str)> = p
        .libraries
        .iter()
        .map(|l| (l.name.as_str(), l.requirement.as_str()))
        .collect();
    assert_eq!(libs, [("fast", "fast-client>=2"), ("lib", "lib==1.2")]);
    assert_eq!(p.groups[0].selection, ["fast"]);
    // The cycle a → b → a passed b's parameter to a and stopped.
    assert_eq!(p.service("a").unwrap().params["from_b"].value, "yes");
    assert_eq!(p.service("a").unwrap().depends_on, ["b"]);
    assert_eq!(p.service("b").unwrap().depends_on, ["a"]);
}

#[test]
fn result_does_not_depend_on_declaration_order() {
    // Same registry, entries and keys declared in another order, in files.
    let reordered = [
        ("hsm.toml", "[registry]\npath = \"reg\"\n[services]\nstandalone = [\"a\"]\n"),
        ("reg/library_groups/client.toml", "options = [\"slow\", \"fast\"]\nstrategy = \"1-of-N\"\n"),
        ("reg/libraries/slow.toml", "sources.prod = { type = \"pypi\" }\n"),
        ("reg/libraries/fast.toml", "sources.prod = { version = \">=2\", package = \"fast-client\", type = \"pypi\" }\n"),
        ("reg/libraries/lib.toml", "implies = { \"library_group:client\" = \"fast\" }\nsources.prod = { type = \"pypi\", version = \"1.2\" }\n"),
        ("reg/services/b.toml", "implies = { \"service:a\" = { params = { from_b = \"yes\" } }, \"library:lib\" = true }\nsources.prod = { type = \"local\", path = \"b\" }\n"),
        ("reg/services/a.toml", "implies = { \"service:b\" = true }\nsources.prod = { type = \"local\", path = \"a\" }\n"),
    ];
    let a = plan(&[("hsm.toml", CHAIN)]);
    let b = plan(&reordered);
    let strip = |p: &Plan| {
        let mut p = p.clone();
        p.project.workspace_root = Utf8PathBuf::new();
        p.project.manifest_path = Utf8PathBuf::new();
        p.project.registry_dir = None;
        p.project.name = String::new();
        for s in &mut p.services {
            s.selected_by.clear();
        }
        for l in &mut p.libraries {
            l.selected_by.clear();
        }
        p
    };
    assert_eq!(strip(&a), strip(&b));
}

// ---------------------------------------------------------------- modes, profiles, external

#[test]
fn modes_fall_back_from_dev_to_prod_and_modes_table_applies_to_implied_components() {
    let p = plan(&[(
        "hsm.toml",
        r#"
[services]
standalone = [{ name = "svc", mode = "dev" }, "only-prod"]
[modes]
only-prod = "dev"
lib = "dev"
[registry.services.svc]
sources.prod = { type = "git", url = "https://example.org/s.git" }
sources.dev = { type = "local", path = "../svc" }
implies = { "library:lib" = true }
[registry.services.only-prod]
sources.prod = { type = "local", path = "p" }
[registry.libraries.lib]
sources.prod = { type = "pypi" }
sources.dev = { type = "local", path = "libs/lib", editable = true }
"#,
    )]);
    let svc = p.service("svc").unwrap();
    assert_eq!(
        (svc.mode, svc.source.as_ref().unwrap().kind()),
        (Mode::Dev, "local")
    );
    let only = p.service("only-prod").unwrap();
    assert_eq!(
        (only.mode, only.source.as_ref().unwrap().kind()),
        (Mode::Dev, "local")
    );
    let lib = p.library("lib").unwrap();
    assert_eq!(
        (lib.mode, lib.target_path.as_deref().map(|p| p.as_str())),
        (Mode::Dev, Some("libs/lib"))
    );
}

#[test]
fn external_profile_passes_prefixed_values_to_implying_services() {
    let p = plan(&[(
        "hsm.toml",
        r#"
[services]
standalone = ["app"]
groups.db = { strategy = "1-of-N", selection = "pg", profile = "cloud" }
[registry.service_groups.db]
strategy = "1-of-N"
options = ["pg"]
[registry.services.app]
sources.prod = { type = "local", path = "app" }
implies = { "service:pg" = true }
[registry.services.pg]
sources.prod = { type = "docker-image", image = "postgres:16" }
deployment-profiles.default = { runtime = "docker" }
deployment-profiles.cloud = { mode = "external", external = { host = "db.internal", port = 5432 } }
"#,
    )]);
    let pg = p.service("pg").unwrap();
    assert_eq!(pg.profile, "cloud");
    assert!(matches!(pg.deployment, Deployment::External { .. }));
    assert_eq!(pg.target_path, None);
    let app = p.service("app").unwrap();
    assert_eq!(app.env["PG_HOST"].value, "db.internal");
    assert_eq!(app.env["PG_PORT"].value, "5432");
    assert_eq!(app.env["PG_PORT"].layer, EnvLayer::External);
}

// ---------------------------------------------------------------- conflicts

const VDB: &str = r#"
[registry.service_groups.vector-db]
strategy = "1-of-N"
options = ["qdrant", "milvus"]
[registry.services.qdrant]
sources.prod = { type = "docker-image", image = "qdrant/qdrant" }
[registry.services.milvus]
sources.prod = { type = "docker-image", image = "milvus" }
[registry.services.embedder]
sources.prod = { type = "local", path = "e" }
implies = { "service_group:vector-db" = "qdrant" }
[registry.services.indexer]
sources.prod = { type = "local", path = "i" }
implies = { "service_group:vector-db" = "milvus" }
"#;

#[test]
fn conflict_between_manifest_and_implication_names_both() {
    let msg = fails(&[(
        "hsm.toml",
        &format!("[services]\nstandalone = [\"embedder\"]\ngroups.vector-db = {{ selection = \"milvus\" }}\n{VDB}"),
    )]);
    assert!(
        msg.contains("service group `vector-db` is 1-of-N, but two options are selected: `milvus`"),
        "{msg}"
    );
    assert!(msg.contains("hsm.toml:3:"), "{msg}");
    assert!(msg.contains("services.groups.vector-db.selection"), "{msg}");
    assert!(msg.contains("implied by service:embedder"), "{msg}");
    assert!(
        msg.contains("registry.services.embedder.implies.\"service_group:vector-db\""),
        "{msg}"
    );
}

#[test]
fn conflict_between_two_implications_names_both() {
    let msg = fails(&[(
        "hsm.toml",
        &format!("[services]\nstandalone = [\"indexer\", \"embedder\"]\n{VDB}"),
    )]);
    assert!(msg.contains("implied by service:embedder"), "{msg}");
    assert!(msg.contains("implied by service:indexer"), "{msg}");
    assert!(
        msg.contains("`milvus`") && msg.contains("`qdrant`"),
        "{msg}"
    );
}

#[test]
fn implied_option_missing_from_the_group_is_an_error() {
    let text = format!("[services]\nstandalone = [\"embedder\"]\n{VDB}")
        .replace("= \"qdrant\" }", "= \"weaviate\" }");
    let msg = fails(&[("hsm.toml", &text)]);
    assert!(
        msg.contains("selects `weaviate`, which is not an option of service group `vector-db`"),
        "{msg}"
    );
    assert!(
        msg.contains("registry.service_groups.vector-db.options"),
        "{msg}"
    );
}

#[test]
fn env_key_set_by_two_layers_names_both() {
    let msg = fails(&[
        ("hsm.toml", "[services]\nstandalone = [\"s\"]\n[registry.services.s]\nenv-file = [\"s.env\"]\nenv = { PORT = \"1\" }\nsources.prod = { type = \"local\", path = \"s\" }\n"),
        ("s.env", "# port\nPORT=2\n"),
    ]);
    assert!(
        msg.contains("environment variable `PORT` of service `s` is set twice"),
        "{msg}"
    );
    assert!(msg.contains("s.env:2:1"), "{msg}");
    assert!(msg.contains("registry.services.s.env.PORT"), "{msg}");
}

#[test]
fn parameter_colliding_with_an_env_key_is_an_error() {
    let msg = fails(&[(
        "hsm.toml",
        r#"
[services]
standalone = ["a"]
[registry.services.a]
sources.prod = { type = "local", path = "a" }
implies = { "service:b" = { params = { PORT = "1" } } }
[registry.services.b]
sources.prod = { type = "local", path = "b" }
env = { PORT = "2" }
"#,
    )]);
    assert!(msg.contains("`PORT` of service `b` is set twice"), "{msg}");
    assert!(msg.contains("a parameter passed by `service:a`"), "{msg}");
}
