//! `cargo hsm export kubernetes`: the Plan as Kubernetes manifests, one
//! file per service (`<service>.yaml`) plus `_volumes.yaml` for the
//! PersistentVolumeClaims, under `--out` (default `deploy/kubernetes`).
//!
//! For every managed service of the selection, containers and environment
//! services alike (the latter through the images of `cargo hsm image
//! build`, see [`super::image`]):
//! - a Deployment (one replica) with its container, `args` (the profile's
//!   `command`), working dir and env, and a Service for its ports;
//! - named volumes as PersistentVolumeClaims (1Gi, ReadWriteOnce), anonymous
//!   ones as `emptyDir`; a bind mount of a host path is refused;
//! - plain env values (and the discovery values) in a ConfigMap
//!   `<service>-env`, taken with `envFrom`; every value holding a `${VAR}`
//!   and every key of the service's env files as a `secretKeyRef` to the
//!   key of the same name in the Secret `<service>-env`, which is never
//!   written: the file's header names its keys and how to create it;
//! - healthchecks as identical readiness and liveness probes;
//! - `depends-on` as an init container that waits until each dependency
//!   answers on its first port (`wait-for-dependencies = false` turns it
//!   off); a Service routes only to ready pods, so that is the dependency's
//!   readiness;
//! - discovery values for cluster DNS (`<name>.<namespace>.svc`), or with
//!   `--host-ports` for `podman kube play`, which ignores Services: every
//!   port gets a `hostPort` and a consumer reaches it through the engine's
//!   host gateway;
//! - external services with a `host` as `ExternalName` Services; their
//!   values reach their consumers as today.
//!
//! Everything carries `app.kubernetes.io/name`, `…/part-of` (the project)
//! and `…/managed-by: cargo-hsm`. Output is deterministic: services,
//! keys and volumes sorted, no timestamps.

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use super::yaml::{self, Yaml};
use crate::discovery::{self, Place};
use crate::error::{Error, Result};
use crate::fs::FileTxn;
use crate::healthcheck::{self as health, Test};
use crate::plan::{Deployment, Plan, PlannedService};

/// `--out`'s default, relative to the workspace root.
pub const DEFAULT_OUT: &str = "deploy/kubernetes";
/// The file of the PersistentVolumeClaims (`_` keeps it apart from any
/// service's file: service names start with a letter or digit).
pub const VOLUMES_FILE: &str = "_volumes.yaml";
/// With `--host-ports`: every object in one file, dependencies first, for
/// `podman kube play`.
pub const PLAY_FILE: &str = "_play.yaml";
/// The size of a PersistentVolumeClaim whose volume has none in
/// `volume-sizes`.
pub const VOLUME_SIZE: &str = "1Gi";

/// A named volume: the services that mount it, and its size with the
/// service that set it.
#[derive(Default)]
struct Volume {
    users: Vec<String>,
    size: Option<(String, String)>,
}
/// The image of the init container that waits for dependencies.
pub const DEFAULT_WAIT_IMAGE: &str = "busybox:1.36";

/// podman's annotation for the kind of a pod's init containers.
const PODMAN_INIT_TYPE: &str = "io.podman.annotations.init.container.type";

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// `metadata.namespace` of every object, and the namespace of the DNS
    /// names (`default` when `None`).
    pub namespace: Option<String>,
    /// For `podman kube play`: `hostPort`s, and discovery through them.
    pub host_ports: bool,
}

/// One exported file: its name inside the output directory and its text.
pub type File = (String, String);

/// The services the export covers: managed ones, and external ones with a
/// `host` (as `ExternalName`), sorted by name.
pub fn exported(plan: &Plan) -> Vec<&PlannedService> {
    plan.services
        .iter()
        .filter(|s| s.runtime().is_some() || external_host(s).is_some())
        .collect()
}

fn external_host(s: &PlannedService) -> Option<&str> {
    match &s.deployment {
        Deployment::External { values } => values
            .get("host")
            .map(String::as_str)
            .filter(|h| is_dns_name(h)),
        Deployment::Managed { .. } => None,
    }
}

/// A DNS-1123 subdomain made of DNS labels (not an IP address).
fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && !s.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit()))
        && s.split('.').all(is_dns_label)
}

