//! The foreground supervisor of `cargo hsm up`: starts each service once
//! every service it depends on is ready (independent ones at once), merges
//! their logs, notices exits, and stops everything — dependents first,
//! each process group with SIGTERM then SIGKILL after its stop timeout,
//! the containers through the compose front end — on SIGINT / SIGTERM,
//! or when a service fails to become ready.
//!
//! The same loop is the detached supervisor of `up -d` (see
//! [`super::detach`]): a process of its own that tells `up -d` when every
//! service is ready (`Event::AllReady`), then goes on supervising its
//! processes — restarts, health, log files — until `cargo hsm down` asks
//! it to stop them (a `.hsm/run/<service>.stop` file) or a signal.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod probes;
mod stop;

use super::container::Compose;
use super::health;
use super::process::{self, Proc};
use super::state::{self, Health, Record};
use super::{Event, Message, Unit, UpOptions, UpOutcome, TAIL_LINES};
use crate::error::{Error, Result};
use crate::materialize::interrupt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Starting(Instant),
    /// Ended; its restart policy starts it again at this instant.
    Backoff(Instant),
    Ready,
    Exited,
}

/// Why supervision ended without an error.
enum End {
    Signal(i32),
    /// Every service ended by itself (or, detached, was stopped by `down`).
    AllEnded,
}

struct Sup<'a> {
    root: camino::Utf8PathBuf,
    /// This is the detached supervisor of `up -d`.
    detach: bool,
    /// `Event::AllReady` was sent: from now on a failure of one service
    /// is reported, and the others run on.
    notified: bool,
    /// This process (pid, start time), recorded as the supervisor of the
    /// services it runs, so that `down` from another shell asks it.
    me: Option<(i32, u64)>,
    /// What is on disk for each running service (rewritten when its
    /// health changes).
    records: BTreeMap<String, Record>,
    /// Health after the first pass, and the failures in a row.
    health: BTreeMap<String, (Health, u32)>,
    /// Stops the health monitor of one start of a service.
    monitors: BTreeMap<String, Arc<AtomicBool>>,
    units: BTreeMap<String, Unit>,
    state: BTreeMap<String, State>,
    procs: BTreeMap<String, Proc>,
    /// Container id and the `logs -f` follower.
    containers: BTreeMap<String, (String, Option<Child>)>,
    /// Containers asked to start (stopped at the end whatever happened).
    asked: BTreeSet<String>,
    inflight: usize,
    tails: BTreeMap<String, VecDeque<String>>,
    /// The log files a foreground `up` writes for its processes.
    writers: BTreeMap<String, super::logs::Writer>,
    cancel: Arc<AtomicBool>,
    /// Restarts so far, and in a row (for the backoff), per process.
    restarts: BTreeMap<String, u32>,
    streak: BTreeMap<String, u32>,
    /// Which start of each service a probe belongs to.
    generation: BTreeMap<String, u64>,
    /// Services that were ready once (`--wait-timeout` is about the start).
    ever_ready: BTreeSet<String>,
    compose: Option<Arc<Compose>>,
    compose_lock: Arc<Mutex<()>>,
    consumed: BTreeSet<String>,
    tx: Sender<Message>,
    rx: Receiver<Message>,
    failed: Vec<(String, String)>,
    on: &'a mut dyn FnMut(Event),
}

