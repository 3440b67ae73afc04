//! `cargo hsm up [SERVICE…]`: sync (a no-op when fresh), then run the
//! selected services in the foreground with [`crate::run::up`]: status on
//! stderr, the services' logs on stdout behind an aligned `name |` prefix
//! (coloured per service), Ctrl-C stops everything. With
//! `--message-format json`, one JSON object per line on stdout.

use std::time::Duration;

use camino::Utf8Path;
use clap::Args;

use super::shell::{MessageFormat, Shell};
use crate::error::{Error, Result, EXIT_OK};
use crate::materialize::SyncOptions;
use crate::run::{self, Event, UpOptions};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Services to start, with every service they depend on [default: every managed service]
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Detached: return once every service is ready, leaving them running (`cargo hsm down` stops them)
    #[arg(short, long)]
    pub detach: bool,
    /// Start from what is on disk; do not run `cargo hsm sync` first
    #[arg(long)]
    pub no_sync: bool,
    /// Fail when the services are not all ready this many seconds after the start
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<f64>,
    /// Passed to the sync: fail if `hsm.lock` or a service's lock file would change
    #[arg(long, conflicts_with = "no_sync")]
    pub locked: bool,
    /// Passed to the sync: use the commits in `hsm.lock` and the lock files as they are; resolve nothing (implies --locked)
    #[arg(long, conflicts_with = "no_sync")]
    pub frozen: bool,
    /// Passed to the sync: no network for git or uv (also `CARGO_NET_OFFLINE=true`)
    #[arg(long, env = "CARGO_NET_OFFLINE", hide_env = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run from what is on disk; do not run `cargo hsm sync` first
    #[arg(long)]
    pub no_sync: bool,
    /// The environment service whose environment the command runs in
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The command and its arguments (after `--`)
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// With `--no-sync`, `up` and `run` start from what is on disk: what an
/// interrupted sync left half-written is rolled back first, and said, as
/// every writing command does (without `--no-sync`, the sync does it).
fn recover_first(shell: &Shell, plan: &crate::plan::Plan) -> Result<()> {
    let root = &plan.project.workspace_root;
    if let Some(r) = crate::materialize::journal::recover_interrupted(root)? {
        shell.warn(crate::materialize::journal::recovery_note(&r));
    }
    Ok(())
}

/// `cargo hsm run SERVICE -- CMD…`: sync, then replace this process with
/// `CMD` inside the service's environment (its exit code is ours).
pub fn run_one_off(shell: &Shell, root: &Utf8Path, args: &RunArgs) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    if args.no_sync {
        recover_first(shell, &plan)?;
    } else {
        let opts = SyncOptions {
            tool_versions: shell.verbosity == super::shell::Verbosity::Verbose,
            ..Default::default()
        };
        super::sync::sync_and_verify(shell, &plan, &opts, false)?;
    }
    let launch = run::one_off(&plan, &args.service, &args.command)?;
    shell.verbose(format!("     Running `{}`", launch.shown()));
    let mut cmd = std::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .current_dir(&launch.cwd)
        .env("PATH", &launch.path)
        .env_remove("PYTHONHOME")
        .envs(launch.env.iter().map(|(k, v)| (k, v)));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        Err(Error::failed(format!(
            "cannot run `{}`: {e}",
            launch.shown()
        )))
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .map_err(|e| Error::failed(format!("cannot run `{}`: {e}", launch.shown())))?;
        Ok(status.code().unwrap_or(1))
    }
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The services `up -d` was asked for [default: every managed service]
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// `up -d --wait-timeout`, in milliseconds
    #[arg(long, value_name = "MS")]
    pub wait_timeout_ms: Option<u64>,
}

/// The detached supervisor of `up -d` (see [`run::detach`]).
pub fn supervise(root: &Utf8Path, args: &SuperviseArgs) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    let opts = UpOptions {
        services: args.services.clone(),
        wait_timeout: args.wait_timeout_ms.map(Duration::from_millis),
        detach: true,
    };
    Ok(run::detach::supervise(&plan, &opts))
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Services whose logs to show [default: every one that has logs]
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Follow: keep printing what they write, until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// Lines to show from the end of each log [default: all]
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,
}

