//! Environment services as supervised processes: the profile's `command`
//! in `working-dir` (relative to the target path), with the service's own
//! environment active (`VIRTUAL_ENV`, its `bin` first on `PATH`), its
//! resolved env and the discovery values. No shell. Each runs in a process
//! group of its own, which [`Proc::stop`] ends: SIGTERM, then SIGKILL after
//! the stop timeout.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use super::Message;
use crate::error::{Error, Result};
use crate::manifest::model::RuntimeType;
use crate::plan::{Plan, PlannedService};

/// How a process service is started: resolved before anything runs, so
/// that a missing command or directory fails `up` before the first start.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: Utf8PathBuf,
    pub args: Vec<String>,
    pub cwd: Utf8PathBuf,
    /// Set on top of hsm's own environment.
    pub env: Vec<(String, String)>,
    /// `PATH` with the service environment's `bin` first.
    pub path: String,
}

impl Launch {
    /// The command line, for messages.
    pub fn shown(&self) -> String {
        crate::materialize::runtimes::command_line(&self.program, &self.args)
    }
}

/// Works out how `s` starts: program, arguments, directory and env.
pub fn launch(plan: &Plan, s: &PlannedService, extra: &[(String, String)]) -> Result<Launch> {
    let runtime = s.runtime().unwrap_or(RuntimeType::Venv);
    let Some(command) = s.command.as_ref().filter(|c| !c.is_empty()) else {
        return Err(Error::config(format!(
            "service `{}` (runtime {}) has no `command`: `up` has nothing to run",
            s.name,
            runtime.as_str()
        ))
        .with_help(format!(
            "set `command` in its deployment profile `{}`, e.g. `command = [\"python\", \"-m\", \"{}\"]`",
            s.profile,
            s.name.replace('-', "_")
        )));
    };
    launch_command(plan, s, extra, command)
}

