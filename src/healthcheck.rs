//! A service's `healthcheck`, in one schema for every runtime: what `up`
//! probes (see [`crate::run::health`]) and what `export kubernetes` turns
//! into readiness and liveness probes. Pure: parsing only.
//!
//! ```toml
//! healthcheck = { test = ["CMD", "pg_isready"], interval = "10s", timeout = "5s", retries = 5, start-period = "30s" }
//! healthcheck = { http = "/healthz" }          # GET on the service's first port; 2xx/3xx is healthy
//! healthcheck = { tcp = 5432 }                 # a TCP connect
//! ```
//!
//! `test` is compose's: `["CMD", prog, args…]`, `["CMD-SHELL", "script"]`
//! or a string (a shell script), `["NONE"]` / `disable = true` for none.
//! Durations are compose's (`500ms`, `10s`, `1m30s`); the defaults are
//! compose's too (interval 30 s, timeout 30 s, retries 3, start period 0,
//! start interval 100 ms).

use std::time::Duration;

use crate::error::{Error, Result};

/// What a probe runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// A program and its arguments, without a shell.
    Exec(Vec<String>),
    /// A script for `/bin/sh -c`.
    Shell(String),
    /// `GET path` on `port` (the service's first port when `None`).
    Http { path: String, port: Option<u16> },
    /// A TCP connect to `port`.
    Tcp { port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    pub test: Test,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

impl Healthcheck {
    /// How long a service may take to pass its first probe.
    pub fn deadline(&self) -> Duration {
        self.start_period + self.interval * self.retries.max(1)
    }

    /// Whether compose runs this check itself (`test`), or hsm probes the
    /// published port from the host (`http`, `tcp`).
    pub fn is_compose_test(&self) -> bool {
        matches!(self.test, Test::Exec(_) | Test::Shell(_))
    }
}

/// A compose duration: `1h2m3s`, `1.5s`, `250ms`, `90us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return (n >= 0.0 && n.is_finite()).then(|| Duration::from_secs_f64(n));
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * secs;
        rest = &rest[u..];
    }
    Some(Duration::from_secs_f64(total))
}

/// The healthcheck of `service` as the Plan holds it (`None`: no check, or
/// disabled). Errors name the service and the key.
pub fn parse(service: &str, value: Option<&serde_json::Value>) -> Result<Option<Healthcheck>> {
    let Some(v) = value else { return Ok(None) };
    let bad = |key: &str, what: &str| {
        Error::config(format!(
            "the healthcheck of service `{service}` has an invalid `{key}`: {what}"
        ))
        .with_help("see README.md, “Readiness”: `test = [\"CMD\", …]`, `http = \"/path\"` or `tcp = PORT`, with durations like `10s`")
    };
    let Some(t) = v.as_object() else {
        return Err(bad("healthcheck", "expected a table"));
    };
    if t.get("disable").and_then(|d| d.as_bool()) == Some(true) {
        return Ok(None);
    }
    let known = [
        "test",
        "http",
        "tcp",
        "port",
        "interval",
        "timeout",
        "retries",
        "start-period",
        "start_period",
        "start-interval",
        "start_interval",
        "disable",
    ];
    if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(k, "unknown key"));
    }
    let forms = ["test", "http", "tcp"]
        .iter()
        .filter(|k| t.contains_key(**k))
        .count();
    if forms != 1 {
        return Err(bad("test", "give exactly one of `test`, `http` and `tcp`"));
    }
    let port = match t.get("port") {
        None => None,
        Some(p) => Some(
            p.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("port", "expected a port number"))?,
        ),
    };
    let test = if let Some(test) = t.get("test") {
        let words: Vec<String> = match test {
            serde_json::Value::String(s) => vec!["CMD-SHELL".into(), s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .map(|w| w.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("test", "expected strings"))?,
            _ => return Err(bad("test", "expected a list or a string")),
        };
        match words.split_first() {
            Some((k, [])) if k == "NONE" => return Ok(None),
            Some((k, rest)) if k == "CMD" && !rest.is_empty() => Test::Exec(rest.to_vec()),
            Some((k, [script])) if k == "CMD-SHELL" => Test::Shell(script.clone()),
            _ => {
                return Err(bad(
                    "test",
                    "expected [\"CMD\", program, args…], [\"CMD-SHELL\", script] or [\"NONE\"]",
                ))
            }
        }
    } else if let Some(h) = t.get("http") {
        let path = h
            .as_str()
            .filter(|p| p.starts_with('/') && !p.contains(char::is_whitespace))
            .ok_or_else(|| bad("http", "expected a path such as \"/healthz\""))?;
        Test::Http {
            path: path.to_string(),
            port,
        }
    } else {
        let p = t["tcp"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("tcp", "expected a port number"))?;
        Test::Tcp { port: p }
    };
    let dur = |keys: [&str; 2], default: Duration| -> Result<Duration> {
        match keys.iter().find_map(|k| t.get(*k).map(|v| (*k, v))) {
            None => Ok(default),
            Some((k, serde_json::Value::String(s))) => {
                parse_duration(s).ok_or_else(|| bad(k, &format!("`{s}` is no duration")))
            }
            Some((k, _)) => Err(bad(k, "expected a duration string such as \"10s\"")),
        }
    };
    let retries = match t.get("retries") {
        None => 3,
        Some(r) => r
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .ok_or_else(|| bad("retries", "expected a whole number"))?,
    };
    Ok(Some(Healthcheck {
        test,
        interval: dur(["interval", "interval"], Duration::from_secs(30))?,
        timeout: dur(["timeout", "timeout"], Duration::from_secs(30))?,
        retries,
        start_period: dur(["start-period", "start_period"], Duration::ZERO)?,
        start_interval: dur(
            ["start-interval", "start_interval"],
            Duration::from_millis(100),
        )?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_as_compose_writes_them() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn every_form_parses_and_bad_ones_name_the_key() {
        let h = parse("db", Some(&json!({"test": ["CMD", "pg_isready", "-q"], "interval": "2s", "retries": 4, "start-period": "1s"})))
            .unwrap()
            .unwrap();
        assert_eq!(h.test, Test::Exec(vec!["pg_isready".into(), "-q".into()]));
        assert_eq!(h.deadline(), Duration::from_secs(9));
        let h = parse("w", Some(&json!({"http": "/healthz"})))
            .unwrap()
            .unwrap();
        assert_eq!(
            h.test,
            Test::Http {
                path: "/healthz".into(),
                port: None
            }
        );
        assert!(!h.is_compose_test());
        let h = parse("w", Some(&json!({"test": "curl -f x"})))
            .unwrap()
            .unwrap();
        assert_eq!(h.test, Test::Shell("curl -f x".into()));
        assert_eq!(parse("w", Some(&json!({"test": ["NONE"]}))).unwrap(), None);
        assert_eq!(parse("w", None).unwrap(), None);
        for (v, key) in [
            (json!({"tcp": 0}), "`tcp`"),
            (json!({"http": "healthz"}), "`http`"),
            (json!({"http": "/", "tcp": 80}), "`test`"),
            (json!({"tcp": 80, "interval": "soon"}), "`interval`"),
            (json!({"tcp": 80, "every": "1s"}), "`every`"),
            (json!({"test": ["CMD"]}), "`test`"),
        ] {
            let m = parse("svc", Some(&v)).unwrap_err().plain();
            assert!(m.contains("service `svc`") && m.contains(key), "{v}: {m}");
        }
    }
}
