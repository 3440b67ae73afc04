//! Step 2, git sources: clone or move each git-sourced service's checkout,
//! never over local work, and never over a directory hsm did not clone.
//!
//! Refs are pinned like cargo's git dependencies: while the manifest's
//! `url` and `ref` are the ones `hsm.lock` recorded, sync uses the locked
//! commit (no network when the checkout has it, even for a branch); the
//! pin moves when the manifest's `ref` or `url` changes.

use camino::Utf8Path;

use crate::error::{Error, Result};
use crate::git::{self, redact_url, Artifacts, Remote, Want};
use crate::lock::{sha256_hex, LockedGit};
use crate::manifest::model::Source;
use crate::materialize::driver::Syncer;
use crate::materialize::journal::DirChange;
use crate::materialize::pool;
use crate::materialize::steps::clones::{CloneJob, Clones};
use crate::materialize::ActionKind;
use crate::plan::PlannedService;

/// One git-sourced environment service, as the step sees it.
struct GitService<'p> {
    sv: &'p PlannedService,
    url: &'p str,
    reference: Option<&'p str>,
    artifacts: Artifacts,
    /// Relative to the workspace root.
    checkout: &'p Utf8Path,
}

impl GitService<'_> {
    fn remote(&self) -> Remote<'_> {
        Remote {
            service: &self.sv.name,
            url: self.url,
            reference: self.reference,
        }
    }
    fn shown_ref(&self) -> &str {
        self.reference.unwrap_or("default branch")
    }
}

fn git_services(plan: &crate::plan::Plan) -> impl Iterator<Item = GitService<'_>> {
    plan.services.iter().filter_map(|sv| {
        sv.runtime()?;
        match (&sv.source, &sv.checkout_path) {
            (
                Some(Source::Git {
                    url,
                    reference,
                    subdirectory,
                    ..
                }),
                Some(checkout),
            ) => Some(GitService {
                sv,
                url,
                reference: reference.as_deref(),
                artifacts: Artifacts::new(
                    subdirectory.as_deref().map(|p| p.as_str()),
                    crate::materialize::runtimes::artifacts_of(sv),
                ),
                checkout,
            }),
            _ => None,
        }
    })
}

/// How many clones run at once without `-j`: more than the machine's
/// cores, since a clone mostly waits (on the network, or on the processes
/// git runs at both ends), as uv's downloads do.
const DEFAULT_CLONE_JOBS: usize = 8;

/// `-j` when given, else [`DEFAULT_CLONE_JOBS`] (or the cores, if more).
fn clone_jobs(opts: &crate::materialize::SyncOptions) -> usize {
    match opts.jobs {
        0 => DEFAULT_CLONE_JOBS.max(pool::default_jobs()),
        n => n,
    }
}