/// [`launch`] with `command` instead of the profile's (`cargo hsm run`).
pub fn launch_command(
    plan: &Plan,
    s: &PlannedService,
    extra: &[(String, String)],
    command: &[String],
) -> Result<Launch> {
    let root = &plan.project.workspace_root;
    let runtime = s.runtime().unwrap_or(RuntimeType::Venv);
    let target = root.join(s.target_path.as_deref().unwrap_or(Utf8Path::new(".")));
    let cwd = crate::paths::normalize(&match &s.working_dir {
        Some(w) => target.join(w),
        None => target.clone(),
    });
    if !cwd.is_dir() {
        return Err(Error::failed(format!(
            "the working directory `{}` of service `{}` does not exist",
            crate::deploy::compose::relative_path(root, &cwd),
            s.name
        ))
        .with_help(
            "fix `working-dir` (relative to the service's target path), or run `cargo hsm sync`",
        ));
    }
    let adapter = crate::materialize::runtimes::adapter(runtime).ok_or_else(|| {
        Error::failed(format!(
            "service `{}` runs with `{runtime}`, a container runtime, not as a process",
            s.name
        ))
    })?;
    let run_env = adapter.run_env(&target);
    if let Some(required) = run_env.required.as_ref().filter(|r| !r.exists()) {
        return Err(Error::failed(format!(
            "service `{}` has no environment at `{}`",
            s.name,
            crate::deploy::compose::relative_path(root, required)
        ))
        .with_help("run `cargo hsm sync` (or `up` without `--no-sync`)"));
    }
    let bin = &run_env.bin;
    let inherited = std::env::var("PATH").unwrap_or_default();
    let path = if inherited.is_empty() {
        bin.to_string()
    } else {
        format!("{bin}:{inherited}")
    };
    let place = crate::discovery::Place::Host;
    let mut env: Vec<(String, String)> = crate::envfile::resolved_env_with(root, s, &|v| {
        crate::discovery::substitute(plan, s, place, v)
            .map_err(|why| Error::config(format!("a value of service `{}`: {why}", s.name)))
    })?;
    // The manifest's values win over discovery's: a user who wrote
    // `DB_HOST` by hand meant it.
    for (k, v) in extra {
        if !env.iter().any(|(ek, _)| ek == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    let (program, args) = match adapter.wrap_command(&s.name, &target, command)? {
        Some(wrapped) => wrapped,
        None => {
            env.extend(run_env.vars.iter().cloned());
            (
                find_program(&command[0], &cwd, &path, &s.name)?,
                command[1..].to_vec(),
            )
        }
    };
    Ok(Launch {
        program,
        args,
        cwd,
        env,
        path,
    })
}

/// `prog` as the service's shell would find it: a path (relative to the
/// working directory), else the first match on the service's `PATH`.
fn find_program(prog: &str, cwd: &Utf8Path, path: &str, service: &str) -> Result<Utf8PathBuf> {
    let found = if prog.contains('/') {
        let p = cwd.join(prog);
        p.is_file().then_some(p)
    } else {
        which::which_in(prog, Some(path), cwd)
            .ok()
            .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
    };
    found.ok_or_else(|| {
        Error::failed(format!(
            "the command `{prog}` of service `{service}` was not found in its environment or on `PATH`"
        ))
        .with_help("add the package that provides it to the service's dependencies, or fix `command`")
    })
}

/// A running process service.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub pid: u32,
    pub started: Instant,
}

/// Starts `launch` for service `name` in a process group of its own; its
/// output lines go to `tx`. Called from the main thread: on Linux the
/// child is killed when the thread that started it dies (the detached
/// supervisor of `up -d` is such a thread too, so nothing outlives it).
pub(crate) fn spawn(name: &str, launch: &Launch, tx: &Sender<Message>) -> Result<Proc> {
    let mut cmd = Command::new(&launch.program);
    cmd.args(&launch.args)
        .current_dir(&launch.cwd)
        .env("PATH", &launch.path)
        .env_remove("PYTHONHOME")
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        // Python buffers a pipe's output; logs should arrive as they are written.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::materialize::interrupt::prepare_child(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        Error::failed(format!("cannot start service `{name}`: {e}"))
            .with_detail(format!("command: {}", launch.shown()))
    })?;
    let pid = child.id();
    if let Some(out) = child.stdout.take() {
        pipe_lines(name, out, false, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        pipe_lines(name, err, true, tx.clone());
    }
    Ok(Proc {
        name: name.to_string(),
        child,
        pid,
        started: Instant::now(),
    })
}

/// Sends each line `r` gives to `tx` as the log of `service`.
pub(crate) fn pipe_lines(
    service: &str,
    r: impl Read + Send + 'static,
    stderr: bool,
    tx: Sender<Message>,
) {
    let service = service.to_string();
    let _ = std::thread::Builder::new()
        .name(format!("log-{service}"))
        .spawn(move || {
            let mut r = BufReader::new(r);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        if tx
                            .send(Message::Log {
                                service: service.clone(),
                                line,
                                stderr,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
}

impl Proc {
    /// Stops the process group: SIGTERM, then SIGKILL after `timeout`;
    /// returns once no process of the group is left and the child is reaped.
    pub fn stop(&mut self, timeout: Duration) {
        let pgid = self.pid as i32;
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && group_alive(pgid) {
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        if group_alive(pgid) {
            signal_group(pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_alive(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Stops the process group `pgid` of a process that is not our child (a
/// detached one, from a new shell): SIGTERM, SIGKILL after `timeout`.
pub fn stop_group(pgid: i32, timeout: Duration) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && group_running(pgid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if group_running(pgid) {
        signal_group(pgid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_running(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process of group `pgid` runs (zombies, which a parent other
/// than hsm has to reap, do not count): a scan of `/proc`.
pub fn group_running(pgid: i32) -> bool {
    if !group_alive(pgid) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            return false;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // state, ppid, pgrp
        f.first() != Some(&"Z") && f.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
    })
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) on a process group we started.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether any process of group `pgid` still exists (a zombie leader counts
/// until reaped).
pub fn group_alive(pgid: i32) -> bool {
    crate::materialize::interrupt::group_alive(pgid)
}
