//! Container services through the project's engine and its compose front
//! end (`podman-compose`; `docker compose`, else `docker-compose`), under a
//! stable project name (the manifest's `project.name`).
//!
//! The compose file is the one sync writes. The discovery values of the
//! containers (and, for docker, the host gateway's `extra_hosts` entry) go
//! into an override file beside hsm's other run state,
//! `.hsm/run/compose.override.yml`, passed as a second `-f`; the generated
//! compose file stays the same for `up` as for a user's own `compose up`.

use std::process::{Command, Stdio};
use std::time::Duration;

use camino::Utf8PathBuf;

use crate::deploy::yaml::{self, Yaml};
use crate::discovery::{self, Place};
use crate::error::{Error, Result};
use crate::manifest::model::ContainerEngine;
use crate::plan::Plan;

/// Where `up` writes the compose override, relative to the workspace root.
pub const OVERRIDE_FILE: &str = ".hsm/run/compose.override.yml";

/// The engine, its compose front end, and the files of one project.
#[derive(Debug, Clone)]
pub struct Compose {
    pub engine: ContainerEngine,
    /// `podman` or `docker`.
    pub engine_bin: Utf8PathBuf,
    /// The front end's program and leading arguments (`docker compose`).
    pub front: Vec<String>,
    pub project: String,
    pub files: Vec<Utf8PathBuf>,
    pub cwd: Utf8PathBuf,
}

/// A compose project name from `name`: lower case, `[a-z0-9_-]`, starting
/// with a letter or digit (compose's rule).
pub fn project_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches(['_', '-']).to_string();
    if s.is_empty() {
        "hsm".to_string()
    } else {
        s
    }
}

fn which(tool: &str) -> Option<Utf8PathBuf> {
    which::which(tool)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
}

