//! Running the selected stack (`cargo hsm up`): a stage after materialize.
//! It reads the [`Plan`] and what sync made on disk, and nothing further up
//! the pipeline.
//!
//! - [`order`]: which services run (the ones asked for and every managed
//!   service they depend on), and the refusal of cycles;
//! - [`process`]: environment services as supervised processes;
//! - [`container`]: container services through the compose front end;
//! - [`health`]: the healthcheck schema and hsm's own probes;
//! - [`supervisor`]: starting in dependency order once dependencies are
//!   ready, the merged logs, and the clean stop.
//!
//! The discovery values every service gets come from
//! [`crate::discovery`], computed from the Plan.

pub mod container;
pub mod control;
pub mod detach;
pub mod health;
pub mod logs;
pub mod order;
pub mod process;
pub mod state;
mod supervisor;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::discovery::{self, Place};
use crate::error::{Error, Result};
use crate::manifest::model::RuntimeType;
use crate::plan::Plan;
use health::Healthcheck;

/// Grace between SIGTERM and SIGKILL when a service has no `stop-timeout`
/// (compose's default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before a process is restarted; it doubles with each
/// restart in a row, up to [`RESTART_BACKOFF_CAP`].
pub const RESTART_BACKOFF: Duration = Duration::from_secs(1);
pub const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A process that ran this long before it ended starts its backoff anew.
pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(10);
/// Lines of a service's log kept to show when it fails.
pub const TAIL_LINES: usize = 20;

/// How `up` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// The services asked for; empty: every managed service.
    pub services: Vec<String>,
    /// Fail when the services are not all ready this long after the start.
    pub wait_timeout: Option<Duration>,
    /// Return once every service is ready, leaving them running (`-d`).
    pub detach: bool,
}

/// What `up` tells its caller while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A service is being started.
    Starting {
        service: String,
        runtime: RuntimeType,
        /// The command line of a process; the compose project of a container.
        command: String,
    },
    /// A process still runs from an earlier `up`: it is left as it is.
    AlreadyRunning {
        service: String,
        pid: i32,
    },
    /// A service passed its healthcheck (or lived through the grace period).
    Ready {
        service: String,
        after_ms: u64,
    },
    /// One line a service wrote.
    Log {
        service: String,
        line: String,
        stderr: bool,
    },
    /// A process that ended is started again after `after_ms` (its
    /// `restart` policy); `restarts` counts them.
    Restarting {
        service: String,
        restarts: u32,
        after_ms: u64,
    },
    /// A service ended by itself.
    Exited {
        service: String,
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// `up` is stopping these services (dependents first).
    Stopping {
        services: Vec<String>,
    },
    /// A service was stopped.
    Stopped {
        service: String,
    },
    /// A service's health changed after it was ready (it failed its
    /// healthcheck `retries` times in a row, or passed it again).
    Health {
        service: String,
        health: state::Health,
    },
    /// Waiting for a sync to finish before starting.
    Blocking {
        message: String,
    },
    /// `-d`: every service is ready; `up -d` returns, the detached
    /// supervisor runs on.
    AllReady,
    Warning {
        message: String,
    },
}

/// How `up` ended, when it did not fail.
#[derive(Debug, Clone, Serialize)]
pub struct UpOutcome {
    /// The signal that stopped the stack (Ctrl-C: SIGINT, 2).
    pub signal: Option<i32>,
    /// `-d`: every service is ready and left running.
    pub detached: bool,
    /// Services that ended by themselves with a failure, and how.
    pub failed: Vec<(String, String)>,
}

/// Internal messages from the reader and probe threads.
#[derive(Debug)]
pub(crate) enum Message {
    Log {
        service: String,
        line: String,
        stderr: bool,
    },
    /// A readiness probe's verdict (`Err`: why the service is not ready).
    Probe {
        service: String,
        /// Which start of the service it probed.
        generation: u64,
        result: std::result::Result<(), String>,
    },
    /// A health probe after the first pass.
    Health {
        service: String,
        generation: u64,
        ok: bool,
    },
    /// A container's `up -d` finished.
    ContainerUp {
        service: String,
        result: Result<String>,
    },
}

