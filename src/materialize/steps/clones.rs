//! New clones, made in the background while sync goes on.
//!
//! The git step starts every clone it needs at once (up to `-j` or
//! [`super::git`]'s default), each into a temporary directory beside its
//! destination, and announces them in plan order. A clone is moved into
//! place, and recorded in the journal, only when the first step that needs
//! it asks ([`Syncer::finish_clone`]): the environment step, service by
//! service, so that one service's runtime runs while the other clones are
//! still on their way; the lock step for the rest (a container service's
//! build context), so that the compose file and the journal are written
//! while they clone. Every decision (what to clone, the journal, the
//! move) stays on the sync's own thread, in plan order. A clone that fails
//! when it is moved into place fails the sync as the git step would
//! ([`Clones::failed_step`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use camino::Utf8PathBuf;

use crate::error::{Error, Result};
use crate::git::{self, Artifacts, Fetched, Remote, Want};
use crate::materialize::driver::Syncer;
use crate::materialize::interrupt;
use crate::materialize::journal::DirChange;

/// One clone to make: owned, for a thread of its own.
pub(super) struct CloneJob {
    pub service: String,
    pub url: String,
    pub reference: Option<String>,
    pub want: Want,
    pub artifacts: Artifacts,
    /// Absolute.
    pub dest: Utf8PathBuf,
}

impl CloneJob {
    fn remote(&self) -> Remote<'_> {
        Remote {
            service: &self.service,
            url: &self.url,
            reference: self.reference.as_deref(),
        }
    }
}

/// A clone the git step announced, to be moved into place.
struct Deferred {
    job_index: usize,
    /// Relative to the workspace root.
    checkout: Utf8PathBuf,
}

/// The clones running in the background, and those announced but not yet
/// in place. Dropping it (a sync that failed) stops starting new clones,
/// waits for the running ones and removes every temporary directory.
#[derive(Default)]
pub(in crate::materialize) struct Clones {
    jobs: Arc<Vec<CloneJob>>,
    rx: Option<mpsc::Receiver<(usize, Result<Fetched>)>>,
    /// Received, not yet taken.
    done: BTreeMap<usize, Result<Fetched>>,
    /// Started and not yet received.
    running: BTreeSet<usize>,
    /// By service name.
    deferred: BTreeMap<String, Deferred>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// A clone failed when a later step moved it into place.
    failed: bool,
}

impl Clones {
    /// Starts `jobs` on up to `threads` threads.
    pub(super) fn start(jobs: Vec<CloneJob>, threads: usize) -> Clones {
        let jobs = Arc::new(jobs);
        let (tx, rx) = mpsc::channel();
        let next = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads.max(1).min(jobs.len()))
            .map(|_| {
                let (jobs, tx, next, stop) = (jobs.clone(), tx.clone(), next.clone(), stop.clone());
                std::thread::spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= jobs.len() || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let j = &jobs[i];
                    let r = match interrupt::check() {
                        Err(e) => Err(e),
                        Ok(()) => git::transport::clone_into_temp(
                            &j.remote(),
                            j.want,
                            &j.artifacts,
                            &j.dest,
                        ),
                    };
                    // A closed channel: the sync failed; `r` is dropped
                    // with its temporary directory.
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                })
            })
            .collect();
        Clones {
            running: (0..jobs.len()).collect(),
            jobs,
            rx: Some(rx),
            done: BTreeMap::new(),
            deferred: BTreeMap::new(),
            stop,
            threads,
            failed: false,
        }
    }

    fn index(&self, service: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.service == service)
    }

    /// Whether a background clone of `service` was started.
    pub(super) fn started(&self, service: &str) -> bool {
        self.index(service).is_some()
    }

    /// The result of the background clone of `service`, waiting for it;
    /// `None` if none was started (or it was taken already).
    pub(super) fn take(&mut self, service: &str) -> Option<Result<Fetched>> {
        let i = self.index(service)?;
        if let Some(r) = self.done.remove(&i) {
            return Some(r);
        }
        if !self.running.contains(&i) {
            return None;
        }
        while let Ok((n, r)) = self.rx.as_ref()?.recv() {
            self.running.remove(&n);
            if n == i {
                return Some(r);
            }
            self.done.insert(n, r);
        }
        None
    }

    /// The step to name when `current` fails: a clone that failed when a
    /// later step moved it into place is the git step's failure.
    pub(in crate::materialize) fn failed_step(&self, current: &'static str) -> &'static str {
        if self.failed {
            "git sources"
        } else {
            current
        }
    }

    /// The git step announced the clone of `service`, which moves into
    /// place at `checkout` once a later step asks for it.
    pub(super) fn defer(&mut self, service: &str, checkout: Utf8PathBuf) {
        if let Some(job_index) = self.index(service) {
            self.deferred.insert(
                service.to_string(),
                Deferred {
                    job_index,
                    checkout,
                },
            );
        }
    }
}

impl Drop for Clones {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.rx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Syncer<'_> {
    /// Moves the background clone of `service` into place, if the git step
    /// deferred one: waits for it, checks it, records it in the journal and
    /// renames it to its checkout.
    pub(in crate::materialize) fn finish_clone(&mut self, service: &str) -> Result<()> {
        let r = self.move_clone_into_place(service);
        if r.is_err() {
            self.prefetched.failed = true;
        }
        r
    }

    fn move_clone_into_place(&mut self, service: &str) -> Result<()> {
        let Some(d) = self.prefetched.deferred.remove(service) else {
            return Ok(());
        };
        let jobs = self.prefetched.jobs.clone();
        let job = &jobs[d.job_index];
        let fetched = self.prefetched.take(service).unwrap_or_else(|| {
            Err(Error::failed(format!(
                "the clone of {} stopped without a result",
                job.remote().describe()
            )))
        })?;
        let commit = fetched.commit;
        self.check_locked_commit(service, commit)?;
        if job.dest.exists() {
            let _ = std::fs::remove_dir(&job.dest);
        }
        self.record_dir(DirChange::Created(job.dest.clone()))?;
        git::transport::adopt(fetched, &job.remote(), &job.dest)?;
        // New `pyproject.toml` files: what the workspace memo knew may be out of date.
        crate::python::project::forget_workspaces();
        self.commits.insert(service.to_string(), commit.to_string());
        // A Rust crate (maturin) in the new checkout: the workspace's
        // `Cargo.toml` excludes it before its build runs.
        let target = self
            .plan
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| s.target_path.as_ref());
        if let Some(t) = target {
            let (co, t) = (self.root.join(&d.checkout), self.root.join(t));
            if crate::materialize::cargo_workspace::crate_needs_exclude(&co, &t) {
                self.cargo_workspace()?;
            }
        }
        Ok(())
    }

    /// [`Syncer::finish_clone`] for every clone still deferred, in plan order.
    pub(in crate::materialize) fn finish_clones(&mut self) -> Result<()> {
        let plan = self.plan;
        for sv in &plan.services {
            self.finish_clone(&sv.name)?;
        }
        Ok(())
    }
}
