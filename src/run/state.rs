//! What `up` started, on disk under `.hsm/run/`, so that `ps` and `down`
//! work from a new shell: one `<service>.json` per running service (the
//! pid and the process's start time, so that a reused pid is never taken
//! for ours; or the container id), and each detached process's log file.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::model::RuntimeType;

/// The run directory, relative to the workspace root.
pub const RUN_DIR: &str = ".hsm/run";

/// One started service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub service: String,
    pub runtime: RuntimeType,
    /// A process: its pid (also its process group), and its start time in
    /// clock ticks since boot (`/proc/<pid>/stat`, field 22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// A container: its id and compose project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub command: String,
    /// Seconds since the epoch.
    pub started_at: u64,
    pub ports: Vec<String>,
    /// Grace between SIGTERM and SIGKILL, in milliseconds.
    pub stop_timeout_ms: u64,
    /// A detached process's log file, relative to the workspace root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Utf8PathBuf>,
    /// Started by `up -d` (else by a foreground `up`, which removes it).
    pub detached: bool,
    /// How often its `restart` policy started it again.
    #[serde(default)]
    pub restarts: u32,
    /// Its healthcheck's verdict, kept up to date by the supervisor that
    /// runs it: `starting`, `healthy` or `unhealthy` (none without a
    /// healthcheck).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The detached supervisor (`up -d`) that runs and restarts it: its
    /// pid and start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<(i32, u64)>,
}

/// A healthcheck's verdict, with compose's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not passed yet.
    Starting,
    Healthy,
    /// Failed `retries` times in a row after it had passed.
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

impl Record {
    pub fn stop_timeout(&self) -> Duration {
        Duration::from_millis(self.stop_timeout_ms)
    }
}

pub fn dir(root: &Utf8Path) -> Utf8PathBuf {
    root.join(RUN_DIR)
}

/// The state file of `service`.
pub fn record_path(root: &Utf8Path, service: &str) -> Utf8PathBuf {
    dir(root).join(format!("{service}.json"))
}

/// The record of `service`, when it has a readable one.
pub fn read(root: &Utf8Path, service: &str) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(root, service)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The file `cargo hsm down` creates to ask the supervisor of a detached
/// `service` to stop it for good (no restart).
pub fn stop_request(root: &Utf8Path, service: &str) -> Utf8PathBuf {
    dir(root).join(format!("{service}.stop"))
}

/// Whether a recorded supervisor (pid, start time) still runs.
pub fn supervisor_alive(s: Option<(i32, u64)>) -> bool {
    s.is_some_and(|(pid, ticks)| matches!(proc_start(pid), Some((t, false)) if t == ticks))
}

/// The log file of a process, relative to the workspace root.
pub fn log_path(service: &str) -> Utf8PathBuf {
    Utf8PathBuf::from(RUN_DIR).join(format!("{service}.log"))
}

pub fn write(root: &Utf8Path, r: &Record) -> Result<()> {
    let d = dir(root);
    std::fs::create_dir_all(&d).map_err(|e| Error::failed(format!("cannot create `{d}`: {e}")))?;
    let text = serde_json::to_string_pretty(r).expect("plain data") + "\n";
    crate::fs::write_if_changed(&record_path(root, &r.service), text.as_bytes(), None)
        .map(|_| ())
        .map_err(|e| Error::failed(format!("cannot write the state of `{}`: {e}", r.service)))
}

pub fn remove(root: &Utf8Path, service: &str) {
    let _ = std::fs::remove_file(record_path(root, service));
}

/// Every record, sorted by service; an unreadable one is reported as
/// `Err(file name)` so that it can be cleaned up.
pub fn read_all(root: &Utf8Path) -> Vec<std::result::Result<Record, String>> {
    let Ok(entries) = std::fs::read_dir(dir(root)) else {
        return Vec::new();
    };
    let mut out: Vec<std::result::Result<Record, String>> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.ends_with(".json").then_some((name, e.path()))
        })
        .map(|(name, p)| {
            std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .ok_or(name)
        })
        .collect();
    out.sort_by(|a, b| match (a, b) {
        (Ok(a), Ok(b)) => a.service.cmp(&b.service),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(a), Err(b)) => a.cmp(b),
    });
    out
}

/// Every readable record, sorted by service; an unreadable state file is
/// removed and `on_bad` told its name.
pub fn read_valid(root: &Utf8Path, on_bad: &mut dyn FnMut(String)) -> Vec<Record> {
    let mut out = Vec::new();
    for r in read_all(root) {
        match r {
            Ok(r) => out.push(r),
            Err(file) => {
                let _ = std::fs::remove_file(dir(root).join(&file));
                on_bad(format!(
                    "removed the unreadable state file `{RUN_DIR}/{file}`"
                ));
            }
        }
    }
    out
}

pub use crate::materialize::interrupt::proc_start;

/// Whether a recorded process is still the one we started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// Its pid runs with the recorded start time.
    Running,
    /// Its leader is gone, but processes of its group remain (a group id
    /// is not reused while the group exists: they are ours).
    GroupLeft,
    /// Nothing of it runs.
    Gone,
    /// Its pid now belongs to another process: never signalled.
    Reused,
}

pub fn liveness(pid: i32, start_ticks: u64) -> Liveness {
    match proc_start(pid) {
        Some((t, false)) if t == start_ticks => Liveness::Running,
        Some((t, _)) if t != start_ticks => Liveness::Reused,
        _ if crate::materialize::interrupt::group_alive(pid) => Liveness::GroupLeft,
        _ => Liveness::Gone,
    }
}

/// Seconds since the epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_running_and_a_wrong_start_time_is_reuse() {
        let me = std::process::id() as i32;
        let (t, zombie) = proc_start(me).unwrap();
        assert!(!zombie);
        assert_eq!(liveness(me, t), Liveness::Running);
        assert_eq!(liveness(me, t + 1), Liveness::Reused);
        assert_eq!(proc_start(i32::MAX), None);
    }

    #[test]
    fn records_round_trip_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        for s in ["b", "a"] {
            write(
                root,
                &Record {
                    service: s.into(),
                    runtime: RuntimeType::Uv,
                    pid: Some(1),
                    start_ticks: Some(2),
                    container: None,
                    project: None,
                    command: "python main.py".into(),
                    started_at: 3,
                    ports: vec!["8080".into()],
                    stop_timeout_ms: 10_000,
                    log: Some(log_path(s)),
                    detached: true,
                    restarts: 0,
                    health: None,
                    supervisor: None,
                },
            )
            .unwrap();
        }
        std::fs::write(dir.path().join(".hsm/run/broken.json"), "{").unwrap();
        let all = read_all(root);
        let names: Vec<String> = all
            .iter()
            .map(|r| match r {
                Ok(r) => r.service.clone(),
                Err(f) => f.clone(),
            })
            .collect();
        assert_eq!(names, ["a", "b", "broken.json"]);
        remove(root, "a");
        assert_eq!(read_all(root).len(), 2);
    }
}
