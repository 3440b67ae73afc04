//! Step 4, environment services: each one's env file, hsm's edits, then
//! its runtime adapter (uv, venv, pixi), up to `--jobs` at a time.

use camino::{Utf8Path, Utf8PathBuf};

use crate::envfile;
use crate::error::{Error, Result};
use crate::fs::FileTxn;
use crate::lock::{sha256_hex, LockedFile, LockedService};
use crate::manifest::model::{RuntimeType, Source};
use crate::materialize::driver::{combine_failures, Syncer};
use crate::materialize::fingerprint;
use crate::materialize::runtimes::{self, RuntimeCtx};
use crate::materialize::{interrupt, journal, pool, Action, ActionKind, Progress};

use super::cargo_lock::{self, CargoLock};
use crate::plan::PlannedService;

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
    /// The stored fingerprint, when it still holds (nothing to re-hash).
    unchanged: Option<String>,
    /// The `Cargo.lock` of the Rust crate it builds, if any.
    cargo: Option<CargoLock>,
    /// hsm put a kept `Cargo.lock` into the checkout: build it again.
    rebuild: bool,
    /// `cargo hsm update` re-resolves its lock.
    upgrade: bool,
}

/// One runtime to run, handed to a thread of [`pool::stream`].
struct Job<'p> {
    sv: &'p PlannedService,
    runtime: RuntimeType,
    target: Utf8PathBuf,
    previous: Option<LockedService>,
    txn: FileTxn,
    /// The commit its checkout sits at (see [`RuntimeCtx::commit`]).
    commit: Option<String>,
    rebuild: bool,
    locked_crate: bool,
    upgrade: bool,
}

type JobResult = (Result<Option<Vec<u8>>>, FileTxn);

/// What the environment step hears from its jobs.
#[derive(Default)]
struct Heard {
    /// By job index: the service and its `Syncing` action.
    jobs: Vec<(String, Action)>,
    /// Job index, service, error.
    failed: Vec<(usize, String, Error)>,
    /// By service.
    pins: std::collections::BTreeMap<String, Vec<u8>>,
}

impl Heard {
    fn hear(&mut self, s: &mut Syncer<'_>, m: pool::Msg<JobResult>) {
        match m {
            pool::Msg::Started(i) => (s.progress)(Progress::Action(&self.jobs[i].1)),
            pool::Msg::Done(i, (r, txn)) => {
                (s.progress)(Progress::Finished {
                    component: &self.jobs[i].1.component,
                    ok: r.is_ok(),
                });
                // Also after a failure: the rollback restores what it wrote.
                s.txn.absorb(txn);
                let name = self.jobs[i].0.clone();
                match r {
                    Ok(Some(bytes)) => {
                        self.pins.insert(name, bytes);
                    }
                    Ok(None) => {}
                    Err(e) => self.failed.push((i, name, e)),
                }
            }
        }
    }
}