pub(super) fn run(
    root: &camino::Utf8Path,
    units: Vec<Unit>,
    compose: Option<Compose>,
    consumed: BTreeSet<String>,
    running: BTreeSet<String>,
    opts: &UpOptions,
    on: &mut dyn FnMut(Event),
) -> Result<UpOutcome> {
    let _guard = interrupt::install(None);
    let (tx, rx) = channel();
    let me = std::process::id() as i32;
    let mut sup = Sup {
        root: root.to_owned(),
        detach: opts.detach,
        notified: false,
        me: state::proc_start(me).map(|(t, _)| (me, t)),
        records: BTreeMap::new(),
        health: BTreeMap::new(),
        monitors: BTreeMap::new(),
        state: units
            .iter()
            .map(|u| {
                let s = if running.contains(&u.name) {
                    State::Ready
                } else {
                    State::Pending
                };
                (u.name.clone(), s)
            })
            .collect(),
        units: units.into_iter().map(|u| (u.name.clone(), u)).collect(),
        procs: BTreeMap::new(),
        containers: BTreeMap::new(),
        asked: BTreeSet::new(),
        inflight: 0,
        tails: BTreeMap::new(),
        writers: BTreeMap::new(),
        restarts: BTreeMap::new(),
        streak: BTreeMap::new(),
        generation: BTreeMap::new(),
        ever_ready: running.clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        compose: compose.map(Arc::new),
        compose_lock: Arc::new(Mutex::new(())),
        consumed,
        tx,
        rx,
        failed: Vec::new(),
        on,
    };
    let t0 = Instant::now();
    let result = sup.supervise(t0, opts.wait_timeout);
    match result {
        Ok(End::Signal(sig)) => {
            interrupt::mark_handled();
            sup.stop_all();
            Ok(UpOutcome {
                signal: Some(sig),
                detached: false,
                failed: sup.failed,
            })
        }
        Ok(End::AllEnded) => {
            sup.stop_all();
            Ok(UpOutcome {
                signal: None,
                detached: sup.notified,
                failed: sup.failed,
            })
        }
        Err(e) => {
            if interrupt::signalled().is_some() {
                interrupt::mark_handled();
            }
            sup.stop_all();
            Err(e)
        }
    }
}

fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "an unknown status".to_string(),
    }
}

