//! `cargo hsm ps` and `cargo hsm down`, from any shell: they read the state
//! `up` left under `.hsm/run/`, trust a pid only when its start time is the
//! recorded one (a reused pid is never signalled), and clean up stale state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use super::container::{self, Compose};
use super::state::{self, Liveness, Record};
use super::{Event, DEFAULT_STOP_TIMEOUT};
use crate::error::{Error, Result};
use crate::manifest::model::ContainerEngine;
use crate::plan::Plan;

/// One line of `cargo hsm ps`.
#[derive(Debug, Clone, Serialize)]
pub struct PsRow {
    pub service: String,
    pub runtime: crate::manifest::model::RuntimeType,
    /// `running`, `restarting` (its supervisor starts it again after its
    /// backoff), `exited`, or `stale` (its pid belongs to another process now).
    pub state: String,
    /// While it runs, its healthcheck's verdict (compose's words:
    /// `starting`, `healthy`, `unhealthy`); none without a healthcheck.
    pub health: Option<state::Health>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub ports: Vec<String>,
    /// Seconds since it started, while it runs.
    pub uptime_s: Option<u64>,
    pub command: String,
    pub detached: bool,
    /// How often its `restart` policy started it again.
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<camino::Utf8PathBuf>,
}

fn engine_bin(plan: &Plan) -> &'static str {
    match plan.project.container_engine {
        ContainerEngine::Podman => "podman",
        ContainerEngine::Docker => "docker",
    }
}

/// The services `up` started, as they are now. Reads only `/proc` for
/// processes; asks the engine once for all containers.
pub fn ps(plan: &Plan) -> Result<Vec<PsRow>> {
    let root = &plan.project.workspace_root;
    let records: Vec<Record> = state::read_all(root).into_iter().flatten().collect();
    let ids: Vec<&str> = records
        .iter()
        .filter_map(|r| r.container.as_deref())
        .collect();
    // Running containers, and their health as the engine has it.
    let mut running_ids = BTreeMap::new();
    if !ids.is_empty() {
        let mut cmd = std::process::Command::new(engine_bin(plan));
        cmd.args(["inspect", "--format", "{{.Id}} {{json .State}}"])
            .args(&ids)
            .current_dir(root);
        // A container that is gone makes inspect fail for it alone.
        if let Ok(out) = container::run_captured(&mut cmd) {
            for line in out.stdout.lines() {
                if let Some((id, health)) = container_state(line) {
                    running_ids.insert(id, health);
                }
            }
        }
    }
    let now = state::now_unix();
    Ok(records
        .into_iter()
        .map(|r| {
            let mut health = None;
            let state = match (r.pid, r.start_ticks, &r.container) {
                (Some(pid), Some(t), _) => match state::liveness(pid, t) {
                    Liveness::Running | Liveness::GroupLeft => {
                        health = r.health;
                        "running"
                    }
                    _ if state::supervisor_alive(r.supervisor) => "restarting",
                    Liveness::Reused => "stale",
                    Liveness::Gone => "exited",
                },
                (_, _, Some(id)) if running_ids.contains_key(id) => {
                    // The engine's status, after the `podman healthcheck
                    // run` of hsm's supervisor; hsm's own verdict for an
                    // `http`/`tcp` check, which the engine does not know,
                    // while the `up` that keeps it runs.
                    health = running_ids[id]
                        .or(r.health.filter(|_| state::supervisor_alive(r.supervisor)));
                    "running"
                }
                _ => "exited",
            };
            PsRow {
                health,
                uptime_s: (state == "running").then(|| now.saturating_sub(r.started_at)),
                state: state.to_string(),
                service: r.service,
                runtime: r.runtime,
                pid: r.pid,
                container: r.container,
                ports: r.ports,
                command: r.command,
                detached: r.detached,
                restarts: r.restarts,
                log: r.log,
            }
        })
        .collect())
}

