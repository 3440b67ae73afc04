//! The node cases (issue 18): a no-op sync of 50 node services against a
//! shell loop of `npm ls` per service, and a cold install of 10 node
//! services (every `node_modules` removed, npm's cache warm) against the
//! loop of `npm ci`. Each service installs is-odd 3.0.1 (which needs
//! is-number 6) from the npm registry; npm's cache lives in the temp
//! workspace, never `~/.npm`.

use std::path::Path;
use std::process::Command;

use super::{median, ms, run, run_cpu, write, Row, Tools};

/// A Cargo workspace with `n` node services, each with the same lock (made
/// once with `npm install --package-lock-only`), and npm's cache inside it.
fn node_workspace(tools: &Tools, n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("Cargo.toml"), "[workspace]\n");
    let mut m = String::from("[project]\nname = \"bench\"\n\n[services]\nstandalone = [");
    m.push_str(
        &(0..n)
            .map(|i| format!("\"n{i:03}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    m.push_str("]\n");
    let pj = |name: &str| {
        format!("{{\n  \"name\": \"{name}\",\n  \"version\": \"1.0.0\",\n  \"private\": true,\n  \"dependencies\": {{\n    \"is-odd\": \"3.0.1\"\n  }}\n}}\n")
    };
    let first = root.join("services/n000");
    write(&first.join("package.json"), &pj("n000"));
    let mut c = npm(tools, root, &first);
    c.args(["install", "--package-lock-only", "--no-audit", "--no-fund"]);
    run(c, "npm install --package-lock-only");
    let lock = std::fs::read_to_string(first.join("package-lock.json")).unwrap();
    for i in 0..n {
        let name = format!("n{i:03}");
        let dir = root.join(format!("services/{name}"));
        write(&dir.join("package.json"), &pj(&name));
        write(
            &dir.join("package-lock.json"),
            &lock.replace("\"n000\"", &format!("\"{name}\"")),
        );
        m.push_str(&format!(
            "\n[registry.services.{name}]\nsources.prod = {{ type = \"local\", path = \"services/{name}\" }}\ndeployment-profiles.default = {{ runtime = \"node\" }}\n"
        ));
    }
    write(&root.join("hsm.toml"), &m);
    dir
}

/// `program` in `dir` with npm's cache inside the workspace at `root`.
fn with_cache(tools: &Tools, program: &Path, root: &Path, dir: &Path) -> Command {
    let mut c = tools.cmd(program, dir);
    c.env("npm_config_cache", root.join(".npm-cache"))
        .env("npm_config_update_notifier", "false");
    c
}

fn npm(tools: &Tools, root: &Path, dir: &Path) -> Command {
    with_cache(tools, Path::new("npm"), root, dir)
}

/// `for d in services/*; do (cd "$d" && npm <args>); done`
fn npm_loop(tools: &Tools, root: &Path, args: &str) -> Command {
    let mut c = with_cache(tools, Path::new("sh"), root, root);
    c.arg("-c").arg(format!(
        "set -e; for d in services/*; do (cd \"$d\" && npm {args} >/dev/null); done"
    ));
    c
}

fn hsm_sync(tools: &Tools, root: &Path) -> Command {
    let mut c = with_cache(tools, &tools.hsm, root, root);
    c.args(["hsm", "sync", "-q", "--manifest-path"])
        .arg(root.join("Cargo.toml"));
    c
}

/// Whether node and npm can run here; the node cases are left out otherwise.
pub fn available() -> bool {
    Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// With `quick`, one run per side (the loop of `npm ls` over 50 services
/// alone takes half a minute).
pub fn cases(tools: &Tools, runs: usize, quick: bool) -> Vec<Row> {
    let runs = if quick { 1 } else { runs };
    let ws = node_workspace(tools, 50);
    let root = ws.path();
    run(hsm_sync(tools, root), "first cargo hsm sync (npm ci ×50)");
    run(hsm_sync(tools, root), "second cargo hsm sync");
    let (mut hsm, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        hsm.push(run(hsm_sync(tools, root), "cargo hsm sync"));
        base.push(run(npm_loop(tools, root, "ls"), "npm ls loop"));
    }
    let noop = Row::versus(
        "no-op sync, 50 node services",
        median(hsm),
        "shell loop of `npm ls`",
        median(base),
        "ratio ≤ 0.05",
        0.05,
    );
    drop(ws);

    let ws = node_workspace(tools, 10);
    let root = ws.path();
    run(
        hsm_sync(tools, root),
        "first cargo hsm sync (warms npm's cache)",
    );
    let clear = || {
        for e in std::fs::read_dir(root.join("services")).unwrap().flatten() {
            let _ = std::fs::remove_dir_all(e.path().join("node_modules"));
        }
    };
    let (mut hsm, mut base, mut cpu) = (Vec::new(), Vec::new(), (Vec::new(), Vec::new()));
    for _ in 0..runs {
        clear();
        let (wall, c) = run_cpu(hsm_sync(tools, root), "cargo hsm sync");
        hsm.push(wall);
        cpu.0.push(c);
        clear();
        let (wall, c) = run_cpu(
            npm_loop(tools, root, "ci --no-audit --no-fund"),
            "npm ci loop",
        );
        base.push(wall);
        cpu.1.push(c);
    }
    // On a loaded machine wall time follows the share of CPU a side gets.
    println!(
        "cold install CPU (every process): cargo hsm {} | npm ci loop {}",
        ms(median(cpu.0)),
        ms(median(cpu.1))
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cold = Row::versus(
        &format!("cold install, warm npm cache, 10 node services, {cores} cores"),
        median(hsm),
        "shell loop of `npm ci`",
        median(base),
        "ratio ≤ 0.7",
        0.7,
    );
    vec![noop, cold]
}
