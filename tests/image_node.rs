//! `cargo hsm image build` and `cargo hsm export kubernetes` of a node
//! service, run for real: its lock comes from a real `npm install` (packages
//! from the npm registry), podman builds its image on a local Node.js base
//! image (tests/support/podman-node-image.sh: debootstrap with Debian's
//! Node.js 18 and npm 10 from the npm registry, cached between runs; no
//! image registry is reachable here), the exported manifests pass
//! `kubernetes-validate`, and the pod answers on its port under `podman kube
//! play`; `podman kube down` removes it.
//!
//! The podman store is the tests' own (tests/support/podman-env.sh) with
//! the overlay driver, as for tests/image_kube_play.rs.

mod compose_support;
mod image_support;
mod kube_support;
mod sync_support;

use std::path::Path;
use std::time::{Duration, Instant};

use compose_support::{free_port, http_get, run_bounded};
use image_support::{built_reference, play_until_answer, podman_with_images};
use sync_support::{require, stderr, Sandbox};

/// Answers GET / with its greeting, who it runs as, and what it installed.
const SERVER: &str = r#"const http = require("http");
const isNumber = require("is-number");
let dev = "absent";
try {
  require.resolve("is-odd");
  dev = "present";
} catch (e) {}
const port = Number(process.env.API_PORT);
http
  .createServer((req, res) => {
    res.end(
      `${process.env.GREETING} as ${process.getuid()} in ${process.cwd()} on node ${process.versions.node.split(".")[0]}; ` +
        `is-number(7) ${isNumber(7)}; dev dependency ${dev}; NODE_ENV=${process.env.NODE_ENV}\n`
    );
  })
  .listen(port, process.env.HSM_BIND_HOST);
"#;

fn manifest(project: &str, port: u16) -> String {
    format!(
        r#"[project]
name = "{project}"
container-engine = "podman"

[services]
standalone = ["api"]

[registry.services.api]
ports = ["{port}"]
healthcheck = {{ http = "/" }}
env = {{ GREETING = "hello from node", API_PORT = "{port}" }}
sources.prod = {{ type = "local", path = "api" }}

[registry.services.api.deployment-profiles.default]
runtime = "node"
command = ["npm", "start"]
base-image = "localhost/hsm-node:18"
"#
    )
}

/// The node service's image: `npm ci --omit=dev` of its lock on the node
/// base image, run as user 10001 with `npm start`; its export validates;
/// under `podman kube play` it answers on its port, without its dev
/// dependency and with `NODE_ENV=production`.
#[test]
fn a_node_service_image_is_built_from_its_lock_exported_and_answers_under_kube_play() {
    if !require("npm") {
        return;
    }
    let Some(env) = podman_with_images(&["podman-node-image.sh"], "debian-bookworm-node18.tar")
    else {
        return;
    };
    let port = free_port();
    let project = format!("node{}", std::process::id());
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write("hsm.toml", &manifest(&project, port));
    sb.write(
        "api/package.json",
        "{\n  \"name\": \"api\",\n  \"version\": \"1.0.0\",\n  \"private\": true,\n  \"engines\": {\"node\": \">=18\"},\n  \"scripts\": {\"start\": \"node index.js\"},\n  \"dependencies\": {\"is-number\": \"7.0.0\"},\n  \"devDependencies\": {\"is-odd\": \"3.0.1\"}\n}\n",
    );
    sb.write("api/index.js", SERVER);
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-caches/npm");
    let with_env = |args: &[&str]| {
        let mut c = sb.cmd(args);
        c.envs(env.iter().map(|(k, v)| (k, v)))
            .env("npm_config_cache", &cache)
            .env("npm_config_update_notifier", "false");
        run_bounded(&mut c, Duration::from_secs(600)).unwrap()
    };
    let out = with_env(&["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sb.exists("api/package-lock.json"));

    let t = Instant::now();
    let out = with_env(&["image", "build"]);
    eprintln!("image build of `api` (node): {:.1?}", t.elapsed());
    assert!(out.status.success(), "{}", stderr(&out));
    let dockerfile = sb.read(".hsm/images/api/Dockerfile");
    for line in [
        "FROM localhost/hsm-node:18 AS build",
        "COPY package-lock.json package.json ./",
        "npm ci --omit=dev --no-audit --no-fund",
        "ENV PATH=/app/node_modules/.bin:",
        "USER 10001:10001",
        "CMD [\"npm\",\"start\"]",
    ] {
        assert!(dockerfile.contains(line), "no `{line}` in:\n{dockerfile}");
    }
    let reference = built_reference(&stderr(&out));
    assert!(
        reference.starts_with(&format!("localhost/{project}/api:")),
        "{reference}"
    );

    let out = with_env(&["export", "kubernetes", "--host-ports", "--out", "k8s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let api = sb.path("k8s/api.yaml");
    assert!(sb
        .read("k8s/api.yaml")
        .contains(&format!("image: {reference}")));
    if kube_support::validator() {
        kube_support::validate(std::slice::from_ref(&api))
            .unwrap_or_else(|e| panic!("kubernetes-validate --strict:\n{e}"));
    }

    let (played, body) = play_until_answer(&env, &api, port, "api");
    assert_eq!(
        body.trim(),
        "hello from node as 10001 in /app on node 18; is-number(7) true; dev dependency absent; NODE_ENV=production"
    );
    drop(played);
    assert!(http_get(port, "/").is_err());
}

/// A node service without a lock has nothing locked to install: its
/// export (which computes its image) is refused by name, with the fix;
/// Yarn Plug'n'Play is refused as sync refuses it.
#[test]
fn a_node_service_without_a_lock_or_with_plug_n_play_has_no_image() {
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write("hsm.toml", &manifest("t", 8080));
    sb.write(
        "api/package.json",
        "{\"name\": \"api\", \"version\": \"1.0.0\", \"dependencies\": {\"is-number\": \"7.0.0\"}}\n",
    );
    let out = sb.run(&["export", "kubernetes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: service `api` has no lock file in `api` (`package-lock.json`), so there is nothing locked to install"),
        "{err}"
    );
    assert!(err.contains("help: run `cargo hsm sync` first"), "{err}");
    assert!(!sb.exists("deploy/kubernetes/api.yaml"));

    sb.write(
        "api/package.json",
        "{\"name\": \"api\", \"version\": \"1.0.0\", \"packageManager\": \"yarn@4.5.3\"}\n",
    );
    sb.write("api/yarn.lock", "__metadata:\n  version: 8\n");
    let out = sb.run(&["export", "kubernetes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("add `nodeLinker: node-modules` to the service's `.yarnrc.yml`"),
        "{}",
        stderr(&out)
    );
}
