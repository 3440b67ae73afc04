//! Discovery values: how a service finds the services it depends on or
//! implies, computed from the Plan alone for where the consumer runs.
//!
//! For each such service `<NAME>` (the name upper-cased, every character
//! outside `[A-Z0-9]` as `_`) a consumer gets `<NAME>_HOST`, `<NAME>_PORT`
//! (the first declared port), `<NAME>_PORT_<P>` for each port P the service
//! listens on, and `<NAME>_URL` where it declares `url-scheme`:
//!
//! | consumer → service | host | port |
//! |---|---|---|
//! | process → process | `127.0.0.1` | the process's port |
//! | process → container | `127.0.0.1` | the published host port |
//! | container → container | the service name | the container port |
//! | container → process | the engine's host gateway | the process's port |
//! | pod → pod (Kubernetes export) | `<name>.<namespace>.svc` | the container port |
//! | pod → pod (`podman kube play`, `--host-ports`) | the engine's host gateway | the `hostPort` (published, else the container port) |
//!
//! External services are not here: their `external` values already reach
//! their consumers as `<SERVICE>_<KEY>` through the Plan's env.
//!
//! Pure data, no I/O: `run/` (`cargo hsm up`), the compose override it
//! writes and `deploy/` (compose, Kubernetes) read it; unit-tested without starting anything.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::manifest::model::ContainerEngine;
use crate::plan::{Plan, PlannedService};

/// The address an environment service is told to listen on when only
/// processes on this host use it.
pub const LOOPBACK: &str = "127.0.0.1";
/// … and when a container uses it (the host gateway must reach it).
pub const ALL_INTERFACES: &str = "0.0.0.0";
/// The variable that tells an environment service where to listen.
pub const BIND_HOST_VAR: &str = "HSM_BIND_HOST";

/// Where a consumer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// A process on this host (an environment service, or `cargo hsm run`).
    Host,
    /// A container of the compose project.
    Container,
    /// A pod of a Kubernetes cluster (`cargo hsm export kubernetes`): every
    /// managed service is a pod behind a Service, reached by its DNS name
    /// `<name>.<namespace>.svc` on the container port.
    Cluster { namespace: &'a str },
    /// A pod of `podman kube play` (`export kubernetes --host-ports`), which
    /// ignores Services: every managed service is reached through the host
    /// gateway on the port its container publishes (`hostPort`).
    LocalPlay,
}

/// One `ports` entry in compose's short syntax:
/// `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub host_ip: Option<String>,
    /// The published host port; `None` when compose picks one (or none).
    pub host: Option<u16>,
    /// The port the service itself listens on.
    pub target: u16,
}

