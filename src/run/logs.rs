//! Log files of the processes `up` runs (`.hsm/run/<service>.log`, size
//! capped with one rotation) and `cargo hsm logs [-f] [--tail N]`, which
//! merges them with the containers' logs from the engine.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::mpsc::channel;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use super::state::{self, Record};
use super::{Event, Message};
use crate::error::{Error, Result};
use crate::manifest::model::ContainerEngine;
use crate::materialize::interrupt;
use crate::plan::Plan;

/// A log file past this size is moved to `<service>.log.1` (replacing an
/// older one) before more is written.
pub const LOG_CAP: u64 = 10 * 1024 * 1024;

/// Moves `log` to `log.1` when it is past [`LOG_CAP`].
pub fn rotate_if_full(log: &Utf8Path) {
    if std::fs::metadata(log).is_ok_and(|m| m.len() > LOG_CAP) {
        let _ = std::fs::rename(log, format!("{log}.1"));
    }
}

/// The log file a foreground `up` writes for one process, beside the lines
/// it shows.
pub struct Writer {
    path: Utf8PathBuf,
    file: Option<std::fs::File>,
    written: u64,
}

impl Writer {
    pub fn open(path: Utf8PathBuf) -> Writer {
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        rotate_if_full(&path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ok();
        let written = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Writer {
            path,
            file,
            written,
        }
    }

    pub fn line(&mut self, line: &str) {
        if self.written > LOG_CAP {
            *self = Writer::open(self.path.clone());
        }
        if let Some(f) = &mut self.file {
            if writeln!(f, "{line}").is_ok() {
                self.written += line.len() as u64 + 1;
            }
        }
    }
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: Option<usize>) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let from = n.map_or(0, |n| lines.len().saturating_sub(n));
    lines[from..].to_vec()
}

/// `cargo hsm logs`: the logs of `services` (every recorded one when
/// none is named), `tail` lines each; with `follow`, then what they write
/// from now on, until SIGINT / SIGTERM (returned).
pub fn logs(
    plan: &Plan,
    services: &[String],
    follow: bool,
    tail: Option<usize>,
    on: &mut dyn FnMut(Event),
) -> Result<Option<i32>> {
    let root = &plan.project.workspace_root;
    for name in services {
        if plan.service(name).is_none() {
            return Err(super::order::unknown(plan, name));
        }
    }
    let records: Vec<Record> = state::read_all(root)
        .into_iter()
        .flatten()
        .filter(|r| services.is_empty() || services.contains(&r.service))
        .collect();
    // Processes: their log files (also of those that ended).
    let mut files: Vec<(String, Utf8PathBuf)> = Vec::new();
    let names: Vec<String> = if services.is_empty() {
        let mut n: Vec<String> = plan
            .environment_services()
            .map(|s| s.name.clone())
            .collect();
        n.sort();
        n
    } else {
        services.to_vec()
    };
    for n in &names {
        let p = root.join(state::log_path(n));
        if p.is_file() {
            files.push((n.clone(), p));
        }
    }
    if files.is_empty() && !records.iter().any(|r| r.container.is_some()) {
        return Err(Error::failed(
            "there are no logs: no service was started by `cargo hsm up` here",
        )
        .with_help("start the services with `cargo hsm up`"));
    }
    let _guard = follow.then(|| interrupt::install(None));
    let mut offsets = Vec::new();
    for (name, p) in &files {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        for line in last_lines(&text, tail) {
            on(Event::Log {
                service: name.clone(),
                line: line.to_string(),
                stderr: false,
            });
        }
        offsets.push(text.len() as u64);
    }
    // Containers: the engine's logs, piped.
    let engine = match plan.project.container_engine {
        ContainerEngine::Podman => "podman",
        ContainerEngine::Docker => "docker",
    };
    let (tx, rx) = channel::<Message>();
    let mut children = Vec::new();
    for r in records.iter().filter(|r| r.container.is_some()) {
        let mut cmd = std::process::Command::new(engine);
        cmd.arg("logs");
        if follow {
            cmd.arg("-f");
        }
        if let Some(n) = tail {
            cmd.arg("--tail").arg(n.to_string());
        }
        cmd.arg(r.container.as_deref().unwrap_or_default())
            .current_dir(root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        interrupt::prepare_child(&mut cmd);
        if let Ok(mut c) = cmd.spawn() {
            if let Some(o) = c.stdout.take() {
                super::process::pipe_lines(&r.service, o, false, tx.clone());
            }
            if let Some(e) = c.stderr.take() {
                super::process::pipe_lines(&r.service, e, true, tx.clone());
            }
            children.push(c);
        }
    }
    drop(tx);
    let mut emit = |m: Message| {
        if let Message::Log {
            service,
            line,
            stderr,
        } = m
        {
            on(Event::Log {
                service,
                line,
                stderr,
            })
        }
    };
    if !follow {
        for m in rx {
            emit(m);
        }
        for mut c in children {
            let _ = c.wait();
        }
        return Ok(None);
    }
    let mut pending: Vec<String> = vec![String::new(); files.len()];
    let signal = loop {
        if let Some(sig) = interrupt::signalled() {
            break sig;
        }
        while let Ok(m) = rx.try_recv() {
            emit(m);
        }
        for (i, (name, p)) in files.iter().enumerate() {
            let Ok(mut f) = std::fs::File::open(p) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offsets[i] {
                offsets[i] = 0; // rotated
            }
            if len == offsets[i] || f.seek(SeekFrom::Start(offsets[i])).is_err() {
                continue;
            }
            let mut buf = String::new();
            if f.read_to_string(&mut buf).is_ok() {
                offsets[i] += buf.len() as u64;
                pending[i].push_str(&buf);
                while let Some(nl) = pending[i].find('\n') {
                    let line: String = pending[i].drain(..=nl).collect();
                    emit(Message::Log {
                        service: name.clone(),
                        line: line.trim_end_matches(['\n', '\r']).to_string(),
                        stderr: false,
                    });
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    interrupt::mark_handled();
    for mut c in children {
        // SAFETY: the follower's own process group.
        unsafe {
            libc::kill(-(c.id() as i32), libc::SIGKILL);
        }
        let _ = c.wait();
    }
    Ok(Some(signal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_and_rotation() {
        assert_eq!(last_lines("a\nb\nc\n", Some(2)), ["b", "c"]);
        assert_eq!(last_lines("a\nb\n", None), ["a", "b"]);
        assert_eq!(last_lines("a\n", Some(0)), Vec::<&str>::new());
        let dir = tempfile::tempdir().unwrap();
        let log = Utf8PathBuf::from_path_buf(dir.path().join("x.log")).unwrap();
        std::fs::write(&log, vec![b'x'; LOG_CAP as usize + 1]).unwrap();
        let mut w = Writer::open(log.clone());
        w.line("fresh");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "fresh\n");
        assert_eq!(
            std::fs::metadata(format!("{log}.1")).unwrap().len(),
            LOG_CAP + 1
        );
    }
}
