//! The sync engine: makes a [`Plan`] real on disk, as an explicit ordered
//! sequence of steps (see [`sync`]). Every file a step writes, or lets a tool
//! such as uv write, goes through one [`FileTxn`], and every git checkout it
//! moves through one directory journal: when a step fails, all of them are
//! restored and the error names the step.

pub mod envfile;
pub mod fingerprint;
pub mod git;
pub mod pool;
pub mod pyproject;
pub mod runtimes;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fs::FileTxn;
use crate::lock::{
    sha256_hex, HsmLock, LockedFile, LockedGit, LockedLibrary, LockedRoot, LockedService,
};
use crate::manifest::model::{RuntimeType, Source};
use crate::plan::{Plan, PlannedService};
use fingerprint::Fingerprints;
use runtimes::RuntimeCtx;

/// How `cargo hsm sync` was asked to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Fail if `hsm.lock` or a service's lock file would change.
    pub locked: bool,
    /// Use the commits in `hsm.lock` and the tools' lock files as they are;
    /// resolve nothing. Implies `locked`.
    pub frozen: bool,
    /// No network for git or uv.
    pub offline: bool,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
    /// How many environment syncs run at once; 0: the machine's available
    /// parallelism.
    pub jobs: usize,
}

impl SyncOptions {
    fn locked(&self) -> bool {
        self.locked || self.frozen
    }

    fn jobs(&self) -> usize {
        match self.jobs {
            0 => pool::default_jobs(),
            n => n,
        }
    }
}

/// What sync tells its caller while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// An action starts (`Syncing`), or happened (`Fresh`, `Writing`, …).
    Action(&'a Action),
    /// The `Syncing` action of `component` ended.
    Finished { component: &'a str, ok: bool },
}

/// What one action did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Waiting for another sync to finish.
    Block,
    Clone,
    /// A clean checkout whose `url` changed is cloned again.
    Reclone,
    Fetch,
    Checkout,
    /// Edit of hsm's entries in a `pyproject.toml`.
    Edit,
    /// A generated file written (env file, `hsm.lock`).
    Write,
    /// A generated file that no longer belongs to the selection.
    Remove,
    /// An environment created or updated by its runtime's tool.
    Sync,
    /// Nothing to do.
    Fresh,
}

impl ActionKind {
    /// The status verb, in cargo's voice.
    pub fn verb(self) -> &'static str {
        match self {
            ActionKind::Block => "Blocking",
            ActionKind::Clone | ActionKind::Reclone => "Cloning",
            ActionKind::Fetch => "Fetching",
            ActionKind::Checkout => "Checking out",
            ActionKind::Edit => "Updating",
            ActionKind::Write => "Writing",
            ActionKind::Remove => "Removing",
            ActionKind::Sync => "Syncing",
            ActionKind::Fresh => "Fresh",
        }
    }
}

/// One line of sync's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub action: ActionKind,
    /// `service:embedder`, `libraries`, `hsm.lock`, …
    pub component: String,
    /// The human text after the verb.
    pub message: String,
    /// The file or directory acted on, relative to the workspace root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Utf8PathBuf>,
    /// The command line a runtime ran (or would run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub actions: Vec<Action>,
    pub warnings: Vec<String>,
    /// The lock as written (or as it would be written).
    #[serde(skip)]
    pub lock: HsmLock,
}

/// Held while a sync runs; dropping it releases `.hsm/sync.lock`.
#[derive(Debug)]
pub struct SyncLock {
    _file: File,
}

/// Where the sync lock lives, relative to the workspace root.
pub const SYNC_LOCK: &str = ".hsm/sync.lock";

/// Variables that change what uv or pip install: part of every fingerprint,
/// so changing one makes the next sync run the tools again.
const TOOL_ENV_VARS: &[&str] = &[
    "UV_PYTHON",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_OFFLINE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
];

/// What hsm manages in the shared `pyproject.toml` (text at `abs`): the
/// selected libraries, and `[tool.uv.workspace].exclude` entries for the
/// isolated services its `members` globs would otherwise adopt.
pub fn root_wanted(plan: &Plan, text: &str, abs: &Utf8Path) -> Result<pyproject::Wanted> {
    let project_dir = &plan.project.python_project;
    let mut want = pyproject::Wanted::default();
    for l in &plan.libraries {
        want.dependencies.push(l.requirement.clone());
        if let Some(t) = pyproject::uv_source(&l.source, project_dir) {
            want.sources.push((l.name.clone(), t));
        }
    }
    // Isolated services matched by the root's uv workspace `members`
    // would be synced into the root venv: exclude them.
    if let Some((members, excludes)) = pyproject::workspace_globs(text, abs)? {
        let ours = pyproject::managed_excludes(text, abs)?;
        let user_excludes: Vec<&String> = excludes.iter().filter(|e| !ours.contains(e)).collect();
        for sv in plan.environment_services() {
            let Some(t) = &sv.target_path else { continue };
            let p = pyproject::relative_path(project_dir, t);
            if p.as_str() == "." || p.starts_with("..") || p.is_absolute() {
                continue;
            }
            let member = members.iter().any(|m| pyproject::glob_match(m, p.as_str()));
            let excluded = user_excludes
                .iter()
                .any(|e| pyproject::glob_match(e, p.as_str()));
            if member && !excluded && !want.workspace_exclude.contains(&p.to_string()) {
                want.workspace_exclude.push(p.to_string());
            }
        }
        want.workspace_exclude.sort();
    }
    Ok(want)
}

