//! Helpers for tests/compose.rs: sandboxes, the CLI, and the compose clients
//! (Debian's `docker-compose` 1.29.2 as an independent parser, PyYAML for
//! reading files back, podman + podman-compose for real runs).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

pub use snapbox::cmd::Command;

/// A throw-away Cargo workspace (the CLI finds it with `cargo metadata`).
pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hsm-compose-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        std::fs::write(root.join("Cargo.toml"), "[workspace]\n").expect("write Cargo.toml");
        Sandbox { _dir: dir, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, contents: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&p, contents).expect("write");
    }

    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).expect("mkdir");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_else(|e| panic!("read {}: {e}", self.path(rel).display()))
    }

    /// `cargo-hsm --manifest-path <root>/Cargo.toml <args…>`, colourless.
    pub fn hsm(&self, args: &[&str]) -> Command {
        Command::new(env!("CARGO_BIN_EXE_cargo-hsm"))
            .arg("--manifest-path")
            .arg(self.root.join("Cargo.toml"))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("CARGO_TERM_COLOR")
    }
}

/// Whether `tool` is on PATH. When it is not: with `CI=true` the test fails,
/// otherwise the reason is printed and the caller returns early.
pub fn require(tool: &str, why: &str) -> bool {
    if which::which(tool).is_ok() {
        return true;
    }
    missing(&format!("`{tool}` is not on PATH ({why})"))
}

/// Reports a missing prerequisite: a failure on CI, a printed skip elsewhere.
pub fn missing(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}; CI=true, so this is a failure (`.ci/run` installs the container tools)");
    }
    eprintln!("skipping: {reason}");
    false
}

/// `docker-compose -f FILE config -q`: the file is valid for a compose
/// parser no one here wrote. Returns false (skipped) when it is missing.
pub fn validate(file: &Path) -> bool {
    if !require("docker-compose", "validates generated compose files") {
        return false;
    }
    let out = StdCommand::new("docker-compose")
        .arg("-f")
        .arg(file)
        .args(["config", "-q"])
        .output()
        .expect("run docker-compose");
    assert!(
        out.status.success(),
        "docker-compose rejected {}:\n{}\n--- file ---\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    true
}

/// The configuration as docker-compose understands it (paths resolved,
/// `${VAR}` not interpolated), as JSON. `None` when a tool is missing.
pub fn compose_config(file: &Path) -> Option<serde_json::Value> {
    if !validate(file) {
        return None;
    }
    let out = StdCommand::new("docker-compose")
        .arg("-f")
        .arg(file)
        .args(["config", "--no-interpolate"])
        .output()
        .expect("run docker-compose");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pyyaml(&out.stdout)
}

/// Reads YAML with PyYAML (YAML 1.1, the parser docker-compose and
/// podman-compose use) and returns it as JSON. `None` when unavailable.
pub fn pyyaml(yaml: &[u8]) -> Option<serde_json::Value> {
    const SCRIPT: &str =
        "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin.buffer), sys.stdout)";
    for py in ["/usr/bin/python3", "python3"] {
        let Ok(mut child) = StdCommand::new(py)
            .args(["-c", SCRIPT])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            continue;
        };
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(yaml).expect("write yaml");
        }
        let out = child.wait_with_output().expect("python3");
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).expect("json from python"));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("No module named") {
            panic!("PyYAML could not read the YAML:\n{err}");
        }
    }
    missing("python3 with PyYAML is not available (Debian's docker-compose brings it)");
    None
}

/// The L2 acceptance manifest: two docker services (`postgres`, `cache`), one
/// podman service built from a git checkout (`gateway`), two uv services
/// (`api`, `notebook`), one venv service (`worker`) and one service selected
/// with an external profile (`llm`, whose default profile would be docker).
pub const L2_MANIFEST: &str = r#"
[project]
name = "l2"
container-engine = "podman"

[services]
standalone = [
  "api",
  "notebook",
  "worker",
  "gateway",
  { name = "llm", profile = "hosted" },
]
groups.infra = { strategy = "M-of-N", selection = ["postgres", "cache"] }

[registry.service_groups.infra]
strategy = "M-of-N"
options = ["postgres", "cache"]

# ---- docker
[registry.services.postgres]
ports = ["5432:5432"]
volumes = ["pgdata:/var/lib/postgresql/data", "./initdb:/docker-entrypoint-initdb.d:ro"]
env = { POSTGRES_PASSWORD = "${PG_PASSWORD}", POSTGRES_MULTIPLE_DATABASES = "${HSM_MERGED_PARAMS.db_name}" }
env-file = ["config/postgres.env"]
healthcheck = { test = ["CMD", "pg_isready", "-U", "l2"], interval = "10s", timeout = "5s", retries = 5, start-period = "30s" }
container-name = "l2-postgres"
sources.prod = { type = "docker-image", image = "postgres:16" }
deployment-profiles.default = { runtime = "docker" }