/// A DNS-1123 label: what Kubernetes names most objects by.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A label value: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63.
fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn refuse(service: &str, what: String, help: impl Into<String>) -> Error {
    Error::config(format!(
        "service `{service}` cannot be exported to Kubernetes: {what}"
    ))
    .with_help(help.into())
}

/// Renders every file. `images` holds the image reference of each managed
/// service (from [`super::image::origin`]). Pure: the same Plan, images
/// and options give the same bytes.
pub fn render(
    plan: &Plan,
    images: &BTreeMap<String, String>,
    opts: &ExportOptions,
) -> Result<Vec<File>> {
    let project = &plan.project.name;
    if !is_label_value(project) {
        return Err(Error::config(format!(
            "the project's name `{project}` is not a Kubernetes label value (`app.kubernetes.io/part-of`)"
        ))
        .with_help("set `project.name` to letters, digits, `-`, `_` and `.`, at most 63, starting and ending with a letter or digit"));
    }
    if let Some(ns) = &opts.namespace {
        if !is_dns_label(ns) {
            return Err(Error::config(format!(
                "`--namespace {ns}` is not a Kubernetes namespace name"
            ))
            .with_help("use lower-case letters, digits and `-`, at most 63"));
        }
    }
    let namespace = opts.namespace.as_deref().unwrap_or("default");
    let place = if opts.host_ports {
        Place::LocalPlay
    } else {
        Place::Cluster { namespace }
    };
    let ctx = Ctx {
        plan,
        images,
        opts,
        place,
    };
    let mut files = Vec::new();
    let mut volumes: BTreeMap<String, Volume> = BTreeMap::new();
    let mut by_service: BTreeMap<&str, (Vec<Yaml>, String)> = BTreeMap::new();
    for s in exported(plan) {
        if !is_dns_label(&s.name) {
            return Err(refuse(
                &s.name,
                "its name is not a DNS label (lower-case letters, digits and `-`)".into(),
                "rename the service: Kubernetes names Services and Deployments by DNS labels",
            ));
        }
        let docs = match s.runtime() {
            Some(_) => ctx.managed(s, &mut volumes)?,
            None => ctx.external(s),
        };
        let secret = ctx.secret_note(s)?;
        let mut text = header(plan);
        text.push_str(&secret);
        text.push_str(&documents(&docs));
        files.push((format!("{}.yaml", s.name), text));
        by_service.insert(&s.name, (docs, secret));
    }
    let pvcs: Vec<Yaml> = volumes.iter().map(|(n, v)| ctx.pvc(n, v)).collect();
    if !pvcs.is_empty() {
        let mut text = header(plan);
        text.push_str("# The PersistentVolumeClaims of the named volumes.\n");
        text.push_str(&documents(&pvcs));
        files.push((VOLUMES_FILE.to_string(), text));
    }
    if opts.host_ports {
        files.push((PLAY_FILE.to_string(), ctx.play_file(&by_service, pvcs)));
    }
    Ok(files)
}

/// The exported services in the order `podman kube play` must start them:
/// every service after the ones it depends on, ties by name. (A cycle,
/// which `up` refuses, is cut where it closes.)
pub fn play_order(plan: &Plan) -> Vec<&PlannedService> {
    fn visit<'a>(
        s: &'a PlannedService,
        plan: &'a Plan,
        seen: &mut BTreeSet<&'a str>,
        out: &mut Vec<&'a PlannedService>,
    ) {
        if !seen.insert(&s.name) {
            return;
        }
        let mut deps: Vec<&String> = s.depends_on.iter().collect();
        deps.sort();
        for d in deps {
            if let Some(d) = plan.service(d).filter(|d| exported(plan).contains(d)) {
                visit(d, plan, seen, out);
            }
        }
        out.push(s);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for s in exported(plan) {
        visit(s, plan, &mut seen, &mut out);
    }
    out
}

fn header(plan: &Plan) -> String {
    format!(
        "{} from {} (project `{}`). Do not edit:\n# `cargo hsm export kubernetes` rewrites this file from the manifest.\n",
        super::HEADER_MARK,
        plan.project.manifest_location.describe(),
        plan.project.name.replace(['\n', '\r'], " ")
    )
}

