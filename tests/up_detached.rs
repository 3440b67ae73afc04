//! `up -d` under its detached supervisor: a process that exits comes back
//! by its `restart` policy after `up -d` has returned, `ps` shows the
//! restarts and the health (healthy, then unhealthy), `down` stops it for
//! good and leaves no process of ours (a `/proc` scan); and the sync lock
//! that a running `up` holds: a sync with nothing to do goes ahead, one
//! that would change an environment is refused, naming the `up`.

mod compose_support;
mod sync_support;
mod up_support;

use std::time::{Duration, Instant};

use compose_support::free_port;
use sync_support::{require, stderr, stdout, Sandbox};
use up_support::*;

/// Waits until `f` holds, at most `limit`.
fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes whose command line or working directory is inside `sb`.
fn ours(sb: &Sandbox) -> Vec<String> {
    let root = sb.root.canonicalize().unwrap();
    let root = root.to_string_lossy().to_string();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        if proc_start(pid.parse().unwrap()).is_none_or(|(_, zombie)| zombie) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cwd = std::fs::read_link(e.path().join("cwd"))
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        if cmdline.contains(&root) || cwd.starts_with(&root) {
            found.push(format!("{pid}: {cmdline} (in {cwd})"));
        }
    }
    found
}

#[test]
fn detached_processes_restart_show_health_and_down_leaves_nothing() {
    if !require("uv") {
        return;
    }
    let port = free_port();
    let mut manifest = String::from(
        "[project]\nname = \"supervised\"\n[services]\nstandalone = [\"web\", \"worker\"]\n",
    );
    manifest += &uv_entry(
        "web",
        &format!("ports = [\"{port}\"]\nhealthcheck = {{ http = \"/health\", interval = \"300ms\", retries = 2, start-period = \"60s\" }}"),
    );
    manifest += &uv_entry("worker", "restart = \"on-failure\"");
    let web = format!(
        "import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(500 if os.path.exists('../../sick') else 200)\n        self.end_headers()\n    def log_message(self, *a):\n        pass\nhttp.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    );
    // Its first run ends with a failure after `up -d` has returned.
    let worker = "import os, sys, time\nos.makedirs('../../runs', exist_ok=True)\nn = len(os.listdir('../../runs'))\nopen(f'../../runs/{n}', 'w').write(str(os.getpid()))\nprint('run', n, flush=True)\nif n == 0:\n    time.sleep(1.5)\n    sys.exit(4)\ntime.sleep(600)\n";
    let sb = sandbox(&manifest, &[("web", &web), ("worker", worker)]);
    let out = wait_bounded(spawn_up(&sb, &["-d"], &[]), Duration::from_secs(120));
    let e = stderr(&out);
    let down_anyway = Down(&sb);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert!(e.contains("Ready web") && e.contains("Ready worker"), "{e}");
    assert!(
        !sb.exists("runs/1"),
        "the restart came before `up -d` returned"
    );
    // `up -d` has returned; the supervisor restarts the worker.
    until(Duration::from_secs(20), "the restart", || {
        sb.exists("runs/1")
    });
    until(Duration::from_secs(10), "ps counting it", || {
        let ps = ps_json(&sb);
        ps["services"][1]["restarts"] == 1 && ps["services"][1]["state"] == "running"
    });
    let log = sb.read(".hsm/run/worker.log");
    assert!(log.contains("run 0\n") && log.contains("run 1\n"), "{log}");
    // Health, kept by the supervisor: healthy, unhealthy, healthy again.
    assert_eq!(ps_json(&sb)["services"][0]["health"], "healthy");
    sb.write("sick", "");
    until(Duration::from_secs(10), "unhealthy", || {
        ps_json(&sb)["services"][0]["health"] == "unhealthy"
    });
    let human = stdout(&sb.run(&["ps"]));
    assert!(human.contains("running (unhealthy)"), "{human}");
    std::fs::remove_file(sb.path("sick")).unwrap();
    until(Duration::from_secs(10), "healthy again", || {
        ps_json(&sb)["services"][0]["health"] == "healthy"
    });
    assert!(!ours(&sb).is_empty());

    // `down`: the worker is stopped for good, the supervisor ends, nothing is left.
    std::mem::forget(down_anyway);
    let t = Instant::now();
    let down = sb.run(&["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert_eq!(ours(&sb), Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!sb.exists("runs/2"), "the worker came back after `down`");
    assert_eq!(ours(&sb), Vec::<String>::new());
    assert_eq!(ps_json(&sb)["services"], serde_json::json!([]));
    let left: Vec<String> = std::fs::read_dir(sb.path(".hsm/run"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".json") || n.ends_with(".stop"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn a_running_up_holds_the_sync_lock_against_a_sync_that_would_change_its_environments() {
    if !require("uv") {
        return;
    }
    let mut manifest =
        String::from("[project]\nname = \"held\"\n[services]\nstandalone = [\"web\"]\n");
    manifest += &uv_entry("web", "env = { GREETING = \"one\" }");
    let script = "import os, time\nopen('../../started', 'w').write(os.environ['GREETING'])\ntime.sleep(600)\n";
    let sb = sandbox(&manifest, &[("web", script)]);
    let sync = |sb: &Sandbox| sb.cmd(&["sync"]).env("UV_OFFLINE", "1").output().unwrap();
    let mut up = spawn_up(&sb, &[], &[]);
    let mut guard = Interrupt(Some(up.id() as i32));
    wait_for_file(&sb.path("started"), Duration::from_secs(120), &mut up);
    // Nothing to do: it goes ahead.
    let out = sync(&sb);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Fresh 1 component unchanged"),
        "{}",
        stderr(&out)
    );
    // A change to web's environment: refused, naming the `up`.
    let env_files = |sb: &Sandbox| {
        walk(&sb.root)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".env"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect::<Vec<_>>()
    };
    let before = env_files(&sb);
    sb.write("hsm.toml", &manifest.replace("\"one\"", "\"two\""));
    let out = sync(&sb);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("cannot sync while `cargo hsm up` runs services from these environments")
            && e.contains("held by `cargo hsm up` (pid ")
            && e.contains("), running web")
            && e.contains("the sync would change: service:web")
            && e.contains("cargo hsm down"),
        "{e}"
    );
    assert_eq!(env_files(&sb), before, "the refused sync wrote");
    // `down` from another shell: the foreground `up` stops web for good
    // and, with nothing left to run, ends by itself.
    assert!(sb.run(&["down"]).status.success());
    let out = wait_bounded(up, Duration::from_secs(30));
    guard.0 = None;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("Stopped web"), "{}", stderr(&out));
    assert_eq!(ours(&sb), Vec::<String>::new());
    let out = sync(&sb);
    assert!(out.status.success(), "{}", stderr(&out));

    // Detached: the supervisor holds it until `down`.
    let out = sb
        .cmd(&["up", "-d", "-q"])
        .env("UV_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let _down = Down(&sb);
    sb.write("hsm.toml", &manifest.replace("\"one\"", "\"three\""));
    let e = stderr(&sync(&sb));
    assert!(
        e.contains("held by the detached supervisor of `cargo hsm up -d`"),
        "{e}"
    );
    drop(_down);
    let out = sync(&sb);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `cargo hsm down` however the test ends.
struct Down<'a>(&'a Sandbox);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        assert!(self.0.run(&["down", "-q"]).status.success() || std::thread::panicking());
    }
}

/// SIGINT to a `cargo hsm up` still running when a test fails.
struct Interrupt(Option<i32>);

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == ".venv" || name == ".git" {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
