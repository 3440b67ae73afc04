//! Helpers for tests/up.rs and tests/up_podman.rs: sandboxes of uv
//! services running Python scripts, `cargo hsm up` in the background with
//! its signals restored, and pid checks against `/proc`.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::sync_support::{stderr, stdout, Sandbox};

/// A Cargo workspace holding `hsm.toml` and, for each `(name, script)`, a
/// virtual uv project at `svc/<name>` whose `main.py` is `script`.
pub fn sandbox(manifest: &str, services: &[(&str, &str)]) -> Sandbox {
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write("hsm.toml", manifest);
    for (name, script) in services {
        sb.write(
            &format!("svc/{name}/pyproject.toml"),
            &format!(
                "[project]\nname = \"{name}\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[tool.uv]\npackage = false\n"
            ),
        );
        sb.write(&format!("svc/{name}/main.py"), script);
    }
    sb
}

/// A registry entry for a uv service at `svc/<name>` running `main.py`.
pub fn uv_entry(name: &str, extra: &str) -> String {
    format!(
        "[registry.services.{name}]\n{extra}\nsources.prod = {{ type = \"local\", path = \"svc/{name}\" }}\ndeployment-profiles.default = {{ runtime = \"uv\", command = [\"python\", \"main.py\"] }}\n"
    )
}

/// `cargo hsm up ARGS` started in the background with SIGINT and SIGTERM
/// restored (a test run from a non-interactive shell inherits them ignored).
pub fn spawn_up(sb: &Sandbox, args: &[&str], env: &[(String, String)]) -> Child {
    let mut a = vec!["up"];
    a.extend_from_slice(args);
    let mut cmd = sb.cmd(&a);
    cmd.env("UV_OFFLINE", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: resets two signal dispositions between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd.spawn().expect("start cargo-hsm up")
}

/// Waits for `child` at most `limit`; kills it past that.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "cargo hsm up did not end within {limit:?}:\n{}\n{}",
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Waits until `path` exists (a service wrote it).
pub fn wait_for_file(path: &Path, limit: Duration, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("cargo hsm up ended early ({s}) before {}", path.display());
        }
        assert!(
            start.elapsed() < limit,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), and
/// whether it is a zombie; `None` when there is no such process.
pub fn proc_start(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f[19].parse().ok()?, f[0] == "Z"))
}

/// The pids a service wrote (`pids/<name>`: its own, then its child's),
/// with their start times.
pub fn recorded(sb: &Sandbox, name: &str) -> Vec<(i32, u64)> {
    sb.read(&format!("pids/{name}"))
        .split_whitespace()
        .map(|p| p.parse::<i32>().unwrap())
        .map(|p| (p, proc_start(p).expect("the recorded process runs").0))
        .collect()
}

/// Every recorded process is gone: no process with that pid and start
/// time is left (a zombie is not running).
pub fn assert_gone(procs: &[(i32, u64)]) {
    for &(pid, start) in procs {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match proc_start(pid) {
                Some((s, false)) if s == start => {
                    assert!(Instant::now() < deadline, "process {pid} still runs");
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
    }
}

/// Python that records its pid and the pid of a child it starts (which
/// must die with its process group).
pub const RECORD_PIDS: &str = r#"
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
os.makedirs("../../pids", exist_ok=True)
with open(f"../../pids/{NAME}.tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}\n")
os.rename(f"../../pids/{NAME}.tmp", f"../../pids/{NAME}")
"#;

/// An HTTP server on `$HSM_BIND_HOST:port` answering `body`, after `delay`
/// seconds (so that it becomes ready late).
pub fn server_script(port: u16, body: &str, delay: f64) -> String {
    format!(
        r#"NAME = "web"
{RECORD_PIDS}
import http.server, time
time.sleep({delay})
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{body}")
    def log_message(self, *a):
        print("served", self.path, flush=True)
print("listening on", os.environ["HSM_BIND_HOST"], {port}, flush=True)
http.server.HTTPServer((os.environ["HSM_BIND_HOST"], {port}), H).serve_forever()
"#
    )
}

/// `ps --message-format json` with the values that change between runs
/// (pids, uptimes) replaced.
pub fn ps_json(sb: &Sandbox) -> serde_json::Value {
    let out = sb.run(&["ps", "--message-format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for s in v["services"].as_array_mut().unwrap() {
        if s["pid"].is_number() {
            s["pid"] = "[PID]".into();
        }
        if s["uptime_s"].is_number() {
            s["uptime_s"] = "[UPTIME]".into();
        }
    }
    v
}