/// A line of `inspect --format '{{.Id}} {{json .State}}'`: the id of a
/// running container, and its health (docker's `Health`, podman's
/// `Health` or older `Healthcheck`).
fn container_state(line: &str) -> Option<(String, Option<state::Health>)> {
    let (id, json) = line.split_once(' ')?;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    if v["Running"] != true {
        return None;
    }
    let status = v["Health"]["Status"]
        .as_str()
        .or(v["Healthcheck"]["Status"].as_str());
    let health = match status {
        Some("healthy") => Some(state::Health::Healthy),
        Some("unhealthy") => Some(state::Health::Unhealthy),
        Some("starting") => Some(state::Health::Starting),
        _ => None,
    };
    Some((id.to_string(), health))
}

/// Stops what `up` started (every service, or the ones named), dependents
/// first; then, when no service is named and the project has container
/// services, `compose down` (with `--volumes`, its volumes too).
pub fn down(
    plan: &Plan,
    services: &[String],
    volumes: bool,
    on: &mut dyn FnMut(Event),
) -> Result<()> {
    let root = &plan.project.workspace_root;
    for name in services {
        if plan.service(name).is_none() {
            return Err(Error::config(format!(
                "no selected service is named `{name}`"
            )));
        }
    }
    let records: Vec<Record> =
        state::read_valid(root, &mut |message| on(Event::Warning { message }))
            .into_iter()
            .filter(|r| services.is_empty() || services.contains(&r.service))
            .collect();
    let has_containers = plan.container_services().next().is_some()
        && crate::deploy::compose::compose_path(plan).is_file();
    let compose = if has_containers {
        let mut files = vec![crate::deploy::compose::compose_path(plan)];
        let o = root.join(container::OVERRIDE_FILE);
        if o.is_file() {
            files.push(o);
        }
        Some(container::detect(plan, files)?)
    } else {
        None
    };
    // Dependents first.
    let mut left: BTreeSet<String> = records.iter().map(|r| r.service.clone()).collect();
    while !left.is_empty() {
        let mut layer: Vec<String> = left
            .iter()
            .filter(|n| {
                !left.iter().any(|o| {
                    plan.service(o)
                        .is_some_and(|s| s.depends_on.iter().any(|d| d == *n))
                })
            })
            .cloned()
            .collect();
        if layer.is_empty() {
            layer = left.iter().cloned().collect();
        }
        on(Event::Stopping {
            services: layer.clone(),
        });
        let in_layer: Vec<&Record> = records
            .iter()
            .filter(|r| layer.contains(&r.service))
            .collect();
        let containers: Vec<String> = in_layer
            .iter()
            .filter(|r| r.container.is_some())
            .map(|r| r.service.clone())
            .collect();
        if let (Some(c), false) = (&compose, containers.is_empty()) {
            let t = in_layer
                .iter()
                .map(|r| r.stop_timeout())
                .max()
                .unwrap_or(DEFAULT_STOP_TIMEOUT);
            c.stop(&containers, t)?;
        }
        let mut warnings = Vec::new();
        std::thread::scope(|s| {
            for r in in_layer.iter().filter(|r| r.container.is_none()) {
                let (Some(pid), Some(t)) = (r.pid, r.start_ticks) else {
                    continue;
                };
                if state::supervisor_alive(r.supervisor) {
                    // Its supervisor stops it for good (else it would
                    // restart it); by itself, should the supervisor not.
                    s.spawn(move || {
                        by_supervisor(root, r);
                        if matches!(
                            state::liveness(pid, t),
                            Liveness::Running | Liveness::GroupLeft
                        ) {
                            super::process::stop_group(pid, r.stop_timeout());
                        }
                    });
                    continue;
                }
                match state::liveness(pid, t) {
                    Liveness::Running | Liveness::GroupLeft => {
                        let timeout = r.stop_timeout();
                        s.spawn(move || super::process::stop_group(pid, timeout));
                    }
                    Liveness::Reused => warnings.push(format!(
                        "the pid {pid} of service `{}` now belongs to another process: not signalled; its stale state is removed",
                        r.service
                    )),
                    Liveness::Gone => {}
                }
            }
        });
        for w in warnings {
            on(Event::Warning { message: w });
        }
        for n in &layer {
            left.remove(n);
            state::remove(root, n);
            let _ = std::fs::remove_file(state::stop_request(root, n));
            on(Event::Stopped { service: n.clone() });
        }
    }
    // A supervisor left without services ends by itself: wait for it, so
    // that nothing of ours runs once `down` returns.
    let left: Vec<Record> = state::read_all(root).into_iter().flatten().collect();
    let supervisors: BTreeSet<(i32, u64)> = records
        .iter()
        .filter_map(|r| r.supervisor)
        .filter(|s| !left.iter().any(|r| r.supervisor == Some(*s)))
        .collect();
    for s in supervisors {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while state::supervisor_alive(Some(s)) {
            if std::time::Instant::now() > deadline {
                // SAFETY: the pid runs with the recorded start time: ours.
                unsafe {
                    libc::kill(s.0, libc::SIGTERM);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(c) = &compose {
        c.down(
            services,
            volumes,
            DEFAULT_STOP_TIMEOUT.min(Duration::from_secs(10)),
        )?;
    }
    Ok(())
}

/// Asks the supervisor of `r` to stop it (a stop request), and waits until
/// it did (its state file is gone), at most its stop timeout and a margin.
fn by_supervisor(root: &camino::Utf8Path, r: &Record) {
    let request = state::stop_request(root, &r.service);
    if std::fs::write(&request, b"").is_err() {
        return;
    }
    let record = state::record_path(root, &r.service);
    let deadline = std::time::Instant::now() + r.stop_timeout() + Duration::from_secs(5);
    while record.exists()
        && state::supervisor_alive(r.supervisor)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&request);
}

impl Compose {
    /// `compose down` of the project (or, with services named, removes
    /// their containers), with `--volumes` its volumes too.
    pub fn down(&self, services: &[String], volumes: bool, timeout: Duration) -> Result<()> {
        let args = down_args(self.engine, services, volumes, timeout);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_checked(&args, "the compose project did not come down")
    }
}

/// The front end's arguments for `down`: the whole project, or (services
/// named) their containers only — `docker compose rm -s -f`, while
/// podman-compose's `down` takes service names itself.
fn down_args(
    engine: ContainerEngine,
    services: &[String],
    volumes: bool,
    timeout: Duration,
) -> Vec<String> {
    let t = timeout.as_secs().to_string();
    let mut args: Vec<String> = match (engine, services.is_empty()) {
        (_, true) | (ContainerEngine::Podman, false) => vec!["down".into(), "-t".into(), t],
        (ContainerEngine::Docker, false) => vec!["rm".into(), "-s".into(), "-f".into()],
    };
    if volumes {
        args.push("-v".into());
    }
    args.extend(services.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_command_lines_per_engine() {
        let t = Duration::from_secs(10);
        let s = vec!["web".to_string()];
        let line = |e, s: &[String], v| down_args(e, s, v, t).join(" ");
        assert_eq!(line(ContainerEngine::Podman, &[], false), "down -t 10");
        assert_eq!(line(ContainerEngine::Docker, &[], true), "down -t 10 -v");
        assert_eq!(line(ContainerEngine::Podman, &s, true), "down -t 10 -v web");
        assert_eq!(line(ContainerEngine::Docker, &s, false), "rm -s -f web");
    }

    #[test]
    fn container_health_from_the_engines_state() {
        let h = |l: &str| container_state(l);
        assert_eq!(
            h(r#"abc {"Running":true,"Health":{"Status":"healthy"}}"#),
            Some(("abc".into(), Some(state::Health::Healthy)))
        );
        // podman before 4: `Healthcheck`.
        assert_eq!(
            h(r#"abc {"Running":true,"Healthcheck":{"Status":"unhealthy"}}"#),
            Some(("abc".into(), Some(state::Health::Unhealthy)))
        );
        assert_eq!(h(r#"abc {"Running":true}"#), Some(("abc".into(), None)));
        assert_eq!(h(r#"abc {"Running":false}"#), None);
        assert_eq!(h("abc not json"), None);
    }
}