/// Everything needed to start and stop one service, worked out before the
/// first start.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub name: String,
    pub runtime: RuntimeType,
    /// Managed services this one waits for.
    pub deps: Vec<String>,
    pub health: Option<Healthcheck>,
    pub stop_timeout: Duration,
    /// For processes.
    pub launch: Option<process::Launch>,
    /// The first declared port, and the host port of each declared port
    /// (for probes from the host).
    pub ports: Vec<(u16, Option<u16>)>,
    /// `ports` as written.
    pub declared_ports: Vec<String>,
    /// For processes: compose's `restart` values.
    pub restart: Restart,
}

/// A process's `restart` policy, with compose's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    No,
    /// When it exits with a failure; at most this many times, if given.
    OnFailure(Option<u32>),
    Always,
    UnlessStopped,
}

impl Restart {
    pub fn parse(service: &str, v: Option<&str>) -> Result<Restart> {
        Ok(match v {
            None | Some("no") => Restart::No,
            Some("always") => Restart::Always,
            Some("unless-stopped") => Restart::UnlessStopped,
            Some("on-failure") => Restart::OnFailure(None),
            Some(o) => match o.strip_prefix("on-failure:").and_then(|n| n.parse().ok()) {
                Some(n) => Restart::OnFailure(Some(n)),
                None => {
                    return Err(Error::config(format!(
                        "service `{service}` has `restart = \"{o}\"`, which is not a restart policy"
                    ))
                    .with_help("use one of compose's: \"no\", \"on-failure\" (or \"on-failure:N\"), \"always\", \"unless-stopped\""))
                }
            },
        })
    }

    /// Whether a process that ended with `code` after `restarts`
    /// restarts is started again.
    pub fn applies(self, code: Option<i32>, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always | Restart::UnlessStopped => true,
            Restart::OnFailure(max) => code != Some(0) && max.is_none_or(|m| restarts < m),
        }
    }
}

/// The wait before restart number `streak` (1, 2, …) in a row.
pub fn backoff(streak: u32) -> Duration {
    let exp = streak.saturating_sub(1).min(16);
    (RESTART_BACKOFF * 2u32.pow(exp)).min(RESTART_BACKOFF_CAP)
}

impl Unit {
    pub fn is_container(&self) -> bool {
        self.runtime.is_container()
    }

    /// The host port an `http`/`tcp` probe uses.
    fn probe_port(&self, declared: Option<u16>) -> Option<u16> {
        match declared {
            Some(p) => self
                .ports
                .iter()
                .find(|(t, _)| *t == p)
                .map_or(Some(p), |(_, h)| *h),
            None => self.ports.first().and_then(|(_, h)| *h),
        }
    }
}

