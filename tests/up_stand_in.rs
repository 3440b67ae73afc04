//! The `up` paths whose tools are not on this machine, through stand-ins
//! that record their command lines (the test names say so): docker with its
//! `docker compose` plugin, and pixi. What they prove is hsm's side only —
//! the exact commands it runs, the override it writes for docker, and that a
//! pixi service runs through `pixi run` in its environment; not that docker
//! or pixi then behave as the stand-ins do.

mod compose_support;
mod sync_support;
mod up_support;

use std::time::Duration;

use compose_support::free_port;
use sync_support::{require, stderr, stdout, Sandbox};
use up_support::*;

/// Writes an executable `bin/<name>` into the sandbox.
fn tool(sb: &Sandbox, name: &str, script: &str) {
    sb.write(&format!("bin/{name}"), script);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        sb.path(&format!("bin/{name}")),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

fn path_with(sb: &Sandbox) -> String {
    format!(
        "{}:{}",
        sb.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn docker_compose_command_lines_and_host_gateway_docker_stand_in() {
    if !require("uv") {
        return;
    }
    let port = free_port();
    let mut manifest = String::from(
        "[project]\nname = \"dockerized\"\ncontainer-engine = \"docker\"\n[services]\nstandalone = [\"box\"]\n",
    );
    manifest += &uv_entry(
        "api",
        &format!("ports = [\"{port}\"]\nurl-scheme = \"http\""),
    );
    manifest += "[registry.services.box]\nports = [\"18099:80\"]\nimplies = { \"service:api\" = true }\nsources.prod = { type = \"docker-image\", image = \"busybox\" }\ndeployment-profiles.default = { runtime = \"docker\" }\n";
    let sb = sandbox(&manifest, &[("api", "import time\ntime.sleep(600)\n")]);
    let log = sb.path("docker.log");
    // Answers as docker does for what hsm asks: a container id, a running
    // healthy state.
    tool(
        &sb,
        "docker",
        &format!(
            r#"#!/bin/sh
echo "docker $*" >> '{log}'
case "$1" in
  ps) echo 0123456789abcdef0123456789abcdef ;;
  inspect)
    case "$3" in
      *json*) echo "$4 {{\"Running\":true,\"Health\":{{\"Status\":\"healthy\"}}}}" ;;
      *ExitCode*) echo "true 0" ;;
      *) echo healthy ;;
    esac ;;
esac
exit 0
"#,
            log = log.display()
        ),
    );
    let env = [("PATH".to_string(), path_with(&sb))];
    let out = wait_bounded(spawn_up(&sb, &["-d"], &env), Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ps = sb
        .cmd(&["ps", "--message-format", "json"])
        .env("PATH", path_with(&sb))
        .output()
        .unwrap();
    let ps: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    let down = sb
        .cmd(&["down"])
        .env("PATH", path_with(&sb))
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(ps["services"][1]["service"], "box", "{ps}");
    assert_eq!(ps["services"][1]["state"], "running", "{ps}");
    assert_eq!(ps["services"][1]["health"], "healthy", "{ps}");

    let root = sb.root.display().to_string();
    let text = std::fs::read_to_string(&log)
        .unwrap()
        .replace(&root, "[ROOT]");
    let files =
        "-p dockerized -f [ROOT]/docker-compose.hsm.yml -f [ROOT]/.hsm/run/compose.override.yml";
    let id = "0123456789abcdef0123456789abcdef";
    let want = [
        // The compose plugin is found first (`docker compose version`).
        "docker compose version".to_string(),
        format!("docker compose {files} up -d --no-deps box"),
        "docker ps -a -q --no-trunc --filter label=com.docker.compose.project=dockerized --filter label=com.docker.compose.service=box".to_string(),
        format!("docker inspect --format {{{{.Id}}}} {{{{json .State}}}} {id}"),
        "docker compose version".to_string(),
        format!("docker compose {files} stop -t 10 box"),
        format!("docker compose {files} down -t 10"),
    ];
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, want, "{text}");
    // Docker needs the host gateway said; the container reaches the process there.
    let o = sb.read(".hsm/run/compose.override.yml");
    assert!(
        o.contains("extra_hosts:\n      - host.docker.internal:host-gateway")
            && o.contains(&format!("API_URL: http://host.docker.internal:{port}")),
        "{o}"
    );
}

#[test]
fn pixi_services_run_through_pixi_run_pixi_stand_in() {
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    let log = sb.path("pixi.log");
    // `install` makes what pixi would; `run` runs the command after its options.
    tool(
        &sb,
        "pixi",
        &format!(
            r#"#!/bin/sh
echo "pixi $*" >> '{log}'
case "$1" in
  install) echo 'version = 6' > "$(dirname "$3")/pixi.lock"; mkdir -p "$(dirname "$3")/.pixi/envs/default/bin" ;;
  run) shift 3; [ "$1" = --frozen ] && shift; exec "$@" ;;
esac
"#,
            log = log.display()
        ),
    );
    sb.write(
        "gpu/pixi.toml",
        "[workspace]\nname = \"gpu\"\nchannels = []\nplatforms = []\n",
    );
    sb.write(
        "gpu/main.py",
        "import os, sys\nprint('gpu says', os.environ['MODE'], os.getcwd().endswith('/gpu'), '/gpu/.pixi/envs/default/bin:' in os.environ['PATH'])\n",
    );
    sb.write(
        "hsm.toml",
        "[project]\nname = \"pixie\"\n[services]\nstandalone = [\"gpu\"]\n[registry.services.gpu]\nenv = { MODE = \"batch\" }\nsources.prod = { type = \"local\", path = \"gpu\" }\ndeployment-profiles.default = { runtime = \"pixi\", command = [\"python3\", \"main.py\"] }\n",
    );
    let out = sb
        .cmd(&["up"])
        .env("PATH", path_with(&sb))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("gpu | gpu says batch True True"),
        "{}",
        stdout(&out)
    );
    // The global options first: after `--`, everything is the command's.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-hsm"))
        .args(["hsm", "--manifest-path"])
        .arg(sb.path("Cargo.toml"))
        .args([
            "run",
            "--no-sync",
            "gpu",
            "--",
            "python3",
            "-c",
            "print('one-off')",
        ])
        .env("PATH", path_with(&sb))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one-off\n");
    let m = sb.path("gpu/pixi.toml");
    let m = m.display();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "pixi install --manifest-path {m}\npixi run --manifest-path {m} --frozen python3 main.py\npixi run --manifest-path {m} --frozen python3 -c print('one-off')\n"
        )
    );
}