/// `cargo hsm logs [-f] [--tail N] [SERVICE…]`.
pub fn logs(shell: &Shell, root: &Utf8Path, args: &LogsArgs) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    let width = name_width(&plan);
    let colours = colours(&plan);
    let signal = run::logs::logs(&plan, &args.services, args.follow, args.tail, &mut |e| {
        show(shell, &e, width, &colours)
    })?;
    Ok(signal.map_or(EXIT_OK, |s| 128 + s))
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Services to stop and start again (detached, as `up -d`)
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
}

/// `cargo hsm restart SERVICE…`.
pub fn restart(shell: &Shell, root: &Utf8Path, args: &RestartArgs) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    let width = name_width(&plan);
    let colours = colours(&plan);
    run::restart(&plan, &args.services, &mut |e| {
        show(shell, &e, width, &colours)
    })?;
    Ok(EXIT_OK)
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Services to stop [default: every service `up` started, then `compose down`]
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Also remove the named volumes of the container services (`compose down -v`)
    #[arg(long)]
    pub volumes: bool,
}

/// `cargo hsm down`: stop what `up` started, from any shell.
pub fn down(shell: &Shell, root: &Utf8Path, args: &DownArgs) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    let width = name_width(&plan);
    let colours = colours(&plan);
    run::control::down(&plan, &args.services, args.volumes, &mut |e| {
        show(shell, &e, width, &colours)
    })?;
    Ok(EXIT_OK)
}

/// `cargo hsm ps`: what `up` started, and whether it still runs.
pub fn ps(shell: &Shell, root: &Utf8Path) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    let rows = run::control::ps(&plan)?;
    if shell.format == MessageFormat::Json {
        shell.document("ps", &serde_json::json!({ "services": rows }));
        return Ok(EXIT_OK);
    }
    let mut table = vec![[
        "SERVICE".to_string(),
        "RUNTIME".into(),
        "STATE".into(),
        "PID/CONTAINER".into(),
        "UPTIME".into(),
        "PORTS".into(),
    ]];
    for r in &rows {
        let id = match (r.pid, &r.container) {
            (Some(p), _) => p.to_string(),
            (_, Some(c)) => c.chars().take(12).collect(),
            _ => String::new(),
        };
        let uptime = r.uptime_s.map_or(String::new(), |s| match s {
            s if s < 60 => format!("{s}s"),
            s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
            s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        });
        table.push([
            r.service.clone(),
            r.runtime.to_string(),
            match r.health {
                // As compose shows it: `running (healthy)`.
                Some(h) => format!("{} ({})", r.state, h.as_str()),
                None => r.state.clone(),
            },
            id,
            uptime,
            r.ports.join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    shell.out(&out);
    Ok(EXIT_OK)
}

fn name_width(plan: &crate::Plan) -> usize {
    plan.services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
}

fn colours(plan: &crate::Plan) -> std::collections::BTreeMap<String, &'static str> {
    plan.services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), COLOURS[i % COLOURS.len()]))
        .collect()
}

/// Compose's colours for the log prefixes, in turn.
const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

pub fn run(shell: &Shell, root: &Utf8Path, args: &UpArgs) -> Result<i32> {
    let result = up(shell, root, args);
    if let (Err(e), MessageFormat::Json) = (&result, shell.format) {
        shell.json_line("error", &super::error_json(e));
        shell.mark_printed();
    }
    result
}