/// Takes `.hsm/sync.lock` so that only one sync (or build script) runs at a
/// time. Calls `on_wait` once before blocking on another holder.
pub fn acquire_sync_lock(
    workspace_root: &Utf8Path,
    on_wait: &mut dyn FnMut(&Utf8Path),
) -> Result<SyncLock> {
    let path = workspace_root.join(SYNC_LOCK);
    let dir = path.parent().expect("has a parent");
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::failed(format!("cannot create `{dir}`: {e}")))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        let _ = crate::fs::write_if_changed(&ignore, b"# Generated by cargo hsm.\n*\n", None);
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::failed(format!("cannot open `{path}`: {e}")))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            on_wait(Utf8Path::new(SYNC_LOCK));
            file.lock()
                .map_err(|e| Error::failed(format!("cannot lock `{path}`: {e}")))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error::failed(format!("cannot lock `{path}`: {e}")))
        }
    }
    Ok(SyncLock { _file: file })
}

/// A git checkout change, undone on rollback.
#[derive(Debug)]
enum DirChange {
    /// A fresh clone: removed.
    Created(Utf8PathBuf),
    /// An old checkout moved aside for a re-clone: put back.
    MovedAside {
        orig: Utf8PathBuf,
        aside: Utf8PathBuf,
    },
    /// HEAD moved: moved back.
    Moved {
        path: Utf8PathBuf,
        previous: git2::Oid,
    },
}

/// Runs `cargo hsm sync` for a resolved plan. `progress` sees every action
/// as it starts; the report holds them all.
///
/// The steps, in order:
/// 1. take `.hsm/sync.lock`;
/// 2. **git sources**: clone or move each git-sourced service's checkout;
/// 3. **root project**: hsm's entries in the shared `pyproject.toml`
///    (libraries, and uv workspace exclusions for isolated services);
/// 4. **environment services**: env file, then the runtime adapter (uv, venv, pixi);
/// 5. **libraries**: `uv sync` in the shared project;
/// 6. *(compose: see the marked place in [`Syncer::run_steps`])*;
/// 7. **hsm.lock**: written, or compared with `--locked` / `--frozen`.
pub fn sync(
    plan: &Plan,
    opts: &SyncOptions,
    progress: &mut dyn FnMut(&Action),
) -> Result<SyncReport> {
    sync_with_progress(plan, opts, &mut |p| {
        if let Progress::Action(a) = p {
            progress(a)
        }
    })
}

