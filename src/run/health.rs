//! Readiness: the probes hsm runs itself, for the `healthcheck` schema of
//! [`crate::healthcheck`] (shared with `export kubernetes`). Until the
//! first success hsm probes every `start-interval` (default 100 ms), so
//! that a dependent starts as soon as it can. A service is unhealthy when
//! it has not passed within `start-period` + `interval` × `retries`.
//!
//! Without a healthcheck a service is ready once started and still alive
//! after [`GRACE`].

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Readiness of a service without a healthcheck: alive this long after start.
pub const GRACE: Duration = Duration::from_millis(1000);

pub use crate::healthcheck::{parse, parse_duration, Healthcheck, Test};

/// `GET path` on 127.0.0.1:port: healthy on 2xx and 3xx.
pub fn http_ok(port: u16, path: &str, timeout: Duration) -> bool {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    // One write: `write!` on a bare socket sends each piece of the format
    // on its own, and a server that reads once and closes then resets the
    // connection before its answer is read.
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: cargo-hsm\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match s.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|c| (200..400).contains(&c))
}

/// A TCP connect to 127.0.0.1:port.
pub fn tcp_ok(port: u16, timeout: Duration) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, timeout).is_ok()
}

/// Runs an exec/shell healthcheck in the service's environment.
pub(super) fn exec_probe(test: &Test, l: &super::process::Launch, timeout: Duration) -> bool {
    let mut cmd = match test {
        Test::Exec(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        Test::Shell(script) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(script);
            c
        }
        _ => return false,
    };
    cmd.current_dir(&l.cwd)
        .env("PATH", &l.path)
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::materialize::interrupt::prepare_child(&mut cmd);
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.success(),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                // SAFETY: the probe's own process group.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Whether every listening TCP socket on `port` is bound to 127.0.0.1
/// (read from `/proc/net/tcp`; false when nothing is known).
pub(super) fn loopback_only(port: u16) -> bool {
    let mut any = false;
    let mut all_loopback = true;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let Some((addr, p)) = f[1].rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            any = true;
            // 127.0.0.1 is 0100007F in /proc's byte order; ::1 is all zero but the last word.
            let loopback = addr == "0100007F" || addr == "00000000000000000000000001000000";
            all_loopback &= loopback;
        }
    }
    any && all_loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_probe_against_a_real_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            for (i, s) in l.incoming().take(2).enumerate() {
                use std::io::{Read, Write};
                let mut s = s.unwrap();
                // The whole request, as a real server reads it.
                let mut req = Vec::new();
                let mut b = [0u8; 256];
                while !req.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => req.extend_from_slice(&b[..k]),
                    }
                }
                let code = if i == 0 { "200 OK" } else { "503 No" };
                let _ = write!(s, "HTTP/1.0 {code}\r\n\r\n");
            }
        });
        assert!(http_ok(port, "/", Duration::from_secs(2)));
        assert!(!http_ok(port, "/", Duration::from_secs(2)));
        t.join().unwrap();
        assert!(!tcp_ok(port, Duration::from_millis(200)));
    }
}