fn up(shell: &Shell, root: &Utf8Path, args: &UpArgs) -> Result<i32> {
    let wait_timeout = match args.wait_timeout {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(Error::config(format!(
                "`--wait-timeout {s}` is not a positive number of seconds"
            ))
            .with_help("give the seconds to wait, e.g. `--wait-timeout 30`"))
        }
    };
    let (_, plan) = crate::plan(root)?;
    for w in &plan.warnings {
        shell.warn(w);
    }
    if args.no_sync {
        recover_first(shell, &plan)?;
    } else {
        let opts = SyncOptions {
            locked: args.locked,
            frozen: args.frozen,
            offline: args.offline,
            tool_versions: shell.verbosity == super::shell::Verbosity::Verbose,
            ..Default::default()
        };
        let (_, verification) = super::sync::sync_and_verify(shell, &plan, &opts, true)?;
        if let Some(v) = verification.filter(|v| !v.clean) {
            if shell.format == MessageFormat::Human {
                super::check::print_report(shell, &v, &plan);
            }
            return Err(Error::failed(
                "the sync's verification found problems: nothing was started",
            )
            .with_help(
                "fix what it reports (`cargo hsm check`), or start anyway with `--no-sync`",
            ));
        }
    }
    let opts = UpOptions {
        services: args.services.clone(),
        wait_timeout,
        detach: args.detach,
    };
    let width = name_width(&plan);
    let colours = colours(&plan);
    let outcome = run::up(&plan, &opts, &mut |e| show(shell, &e, width, &colours))?;
    if let Some(sig) = outcome.signal {
        return Ok(128 + sig);
    }
    if outcome.detached {
        shell.status(
            "Started",
            "every service is ready; `cargo hsm ps` lists them, `cargo hsm down` stops them",
        );
        return Ok(EXIT_OK);
    }
    if !outcome.failed.is_empty() {
        let list: Vec<String> = outcome
            .failed
            .iter()
            .map(|(n, how)| format!("`{n}` ({how})"))
            .collect();
        return Err(Error::failed(format!(
            "service{} {} exited with a failure",
            if list.len() == 1 { "" } else { "s" },
            list.join(", ")
        )));
    }
    Ok(EXIT_OK)
}

fn show(
    shell: &Shell,
    e: &Event,
    width: usize,
    colours: &std::collections::BTreeMap<String, &str>,
) {
    if shell.format == MessageFormat::Json {
        let mut v = serde_json::to_value(e).expect("plain data");
        let reason = v
            .as_object_mut()
            .and_then(|o| o.remove("event"))
            .and_then(|r| r.as_str().map(str::to_string))
            .unwrap_or_default();
        shell.json_line(&reason, &v);
        return;
    }
    match e {
        Event::Log { service, line, .. } => {
            let c = colours.get(service).copied().unwrap_or("0");
            let text = if shell.color {
                format!("\x1b[{c}m{service:<width$} |\x1b[0m {line}\n")
            } else {
                format!("{service:<width$} | {line}\n")
            };
            shell.out(&text);
        }
        Event::Starting {
            service,
            runtime,
            command,
        } => shell.status("Starting", format!("{service} ({runtime}): {command}")),
        Event::AlreadyRunning { service, pid } => shell.status(
            "Running",
            format!("{service} (pid {pid}, started by an earlier `cargo hsm up`)"),
        ),
        Event::Ready { service, after_ms } => shell.status(
            "Ready",
            format!("{service} ({:.1}s)", *after_ms as f64 / 1000.0),
        ),
        Event::Exited {
            service,
            code,
            signal,
        } => {
            let how = match (code, signal) {
                (Some(c), _) => format!("exit code {c}"),
                (None, Some(s)) => format!("signal {s}"),
                _ => "an unknown status".into(),
            };
            if *code == Some(0) {
                shell.status("Exited", format!("{service} ({how})"));
            } else {
                shell.warn(format!("service `{service}` exited with {how}"));
            }
        }
        Event::Restarting {
            service,
            restarts,
            after_ms,
        } => shell.status(
            "Restarting",
            format!(
                "{service} in {:.1}s (restart {restarts}, its `restart` policy)",
                *after_ms as f64 / 1000.0
            ),
        ),
        Event::Stopping { services } => shell.status("Stopping", services.join(", ")),
        Event::Health { service, health } => match health {
            run::state::Health::Unhealthy => shell.warn(format!(
                "service `{service}` is unhealthy: its healthcheck failed"
            )),
            h => shell.status("Health", format!("{service}: {}", h.as_str())),
        },
        Event::AllReady => {}
        Event::Blocking { message } => shell.status("Blocking", message),
        Event::Stopped { service } => shell.status("Stopped", service),
        Event::Warning { message } => shell.warn(message),
    }
}