impl Syncer<'_> {
    /// The environment services in plan order: each one prepared (its
    /// clone moved into place, env file, hsm's edits, fingerprint: `Fresh`
    /// or a job), each job's runtime started on one of up to `--jobs`
    /// threads as soon as it is prepared (while the next service's clone
    /// may still run), then, once all are done, each service's lock file
    /// and new fingerprint recorded in plan order.
    pub(in crate::materialize) fn environment_services(&mut self) -> Result<()> {
        let plan = self.plan;
        let _workspaces = crate::python::project::remember_workspaces();
        let mut services: Vec<&PlannedService> = Vec::new();
        for sv in plan.environment_services() {
            if self.acts_on(&sv.name) {
                services.push(sv);
            } else {
                // `sync -p` of other services.
                self.carry_service(sv);
            }
        }
        let ahead = fingerprints_ahead(&self.root, &services, &self.fingerprints);
        let (root, opts) = (self.root.clone(), self.opts);
        let journal = self.journal.clone();
        let work = |j: Job<'_>| -> JobResult {
            let Job {
                sv,
                runtime,
                target,
                previous,
                mut txn,
                commit,
                rebuild,
                locked_crate,
                upgrade,
            } = j;
            let adapter = runtimes::adapter(runtime).expect("environment runtime");
            if let Err(e) = interrupt::check() {
                return (Err(e), txn);
            }
            let env = adapter.env_dir(&target);
            if let Some(j) = &journal {
                if let Err(e) = j.env(&env) {
                    return (Err(e), txn);
                }
            }
            let mut ctx = RuntimeCtx {
                workspace_root: &root,
                service: sv,
                opts: &opts,
                txn: &mut txn,
                previous: previous.as_ref(),
                commit: commit.as_deref(),
                rebuild,
                locked_crate,
                edited: true,
                upgrade,
            };
            let r = adapter.sync(&mut ctx, &target).map(|o| o.pins);
            if r.is_ok() {
                journal::env_done(&env);
            }
            (r, txn)
        };
        let mut prepared = Vec::new();
        let mut heard = Heard::default();
        let first_error = pool::stream(opts.jobs(), work, |f| {
            let mut error = None;
            for (sv, now) in services.into_iter().zip(ahead) {
                for m in f.ready() {
                    heard.hear(self, m);
                }
                let p = match self
                    .finish_clone(&sv.name)
                    .and_then(|()| self.prepare_service(sv, now))
                {
                    Ok(Some(p)) => p,
                    Ok(None) => continue,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                };
                if let Some(a) = &p.job {
                    if let Some(j) = &journal {
                        // The tool rewrites its lock file, so `hsm.lock`
                        // changes too: its record rides on the tool's fsync.
                        if let Err(e) = j.file_ahead(&root.join(crate::lock::LOCK_FILE)) {
                            error = Some(e);
                            break;
                        }
                    }
                    heard.jobs.push((sv.name.clone(), a.clone()));
                    f.submit(Job {
                        sv,
                        runtime: p.runtime,
                        target: p.target.clone(),
                        previous: p.previous.clone(),
                        txn: self.txn.child(),
                        commit: self.commits.get(&sv.name).cloned(),
                        rebuild: p.rebuild,
                        locked_crate: p.cargo.is_some() && (opts.locked || opts.frozen),
                        upgrade: p.upgrade,
                    });
                }
                prepared.push(p);
            }
            while let Some(m) = f.next_after_last() {
                heard.hear(self, m);
            }
            error
        });
        let Heard {
            mut failed,
            mut pins,
            ..
        } = heard;
        if let Some(e) = first_error {
            return Err(e);
        }
        if !failed.is_empty() {
            // In plan order, as the jobs were submitted.
            failed.sort_by_key(|(i, _, _)| *i);
            return Err(combine_failures(
                failed.into_iter().map(|(_, n, e)| (n, e)).collect(),
            ));
        }
        for p in &prepared {
            self.record_service(p, pins.remove(&p.sv.name))?;
        }
        Ok(())
    }

    /// `sync -p` of other services: what `hsm.lock` recorded for this one
    /// (its lock file, its generated files' hashes) and its fingerprint
    /// stay as they were.
    fn carry_service(&mut self, sv: &PlannedService) {
        let Some(prev) = self.previous.as_ref() else {
            return;
        };
        if let Some(s) = prev.service(&sv.name) {
            if let Some(f) = s.lockfile.clone() {
                self.lockfiles.insert(sv.name.clone(), f);
            }
            self.added
                .insert(sv.name.clone(), s.added_dependencies.clone());
        }
        let env = envfile::env_file_path(&sv.name);
        let committed = crate::lock::committed_lock(&sv.name, Utf8Path::new(""));
        let carried: Vec<LockedFile> = prev
            .files
            .iter()
            .filter(|f| {
                f.path == env
                    || f.path.starts_with(&committed)
                    || sv
                        .target_path
                        .as_ref()
                        .is_some_and(|t| f.path.starts_with(t))
            })
            .cloned()
            .collect();
        for f in carried {
            self.lock.record_hash(f.path, f.sha256);
        }
        let component = format!("service:{}", sv.name);
        self.new_fingerprints.carry(&self.fingerprints, &component);
    }

    /// The resolved environment, for `run` and for the user, at
    /// `.hsm/env/<service>.env`; `kept`: its hash when it is unchanged.
    fn write_env_file(
        &mut self,
        sv: &PlannedService,
        component: &str,
        kept: Option<String>,
    ) -> Result<()> {
        let env_rel = envfile::env_file_path(&sv.name);
        if let Some(sha) = kept {
            self.lock.record_hash(env_rel, sha);
            return Ok(());
        }
        let env_text = envfile::render_env(&self.root, sv)?;
        self.lock.record_file(env_rel.clone(), env_text.as_bytes());
        if self.write_file(&env_rel, env_text.as_bytes(), Some(0o600))? {
            self.act(
                ActionKind::Write,
                component,
                env_rel.to_string(),
                Some(&env_rel),
                None,
            );
        }
        Ok(())
    }

    /// Everything before the runtime runs; `None` when there is nothing to
    /// record (a dry run before the clone).
    fn prepare_service<'p>(
        &mut self,
        sv: &'p PlannedService,
        ahead: Option<Option<String>>,
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
        if let (
            Some(co),
            Some(Source::Git {
                subdirectory: Some(sub),
                ..
            }),
        ) = (&sv.checkout_path, &sv.source)
        {
            // Checked again on disk: a symlink in the clone may lead out.
            if let Err(resolved) = crate::paths::within(&self.root.join(co), sub) {
                return Err(Error::config(format!(
                    "the `subdirectory` `{sub}` of service `{}` resolves to {resolved}: it must stay inside the clone `{co}`",
                    sv.name
                ))
                .with_help("name a real directory of the repository in `subdirectory`"));
            }
        }

        if !target.is_dir() {
            if self.opts.dry_run && sv.checkout_path.is_some() {
                self.write_env_file(sv, &component, None)?;
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

        self.place_committed_lock(sv, &target_rel)?;
        let previous = self
            .previous
            .as_ref()
            .and_then(|l| l.service(&sv.name))
            .cloned();
        let opts = self.opts;
        // Nothing changed since the last successful sync: no process
        // spawned, and (a dry run predicts the same) nothing to edit, since
        // the fingerprint covers the Plan entry and the edited files.
        let upgrade = self.updating(&sv.name);
        let unchanged = if upgrade {
            None
        } else {
            let now = match ahead {
                Some(fp) => fp,
                None => service_fingerprint(
                    &self.root,
                    sv,
                    &target,
                    self.fingerprints.sites(&component),
                )
                .map(|(fp, _)| fp),
            };
            self.fingerprints
                .unchanged(&component, now.as_deref(), opts.frozen)
        };
        // An unchanged fingerprint covers every sign of a half-made venv
        // (the marker, `pyvenv.cfg`, the interpreter, `site-packages`), so
        // only a changed one needs a look.
        if unchanged.is_none() {
            self.remove_half_made_env(sv, runtime, &target)?;
        }
        // Unchanged, the generated env file included (the fingerprint
        // covers it and the env files it comes from): its recorded hash holds.
        let kept_env = unchanged
            .as_ref()
            .and_then(|_| self.recorded.get(&envfile::env_file_path(&sv.name)))
            .cloned();
        self.write_env_file(sv, &component, kept_env)?;
        let cargo = match unchanged {
            Some(_) => None,
            None => self.place_cargo_lock(sv, &target_rel)?,
        };
        let rebuild = cargo.as_ref().is_some_and(|c| c.placed);
        let mut ctx = RuntimeCtx {
            workspace_root: &self.root,
            service: sv,
            opts: &opts,
            txn: &mut self.txn,
            previous: previous.as_ref(),
            commit: self.commits.get(&sv.name).map(String::as_str),
            rebuild,
            locked_crate: cargo.is_some() && (opts.locked || opts.frozen),
            edited: false,
            upgrade,
        };
        // What hsm owns in the service's manifest, worked out before its
        // edits are written; unchanged, what the last sync recorded.
        let added = match unchanged {
            Some(_) => previous
                .as_ref()
                .map(|p| p.added_dependencies.clone())
                .unwrap_or_default(),
            None => adapter.owned_entries(&ctx, &target)?.unwrap_or_default(),
        };
        self.added.insert(sv.name.clone(), added);
        let edits = match unchanged {
            Some(_) => Vec::new(),
            None => adapter.edits(&ctx, &target)?,
        };
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
        if !edits.is_empty() {
            // A service's pyproject.toml may be another's workspace root.
            crate::python::project::forget_workspaces();
        }
        // An unchanged fingerprint saw no marker of an unfinished sync.
        // `cargo hsm update` always runs the tool.
        let fresh = !upgrade
            && (unchanged.is_some()
                || (!adapter
                    .env_dir(&target)
                    .join(crate::python::venv::INCOMPLETE_MARKER)
                    .exists()
                    && edits.is_empty()
                    && !rebuild
                    && adapter.is_fresh(&ctx, &target)?));
        // With --dry-run: whether the tool will rewrite the service's lock
        // file (and so `hsm.lock`), as the real sync would find out.
        if opts.dry_run && !fresh && adapter.lockfile_would_change(&ctx, &target)? {
            self.lock_changes = true;
        }
        // Only for a runtime that runs: describing may resolve its tool.
        let describe = if fresh {
            String::new()
        } else {
            adapter.describe(&ctx, &target)
        };
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
        if let (Some(_), Some(manifest)) = (&sv.checkout_path, adapter.edited_manifest()) {
            // Recorded so that a later sync knows this edit is hsm's, not the user's.
            let pp_rel = target_rel.join(manifest);
            let kept = unchanged
                .as_ref()
                .and(self.previous.as_ref())
                .and_then(|p| p.recorded_hash(&pp_rel))
                .map(str::to_string);
            if let Some(sha) = kept {
                // Unchanged since the last sync: so is its recorded hash.
                self.lock.record_hash(pp_rel, sha);
            } else if let Ok(bytes) = std::fs::read(self.root.join(&pp_rel)) {
                if !edits.is_empty()
                    || self
                        .previous
                        .as_ref()
                        .and_then(|p| p.recorded_hash(&pp_rel))
                        .is_some()
                {
                    let bytes = match edits.iter().find(|e| e.path.ends_with(manifest)) {
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
                diff: None,
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
            unchanged,
            cargo,
            rebuild,
            upgrade,
        }))
    }

    /// The lock file of a git-sourced service whose upstream commits none
    /// (relative to the target path), which hsm keeps in
    /// [`crate::lock::LOCKS_DIR`]; `None` for every other service.
    fn uncommitted_lock(&self, sv: &PlannedService, target_rel: &Utf8Path) -> Option<Utf8PathBuf> {
        let checkout = sv.checkout_path.as_ref()?;
        let runtime = sv.runtime()?;
        let adapter = runtimes::adapter(runtime)?;
        let file = adapter.committed_lockfile(&self.root.join(target_rel))?;
        let in_repo = self.lock_rel(sv, target_rel)?;
        let in_repo = in_repo.strip_prefix(checkout).ok()?;
        (!crate::git::tracks(&self.root.join(checkout), in_repo)).then_some(file)
    }

    /// Where the service's lock file lives, relative to the workspace root
    /// (a workspace member's is its workspace's).
    fn lock_rel(&self, sv: &PlannedService, target_rel: &Utf8Path) -> Option<Utf8PathBuf> {
        let adapter = runtimes::adapter(sv.runtime()?)?;
        let lf = adapter.lockfile(&self.root.join(target_rel))?;
        Some(crate::paths::normalize(&target_rel.join(lf)))
    }

    /// Puts `hsm.locks/<service>/<lock>` into the checkout before the
    /// runtime runs, so that a locked or frozen sync on a fresh clone of the
    /// monorepo installs what the first sync resolved.
    fn place_committed_lock(&mut self, sv: &PlannedService, target_rel: &Utf8Path) -> Result<()> {
        let Some(file) = self.uncommitted_lock(sv, target_rel) else {
            return Ok(());
        };
        let committed = crate::lock::committed_lock(&sv.name, &file);
        let Ok(bytes) = std::fs::read(self.root.join(&committed)) else {
            return Ok(());
        };
        let Some(dest) = self.lock_rel(sv, target_rel) else {
            return Ok(());
        };
        if std::fs::read(self.root.join(&dest)).ok().as_deref() != Some(bytes.as_slice()) {
            self.write_file(&dest, &bytes, None)?;
        }
        Ok(())
    }

    /// An environment a tool left half-made (killed during `python -m
    /// venv`, a sync that did not finish) is removed, so that the runtime
    /// creates it again instead of failing in it for good.
    fn remove_half_made_env(
        &mut self,
        sv: &PlannedService,
        runtime: RuntimeType,
        target: &Utf8Path,
    ) -> Result<()> {
        let adapter = runtimes::adapter(runtime).expect("environment runtime");
        let Some(why) = adapter.half_made(target) else {
            return Ok(());
        };
        let env = adapter.env_dir(target);
        let rel = crate::paths::relative_to(&env, &self.root);
        self.warnings.push(format!(
            "service `{}`: `{rel}` was half-made ({why}); sync creates it again",
            sv.name
        ));
        if !self.opts.dry_run {
            std::fs::remove_dir_all(&env)
                .map_err(|e| Error::failed(format!("cannot remove the half-made `{rel}`: {e}")))?;
        }
        Ok(())
    }

    /// After the runtimes ran: the service's pins (`pins`, what its runtime
    /// installed) in `hsm.locks/`, its lock file for `hsm.lock`, and its new
    /// fingerprint.
    fn record_service(&mut self, p: &PreparedService, pins: Option<Vec<u8>>) -> Result<()> {
        let adapter = runtimes::adapter(p.runtime).expect("environment runtime");
        let pins_rel = runtimes::pins_path(p.sv);
        if let (Some(rel), Some(bytes)) = (&pins_rel, pins) {
            if self.write_file(rel, &bytes, None)? {
                self.act(
                    ActionKind::Write,
                    &p.component,
                    rel.to_string(),
                    Some(rel),
                    None,
                );
            }
        }
        if let Some(c) = &p.cargo {
            self.keep_cargo_lock(&p.component, c)?;
        }
        if let (Some(_), Some(_), Some(manifest)) =
            (&p.job, &p.sv.checkout_path, adapter.edited_manifest())
        {
            // The tool may have edited it after hsm did (`npm uninstall` of
            // an entry of hsm's): its hash is the one it has now.
            let rel = p.target_rel.join(manifest);
            if self.lock.files.iter().any(|f| f.path == rel) {
                if let Ok(bytes) = std::fs::read(self.root.join(&rel)) {
                    self.lock.record_file(rel, &bytes);
                }
            }
        }
        if !self.opts.dry_run {
            match &p.unchanged {
                Some(_) => self
                    .new_fingerprints
                    .carry(&self.fingerprints, &p.component),
                None => {
                    if let Some((fp, sites)) =
                        service_fingerprint(&self.root, p.sv, &p.target, None)
                    {
                        let fp = fingerprint::mark(&fp, self.opts.frozen);
                        self.new_fingerprints
                            .insert_with_sites(&p.component, fp, sites);
                    }
                }
            }
        }
        // A service with pins: they are its lock file. Unchanged, it has the
        // one it had (the fingerprint covers where it lives).
        let kept_lockfile = p
            .unchanged
            .as_ref()
            .and(p.previous.as_ref())
            .and_then(|x| x.lockfile.as_ref())
            .map(|f| f.path.clone());
        let lockfile = match &pins_rel {
            Some(rel) => Some(rel.clone()),
            None if kept_lockfile.is_some() => kept_lockfile,
            None => adapter
                .lockfile(&p.target)
                .map(|lf| crate::paths::normalize(&p.target_rel.join(lf))),
        };
        if let Some(mut rel) = lockfile {
            let uncommitted = pins_rel
                .is_none()
                .then(|| self.uncommitted_lock(p.sv, &p.target_rel))
                .flatten();
            // Unchanged since the last sync (the fingerprint covers it): its
            // recorded hash holds, and the file need not be read.
            let kept = p
                .unchanged
                .as_ref()
                .filter(|_| uncommitted.is_none())
                .and(p.previous.as_ref())
                .and_then(|x| x.lockfile.clone())
                .filter(|f| f.path == rel);
            if let Some(f) = kept {
                self.lockfiles.insert(p.sv.name.clone(), f);
                return Ok(());
            }
            if let Some(file) = uncommitted {
                // The upstream commits no lock: hsm keeps it in the monorepo.
                let committed = crate::lock::committed_lock(&p.sv.name, &file);
                if let Ok(bytes) = std::fs::read(self.root.join(&rel)) {
                    if self.write_file(&committed, &bytes, None)? {
                        self.act(
                            ActionKind::Write,
                            &p.component,
                            committed.to_string(),
                            Some(&committed),
                            None,
                        );
                    }
                    rel = committed;
                }
            }
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
        Ok(())
    }
}

/// The fingerprint of a service as it is on disk now (stat calls only).
/// The fingerprint of a service as it is on disk now, and the
/// `site-packages` directories it covered; `known`: those of the stored
/// fingerprint, for a comparison with it (see [`fingerprint::Hasher::knowing_sites`]).
fn service_fingerprint(
    root: &Utf8Path,
    sv: &PlannedService,
    target: &Utf8Path,
    known: Option<&[String]>,
) -> Option<(String, Vec<String>)> {
    let runtime = sv.runtime().expect("environment services are managed");
    let adapter = runtimes::adapter(runtime).expect("environment runtime");
    let mut h = fingerprint::Hasher::new().knowing_sites(known);
    h.value("plan", &fingerprint::ServiceInputs::of(sv));
    // The commit a git service's checkout sits at: hsm moves HEAD
    // (detached) by rewriting `.git/HEAD`, also when the Plan entry
    // stays the same (a lock entry removed, `--frozen` going back),
    // and a changed source must be built again (a compiled extension).
    if let Some(co) = &sv.checkout_path {
        h.file(&root.join(co).join(".git/HEAD"));
    }
    h.tool(adapter.tool());
    h.tool_env_vars();
    adapter.fingerprint(&mut h, target);
    // The env files it reads and the one hsm generates from them: the
    // generated one is not rendered again while both are unchanged.
    for f in &sv.env_files {
        h.file(&root.join(&f.path));
    }
    h.file(&root.join(envfile::env_file_path(&sv.name)));
    if let Some(pins) = runtimes::pins_path(sv) {
        h.file(&root.join(pins));
    }
    if let Some(kept) = cargo_lock::kept_path(sv) {
        h.file(&root.join(kept));
    }
    // Local libraries the service depends on: their inputs too.
    for d in &sv.dependencies {
        if let crate::plan::Dependency::Library {
            source: Source::Local { path, .. },
            ..
        } = d
        {
            for f in fingerprint::PROJECT_INPUTS {
                h.file(&root.join(path).join(f));
            }
        }
    }
    h.finish_with_sites()
}

/// Each service's fingerprint as it is on disk now, taken before any step
/// of this sync touches it, spread over the cores (a no-op sync of a
/// thousand services is mostly these `stat` calls); `None` for one whose
/// fingerprint must wait for its turn (a git checkout: its committed lock
/// is put in place first).
fn fingerprints_ahead(
    root: &Utf8Path,
    services: &[&PlannedService],
    stored: &fingerprint::Fingerprints,
) -> Vec<Option<Option<String>>> {
    let one = |sv: &PlannedService| {
        let target = root.join(sv.target_path.as_ref()?);
        let known = stored.sites(&format!("service:{}", sv.name));
        sv.checkout_path
            .is_none()
            .then(|| service_fingerprint(root, sv, &target, known).map(|(fp, _)| fp))
    };
    pool::map_split(
        services,
        64,
        crate::python::project::remember_workspaces,
        |sv| one(sv),
    )
}
