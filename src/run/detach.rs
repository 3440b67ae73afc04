//! `up -d`: the services run under a detached supervisor, a process of its
//! own (`cargo-hsm __supervise`, in a session of its own, so that it
//! outlives the shell) that runs the same loop as a foreground `up`. It
//! starts the services, tells `up -d` what happens until every one is
//! ready (JSON lines on a pipe), then goes on: it restarts processes per
//! their `restart` policy, keeps their health and their size-capped log
//! files, and holds the sync lock shared while they run. `cargo hsm down`
//! asks it to stop a service with a `.hsm/run/<service>.stop` file; it
//! exits once none of its services is left. Its own messages go to
//! `.hsm/run/supervisor.log`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{state, Event, UpOptions, UpOutcome};
use crate::error::{Error, Result};
use crate::materialize::interrupt;
use crate::plan::Plan;

/// The hidden command that runs a detached supervisor.
pub const SUPERVISE: &str = "__supervise";

/// The supervisor's own log, relative to the workspace root.
pub const SUPERVISOR_LOG: &str = ".hsm/run/supervisor.log";

/// One line from the supervisor to `up -d`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Wire {
    Event(Event),
    /// The supervisor ended (nothing was left to run).
    Done {
        failed: Vec<(String, String)>,
    },
    Error {
        config: bool,
        message: String,
        help: Option<String>,
        detail: Option<String>,
    },
}

fn to_wire(e: &Error) -> Wire {
    match e {
        Error::Config(d) => Wire::Error {
            config: true,
            message: d.message.clone(),
            help: d.help.clone(),
            detail: None,
        },
        Error::Failed(f) => Wire::Error {
            config: false,
            message: f.message.clone(),
            help: f.help.clone(),
            detail: f.detail.clone(),
        },
    }
}

fn from_wire(config: bool, message: String, help: Option<String>, detail: Option<String>) -> Error {
    let mut e = if config {
        Error::config(message)
    } else {
        Error::failed(message)
    };
    if let Some(h) = help {
        e = e.with_help(h);
    }
    if let Some(d) = detail {
        e = e.with_detail(d);
    }
    e
}

/// `up -d`: checks the selection here (so that a configuration error is
/// reported as such), starts the supervisor, and relays what it says
/// until every service is ready. Ctrl-C meanwhile stops it (and with it
/// everything it started).
pub(super) fn up(plan: &Plan, opts: &UpOptions, on: &mut dyn FnMut(Event)) -> Result<UpOutcome> {
    super::prepare(plan, opts)?;
    let root = &plan.project.workspace_root;
    let dir = state::dir(root);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::failed(format!("cannot create `{dir}`: {e}")))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(SUPERVISOR_LOG))
        .map_err(|e| Error::failed(format!("cannot open `{SUPERVISOR_LOG}`: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::failed(format!("cannot find the cargo-hsm program: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg(SUPERVISE)
        .arg("--manifest-path")
        .arg(root.as_str())
        .args(&opts.services)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(t) = opts.wait_timeout {
        cmd.arg("--wait-timeout-ms").arg(t.as_millis().to_string());
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid and signal are async-signal-safe. A session of
        // its own, so that the terminal's Ctrl-C and hangup do not reach
        // it; SIGINT / SIGTERM restored, so that it can be stopped.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                Ok(())
            });
        }
    }
    let _guard = interrupt::install(None);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::failed(format!("cannot start the supervisor of `up -d`: {e}")))?;
    let (tx, rx) = channel();
    let out = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let outcome = loop {
        if let Some(sig) = interrupt::signalled() {
            // SAFETY: the supervisor we started; it stops what it started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            while rx.recv_timeout(Duration::from_secs(120)).is_ok() {}
            let _ = child.wait();
            interrupt::mark_handled();
            return Ok(UpOutcome {
                signal: Some(sig),
                detached: false,
                failed: Vec::new(),
            });
        }
        let line = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                return Err(Error::failed(
                    "the supervisor of `up -d` ended before every service was ready",
                )
                .with_help(format!("see `{SUPERVISOR_LOG}`")));
            }
        };
        match serde_json::from_str::<Wire>(&line) {
            Ok(Wire::Event(Event::AllReady)) => {
                break UpOutcome {
                    signal: None,
                    detached: true,
                    failed: Vec::new(),
                }
            }
            Ok(Wire::Event(e)) => on(e),
            Ok(Wire::Done { failed }) => {
                let _ = child.wait();
                break UpOutcome {
                    signal: None,
                    detached: true,
                    failed,
                };
            }
            Ok(Wire::Error {
                config,
                message,
                help,
                detail,
            }) => {
                let _ = child.wait();
                return Err(from_wire(config, message, help, detail));
            }
            Err(_) => on(Event::Warning {
                message: format!("the supervisor said: {line}"),
            }),
        }
    };
    // The supervisor runs on; its exit status is never collected here
    // (it is reparented when `up -d` exits).
    drop(child);
    Ok(outcome)
}

/// The detached supervisor itself (`cargo-hsm __supervise`): runs the
/// services as a foreground `up` does, its events on stdout as JSON lines
/// until every service is ready; then stdout is closed and it runs on,
/// warnings going to its log. Returns the exit code.
pub fn supervise(plan: &Plan, opts: &UpOptions) -> i32 {
    let mut open = true;
    let say = |w: &Wire, open: &mut bool| {
        if !*open {
            if let Wire::Event(Event::Warning { message }) = w {
                eprintln!("[{}] warning: {message}", state::now_unix());
            }
            return;
        }
        let mut line = serde_json::to_string(w).expect("plain data");
        line.push('\n');
        let mut o = std::io::stdout().lock();
        if o.write_all(line.as_bytes())
            .and_then(|()| o.flush())
            .is_err()
        {
            *open = false;
        }
    };
    let opts = UpOptions {
        detach: true,
        ..opts.clone()
    };
    let result = super::up_here(plan, &opts, &mut |e| {
        let all_ready = matches!(e, Event::AllReady);
        if matches!(e, Event::Log { .. }) {
            return; // in the log files
        }
        say(&Wire::Event(e), &mut open);
        if all_ready && open {
            open = false;
            close_stdout();
        }
    });
    match result {
        Ok(outcome) => {
            say(
                &Wire::Done {
                    failed: outcome.failed,
                },
                &mut open,
            );
            0
        }
        Err(e) => {
            eprintln!("[{}] error: {}", state::now_unix(), e.plain());
            say(&to_wire(&e), &mut open);
            e.exit_code()
        }
    }
}

/// Points stdout at `/dev/null`: `up -d` has returned, and nothing reads
/// the pipe any more.
fn close_stdout() {
    let _ = std::io::stdout().flush();
    #[cfg(unix)]
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::unix::io::AsRawFd;
        // SAFETY: dup2 onto our own stdout.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}
