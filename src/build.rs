//! `cargo hsm` from a build script: check (default) or materialize the
//! workspace's Python environments before the crate compiles.
//!
//! ```no_run
//! // build.rs's `main`, with `cargo-hsm = { version = "0.1",
//! // default-features = false }` under `[build-dependencies]`:
//! cargo_hsm::build::check().run();
//! ```
//!
//! Two modes, one contract:
//!
//! - [`check`] writes nothing. It inspects what `cargo hsm check` inspects
//!   and fails the build with the command to run when the environment is
//!   stale. This respects Cargo's rule that build scripts modify nothing
//!   outside `OUT_DIR`.
//! - [`sync`] materializes, as `cargo hsm sync` does (then verifies). It
//!   writes outside `OUT_DIR` (`.venv`s, lock files, the compose file), so
//!   the crate opts in explicitly.
//!
//! `CARGO_HSM_BUILD=off|check|sync` overrides the mode the build script
//! chose (CI sets `check`; a machine without Python sets `off`).
//!
//! The workspace root is found by walking up from `CARGO_MANIFEST_DIR`, not
//! with `cargo metadata`. Measured with cargo 1.95, a nested
//! `cargo metadata --no-deps` inside a running build script did not block
//! on the outer build's locks (11–13 ms; 17 ms when resolving dependencies
//! from the lockfile). The walk-up is still the design: it depends neither
//! on the `CARGO` variable nor on how a cargo version locks its build and
//! package-cache directories (nothing promises a nested call never waits,
//! e.g. when it must update `Cargo.lock` or download), and reading a few
//! `Cargo.toml` files costs microseconds, not a process per build script.
//!
//! Concurrency: several crates of one workspace may run such a build script
//! at once. Sync mode takes `.hsm/sync.lock` (the CLI's lock); the script
//! that waited then finds every action fresh and returns. Check mode takes
//! the same lock shared, when it exists, so it never inspects a half-done
//! sync.
//!
//! Rebuilds: the script prints `cargo:rerun-if-changed=` for exactly the
//! inputs that decide the environments (manifest, registry, env files, the
//! local services' and the root's `pyproject.toml` and lock files,
//! `hsm.lock`), so a build that changes none of them does not run it again.
//! Outputs (a deleted `.venv`) are not watched: `cargo hsm check` in CI
//! catches those.

use std::fs::File;
use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::manifest::model::Source;
use crate::manifest::Loaded;
use crate::materialize::{self, Action, ActionKind, SyncOptions};
use crate::plan::Plan;

/// The variable that overrides the mode a build script chose.
pub const MODE_ENV: &str = "CARGO_HSM_BUILD";

/// What the build script does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing: not even the manifest is read.
    Off,
    /// Inspect; fail the build when the environment is stale. Writes nothing.
    Check,
    /// Materialize like `cargo hsm sync`, then verify.
    Sync,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Check => "check",
            Mode::Sync => "sync",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "off" => Some(Mode::Off),
            "check" => Some(Mode::Check),
            "sync" => Some(Mode::Sync),
            _ => None,
        }
    }
}

/// A build-script run, configured with the builder methods and started by
/// [`Config::run`] (fails the build on error) or [`Config::try_run`].
#[derive(Debug, Clone)]
#[must_use = "nothing happens until `.run()`"]
pub struct Config {
    mode: Mode,
    options: SyncOptions,
    verify: bool,
    workspace_root: Option<Utf8PathBuf>,
}

/// Check mode: fail the build when the environment is stale; write nothing.
pub fn check() -> Config {
    Config::new(Mode::Check)
}

/// Sync mode: materialize the environments from the build script.
pub fn sync() -> Config {
    Config::new(Mode::Sync)
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The mode that ran, after `CARGO_HSM_BUILD`.
    pub mode: Mode,
    /// `None` in off mode.
    pub workspace_root: Option<Utf8PathBuf>,
    /// Sync's actions (empty in check and off mode).
    pub actions: Vec<Action>,
    /// The files and directories printed as `cargo:rerun-if-changed=`.
    pub rerun_if_changed: Vec<Utf8PathBuf>,
    /// Printed as `cargo:warning=`.
    pub warnings: Vec<String>,
}