/// Checks the whole selection and works out each service's start:
/// cycles, discovery conflicts, commands, healthchecks, stop timeouts.
fn prepare(plan: &Plan, opts: &UpOptions) -> Result<Vec<Unit>> {
    let graph = order::select(plan, &opts.services)?;
    let names: Vec<String> = graph.keys().cloned().collect();
    discovery::check(plan, &names)?;
    discovery::check_placeholders(plan, &names)?;
    let mut units = Vec::new();
    for (name, deps) in &graph {
        let s = plan.service(name).expect("selected from the plan");
        let runtime = s.runtime().expect("managed");
        let health = health::parse(name, s.healthcheck.as_ref())?;
        let stop_timeout = match &s.stop_timeout {
            None => DEFAULT_STOP_TIMEOUT,
            Some(t) => health::parse_duration(t).ok_or_else(|| {
                Error::config(format!(
                    "service `{name}` has `stop-timeout = \"{t}\"`, which is no duration"
                ))
                .with_help("write it as compose does: `stop-timeout = \"10s\"`")
            })?,
        };
        let ports: Vec<(u16, Option<u16>)> = s
            .ports
            .iter()
            .filter_map(|p| discovery::parse_port(p))
            .map(|p| {
                let host = if s.is_environment() {
                    Some(p.target)
                } else {
                    p.host
                };
                (p.target, host)
            })
            .collect();
        let mut unit = Unit {
            name: name.clone(),
            runtime,
            deps: deps.clone(),
            health,
            stop_timeout,
            launch: None,
            ports,
            declared_ports: s.ports.clone(),
            restart: if s.is_environment() {
                Restart::parse(name, s.restart.as_deref())?
            } else {
                Restart::No // compose applies it to containers
            },
        };
        if let Some(h) = &unit.health {
            let declared = match h.test {
                health::Test::Http { port, .. } => Some(port),
                health::Test::Tcp { port } => Some(Some(port)),
                _ => None,
            };
            if let Some(declared) = declared {
                if unit.probe_port(declared).is_none() {
                    return Err(Error::config(format!(
                        "the `http`/`tcp` healthcheck of service `{name}` needs a port published on the host"
                    ))
                    .with_help(format!("declare one in `{name}`'s `ports`, e.g. `\"18080:8080\"`, or use `test = [\"CMD\", …]`")));
                }
            }
        }
        unit.launch = if s.is_environment() {
            let mut extra = discovery::values_for(plan, s, Place::Host);
            extra.push((
                discovery::BIND_HOST_VAR.to_string(),
                discovery::bind_host(plan, name, &names).to_string(),
            ));
            Some(process::launch(plan, s, &extra)?)
        } else {
            None
        };
        units.push(unit);
    }
    Ok(units)
}

/// `cargo hsm up`, after the sync: starts the selected services in
/// dependency order, each once its dependencies are ready; reports their
/// logs through `on`; stops everything on SIGINT / SIGTERM (dependents
/// first), or returns when every service has ended. With `-d`, they run
/// under a detached supervisor ([`detach`]), and this returns once every
/// one is ready.
pub fn up(plan: &Plan, opts: &UpOptions, on: &mut dyn FnMut(Event)) -> Result<UpOutcome> {
    if opts.detach {
        detach::up(plan, opts, on)
    } else {
        up_here(plan, opts, on)
    }
}

/// [`up`] in this process: the foreground `up`, or the detached
/// supervisor itself.
fn up_here(plan: &Plan, opts: &UpOptions, on: &mut dyn FnMut(Event)) -> Result<UpOutcome> {
    let units = prepare(plan, opts)?;
    let names: Vec<String> = units.iter().map(|u| u.name.clone()).collect();
    let compose = if units.iter().any(Unit::is_container) {
        let mut files = vec![crate::deploy::compose::compose_path(plan)];
        if !files[0].is_file() {
            return Err(Error::failed(format!(
                "the compose file `{}` is missing",
                plan.project.compose_file
            ))
            .with_help("run `cargo hsm sync` (or `up` without `--no-sync`)"));
        }
        files.extend(container::write_override(plan, &names)?);
        Some(container::detect(plan, files)?)
    } else {
        None
    };
    let consumed = discovery::consumed_by_containers(plan, &names);
    let root = &plan.project.workspace_root;
    // The processes run from what sync made: no sync rewrites it under
    // them (one with nothing to do still runs).
    let processes: Vec<&str> = units
        .iter()
        .filter(|u| !u.is_container())
        .map(|u| u.name.as_str())
        .collect();
    let _hold = if processes.is_empty() {
        None
    } else {
        let who = format!(
            "{} (pid {}), running {}",
            if opts.detach {
                "the detached supervisor of `cargo hsm up -d`"
            } else {
                "`cargo hsm up`"
            },
            std::process::id(),
            processes.join(", ")
        );
        Some(crate::materialize::hold_sync_lock_for(
            root,
            &who,
            &mut |p| {
                on(Event::Blocking {
                    message: format!("waiting for file lock on {p}"),
                })
            },
        )?)
    };
    let running = clean_stale(root, &names, on)?;
    supervisor::run(root, units, compose, consumed, running, opts, on)
}

