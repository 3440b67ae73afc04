//! A model-based test of sync, dry-run and check (issue 14, §2): random
//! sequences of user actions on a real sandbox (real uv, a local wheel
//! index, offline, a local git remote), and after every action the
//! invariants:
//!
//! - (a) the actions `sync --dry-run` reports equal those `sync` reports;
//! - (b) after sync, `check` exits 0;
//! - (c) a second sync is all `Fresh` and writes nothing (no mtime moves);
//! - (d) `sync --locked` exits 0;
//! - (e) when `check` reported drift before the sync, the sync removed it
//!   (so (b)), and when it reported none, the sync changed no file.
//!
//! ```sh
//! cargo test --test model                                   # 100 actions (CI)
//! HSM_MODEL_ACTIONS=2000 cargo test --release --test model  # the long run
//! HSM_MODEL_SEED=1234 cargo test --test model               # replay a failure
//! ```
//!
//! The actions run in `HSM_MODEL_CHAINS` independent sandboxes at once
//! (default 4), each with its own seed derived from the printed one.

mod sync_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

use sync_support::{changes, require, stderr, sync_actions, Sandbox};

/// A small, seedable generator (xorshift64*): no crate needed, and the
/// same seed gives the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

const LOCAL_SERVICES: &[&str] = &["api", "worker", "jobs"];
const LIBRARIES: &[&str] = &["beta", "gamma"];

/// What the user has chosen: the manifest is rendered from this.
#[derive(Debug, Clone)]
struct Model {
    services: BTreeMap<&'static str, bool>,
    libraries: BTreeMap<&'static str, bool>,
    /// `jobs` has a dev source (`services/jobs-dev`) and a prod one.
    jobs_dev: bool,
    /// The git service's ref.
    emb_ref: &'static str,
    /// Extra dependencies of `api`.
    api_deps: Vec<&'static str>,
    /// The port the container service publishes.
    cache_port: u16,
    /// An env value of `worker`.
    worker_level: u8,
    /// Libraries added to the registry so far (beyond `beta`).
    registered: Vec<&'static str>,
}

impl Model {
    fn new() -> Model {
        Model {
            services: [
                ("api", true),
                ("worker", true),
                ("jobs", false),
                ("emb", true),
                ("cache", true),
            ]
            .into_iter()
            .collect(),
            libraries: [("beta", true), ("gamma", false)].into_iter().collect(),
            jobs_dev: false,
            emb_ref: "v1.0.0",
            api_deps: vec![],
            cache_port: 6379,
            worker_level: 0,
            registered: vec!["beta"],
        }
    }