/// Parses one `ports` entry; `None` for forms discovery cannot name (port
/// ranges, variables).
pub fn parse_port(spec: &str) -> Option<PortSpec> {
    let spec = spec.split('/').next().unwrap_or(spec);
    let (ip, rest) = match spec.strip_prefix('[') {
        Some(r) => {
            let (ip, rest) = r.split_once(']')?;
            (Some(ip.to_string()), rest.strip_prefix(':')?)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let num = |s: &str| -> Option<u16> { s.parse().ok().filter(|p| *p != 0) };
    let opt = |s: &str| -> Option<Option<u16>> {
        if s.is_empty() {
            Some(None)
        } else {
            num(s).map(Some)
        }
    };
    match (ip, parts.as_slice()) {
        (None, [t]) => Some(PortSpec {
            host_ip: None,
            host: None,
            target: num(t)?,
        }),
        (None, [h, t]) => Some(PortSpec {
            host_ip: None,
            host: opt(h)?,
            target: num(t)?,
        }),
        (None, [ip, h, t]) => Some(PortSpec {
            host_ip: Some(ip.to_string()),
            host: opt(h)?,
            target: num(t)?,
        }),
        (Some(ip), [h, t]) => Some(PortSpec {
            host_ip: Some(ip),
            host: opt(h)?,
            target: num(t)?,
        }),
        _ => None,
    }
}

/// `<NAME>` of a service: upper-cased, every character outside `[A-Z0-9]` as `_`.
pub fn env_name(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The host name under which a container reaches processes on the host.
pub fn host_gateway(engine: ContainerEngine) -> &'static str {
    match engine {
        // Podman adds it to every container by itself.
        ContainerEngine::Podman => "host.containers.internal",
        // Docker needs `extra_hosts: host.docker.internal:host-gateway`.
        ContainerEngine::Docker => "host.docker.internal",
    }
}

/// The ports a managed service listens on, in declared order, with the
/// host port that reaches each (a process's port is its host port).
pub fn listen_ports(s: &PlannedService) -> Vec<PortSpec> {
    s.ports
        .iter()
        .filter_map(|p| parse_port(p))
        .map(|p| {
            if s.is_environment() {
                PortSpec {
                    host: Some(p.target),
                    ..p
                }
            } else {
                p
            }
        })
        .collect()
}

/// The services of `names` (and every managed service they depend on) that
/// `up` would run, checked as a whole: names that map to one `<NAME>` or
/// start with a digit, two services on one host port, a process using a
/// container that publishes no host port, an environment service's port
/// written as a mapping, an invalid `url-scheme`.
pub fn check(plan: &Plan, names: &[String]) -> Result<()> {
    let services: Vec<&PlannedService> = names.iter().filter_map(|n| plan.service(n)).collect();
    let mut by_env: BTreeMap<String, &str> = BTreeMap::new();
    let mut by_port: BTreeMap<u16, &str> = BTreeMap::new();
    for s in &services {
        let n = env_name(&s.name);
        if n.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(Error::config(format!(
                "service `{}` gives the discovery prefix `{n}`, which starts with a digit and is no valid variable name",
                s.name
            ))
            .with_help("rename the service so that it starts with a letter"));
        }
        if let Some(other) = by_env.insert(n.clone(), &s.name) {
            return Err(Error::config(format!(
                "services `{other}` and `{}` both give the discovery prefix `{n}` (`{n}_HOST`, `{n}_PORT`)",
                s.name
            ))
            .with_help("rename one of them; `<NAME>` is the name upper-cased with every character outside [A-Z0-9] as `_`"));
        }
        if let Some(scheme) = &s.url_scheme {
            let ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
            if !ok {
                return Err(Error::config(format!(
                    "service `{}` has `url-scheme = \"{scheme}\"`, which is no URL scheme",
                    s.name
                ))
                .with_help("write the scheme alone, in lower case: `url-scheme = \"http\"`"));
            }
        }
        for raw in &s.ports {
            let Some(p) = parse_port(raw) else {
                continue;
            };
            if s.is_environment() && (p.host.is_some_and(|h| h != p.target) || p.host_ip.is_some())
            {
                return Err(Error::config(format!(
                    "environment service `{}` declares port `{raw}`, but a process has no port mapping",
                    s.name
                ))
                .with_help(format!(
                    "write the port the process listens on alone: `ports = [\"{}\"]`",
                    p.target
                )));
            }
        }
        for p in listen_ports(s) {
            if let Some(h) = p.host {
                if let Some(other) = by_port.insert(h, &s.name) {
                    if other != s.name {
                        return Err(Error::config(format!(
                            "services `{other}` and `{}` both use host port {h}",
                            s.name
                        ))
                        .with_help("give one of them another port"));
                    }
                }
            }
        }
    }
    for s in services.iter().filter(|s| s.is_environment()) {
        for d in &s.depends_on {
            let Some(dep) = plan.service(d).filter(|d| d.is_container()) else {
                continue;
            };
            let ports = listen_ports(dep);
            if let Some(p) = ports.iter().find(|p| p.host.is_none()) {
                return Err(Error::config(format!(
                    "environment service `{}` uses container `{d}`, whose port {} is not published on the host",
                    s.name, p.target
                ))
                .with_help(format!(
                    "publish it in `{d}`'s `ports`, e.g. `\"{}:{}\"`",
                    p.target, p.target
                )));
            }
        }
    }
    Ok(())
}

/// The discovery values `consumer` gets when it runs at `place`, sorted by
/// name. Services without ports still get `<NAME>_HOST`.
pub fn values_for(plan: &Plan, consumer: &PlannedService, place: Place) -> Vec<(String, String)> {
    let engine = plan.project.container_engine;
    let mut out = BTreeMap::new();
    for d in &consumer.depends_on {
        let Some(dep) = plan.service(d) else { continue };
        if dep.runtime().is_none() {
            continue; // external: its values come through the Plan's env
        }
        let n = env_name(&dep.name);
        let host = match (place, dep.is_container()) {
            (Place::Host, _) => LOOPBACK.to_string(),
            (Place::Container, true) => dep.name.clone(),
            (Place::Container, false) | (Place::LocalPlay, _) => host_gateway(engine).to_string(),
            (Place::Cluster { namespace }, _) => format!("{}.{namespace}.svc", dep.name),
        };
        let reach = |p: &PortSpec| match (place, dep.is_container()) {
            (Place::Container, true) | (Place::Cluster { .. }, _) => Some(p.target),
            (Place::LocalPlay, _) => Some(p.host.unwrap_or(p.target)),
            _ => p.host,
        };
        let ports = listen_ports(dep);
        for p in &ports {
            if let Some(r) = reach(p) {
                out.insert(format!("{n}_PORT_{}", p.target), r.to_string());
            }
        }
        if let Some(first) = ports.first().and_then(reach) {
            out.insert(format!("{n}_PORT"), first.to_string());
            if let Some(scheme) = &dep.url_scheme {
                out.insert(format!("{n}_URL"), format!("{scheme}://{host}:{first}"));
            }
        }
        out.insert(format!("{n}_HOST"), host);
    }
    out.into_iter().collect()
}

/// `HSM_BIND_HOST` for environment service `service`: all interfaces when
/// a container among `running` uses it, else loopback.
pub fn bind_host(plan: &Plan, service: &str, running: &[String]) -> &'static str {
    let used_by_container = running
        .iter()
        .filter_map(|n| plan.service(n))
        .any(|c| c.is_container() && c.depends_on.iter().any(|d| d == service));
    if used_by_container {
        ALL_INTERFACES
    } else {
        LOOPBACK
    }
}