impl Outcome {
    /// Whether sync changed anything (every action `Fresh`: no).
    pub fn changed(&self) -> bool {
        self.actions
            .iter()
            .any(|a| !matches!(a.action, ActionKind::Fresh | ActionKind::Block))
    }
}

impl Config {
    pub fn new(mode: Mode) -> Config {
        Config {
            mode,
            options: SyncOptions::default(),
            verify: true,
            workspace_root: None,
        }
    }

    /// Sync without network (git and uv), as `cargo hsm sync --offline`.
    pub fn offline(mut self, yes: bool) -> Self {
        self.options.offline = yes;
        self
    }

    /// Fail instead of changing `hsm.lock` or a lock file (`--locked`).
    pub fn locked(mut self, yes: bool) -> Self {
        self.options.locked = yes;
        self
    }

    /// Install exactly what the lock files say (`--frozen`).
    pub fn frozen(mut self, yes: bool) -> Self {
        self.options.frozen = yes;
        self
    }

    /// Sync mode: skip the inspection after the sync (`--no-verify`).
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }

    /// Use this workspace root instead of the one found from
    /// `CARGO_MANIFEST_DIR`.
    pub fn workspace_root(mut self, root: impl Into<Utf8PathBuf>) -> Self {
        self.workspace_root = Some(root.into());
        self
    }

    /// Runs and prints Cargo's directives. On error, prints it as
    /// `cargo::error=` lines and ends the build script: Cargo fails the
    /// build and shows the message once, without the script's whole output
    /// (`cargo::error` needs Cargo 1.84; this crate needs Rust 1.89).
    pub fn run(self) -> Outcome {
        let mut out = std::io::stdout().lock();
        match self.run_to(&mut out, &|k| std::env::var(k).ok()) {
            Ok(o) => o,
            Err(e) => {
                report_error(&mut out, &e);
                let _ = out.flush();
                if std::env::var_os("OUT_DIR").is_none() {
                    // Not under Cargo: nobody reads `cargo::error`.
                    eprintln!("error: {}", e.plain());
                    std::process::exit(1)
                }
                std::process::exit(0)
            }
        }
    }

    /// Runs and prints Cargo's directives; the caller decides what an error
    /// means for the build.
    pub fn try_run(self) -> Result<Outcome> {
        self.run_to(&mut std::io::stdout().lock(), &|k| std::env::var(k).ok())
    }

    /// [`Config::try_run`] writing directives to `out` and reading the
    /// environment through `env`.
    pub fn run_to(
        self,
        out: &mut dyn Write,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Outcome> {
        let mut w = Directives { out };
        w.line(&format!("cargo:rerun-if-env-changed={MODE_ENV}"));
        let mode = match env(MODE_ENV) {
            Some(v) if !v.trim().is_empty() => Mode::parse(&v).ok_or_else(|| {
                Error::config(format!(
                    "{MODE_ENV}=`{v}` is not one of `off`, `check`, `sync`"
                ))
                .with_help(format!(
                    "unset {MODE_ENV} to use the mode the build script chose"
                ))
            })?,
            _ => self.mode,
        };
        let mut outcome = Outcome {
            mode,
            workspace_root: None,
            actions: Vec::new(),
            rerun_if_changed: Vec::new(),
            warnings: Vec::new(),
        };
        if mode == Mode::Off {
            return Ok(outcome);
        }
        let root = match &self.workspace_root {
            Some(r) if r.is_absolute() => r.clone(),
            Some(r) => {
                // Relative to the package, where Cargo runs build scripts.
                let base = match env("CARGO_MANIFEST_DIR") {
                    Some(d) => Utf8PathBuf::from(d),
                    None => std::env::current_dir()
                        .ok()
                        .and_then(|d| Utf8PathBuf::from_path_buf(d).ok())
                        .ok_or_else(|| {
                            Error::failed(format!(
                                "cannot resolve the relative workspace root `{r}`"
                            ))
                        })?,
                };
                crate::paths::normalize(&base.join(r))
            }
            None => {
                let dir = env("CARGO_MANIFEST_DIR").ok_or_else(|| {
                    Error::failed("`CARGO_MANIFEST_DIR` is not set: this is not a build script")
                        .with_help(
                            "run it from `build.rs`, or set the root with `.workspace_root(..)`",
                        )
                })?;
                find_workspace_root(Utf8Path::new(&dir))?
            }
        };
        outcome.workspace_root = Some(root.clone());
        let (loaded, plan) = crate::plan(&root)?;
        for warning in &plan.warnings {
            w.warning(warning);
            outcome.warnings.push(warning.clone());
        }

        match mode {
            Mode::Off => unreachable!("returned above"),
            Mode::Check => {
                let _shared = wait_for_sync(&root, &mut w)?;
                let report = crate::check(&plan)?;
                if !report.clean {
                    return Err(stale(&root, &report, "is stale"));
                }
            }
            Mode::Sync => {
                let mut progress = |a: &Action| w.progress(a);
                let report = materialize::sync(&plan, &self.options, &mut progress)?;
                for warning in &report.warnings {
                    w.warning(warning);
                    outcome.warnings.push(warning.clone());
                }
                outcome.actions = report.actions;
                if self.verify {
                    let check = crate::inspect::check(&plan)?;
                    if !check.clean {
                        return Err(stale(&root, &check, "is not clean after sync"));
                    }
                }
            }
        }

        // Printed last: sync may have created lock files that are inputs.
        outcome.rerun_if_changed = inputs(&loaded, &plan);
        for p in &outcome.rerun_if_changed {
            w.line(&format!("cargo:rerun-if-changed={p}"));
        }
        Ok(outcome)
    }
}