    fn manifest(&self, emb_url: &str) -> String {
        let quoted = |m: &BTreeMap<&str, bool>| {
            m.iter()
                .filter(|(_, on)| **on)
                .map(|(n, _)| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut m = format!(
            "[libraries]\nstandalone = [{}]\n\n[services]\nstandalone = [{}]\n\n[modes]\njobs = \"{}\"\n",
            quoted(&self.libraries),
            quoted(&self.services),
            if self.jobs_dev { "dev" } else { "prod" },
        );
        for lib in &self.registered {
            let version = if *lib == "beta" { "==2.0.0" } else { ">=0.1" };
            m.push_str(&format!(
                "\n[registry.libraries.{lib}.sources.prod]\ntype = \"pypi\"\nversion = \"{version}\"\n"
            ));
        }
        let deps: Vec<String> = std::iter::once("alpha")
            .chain(self.api_deps.iter().copied())
            .map(|d| format!("\"{d}\""))
            .collect();
        m.push_str(&format!(
            r#"
[registry.services.api]
dependencies = [{}]
env = {{ API_PORT = "8081" }}
sources.prod = {{ type = "local", path = "services/api" }}
deployment-profiles.default = {{ runtime = "uv" }}

[registry.services.worker]
env = {{ LOG_LEVEL = "{}" }}
sources.prod = {{ type = "local", path = "services/worker" }}
deployment-profiles.default = {{ runtime = "uv" }}

[registry.services.jobs]
sources.prod = {{ type = "local", path = "services/jobs" }}
sources.dev = {{ type = "local", path = "services/jobs-dev" }}
deployment-profiles.default = {{ runtime = "uv" }}

[registry.services.emb]
sources.prod = {{ type = "git", url = "{emb_url}", ref = "{}" }}
deployment-profiles.default = {{ runtime = "uv" }}

[registry.services.cache]
ports = ["{}:6379"]
sources.prod = {{ type = "docker-image", image = "redis:7" }}
"#,
            deps.join(", "),
            ["info", "debug", "warn"][self.worker_level as usize % 3],
            self.emb_ref,
            self.cache_port,
        ));
        m
    }
}

struct Chain {
    sb: Sandbox,
    model: Model,
    emb_url: String,
    rng: Rng,
    log: Vec<String>,
    /// `PATH` with the real uv's directory first, when it can be found.
    path: Option<String>,
}

fn real_uv_path() -> Option<String> {
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import uv, os; print(os.path.dirname(uv.find_uv_bin()))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
    Some(format!(
        "{dir}:{}",
        std::env::var("PATH").unwrap_or_default()
    ))
}

fn venv_python(sb: &Sandbox, service: &str) -> PathBuf {
    sb.path(&format!("services/{service}/.venv/bin/python"))
}

/// `uv pip` on a service's venv, offline from the sandbox's wheels.
fn uv_pip(sb: &Sandbox, path: Option<&str>, service: &str, args: &[&str]) -> Output {
    let mut c = std::process::Command::new("uv");
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.arg("pip")
        .args(args)
        .arg("--python")
        .arg(venv_python(sb, service))
        .arg("--offline")
        .env("UV_NO_PROGRESS", "1")
        .current_dir(&sb.root);
    c.output().unwrap()
}

impl Chain {
    fn new(seed: u64) -> Chain {
        let sb = Sandbox::new();
        sb.root_pyproject("");
        for s in LOCAL_SERVICES {
            sb.uv_service(&format!("services/{s}"), "");
        }
        sb.uv_service("services/jobs-dev", "");
        let (emb_url, _) = sb.git_remote("emb", &["v1.0.0", "v1.1.0"]);
        let model = Model::new();
        sb.write("hsm.toml", &model.manifest(&emb_url));
        let mut c = Chain {
            sb,
            model,
            emb_url,
            rng: Rng::new(seed),
            log: Vec::new(),
            path: real_uv_path(),
        };
        c.settle("initial sync");
        c
    }

    fn write_manifest(&self) {
        self.sb
            .write("hsm.toml", &self.model.manifest(&self.emb_url));
    }

    fn selected_venvs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .model
            .services
            .iter()
            .filter(|(n, on)| **on && **n != "cache")
            .map(|(n, _)| {
                if *n == "jobs" && self.model.jobs_dev {
                    "jobs-dev".to_string()
                } else {
                    n.to_string()
                }
            })
            .filter(|d| venv_python(&self.sb, d).exists())
            .collect();
        v.sort();
        v
    }

    /// One random user action; returns what it did, for the log.
    fn act(&mut self) -> String {
        let m = &mut self.model;
        match self.rng.below(11) {
            0 => {
                let names: Vec<&'static str> = m.services.keys().copied().collect();
                let n = names[self.rng.below(names.len())];
                let on = m.services.get_mut(n).unwrap();
                *on = !*on;
                let s = format!("{} service {n}", if *on { "select" } else { "unselect" });
                self.write_manifest();
                s
            }
            1 => {
                let n = LIBRARIES[self.rng.below(LIBRARIES.len())];
                if !m.registered.contains(&n) {
                    return self.act_add_library(n);
                }
                let on = m.libraries.get_mut(n).unwrap();
                *on = !*on;
                let s = format!("{} library {n}", if *on { "select" } else { "unselect" });
                self.write_manifest();
                s
            }
            2 => {
                m.jobs_dev = !m.jobs_dev;
                let s = format!("mode of jobs: {}", if m.jobs_dev { "dev" } else { "prod" });
                self.write_manifest();
                s
            }
            3 => {
                m.emb_ref = if m.emb_ref == "v1.0.0" {
                    "v1.1.0"
                } else {
                    "v1.0.0"
                };
                let s = format!("emb ref -> {}", m.emb_ref);
                self.write_manifest();
                s
            }
            4 => {
                let dep = ["beta", "delta"][self.rng.below(2)];
                let s = if let Some(i) = m.api_deps.iter().position(|d| *d == dep) {
                    m.api_deps.remove(i);
                    format!("api: remove dependency {dep}")
                } else {
                    m.api_deps.push(dep);
                    format!("api: add dependency {dep}")
                };
                self.write_manifest();
                s
            }
            5 => self.act_add_library("gamma"),
            6 => {
                m.cache_port = if m.cache_port == 6379 { 6380 } else { 6379 };
                let s = format!("cache port -> {} (compose only)", m.cache_port);
                self.write_manifest();
                s
            }
            7 => {
                m.worker_level = (m.worker_level + 1) % 3;
                self.write_manifest();
                "worker env LOG_LEVEL changed".to_string()
            }
            8 => {
                let targets: Vec<&str> = [
                    ".hsm/env/api.env",
                    ".hsm/env/worker.env",
                    "docker-compose.hsm.yml",
                ]
                .into_iter()
                .filter(|f| self.sb.exists(f))
                .collect();
                if targets.is_empty() {
                    return "hand-edit: no generated file exists".into();
                }
                let f = targets[self.rng.below(targets.len())];
                let text = self.sb.read(f);
                self.sb.write(f, &format!("{text}# edited by hand\n"));
                format!("hand-edit {f}")
            }
            9 => {
                let venvs = self.selected_venvs();
                if venvs.is_empty() {
                    return "pip: no venv".into();
                }
                let v = &venvs[self.rng.below(venvs.len())];
                let wheels = self.sb.path("wheels").display().to_string();
                let (verb, o) = if self.rng.coin() {
                    (
                        "install beta into",
                        uv_pip(
                            &self.sb,
                            self.path.as_deref(),
                            v,
                            &[
                                "install",
                                "beta",
                                "--no-index",
                                "--find-links",
                                wheels.as_str(),
                            ],
                        ),
                    )
                } else {
                    (
                        "uninstall alpha from",
                        uv_pip(&self.sb, self.path.as_deref(), v, &["uninstall", "alpha"]),
                    )
                };
                assert!(o.status.success(), "uv pip: {}", stderr(&o));
                format!("pip {verb} {v}")
            }
            _ => {
                let venvs = self.selected_venvs();
                if venvs.is_empty() {
                    return "delete .venv: none".into();
                }
                let v = &venvs[self.rng.below(venvs.len())];
                std::fs::remove_dir_all(self.sb.path(&format!("services/{v}/.venv"))).unwrap();
                format!("delete services/{v}/.venv")
            }
        }
    }

    fn act_add_library(&mut self, n: &'static str) -> String {
        let m = &mut self.model;
        if !m.registered.contains(&n) {
            m.registered.push(n);
        }
        m.libraries.insert(n, true);
        self.write_manifest();
        format!("add library {n}")
    }

    fn fail(&self, what: &str, detail: String) -> ! {
        panic!(
            "{what}\nactions so far:\n  {}\n{detail}",
            self.log.join("\n  ")
        )
    }

    /// `cargo hsm ARGS` with the real uv binary first on `PATH` (a pyenv
    /// shim costs a shell and pyenv on every call).
    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.sb.cmd(args);
        if let Some(p) = &self.path {
            c.env("PATH", p);
        }
        let t = std::time::Instant::now();
        let o = c.output().unwrap();
        if std::env::var_os("HSM_MODEL_VERBOSE").is_some() {
            eprintln!("model:   {args:?} {:.2} s", t.elapsed().as_secs_f64());
        }
        o
    }