/// `value` (which holds `${VAR}`s) in double quotes, so that a shell
/// expands its variables as cargo-hsm does: `$$` is a literal `$`.
fn shell_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                out.push_str("\\$");
            }
            '"' | '\\' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

fn documents(docs: &[Yaml]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&yaml::to_string(d));
    }
    out
}

fn map(entries: Vec<(&str, Yaml)>) -> Yaml {
    Yaml::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Yaml {
    Yaml::Seq(items.into_iter().map(|s| Yaml::Str(s.into())).collect())
}

/// Seconds of a probe field, rounded up, at least `min`.
fn secs(d: std::time::Duration, min: i64) -> Yaml {
    let s = d.as_secs() as i64 + i64::from(d.subsec_nanos() > 0);
    Yaml::Int(s.max(min))
}

struct Ctx<'a> {
    plan: &'a Plan,
    images: &'a BTreeMap<String, String>,
    opts: &'a ExportOptions,
    place: Place<'a>,
}

/// The env of one service, split the way it is exported.
struct Env {
    /// ConfigMap data, sorted.
    plain: BTreeMap<String, String>,
    /// Secret keys, sorted.
    secret: BTreeSet<String>,
    /// The values with `${VAR}` as written (after discovery), by key.
    literal: BTreeMap<String, String>,
    /// Env files whose keys are in the Secret (for the header).
    files: Vec<Utf8PathBuf>,
}

