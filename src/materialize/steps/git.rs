//! Step 2, git sources: clone or move each git-sourced service's checkout,
//! never over local work.

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::git;
use crate::lock::{sha256_hex, LockedGit};
use crate::manifest::model::Source;
use crate::materialize::driver::Syncer;
use crate::materialize::journal::DirChange;
use crate::materialize::pool;
use crate::materialize::ActionKind;
use crate::plan::PlannedService;

impl Syncer<'_> {
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

    pub(in crate::materialize) fn git_sources(&mut self) -> Result<()> {
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
}

fn ref_not_found(sv: &PlannedService, url: &str, reference: Option<&str>) -> Error {
    Error::failed(format!(
        "`{}` has no tag, branch or commit `{}` (service `{}`)",
        url,
        reference.unwrap_or("HEAD"),
        sv.name
    ))
    .with_help("check `ref` in the service's git source")
}