/// Finds the engine and its compose front end for `plan`'s project.
pub fn detect(plan: &Plan, files: Vec<Utf8PathBuf>) -> Result<Compose> {
    let engine = plan.project.container_engine;
    let (bin, hint) = match engine {
        ContainerEngine::Podman => ("podman", "install podman (e.g. `apt-get install podman`)"),
        ContainerEngine::Docker => (
            "docker",
            "install docker, or set `project.container-engine = \"podman\"`",
        ),
    };
    let missing = |what: &str, help: &str| {
        Error::failed(format!(
            "the container services need {what}, which was not found on `PATH` (`project.container-engine` is {bin})"
        ))
        .with_help(help.to_string())
    };
    let engine_bin = which(bin).ok_or_else(|| missing(&format!("`{bin}`"), hint))?;
    let front = match engine {
        ContainerEngine::Podman => match which("podman-compose") {
            Some(p) => vec![p.into_string()],
            None => {
                return Err(missing(
                    "`podman-compose`",
                    "install it: `python3 -m pip install podman-compose`",
                ))
            }
        },
        ContainerEngine::Docker => {
            let plugin = Command::new(&engine_bin)
                .args(["compose", "version"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if plugin {
                vec![engine_bin.to_string(), "compose".into()]
            } else if let Some(p) = which("docker-compose") {
                vec![p.into_string()]
            } else {
                return Err(missing(
                    "`docker compose` or `docker-compose`",
                    "install the compose plugin (`docker-compose-plugin`) or `docker-compose`",
                ));
            }
        }
    };
    Ok(Compose {
        engine,
        engine_bin,
        front,
        project: project_name(&plan.project.name),
        files,
        cwd: plan.project.workspace_root.clone(),
    })
}

/// The override for the containers among `running`: their discovery
/// values, and for docker the host gateway. `None` when there is nothing
/// to add. Pure: same Plan and selection, same bytes.
pub fn render_override(plan: &Plan, running: &[String]) -> Option<String> {
    let mut services = Vec::new();
    for s in running
        .iter()
        .filter_map(|n| plan.service(n))
        .filter(|s| s.is_container())
    {
        let mut m = Vec::new();
        let values = discovery::values_for(plan, s, Place::Container);
        // The manifest's own values win, as for processes.
        let env: Vec<(String, Yaml)> = values
            .into_iter()
            .filter(|(k, _)| !s.env.contains_key(k))
            .map(|(k, v)| (k, Yaml::str(v)))
            .collect();
        if !env.is_empty() {
            m.push(("environment".to_string(), Yaml::Map(env)));
        }
        let uses_process = s
            .depends_on
            .iter()
            .any(|d| plan.service(d).is_some_and(|d| d.is_environment()));
        if uses_process && plan.project.container_engine == ContainerEngine::Docker {
            // Podman adds host.containers.internal itself (and 4.3 rejects
            // `host-gateway`); docker needs it said.
            m.push((
                "extra_hosts".to_string(),
                Yaml::Seq(vec![Yaml::str("host.docker.internal:host-gateway")]),
            ));
        }
        if !m.is_empty() {
            services.push((s.name.clone(), Yaml::Map(m)));
        }
    }
    if services.is_empty() {
        return None;
    }
    let mut out = String::from(
        "# Written by `cargo hsm up`: discovery values of the container services. Do not edit.\n",
    );
    out.push_str(&yaml::to_string(&Yaml::Map(vec![(
        "services".to_string(),
        Yaml::Map(services),
    )])));
    Some(out)
}

/// A finished command's output.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to the end in a process group of its own, output captured;
/// gives up (the group killed) on a signal to hsm.
pub fn run_captured(cmd: &mut Command) -> Result<Output> {
    run_to_end(cmd, true)
}

/// [`run_captured`]; with `interruptible` false it runs to its end even
/// after a signal (the stop that the signal asked for).
fn run_to_end(cmd: &mut Command, interruptible: bool) -> Result<Output> {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::materialize::interrupt::prepare_child(cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::failed(format!("cannot run {shown}: {e}")))?;
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(|e| Error::failed(format!("{shown}: {e}")))?
        {
            break s;
        }
        if let Some(sig) = crate::materialize::interrupt::signalled().filter(|_| interruptible) {
            // SAFETY: our own child's process group.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            return Err(crate::materialize::interrupt::interrupted(sig));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        ok: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

impl Compose {
    fn front_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.front[0]);
        c.args(&self.front[1..]).arg("-p").arg(&self.project);
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.args(args).current_dir(&self.cwd);
        c
    }

    pub fn engine_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.engine_bin);
        c.args(args).current_dir(&self.cwd);
        c
    }

    fn shown(&self, args: &[&str]) -> String {
        let mut v: Vec<String> = self.front.clone();
        v.extend(["-p".into(), self.project.clone()]);
        for f in &self.files {
            v.extend([
                "-f".into(),
                crate::deploy::compose::relative_path(&self.cwd, f).into_string(),
            ]);
        }
        v.extend(args.iter().map(|a| a.to_string()));
        v.join(" ")
    }

    fn checked(&self, args: &[&str], what: &str, interruptible: bool) -> Result<Output> {
        let out = run_to_end(&mut self.front_cmd(args), interruptible)?;
        if !out.ok {
            let detail = format!("{}{}", out.stdout, out.stderr);
            return Err(Error::failed(what.to_string()).with_detail(format!(
                "$ {}\n{}",
                self.shown(args),
                detail.trim_end()
            )));
        }
        Ok(out)
    }

    /// Runs the front end to its end (even after a signal); fails with
    /// `what` and its output.
    pub(super) fn run_checked(&self, args: &[&str], what: &str) -> Result<()> {
        self.checked(args, what, false).map(|_| ())
    }

    /// Creates and starts one service's container, without its
    /// dependencies (hsm starts those itself, when they are ready).
    pub fn up(&self, service: &str) -> Result<()> {
        self.checked(
            &["up", "-d", "--no-deps", service],
            &format!("the container of service `{service}` did not start"),
            true,
        )
        .map(|_| ())
    }

    /// Stops the containers of `services`, waiting `timeout` before SIGKILL.
    pub fn stop(&self, services: &[String], timeout: Duration) -> Result<()> {
        let t = timeout.as_secs().to_string();
        let mut args = vec!["stop", "-t", t.as_str()];
        args.extend(services.iter().map(String::as_str));
        self.checked(&args, "the containers did not stop", false)
            .map(|_| ())
    }

    /// The id of `service`'s container in this project.
    pub fn container_id(&self, service: &str) -> Result<String> {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let svc = format!("label=com.docker.compose.service={service}");
        let out = run_captured(&mut self.engine_cmd(&[
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            &project,
            "--filter",
            &svc,
        ]))?;
        out.stdout
            .lines()
            .next()
            .filter(|_| out.ok)
            .map(str::to_string)
            .ok_or_else(|| {
                Error::failed(format!("no container of service `{service}` was found"))
                    .with_detail(out.stderr)
            })
    }

    /// `(running, exit code)` of a container.
    pub fn state(&self, id: &str) -> Option<(bool, i32)> {
        let out = run_captured(&mut self.engine_cmd(&[
            "inspect",
            "--format",
            "{{.State.Running}} {{.State.ExitCode}}",
            id,
        ]))
        .ok()?;
        let mut w = out.stdout.split_whitespace();
        let running = w.next()? == "true";
        Some((running, w.next()?.parse().ok()?))
    }

    /// Runs the container's compose healthcheck once. Podman without
    /// systemd runs none by itself, so hsm does (`podman healthcheck run`);
    /// docker runs its own, and hsm reads the status.
    pub fn healthy(&self, id: &str) -> bool {
        match self.engine {
            ContainerEngine::Podman => {
                run_captured(&mut self.engine_cmd(&["healthcheck", "run", id])).is_ok_and(|o| o.ok)
            }
            ContainerEngine::Docker => run_captured(&mut self.engine_cmd(&[
                "inspect",
                "--format",
                "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                id,
            ]))
            .is_ok_and(|o| o.stdout.trim() == "healthy"),
        }
    }

    /// `engine logs -f` of a container from `since` on (unix seconds).
    pub fn follow_logs(&self, id: &str, since: u64) -> Command {
        let since = since.to_string();
        self.engine_cmd(&["logs", "-f", "--since", &since, id])
    }
}