/// The processes among `names` that still run from an earlier `up` (they
/// are left as they are, and count as ready); removes the state of those
/// that do not run any more.
fn clean_stale(
    root: &camino::Utf8Path,
    names: &[String],
    on: &mut dyn FnMut(Event),
) -> Result<std::collections::BTreeSet<String>> {
    let mut running = std::collections::BTreeSet::new();
    for r in state::read_valid(root, &mut |message| on(Event::Warning { message })) {
        if !names.contains(&r.service) {
            continue;
        }
        let (Some(pid), Some(ticks)) = (r.pid, r.start_ticks) else {
            continue; // a container: compose itself knows whether it runs
        };
        match state::liveness(pid, ticks) {
            state::Liveness::Running | state::Liveness::GroupLeft => {
                on(Event::AlreadyRunning {
                    service: r.service.clone(),
                    pid,
                });
                running.insert(r.service.clone());
            }
            how => {
                state::remove(root, &r.service);
                let why = if how == state::Liveness::Reused {
                    format!("its pid {pid} now belongs to another process, which was left alone")
                } else {
                    format!("its process {pid} is gone")
                };
                on(Event::Warning {
                    message: format!("removed the stale state of service `{}`: {why}", r.service),
                });
            }
        }
    }
    Ok(running)
}

/// `cargo hsm run SERVICE -- CMD…`: how `CMD` runs inside `service`'s own
/// environment, with its resolved env and the discovery values of the
/// services it uses (as a process on this host reaches them). The
/// services it depends on are not started.
pub fn one_off(plan: &Plan, service: &str, command: &[String]) -> Result<process::Launch> {
    let Some(s) = plan.service(service) else {
        return Err(order::unknown(plan, service));
    };
    if !s.is_environment() {
        return Err(Error::config(format!(
            "service `{service}` is {}: `cargo hsm run` runs commands in an environment service (uv, venv, pixi)",
            match s.runtime() {
                Some(r) => format!("a {r} container"),
                None => "external".to_string(),
            }
        ))
        .with_help("for a container, use the compose front end: `docker compose run` / `podman-compose run`"));
    }
    let mut extra = discovery::values_for(plan, s, Place::Host);
    extra.push((
        discovery::BIND_HOST_VAR.to_string(),
        discovery::LOOPBACK.to_string(),
    ));
    process::launch_command(plan, s, &extra, command)
}

/// `cargo hsm restart SERVICE…`: stops them (as `down` does), then starts
/// them again detached, as `up -d` does (the services they depend on that
/// still run are left running).
pub fn restart(plan: &Plan, services: &[String], on: &mut dyn FnMut(Event)) -> Result<UpOutcome> {
    control::down(plan, services, false, on)?;
    up(
        plan,
        &UpOptions {
            services: services.to_vec(),
            wait_timeout: None,
            detach: true,
        },
        on,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_and_backoff() {
        assert_eq!(Restart::parse("s", None).unwrap(), Restart::No);
        assert_eq!(
            Restart::parse("s", Some("on-failure:2")).unwrap(),
            Restart::OnFailure(Some(2))
        );
        let e = Restart::parse("s", Some("sometimes")).unwrap_err().plain();
        assert!(e.contains("`restart = \"sometimes\"`"), "{e}");
        assert!(Restart::OnFailure(None).applies(Some(1), 100));
        assert!(!Restart::OnFailure(None).applies(Some(0), 0));
        assert!(!Restart::OnFailure(Some(2)).applies(Some(1), 2));
        assert!(Restart::Always.applies(Some(0), 5));
        assert!(!Restart::No.applies(Some(1), 0));
        let b: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(b, [1, 2, 4, 8, 16, 30, 30]);
    }
}