impl Sup<'_> {
    fn emit(&mut self, e: Event) {
        (self.on)(e)
    }

    fn tail(&self, name: &str) -> String {
        // Detached, the lines are in the log file only: say where it is.
        let file = if self.detach && !self.units[name].is_container() {
            format!(" (`{}`)", state::log_path(name))
        } else {
            String::new()
        };
        match self.tails.get(name) {
            Some(t) if !t.is_empty() => {
                let lines: Vec<&str> = t.iter().map(String::as_str).collect();
                format!("last log lines of `{name}`{file}:\n{}", lines.join("\n"))
            }
            _ => format!("`{name}` wrote nothing{file}"),
        }
    }

    /// One turn of [`Sup::supervise`]; once detached, the failure of one
    /// service is a warning, and the others run on.
    fn turn(&mut self, t0: Instant, wait_timeout: Option<Duration>) -> Result<Option<End>> {
        match self.step(t0, wait_timeout) {
            Err(e) if self.notified && interrupt::signalled().is_none() => {
                self.emit(Event::Warning { message: e.plain() });
                Ok(None)
            }
            other => other,
        }
    }

    /// Runs until a signal, until every service has ended, with `-d`
    /// until every service is ready, or until a service fails to start
    /// (`Err`).
    fn supervise(&mut self, t0: Instant, wait_timeout: Option<Duration>) -> Result<End> {
        loop {
            if let Some(end) = self.turn(t0, wait_timeout)? {
                return Ok(end);
            }
        }
    }

    fn step(&mut self, t0: Instant, wait_timeout: Option<Duration>) -> Result<Option<End>> {
        if let Some(sig) = interrupt::signalled() {
            return Ok(Some(End::Signal(sig)));
        }
        self.stop_requested();
        if self.notified {
            self.let_go_of_containers();
        }
        self.start_ready_ones()?;
        let due: Vec<String> = self
            .state
            .iter()
            .filter(|(_, s)| matches!(s, State::Backoff(t) if *t <= Instant::now()))
            .map(|(n, _)| n.clone())
            .collect();
        for n in due {
            if let Err(e) = self.start(&n) {
                self.state.insert(n.clone(), State::Exited);
                state::remove(&self.root, &n);
                return Err(e);
            }
        }
        match self.rx.recv_timeout(Duration::from_millis(25)) {
            Ok(m) => self.handle(m)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {}
        }
        while let Ok(m) = self.rx.try_recv() {
            self.handle(m)?;
        }
        self.poll_exits()?;
        self.grace_readiness();
        if let Some(limit) = wait_timeout {
            let waiting: Vec<String> = self
                .state
                .iter()
                .filter(|(n, s)| {
                    matches!(s, State::Pending | State::Starting(_) | State::Backoff(_))
                        && !self.ever_ready.contains(*n)
                })
                .map(|(n, _)| n.clone())
                .collect();
            if !waiting.is_empty() && t0.elapsed() > limit {
                let first = waiting[0].clone();
                return Err(Error::failed(format!(
                    "service{} {} did not become ready within --wait-timeout {}s",
                    if waiting.len() == 1 { "" } else { "s" },
                    waiting
                        .iter()
                        .map(|w| format!("`{w}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    limit.as_secs_f64()
                ))
                .with_detail(self.tail(&first)));
            }
        }
        let alive = self.state.values().any(|s| !matches!(s, State::Exited));
        // Nothing of ours runs, nor ever will (all ran before this `up`).
        let nothing = self.procs.is_empty()
            && self.asked.is_empty()
            && self.state.iter().all(|(n, s)| {
                *s == State::Exited
                    || (*s == State::Ready
                        && self.ever_ready.contains(n)
                        && !self.generation.contains_key(n))
            });
        if (!alive || nothing) && self.inflight == 0 {
            return Ok(Some(End::AllEnded));
        }
        let settled = self
            .state
            .values()
            .all(|s| matches!(s, State::Ready | State::Exited));
        if self.detach && settled && self.inflight == 0 && !self.notified {
            self.detached();
        }
        Ok(None)
    }

    /// Every service is ready: tells `up -d`, which returns; from here on
    /// this supervisor keeps the processes, and the health of the
    /// containers that have a healthcheck (podman without systemd runs
    /// none by itself). The containers are the engine's: `down` stops them
    /// through compose, and this supervisor lets go of one once its state
    /// file is gone or names another supervisor, or once it stopped.
    fn detached(&mut self) {
        self.notified = true;
        self.emit(Event::AllReady);
        for n in std::mem::take(&mut self.asked) {
            let watched = self.units[&n].health.is_some()
                && self.state.get(&n) == Some(&State::Ready)
                && self.containers.contains_key(&n);
            if !watched {
                self.state.remove(&n);
                self.containers.remove(&n);
            }
        }
    }

    fn start_ready_ones(&mut self) -> Result<()> {
        let startable: Vec<String> = self
            .state
            .iter()
            .filter(|(_, s)| **s == State::Pending)
            .map(|(n, _)| n.clone())
            .filter(|n| {
                self.units[n]
                    .deps
                    .iter()
                    .all(|d| self.state.get(d) == Some(&State::Ready))
            })
            .collect();
        for name in startable {
            self.start(&name)?;
        }
        // A dependency that ended leaves its dependents waiting forever.
        for (name, s) in &self.state {
            if *s != State::Pending {
                continue;
            }
            if let Some(d) = self.units[name]
                .deps
                .iter()
                .find(|d| self.state.get(*d) == Some(&State::Exited))
            {
                return Err(Error::failed(format!(
                    "service `{name}` cannot start: `{d}`, which it depends on, has exited"
                ))
                .with_detail(self.tail(d)));
            }
        }
        Ok(())
    }

    fn start(&mut self, name: &str) -> Result<()> {
        let unit = self.units[name].clone();
        let now = Instant::now();
        *self.generation.entry(name.to_string()).or_default() += 1;
        if let Some(launch) = &unit.launch {
            self.emit(Event::Starting {
                service: name.to_string(),
                runtime: unit.runtime,
                command: launch.shown(),
            });
            self.writers.insert(
                name.to_string(),
                super::logs::Writer::open(self.root.join(state::log_path(name))),
            );
            let p = process::spawn(name, launch, &self.tx)?;
            let record = Record {
                service: name.to_string(),
                runtime: unit.runtime,
                pid: Some(p.pid as i32),
                start_ticks: state::proc_start(p.pid as i32).map(|(t, _)| t),
                container: None,
                project: None,
                command: launch.shown(),
                started_at: state::now_unix(),
                ports: unit.declared_ports.clone(),
                stop_timeout_ms: unit.stop_timeout.as_millis() as u64,
                log: Some(state::log_path(name)),
                detached: self.detach,
                restarts: self.restarts.get(name).copied().unwrap_or(0),
                health: unit.health.as_ref().map(|_| Health::Starting),
                supervisor: self.me,
            };
            self.procs.insert(name.to_string(), p);
            state::write(&self.root, &record)?;
            self.records.insert(name.to_string(), record);
            self.health.remove(name);
            self.state.insert(name.to_string(), State::Starting(now));
            if unit.health.is_some() {
                self.spawn_probe(&unit, None);
            }
            return Ok(());
        }
        let compose = self
            .compose
            .clone()
            .expect("containers have a compose front end");
        self.emit(Event::Starting {
            service: name.to_string(),
            runtime: unit.runtime,
            command: format!("compose project `{}`", compose.project),
        });
        self.state.insert(name.to_string(), State::Starting(now));
        self.asked.insert(name.to_string());
        self.inflight += 1;
        let tx = self.tx.clone();
        let lock = self.compose_lock.clone();
        let service = name.to_string();
        // podman-compose is not safe to run twice at once in one project.
        std::thread::spawn(move || {
            let result = {
                let _one = lock.lock().unwrap_or_else(|e| e.into_inner());
                compose
                    .up(&service)
                    .and_then(|()| compose.container_id(&service))
            };
            let _ = tx.send(Message::ContainerUp { service, result });
        });
        Ok(())
    }

    fn handle(&mut self, m: Message) -> Result<()> {
        match m {
            Message::Log {
                service,
                line,
                stderr,
            } => {
                if let Some(w) = self.writers.get_mut(&service) {
                    w.line(&line);
                }
                let t = self.tails.entry(service.clone()).or_default();
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line.clone());
                self.emit(Event::Log {
                    service,
                    line,
                    stderr,
                });
            }
            Message::Probe {
                service,
                generation,
                result,
            } => {
                let current = self.generation.get(&service) == Some(&generation);
                if !current || !matches!(self.state.get(&service), Some(State::Starting(_))) {
                    return Ok(());
                }
                match result {
                    Ok(()) => self.ready(&service),
                    Err(why) => {
                        return Err(Error::failed(format!(
                            "service `{service}` did not become ready: {why}"
                        ))
                        .with_detail(self.tail(&service)))
                    }
                }
            }
            Message::Health {
                service,
                generation,
                ok,
            } => {
                let current = self.generation.get(&service) == Some(&generation);
                if current && self.state.get(&service) == Some(&State::Ready) {
                    if self.notified && !self.still_watched(&service, ok) {
                        self.unwatch(&service);
                    } else {
                        self.health_verdict(&service, ok);
                    }
                }
            }
            Message::ContainerUp { service, result } => {
                self.inflight -= 1;
                let cid = result?;
                let compose = self.compose.clone().expect("a compose front end");
                let unit = self.units[&service].clone();
                let record = Record {
                    service: service.clone(),
                    runtime: unit.runtime,
                    pid: None,
                    start_ticks: None,
                    container: Some(cid.clone()),
                    project: Some(compose.project.clone()),
                    command: format!("compose project `{}`", compose.project),
                    started_at: state::now_unix(),
                    ports: unit.declared_ports.clone(),
                    stop_timeout_ms: unit.stop_timeout.as_millis() as u64,
                    log: None,
                    detached: self.detach,
                    restarts: 0,
                    health: unit.health.as_ref().map(|_| Health::Starting),
                    // This `up` (or detached supervisor) keeps its health
                    // current, while it runs.
                    supervisor: self.me.filter(|_| unit.health.is_some()),
                };
                state::write(&self.root, &record)?;
                self.records.insert(service.clone(), record);
                if self.detach {
                    self.containers.insert(service.clone(), (cid.clone(), None));
                    if interrupt::signalled().is_none() && unit.health.is_some() {
                        self.spawn_probe(&unit, Some(cid));
                    }
                    return Ok(());
                }
                let mut follow = compose.follow_logs(&cid, state::now_unix().saturating_sub(5));
                follow
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                interrupt::prepare_child(&mut follow);
                let child = match follow.spawn() {
                    Ok(mut c) => {
                        if let Some(o) = c.stdout.take() {
                            process::pipe_lines(&service, o, false, self.tx.clone());
                        }
                        if let Some(e) = c.stderr.take() {
                            process::pipe_lines(&service, e, true, self.tx.clone());
                        }
                        Some(c)
                    }
                    Err(_) => None,
                };
                self.containers
                    .insert(service.clone(), (cid.clone(), child));
                if interrupt::signalled().is_none() && unit.health.is_some() {
                    self.spawn_probe(&unit, Some(cid));
                }
            }
        }
        Ok(())
    }

    fn ready(&mut self, name: &str) {
        let since = match self.state.get(name) {
            Some(State::Starting(t)) => *t,
            _ => return,
        };
        self.state.insert(name.to_string(), State::Ready);
        self.ever_ready.insert(name.to_string());
        self.emit(Event::Ready {
            service: name.to_string(),
            after_ms: since.elapsed().as_millis() as u64,
        });
        if self.units[name].health.is_some() {
            self.health.insert(name.to_string(), (Health::Healthy, 0));
            self.set_health(name, Health::Healthy);
            self.spawn_monitor(name);
        }
        let unit = &self.units[name];
        if self.consumed.contains(name) && !unit.is_container() {
            let ports: Vec<u16> = unit.ports.iter().map(|(t, _)| *t).collect();
            if let Some(p) = ports.iter().find(|p| health::loopback_only(**p)) {
                let message = format!(
                    "service `{name}` listens on 127.0.0.1:{p} only, where the containers that use it cannot reach it; bind to `$HSM_BIND_HOST` ({})",
                    crate::discovery::ALL_INTERFACES
                );
                self.emit(Event::Warning { message });
            }
        }
    }

    fn poll_exits(&mut self) -> Result<()> {
        let mut ended = Vec::new();
        for (name, p) in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                ended.push((name.clone(), status.code(), status.signal()));
            }
        }
        let mut stopped = Vec::new();
        for (name, (cid, follow)) in &mut self.containers {
            let done = follow
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if done {
                *follow = None;
                stopped.push((name.clone(), cid.clone()));
            }
        }
        if let Some(compose) = self.compose.clone() {
            for (name, cid) in stopped {
                if let Some((false, code)) = compose.state(&cid) {
                    self.containers.remove(&name);
                    ended.push((name, Some(code), None));
                }
            }
        }
        for (name, code, signal) in ended {
            // Let the last lines it wrote arrive first.
            std::thread::sleep(Duration::from_millis(30));
            while let Ok(m) = self.rx.try_recv() {
                if !matches!(m, Message::Probe { .. }) {
                    self.handle(m)?;
                }
            }
            let mut ran = Duration::ZERO;
            if let Some(stop) = self.monitors.remove(&name) {
                stop.store(true, Ordering::SeqCst);
            }
            if let Some(mut p) = self.procs.remove(&name) {
                ran = p.started.elapsed();
                // Whatever the leader left behind in its group.
                p.stop(Duration::ZERO);
            }
            let was = self.state.insert(name.clone(), State::Exited);
            self.emit(Event::Exited {
                service: name.clone(),
                code,
                signal,
            });
            let how = describe_exit(code, signal);
            let restarts = self.restarts.get(&name).copied().unwrap_or(0);
            let policy = self.units[&name].restart;
            if !self.units[&name].is_container() && policy.applies(code, restarts) {
                let streak = if ran >= super::RESTART_RESET_AFTER {
                    1
                } else {
                    self.streak.get(&name).copied().unwrap_or(0) + 1
                };
                self.streak.insert(name.clone(), streak);
                self.restarts.insert(name.clone(), restarts + 1);
                let wait = super::backoff(streak);
                self.state
                    .insert(name.clone(), State::Backoff(Instant::now() + wait));
                self.emit(Event::Restarting {
                    service: name.clone(),
                    restarts: restarts + 1,
                    after_ms: wait.as_millis() as u64,
                });
                continue;
            }
            state::remove(&self.root, &name);
            self.records.remove(&name);
            // A one-off job that ended well is done, not failed.
            if matches!(was, Some(State::Starting(_))) && code != Some(0) {
                return Err(Error::failed(format!(
                    "service `{name}` exited with {how} before it was ready"
                ))
                .with_detail(self.tail(&name)));
            }
            if code != Some(0) {
                self.failed.push((name.clone(), how));
            }
        }
        Ok(())
    }
}
