//! Readiness and health: the healthcheck probes of one start of a
//! service, before it is ready (its first pass) and after (every
//! `interval`, the verdict kept on disk for `ps`), and the grace period of
//! a service without a healthcheck.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::health::{self, Test, GRACE};
use super::super::state::{self, Health};
use super::super::{Event, Message, Unit};
use super::{State, Sup};

impl Sup<'_> {
    /// A health probe's result after the first pass: `unhealthy` after
    /// `retries` failures in a row, `healthy` again on a pass; the record
    /// on disk (what `ps` shows) follows.
    pub(super) fn health_verdict(&mut self, name: &str, ok: bool) {
        let retries = self.units[name]
            .health
            .as_ref()
            .map_or(1, |h| h.retries.max(1));
        let (was, fails) = self
            .health
            .get(name)
            .copied()
            .unwrap_or((Health::Healthy, 0));
        let (now, fails) = match ok {
            true => (Health::Healthy, 0),
            false if fails + 1 >= retries => (Health::Unhealthy, fails + 1),
            false => (was, fails + 1),
        };
        self.health.insert(name.to_string(), (now, fails));
        if now != was {
            self.set_health(name, now);
            self.emit(Event::Health {
                service: name.to_string(),
                health: now,
            });
        }
    }

    pub(super) fn set_health(&mut self, name: &str, h: Health) {
        if let Some(r) = self.records.get_mut(name) {
            r.health = Some(h);
            let _ = state::write(&self.root, r);
        }
    }

    /// Readiness of services without a healthcheck: alive after [`GRACE`].
    pub(super) fn grace_readiness(&mut self) {
        let due: Vec<String> = self
            .state
            .iter()
            .filter_map(|(n, s)| match s {
                State::Starting(t) if t.elapsed() >= GRACE && self.units[n].health.is_none() => {
                    Some(n.clone())
                }
                _ => None,
            })
            .filter(|n| self.procs.contains_key(n) || self.containers.contains_key(n))
            .collect();
        for n in due {
            self.ready(&n);
        }
    }

    /// One run of `unit`'s healthcheck: hsm's own probe, or the
    /// container's compose healthcheck.
    pub(super) fn probe(
        &self,
        unit: &Unit,
        cid: Option<String>,
    ) -> Option<impl Fn() -> bool + Send + 'static> {
        let h = unit.health.clone()?;
        let compose = self.compose.clone();
        let launch = unit.launch.clone();
        let port = match &h.test {
            Test::Http { port, .. } => unit.probe_port(*port),
            Test::Tcp { port } => unit.probe_port(Some(*port)),
            _ => None,
        };
        Some(move || match (&h.test, &cid) {
            (Test::Http { path, .. }, _) => {
                port.is_some_and(|p| health::http_ok(p, path, h.timeout))
            }
            (Test::Tcp { .. }, _) => port.is_some_and(|p| health::tcp_ok(p, h.timeout)),
            (_, Some(cid)) => compose.as_ref().is_some_and(|c| c.healthy(cid)),
            (test, None) => launch
                .as_ref()
                .is_some_and(|l| health::exec_probe(test, l, h.timeout)),
        })
    }

    /// After the first pass: the healthcheck every `interval`, its
    /// results sent as `Message::Health`, until the service ends.
    pub(super) fn spawn_monitor(&mut self, name: &str) {
        let unit = self.units[name].clone();
        let cid = self.containers.get(name).map(|(c, _)| c.clone());
        let (Some(h), Some(probe)) = (unit.health.clone(), self.probe(&unit, cid)) else {
            return;
        };
        let stop = Arc::new(AtomicBool::new(false));
        if let Some(old) = self.monitors.insert(name.to_string(), stop.clone()) {
            old.store(true, Ordering::SeqCst);
        }
        let cancel = self.cancel.clone();
        let tx = self.tx.clone();
        let service = name.to_string();
        let generation = self.generation.get(name).copied().unwrap_or(0);
        std::thread::spawn(move || {
            let stopped = || stop.load(Ordering::SeqCst) || cancel.load(Ordering::SeqCst);
            loop {
                // Sleep in small steps, so that a stop is seen at once.
                let until = Instant::now() + h.interval;
                while Instant::now() < until && !stopped() {
                    std::thread::sleep(Duration::from_millis(50).min(h.interval));
                }
                if stopped() {
                    return;
                }
                let ok = probe();
                if stopped()
                    || tx
                        .send(Message::Health {
                            service: service.clone(),
                            generation,
                            ok,
                        })
                        .is_err()
                {
                    return;
                }
            }
        });
    }

    pub(super) fn spawn_probe(&self, unit: &Unit, cid: Option<String>) {
        let Some(h) = unit.health.clone() else { return };
        let Some(probe) = self.probe(unit, cid) else {
            return;
        };
        let tx = self.tx.clone();
        let cancel = self.cancel.clone();
        let name = unit.name.clone();
        let generation = self.generation.get(&unit.name).copied().unwrap_or(0);
        std::thread::spawn(move || {
            let start = Instant::now();
            let deadline = h.deadline();
            while !cancel.load(Ordering::SeqCst) {
                if probe() {
                    let _ = tx.send(Message::Probe {
                        service: name,
                        generation,
                        result: Ok(()),
                    });
                    return;
                }
                if start.elapsed() > deadline {
                    let _ = tx.send(Message::Probe {
                        service: name,
                        generation,
                        result: Err(format!(
                            "its healthcheck did not pass within {:.1}s (start-period + interval × retries)",
                            deadline.as_secs_f64()
                        )),
                    });
                    return;
                }
                std::thread::sleep(h.start_interval);
            }
        });
    }

    /// Once detached: whether this supervisor still keeps the health of
    /// container `name`. Its state file must still be there and name this
    /// supervisor and container (`down`, or a later `up -d`, may have taken
    /// it), and after a failed check the container must still run.
    pub(super) fn still_watched(&self, name: &str, ok: bool) -> bool {
        let Some((cid, _)) = self.containers.get(name) else {
            return true; // a process: its exit is noticed as such
        };
        let Some(r) = state::read(&self.root, name) else {
            return false;
        };
        if r.container.as_deref() != Some(cid.as_str()) || r.supervisor != self.me {
            return false;
        }
        ok || self
            .compose
            .as_ref()
            .and_then(|c| c.state(cid))
            .is_some_and(|(running, _)| running)
    }

    /// Stops keeping the health of container `name` (its record stays as
    /// it is: `ps` asks the engine whether it runs).
    pub(super) fn unwatch(&mut self, name: &str) {
        if let Some(stop) = self.monitors.remove(name) {
            stop.store(true, Ordering::SeqCst);
        }
        self.containers.remove(name);
        self.records.remove(name);
        self.state.insert(name.to_string(), State::Exited);
    }

    /// Once detached: lets go of the containers whose state file `down`
    /// removed, so that this supervisor ends as soon as nothing is left.
    pub(super) fn let_go_of_containers(&mut self) {
        let gone: Vec<String> = self
            .containers
            .keys()
            .filter(|n| !state::record_path(&self.root, n).exists())
            .cloned()
            .collect();
        for n in gone {
            self.unwatch(&n);
        }
    }
}