    fn json(&self, args: &[&str]) -> Output {
        let mut a = args.to_vec();
        a.extend(["--message-format", "json"]);
        self.run(&a)
    }

    /// Runs the invariants after an action.
    fn settle(&mut self, action: &str) {
        let t = std::time::Instant::now();
        self.settle_inner(action);
        if std::env::var_os("HSM_MODEL_VERBOSE").is_some() {
            eprintln!("model: {action} ({:.2} s)", t.elapsed().as_secs_f64());
        }
    }

    fn settle_inner(&mut self, action: &str) {
        self.log.push(action.to_string());
        let before = self.run(&["check"]);
        let drift = before.status.code() != Some(0);
        let dry = self.json(&["sync", "--dry-run", "-j", "2"]);
        if !dry.status.success() {
            self.fail("sync --dry-run failed", stderr(&dry));
        }
        let real = self.json(&["sync", "-j", "2"]);
        if !real.status.success() {
            self.fail("sync failed", stderr(&real));
        }
        let (dry_a, mut real_a) = (sync_actions(&dry), sync_actions(&real));
        // The one thing a dry run cannot know: whether a service's upstream
        // commits its lock file, before the clone that would tell. When it
        // does not, the sync keeps the lock in `hsm.locks/<name>/`.
        let cloned: Vec<String> = dry_a
            .iter()
            .filter(|a| a.0 == "clone" || a.0 == "reclone")
            .map(|a| a.1.clone())
            .collect();
        let unpredictable = |a: &(String, String, String)| {
            a.0 == "write" && a.2.starts_with("hsm.locks/") && cloned.contains(&a.1)
        };
        let real_all = real_a.clone();
        real_a.retain(|a| !unpredictable(a));
        if dry_a != real_a {
            self.fail(
                "(a) dry-run and sync disagree",
                format!("dry-run: {dry_a:#?}\nsync:    {real_a:#?}"),
            );
        }
        // check = inspection + what sync would still change: clean, the
        // sync may only re-run a tool (a fingerprint moved, nothing drifted).
        let changed: Vec<_> = changes(&real_all)
            .into_iter()
            .filter(|a| a.0 != "sync")
            .collect();
        if !drift && !changed.is_empty() {
            self.fail(
                "(e) check was clean, yet sync changed something",
                format!("{changed:#?}"),
            );
        }
        let after = self.run(&["check"]);
        if after.status.code() != Some(0) {
            self.fail(
                "(b) check after sync is not clean",
                format!("before:\n{}\nafter:\n{}", stderr(&before), stderr(&after)),
            );
        }
        let files = mtimes(&self.sb.root);
        let again = self.json(&["sync"]);
        let again_a = sync_actions(&again);
        if !changes(&again_a).is_empty() {
            self.fail(
                "(c) a second sync is not all Fresh",
                format!("{again_a:#?}"),
            );
        }
        let moved = diff_mtimes(&files, &mtimes(&self.sb.root));
        if !moved.is_empty() {
            self.fail("(c) a second sync wrote files", format!("{moved:#?}"));
        }
        let locked = self.run(&["sync", "--locked"]);
        if locked.status.code() != Some(0) {
            self.fail("(d) sync --locked failed", stderr(&locked));
        }
    }
}

