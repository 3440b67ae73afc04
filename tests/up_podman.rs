//! `cargo hsm up` across the boundary: a uv process and a real podman
//! container (the busybox image the compose tests import) that reach each
//! other through the injected variables, in both directions; `-d` and
//! `down` of the pair.

mod compose_support;
mod sync_support;
mod up_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use compose_support::free_port;
use sync_support::{copy_example, stderr, stdout, Sandbox};
use up_support::*;

/// The ids of the project's running (`all`: also stopped) containers.
fn containers(env: &[(String, String)], project: &str, all: bool) -> String {
    let mut c = Command::new("podman");
    c.args(["ps", "-q"]);
    if all {
        c.arg("-a");
    }
    c.args([
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ])
    .envs(env.iter().map(|(k, v)| (k, v)));
    let out = compose_support::run_bounded(&mut c, Duration::from_secs(30)).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Takes the test's compose project down however the test ends.
struct Project {
    name: String,
    root: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Drop for Project {
    fn drop(&mut self) {
        let mut c = Command::new("podman-compose");
        c.args([
            "-p",
            &self.name,
            "-f",
            "docker-compose.hsm.yml",
            "down",
            "-v",
            "-t",
            "0",
        ])
        .current_dir(&self.root)
        .envs(self.env.iter().map(|(k, v)| (k, v)));
        let _ = compose_support::run_bounded(&mut c, Duration::from_secs(60));
    }
}

type Env = Vec<(String, String)>;

/// podman, podman-compose and uv, with the busybox image imported into the
/// tests' own podman store: the store's environment, or `None` (skipped
/// locally, failing under `CI=true`).
fn podman_ready() -> Option<(Env, std::sync::MutexGuard<'static, ()>)> {
    // One test at a time in the shared store.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    use compose_support::{podman_as_root, podman_env, run_bounded};
    if !podman_as_root(&[
        ("podman", "the container engine"),
        ("podman-compose", "the compose front end of podman"),
        ("bash", "runs tests/support/podman-*.sh"),
    ]) {
        return None;
    }
    let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hsm-podman");
    let env = podman_env(&state);
    let image = run_bounded(
        Command::new("bash")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/podman-busybox-image.sh"),
            )
            .envs(env.iter().map(|(k, v)| (k, v))),
        Duration::from_secs(120),
    )
    .expect("podman-busybox-image.sh");
    assert!(
        image.status.success(),
        "{}",
        String::from_utf8_lossy(&image.stderr)
    );

    Some((env, one))
}

/// The head of a manifest of compose project `project` on podman,
/// selecting `standalone` (TOML array items).
fn podman_manifest(project: &str, standalone: &str) -> String {
    format!(
        "[project]\nname = \"{project}\"\ncontainer-engine = \"podman\"\n[services]\nstandalone = [{standalone}]\n"
    )
}

#[test]
fn a_process_and_a_podman_container_reach_each_other() {
    let Some((env, _one)) = podman_ready() else {
        return;
    };
    let (api_port, box_port) = (free_port(), free_port());
    let project = format!("hsmup{}", std::process::id());
    let mut manifest = podman_manifest(&project, r#""probe""#);
    // api: a process that the container reaches through the host gateway.
    manifest += &uv_entry(
        "api",
        &format!(
            "ports = [\"{api_port}\"]\nurl-scheme = \"http\"\nhealthcheck = {{ http = \"/\" }}"
        ),
    );
    // box: a container that fetches from api at start, then serves what it got.
    manifest += &format!(
        r#"[registry.services.box]
ports = ["127.0.0.1:{box_port}:8080"]
url-scheme = "http"
stop-timeout = "1s"
implies = {{ "service:api" = true }}
env = {{ FROM_BOX = "${{HSM_SERVICE.api.url}}/from-box" }}
healthcheck = {{ test = ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:8080/got.txt"], interval = "1s", retries = 20 }}
sources.prod = {{ type = "docker-image", image = "localhost/hsm-busybox:latest" }}
deployment-profiles.default = {{ runtime = "podman", command = ["sh", "-c", "env | grep ^API_ > /www/env.txt; wget -qO /www/got.txt $$FROM_BOX; exec httpd -f -p 8080 -h /www"] }}
"#
    );
    // probe: a process that reaches the container through its published port.
    manifest += &uv_entry("probe", "implies = { \"service:box\" = true }");
    let api = format!(
        r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(("api saw " + self.path).encode())
    def log_message(self, *a):
        print("served", self.path, flush=True)
http.server.HTTPServer((os.environ["HSM_BIND_HOST"], {api_port}), H).serve_forever()
"#
    );
    let probe = "NAME = \"probe\"\n".to_string()
        + RECORD_PIDS
        + "import time, urllib.request\nfor p in ['/got.txt', '/env.txt']:\n    print(urllib.request.urlopen(os.environ['BOX_URL'] + p).read().decode().strip(), flush=True)\nprint('BOX', os.environ['BOX_HOST'], os.environ['BOX_PORT_8080'], flush=True)\nopen('../../probe-done', 'w').close()\ntime.sleep(600)\n";
    let sb = sandbox(&manifest, &[("api", &api), ("probe", &probe)]);
    let _down = Project {
        name: project.clone(),
        root: sb.root.clone(),
        env: env.clone(),
    };
    let mut up = spawn_up(&sb, &[], &env);
    wait_for_file(&sb.path("probe-done"), Duration::from_secs(180), &mut up);
    let procs = recorded(&sb, "probe");
    // SAFETY: our own child.
    unsafe { libc::kill(up.id() as i32, libc::SIGINT) };
    let out = wait_bounded(up, Duration::from_secs(60));
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(130), "{o}\n{e}");
    // container → process: through podman's host gateway, from the injected URL.
    assert!(o.contains("probe | api saw /from-box"), "{o}\n{e}");
    assert!(o.contains("api   | served /from-box"), "{o}");
    assert!(
        o.contains(&format!(
            "API_URL=http://host.containers.internal:{api_port}"
        )),
        "{o}"
    );
    // process → container: loopback and the published port.
    assert!(
        o.contains(&format!("probe | BOX 127.0.0.1 {box_port}")),
        "{o}"
    );
    assert!(
        e.find("Ready api").unwrap() < e.find("Starting box").unwrap(),
        "{e}"
    );
    assert!(
        e.find("Ready box").unwrap() < e.find("Starting probe").unwrap(),
        "{e}"
    );
    // The container is stopped, the processes are gone.
    assert_eq!(
        containers(&env, &project, false),
        "",
        "a container still runs"
    );
    assert_gone(&procs);
    assert!(compose_support::http_get(box_port, "/got.txt").is_err());
    assert!(compose_support::http_get(api_port, "/").is_err());

    // Detached, then `down` from a new shell: the container is removed too.
    let _ = std::fs::remove_file(sb.path("probe-done"));
    let out = wait_bounded(
        spawn_up(&sb, &["-d", "box"], &env),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ps = sb
        .cmd(&["ps", "--message-format", "json"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let ps: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    let rows = ps["services"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{ps}");
    assert_eq!(
        (rows[0]["service"].as_str(), rows[0]["state"].as_str()),
        (Some("api"), Some("running"))
    );
    assert_eq!(
        (rows[1]["service"].as_str(), rows[1]["state"].as_str()),
        (Some("box"), Some("running"))
    );
    assert!(
        rows[1]["container"].as_str().is_some_and(|c| c.len() >= 12),
        "{ps}"
    );
    // Its compose healthcheck, run by hsm (podman has no systemd timers here).
    assert_eq!(rows[1]["health"], "healthy", "{ps}");
    assert_eq!(rows[0]["health"], "healthy", "{ps}");
    let (code, body) = compose_support::http_get(box_port, "/got.txt").unwrap();
    assert_eq!((code, body.as_str()), (200, "api saw /from-box"));
    let down = sb
        .cmd(&["down"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(containers(&env, &project, true), "", "a container is left");
    assert!(compose_support::http_get(api_port, "/").is_err());
}

/// `ps` of the project as JSON rows, with podman's store in the environment.
fn ps_rows(sb: &Sandbox, env: &[(String, String)]) -> Vec<serde_json::Value> {
    let out = sb
        .cmd(&["ps", "--message-format", "json"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["services"].as_array().unwrap().clone()
}

/// Waits until `ps` shows `want` as the health of every service named.
fn wait_for_health(sb: &Sandbox, env: &[(String, String)], names: &[&str], want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = ps_rows(sb, env);
        let all = names.iter().all(|n| {
            rows.iter()
                .any(|r| r["service"] == *n && r["state"] == "running" && r["health"] == want)
        });
        if all {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ps did not show {names:?} {want} within 30 s: {rows:?}\nsupervisor log:\n{}",
            std::fs::read_to_string(sb.path(".hsm/run/supervisor.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// After `up -d` has returned, its supervisor keeps running each
/// container's healthcheck every `interval`: the compose `test` through
/// `podman healthcheck run` (podman without systemd runs none by itself;
/// `ps` reads podman's own status), the `http` form as hsm's probe of the
/// published port (`ps` reads hsm's verdict). A check that starts failing
/// turns `ps` to `unhealthy`, and a pass turns it back; `down` lets the
/// supervisor end.
#[test]
fn the_detached_supervisor_keeps_podman_container_health_current() {
    let Some((env, _one)) = podman_ready() else {
        return;
    };
    let (cmd_port, http_port) = (free_port(), free_port());
    let project = format!("hsmhc{}", std::process::id());
    let mut manifest = podman_manifest(&project, r#""bycmd", "byhttp""#);
    for (name, port, check) in [
        (
            "bycmd",
            cmd_port,
            r#"{ test = ["CMD", "test", "-f", "/www/ok"], interval = "1s", retries = 2 }"#,
        ),
        (
            "byhttp",
            http_port,
            r#"{ http = "/ok", interval = "1s", retries = 2 }"#,
        ),
    ] {
        manifest += &format!(
            r#"[registry.services.{name}]
ports = ["127.0.0.1:{port}:8080"]
stop-timeout = "1s"
healthcheck = {check}
sources.prod = {{ type = "docker-image", image = "localhost/hsm-busybox:latest" }}
deployment-profiles.default = {{ runtime = "podman", command = ["sh", "-c", "mkdir -p /www; echo ok > /www/ok; exec httpd -f -p 8080 -h /www"] }}
"#
        );
    }
    let sb = sandbox(&manifest, &[]);
    let _down = Project {
        name: project.clone(),
        root: sb.root.clone(),
        env: env.clone(),
    };
    let out = wait_bounded(spawn_up(&sb, &["-d"], &env), Duration::from_secs(180));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_for_health(&sb, &env, &["bycmd", "byhttp"], "healthy");
    // The supervisor of `up -d` runs on for them, and says so in their state.
    let record: serde_json::Value = serde_json::from_str(&sb.read(".hsm/run/bycmd.json")).unwrap();
    let sup = record["supervisor"][0].as_i64().expect("a supervisor") as i32;
    let sup_start = record["supervisor"][1].as_u64().unwrap();
    assert_eq!(up_support::proc_start(sup), Some((sup_start, false)));
    let exec = |name: &str, script: &str| {
        let rows = ps_rows(&sb, &env);
        let id = rows
            .iter()
            .find(|r| r["service"] == name)
            .and_then(|r| r["container"].as_str())
            .unwrap()
            .to_string();
        let mut c = Command::new("podman");
        c.args(["exec", &id, "sh", "-c", script])
            .envs(env.iter().map(|(k, v)| (k, v)));
        let o = compose_support::run_bounded(&mut c, Duration::from_secs(30)).unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // Both checks fail from now on: `ps` follows, with nobody running `up`.
    exec("bycmd", "rm /www/ok");
    exec("byhttp", "rm /www/ok");
    wait_for_health(&sb, &env, &["bycmd", "byhttp"], "unhealthy");
    // podman's own status says so (the supervisor ran `podman healthcheck run`).
    let mut inspect = Command::new("podman");
    inspect
        .args(["inspect", "--format", "{{json .State}}"])
        .arg(record["container"].as_str().unwrap())
        .envs(env.iter().map(|(k, v)| (k, v)));
    let o = compose_support::run_bounded(&mut inspect, Duration::from_secs(30)).unwrap();
    let state: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let status = state["Health"]["Status"]
        .as_str()
        .or(state["Healthcheck"]["Status"].as_str());
    assert_eq!(status, Some("unhealthy"), "{state}");
    exec("bycmd", "echo ok > /www/ok");
    exec("byhttp", "echo ok > /www/ok");
    wait_for_health(&sb, &env, &["bycmd", "byhttp"], "healthy");
    let down = sb
        .cmd(&["down"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(containers(&env, &project, true), "", "a container is left");
    // `down` returns once the supervisor has ended.
    assert_gone(&[(sup, sup_start)]);
}

/// The bundled example's gateway container and embedder process, wired by
/// `up` alone: a request to the gateway's published port crosses into the
/// embedder on the host. The copy keeps the two services and what they
/// use, without the database images (postgres, redis) that are not here;
/// its ports and project name are made unique to the test.
///
/// Not in CI (a sync of the example and an image build: about 90 s on a
/// loaded 2-core machine): `cargo test --test up_podman -- --ignored rag`.
#[test]
#[ignore]
fn the_rag_stack_gateway_reaches_its_embedder_through_up() {
    let Some((env, _one)) = podman_ready() else {
        return;
    };
    let sb = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rag-stack");
    copy_example(&example, &sb.root, true);
    let (gw, emb) = (free_port(), free_port());
    let project = format!("ragup{}", std::process::id());
    let edit = |rel: &str, pairs: &[(&str, &str)]| {
        let mut t = sb.read(rel);
        for (a, b) in pairs {
            assert!(t.contains(a), "{rel} has no `{a}`");
            t = t.replace(a, b);
        }
        sb.write(rel, &t);
    };
    edit(
        "hsm.toml",
        &[
            ("name = \"rag-stack\"", &format!("name = \"{project}\"")),
            (
                "groups.infra = { strategy = \"M-of-N\", selection = [\"postgres\", \"redis\"] }\n",
                "",
            ),
        ],
    );
    edit(
        "hsm-registry/services/gateway.toml",
        &[
            (
                "ports = [\"18080:8080\"]",
                &format!("ports = [\"127.0.0.1:{gw}:8080\"]"),
            ),
            ("depends-on = [\"redis\"]\n", ""),
            (
                "\"service:postgres\" = { params = { db_name = \"gateway\" } }\n",
                "",
            ),
        ],
    );
    edit(
        "hsm-registry/services/embedder.toml",
        &[
            ("ports = [\"8081\"]", &format!("ports = [\"{emb}\"]")),
            (
                "EMBEDDER_PORT = \"8081\"",
                &format!("EMBEDDER_PORT = \"{emb}\""),
            ),
            (
                "\"service:postgres\" = { params = { db_name = \"embeddings\" } }\n",
                "",
            ),
        ],
    );
    let _down = Project {
        name: project.clone(),
        root: sb.root.clone(),
        env: env.clone(),
    };
    let hsm = |args: &[&str]| {
        sb.cmd(args)
            .env("UV_OFFLINE", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    let out = hsm(&["up", "-d", "--offline", "gateway"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{e}");
    // The embedder (implied by the gateway) was ready before the gateway started.
    assert!(
        e.find("Ready embedder").unwrap() < e.find("Starting gateway").unwrap(),
        "{e}"
    );
    let compose = sb.read("docker-compose.hsm.yml");
    assert!(
        compose.contains(&format!(
            "GATEWAY_UPSTREAM: http://host.containers.internal:{emb}"
        )),
        "{compose}"
    );
    let (code, body) =
        compose_support::http_get(gw, "/cgi-bin/embed?text=hello+hsm+world").unwrap();
    let down = hsm(&["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(
        (code, body.trim()),
        (
            200,
            r#"{"tokens": ["hello", "hsm", "world"], "vector": [5, 3, 5]}"#
        ),
        "{}",
        sb.read(".hsm/run/embedder.log")
    );
    assert!(sb
        .read(".hsm/run/embedder.log")
        .contains("GET /embed?text=hello+hsm+world"));
    assert_eq!(containers(&env, &project, true), "", "a container is left");
}