# no profiles: the implicit default is managed docker for an image
[registry.services.cache]
ports = ["6380:6379", "127.0.0.1:16379:6379"]
volumes = ["cachedata:/data"]
restart = "always"
aliases = ["redis", "kv"]
sources.prod = { type = "docker-image", image = "redis:7-alpine" }

# ---- podman, built from a git checkout
[registry.services.gateway]
ports = ["9090:9090", "8080:8080", "127.0.0.1:7070:7070", "22:22"]
depends-on = ["cache"]
volumes = ["cachedata:/cache:ro", "/var/log/gateway"]

[registry.services.gateway.sources.prod]
type = "git"
url = "https://example.org/gateway.git"
ref = "v2.0.0"
subdirectory = "docker"

[registry.services.gateway.deployment-profiles.default]
runtime = "podman"
dockerfile = "Containerfile"
command = ["gateway", "--listen", "0.0.0.0:8080", "--retries", "3"]
working-dir = "/srv"
env = { UPSTREAM = "http://api:8000", DEBUG = "yes", WORKERS = 4, TOKEN = "${GATEWAY_TOKEN}" }

[registry.services.gateway.implies]
"service:postgres" = { params = { db_name = "gateway" } }
"service:llm" = true
"service:api" = { params = { upstream = "gateway" } }

# ---- uv
[registry.services.api]
sources.prod = { type = "local", path = "components/api" }
deployment-profiles.default = { runtime = "uv", command = ["python", "-m", "api"] }
implies = { "service:postgres" = { params = { db_name = "api" } }, "service:llm" = true }

[registry.services.notebook]
sources.prod = { type = "local", path = "components/notebook" }
deployment-profiles.default = { runtime = "uv" }

# ---- venv
[registry.services.worker]
sources.prod = { type = "local", path = "components/worker" }
deployment-profiles.default = { runtime = "venv" }
implies = { "service:postgres" = { params = { db_name = "jobs,api" } } }

# ---- external profile
[registry.services.llm]
sources.prod = { type = "docker-image", image = "vllm/vllm-openai:v0.6.0" }
deployment-profiles.default = { runtime = "docker" }
deployment-profiles.hosted = { mode = "external", external = { host = "llm.example.org", port = 443 } }
"#;

/// A sandbox holding the L2 manifest and the files it refers to. The git
/// checkout of `gateway` is created by hand, as `sync` would clone it.
pub fn l2_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("hsm.toml", L2_MANIFEST);
    sb.write(
        "config/postgres.env",
        "POSTGRES_USER=l2\n# comment\nPOSTGRES_DB=l2\n",
    );
    sb.mkdir("initdb");
    sb.mkdir("components/api");
    sb.mkdir("components/notebook");
    sb.mkdir("components/worker");
    sb.write(
        "services/gateway/docker/Containerfile",
        "FROM localhost/hsm-busybox:latest\n",
    );
    sb
}

/// Runs `cmd` and waits at most `limit`; the child is killed past it.
pub fn run_bounded(
    cmd: &mut StdCommand,
    limit: std::time::Duration,
) -> Result<std::process::Output, String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{shown}: {e}"))?;
    // Drain the pipes on threads so a chatty child cannot block on them.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut b);
        b
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("{shown}: {e}"))? {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{shown} did not finish within {limit:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Ok(std::process::Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

/// The project-local podman configuration of tests/support/podman-env.sh
/// under `dir`, as environment variables (nothing under /etc is touched).
pub fn podman_env(dir: &Path) -> Vec<(String, String)> {
    podman_env_with(dir, "vfs")
}

/// [`podman_env`] with another storage driver (`overlay` makes image
/// builds about ten times faster than `vfs` on these machines).
pub fn podman_env_with(dir: &Path, driver: &str) -> Vec<(String, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/podman-env.sh");
    let out = run_bounded(
        StdCommand::new("bash")
            .arg(&script)
            .arg(dir)
            .env("HSM_PODMAN_STORAGE_DRIVER", driver),
        std::time::Duration::from_secs(30),
    )
    .expect("podman-env.sh");
    assert!(
        out.status.success(),
        "podman-env.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), shell_unquote(v)))
        .collect()
}

/// Undoes bash's `printf %q` for the simple cases it produces for paths.
fn shell_unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix("$'").and_then(|v| v.strip_suffix('\'')) {
        return inner.replace("\\'", "'").replace("\\\\", "\\");
    }
    if let Some(inner) = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_string();
    }
    let mut s = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                s.push(n);
            }
        } else {
            s.push(c);
        }
    }
    s
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:port: (status code, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    s.set_write_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// `tools` (name, why), uv, and root, which the tests' podman store needs:
/// `false` (skipped locally, failing under `CI=true`) when one is missing.
pub fn podman_as_root(tools: &[(&str, &str)]) -> bool {
    for (tool, why) in tools {
        if !require(tool, why) {
            return false;
        }
    }
    if !require("uv", "runs the environment services") {
        return false;
    }
    let uid = StdCommand::new("id").arg("-u").output();
    if uid.map(|o| o.stdout.trim_ascii() != b"0").unwrap_or(true) {
        missing("podman runs as root with a project-local store here; not root");
        return false;
    }
    true
}
