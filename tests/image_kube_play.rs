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
mod image_support;
mod sync_support;

use std::time::{Duration, Instant};

use compose_support::{free_port, http_get, run_bounded};
use image_support::{built_reference, play_until_answer, podman, podman_with_images, Env};
use sync_support::{stderr, Sandbox};

/// The tests' podman store with the busybox and python base images, or
/// `None` (skipped locally, failing under `CI=true`).
fn podman_ready() -> Option<(Env, std::sync::MutexGuard<'static, ()>)> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let env = podman_with_images(
        &["podman-busybox-image.sh", "podman-python-image.sh"],
        "debian-bookworm-python3.tar",
    )?;
    Some((env, one))
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
    let (played, body) = play_until_answer(&env, &play, api_port, "api");
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