/// Writes the override (or removes a stale one); returns its path when
/// there is one. Never rewrites a file whose content would not change.
pub fn write_override(plan: &Plan, running: &[String]) -> Result<Option<Utf8PathBuf>> {
    let path = plan.project.workspace_root.join(OVERRIDE_FILE);
    match render_override(plan, running) {
        Some(text) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::failed(format!("cannot create `{dir}`: {e}")))?;
            }
            crate::fs::write_if_changed(&path, text.as_bytes(), None)
                .map_err(|e| Error::failed(format!("cannot write `{OVERRIDE_FILE}`: {e}")))?;
            Ok(Some(path))
        }
        None => {
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_command_lines_for_podman_and_docker() {
        let root = camino::Utf8PathBuf::from("/ws");
        let compose = |engine, front: &[&str]| Compose {
            engine,
            engine_bin: Utf8PathBuf::from(if engine == ContainerEngine::Docker {
                "/usr/bin/docker"
            } else {
                "/usr/bin/podman"
            }),
            front: front.iter().map(|s| s.to_string()).collect(),
            project: "rag-stack".into(),
            files: vec![
                root.join("docker-compose.hsm.yml"),
                root.join(OVERRIDE_FILE),
            ],
            cwd: root.clone(),
        };
        let up = ["up", "-d", "--no-deps", "web"];
        let files = "-p rag-stack -f docker-compose.hsm.yml -f .hsm/run/compose.override.yml";
        let podman = compose(ContainerEngine::Podman, &["/usr/bin/podman-compose"]);
        assert_eq!(
            podman.shown(&up),
            format!("/usr/bin/podman-compose {files} up -d --no-deps web")
        );
        let plugin = compose(ContainerEngine::Docker, &["/usr/bin/docker", "compose"]);
        assert_eq!(
            plugin.shown(&up),
            format!("/usr/bin/docker compose {files} up -d --no-deps web")
        );
        let standalone = compose(ContainerEngine::Docker, &["/usr/bin/docker-compose"]);
        let c = standalone.front_cmd(&["stop", "-t", "10", "web"]);
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "/usr/bin/docker-compose");
        assert_eq!(
            args.join(" "),
            "-p rag-stack -f /ws/docker-compose.hsm.yml -f /ws/.hsm/run/compose.override.yml stop -t 10 web"
        );
        let logs = plugin.follow_logs("abc", 7);
        assert_eq!(logs.get_program(), "/usr/bin/docker");
        let args: Vec<String> = logs
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["logs", "-f", "--since", "7", "abc"]);
    }

    #[test]
    fn project_names_follow_compose_rules() {
        assert_eq!(project_name("rag-stack"), "rag-stack");
        assert_eq!(project_name("My Stack.v2"), "my_stack_v2");
        assert_eq!(project_name("--x"), "x");
        assert_eq!(project_name("__"), "hsm");
    }
}
