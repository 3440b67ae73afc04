//! Stopping: what `cargo hsm down` (from another shell) asks this `up` or
//! detached supervisor to stop, and everything at the end, dependents first.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::super::process::Proc;
use super::super::state;
use super::super::{Event, Message};
use super::{State, Sup};

impl Sup<'_> {
    /// Stops the services `cargo hsm down` asked this supervisor to stop:
    /// for good, no restart.
    pub(super) fn stop_requested(&mut self) {
        let asked: Vec<String> = self
            .generation
            .keys()
            .filter(|n| state::stop_request(&self.root, n).exists())
            .filter(|n| !matches!(self.state.get(*n), Some(State::Exited) | None))
            .cloned()
            .collect();
        for n in asked {
            self.emit(Event::Stopping {
                services: vec![n.clone()],
            });
            if let Some(stop) = self.monitors.remove(&n) {
                stop.store(true, Ordering::SeqCst);
            }
            if let Some(mut p) = self.procs.remove(&n) {
                p.stop(self.units[&n].stop_timeout);
            }
            self.state.insert(n.clone(), State::Exited);
            self.records.remove(&n);
            state::remove(&self.root, &n);
            let _ = std::fs::remove_file(state::stop_request(&self.root, &n));
            self.emit(Event::Stopped { service: n });
        }
    }

    /// Stops everything still running, dependents first.
    pub(super) fn stop_all(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        // A container whose `up` is still running is stopped once it is up.
        while self.inflight > 0 {
            match self.rx.recv_timeout(Duration::from_secs(120)) {
                Ok(Message::ContainerUp { service, result }) => {
                    self.inflight -= 1;
                    if let Ok(cid) = result {
                        self.containers.insert(service, (cid, None));
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let mut left: BTreeSet<String> = self
            .procs
            .keys()
            .chain(self.asked.iter())
            .cloned()
            .collect();
        while !left.is_empty() {
            let mut layer: Vec<String> = left
                .iter()
                .filter(|n| {
                    !left
                        .iter()
                        .any(|o| self.units[o].deps.iter().any(|d| d == *n))
                })
                .cloned()
                .collect();
            if layer.is_empty() {
                layer = left.iter().cloned().collect(); // no cycle gets here; be safe
            }
            self.emit(Event::Stopping {
                services: layer.clone(),
            });
            let containers: Vec<String> = layer
                .iter()
                .filter(|n| self.asked.contains(*n))
                .cloned()
                .collect();
            if let (Some(compose), false) = (self.compose.clone(), containers.is_empty()) {
                let timeout = containers
                    .iter()
                    .map(|n| self.units[n].stop_timeout)
                    .max()
                    .unwrap_or_default();
                if let Err(e) = compose.stop(&containers, timeout) {
                    self.emit(Event::Warning { message: e.plain() });
                }
                for n in &containers {
                    if let Some((_, Some(mut f))) = self.containers.remove(n) {
                        // SAFETY: the follower's own process group.
                        unsafe {
                            libc::kill(-(f.id() as i32), libc::SIGKILL);
                        }
                        let _ = f.wait();
                    }
                }
            }
            let mut procs: Vec<(Proc, Duration)> = layer
                .iter()
                .filter_map(|n| {
                    self.procs
                        .remove(n)
                        .map(|p| (p, self.units[n].stop_timeout))
                })
                .collect();
            std::thread::scope(|s| {
                for (p, t) in &mut procs {
                    s.spawn(move || p.stop(*t));
                }
            });
            // Their last lines, then the verdicts.
            while let Ok(m) = self.rx.try_recv() {
                if let Message::Log {
                    service,
                    line,
                    stderr,
                } = m
                {
                    self.emit(Event::Log {
                        service,
                        line,
                        stderr,
                    });
                }
            }
            for n in &layer {
                left.remove(n);
                state::remove(&self.root, n);
                self.emit(Event::Stopped { service: n.clone() });
            }
        }
        // Those waiting for a restart have nothing left to stop.
        for n in self.units.keys() {
            if matches!(self.state.get(n), Some(State::Backoff(_))) {
                state::remove(&self.root, n);
            }
        }
    }
}