/// Writes Cargo's directives. Write errors are ignored: a closed stdout
/// cannot be reported anywhere else.
struct Directives<'a> {
    out: &'a mut dyn Write,
}

impl Directives<'_> {
    fn line(&mut self, l: &str) {
        let _ = writeln!(self.out, "{l}");
    }
    /// One `cargo:warning=` per line: Cargo ends a directive at the newline.
    fn warning(&mut self, text: &str) {
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            self.line(&format!("cargo:warning={l}"));
        }
    }
    /// Sync's progress, kept in the build script's output (`cargo build -vv`
    /// shows it live; `target/*/build/<crate>-*/output` keeps it).
    fn progress(&mut self, a: &Action) {
        let _ = writeln!(self.out, "hsm: {:>12} {}", a.action.verb(), a.message);
        let _ = self.out.flush();
    }
}

/// Prints an error as `cargo::error=` lines, one per line of its plain
/// rendering: Cargo ends a directive at the newline.
fn report_error(out: &mut dyn Write, e: &Error) {
    for l in e.plain().lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(out, "cargo::error={l}");
    }
}

/// The error of a stale environment: every finding, and the command to run.
fn stale(root: &Utf8Path, report: &crate::inspect::Report, what: &str) -> Error {
    let n = report.findings.len();
    let fixes: std::collections::BTreeSet<&str> =
        report.findings.iter().map(|f| f.fix.as_str()).collect();
    let fixes: Vec<String> = fixes.into_iter().map(|f| format!("`{f}`")).collect();
    Error::failed(format!(
        "the Python environment of workspace `{root}` {what}: {n} finding{}",
        if n == 1 { "" } else { "s" }
    ))
    .with_detail(
        report
            .findings
            .iter()
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .with_help(format!(
        "run {} in `{root}`, then build again (or set {MODE_ENV}=off to skip this step)",
        fixes.join(" or ")
    ))
}

/// Waits until no sync holds `.hsm/sync.lock`, holding it shared.
fn wait_for_sync(root: &Utf8Path, w: &mut Directives<'_>) -> Result<Option<File>> {
    crate::materialize::wait_for_sync(root, &mut |p| {
        w.progress(&Action {
            action: ActionKind::Block,
            component: "check".into(),
            message: format!("waiting for file lock on {p}"),
            path: Some(p.to_owned()),
            command: None,
            diff: None,
        })
    })
}

/// The Cargo workspace root of the package in `manifest_dir`: the package's
/// `package.workspace` when set, else the nearest directory at or above it
/// whose `Cargo.toml` has a `[workspace]` table, else the package itself.
/// Reads files only; Cargo has already validated this layout.
pub fn find_workspace_root(manifest_dir: &Utf8Path) -> Result<Utf8PathBuf> {
    let own = manifest_dir.join("Cargo.toml");
    let table = read_cargo_toml(&own)?.ok_or_else(|| {
        Error::failed(format!("`{own}` does not exist"))
            .with_help("`CARGO_MANIFEST_DIR` must be the directory of the package being built")
    })?;
    if table.contains_key("workspace") {
        return Ok(manifest_dir.to_owned());
    }
    if let Some(ws) = table
        .get("package")
        .and_then(|p| p.get("workspace"))
        .and_then(|w| w.as_str())
    {
        return Ok(crate::paths::normalize(&manifest_dir.join(ws)));
    }
    let mut dir = manifest_dir.parent();
    while let Some(d) = dir {
        if let Some(t) = read_cargo_toml(&d.join("Cargo.toml"))? {
            if t.contains_key("workspace") {
                return Ok(d.to_owned());
            }
        }
        dir = d.parent();
    }
    Ok(manifest_dir.to_owned())
}

fn read_cargo_toml(path: &Utf8Path) -> Result<Option<toml::Table>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => return Ok(None),
        Err(e) => return Err(Error::failed(format!("cannot read `{path}`: {e}"))),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| Error::config(format!("`{path}` is not valid TOML: {}", e.message())))
}

