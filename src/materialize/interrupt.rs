//! Ctrl-C and `kill` during a sync: SIGINT and SIGTERM only set a flag; a
//! watcher thread then stops every running tool (each in a process group of
//! its own: SIGTERM, then SIGKILL after a short grace), the step that was
//! running fails, and the driver rolls back and exits 130 / 143.
//!
//! Also the test-only pause points (`CARGO_HSM_TEST_PAUSE`) at which a sync
//! waits to be killed, so that tests can interrupt it at every step.
//!
//! A few lines of libc rather than a signal crate: the handler stores one
//! atomic and nothing else, and `kill`, `prctl` and `setpgid` are needed
//! anyway for the process groups.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long tools get to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_millis(1500);

/// Test hook: the name of the point at which a sync pauses until it is
/// signalled (`before:<step>`, `after:<step>`, `spawn:<program>`).
pub const PAUSE_ENV: &str = "CARGO_HSM_TEST_PAUSE";
/// Test hook: the file a paused sync creates (holding the point's name).
pub const PAUSE_FILE_ENV: &str = "CARGO_HSM_TEST_PAUSE_FILE";

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// What a running child looks like to the watcher and to the journal.
pub trait SpawnLog: Send + Sync {
    /// A tool started in process group `pgid`.
    fn spawned(&self, pgid: i32, program: &str);
    /// A tool is about to start: whatever it changes must be written down
    /// durably first.
    fn barrier(&self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Children {
    groups: Vec<i32>,
    log: Option<Arc<dyn SpawnLog>>,
}

static CHILDREN: Mutex<Children> = Mutex::new(Children {
    groups: Vec::new(),
    log: None,
});

fn children() -> std::sync::MutexGuard<'static, Children> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The signal that interrupted the sync, if one did.
pub fn signalled() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The error of an interrupted sync: exit 128 + the signal's number.
pub fn interrupted(sig: i32) -> Error {
    let name = match sig {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "a signal",
    };
    Error::failed(format!("interrupted by {name}")).with_exit_code(128 + sig)
}

/// Fails when a signal arrived: called between steps and writes.
pub fn check() -> Result<()> {
    match signalled() {
        Some(s) => Err(interrupted(s)),
        None => Ok(()),
    }
}

/// Catches SIGINT and SIGTERM until dropped; then the previous handlers
/// are back, and a signal that came too late to roll back is delivered.
pub struct Guard {
    #[cfg(unix)]
    previous: Vec<(i32, libc::sigaction)>,
}

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Installs the handlers (a signal that the parent made us ignore stays
/// ignored) and starts the watcher thread once per process.
pub fn install(log: Option<Arc<dyn SpawnLog>>) -> Guard {
    SIGNAL.store(0, Ordering::SeqCst);
    children().log = log;
    #[cfg(unix)]
    {
        let mut previous = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: plain sigaction calls with zeroed, then filled structs;
            // the handler only stores an atomic (async-signal-safe).
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    continue;
                }
                if old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                new.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(sig, &new, std::ptr::null_mut()) == 0 {
                    previous.push((sig, old));
                }
            }
        }
        if !INSTALLED.swap(true, Ordering::SeqCst) {
            let _ = std::thread::Builder::new()
                .name("hsm-signals".into())
                .spawn(watch);
        }
        Guard { previous }
    }
    #[cfg(not(unix))]
    Guard {}
}

impl Drop for Guard {
    fn drop(&mut self) {
        children().log = None;
        #[cfg(unix)]
        {
            for (sig, old) in self.previous.drain(..) {
                // SAFETY: restores the disposition read in `install`.
                unsafe {
                    libc::sigaction(sig, &old, std::ptr::null_mut());
                }
            }
            if let Some(sig) = signalled() {
                SIGNAL.store(0, Ordering::SeqCst);
                if !std::thread::panicking() && !HANDLED.load(Ordering::SeqCst) {
                    // SAFETY: re-raises a signal with its original disposition.
                    unsafe {
                        libc::raise(sig);
                    }
                }
            }
            HANDLED.store(false, Ordering::SeqCst);
        }
    }
}

static HANDLED: AtomicBool = AtomicBool::new(false);

/// The caller turned the signal into an error (a rollback and exit 130 /
/// 143); the guard does not deliver it again.
pub fn mark_handled() {
    HANDLED.store(true, Ordering::SeqCst);
}

/// The watcher: on a signal, SIGTERM to every child group, SIGKILL to
/// those still alive after [`GRACE`].
#[cfg(unix)]
fn watch() {
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if signalled().is_none() {
            continue;
        }
        let groups = children().groups.clone();
        if groups.is_empty() {
            continue;
        }
        for &g in &groups {
            // SAFETY: kill(2) on a process group we started.
            unsafe {
                libc::kill(-g, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline && groups.iter().any(|&g| group_alive(g)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for &g in &groups {
            if group_alive(g) {
                // SAFETY: as above.
                unsafe {
                    libc::kill(-g, libc::SIGKILL);
                }
            }
        }
        // Until the waiting threads unregister them.
        while children().groups.iter().any(|g| groups.contains(g)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether any process of group `pgid` still exists.
#[cfg(unix)]
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// The start time of process `pid` in clock ticks since boot, and whether
/// it is a zombie; `None` when there is no such process.
pub fn proc_start(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(19)?.parse().ok()?, f.first() == Some(&"Z")))
}

/// Prepares a tool's command: its own process group (so that Ctrl-C in the
/// terminal reaches hsm, which stops it and rolls back), and on Linux
/// SIGKILL when hsm dies (kill -9 leaves no tool running).
pub fn prepare_child(cmd: &mut std::process::Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        #[cfg(target_os = "linux")]
        {
            // SAFETY: getpid before fork; in the child only prctl and
            // getppid, both async-signal-safe.
            let parent = unsafe { libc::getpid() };
            unsafe {
                cmd.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                    if libc::getppid() != parent {
                        return Err(std::io::Error::other("hsm exited before the tool started"));
                    }
                    Ok(())
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = cmd;
}

/// Called before a tool is started: makes the journal's records that guard
/// what the tool changes durable (see `Journal::barrier`).
pub fn before_tool() -> Result<()> {
    let log = children().log.clone();
    match log {
        Some(log) => log
            .barrier()
            .map_err(|e| Error::failed(format!("cannot write the sync journal: {e}"))),
        None => Ok(()),
    }
}

/// A running child, known to the watcher until dropped.
pub struct Registered(i32);

/// Registers the process group of a just-started tool (its pid).
pub fn register_child(pid: u32, program: &str) -> Registered {
    let pgid = pid as i32;
    let mut c = children();
    c.groups.push(pgid);
    if let Some(log) = &c.log {
        log.spawned(pgid, program);
    }
    drop(c);
    #[cfg(unix)]
    if signalled().is_some() {
        // SAFETY: our own child's group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    Registered(pgid)
}

impl Drop for Registered {
    fn drop(&mut self) {
        children().groups.retain(|g| *g != self.0);
    }
}

/// Test hook: at the point named by `CARGO_HSM_TEST_PAUSE`, announce it
/// (the file of `CARGO_HSM_TEST_PAUSE_FILE`) and wait for a signal.
pub fn test_point(point: &str) {
    let Some(want) = std::env::var_os(PAUSE_ENV) else {
        return;
    };
    if want.to_str() != Some(point) {
        return;
    }
    if let Some(f) = std::env::var_os(PAUSE_FILE_ENV) {
        let _ = std::fs::write(f, point);
    }
    let start = Instant::now();
    while signalled().is_none() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
}