impl Syncer<'_> {
    pub(in crate::materialize) fn git_sources(&mut self) -> Result<()> {
        let plan = self.plan;
        self.prefetch_clones();
        for g in git_services(plan) {
            if !self.acts_on(&g.sv.name) {
                // `sync -p`: another service's checkout stays as it is.
                if let Some(l) = self.previous.as_ref().and_then(|l| l.service(&g.sv.name)) {
                    if let Some(git) = &l.git {
                        self.commits.insert(g.sv.name.clone(), git.commit.clone());
                    }
                }
                continue;
            }
            self.git_service(&g)?;
        }
        Ok(())
    }

    /// Starts the clones of the git services that have no checkout yet, up
    /// to `--jobs` at a time, into temporary directories (see
    /// [`super::clones`]); `git_service` then announces each in plan order
    /// and a later step moves it into place. Network-bound clones overlap
    /// each other and the later steps (a single clone too: the compose
    /// file and the journal are written meanwhile); every decision stays
    /// sequential.
    fn prefetch_clones(&mut self) {
        if self.opts.dry_run || self.opts.offline {
            return;
        }
        let todo: Vec<CloneJob> = git_services(self.plan)
            .filter(|g| self.acts_on(&g.sv.name) && !self.root.join(g.checkout).exists())
            .filter_map(|g| {
                let want = self.want(&g).ok()?;
                Some(CloneJob {
                    service: g.sv.name.clone(),
                    url: g.url.to_string(),
                    reference: g.reference.map(str::to_string),
                    want,
                    artifacts: g.artifacts.clone(),
                    dest: self.root.join(g.checkout),
                })
            })
            .collect();
        if todo.is_empty() {
            return;
        }
        self.prefetched = Clones::start(todo, clone_jobs(&self.opts));
    }

    fn locked_git(&self, name: &str) -> Option<&LockedGit> {
        if self.updating(name) {
            // `cargo hsm update`: the ref is resolved again.
            return None;
        }
        self.recorded_git(name)
    }

    /// What `hsm.lock` records for git service `name`, also while
    /// `cargo hsm update` resolves it again.
    fn recorded_git(&self, name: &str) -> Option<&LockedGit> {
        self.previous
            .as_ref()
            .and_then(|l| l.service(name))
            .and_then(|s| s.git.as_ref())
    }

    /// The locked commit, while the manifest still asks for the locked
    /// `url` and `ref`; with `--frozen` there must be one.
    fn want(&self, g: &GitService) -> Result<Want> {
        let help = "run `cargo hsm sync` without `--frozen` to resolve it and update `hsm.lock`";
        let locked = self.locked_git(&g.sv.name);
        let same =
            locked.filter(|l| l.url == redact_url(g.url) && l.reference.as_deref() == g.reference);
        if let Some(l) = same {
            let oid = git2::Oid::from_str(&l.commit).map_err(|_| {
                Error::failed(format!(
                    "`hsm.lock` has an invalid commit `{}` for service `{}`",
                    l.commit, g.sv.name
                ))
                .with_help(
                    "`hsm.lock` is generated; delete it and run `cargo hsm sync` to write it again",
                )
            })?;
            return Ok(Want::Commit(oid));
        }
        if !self.opts.frozen {
            return Ok(Want::Ref);
        }
        Err(match locked {
            None => Error::failed(format!(
                "`--frozen` needs the commit of service `{}` from `hsm.lock`, which has none",
                g.sv.name
            )),
            Some(l) => Error::failed(format!(
                "`hsm.lock` locks service `{}` to `{}` @ {}, but the manifest asks for `{}` @ {}",
                g.sv.name,
                l.url,
                l.reference.as_deref().unwrap_or("(default branch)"),
                redact_url(g.url),
                g.reference.unwrap_or("(default branch)")
            )),
        }
        .with_help(help))
    }

    /// With `--locked`, the commit must be the one in `hsm.lock`.
    pub(super) fn check_locked_commit(&self, service: &str, oid: git2::Oid) -> Result<()> {
        if !self.opts.locked || self.opts.frozen {
            return Ok(());
        }
        // `update --locked` too: against what the lock records.
        let locked = self.recorded_git(service).map(|g| g.commit.clone());
        if locked.as_deref() != Some(oid.to_string().as_str()) {
            return Err(Error::failed(format!(
                "`--locked`: service `{}` resolves to commit {}, but `hsm.lock` has {}",
                service,
                oid,
                locked.as_deref().unwrap_or("no commit")
            ))
            .with_help("run `cargo hsm sync` without `--locked` to update `hsm.lock`"));
        }
        Ok(())
    }

    /// Files in a checkout that hsm wrote itself: their hash is the one
    /// recorded in `hsm.lock`.
    fn is_ours(&self, checkout: &Utf8Path, path_in_repo: &Utf8Path) -> bool {
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

    /// Stops when the checkout holds anything that `why` would lose.
    fn ensure_clean(&self, g: &GitService, repo: &git2::Repository, why: &str) -> Result<()> {
        let checkout = g.checkout;
        let is_ours = |p: &Utf8Path| self.is_ours(checkout, p);
        let lost = git::local_work(repo, &g.artifacts, &is_ours)?;
        if lost.is_empty() {
            return Ok(());
        }
        Err(Error::failed(format!(
            "the checkout of service `{}` at `{checkout}` has local work that {why} would lose; nothing was changed there",
            g.sv.name
        ))
        .with_detail(
            lost.iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .with_help(format!(
            "commit and push the work (or stash, move or delete it) in `{checkout}`, then run `cargo hsm sync` again"
        )))
    }

    /// A repository at the target path that hsm did not clone: recognised
    /// only when the previous sync recorded it at the commit it sits at
    /// (a clone made before hsm marked its clones); otherwise refused.
    fn ensure_managed(&self, g: &GitService, repo: &git2::Repository) -> Result<()> {
        if git::is_managed(repo) {
            return Ok(());
        }
        let head = git::head_commit(repo).map(|h| h.to_string());
        let recorded = self
            .locked_git(&g.sv.name)
            .is_some_and(|l| l.checkout == g.checkout && Some(&l.commit) == head.as_ref());
        if recorded && !self.opts.dry_run {
            return git::mark_managed(repo);
        }
        if recorded {
            return Ok(());
        }
        let origin = git::origin_url(repo)
            .map(|u| format!(" (origin `{}`)", redact_url(&u)))
            .unwrap_or_default();
        Err(Error::failed(format!(
            "`{}` is a git repository that hsm did not clone{origin}, so service `{}` cannot be cloned there",
            g.checkout, g.sv.name
        ))
        .with_help(format!(
            "move `{}` elsewhere, or let hsm manage it as the service's checkout with `git -C {} config hsm.managed true`",
            g.checkout, g.checkout
        )))
    }

    fn git_service(&mut self, g: &GitService) -> Result<()> {
        let sv = g.sv;
        let checkout = g.checkout;
        let abs = self.root.join(checkout);
        let component = format!("service:{}", sv.name);
        let remote = g.remote();
        let want = self.want(g)?;
        let repo = git::open(&abs)?;
        if repo.is_none() && abs.exists() {
            let empty = std::fs::read_dir(&abs)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty {
                return Err(Error::failed(format!(
                    "`{checkout}` exists but is not a git checkout, so service `{}` cannot be cloned there",
                    sv.name
                ))
                .with_help(format!(
                    "move `{checkout}` elsewhere, then run `cargo hsm sync` again"
                )));
            }
        }
        if let Some(r) = &repo {
            self.ensure_managed(g, r)?;
        }
        let old_url = repo.as_ref().and_then(git::origin_url);
        let reclone = repo.is_some() && old_url.as_deref() != Some(g.url);
        if repo.is_none() || reclone {
            let message = if reclone {
                let r = repo.as_ref().expect("checked above");
                self.ensure_clean(g, r, "cloning the new `url` again")?;
                format!(
                    "{}: its `url` changed from `{}` to `{}` ({})",
                    sv.name,
                    redact_url(old_url.as_deref().unwrap_or("none")),
                    redact_url(g.url),
                    g.shown_ref()
                )
            } else {
                format!("{} ({} @ {})", sv.name, redact_url(g.url), g.shown_ref())
            };
            if self.opts.offline {
                return Err(Error::failed(format!(
                    "{} needs a clone, but `--offline` forbids the network",
                    remote.describe()
                ))
                .with_help("run `cargo hsm sync` once without `--offline`"));
            }
            let kind = if reclone {
                ActionKind::Reclone
            } else {
                ActionKind::Clone
            };
            self.act(kind, &component, message, Some(checkout), None);
            if self.opts.dry_run {
                if let Want::Commit(o) = want {
                    self.commits.insert(sv.name.clone(), o.to_string());
                }
                return Ok(());
            }
            drop(repo);
            if !reclone && self.prefetched.started(&sv.name) {
                // Moved into place when a later step needs it.
                self.prefetched.defer(&sv.name, checkout.to_owned());
                return Ok(());
            }
            let fetched = match self.prefetched.take(&sv.name) {
                Some(Ok(f)) => f,
                // A failed clone is made again here, and reported.
                _ => git::transport::clone_into_temp(&remote, want, &g.artifacts, &abs)?,
            };
            self.check_locked_commit(&sv.name, fetched.commit)?;
            if reclone {
                self.move_aside(&sv.name, &abs, checkout)?;
            } else if abs.exists() {
                let _ = std::fs::remove_dir(&abs);
            }
            let commit = fetched.commit;
            if !reclone {
                self.record_dir(DirChange::Created(abs.clone()))?;
            }
            git::transport::adopt(fetched, &remote, &abs)?;
            self.commits.insert(sv.name.clone(), commit.to_string());
            return Ok(());
        }

        let repo = repo.expect("checked above");
        if !self.opts.dry_run {
            g.artifacts.write_exclude(&repo)?;
        }
        let target = match want {
            Want::Commit(o) if git::has_commit(&repo, o) => o,
            _ if self.opts.offline || self.opts.dry_run => {
                if !self.opts.offline {
                    // A dry run reports the fetch the sync will make.
                    self.act(
                        ActionKind::Fetch,
                        &component,
                        format!("{} ({} @ {})", sv.name, redact_url(g.url), g.shown_ref()),
                        Some(checkout),
                        None,
                    );
                }
                let local = match want {
                    Want::Commit(_) => None,
                    Want::Ref => git::resolve(&repo, g.reference),
                };
                match local {
                    Some(o) => o,
                    None if self.opts.dry_run => {
                        self.act(
                            ActionKind::Checkout,
                            &component,
                            format!("{} ({}, after a fetch)", sv.name, g.shown_ref()),
                            Some(checkout),
                            None,
                        );
                        return Ok(());
                    }
                    None => {
                        return Err(Error::failed(format!(
                            "{} needs a fetch of its {}, but `--offline` forbids the network",
                            remote.describe(),
                            match want {
                                Want::Commit(o) => format!("locked commit {o}"),
                                Want::Ref => "ref".to_string(),
                            }
                        ))
                        .with_help("run `cargo hsm sync` once without `--offline`"))
                    }
                }
            }
            _ => {
                self.act(
                    ActionKind::Fetch,
                    &component,
                    format!("{} ({} @ {})", sv.name, redact_url(g.url), g.shown_ref()),
                    Some(checkout),
                    None,
                );
                git::transport::fetch(&repo, &abs, &remote, want)?
            }
        };
        self.check_locked_commit(&sv.name, target)?;
        let head = git::head_commit(&repo);
        if head == Some(target) {
            self.act(
                ActionKind::Fresh,
                &component,
                format!("{} ({} @ {})", sv.name, g.shown_ref(), git::short(target)),
                Some(checkout),
                None,
            );
            self.commits.insert(sv.name.clone(), target.to_string());
            return Ok(());
        }
        self.ensure_clean(g, &repo, &format!("checking out {}", g.shown_ref()))?;
        self.act(
            ActionKind::Checkout,
            &component,
            format!("{} ({} @ {})", sv.name, g.shown_ref(), git::short(target)),
            Some(checkout),
            None,
        );
        if !self.opts.dry_run {
            if let Some(h) = head {
                self.record_dir(DirChange::Moved {
                    path: abs.clone(),
                    previous: h,
                })?;
            }
            git::checkout(&repo, target)?;
            git::transport::submodules(&repo, &abs, &remote)?;
        }
        self.commits.insert(sv.name.clone(), target.to_string());
        Ok(())
    }

    /// Moves an old checkout into `.hsm/trash` (restored if the sync fails,
    /// removed once it succeeds).
    fn move_aside(&mut self, name: &str, abs: &Utf8Path, checkout: &Utf8Path) -> Result<()> {
        let trash = self.root.join(".hsm").join("trash");
        std::fs::create_dir_all(&trash)
            .map_err(|e| Error::failed(format!("cannot create `{trash}`: {e}")))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let aside = trash.join(format!("{name}-{stamp}"));
        self.record_dir(DirChange::MovedAside {
            orig: abs.to_owned(),
            aside: aside.clone(),
        })?;
        std::fs::rename(abs, &aside)
            .map_err(|e| Error::failed(format!("cannot move `{checkout}` aside: {e}")))?;
        Ok(())
    }
}
