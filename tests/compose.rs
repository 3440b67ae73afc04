//! `cargo hsm compose`: the compose file of the container services, checked
//! by snapshots, by parsers no one here wrote (Debian's docker-compose 1.29.2,
//! PyYAML) and by a real run with podman + podman-compose.

mod compose_support;

use compose_support::{compose_config, l2_sandbox, pyyaml, validate, Sandbox};
use serde_json::{json, Value};
use snapbox::{assert_data_eq, file, str};

const FILE: &str = "docker-compose.hsm.yml";

fn services_of(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["services"]
        .as_object()
        .expect("a services map")
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// Our file as PyYAML (YAML 1.1, what docker-compose and podman-compose use) reads it.
fn read_back(sb: &Sandbox, rel: &str) -> Option<Value> {
    pyyaml(sb.read(rel).as_bytes())
}

#[test]
fn l2_compose_file_holds_exactly_the_container_services() {
    let sb = l2_sandbox();
    sb.hsm(&["compose"]).assert().success().stderr_eq(str![[r#"
     Writing `docker-compose.hsm.yml` (3 container services: cache, gateway, postgres)
warning: `hsm.lock` was not updated: there is none yet; `cargo hsm sync` writes it

"#]]);
    assert_data_eq!(
        sb.read(FILE),
        file!["snapshots/compose/l2.docker-compose.hsm.yml"]
    );
    // docker-compose reads exactly the three container services: never the
    // uv (api, notebook), venv (worker) or external (llm) ones.
    if let Some(config) = compose_config(&sb.path(FILE)) {
        assert_eq!(services_of(&config), ["cache", "gateway", "postgres"]);
    }
}

#[test]
fn named_volumes_are_declared_at_top_level() {
    let sb = l2_sandbox();
    sb.hsm(&["compose", "-q"]).assert().success();
    let Some(doc) = read_back(&sb, FILE) else {
        return;
    };
    // Named volumes only: not the bind mount `./initdb`, not the anonymous
    // `/var/log/gateway`; `cachedata` once although two services use it.
    assert_eq!(doc["volumes"], json!({"cachedata": {}, "pgdata": {}}));
    assert_eq!(
        doc["services"]["gateway"]["volumes"],
        json!(["cachedata:/cache:ro", "/var/log/gateway"])
    );
    assert_eq!(
        doc["services"]["postgres"]["volumes"],
        json!([
            "pgdata:/var/lib/postgresql/data",
            "./initdb:/docker-entrypoint-initdb.d:ro"
        ])
    );
    if let Some(config) = compose_config(&sb.path(FILE)) {
        let bind = config["services"]["postgres"]["volumes"][1]
            .as_str()
            .unwrap();
        assert_eq!(
            bind,
            format!(
                "{}:/docker-entrypoint-initdb.d:ro",
                sb.path("initdb").display()
            )
        );
    }
}

#[test]
fn depends_on_comes_from_depends_on_and_implications() {
    let sb = l2_sandbox();
    sb.hsm(&["compose", "-q"]).assert().success();
    let Some(doc) = read_back(&sb, FILE) else {
        return;
    };
    // Declared `depends-on = ["cache"]`, then the implied `postgres`; the
    // implied `llm` (external) and `api` (uv) are not compose's to start.
    assert_eq!(
        doc["services"]["gateway"]["depends_on"],
        json!(["cache", "postgres"])
    );
    assert!(doc["services"]["postgres"].get("depends_on").is_none());
    if let Some(config) = compose_config(&sb.path(FILE)) {
        let deps = config["services"]["gateway"]["depends_on"]
            .as_object()
            .unwrap();
        assert_eq!(deps.keys().collect::<Vec<_>>(), ["cache", "postgres"]);
    }
}

#[test]
fn implied_params_are_merged_across_runtimes() {
    let sb = l2_sandbox();
    sb.hsm(&["compose", "-q"]).assert().success();
    let Some(doc) = read_back(&sb, FILE) else {
        return;
    };
    let env = &doc["services"]["postgres"]["environment"];
    // From the uv `api`, the podman `gateway` and the venv `worker`
    // (`jobs,api`): merged in a stable order, de-duplicated, comma-joined,
    // substituted into the placeholder and exposed as `db_name`.
    assert_eq!(env["db_name"], json!("api,gateway,jobs"));
    assert_eq!(
        env["POSTGRES_MULTIPLE_DATABASES"],
        json!("api,gateway,jobs")
    );
    // External connection values reach the container that implies `llm`.
    let gw = &doc["services"]["gateway"]["environment"];
    assert_eq!(gw["LLM_HOST"], json!("llm.example.org"));
    assert_eq!(gw["LLM_PORT"], json!("443"));
}

#[test]
fn var_references_stay_literal_for_compose_to_interpolate() {
    let sb = l2_sandbox();
    sb.hsm(&["compose", "-q"]).assert().success();
    let text = sb.read(FILE);
    assert!(
        text.contains(r#"POSTGRES_PASSWORD: "${PG_PASSWORD}""#),
        "{text}"
    );
    assert!(!text.contains("$$"), "`$` must not be escaped:\n{text}");
    let Some(doc) = read_back(&sb, FILE) else {
        return;
    };
    assert_eq!(
        doc["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"],
        json!("${PG_PASSWORD}")
    );
    assert_eq!(
        doc["services"]["gateway"]["environment"]["TOKEN"],
        json!("${GATEWAY_TOKEN}")
    );
    // Strings YAML 1.1 would read as a bool or a number stay strings.
    assert_eq!(
        doc["services"]["gateway"]["environment"]["DEBUG"],
        json!("yes")
    );
    assert_eq!(
        doc["services"]["gateway"]["environment"]["WORKERS"],
        json!("4")
    );
    // The secret is taken from the shell only when compose runs.
    if !validate(&sb.path(FILE)) {
        return;
    }
    let out = std::process::Command::new("docker-compose")
        .arg("-f")
        .arg(sb.path(FILE))
        .arg("config")
        .env("PG_PASSWORD", "s3cret-from-shell")
        .env("GATEWAY_TOKEN", "t0ken")
        .output()
        .expect("docker-compose");
    assert!(out.status.success());
    let config = pyyaml(&out.stdout).expect("PyYAML is there with docker-compose");
    assert_eq!(
        config["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"],
        json!("s3cret-from-shell")
    );
}

#[test]
fn git_source_is_built_from_its_checkout() {
    let sb = l2_sandbox();
    sb.hsm(&["compose", "-q"]).assert().success();
    let Some(doc) = read_back(&sb, FILE) else {
        return;
    };
    // `<services-dir>/<name>/<subdirectory>`, relative to the compose file,
    // with the profile's `dockerfile`.
    assert_eq!(
        doc["services"]["gateway"]["build"],
        json!({"context": "services/gateway/docker", "dockerfile": "Containerfile"})
    );
    assert!(doc["services"]["gateway"].get("image").is_none());
    if let Some(config) = compose_config(&sb.path(FILE)) {
        assert_eq!(
            config["services"]["gateway"]["build"]["context"],
            json!(sb.path("services/gateway/docker").to_str().unwrap())
        );
    }
}

#[test]
fn ports_keep_their_declared_order() {
    let sb = l2_sandbox();
    sb.hsm(&["compose", "-q"]).assert().success();
    let Some(doc) = read_back(&sb, FILE) else {
        return;
    };
    // Not sorted, and `22:22` is not read as a base-60 number.
    assert_eq!(
        doc["services"]["gateway"]["ports"],
        json!(["9090:9090", "8080:8080", "127.0.0.1:7070:7070", "22:22"])
    );
    assert_eq!(
        doc["services"]["cache"]["ports"],
        json!(["6380:6379", "127.0.0.1:16379:6379"])
    );
    if let Some(config) = compose_config(&sb.path(FILE)) {
        // docker-compose prints `published`/`target` maps or strings.
        let ports: Vec<String> = config["services"]["gateway"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                p => format!("{}:{}", p["published"], p["target"]),
            })
            .collect();
        assert_eq!(
            ports,
            ["9090:9090", "8080:8080", "127.0.0.1:7070:7070/tcp", "22:22"]
        );
    }
}

#[test]
fn same_plan_gives_identical_bytes_and_no_rewrite() {
    let sb = l2_sandbox();
    sb.hsm(&["compose"]).assert().success();
    let first = std::fs::read(sb.path(FILE)).unwrap();
    let mtime = std::fs::metadata(sb.path(FILE))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    sb.hsm(&["compose"]).assert().success().stderr_eq(str![[r#"
       Fresh `docker-compose.hsm.yml` (3 container services: cache, gateway, postgres)
warning: `hsm.lock` was not updated: there is none yet; `cargo hsm sync` writes it

"#]]);
    assert_eq!(std::fs::read(sb.path(FILE)).unwrap(), first);
    assert_eq!(
        std::fs::metadata(sb.path(FILE))
            .unwrap()
            .modified()
            .unwrap(),
        mtime,
        "an unchanged file must not be rewritten"
    );
    // Another checkout of the same project elsewhere: the same bytes.
    let other = l2_sandbox();
    other.hsm(&["compose", "-q"]).assert().success();
    assert_eq!(std::fs::read(other.path(FILE)).unwrap(), first);
    // And the library's pure render agrees with the file.
    let root = camino::Utf8PathBuf::from_path_buf(sb.root.clone()).unwrap();
    let (_, plan) = cargo_hsm::plan(&root).unwrap();
    let rendered = cargo_hsm::deploy::compose::render(&plan).expect("container services");
    assert_eq!(rendered.as_bytes(), first.as_slice());
    assert_eq!(cargo_hsm::deploy::compose::render(&plan), Some(rendered));
}

#[test]
fn check_reports_missing_differing_and_fresh() {
    let sb = l2_sandbox();
    sb.hsm(&["compose", "--check"])
        .assert()
        .code(1)
        .stderr_eq(str![[r#"
error: `docker-compose.hsm.yml` is missing
help: run `cargo hsm compose` to bring it up to date

"#]]);
    sb.hsm(&["compose", "-q"]).assert().success();
    sb.hsm(&["compose", "--check"])
        .assert()
        .success()
        .stderr_eq(str![[r#"
       Fresh `docker-compose.hsm.yml` (3 container services: cache, gateway, postgres)

"#]]);
    let edited = sb.read(FILE).replace("redis:7-alpine", "redis:6");
    sb.write(FILE, &edited);
    sb.hsm(&["compose", "--check"])
        .assert()
        .code(1)
        .stderr_eq(str![[r#"
error: `docker-compose.hsm.yml` differs from what the manifest generates
--- docker-compose.hsm.yml (on disk)
+++ docker-compose.hsm.yml (generated)
@@ -4,5 +4,5 @@
 services:
   cache:
-    image: redis:6
+    image: redis:7-alpine
     restart: always
     ports:
help: run `cargo hsm compose` to bring it up to date

"#]]);
    // `--check` wrote nothing.
    assert_eq!(sb.read(FILE), edited);
    let out = sb
        .hsm(&["compose", "--check", "--message-format", "json"])
        .assert()
        .code(1);
    let docs: Vec<Value> = json_documents(&out.get_output().stdout);
    assert_eq!(
        docs[0],
        json!({
            "schema": 1,
            "reason": "compose-check",
            "path": "docker-compose.hsm.yml",
            "result": {
                "status": "differs",
                "diff": "--- docker-compose.hsm.yml (on disk)\n+++ docker-compose.hsm.yml (generated)\n@@ -4,5 +4,5 @@\n services:\n   cache:\n-    image: redis:6\n+    image: redis:7-alpine\n     restart: always\n     ports:\n"
            }
        })
    );
    // Exactly one document on stdout: the result says what is wrong; the
    // exit code says that it is a problem.
    assert_eq!(docs.len(), 1);
    // On a terminal (here: `--color always`, or `CLICOLOR_FORCE` as cargo
    // honours it) the diff is in git's colours; `NO_COLOR` turns it off.
    let coloured = |cmd: snapbox::cmd::Command| {
        let o = cmd.output().unwrap();
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = coloured(
        sb.hsm(&["--color", "always", "compose", "--check"])
            .env_remove("NO_COLOR"),
    );
    assert!(e.contains("\x1b[31m-    image: redis:6\x1b[0m\n"), "{e:?}");
    assert!(
        e.contains("\x1b[32m+    image: redis:7-alpine\x1b[0m\n"),
        "{e:?}"
    );
    assert!(e.contains("\x1b[36m@@ -4,5 +4,5 @@\x1b[0m\n"), "{e:?}");
    let e = coloured(
        sb.hsm(&["compose", "--check"])
            .env_remove("NO_COLOR")
            .env("CLICOLOR_FORCE", "1"),
    );
    assert!(e.contains("\x1b[31m-    image: redis:6"), "{e:?}");
    let e = coloured(sb.hsm(&["compose", "--check"]).env("CLICOLOR_FORCE", "1"));
    assert!(
        !e.contains('\x1b'),
        "NO_COLOR wins over CLICOLOR_FORCE: {e:?}"
    );
    // `check` shows the same diff in its drift line, coloured the same way.
    let e = coloured(sb.hsm(&["--color", "always", "check"]));
    assert!(
        e.contains("\x1b[1;33mdrift:\x1b[0m \x1b[1mcompose\x1b[0m [compose-drift]"),
        "{e:?}"
    );
    assert!(
        e.contains("            \x1b[31m-    image: redis:6\x1b[0m"),
        "{e:?}"
    );
}

#[test]
fn file_is_removed_when_no_container_service_remains() {
    let sb = l2_sandbox();
    sb.hsm(&["compose", "-q"]).assert().success();
    // Keep one uv service and the external one (api and worker would
    // imply postgres, a container).
    let manifest = L2_ENV_ONLY.to_string() + &compose_support::L2_MANIFEST[L2_REGISTRY_START..];
    sb.write("hsm.toml", &manifest);
    sb.hsm(&["compose", "--check"])
        .assert()
        .code(1)
        .stderr_eq(str![[r#"
error: `docker-compose.hsm.yml` exists, but no container service (docker, podman) is selected
help: run `cargo hsm compose` to bring it up to date

"#]]);
    sb.hsm(&["compose"]).assert().success().stderr_eq(str![[r#"
    Removing `docker-compose.hsm.yml`: no container service (docker, podman) is selected
warning: `hsm.lock` was not updated: there is none yet; `cargo hsm sync` writes it

"#]]);
    assert!(!sb.path(FILE).exists());
    sb.hsm(&["compose"]).assert().success().stderr_eq(str![[r#"
    Skipping `docker-compose.hsm.yml`: no container service (docker, podman) is selected
warning: `hsm.lock` was not updated: there is none yet; `cargo hsm sync` writes it

"#]]);
    sb.hsm(&["compose", "--check"]).assert().success();
}

const L2_ENV_ONLY: &str = r#"
[project]
name = "l2"

[services]
standalone = ["notebook", { name = "llm", profile = "hosted" }]
"#;

/// Where the registry part of the L2 manifest starts.
const L2_REGISTRY_START: usize = {
    // The first `[registry.` table follows the selection; find it at compile time.
    let m = compose_support::L2_MANIFEST.as_bytes();
    let pat = b"\n[registry.";
    let mut i = 0;
    loop {
        let mut j = 0;
        while j < pat.len() && m[i + j] == pat[j] {
            j += 1;
        }
        if j == pat.len() {
            break i + 1;
        }
        i += 1;
    }
};

#[test]
fn a_file_cargo_hsm_did_not_write_is_left_alone() {
    let sb = l2_sandbox();
    let mine = "services:\n  web:\n    image: nginx\n";
    sb.write(FILE, mine);
    sb.hsm(&["compose"]).assert().code(1).stderr_eq(str![[r#"
error: `docker-compose.hsm.yml` exists and was not generated by cargo-hsm; it is left untouched
help: move the file away, or set `project.compose-file` to a path cargo-hsm may manage

"#]]);
    assert_eq!(sb.read(FILE), mine);
}

#[test]
fn compose_file_elsewhere_gets_paths_relative_to_itself() {
    let sb = l2_sandbox();
    let manifest = sb.read("hsm.toml").replace(
        "container-engine = \"podman\"",
        "container-engine = \"docker\"\ncompose-file = \"deploy/stack.yml\"",
    );
    sb.write("hsm.toml", &manifest);
    sb.hsm(&["compose"]).assert().success().stderr_eq(str![[r#"
     Writing `deploy/stack.yml` (3 container services: cache, gateway, postgres)
warning: `hsm.lock` was not updated: there is none yet; `cargo hsm sync` writes it

"#]]);
    let text = sb.read("deploy/stack.yml");
    assert!(
        text.contains("(`project.container-engine`): docker\n"),
        "{text}"
    );
    let Some(doc) = read_back(&sb, "deploy/stack.yml") else {
        return;
    };
    assert_eq!(
        doc["services"]["gateway"]["build"]["context"],
        json!("../services/gateway/docker")
    );
    assert_eq!(
        doc["services"]["postgres"]["env_file"],
        json!(["../config/postgres.env"])
    );
    assert_eq!(
        doc["services"]["postgres"]["volumes"][1],
        json!("../initdb:/docker-entrypoint-initdb.d:ro")
    );
    if let Some(config) = compose_config(&sb.path("deploy/stack.yml")) {
        assert_eq!(
            config["services"]["gateway"]["build"]["context"],
            json!(sb.path("services/gateway/docker").to_str().unwrap())
        );
        // env_file values were read from `config/postgres.env`.
        assert_eq!(
            config["services"]["postgres"]["environment"]["POSTGRES_USER"],
            json!("l2")
        );
    }
}

#[test]
fn json_output_names_the_action() {
    let sb = l2_sandbox();
    let out = sb
        .hsm(&["compose", "--message-format", "json"])
        .assert()
        .success();
    assert_eq!(
        json_documents(&out.get_output().stdout),
        [json!({
            "schema": 1,
            "reason": "compose",
            "path": "docker-compose.hsm.yml",
            // The file's state in `compose --check`'s words.
            "result": { "status": "fresh" },
            "action": "written",
            "services": ["cache", "gateway", "postgres"]
        })]
    );
}

#[test]
fn dockerfile_is_refused_where_nothing_is_built() {
    let sb = l2_sandbox();
    let manifest = sb.read("hsm.toml").replace(
        "deployment-profiles.default = { runtime = \"uv\" }",
        "deployment-profiles.default = { runtime = \"uv\", dockerfile = \"Dockerfile\" }",
    );
    sb.write("hsm.toml", &manifest);
    let out = sb.hsm(&["compose"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(
            "service `notebook` sets `dockerfile` in profile `default`, but it runs with `uv`"
        ),
        "{stderr}"
    );
    assert!(!sb.path(FILE).exists());
}

#[test]
fn bundled_example_generates_a_valid_file() {
    let sb = Sandbox::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rag-stack");
    copy_dir(&example, &sb.root);
    sb.hsm(&["compose", "-q"]).assert().success();
    let text = sb.read(FILE);
    let Some(doc) = read_back(&sb, FILE) else {
        return;
    };
    // gateway (podman, build), postgres, qdrant, redis (docker); never the
    // uv/venv/pixi services or the external llm-api.
    assert_eq!(
        services_of(&doc),
        ["gateway", "postgres", "qdrant", "redis"],
        "{text}"
    );
    assert_eq!(
        doc["services"]["gateway"]["build"],
        json!({"context": "components/gateway", "dockerfile": "Dockerfile"})
    );
    validate(&sb.path(FILE));
}

/// Every JSON document printed on stdout, in order.
fn json_documents(stdout: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("JSON documents on stdout")
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() == "target" || entry.file_name() == ".venv" {
                continue;
            }
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Takes the podman-compose project down (and its built image away) however
/// the test ends.
struct Stack<'a> {
    project: String,
    file: std::path::PathBuf,
    cwd: &'a std::path::Path,
    env: Vec<(String, String)>,
}

impl Stack<'_> {
    fn command(&self, program: &str) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        c.current_dir(self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
    fn compose(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.command("podman-compose");
        c.arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(&self.file)
            .args(args);
        c
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        use compose_support::run_bounded;
        let limit = std::time::Duration::from_secs(60);
        match run_bounded(&mut self.compose(&["down", "-v", "-t", "0"]), limit) {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "podman-compose down failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("{e}"),
        }
        let image = format!("localhost/{}_web:latest", self.project);
        let _ = run_bounded(self.command("podman").args(["rmi", "-f", &image]), limit);
    }
}

#[test]
fn podman_compose_runs_the_generated_stack() {
    use compose_support::{free_port, http_get, missing, podman_env, require, run_bounded};
    use std::time::{Duration, Instant};

    for (tool, why) in [
        ("podman", "the container engine of the real run"),
        ("podman-compose", "brings the generated file up"),
        ("docker-compose", "validates the generated file"),
        ("bash", "runs tests/support/podman-*.sh"),
    ] {
        if !require(tool, why) {
            return;
        }
    }
    let uid = std::process::Command::new("id").arg("-u").output();
    if uid.map(|o| o.stdout.trim_ascii() != b"0").unwrap_or(true) {
        missing("podman runs as root with a project-local vfs store here; not root");
        return;
    }
    let t_all = Instant::now();

    // One podman state directory per target dir (images are kept between
    // runs); everything project-local, nothing under /etc.
    let state = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("hsm-podman");
    let env = podman_env(&state);
    let t = Instant::now();
    let image = run_bounded(
        std::process::Command::new("bash")
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/support/podman-busybox-image.sh"),
            )
            .envs(env.iter().map(|(k, v)| (k, v))),
        Duration::from_secs(120),
    )
    .expect("podman-busybox-image.sh");
    assert!(
        image.status.success(),
        "could not make localhost/hsm-busybox:latest: {}",
        String::from_utf8_lossy(&image.stderr)
    );
    let t_image = t.elapsed();

    // `web` (podman) is built from a local Dockerfile and serves its own
    // page plus the named volume it shares with `store` (docker runtime,
    // the same compose file), which `web` implies with a parameter.
    let port = free_port();
    let sb = Sandbox::new();
    sb.write(
        "hsm.toml",
        &format!(
            r#"
[project]
name = "podrun"
container-engine = "podman"

[services]
standalone = ["web"]

[registry.services.web]
ports = ["127.0.0.1:{port}:8080"]
volumes = ["shared:/site/shared"]
healthcheck = {{ test = ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:8080/index.html"], interval = "30s", retries = 3 }}
sources.prod = {{ type = "build", path = "components/web", dockerfile = "Dockerfile" }}
deployment-profiles.default = {{ runtime = "podman", command = ["httpd", "-f", "-p", "8080", "-h", "/site"] }}
implies = {{ "service:store" = {{ params = {{ bucket = "web-assets" }} }} }}

[registry.services.store]
volumes = ["shared:/data"]
env = {{ GREETING = "${{HSM_TEST_GREETING}}", BUCKETS = "${{HSM_MERGED_PARAMS.bucket}}" }}
sources.prod = {{ type = "docker-image", image = "localhost/hsm-busybox:latest" }}
deployment-profiles.default = {{ runtime = "docker", command = ["sh", "-c", "env | sort > /data/env.txt; exec sleep 600"] }}
"#
        ),
    );
    sb.write(
        "components/web/Dockerfile",
        "FROM localhost/hsm-busybox:latest\nCOPY site /site\n",
    );
    sb.write(
        "components/web/site/index.html",
        "built from components/web\n",
    );
    sb.hsm(&["compose", "-q"]).assert().success();
    let file = sb.path(FILE);
    validate(&file);
    let text = sb.read(FILE);
    assert!(text.contains("    depends_on:\n      - store\n"), "{text}");

    let stack = Stack {
        project: format!("hsmcompose{}", std::process::id()),
        file: file.clone(),
        cwd: &sb.root,
        env: env
            .into_iter()
            .chain([(
                "HSM_TEST_GREETING".to_string(),
                "hello-from-host".to_string(),
            )])
            .collect(),
    };
    let t = Instant::now();
    let up = run_bounded(&mut stack.compose(&["up", "-d"]), Duration::from_secs(300))
        .expect("podman-compose up");
    assert!(
        up.status.success(),
        "podman-compose up failed:\n{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let t_up = t.elapsed();

    // The built service answers on its published port on the host's loopback.
    let t = Instant::now();
    let mut last = String::new();
    let mut page = None;
    for _ in 0..60 {
        match http_get(port, "/shared/env.txt") {
            Ok((200, body)) if body.contains("BUCKETS=") => {
                page = Some(body);
                break;
            }
            Ok((code, body)) => last = format!("HTTP {code}: {body}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let t_answer = t.elapsed();
    let env_txt =
        page.unwrap_or_else(|| panic!("no answer on 127.0.0.1:{port} within 15 s: {last}"));
    // Merged params reached `store`; `${HSM_TEST_GREETING}` was interpolated
    // by podman-compose from the environment, not copied into the file.
    assert!(env_txt.contains("BUCKETS=web-assets\n"), "{env_txt}");
    assert!(env_txt.contains("bucket=web-assets\n"), "{env_txt}");
    assert!(env_txt.contains("GREETING=hello-from-host\n"), "{env_txt}");
    assert!(!text.contains("hello-from-host"));
    let (code, body) = http_get(port, "/index.html").expect("GET /index.html");
    assert_eq!((code, body.as_str()), (200, "built from components/web\n"));

    // The healthcheck passed through works (no systemd timers here: run it by hand).
    let health = run_bounded(
        stack
            .command("podman")
            .args(["healthcheck", "run", &format!("{}_web_1", stack.project)]),
        Duration::from_secs(30),
    )
    .expect("podman healthcheck run");
    assert!(
        health.status.success(),
        "healthcheck failed: {}{}",
        String::from_utf8_lossy(&health.stdout),
        String::from_utf8_lossy(&health.stderr)
    );

    let t = Instant::now();
    drop(stack);
    let t_down = t.elapsed();
    assert!(
        http_get(port, "/index.html").is_err(),
        "the stack must be down after `podman-compose down`"
    );
    eprintln!(
        "podman timings: image {t_image:?}, up {t_up:?}, first answer {t_answer:?}, down {t_down:?}, total {:?}",
        t_all.elapsed()
    );
}

#[test]
fn local_source_container_is_built_from_its_path() {
    let sb = Sandbox::new();
    sb.write(
        "hsm.toml",
        r#"
[services]
standalone = ["tool", "img"]

[registry.services.tool]
sources.prod = { type = "local", path = "./tools/../tools/tool" }
deployment-profiles.default = { runtime = "docker" }

[registry.services.img]
sources.prod = { type = "docker-image", image = "busybox:1" }
"#,
    );
    sb.write("tools/tool/Dockerfile", "FROM busybox:1\n");
    sb.hsm(&["compose", "-q"]).assert().success();
    let Some(doc) = read_back(&sb, FILE) else {
        return;
    };
    // Normalized, relative, and no `dockerfile` key: compose's default.
    assert_eq!(
        doc["services"]["tool"]["build"],
        json!({"context": "tools/tool"})
    );
    assert_eq!(doc["services"]["img"], json!({"image": "busybox:1"}));
    assert!(doc.get("volumes").is_none());
    validate(&sb.path(FILE));
}

#[test]
fn dockerfile_twice_or_for_an_image_is_a_config_error() {
    let sb = Sandbox::new();
    let manifest = |web: &str| {
        format!(
            r#"
[services]
standalone = ["web"]

[registry.services.web]
{web}
"#
        )
    };
    sb.write(
        "hsm.toml",
        &manifest(
            r#"sources.prod = { type = "build", path = "web", dockerfile = "Dockerfile" }
deployment-profiles.default = { runtime = "docker", dockerfile = "Other" }"#,
        ),
    );
    let out = sb.hsm(&["compose"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(
            "service `web` sets `dockerfile` both in its `build` source and in profile `default`"
        ),
        "{stderr}"
    );
    sb.write(
        "hsm.toml",
        &manifest(
            r#"sources.prod = { type = "docker-image", image = "busybox:1" }
deployment-profiles.default = { runtime = "podman", dockerfile = "Dockerfile" }"#,
        ),
    );
    let out = sb.hsm(&["compose"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("service `web` sets `dockerfile`, but its source is an image"),
        "{stderr}"
    );
    assert!(!sb.path(FILE).exists());
}

/// `sync --dry-run` shows the compose file it would rewrite as a unified
/// diff (disk → what it would write), and its JSON action carries it.
#[test]
fn the_dry_run_shows_the_compose_diff() {
    let sb = Sandbox::new();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write(
        "hsm.toml",
        "[services]\nstandalone = [\"cache\"]\n[registry.services.cache]\nsources.prod = { type = \"docker-image\", image = \"redis:7\" }\n",
    );
    sb.hsm(&["sync"]).assert().success();
    let edited = sb.read(FILE).replace("redis:7", "redis:6");
    sb.write(FILE, &edited);
    let o = sb.hsm(&["sync", "--dry-run"]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("Writing docker-compose.hsm.yml (1 container service)\n--- docker-compose.hsm.yml (on disk)\n+++ docker-compose.hsm.yml (generated)\n@@ "),
        "{e}"
    );
    assert!(
        e.contains("\n-    image: redis:6\n+    image: redis:7\n"),
        "{e}"
    );
    assert_eq!(sb.read(FILE), edited, "a dry run writes nothing");
    let o = sb
        .hsm(&["sync", "--dry-run", "--message-format", "json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let write = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["component"] == "compose")
        .unwrap();
    assert_eq!(write["action"], "write", "{doc}");
    assert!(
        write["diff"]
            .as_str()
            .unwrap()
            .contains("-    image: redis:6\n+    image: redis:7\n"),
        "{doc}"
    );
    // A real sync shows no diff; it writes.
    let o = sb.hsm(&["sync"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("+++"));
    assert!(sb.read(FILE).contains("image: redis:7\n"));
}