/// Lock and project files of a Python project directory that decide what
/// its environment holds.
const PROJECT_FILES: [&str; 5] = [
    "pyproject.toml",
    "uv.lock",
    "requirements.txt",
    "pixi.toml",
    "pixi.lock",
];

/// Everything that decides the materialized environments, as absolute paths
/// that exist (a missing path would make Cargo run the script every time):
/// the manifest and registry files, the registry directory (Cargo scans it,
/// so a new entry counts), env files, the project and lock files of local
/// services and libraries and of the root project, and `hsm.lock`. Sorted.
pub fn inputs(loaded: &Loaded, plan: &Plan) -> Vec<Utf8PathBuf> {
    let root = &plan.project.workspace_root;
    let mut v: Vec<Utf8PathBuf> = loaded.input_files();
    v.extend(plan.project.registry_dir.clone());
    for svc in &plan.services {
        v.extend(svc.env_files.iter().map(|f| root.join(&f.path)));
        if !svc.is_environment() {
            continue;
        }
        if let (Some(Source::Local { .. }), Some(t)) = (&svc.source, &svc.target_path) {
            v.extend(PROJECT_FILES.iter().map(|f| root.join(t).join(f)));
        }
    }
    for lib in &plan.libraries {
        if let (Source::Local { .. }, Some(t)) = (&lib.source, &lib.target_path) {
            v.push(root.join(t).join("pyproject.toml"));
        }
    }
    let python_project = root.join(&plan.project.python_project);
    v.push(python_project.join("pyproject.toml"));
    v.push(python_project.join("uv.lock"));
    v.push(crate::lock::HsmLock::path(root));
    let mut v: Vec<Utf8PathBuf> = v
        .into_iter()
        .map(|p| crate::paths::normalize(&p))
        .filter(|p| p.exists())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::tmp;

    fn write(p: &Utf8Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn workspace_root_is_the_nearest_workspace_above() {
        let (_d, r) = tmp();
        write(
            &r.join("Cargo.toml"),
            "[workspace]\nmembers = [\"crates/*\"]\n",
        );
        write(
            &r.join("crates/app/Cargo.toml"),
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n",
        );
        assert_eq!(find_workspace_root(&r.join("crates/app")).unwrap(), r);
        // A package that is its own workspace.
        write(
            &r.join("crates/solo/Cargo.toml"),
            "[package]\nname = \"solo\"\nversion = \"0.1.0\"\n[workspace]\n",
        );
        assert_eq!(
            find_workspace_root(&r.join("crates/solo")).unwrap(),
            r.join("crates/solo")
        );
        // `package.workspace` wins over the walk.
        write(&r.join("other/Cargo.toml"), "[workspace]\n");
        write(
            &r.join("crates/far/Cargo.toml"),
            "[package]\nname = \"far\"\nversion = \"0.1.0\"\nworkspace = \"../../other\"\n",
        );
        assert_eq!(
            find_workspace_root(&r.join("crates/far")).unwrap(),
            r.join("other")
        );
    }

    #[test]
    fn workspace_root_without_a_workspace_is_the_package() {
        let (_d, r) = tmp();
        write(
            &r.join("pkg/Cargo.toml"),
            "[package]\nname = \"p\"\nversion = \"0.1.0\"\n",
        );
        // Ancestors of the temp dir hold no `[workspace]` (or none at all).
        let found = find_workspace_root(&r.join("pkg")).unwrap();
        assert!(found == r.join("pkg") || !found.starts_with(&r), "{found}");
    }

    #[test]
    fn bad_cargo_toml_is_a_readable_error() {
        let (_d, r) = tmp();
        write(&r.join("Cargo.toml"), "[workspace\n");
        write(
            &r.join("a/Cargo.toml"),
            "[package]\nname = \"a\"\nversion = \"0.1.0\"\n",
        );
        let e = find_workspace_root(&r.join("a")).unwrap_err();
        assert!(e.plain().contains("is not valid TOML"), "{}", e.plain());
        let e = find_workspace_root(&r.join("missing")).unwrap_err();
        assert!(e.plain().contains("does not exist"), "{}", e.plain());
    }

    fn run(cfg: Config, env: &[(&str, &str)]) -> (Result<Outcome>, String) {
        let mut out = Vec::new();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = cfg.run_to(&mut out, &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        });
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn mode_override_and_off() {
        let (r, out) = run(sync(), &[(MODE_ENV, "off")]);
        let o = r.unwrap();
        assert_eq!(o.mode, Mode::Off);
        assert_eq!(out, "cargo:rerun-if-env-changed=CARGO_HSM_BUILD\n");

        let (r, out) = run(check(), &[(MODE_ENV, "always")]);
        let e = r.unwrap_err();
        assert!(
            e.plain().contains("`always` is not one of"),
            "{}",
            e.plain()
        );
        assert!(out.starts_with("cargo:rerun-if-env-changed=CARGO_HSM_BUILD\n"));

        let (r, _) = run(check(), &[]);
        assert!(r.unwrap_err().plain().contains("CARGO_MANIFEST_DIR"));
    }

    /// The build script's inputs in the workspace at `r`, relative to it.
    fn inputs_of(r: &Utf8Path) -> Vec<String> {
        let (loaded, plan) = crate::plan(r).unwrap();
        inputs(&loaded, &plan)
            .iter()
            .map(|p| p.strip_prefix(r).unwrap().to_string())
            .collect()
    }

    /// A workspace with one never-synced uv service and a crate `x`.
    fn stale_workspace() -> (tempfile::TempDir, Utf8PathBuf) {
        let (d, r) = tmp();
        write(&r.join("Cargo.toml"), "[workspace]\n");
        write(
            &r.join("hsm.toml"),
            "[project]\nname = \"t\"\n\n[registry.services.app]\nenv-file = [\"app.env\"]\n\n[registry.services.app.sources.prod]\ntype = \"local\"\npath = \"svc/app\"\n\n[registry.services.app.deployment-profiles.default]\nruntime = \"uv\"\n\n[services]\nstandalone = [\"app\"]\n",
        );
        write(&r.join("app.env"), "A=1\n");
        write(
            &r.join("svc/app/pyproject.toml"),
            "[project]\nname = \"app\"\nversion = \"0.1.0\"\n",
        );
        write(
            &r.join("crates/x/Cargo.toml"),
            "[package]\nname = \"x\"\nversion = \"0.1.0\"\n",
        );
        (d, r)
    }

    #[test]
    fn check_reports_inputs_and_staleness() {
        let (_d, r) = stale_workspace();
        let (res, out) = run(
            check(),
            &[("CARGO_MANIFEST_DIR", r.join("crates/x").as_str())],
        );
        let e = match res {
            Err(e) => e,
            Ok(_) => panic!("a never-synced workspace is stale:\n{out}"),
        };
        let msg = e.plain();
        assert!(msg.contains("is stale"), "{msg}");
        assert!(msg.contains("cargo hsm sync"), "{msg}");
        assert!(msg.contains("venv-missing"), "{msg}");
        assert!(
            !out.contains("rerun-if-changed"),
            "a failed run needs no inputs: Cargo runs it again anyway\n{out}"
        );
        let mut errors = Vec::new();
        report_error(&mut errors, &e);
        let errors = String::from_utf8(errors).unwrap();
        assert!(
            errors.starts_with("cargo::error=the Python environment of workspace")
                && errors.contains("\ncargo::error=  service:app [venv-missing]: expected")
                && errors.contains("\ncargo::error=  help: run `cargo hsm sync` in"),
            "{errors}"
        );
        // Check mode wrote nothing, not even `.hsm/`.
        assert!(!r.join(".hsm").exists());

        assert_eq!(
            inputs_of(&r),
            [
                "Cargo.toml",
                "app.env",
                "hsm.toml",
                "svc/app/pyproject.toml"
            ]
        );
    }

    #[test]
    fn relative_workspace_root_is_relative_to_the_package() {
        let (_d, r) = stale_workspace();
        let (res, _) = run(
            check().workspace_root("../.."),
            &[("CARGO_MANIFEST_DIR", r.join("crates/x").as_str())],
        );
        let e = res.unwrap_err().plain();
        assert!(e.contains(&format!("workspace `{r}` is stale")), "{e}");
    }

    /// A sync killed mid-way left its journal: check mode fails on it
    /// (`sync-interrupted`) and leaves it for the next sync to roll back.
    #[test]
    fn check_reports_an_interrupted_sync_and_writes_nothing() {
        let (_d, r) = stale_workspace();
        let log = r.join(crate::fs::SYNC_JOURNAL_DIR).join("log");
        write(&log, "{\"op\":\"created-dir\",\"path\":\"made\"}\n");
        std::fs::create_dir(r.join("made")).unwrap();
        let (res, _) = run(
            check(),
            &[("CARGO_MANIFEST_DIR", r.join("crates/x").as_str())],
        );
        let msg = res.unwrap_err().plain();
        assert!(msg.contains("sync-interrupted"), "{msg}");
        assert!(log.is_file(), "check rolled the journal back");
        assert!(r.join("made").is_dir(), "check removed what it records");
    }

    #[test]
    fn check_waits_for_a_running_sync() {
        let (_d, r) = stale_workspace();
        let held = crate::materialize::acquire_sync_lock(&r, &mut |_| {}).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = r.join("crates/x");
        std::thread::spawn(move || {
            let _ = tx.send(run(check(), &[("CARGO_MANIFEST_DIR", dir.as_str())]));
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(400))
                .is_err(),
            "check inspected while a sync held the lock"
        );
        drop(held);
        let (res, out) = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
        assert!(res.is_err());
        assert!(
            out.contains("hsm:     Blocking waiting for file lock on .hsm/sync.lock"),
            "{out}"
        );
    }

    #[test]
    fn inputs_cover_registry_directory_libraries_root_project_and_lock() {
        let (_d, r) = tmp();
        write(&r.join("Cargo.toml"), "[workspace]\n");
        write(
            &r.join("hsm.toml"),
            "[project]\nname = \"t\"\n\n[registry]\npath = \"reg\"\n\n[libraries]\nstandalone = [\"utils\"]\n\n[services]\nstandalone = [\"worker\", \"db\"]\n",
        );
        write(
            &r.join("reg/libraries/utils.toml"),
            "[sources.prod]\ntype = \"local\"\npath = \"libs/utils\"\n",
        );
        write(
            &r.join("reg/services/worker.toml"),
            "[sources.prod]\ntype = \"local\"\npath = \"svc/worker\"\n\n[deployment-profiles.default]\nruntime = \"venv\"\n",
        );
        // A container service: its files are not inputs.
        write(
            &r.join("reg/services/db.toml"),
            "[sources.prod]\ntype = \"build\"\npath = \"svc/db\"\n",
        );
        for f in [
            "libs/utils/pyproject.toml",
            "svc/worker/requirements.txt",
            "svc/db/pyproject.toml",
            "pyproject.toml",
            "uv.lock",
            "hsm.lock",
        ] {
            write(&r.join(f), "");
        }
        assert_eq!(
            inputs_of(&r),
            [
                "Cargo.toml",
                "hsm.lock",
                "hsm.toml",
                "libs/utils/pyproject.toml",
                "pyproject.toml",
                "reg",
                "reg/libraries/utils.toml",
                "reg/services/db.toml",
                "reg/services/worker.toml",
                "svc/worker/requirements.txt",
                "uv.lock",
            ]
        );
    }
}