impl Ctx<'_> {
    fn labels(&self, name: &str) -> Yaml {
        map(vec![
            ("app.kubernetes.io/managed-by", Yaml::str("cargo-hsm")),
            ("app.kubernetes.io/name", Yaml::str(name)),
            (
                "app.kubernetes.io/part-of",
                Yaml::str(self.plan.project.name.as_str()),
            ),
        ])
    }

    fn selector(&self, name: &str) -> Yaml {
        map(vec![
            ("app.kubernetes.io/name", Yaml::str(name)),
            (
                "app.kubernetes.io/part-of",
                Yaml::str(self.plan.project.name.as_str()),
            ),
        ])
    }

    fn metadata(&self, name: &str, labels_of: &str) -> Yaml {
        let mut m = vec![("name", Yaml::str(name))];
        if let Some(ns) = &self.opts.namespace {
            m.push(("namespace", Yaml::str(ns.as_str())));
        }
        m.push(("labels", self.labels(labels_of)));
        map(m)
    }

    fn env(&self, s: &PlannedService) -> Result<Env> {
        let mut plain = BTreeMap::new();
        let mut secret = BTreeSet::new();
        let mut literal = BTreeMap::new();
        // Discovery first: the manifest's own values win over them.
        for (k, v) in discovery::values_for(self.plan, s, self.place) {
            plain.insert(k, v);
        }
        if s.is_environment() {
            plain.insert(
                discovery::BIND_HOST_VAR.to_string(),
                discovery::ALL_INTERFACES.to_string(),
            );
        }
        for f in &s.env_files {
            for k in &f.keys {
                plain.remove(k);
                secret.insert(k.clone());
            }
        }
        for (k, v) in &s.env {
            let value = discovery::substitute(self.plan, s, self.place, &v.value)
                .map_err(|why| refuse(&s.name, format!("the value of `{k}`: {why}"), "`${HSM_SERVICE.<name>.host|port|url}` names a service this one depends on (`depends-on`) or implies"))?;
            if super::image::has_variable(&value) {
                plain.remove(k);
                secret.insert(k.clone());
                literal.insert(k.clone(), value);
            } else if !secret.contains(k) {
                plain.insert(k.clone(), value);
            }
        }
        Ok(Env {
            plain,
            secret,
            literal,
            files: s.env_files.iter().map(|f| f.path.clone()).collect(),
        })
    }

    /// The header lines that name the service's Secret, its keys and how
    /// to create it: with `kubectl` for a cluster, and for local play as
    /// the podman secret `podman kube play` reads (podman 4.3 takes a
    /// podman secret holding a JSON map of base64 values, which is what
    /// `kubectl … -o jsonpath='{.data}'` prints; a `kind: Secret` in the
    /// played file it stores as YAML and then cannot read). Empty when the
    /// service has no secret keys.
    fn secret_note(&self, s: &PlannedService) -> Result<String> {
        if s.runtime().is_none() {
            return Ok(String::new());
        }
        let env = self.env(s)?;
        if env.secret.is_empty() {
            return Ok(String::new());
        }
        let ns = self
            .opts
            .namespace
            .as_ref()
            .map(|n| format!(" -n {n}"))
            .unwrap_or_default();
        let mut create = format!("create secret generic {}-env", s.name);
        for f in &env.files {
            create.push_str(&format!(" --from-env-file={f}"));
        }
        let from_files: BTreeSet<&String> =
            s.env_files.iter().flat_map(|f| f.keys.iter()).collect();
        for k in env.secret.iter().filter(|k| !from_files.contains(k)) {
            let v = env.literal.get(k).map(String::as_str).unwrap_or_default();
            create.push_str(&format!(" --from-literal={k}={}", shell_quoted(v)));
        }
        let mut text = format!(
            "# Secret `{}-env` (not in this file: its values never leave your shell) holds the keys:\n#   {}\n",
            s.name,
            env.secret.iter().cloned().collect::<Vec<_>>().join(", "),
        );
        if self.opts.host_ports {
            text.push_str(&format!(
                "# Create it before `podman kube play`, as a podman secret:\n#   kubectl {create} --dry-run=client -o jsonpath='{{.data}}' | podman secret create {}-env -\n",
                s.name
            ));
        } else {
            text.push_str(&format!(
                "# Create it before applying, e.g.:\n#   kubectl{ns} {create}\n"
            ));
        }
        Ok(text)
    }

    /// `_play.yaml`: every document of the other files in one file, for
    /// `podman kube play`, which takes one file and starts its pods in
    /// file order: the PersistentVolumeClaims, then the services in
    /// [`play_order`].
    fn play_file(
        &self,
        by_service: &BTreeMap<&str, (Vec<Yaml>, String)>,
        pvcs: Vec<Yaml>,
    ) -> String {
        let mut text = header(self.plan);
        text.push_str("# Every object of this directory, dependencies first, for local play:\n#   podman kube play <this file>      (and `podman kube down <this file>`)\n");
        let order = play_order(self.plan);
        for s in &order {
            if let Some((_, note)) = by_service.get(s.name.as_str()) {
                text.push_str(note);
            }
        }
        let mut docs = pvcs;
        for s in &order {
            if let Some((d, _)) = by_service.get(s.name.as_str()) {
                docs.extend(d.iter().cloned());
            }
        }
        text.push_str(&documents(&docs));
        text
    }

    fn external(&self, s: &PlannedService) -> Vec<Yaml> {
        let host = external_host(s).unwrap_or_default();
        vec![map(vec![
            ("apiVersion", Yaml::str("v1")),
            ("kind", Yaml::str("Service")),
            ("metadata", self.metadata(&s.name, &s.name)),
            (
                "spec",
                map(vec![
                    ("type", Yaml::str("ExternalName")),
                    ("externalName", Yaml::str(host)),
                ]),
            ),
        ])]
    }

    fn pvc(&self, name: &str, v: &Volume) -> Yaml {
        let users = &v.users;
        let size = v.size.as_ref().map_or(VOLUME_SIZE, |(s, _)| s.as_str());
        let mut meta = match self.metadata(name, name) {
            Yaml::Map(m) => m,
            _ => unreachable!("metadata is a map"),
        };
        meta.push((
            "annotations".to_string(),
            map(vec![("cargo-hsm/used-by", Yaml::str(users.join(",")))]),
        ));
        map(vec![
            ("apiVersion", Yaml::str("v1")),
            ("kind", Yaml::str("PersistentVolumeClaim")),
            ("metadata", Yaml::Map(meta)),
            (
                "spec",
                map(vec![
                    ("accessModes", strs(["ReadWriteOnce"])),
                    (
                        "resources",
                        map(vec![("requests", map(vec![("storage", Yaml::str(size))]))]),
                    ),
                ]),
            ),
        ])
    }

    fn managed(
        &self,
        s: &PlannedService,
        volumes: &mut BTreeMap<String, Volume>,
    ) -> Result<Vec<Yaml>> {
        let name = s.name.as_str();
        let image = self.images.get(name).ok_or_else(|| {
            refuse(
                name,
                "it has no image".into(),
                "give it a `docker-image` source, or a source `cargo hsm image build` can build",
            )
        })?;
        let env = self.env(s)?;
        let mut docs = Vec::new();
        if !env.plain.is_empty() {
            docs.push(map(vec![
                ("apiVersion", Yaml::str("v1")),
                ("kind", Yaml::str("ConfigMap")),
                ("metadata", self.metadata(&format!("{name}-env"), name)),
                (
                    "data",
                    Yaml::Map(
                        env.plain
                            .iter()
                            .map(|(k, v)| (k.clone(), Yaml::str(v.as_str())))
                            .collect(),
                    ),
                ),
            ]));
        }

        // Ports.
        let mut ports = Vec::new();
        for (i, raw) in s.ports.iter().enumerate() {
            let Some(p) = discovery::parse_port(raw) else {
                return Err(refuse(
                    name,
                    format!("its port `{raw}` (ports[{i}]) is a range or a variable"),
                    "write single ports, `\"8080\"` or `\"18080:8080\"`",
                ));
            };
            let host = if s.is_environment() {
                p.target
            } else {
                p.host.unwrap_or(p.target)
            };
            if !ports.iter().any(|(t, _)| *t == p.target) {
                ports.push((p.target, host));
            }
        }

        // Volumes.
        let mut mounts = Vec::new();
        let mut pod_volumes = Vec::new();
        for (i, spec) in s.volumes.iter().enumerate() {
            let parts: Vec<&str> = spec.split(':').collect();
            let (src, target, mode) = match parts.as_slice() {
                [t] => (None, *t, None),
                [src, t] => (Some(*src), *t, None),
                [src, t, m] => (Some(*src), *t, Some(*m)),
                _ => {
                    return Err(refuse(
                        name,
                        format!("its volume `{spec}` (volumes[{i}]) is not `SOURCE:TARGET[:MODE]`"),
                        "write `name:/path` for a named volume",
                    ))
                }
            };
            let read_only = mode.is_some_and(|m| m.split(',').any(|o| o == "ro"));
            let vol_name = match src {
                None => {
                    let n = format!("scratch-{i}");
                    pod_volumes.push(map(vec![("name", Yaml::str(n.as_str())), ("emptyDir", map(vec![]))]));
                    n
                }
                Some(src) if src.starts_with('.') || src.starts_with('/') || src.starts_with('~') || src.contains('$') => {
                    return Err(refuse(
                        name,
                        format!("it bind-mounts the host path `{src}` (volumes[{i}] = `{spec}`), which does not exist in a cluster"),
                        format!("use a named volume instead (`data:{target}`), which becomes a PersistentVolumeClaim, or bake the files into the image"),
                    ))
                }
                Some(src) => {
                    if !is_dns_label(src) {
                        return Err(refuse(
                            name,
                            format!("its volume name `{src}` (volumes[{i}]) is not a DNS label, which a PersistentVolumeClaim needs"),
                            "rename the volume: lower-case letters, digits and `-`",
                        ));
                    }
                    let vol = volumes.entry(src.to_string()).or_default();
                    if !vol.users.iter().any(|u| u == name) {
                        vol.users.push(name.to_string());
                    }
                    if let Some(size) = s.volume_sizes.get(src) {
                        match &vol.size {
                            Some((other, by)) if other != size => {
                                return Err(refuse(
                                    name,
                                    format!("its `volume-sizes` gives volume `{src}` the size `{size}`, and service `{by}` gives it `{other}`"),
                                    format!("give `{src}` one size: the same in both services' `volume-sizes`, or in one of them only"),
                                ))
                            }
                            Some(_) => {}
                            None => vol.size = Some((size.clone(), name.to_string())),
                        }
                    }
                    pod_volumes.push(map(vec![
                        ("name", Yaml::str(src)),
                        (
                            "persistentVolumeClaim",
                            map(vec![("claimName", Yaml::str(src))]),
                        ),
                    ]));
                    src.to_string()
                }
            };
            let mut m = vec![
                ("name", Yaml::str(vol_name)),
                ("mountPath", Yaml::str(target)),
            ];
            if read_only {
                m.push(("readOnly", Yaml::Bool(true)));
            }
            mounts.push(map(m));
        }

        // The container.
        let mut c: Vec<(&str, Yaml)> = vec![
            ("name", Yaml::str(name)),
            ("image", Yaml::str(image.as_str())),
            ("imagePullPolicy", Yaml::str("IfNotPresent")),
        ];
        if let Some(cmd) = &s.command {
            c.push(("args", strs(cmd.iter().cloned())));
        }
        if s.is_environment() {
            c.push(("workingDir", Yaml::str(super::image::app_dir(s))));
        } else if let Some(wd) = &s.working_dir {
            c.push(("workingDir", Yaml::str(wd.as_str())));
        }
        if !ports.is_empty() {
            c.push((
                "ports",
                Yaml::Seq(
                    ports
                        .iter()
                        .map(|(t, h)| {
                            let mut p = vec![
                                ("name", Yaml::str(format!("tcp-{t}"))),
                                ("containerPort", Yaml::Int(i64::from(*t))),
                                ("protocol", Yaml::str("TCP")),
                            ];
                            if self.opts.host_ports {
                                p.push(("hostPort", Yaml::Int(i64::from(*h))));
                            }
                            map(p)
                        })
                        .collect(),
                ),
            ));
        }
        if !env.plain.is_empty() {
            c.push((
                "envFrom",
                Yaml::Seq(vec![map(vec![(
                    "configMapRef",
                    map(vec![("name", Yaml::str(format!("{name}-env")))]),
                )])]),
            ));
        }
        if !env.secret.is_empty() {
            c.push((
                "env",
                Yaml::Seq(
                    env.secret
                        .iter()
                        .map(|k| {
                            map(vec![
                                ("name", Yaml::str(k.as_str())),
                                (
                                    "valueFrom",
                                    map(vec![(
                                        "secretKeyRef",
                                        map(vec![
                                            ("name", Yaml::str(format!("{name}-env"))),
                                            ("key", Yaml::str(k.as_str())),
                                        ]),
                                    )]),
                                ),
                            ])
                        })
                        .collect(),
                ),
            ));
        }
        if let Some(probe) = self.probe(s, ports.first().map(|p| p.0))? {
            c.push(("readinessProbe", probe.clone()));
            c.push(("livenessProbe", probe));
        }
        if !mounts.is_empty() {
            c.push(("volumeMounts", Yaml::Seq(mounts)));
        }
        if s.is_environment() {
            c.push((
                "securityContext",
                map(vec![
                    ("runAsNonRoot", Yaml::Bool(true)),
                    (
                        "runAsUser",
                        Yaml::Int(i64::from(super::image::RUNTIME_USER)),
                    ),
                    ("allowPrivilegeEscalation", Yaml::Bool(false)),
                ]),
            ));
        }

        let mut pod: Vec<(&str, Yaml)> = Vec::new();
        let mut deployment_meta = self.metadata(name, name);
        if let Some(init) = self.wait_container(s) {
            pod.push(("initContainers", Yaml::Seq(vec![init])));
            if self.opts.host_ports {
                // podman 4.3's kube play removes a finished "once" init
                // container and races its exit ("cannot remove container
                // … as it is running"); "always" keeps it. It reads the
                // Deployment's annotations, not the template's.
                if let Yaml::Map(m) = &mut deployment_meta {
                    m.push((
                        "annotations".to_string(),
                        map(vec![(PODMAN_INIT_TYPE, Yaml::str("always"))]),
                    ));
                }
            }
        }
        pod.push(("containers", Yaml::Seq(vec![map(c)])));
        if let Some(stop) = s.stop_timeout.as_deref().and_then(health::parse_duration) {
            pod.push(("terminationGracePeriodSeconds", secs(stop, 0)));
        }
        if !pod_volumes.is_empty() {
            pod.push(("volumes", Yaml::Seq(pod_volumes)));
        }

        docs.push(map(vec![
            ("apiVersion", Yaml::str("apps/v1")),
            ("kind", Yaml::str("Deployment")),
            ("metadata", deployment_meta),
            (
                "spec",
                map(vec![
                    ("replicas", Yaml::Int(1)),
                    ("selector", map(vec![("matchLabels", self.selector(name))])),
                    (
                        "template",
                        map(vec![
                            ("metadata", map(vec![("labels", self.labels(name))])),
                            ("spec", map(pod)),
                        ]),
                    ),
                ]),
            ),
        ]));

        if !ports.is_empty() {
            docs.push(map(vec![
                ("apiVersion", Yaml::str("v1")),
                ("kind", Yaml::str("Service")),
                ("metadata", self.metadata(name, name)),
                (
                    "spec",
                    map(vec![
                        ("selector", self.selector(name)),
                        (
                            "ports",
                            Yaml::Seq(
                                ports
                                    .iter()
                                    .map(|(t, _)| {
                                        map(vec![
                                            ("name", Yaml::str(format!("tcp-{t}"))),
                                            ("port", Yaml::Int(i64::from(*t))),
                                            ("targetPort", Yaml::Int(i64::from(*t))),
                                            ("protocol", Yaml::str("TCP")),
                                        ])
                                    })
                                    .collect(),
                            ),
                        ),
                    ]),
                ),
            ]));
        }
        Ok(docs)
    }

    /// The healthcheck as a probe; `first_port` for `http` without a port.
    fn probe(&self, s: &PlannedService, first_port: Option<u16>) -> Result<Option<Yaml>> {
        let Some(h) = health::parse(&s.name, s.healthcheck.as_ref())? else {
            return Ok(None);
        };
        let action = match &h.test {
            Test::Exec(args) => ("exec", map(vec![("command", strs(args.iter().cloned()))])),
            Test::Shell(script) => (
                "exec",
                map(vec![(
                    "command",
                    strs(["/bin/sh".to_string(), "-c".to_string(), script.clone()]),
                )]),
            ),
            Test::Http { path, port } => {
                let Some(port) = port.or(first_port) else {
                    return Err(refuse(
                        &s.name,
                        "its `http` healthcheck has no port to probe".into(),
                        "declare the port in `ports`, or write `healthcheck = { http = \"/path\", port = 8080 }`",
                    ));
                };
                (
                    "httpGet",
                    map(vec![
                        ("path", Yaml::str(path.as_str())),
                        ("port", Yaml::Int(i64::from(port))),
                    ]),
                )
            }
            Test::Tcp { port } => (
                "tcpSocket",
                map(vec![("port", Yaml::Int(i64::from(*port)))]),
            ),
        };
        Ok(Some(map(vec![
            action,
            ("initialDelaySeconds", secs(h.start_period, 0)),
            ("periodSeconds", secs(h.interval, 1)),
            ("timeoutSeconds", secs(h.timeout, 1)),
            ("failureThreshold", Yaml::Int(i64::from(h.retries.max(1)))),
        ])))
    }

    /// The init container that waits until every managed dependency with a
    /// port accepts a connection, as the discovery values name it.
    fn wait_container(&self, s: &PlannedService) -> Option<Yaml> {
        if s.wait_for_dependencies == Some(false) {
            return None;
        }
        let values: BTreeMap<String, String> = discovery::values_for(self.plan, s, self.place)
            .into_iter()
            .collect();
        let mut script = Vec::new();
        for d in &s.depends_on {
            let Some(dep) = self.plan.service(d).filter(|d| d.runtime().is_some()) else {
                continue;
            };
            let n = discovery::env_name(&dep.name);
            let (Some(host), Some(port)) = (
                values.get(&format!("{n}_HOST")),
                values.get(&format!("{n}_PORT")),
            ) else {
                continue;
            };
            script.push(format!(
                "until nc -w 1 {host} {port} </dev/null >/dev/null 2>&1; do echo 'waiting for {d} ({host}:{port})'; sleep 1; done"
            ));
        }
        if script.is_empty() {
            return None;
        }
        let image = s.wait_image.as_deref().unwrap_or(DEFAULT_WAIT_IMAGE);
        Some(map(vec![
            ("name", Yaml::str("wait-for-dependencies")),
            ("image", Yaml::str(image)),
            ("imagePullPolicy", Yaml::str("IfNotPresent")),
            (
                "command",
                strs(["sh".to_string(), "-c".to_string(), script.join("\n")]),
            ),
        ]))
    }
}

