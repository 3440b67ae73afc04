//! `cargo hsm clean [NAME…]`: removes what sync rebuilds — the services'
//! environments, the clones hsm made (only when nothing in them would be
//! lost, by the same rules as a sync that replaces one), the shared
//! project's `.venv` and the caches under `.hsm/` — and says what it
//! removed. Never while an interrupted sync's journal waits to be rolled
//! back, or while services that `up` started run.

use camino::{Utf8Path, Utf8PathBuf};

use super::shell::{MessageFormat, Shell};
use crate::error::{Error, Result, EXIT_OK};
use crate::lock::HsmLock;
use crate::manifest::model::Source;

#[derive(Debug, Clone, clap::Args)]
pub struct CleanArgs {
    /// Services to clean, or `libraries` for the shared project's `.venv` (default: everything, and `.hsm/`'s caches)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Caches under `.hsm/` that sync rebuilds (never `run/`, the journal or the lock).
const CACHES: [&str; 2] = [".hsm/fingerprints.json", ".hsm/trash"];

/// Services that `up` started and that still run.
fn running(root: &Utf8Path) -> Vec<String> {
    use crate::run::state::{liveness, read_valid, Liveness};
    read_valid(root, &mut |_| {})
        .into_iter()
        .filter(|r| match (r.pid, r.start_ticks) {
            (Some(pid), Some(t)) => {
                matches!(liveness(pid, t), Liveness::Running | Liveness::GroupLeft)
            }
            _ => r.container.is_some(),
        })
        .map(|r| r.service)
        .collect()
}

/// Why a clone hsm made must stay: not hsm's, or work that removing it loses.
fn clone_kept(
    root: &Utf8Path,
    checkout: &Utf8Path,
    subdirectory: Option<&Utf8Path>,
    patterns: &'static crate::git::ArtifactPatterns,
    lock: Option<&HsmLock>,
) -> Result<Option<String>> {
    let Some(repo) = crate::git::open(&root.join(checkout))? else {
        return Ok(None);
    };
    if !crate::git::is_managed(&repo) {
        return Ok(Some("hsm did not clone it".into()));
    }
    let artifacts = crate::git::Artifacts::new(subdirectory.map(Utf8Path::as_str), patterns);
    // hsm's own recorded edits (a uv service's `pyproject.toml`) are not work.
    let is_ours = |p: &Utf8Path| lock.is_some_and(|l| l.holds(root, &checkout.join(p)));
    let lost = crate::git::local_work(&repo, &artifacts, &is_ours)?;
    Ok((!lost.is_empty()).then(|| format!("it has local work: {}", lost.join("; "))))
}

pub fn run(shell: &Shell, root: &Utf8Path, args: &CleanArgs) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    for n in &args.names {
        if n != "libraries" && plan.service(n).is_none() {
            let known = plan.services.iter().map(|s| s.name.as_str());
            let e = Error::config(format!(
                "`{n}` is not a selected service (nor `libraries`, the shared project)"
            ));
            return Err(match crate::names::did_you_mean(n, known) {
                Some(k) => e.with_help(format!("did you mean `{k}`?")),
                None => e.with_help("`cargo hsm list` shows the selected services"),
            });
        }
    }
    if crate::materialize::journal::pending(root) {
        return Err(Error::failed(
            "an interrupted sync left its journal: cleaning now could remove what rolling it back restores",
        )
        .with_help("run `cargo hsm sync` (it rolls the interrupted sync back first), then clean"));
    }
    let up = running(root);
    if !up.is_empty() {
        return Err(Error::failed(format!(
            "services that `cargo hsm up` started are running: {}",
            up.join(", ")
        ))
        .with_help("stop them with `cargo hsm down`, then clean"));
    }
    // No sync may start meanwhile.
    let _guard = crate::materialize::acquire_sync_lock(root, &mut |p| {
        shell.status("Blocking", format!("waiting for file lock on {p}"))
    })?;
    let lock = HsmLock::read(&HsmLock::path(root))?;
    let all = args.names.is_empty();
    let wanted = |n: &str| all || args.names.iter().any(|x| x == n);
    let mut remove: Vec<Utf8PathBuf> = Vec::new();
    let mut kept: Vec<(Utf8PathBuf, String)> = Vec::new();
    for sv in plan.services.iter().filter(|s| wanted(&s.name)) {
        let git = match &sv.source {
            Some(Source::Git { subdirectory, .. }) => {
                sv.checkout_path.clone().map(|c| (c, subdirectory.clone()))
            }
            _ => None,
        };
        if let Some((checkout, sub)) = git {
            match clone_kept(
                root,
                &checkout,
                sub.as_deref(),
                crate::materialize::runtimes::artifacts_of(sv),
                lock.as_ref(),
            )? {
                None => {
                    remove.push(checkout);
                    continue;
                }
                Some(why) => kept.push((checkout, why)),
            }
        }
        if let (Some(rt), Some(target)) = (sv.runtime(), &sv.target_path) {
            if let Some(adapter) = crate::materialize::runtimes::adapter(rt) {
                remove.push(adapter.env_dir(target));
            }
        }
    }
    if wanted("libraries") {
        remove.push(crate::paths::normalize(
            &plan.project.python_project.join(".venv"),
        ));
    }
    // What sync found fresh no longer is: every fingerprint, or those of
    // the components named (the others stay fresh).
    let mut forgotten = Vec::new();
    if all {
        remove.extend(CACHES.iter().map(Utf8PathBuf::from));
    } else {
        use crate::materialize::fingerprint::{Fingerprints, FINGERPRINTS};
        let mut fps = Fingerprints::load(root);
        for n in &args.names {
            let component = match n.as_str() {
                "libraries" => n.clone(),
                _ => format!("service:{n}"),
            };
            if fps.remove(&component) {
                forgotten.push(component);
            }
        }
        if !forgotten.is_empty() {
            fps.save(root)
                .map_err(|e| Error::failed(format!("cannot write `{FINGERPRINTS}`: {e}")))?;
        }
    }
    let mut removed = Vec::new();
    for rel in remove {
        let abs = root.join(&rel);
        let Ok(meta) = abs.symlink_metadata() else {
            continue;
        };
        let r = if meta.is_dir() {
            std::fs::remove_dir_all(&abs)
        } else {
            std::fs::remove_file(&abs)
        };
        r.map_err(|e| Error::failed(format!("cannot remove `{rel}`: {e}")))?;
        removed.push(rel);
    }
    if shell.format == MessageFormat::Json {
        let kept: Vec<serde_json::Value> = kept
            .iter()
            .map(|(p, why)| serde_json::json!({ "path": p, "why": why }))
            .collect();
        shell.document(
            "clean",
            &serde_json::json!({ "removed": removed, "kept": kept, "forgotten": forgotten }),
        );
        return Ok(EXIT_OK);
    }
    for p in &removed {
        shell.status("Removed", format!("`{p}`"));
    }
    for c in &forgotten {
        shell.status(
            "Forgot",
            format!("the fingerprint of `{c}` in `.hsm/fingerprints.json`"),
        );
    }
    for (p, why) in &kept {
        shell.warn(format!("kept the clone `{p}`: {why}"));
    }
    if removed.is_empty() && forgotten.is_empty() {
        shell.status("Clean", "nothing to remove");
    }
    Ok(EXIT_OK)
}
