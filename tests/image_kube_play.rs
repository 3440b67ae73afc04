//! `cargo hsm image build` and `cargo hsm export kubernetes --host-ports`,
//! run for real: a uv service's image is built by podman from its lock on
//! a local Debian base image (tests/support/podman-python-image.sh:
//! debootstrap + `podman import`, cached between runs), then the exported
//! manifests run under `podman kube play` beside the busybox httpd of the
//! compose tests. The service answers on its port and reaches the httpd
//! through the discovery variables; `podman kube down` removes it all.
//!
//! The podman store is the tests' own (tests/support/podman-env.sh) with
//! the overlay driver. The venv image is behind `#[ignore]`:
//! `cargo test --test image_kube_play -- --ignored`.

mod compose_support;
mod sync_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use compose_support::{free_port, http_get, missing, podman_as_root, podman_env_with, run_bounded};
use sync_support::{stderr, Sandbox};

type Env = Vec<(String, String)>;

/// The tests' podman store with the busybox and python base images, or
/// `None` (skipped locally, failing under `CI=true`).
fn podman_ready() -> Option<(Env, std::sync::MutexGuard<'static, ()>)> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    if !podman_as_root(&[
        ("podman", "the container engine"),
        ("bash", "runs tests/support/podman-*.sh"),
    ]) {
        return None;
    }
    let cache = std::env::var("HSM_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cargo-hsm")
        });
    if !cache.join("debian-bookworm-python3.tar").is_file()
        && !Path::new("/usr/sbin/debootstrap").exists()
    {
        missing("debootstrap is not installed and no cached root filesystem exists (`.ci/run` makes it)");
        return None;
    }
    let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hsm-podman-overlay");
    let env = podman_env_with(&state, "overlay");
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    for script in ["podman-busybox-image.sh", "podman-python-image.sh"] {
        let out = run_bounded(
            Command::new("bash")
                .arg(support.join(script))
                .envs(env.iter().map(|(k, v)| (k, v))),
            Duration::from_secs(600),
        )
        .expect(script);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some((env, one))
}

fn podman(env: &Env, args: &[&str], limit: u64) -> std::process::Output {
    let out = run_bounded(
        Command::new("podman")
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v))),
        Duration::from_secs(limit),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// `podman kube down` of the played file however the test ends.
struct Played {
    file: PathBuf,
    env: Env,
}

impl Drop for Played {
    fn drop(&mut self) {
        let f = self.file.to_string_lossy().into_owned();
        let _ = podman(&self.env, &["kube", "down", &f], 60);
    }
}

const API: &str = r#""""Answers GET / with its greeting and what the web service says."""
import http.server
import os
import urllib.request


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = os.environ["WEB_URL"] + "/"
        upstream = urllib.request.urlopen(url, timeout=5).read().decode().strip()
        body = f"{os.environ['GREETING']} as {os.getuid()} in {os.getcwd()}; {url} says: {upstream}\n"
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ["API_PORT"])
http.server.ThreadingHTTPServer((os.environ["HSM_BIND_HOST"], port), Handler).serve_forever()
"#;

fn manifest(project: &str, web_port: u16, api_port: u16, runtime: &str) -> String {
    format!(
        r#"[project]
name = "{project}"
container-engine = "podman"

[services]
standalone = ["web", "api"]

[registry.services.web]
ports = ["{web_port}:8080"]
url-scheme = "http"
sources.prod = {{ type = "docker-image", image = "localhost/hsm-busybox:latest" }}
deployment-profiles.default = {{ runtime = "podman", command = ["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"] }}

[registry.services.api]
ports = ["{api_port}"]
depends-on = ["web"]
healthcheck = {{ http = "/" }}
env = {{ GREETING = "hello from api", API_PORT = "{api_port}" }}
sources.prod = {{ type = "local", path = "api" }}

[registry.services.api.deployment-profiles.default]
runtime = "{runtime}"
command = ["python", "-m", "api"]
base-image = "localhost/hsm-python:3.11"
wait-image = "localhost/hsm-busybox:latest"
"#
    )
}

