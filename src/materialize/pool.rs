//! A tiny work pool for sync's independent jobs (environment syncs): up to
//! `jobs` scoped threads pull the next index; every event reaches the
//! calling thread, in the order it happened, so that progress output and
//! the sync transaction stay single-threaded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// What the calling thread hears about job `i`.
pub enum Event<'a, T> {
    Started(usize),
    Finished(usize, &'a T),
}

/// Runs `work(i)` for every `i` in `0..n` on up to `jobs` threads (all of
/// them, even after one failed, so that every failure can be reported) and
/// returns the results in index order. With one job or one thread it runs
/// on the calling thread.
pub fn run<T: Send>(
    n: usize,
    jobs: usize,
    work: impl Fn(usize) -> T + Sync,
    mut on_event: impl FnMut(Event<'_, T>),
) -> Vec<T> {
    let threads = jobs.max(1).min(n);
    if threads <= 1 {
        return (0..n)
            .map(|i| {
                on_event(Event::Started(i));
                let r = work(i);
                on_event(Event::Finished(i, &r));
                r
            })
            .collect();
    }
    enum Msg<T> {
        Started(usize),
        Done(usize, T),
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Msg<T>>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let _ = tx.send(Msg::Started(i));
                let r = work(i);
                let _ = tx.send(Msg::Done(i, r));
            });
        }
        drop(tx);
        for msg in rx {
            match msg {
                Msg::Started(i) => on_event(Event::Started(i)),
                Msg::Done(i, r) => {
                    on_event(Event::Finished(i, &r));
                    results[i] = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every job reports back"))
        .collect()
}

/// What the calling thread of [`stream`] hears about job `i`.
pub enum Msg<T> {
    Started(usize),
    Done(usize, T),
}

/// The calling thread's side of [`stream`]: hands out jobs, hears back.
pub struct Feeder<J, T> {
    tx: Option<mpsc::Sender<(usize, J)>>,
    rx: mpsc::Receiver<Msg<T>>,
    submitted: usize,
    done: usize,
}

impl<J, T> Feeder<J, T> {
    /// Queues `job`; returns its index (0, 1, … in the order submitted).
    pub fn submit(&mut self, job: J) -> usize {
        let i = self.submitted;
        self.submitted += 1;
        if let Some(tx) = &self.tx {
            let _ = tx.send((i, job));
        }
        i
    }

    /// The events that have happened, without waiting.
    pub fn ready(&mut self) -> Vec<Msg<T>> {
        let mut out = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            self.count(&m);
            out.push(m);
        }
        out
    }

    /// No more jobs: the next event, waiting for it; `None` once every
    /// submitted job is done.
    pub fn next_after_last(&mut self) -> Option<Msg<T>> {
        self.tx = None;
        if self.done == self.submitted {
            return None;
        }
        let m = self.rx.recv().ok()?;
        self.count(&m);
        Some(m)
    }

    fn count(&mut self, m: &Msg<T>) {
        if let Msg::Done(..) = m {
            self.done += 1;
        }
    }
}

/// Runs `drive` on the calling thread, which submits jobs to up to `jobs`
/// threads running `work` while it still prepares more, and hears about
/// every job through its [`Feeder`] (so that progress output and the sync
/// transaction stay single-threaded). `drive` should wait for every job it
/// submitted ([`Feeder::next_after_last`]); the threads end with it.
pub fn stream<J: Send, T: Send, R>(
    jobs: usize,
    work: impl Fn(J) -> T + Sync,
    drive: impl FnOnce(&mut Feeder<J, T>) -> R,
) -> R {
    let (jtx, jrx) = mpsc::channel::<(usize, J)>();
    let jrx = std::sync::Mutex::new(jrx);
    std::thread::scope(|scope| {
        let (etx, erx) = mpsc::channel::<Msg<T>>();
        for _ in 0..jobs.max(1) {
            let etx = etx.clone();
            let (jrx, work) = (&jrx, &work);
            scope.spawn(move || loop {
                let next = jrx.lock().map(|rx| rx.recv());
                let Ok(Ok((i, job))) = next else {
                    break;
                };
                let _ = etx.send(Msg::Started(i));
                let r = work(job);
                let _ = etx.send(Msg::Done(i, r));
            });
        }
        drop(etx);
        let mut feeder = Feeder {
            tx: Some(jtx),
            rx: erx,
            submitted: 0,
            done: 0,
        };
        let r = drive(&mut feeder);
        // The threads stop once the queue is empty and closed.
        feeder.tx = None;
        r
    })
}

/// `f` of every item, in order, split into one part per core when there
/// are at least `min` items (fewer are not worth a thread). Each thread
/// holds `scope()` while it works on its part: a per-thread memo such as
/// [`crate::python::project::remember_workspaces`]. For read-only work
/// (fingerprints, inspection) whose cost is stats and small reads.
pub fn map_split<I: Sync, T: Send, G>(
    items: &[I],
    min: usize,
    scope: impl Fn() -> G + Sync,
    f: impl Fn(&I) -> T + Sync,
) -> Vec<T> {
    let threads = default_jobs();
    if items.len() < min.max(2) || threads < 2 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let (scope, f) = (&scope, &f);
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let _held = scope();
                    part.iter().map(f).collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The default for `-j`: the machine's available parallelism.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn map_split_keeps_order_with_and_without_threads() {
        let items: Vec<usize> = (0..200).collect();
        let scopes = AtomicUsize::new(0);
        let out = map_split(
            &items,
            64,
            || scopes.fetch_add(1, Ordering::SeqCst),
            |i| i * 2,
        );
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let threads = default_jobs();
        let parts = if threads < 2 {
            0
        } else {
            items.len().div_ceil(items.len().div_ceil(threads))
        };
        assert_eq!(scopes.load(Ordering::SeqCst), parts, "one scope per thread");
        let few = map_split(
            &items[..10],
            64,
            || unreachable!("no thread for 10 items"),
            |i| *i,
        );
        assert_eq!(few, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn runs_every_job_once_and_keeps_index_order() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let mut started = Vec::new();
        let out = run(
            8,
            3,
            |i| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                i * 10
            },
            |e| {
                if let Event::Started(i) = e {
                    started.push(i)
                }
            },
        );
        assert_eq!(out, (0..8).map(|i| i * 10).collect::<Vec<_>>());
        started.sort();
        assert_eq!(started, (0..8).collect::<Vec<_>>());
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak > 1 && peak <= 3, "peak concurrency {peak}");
    }

    #[test]
    fn stream_runs_jobs_while_the_caller_submits_and_reports_each() {
        let mut started = Vec::new();
        let mut done = Vec::new();
        stream(
            2,
            |x: usize| {
                std::thread::sleep(Duration::from_millis(5));
                x * 10
            },
            |f| {
                for x in 0..6 {
                    assert_eq!(f.submit(x), x);
                    for m in f.ready() {
                        match m {
                            Msg::Started(i) => started.push(i),
                            Msg::Done(i, r) => done.push((i, r)),
                        }
                    }
                }
                while let Some(m) = f.next_after_last() {
                    match m {
                        Msg::Started(i) => started.push(i),
                        Msg::Done(i, r) => done.push((i, r)),
                    }
                }
            },
        );
        started.sort();
        done.sort();
        assert_eq!(started, (0..6).collect::<Vec<_>>());
        assert_eq!(done, (0..6).map(|i| (i, i * 10)).collect::<Vec<_>>());
    }

    #[test]
    fn one_job_runs_on_the_calling_thread() {
        let me = std::thread::current().id();
        let out = run(3, 1, |_| std::thread::current().id() == me, |_| {});
        assert_eq!(out, vec![true, true, true]);
    }
}