/// What [`write`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    /// Created or changed, relative to the output directory.
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    /// Files cargo-hsm wrote before that are no longer generated.
    pub removed: Vec<String>,
}

/// The generated files that are in `dir` now (by their first line).
fn ours_in(dir: &Utf8Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .filter(|n| {
            std::fs::read(dir.join(n)).is_ok_and(|b| b.starts_with(super::HEADER_MARK.as_bytes()))
        })
        .collect();
    out.sort();
    out
}

const OUT_HELP: &str = "move the file away, or choose another directory with `--out`";

/// Writes `files` into `dir` through `txn`, and removes the files an
/// earlier export wrote that are no longer generated. A file there that
/// cargo-hsm did not write is never touched.
pub fn write(
    dir: &Utf8Path,
    shown: &Utf8Path,
    files: &[File],
    txn: &mut FileTxn,
) -> Result<Written> {
    let mut w = Written {
        written: Vec::new(),
        unchanged: Vec::new(),
        removed: Vec::new(),
    };
    for (name, text) in files {
        let path = dir.join(name);
        let rel = shown.join(name);
        super::ensure_ours(&path, &rel, OUT_HELP)?;
        let changed = txn
            .write(&path, text.as_bytes(), None)
            .map_err(|e| super::io_error("write", &rel, e))?;
        if changed {
            w.written.push(name.clone());
        } else {
            w.unchanged.push(name.clone());
        }
    }
    for old in ours_in(dir) {
        if !files.iter().any(|(n, _)| *n == old) {
            txn.remove(&dir.join(&old))
                .map_err(|e| super::io_error("remove", &shown.join(&old), e))?;
            w.removed.push(old);
        }
    }
    Ok(w)
}