/// The environment services among `running` that a container uses.
pub fn consumed_by_containers(plan: &Plan, running: &[String]) -> BTreeSet<String> {
    running
        .iter()
        .filter_map(|n| plan.service(n))
        .filter(|c| c.is_container())
        .flat_map(|c| c.depends_on.iter())
        .filter(|d| plan.service(d).is_some_and(|s| s.is_environment()))
        .cloned()
        .collect()
}

/// The placeholder of discovery values inside manifest values.
const OPEN: &str = "${HSM_SERVICE.";

/// Replaces every `${HSM_SERVICE.<name>.host|port|url}` in `value` with
/// what `consumer`, running at `place`, reaches `<name>` by (the same as
/// `<NAME>_HOST`, `_PORT`, `_URL`; for an external service, its
/// `external` values). `Err` says why one cannot be given.
pub fn substitute(
    plan: &Plan,
    consumer: &PlannedService,
    place: Place,
    value: &str,
) -> std::result::Result<String, String> {
    if !value.contains(OPEN) {
        return Ok(value.to_string());
    }
    let values = values_for(plan, consumer, place);
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find(OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(format!("`{}` is not closed with `}}`", &rest[i..]));
        };
        let inner = &after[..end];
        let shown = format!("${{HSM_SERVICE.{inner}}}");
        let Some((name, field)) = inner.rsplit_once('.') else {
            return Err(format!(
                "`{shown}` names no field: write `${{HSM_SERVICE.<name>.host}}`, `.port` or `.url`"
            ));
        };
        if !["host", "port", "url"].contains(&field) {
            return Err(format!(
                "`{shown}`: `{field}` is not `host`, `port` or `url`"
            ));
        }
        if !consumer.depends_on.iter().any(|d| d == name) {
            return Err(format!(
                "`{shown}`: `{}` does not depend on or imply service `{name}`",
                consumer.name
            ));
        }
        let key = format!("{}_{}", env_name(name), field.to_ascii_uppercase());
        let found = match plan.service(name).and_then(|d| d.runtime()) {
            Some(_) => values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone()),
            // External: the connection values the Plan passes on.
            None => consumer.env.get(&key).map(|v| v.value.clone()),
        };
        let Some(v) = found else {
            let why = match field {
                "url" => format!("`{name}` declares no `url-scheme` (or no port)"),
                "port" => format!(
                    "`{name}` declares no port that `{}` can reach",
                    consumer.name
                ),
                _ => format!("`{name}` gives no host"),
            };
            return Err(format!("`{shown}`: {why}"));
        };
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks every `${HSM_SERVICE.…}` in the manifest values of `names`.
pub fn check_placeholders(plan: &Plan, names: &[String]) -> Result<()> {
    for s in names.iter().filter_map(|n| plan.service(n)) {
        let place = if s.is_container() {
            Place::Container
        } else {
            Place::Host
        };
        for (k, v) in &s.env {
            substitute(plan, s, place, &v.value).map_err(|why| {
                Error::config(format!("the value of `{k}` of service `{}`: {why}", s.name))
                    .with_help("`${HSM_SERVICE.<name>.host|port|url}` names a service this one depends on (`depends-on`) or implies")
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_in_compose_short_syntax() {
        let p = |s| parse_port(s);
        assert_eq!(
            p("8081"),
            Some(PortSpec {
                host_ip: None,
                host: None,
                target: 8081
            })
        );
        assert_eq!(
            p("15432:5432").map(|p| (p.host, p.target)),
            Some((Some(15432), 5432))
        );
        let q = p("127.0.0.1:16379:6379/tcp").unwrap();
        assert_eq!(
            (q.host_ip.as_deref(), q.host, q.target),
            (Some("127.0.0.1"), Some(16379), 6379)
        );
        assert_eq!(
            p("127.0.0.1::80").map(|p| (p.host, p.target)),
            Some((None, 80))
        );
        assert_eq!(
            p("[::1]:8080:80").map(|p| (p.host, p.target)),
            Some((Some(8080), 80))
        );
        assert_eq!(p("8000-8010:8000-8010"), None);
        assert_eq!(p("${PORT}:80"), None);
        assert_eq!(p("0"), None);
    }

    #[test]
    fn names_are_upper_cased_with_underscores() {
        assert_eq!(env_name("embedder"), "EMBEDDER");
        assert_eq!(env_name("vector-db.v2"), "VECTOR_DB_V2");
        assert_eq!(env_name("a_b"), "A_B");
    }

    fn plan(toml: &str) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let root = camino::Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(root.join("hsm.toml"), toml).unwrap();
        for d in ["a", "b", "c"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        crate::plan(root).map(|(_, p)| p).unwrap()
    }

    const TWO_WORLDS: &str = r#"
[project]
name = "t"
container-engine = "podman"
[services]
standalone = ["api", "web", "db"]
[registry.services.api]
ports = ["8081"]
url-scheme = "http"
depends-on = ["db"]
sources.prod = { type = "local", path = "a" }
deployment-profiles.default = { runtime = "venv", command = ["python", "-m", "api"] }
[registry.services.web]
ports = ["18080:8080"]
url-scheme = "http"
depends-on = ["api"]
sources.prod = { type = "docker-image", image = "busybox" }
[registry.services.db]
ports = ["15432:5432", "9187"]
sources.prod = { type = "docker-image", image = "postgres" }
"#;

    #[test]
    fn values_depend_on_where_the_consumer_runs() {
        let p = plan(TWO_WORLDS);
        let api = p.service("api").unwrap();
        let web = p.service("web").unwrap();
        // process → container: loopback and the published port; an
        // unpublished port has no value from the host.
        assert_eq!(
            values_for(&p, api, Place::Host),
            [
                ("DB_HOST".to_string(), "127.0.0.1".to_string()),
                ("DB_PORT".to_string(), "15432".to_string()),
                ("DB_PORT_5432".to_string(), "15432".to_string()),
            ]
        );
        // container → process: the host gateway and the process's port.
        assert_eq!(
            values_for(&p, web, Place::Container),
            [
                (
                    "API_HOST".to_string(),
                    "host.containers.internal".to_string()
                ),
                ("API_PORT".to_string(), "8081".to_string()),
                ("API_PORT_8081".to_string(), "8081".to_string()),
                (
                    "API_URL".to_string(),
                    "http://host.containers.internal:8081".to_string()
                ),
            ]
        );
        // container → container: the service name and the container port.
        let mut as_container = api.clone();
        as_container.deployment = crate::plan::Deployment::Managed {
            runtime: crate::manifest::model::RuntimeType::Podman,
        };
        let v = values_for(&p, &as_container, Place::Container);
        assert!(v.contains(&("DB_HOST".into(), "db".into())), "{v:?}");
        assert!(v.contains(&("DB_PORT_9187".into(), "9187".into())), "{v:?}");
        assert_eq!(
            bind_host(&p, "api", &["web".into(), "api".into()]),
            "0.0.0.0"
        );
        assert_eq!(bind_host(&p, "api", &["api".into()]), "127.0.0.1");
    }

    #[test]
    fn in_a_cluster_every_service_is_a_dns_name_on_its_container_port() {
        let p = plan(TWO_WORLDS);
        let web = p.service("web").unwrap();
        let api = p.service("api").unwrap();
        let cluster = Place::Cluster { namespace: "rag" };
        assert_eq!(
            values_for(&p, web, cluster),
            [
                ("API_HOST".to_string(), "api.rag.svc".to_string()),
                ("API_PORT".to_string(), "8081".to_string()),
                ("API_PORT_8081".to_string(), "8081".to_string()),
                ("API_URL".to_string(), "http://api.rag.svc:8081".to_string()),
            ]
        );
        // The unpublished port is reachable in a cluster, by its container port.
        let v = values_for(&p, api, cluster);
        assert!(v.contains(&("DB_PORT".into(), "5432".into())), "{v:?}");
        assert!(v.contains(&("DB_PORT_9187".into(), "9187".into())), "{v:?}");
        // Local play: the host gateway and the host port (published, else the same).
        let v = values_for(&p, api, Place::LocalPlay);
        assert!(
            v.contains(&("DB_HOST".into(), "host.containers.internal".into())),
            "{v:?}"
        );
        assert!(v.contains(&("DB_PORT".into(), "15432".into())), "{v:?}");
        assert!(v.contains(&("DB_PORT_9187".into(), "9187".into())), "{v:?}");
    }

    #[test]
    fn placeholders_take_the_values_of_the_consumers_place() {
        let p = plan(TWO_WORLDS);
        let web = p.service("web").unwrap();
        let api = p.service("api").unwrap();
        assert_eq!(
            substitute(
                &p,
                web,
                Place::Container,
                "u=${HSM_SERVICE.api.url}/v1 h=${HSM_SERVICE.api.host}"
            )
            .unwrap(),
            "u=http://host.containers.internal:8081/v1 h=host.containers.internal"
        );
        assert_eq!(
            substitute(&p, api, Place::Host, "${HSM_SERVICE.db.port}").unwrap(),
            "15432"
        );
        let e = substitute(&p, api, Place::Host, "${HSM_SERVICE.db.url}").unwrap_err();
        assert!(e.contains("`db` declares no `url-scheme`"), "{e}");
        let e = substitute(&p, api, Place::Host, "${HSM_SERVICE.web.host}").unwrap_err();
        assert!(
            e.contains("`api` does not depend on or imply service `web`"),
            "{e}"
        );
        let e = substitute(&p, api, Place::Host, "${HSM_SERVICE.db.ip}").unwrap_err();
        assert!(e.contains("`ip` is not `host`, `port` or `url`"), "{e}");
        assert_eq!(
            substitute(&p, api, Place::Host, "${OTHER}").unwrap(),
            "${OTHER}"
        );
    }

    #[test]
    fn a_process_needs_a_published_port_of_its_container() {
        let p = plan(TWO_WORLDS);
        let e = check(&p, &["api".into(), "db".into()]).unwrap_err();
        let m = e.plain();
        assert!(
            m.contains("`api` uses container `db`, whose port 9187 is not published"),
            "{m}"
        );
        assert!(m.contains("\"9187:9187\""), "{m}");
    }

    #[test]
    fn one_host_port_and_one_prefix_per_service() {
        let p = plan(
            r#"
[project]
name = "t"
[services]
standalone = ["a-b", "a_b", "c"]
[registry.services.a-b]
ports = ["9000"]
sources.prod = { type = "local", path = "a" }
deployment-profiles.default = { runtime = "venv", command = ["x"] }
[registry.services.a_b]
sources.prod = { type = "local", path = "b" }
deployment-profiles.default = { runtime = "venv", command = ["x"] }
[registry.services.c]
ports = ["9000:80"]
sources.prod = { type = "docker-image", image = "busybox" }
"#,
        );
        let m = check(&p, &["a-b".into(), "a_b".into()])
            .unwrap_err()
            .plain();
        assert!(
            m.contains("`a-b` and `a_b` both give the discovery prefix `A_B`"),
            "{m}"
        );
        let m = check(&p, &["a-b".into(), "c".into()]).unwrap_err().plain();
        assert!(m.contains("`a-b` and `c` both use host port 9000"), "{m}");
        check(&p, &["c".into()]).unwrap();
    }
}