/// Every file's mtime under `root`, except the git remotes' own files.
fn mtimes(root: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let t = std::time::Instant::now();
    let out = mtimes_inner(root);
    if std::env::var_os("HSM_MODEL_VERBOSE").is_some() {
        eprintln!(
            "model:   mtimes of {} files {:.2} s",
            out.len(),
            t.elapsed().as_secs_f64()
        );
    }
    out
}

fn mtimes_inner(root: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.starts_with(root.join("remotes")) {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                stack.push(p.clone());
            }
            if let Ok(t) = md.modified() {
                out.insert(p, t);
            }
        }
    }
    out
}

fn diff_mtimes(
    a: &BTreeMap<PathBuf, SystemTime>,
    b: &BTreeMap<PathBuf, SystemTime>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, t) in a {
        match b.get(p) {
            Some(u) if u == t => {}
            Some(_) => out.push(format!("modified {}", p.display())),
            None => out.push(format!("removed {}", p.display())),
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("created {}", p.display()));
    }
    out
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

#[test]
fn random_action_sequences_keep_sync_dry_run_and_check_in_agreement() {
    if !require("uv") || !require("git") {
        return;
    }
    let seed = env_number(
        "HSM_MODEL_SEED",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let actions = env_number("HSM_MODEL_ACTIONS", 100) as usize;
    let chains = env_number("HSM_MODEL_CHAINS", 4).max(1) as usize;
    eprintln!(
        "model: seed {seed} ({actions} actions in {chains} sandboxes); replay with HSM_MODEL_SEED={seed} HSM_MODEL_ACTIONS={actions} HSM_MODEL_CHAINS={chains}"
    );
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..chains)
            .map(|i| {
                let n = actions / chains + usize::from(i < actions % chains);
                s.spawn(move || {
                    let mut c = Chain::new(seed.wrapping_add(i as u64));
                    for _ in 0..n {
                        let what = c.act();
                        c.settle(&what);
                    }
                    c.log.len() - 1
                })
            })
            .collect();
        let done: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(done, actions);
    });
    eprintln!(
        "model: {actions} actions, every invariant held, in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