/// One file on disk that is not what the export would write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Relative to the output directory.
    pub file: String,
    /// `missing`, `differs` or `stale` (written before, no longer generated).
    pub status: &'static str,
    /// For `differs`: a short line diff (disk → generated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Problem {
    /// In words, with the path as shown (`--out`).
    pub fn describe(&self, shown: &Utf8Path) -> String {
        let rel = shown.join(&self.file);
        match self.status {
            "missing" => format!("`{rel}` is missing"),
            "stale" => format!("`{rel}` is no longer generated (its service is not selected)"),
            _ => format!(
                "`{rel}` differs from what the manifest generates:\n{}",
                self.diff.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// How the files in `dir` differ from `files`: one entry per file that is
/// missing, different or stale. Empty when they agree.
pub fn check(dir: &Utf8Path, shown: &Utf8Path, files: &[File]) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for (name, text) in files {
        let rel = shown.join(name);
        let (status, diff) = match std::fs::read(dir.join(name)) {
            Ok(b) if b == text.as_bytes() => continue,
            Ok(b) => (
                "differs",
                Some(crate::diff::unified(
                    &String::from_utf8_lossy(&b),
                    text,
                    &format!("{rel} (on disk)"),
                    &format!("{rel} (generated)"),
                    20,
                )),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ("missing", None),
            Err(e) => return Err(super::io_error("read", &rel, e)),
        };
        problems.push(Problem {
            file: name.clone(),
            status,
            diff,
        });
    }
    for old in ours_in(dir) {
        if !files.iter().any(|(n, _)| *n == old) {
            problems.push(Problem {
                file: old,
                status: "stale",
                diff: None,
            });
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names() {
        assert!(is_dns_label("postgres"));
        assert!(is_dns_label("vector-db2"));
        assert!(!is_dns_label("a_b"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_name("db.internal"));
        assert!(!is_dns_name("10.0.0.1"));
        assert!(is_label_value("rag-stack"));
        assert!(is_label_value("Rag_Stack.1"));
        assert!(!is_label_value("rag stack"));
    }
}