/// [`sync`], also telling when each running action ends (for a progress
/// display).
pub fn sync_with_progress(
    plan: &Plan,
    opts: &SyncOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<SyncReport> {
    let root = plan.project.workspace_root.clone();
    let _guard = if opts.dry_run {
        None
    } else {
        let mut on_wait = |p: &Utf8Path| {
            progress(Progress::Action(&Action {
                action: ActionKind::Block,
                component: "sync".into(),
                message: format!("waiting for file lock on {p}"),
                path: Some(p.to_owned()),
                command: None,
            }))
        };
        Some(acquire_sync_lock(&root, &mut on_wait)?)
    };
    let previous = HsmLock::read(&HsmLock::path(&root))?;
    let fingerprints = Fingerprints::load(&root);
    let mut s = Syncer {
        fingerprints,
        new_fingerprints: Fingerprints::default(),
        plan,
        opts: *opts,
        root,
        txn: FileTxn::new(),
        dirs: Vec::new(),
        previous,
        lock: HsmLock::new(),
        commits: BTreeMap::new(),
        prefetched: BTreeMap::new(),
        lockfiles: BTreeMap::new(),
        root_edited: false,
        root_exists: false,
        actions: Vec::new(),
        warnings: Vec::new(),
        progress,
    };
    match s.run_steps() {
        Ok(()) => {
            let Syncer {
                txn,
                dirs,
                lock,
                actions,
                warnings,
                new_fingerprints,
                root,
                ..
            } = s;
            txn.commit();
            if !opts.dry_run {
                // A cache: failing to write it only costs a real sync next time.
                let _ = new_fingerprints.save(&root);
            }
            for d in dirs {
                if let DirChange::MovedAside { aside, .. } = d {
                    let _ = std::fs::remove_dir_all(&aside);
                }
            }
            Ok(SyncReport {
                dry_run: opts.dry_run,
                actions,
                warnings,
                lock,
            })
        }
        Err((step, e)) => {
            let Syncer {
                txn, dirs, root, ..
            } = s;
            let touched: Vec<Utf8PathBuf> = txn
                .paths()
                .map(|p| crate::paths::relative_to(p, &root))
                .collect();
            let failed = txn.rollback();
            let dir_failed = rollback_dirs(dirs);
            Err(annotate(e, step, &touched, &failed, &dir_failed))
        }
    }
}

fn rollback_dirs(dirs: Vec<DirChange>) -> Vec<String> {
    let mut failed = Vec::new();
    for d in dirs.into_iter().rev() {
        let r: std::result::Result<(), String> = match &d {
            DirChange::Created(p) => std::fs::remove_dir_all(p).map_err(|e| format!("{p}: {e}")),
            DirChange::MovedAside { orig, aside } => {
                let _ = std::fs::remove_dir_all(orig);
                std::fs::rename(aside, orig).map_err(|e| format!("{orig}: {e}"))
            }
            DirChange::Moved { path, previous } => git2::Repository::open(path)
                .map_err(|e| e.message().to_string())
                .and_then(|r| git::checkout(&r, *previous).map_err(|e| e.to_string()))
                .map_err(|e| format!("{path}: {e}")),
        };
        if let Err(e) = r {
            failed.push(e);
        }
    }
    failed
}

/// Names the failed step and what was restored.
fn annotate(
    mut e: Error,
    step: &str,
    touched: &[Utf8PathBuf],
    failed: &[(Utf8PathBuf, std::io::Error)],
    dir_failed: &[String],
) -> Error {
    let mut note = if touched.is_empty() {
        "nothing was changed".to_string()
    } else {
        format!(
            "every file sync had changed was restored ({})",
            touched
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if !failed.is_empty() || !dir_failed.is_empty() {
        note = format!(
            "restoring failed for: {}",
            failed
                .iter()
                .map(|(p, e)| format!("`{p}` ({e})"))
                .chain(dir_failed.iter().cloned())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match &mut e {
        Error::Config(d) => {
            d.message = format!("sync failed in step `{step}`: {}\n{note}", d.message);
        }
        Error::Failed(f) => {
            f.message = format!("sync failed in step `{step}`: {}", f.message);
            let detail = f.detail.take().unwrap_or_default();
            let detail = detail.trim_end();
            f.detail = Some(if detail.is_empty() {
                note
            } else {
                format!("{detail}\n{note}")
            });
        }
    }
    e
}

type StepResult = std::result::Result<(), (&'static str, Error)>;

struct Syncer<'a> {
    plan: &'a Plan,
    opts: SyncOptions,
    /// Absolute workspace root.
    root: Utf8PathBuf,
    txn: FileTxn,
    dirs: Vec<DirChange>,
    previous: Option<HsmLock>,
    /// The lock being built.
    lock: HsmLock,
    /// Resolved commit of each git-sourced service.
    commits: BTreeMap<String, String>,
    /// Clones made in parallel ahead of the git step, by service name.
    prefetched: BTreeMap<String, tempfile::TempDir>,
    /// Each environment service's own lock file.
    lockfiles: BTreeMap<String, LockedFile>,
    root_edited: bool,
    root_exists: bool,
    actions: Vec<Action>,
    warnings: Vec<String>,
    progress: &'a mut dyn FnMut(Progress<'_>),
    /// What the last successful sync left (`.hsm/fingerprints.json`).
    fingerprints: Fingerprints,
    /// What this sync leaves.
    new_fingerprints: Fingerprints,
}

/// An environment service after the first pass of
/// [`Syncer::environment_services`].
struct PreparedService<'p> {
    sv: &'p PlannedService,
    runtime: RuntimeType,
    /// `service:<name>`.
    component: String,
    target_rel: Utf8PathBuf,
    /// Absolute.
    target: Utf8PathBuf,
    previous: Option<LockedService>,
    /// The `Syncing` action when the runtime must run.
    job: Option<Action>,
}

/// One error for several failed services, each with its whole message.
fn combine_failures(mut failed: Vec<(String, Error)>) -> Error {
    if failed.len() == 1 {
        return failed.pop().expect("one").1;
    }
    let names: Vec<String> = failed.iter().map(|(n, _)| format!("`{n}`")).collect();
    let detail = failed
        .iter()
        .map(|(_, e)| {
            e.plain()
                .lines()
                .enumerate()
                .map(|(i, l)| format!("{}{l}", if i == 0 { "- " } else { "  " }))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n");
    Error::failed(format!(
        "{} services failed to sync: {}",
        failed.len(),
        names.join(", ")
    ))
    .with_detail(detail)
}

impl Syncer<'_> {
    fn run_steps(&mut self) -> StepResult {
        fn step(name: &'static str, r: Result<()>) -> StepResult {
            r.map_err(|e| (name, e))
        }
        step("git sources", self.git_sources())?;
        step("root project", self.root_project())?;
        step("environment services", self.environment_services())?;
        step("libraries", self.libraries())?;
        step("compose", self.compose())?;
        step("stale files", self.stale_files())?;
        step("hsm.lock", self.write_lock())?;
        Ok(())
    }

    fn act(
        &mut self,
        action: ActionKind,
        component: impl Into<String>,
        message: impl Into<String>,
        path: Option<&Utf8Path>,
        command: Option<String>,
    ) {
        let a = Action {
            action,
            component: component.into(),
            message: message.into(),
            path: path.map(|p| p.to_owned()),
            command,
        };
        (self.progress)(Progress::Action(&a));
        self.actions.push(a);
    }

    /// Fetches `url` into the checkout of `sv`, reporting it.
    fn fetch(
        &mut self,
        repo: &git2::Repository,
        sv: &PlannedService,
        component: &str,
        url: &str,
        checkout: &Utf8Path,
    ) -> Result<()> {
        self.act(
            ActionKind::Fetch,
            component,
            format!("{} ({url})", sv.name),
            Some(checkout),
            None,
        );
        git::fetch(repo, url)
    }

    fn write_file(&mut self, rel: &Utf8Path, contents: &[u8], mode: Option<u32>) -> Result<bool> {
        let abs = self.root.join(rel);
        if self.opts.dry_run {
            return Ok(std::fs::read(&abs).ok().as_deref() != Some(contents));
        }
        self.txn
            .write(&abs, contents, mode)
            .map_err(|e| Error::failed(format!("cannot write `{rel}`: {e}")))
    }

    // ------------------------------------------------------------ git

    fn git_sources(&mut self) -> Result<()> {
        let plan = self.plan;
        self.prefetch_clones();
        for sv in &plan.services {
            let (Some(Source::Git { url, reference, .. }), Some(checkout)) =
                (&sv.source, &sv.checkout_path)
            else {
                continue;
            };
            if sv.runtime().is_none() {
                continue;
            }
            self.git_service(sv, url, reference.as_deref(), checkout)?;
        }
        Ok(())
    }

    /// Clones the git services that have no checkout yet, up to `--jobs` at
    /// a time, into temporary directories; `git_service` then moves each into
    /// place in plan order (or drops it, removing it, if it is not used).
    /// Network-bound clones overlap; every decision stays sequential.
    fn prefetch_clones(&mut self) {
        if self.opts.dry_run || self.opts.offline {
            return;
        }
        let todo: Vec<(String, String, Utf8PathBuf)> = self
            .plan
            .services
            .iter()
            .filter(|sv| sv.runtime().is_some())
            .filter_map(|sv| match (&sv.source, &sv.checkout_path) {
                (Some(Source::Git { url, .. }), Some(co)) if !self.root.join(co).exists() => {
                    Some((sv.name.clone(), url.clone(), self.root.join(co)))
                }
                _ => None,
            })
            .collect();
        if todo.len() < 2 {
            return;
        }
        let results = pool::run(
            todo.len(),
            self.opts.jobs(),
            |i| git::clone_into_temp(&todo[i].1, &todo[i].2),
            |_| {},
        );
        for ((name, _, _), r) in todo.into_iter().zip(results) {
            // A failed clone is retried (and reported) by `git_service`.
            if let Ok(tmp) = r {
                self.prefetched.insert(name, tmp);
            }
        }
    }

    fn locked_git(&self, name: &str) -> Option<&LockedGit> {
        self.previous
            .as_ref()
            .and_then(|l| l.service(name))
            .and_then(|s| s.git.as_ref())
    }

    /// The commit `--frozen` must use.
    fn frozen_commit(
        &self,
        sv: &PlannedService,
        url: &str,
        reference: Option<&str>,
    ) -> Result<git2::Oid> {
        let help = "run `cargo hsm sync` without `--frozen` to resolve it and update `hsm.lock`";
        let Some(g) = self.locked_git(&sv.name) else {
            return Err(Error::failed(format!(
                "`--frozen` needs the commit of service `{}` from `hsm.lock`, which has none",
                sv.name
            ))
            .with_help(help));
        };
        if g.url != url || g.reference.as_deref() != reference {
            return Err(Error::failed(format!(
                "`hsm.lock` locks service `{}` to `{}` @ {}, but the manifest asks for `{url}` @ {}",
                sv.name,
                g.url,
                g.reference.as_deref().unwrap_or("(default branch)"),
                reference.unwrap_or("(default branch)")
            ))
            .with_help(help));
        }
        git2::Oid::from_str(&g.commit).map_err(|_| {
            Error::failed(format!(
                "`hsm.lock` has an invalid commit `{}` for service `{}`",
                g.commit, sv.name
            ))
        })
    }

    /// With `--locked`, the commit must be the one in `hsm.lock`.
    fn check_locked_commit(&self, sv: &PlannedService, oid: git2::Oid) -> Result<()> {
        if !self.opts.locked || self.opts.frozen {
            return Ok(());
        }
        let locked = self.locked_git(&sv.name).map(|g| g.commit.clone());
        if locked.as_deref() != Some(oid.to_string().as_str()) {
            return Err(Error::failed(format!(
                "`--locked`: service `{}` resolves to commit {}, but `hsm.lock` has {}",
                sv.name,
                oid,
                locked.as_deref().unwrap_or("no commit")
            ))
            .with_help("run `cargo hsm sync` without `--locked` to update `hsm.lock`"));
        }
        Ok(())
    }

    /// Files in a checkout that hsm wrote itself (their hash is the one
    /// recorded in `hsm.lock`) or that are derived (venvs, bytecode).
    fn is_ours(&self, checkout: &Utf8Path, path_in_repo: &Utf8Path) -> bool {
        if path_in_repo
            .components()
            .any(|c| matches!(c.as_str(), ".venv" | "__pycache__" | ".pixi"))
            || path_in_repo.extension() == Some("pyc")
        {
            return true;
        }
        let rel = checkout.join(path_in_repo);
        let Some(prev) = &self.previous else {
            return false;
        };
        match (
            prev.recorded_hash(&rel),
            std::fs::read(self.root.join(&rel)),
        ) {
            (Some(h), Ok(bytes)) => sha256_hex(&bytes) == h,
            _ => false,
        }
    }

    /// Stops when the checkout holds anything sync would lose.
    fn ensure_clean(
        &self,
        sv: &PlannedService,
        repo: &git2::Repository,
        checkout: &Utf8Path,
        why: &str,
    ) -> Result<()> {
        let is_ours = |p: &Utf8Path| self.is_ours(checkout, p);
        let mut lost = git::local_changes(repo, &is_ours)?;
        lost.extend(git::unpushed(repo)?);
        if lost.is_empty() {
            return Ok(());
        }
        Err(Error::failed(format!(
            "the checkout of service `{}` at `{checkout}` has local work that {why} would lose; nothing was changed there",
            sv.name
        ))
        .with_detail(
            lost.iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .with_help(format!(
            "commit and push the work (or stash or discard it), or move `{checkout}` elsewhere; then run `cargo hsm sync` again"
        )))
    }

    fn git_service(
        &mut self,
        sv: &PlannedService,
        url: &str,
        reference: Option<&str>,
        checkout: &Utf8Path,
    ) -> Result<()> {
        let abs = self.root.join(checkout);
        let component = format!("service:{}", sv.name);
        let shown_ref = reference.unwrap_or("default branch");
        let frozen = if self.opts.frozen {
            Some(self.frozen_commit(sv, url, reference)?)
        } else {
            None
        };
        let repo = git::open(&abs)?;
        let reclone = match &repo {
            None => false,
            Some(r) => git::origin_url(r).as_deref() != Some(url),
        };
        if repo.is_none() || reclone {
            if repo.is_none() && abs.exists() {
                let empty = std::fs::read_dir(&abs)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if !empty {
                    return Err(Error::failed(format!(
                        "`{checkout}` exists but is not a git checkout, so service `{}` cannot be cloned there",
                        sv.name
                    ))
                    .with_help(format!("move `{checkout}` elsewhere, then run `cargo hsm sync` again")));
                }
            }
            if let (Some(r), true) = (&repo, reclone) {
                self.ensure_clean(sv, r, checkout, "cloning the new `url`")?;
            }
            if self.opts.offline {
                return Err(Error::failed(format!(
                    "service `{}` needs a clone of `{url}`, but `--offline` forbids the network",
                    sv.name
                ))
                .with_help("run `cargo hsm sync` once without `--offline`"));
            }
            let kind = if reclone {
                ActionKind::Reclone
            } else {
                ActionKind::Clone
            };
            self.act(
                kind,
                &component,
                format!("{} ({url} @ {shown_ref})", sv.name),
                Some(checkout),
                None,
            );
            if self.opts.dry_run {
                if let Some(g) = self.locked_git(&sv.name) {
                    self.commits.insert(sv.name.clone(), g.commit.clone());
                }
                return Ok(());
            }
            drop(repo);
            if reclone {
                let trash = self.root.join(".hsm").join("trash");
                std::fs::create_dir_all(&trash)
                    .map_err(|e| Error::failed(format!("cannot create `{trash}`: {e}")))?;
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let aside = trash.join(format!("{}-{stamp}", sv.name));
                std::fs::rename(&abs, &aside)
                    .map_err(|e| Error::failed(format!("cannot move `{checkout}` aside: {e}")))?;
                self.dirs.push(DirChange::MovedAside {
                    orig: abs.clone(),
                    aside,
                });
            } else if abs.exists() {
                let _ = std::fs::remove_dir(&abs);
            }
            let repo = match self.prefetched.remove(&sv.name) {
                Some(tmp) => git::adopt(tmp, url, &abs)?,
                None => git::clone(url, &abs)?,
            };
            if !reclone {
                self.dirs.push(DirChange::Created(abs.clone()));
            }
            let oid = match frozen {
                Some(o) => o,
                None => git::resolve(&repo, reference)
                    .map(|(o, _)| o)
                    .ok_or_else(|| ref_not_found(sv, url, reference))?,
            };
            self.check_locked_commit(sv, oid)?;
            git::checkout(&repo, oid)?;
            self.commits.insert(sv.name.clone(), oid.to_string());
            return Ok(());
        }

        let repo = repo.expect("checked above");
        let target = match frozen {
            Some(o) => {
                if !git::has_commit(&repo, o) {
                    if self.opts.offline || self.opts.dry_run {
                        return Err(Error::failed(format!(
                            "the locked commit {o} of service `{}` is not in `{checkout}`, and the network is off",
                            sv.name
                        )));
                    }
                    self.fetch(&repo, sv, &component, url, checkout)?;
                }
                o
            }
            None => {
                let mut resolved = git::resolve(&repo, reference);
                let needs_fetch = resolved.is_none_or(|(_, k)| k.moves());
                if needs_fetch && !self.opts.offline && !self.opts.dry_run {
                    self.fetch(&repo, sv, &component, url, checkout)?;
                    resolved = git::resolve(&repo, reference);
                }
                match resolved {
                    Some((o, _)) => o,
                    None if self.opts.dry_run => {
                        self.act(
                            ActionKind::Checkout,
                            &component,
                            format!("{} ({shown_ref}, after a fetch)", sv.name),
                            Some(checkout),
                            None,
                        );
                        return Ok(());
                    }
                    None => return Err(ref_not_found(sv, url, reference)),
                }
            }
        };
        self.check_locked_commit(sv, target)?;
        let head = git::head_commit(&repo);
        if head == Some(target) {
            self.act(
                ActionKind::Fresh,
                &component,
                format!("{} ({shown_ref} @ {})", sv.name, git::short(target)),
                Some(checkout),
                None,
            );
            self.commits.insert(sv.name.clone(), target.to_string());
            return Ok(());
        }
        self.ensure_clean(sv, &repo, checkout, &format!("checking out {shown_ref}"))?;
        self.act(
            ActionKind::Checkout,
            &component,
            format!("{} ({shown_ref} @ {})", sv.name, git::short(target)),
            Some(checkout),
            None,
        );
        if !self.opts.dry_run {
            git::checkout(&repo, target)?;
            if let Some(h) = head {
                self.dirs.push(DirChange::Moved {
                    path: abs.clone(),
                    previous: h,
                });
            }
        }
        self.commits.insert(sv.name.clone(), target.to_string());
        Ok(())
    }

    // ------------------------------------------------------------ root project

    fn root_pyproject(&self) -> Utf8PathBuf {
        crate::paths::normalize(&self.plan.project.python_project.join("pyproject.toml"))
    }

    fn root_project(&mut self) -> Result<()> {
        let plan = self.plan;
        let rel = self.root_pyproject();
        let abs = self.root.join(&rel);
        let text = match std::fs::read_to_string(&abs) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if plan.libraries.is_empty() {
                    return Ok(());
                }
                let names: Vec<String> = plan
                    .libraries
                    .iter()
                    .map(|l| format!("`{}`", l.name))
                    .collect();
                return Err(Error::config(format!(
                    "the libraries {} go into the shared project at `{}`, but `{rel}` does not exist",
                    names.join(", "),
                    plan.project.python_project
                ))
                .with_help(format!(
                    "create it with `uv init --bare {}` (or set `[project] python-project` in the manifest)",
                    plan.project.python_project
                )));
            }
            Err(e) => return Err(Error::failed(format!("cannot read `{rel}`: {e}"))),
        };
        self.root_exists = true;
        if plan.project.package_manager != "uv" {
            return Err(Error::config(format!(
                "`[libraries] package-manager = \"{}\"` is not supported",
                plan.project.package_manager
            ))
            .with_help("use `package-manager = \"uv\"`"));
        }
        let want = root_wanted(plan, &text, &abs)?;
        let edited = pyproject::apply(&text, &abs, &want)?;
        self.warnings.extend(edited.warnings.iter().cloned());
        if edited.text != text {
            self.act(
                ActionKind::Edit,
                "libraries",
                format!("{rel} (hsm's entries)"),
                Some(&rel),
                None,
            );
            self.write_file(&rel, edited.text.as_bytes(), None)?;
            self.root_edited = true;
        }
        Ok(())
    }

    // ------------------------------------------------------------ services

    /// Three passes over the environment services: prepare each in plan
    /// order (env file, hsm's edits, fingerprint: `Fresh` or a job), run the
    /// jobs' runtimes on up to `--jobs` threads, then record each service's
    /// lock file and new fingerprint in plan order.
    fn environment_services(&mut self) -> Result<()> {
        let plan = self.plan;
        let mut prepared = Vec::new();
        for sv in plan.environment_services() {
            if let Some(p) = self.prepare_service(sv)? {
                prepared.push(p);
            }
        }
        let jobs: Vec<(&PreparedService, &Action)> = prepared
            .iter()
            .filter_map(|p| p.job.as_ref().map(|a| (p, a)))
            .collect();
        let (root, opts) = (self.root.clone(), self.opts);
        let progress = &mut self.progress;
        let results = pool::run(
            jobs.len(),
            opts.jobs(),
            |i| {
                let (p, _) = jobs[i];
                let adapter = runtimes::adapter(p.runtime).expect("environment runtime");
                let mut txn = FileTxn::new();
                let mut ctx = RuntimeCtx {
                    workspace_root: &root,
                    service: p.sv,
                    opts: &opts,
                    txn: &mut txn,
                    previous: p.previous.as_ref(),
                    edited: true,
                };
                let r = adapter.sync(&mut ctx, &p.target).map(|_| ());
                (r, txn)
            },
            |e| match e {
                pool::Event::Started(i) => progress(Progress::Action(jobs[i].1)),
                pool::Event::Finished(i, (r, _)) => progress(Progress::Finished {
                    component: &jobs[i].1.component,
                    ok: r.is_ok(),
                }),
            },
        );
        let mut failed = Vec::new();
        for ((p, _), (r, txn)) in jobs.iter().zip(results) {
            self.txn.absorb(txn);
            if let Err(e) = r {
                failed.push((p.sv.name.clone(), e));
            }
        }
        if !failed.is_empty() {
            return Err(combine_failures(failed));
        }
        for p in &prepared {
            self.record_service(p);
        }
        Ok(())
    }

    /// The fingerprint of a service as it is on disk now.
    fn service_fingerprint(&self, sv: &PlannedService, target: &Utf8Path) -> Option<String> {
        let runtime = sv.runtime().expect("environment services are managed");
        let adapter = runtimes::adapter(runtime).expect("environment runtime");
        let mut h = fingerprint::Hasher::new();
        h.value("plan", sv);
        h.text("frozen", if self.opts.frozen { "1" } else { "0" });
        h.tool(adapter.tool());
        h.env_vars(TOOL_ENV_VARS);
        adapter.fingerprint(&mut h, target);
        h.finish()
    }

    /// Everything before the runtime runs; `None` when there is nothing to
    /// record (a dry run before the clone).
    fn prepare_service<'p>(
        &mut self,
        sv: &'p PlannedService,
    ) -> Result<Option<PreparedService<'p>>> {
        let runtime = sv.runtime().expect("environment services are managed");
        let adapter = runtimes::adapter(runtime).expect("environment runtime");
        let component = format!("service:{}", sv.name);
        let Some(target_rel) = sv.target_path.clone() else {
            return Err(Error::config(format!(
                "service `{}` runs with `{runtime}` but has no source path",
                sv.name
            )));
        };
        let target = self.root.join(&target_rel);

        // The resolved environment, for `run` and for the user.
        let env_rel = envfile::env_file_path(&sv.name);
        let env_text = envfile::render_env(&self.root, sv)?;
        self.lock.record_file(env_rel.clone(), env_text.as_bytes());
        if self.write_file(&env_rel, env_text.as_bytes(), Some(0o600))? {
            self.act(
                ActionKind::Write,
                &component,
                env_rel.to_string(),
                Some(&env_rel),
                None,
            );
        }

        if !target.is_dir() {
            if self.opts.dry_run && sv.checkout_path.is_some() {
                self.act(
                    ActionKind::Sync,
                    &component,
                    format!("{} ({runtime}, {target_rel})", sv.name),
                    Some(&target_rel),
                    Some(format!("{} (after the clone)", adapter.tool())),
                );
                return Ok(None);
            }
            let help = match &sv.source {
                Some(Source::Local { .. }) => format!(
                    "check the `path` of the service's `{}` source in the registry, or create `{target_rel}`",
                    sv.mode
                ),
                Some(Source::Git { subdirectory: Some(sub), .. }) => {
                    format!("the repository has no directory `{sub}`; check `subdirectory`")
                }
                _ => "check the service's source in the registry".to_string(),
            };
            return Err(Error::config(format!(
                "service `{}` lives at `{target_rel}`, which does not exist",
                sv.name
            ))
            .with_help(help));
        }

        let previous = self
            .previous
            .as_ref()
            .and_then(|l| l.service(&sv.name))
            .cloned();
        let opts = self.opts;
        // Nothing changed since the last successful sync: no process spawned.
        let unchanged = !opts.dry_run
            && self
                .fingerprints
                .unchanged(&component, self.service_fingerprint(sv, &target));
        let mut ctx = RuntimeCtx {
            workspace_root: &self.root,
            service: sv,
            opts: &opts,
            txn: &mut self.txn,
            previous: previous.as_ref(),
            edited: false,
        };
        let edits = adapter.edits(&ctx, &target)?;
        let mut edit_actions = Vec::new();
        for e in &edits {
            let rel = crate::paths::relative_to(&e.path, &self.root);
            if !opts.dry_run {
                ctx.txn
                    .write(&e.path, e.contents.as_bytes(), None)
                    .map_err(|err| Error::failed(format!("cannot write `{rel}`: {err}")))?;
            }
            ctx.edited = true;
            edit_actions.push((rel, e.warnings.clone()));
        }
        let describe = adapter.describe(&ctx, &target);
        let fresh =
            !opts.dry_run && (edits.is_empty() && unchanged || adapter.is_fresh(&ctx, &target)?);
        for (rel, warnings) in edit_actions {
            self.act(
                ActionKind::Edit,
                &component,
                format!("{rel} (hsm's entries)"),
                Some(&rel),
                None,
            );
            self.warnings.extend(warnings);
        }
        if sv.checkout_path.is_some() && runtime == RuntimeType::Uv {
            // Recorded so that a later sync knows this edit is hsm's, not the user's.
            let pp_rel = target_rel.join("pyproject.toml");
            if let Ok(bytes) = std::fs::read(self.root.join(&pp_rel)) {
                if !edits.is_empty()
                    || self
                        .previous
                        .as_ref()
                        .and_then(|p| p.recorded_hash(&pp_rel))
                        .is_some()
                {
                    let bytes = match edits.iter().find(|e| e.path.ends_with("pyproject.toml")) {
                        Some(e) if opts.dry_run => e.contents.as_bytes().to_vec(),
                        _ => bytes,
                    };
                    self.lock.record_file(pp_rel, &bytes);
                }
            }
        }

        let mut job = None;
        if fresh {
            self.act(
                ActionKind::Fresh,
                &component,
                format!("{} ({runtime})", sv.name),
                Some(&target_rel),
                None,
            );
        } else {
            let a = Action {
                action: ActionKind::Sync,
                component: component.clone(),
                message: format!("{} ({runtime}, {target_rel})", sv.name),
                path: Some(target_rel.clone()),
                command: Some(describe),
            };
            self.actions.push(a.clone());
            if opts.dry_run {
                (self.progress)(Progress::Action(&a));
            } else {
                // Announced when its job starts.
                job = Some(a);
            }
        }
        Ok(Some(PreparedService {
            sv,
            runtime,
            component,
            target_rel,
            target,
            previous,
            job,
        }))
    }

    /// After the runtimes ran: the service's lock file for `hsm.lock`, and
    /// its new fingerprint.
    fn record_service(&mut self, p: &PreparedService) {
        let adapter = runtimes::adapter(p.runtime).expect("environment runtime");
        if !self.opts.dry_run {
            if let Some(fp) = self.service_fingerprint(p.sv, &p.target) {
                self.new_fingerprints.insert(p.component.clone(), fp);
            }
        }
        if let Some(lf) = adapter.lockfile(&p.target) {
            let rel = p.target_rel.join(&lf);
            match std::fs::read(self.root.join(&rel)) {
                Ok(bytes) => {
                    self.lockfiles.insert(
                        p.sv.name.clone(),
                        LockedFile {
                            path: rel,
                            sha256: sha256_hex(&bytes),
                        },
                    );
                }
                Err(_) if self.opts.dry_run => {
                    if let Some(f) = p.previous.as_ref().and_then(|x| x.lockfile.clone()) {
                        self.lockfiles.insert(p.sv.name.clone(), f);
                    }
                }
                Err(_) => {}
            }
        }
    }

    // ------------------------------------------------------------ libraries

    /// The shared project as it is on disk now (`abs_dir`: its directory).
    fn libraries_fingerprint(&self, abs_dir: &Utf8Path) -> Option<String> {
        let mut h = fingerprint::Hasher::new();
        h.value("plan", &self.plan.libraries);
        h.text("frozen", if self.opts.frozen { "1" } else { "0" });
        h.tool("uv");
        h.env_vars(TOOL_ENV_VARS);
        for f in ["pyproject.toml", "uv.lock", ".python-version"] {
            h.file(&abs_dir.join(f));
        }
        h.venv(&abs_dir.join(".venv"));
        h.finish()
    }

    fn libraries(&mut self) -> Result<()> {
        if !self.root_exists {
            return Ok(());
        }
        let project_dir = self.plan.project.python_project.clone();
        let abs_dir = crate::paths::normalize(&self.root.join(&project_dir));
        let lock_rel = crate::paths::normalize(&project_dir.join("uv.lock"));
        let lock_abs = self.root.join(&lock_rel);
        let flags = runtimes::uv_mode_flags(&self.opts);
        let describe = format!("uv sync {}", flags.join(" "))
            .trim_end()
            .to_string();
        // Fresh when nothing changed since the last successful sync: no
        // process spawned.
        let fresh = !self.opts.dry_run
            && !self.root_edited
            && self
                .fingerprints
                .unchanged("libraries", self.libraries_fingerprint(&abs_dir));
        if fresh {
            self.act(
                ActionKind::Fresh,
                "libraries",
                format!("libraries (uv, {project_dir})"),
                Some(&project_dir),
                None,
            );
        } else {
            self.act(
                ActionKind::Sync,
                "libraries",
                format!("libraries (uv, {project_dir})"),
                Some(&project_dir),
                Some(describe),
            );
            if !self.opts.dry_run {
                let uv = runtimes::find_tool("uv", "libraries", UV_HINT).map_err(|e| {
                    Error::failed(format!(
                        "the shared project `{project_dir}` needs `uv`, which was not found on `PATH`"
                    ))
                    .with_help(UV_HINT)
                    .with_detail(e.message().to_string())
                })?;
                self.txn
                    .snapshot(&lock_abs)
                    .map_err(|e| Error::failed(format!("cannot read `{lock_rel}`: {e}")))?;
                let mut args = vec!["sync".to_string()];
                args.extend(flags);
                runtimes::run_tool("the shared project", &uv, &args, &abs_dir, true)?;
                (self.progress)(Progress::Finished {
                    component: "libraries",
                    ok: true,
                });
            }
        }
        if !self.opts.dry_run {
            if let Some(fp) = self.libraries_fingerprint(&abs_dir) {
                self.new_fingerprints.insert("libraries", fp);
            }
        }
        let lockfile = std::fs::read(&lock_abs).ok().map(|b| LockedFile {
            path: lock_rel.clone(),
            sha256: sha256_hex(&b),
        });
        self.lock.root = Some(LockedRoot {
            python_project: project_dir,
            lockfile,
        });
        Ok(())
    }

    // ------------------------------------------------------------ lock

    /// Env files of services that left the selection.
    /// The compose file: exactly the container services, or no file at all.
    fn compose(&mut self) -> Result<()> {
        let plan = self.plan;
        let rel = plan.project.compose_file.clone();
        let rendered = crate::compose::render(plan);
        if let Some(text) = &rendered {
            self.lock.record_file(rel.clone(), text.as_bytes());
        }
        let n = plan.container_services().count();
        let what = format!(
            "{rel} ({n} container service{})",
            if n == 1 { "" } else { "s" }
        );
        if self.opts.dry_run {
            match crate::compose::check(plan)? {
                crate::compose::ComposeStatus::Fresh => {
                    self.act(ActionKind::Fresh, "compose", what, Some(&rel), None)
                }
                crate::compose::ComposeStatus::Absent => {}
                crate::compose::ComposeStatus::Stale => self.act(
                    ActionKind::Remove,
                    "compose",
                    format!("{rel} (no container service remains)"),
                    Some(&rel),
                    None,
                ),
                _ => self.act(ActionKind::Write, "compose", what, Some(&rel), None),
            }
            return Ok(());
        }
        match crate::compose::write(plan, &mut self.txn)? {
            crate::compose::ComposeOutcome::Written { .. } => {
                self.act(ActionKind::Write, "compose", what, Some(&rel), None)
            }
            crate::compose::ComposeOutcome::Unchanged { .. } => {
                self.act(ActionKind::Fresh, "compose", what, Some(&rel), None)
            }
            crate::compose::ComposeOutcome::Removed { .. } => self.act(
                ActionKind::Remove,
                "compose",
                format!("{rel} (no container service remains)"),
                Some(&rel),
                None,
            ),
            crate::compose::ComposeOutcome::NotNeeded { .. } => {}
        }
        Ok(())
    }

    fn stale_files(&mut self) -> Result<()> {
        let Some(prev) = self.previous.clone() else {
            return Ok(());
        };
        for f in &prev.files {
            let is_env = f.path.starts_with(".hsm/env");
            if is_env && !self.lock.files.iter().any(|n| n.path == f.path) {
                let abs = self.root.join(&f.path);
                if !abs.exists() {
                    continue;
                }
                self.act(
                    ActionKind::Remove,
                    "sync",
                    f.path.to_string(),
                    Some(&f.path),
                    None,
                );
                if !self.opts.dry_run {
                    self.txn
                        .remove(&abs)
                        .map_err(|e| Error::failed(format!("cannot remove `{}`: {e}", f.path)))?;
                }
            }
        }
        Ok(())
    }

    fn write_lock(&mut self) -> Result<()> {
        let plan = self.plan;
        for l in &plan.libraries {
            self.lock.libraries.push(LockedLibrary {
                name: l.name.clone(),
                mode: l.mode.to_string(),
                source: l.source.describe(),
                requirement: l.requirement.clone(),
            });
        }
        for sv in &plan.services {
            let git = match (&sv.source, &sv.checkout_path, self.commits.get(&sv.name)) {
                (Some(Source::Git { url, reference, .. }), Some(co), Some(commit)) => {
                    Some(LockedGit {
                        url: url.clone(),
                        reference: reference.clone(),
                        commit: commit.clone(),
                        checkout: co.clone(),
                    })
                }
                _ => None,
            };
            self.lock.services.push(LockedService {
                name: sv.name.clone(),
                mode: sv.mode.to_string(),
                runtime: sv
                    .runtime()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "external".into()),
                source: sv
                    .source
                    .as_ref()
                    .map(|s| s.describe())
                    .unwrap_or_else(|| "none".into()),
                git,
                target_path: sv.target_path.clone(),
                lockfile: self.lockfiles.get(&sv.name).cloned(),
            });
        }
        self.lock.normalize();
        let text = self.lock.to_toml();
        let rel = Utf8PathBuf::from(crate::lock::LOCK_FILE);
        let abs = self.root.join(&rel);
        let old = std::fs::read_to_string(&abs).ok();
        if old.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        if self.opts.locked() {
            let flag = if self.opts.frozen {
                "--frozen"
            } else {
                "--locked"
            };
            let detail = match &self.previous {
                Some(prev) => prev
                    .diff(&self.lock)
                    .into_iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                None => "  hsm.lock does not exist yet".to_string(),
            };
            return Err(Error::failed(format!(
                "`{flag}` was given, but sync would change `hsm.lock`:"
            ))
            .with_detail(detail)
            .with_help(format!(
                "run `cargo hsm sync` without `{flag}` to update `hsm.lock`"
            )));
        }
        self.act(
            ActionKind::Write,
            "hsm.lock",
            rel.to_string(),
            Some(&rel),
            None,
        );
        self.write_file(&rel, text.as_bytes(), None)?;
        Ok(())
    }
}

const UV_HINT: &str =
    "install uv with `pip install uv` (or see https://docs.astral.sh/uv/getting-started/installation/)";

fn ref_not_found(sv: &PlannedService, url: &str, reference: Option<&str>) -> Error {
    Error::failed(format!(
        "`{}` has no tag, branch or commit `{}` (service `{}`)",
        url,
        reference.unwrap_or("HEAD"),
        sv.name
    ))
    .with_help("check `ref` in the service's git source")
}