/// The tag of the image `image build` reports building.
fn built_reference(err: &str) -> String {
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("Building `"))
        .unwrap_or_else(|| panic!("no Building line in:\n{err}"));
    line.split('`').nth(1).unwrap().to_string()
}

fn build_and_play(runtime: &str) {
    let Some((env, _one)) = podman_ready() else {
        return;
    };
    let (web_port, api_port) = (free_port(), free_port());
    let project = format!("play{}{runtime}", std::process::id());
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write("hsm.toml", &manifest(&project, web_port, api_port, runtime));
    sb.write("api/api.py", API);
    match runtime {
        "uv" => sb.write(
            "api/pyproject.toml",
            "[project]\nname = \"api\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = []\n",
        ),
        _ => sb.write("api/requirements.txt", "# nothing pinned: the standard library is enough\n"),
    }
    let with_env = |args: &[&str]| {
        let mut c = sb.cmd(args);
        c.envs(env.iter().map(|(k, v)| (k, v)));
        run_bounded(&mut c, Duration::from_secs(600)).unwrap()
    };
    let out = with_env(&["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The real build, then the same again: a cache hit with the same tag.
    let t = Instant::now();
    let out = with_env(&["image", "build"]);
    let first = t.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let reference = built_reference(&stderr(&out));
    assert!(
        reference.starts_with(&format!("localhost/{project}/api:")),
        "{reference}"
    );
    assert!(podman(&env, &["image", "exists", &reference], 30)
        .status
        .success());
    let dockerfile = sb.read(".hsm/images/api/Dockerfile");
    assert!(dockerfile.contains("USER 10001:10001"), "{dockerfile}");
    assert!(dockerfile.contains("ARG GREETING"), "{dockerfile}");
    let t = Instant::now();
    let out = with_env(&["image", "build"]);
    let again = t.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(built_reference(&stderr(&out)), reference);
    eprintln!("image build of `api` ({runtime}): {first:.1?}; again (cache hit): {again:.1?}");
    // Build arguments live in the build stage only.
    let history = podman(&env, &["history", "--no-trunc", &reference], 30);
    let inspect = podman(&env, &["image", "inspect", &reference], 30);
    for o in [&history, &inspect] {
        assert!(!String::from_utf8_lossy(&o.stdout).contains("hello from api"));
    }

    // The manifests for local play, dependencies first (kube play runs
    // pods in file order and waits for their init containers).
    let out = with_env(&["export", "kubernetes", "--host-ports", "--out", "k8s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let play = sb.path("play.yaml");
    std::fs::write(&play, sb.read("k8s/web.yaml") + &sb.read("k8s/api.yaml")).unwrap();
    assert!(sb
        .read("k8s/api.yaml")
        .contains(&format!("image: {reference}")));
    let played = Played {
        file: play.clone(),
        env: env.clone(),
    };
    let t = Instant::now();
    let out = podman(&env, &["kube", "play", &play.to_string_lossy()], 180);
    assert!(
        out.status.success(),
        "kube play: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut got = None;
    for _ in 0..80 {
        if let Ok((200, body)) = http_get(api_port, "/") {
            got = Some(body);
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("kube play until `api` answered: {:.1?}", t.elapsed());
    let body = got.unwrap_or_else(|| {
        let logs = podman(&env, &["pod", "ps"], 30);
        panic!(
            "api did not answer on {api_port}: {}",
            String::from_utf8_lossy(&logs.stdout)
        )
    });
    assert_eq!(
        body.trim(),
        format!("hello from api as 10001 in /app; http://host.containers.internal:{web_port}/ says: hsm-busybox ok")
    );

    drop(played);
    let pods = podman(&env, &["pod", "ps", "-q"], 30);
    assert_eq!(
        String::from_utf8_lossy(&pods.stdout).trim(),
        "",
        "pods left after kube down"
    );
    assert!(http_get(api_port, "/").is_err());
}

#[test]
fn a_uv_service_image_runs_under_kube_play_and_reaches_a_container() {
    build_and_play("uv");
}

#[test]
#[ignore = "a second real build and play (about 40 s): cargo test --test image_kube_play -- --ignored"]
fn a_venv_service_image_runs_under_kube_play() {
    build_and_play("venv");
}
