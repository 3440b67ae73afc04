//! Drift of what sync wrote or checked out: git checkouts against
//! `hsm.lock`, the compose file and env files against what the manifest
//! generates now, and `hsm.lock` against the manifest's selection.

use std::collections::BTreeSet;

use camino::Utf8Path;

use super::{finding, Finding, FindingKind};
use crate::lock::{sha256_hex, HsmLock};
use crate::manifest::model::Source;
use crate::plan::Plan;
use crate::{envfile, git};

/// Git-sourced services: the checkout exists, sits at the commit `hsm.lock`
/// recorded, and has no local changes.
pub fn git_services(
    plan: &Plan,
    lock: Option<&HsmLock>,
    skip: &BTreeSet<String>,
    findings: &mut Vec<Finding>,
) {
    let root = &plan.project.workspace_root;
    for sv in &plan.services {
        let (Some(Source::Git { .. }), Some(checkout), Some(_)) =
            (&sv.source, &sv.checkout_path, sv.runtime())
        else {
            continue;
        };
        let component = format!("service:{}", sv.name);
        if skip.contains(&component) {
            continue;
        }
        let repo = match git::open(&root.join(checkout)) {
            Ok(Some(r)) => r,
            _ => {
                findings.push(finding(
                    FindingKind::GitMissing,
                    &component,
                    format!("a git checkout at `{checkout}`"),
                    "none",
                ));
                continue;
            }
        };
        let locked = lock
            .and_then(|l| l.service(&sv.name))
            .and_then(|s| s.git.as_ref());
        let head = git::head_commit(&repo);
        if let Some(locked) = locked {
            let head_s = head
                .map(|h| h.to_string())
                .unwrap_or_else(|| "no commit".into());
            if head_s != locked.commit {
                findings.push(finding(
                    FindingKind::GitWrongCommit,
                    &component,
                    format!("commit {} (hsm.lock)", short(&locked.commit)),
                    format!("commit {}", short(&head_s)),
                ));
            }
        }
        // Files sync itself wrote into the checkout (hashes in hsm.lock) and
        // derived files (environments, build artifacts) are not local work.
        // The `uv.lock` uv writes at the root of the upstream's own uv
        // workspace when the service is a member of it.
        let member_lock = sv.target_path.as_ref().and_then(|t| {
            let ws =
                crate::python::project::uv_workspace_root(&root.join(t), &root.join(checkout))?;
            Some(ws.strip_prefix(root.join(checkout)).ok()?.join("uv.lock"))
        });
        let is_ours = |p: &Utf8Path| -> bool {
            if member_lock.as_deref() == Some(p) {
                return true;
            }
            let rel = checkout.join(p);
            match (
                lock.and_then(|l| l.recorded_hash(&rel)),
                std::fs::read(root.join(&rel)),
            ) {
                (Some(h), Ok(bytes)) => sha256_hex(&bytes) == h,
                _ => false,
            }
        };
        let patterns = crate::materialize::runtimes::artifacts_of(sv);
        let artifacts = match &sv.source {
            Some(Source::Git { subdirectory, .. }) => {
                git::Artifacts::new(subdirectory.as_deref().map(|p| p.as_str()), patterns)
            }
            _ => git::Artifacts::new(None, patterns),
        };
        match git::status::changes(&repo, &artifacts, &is_ours, false) {
            Ok(changes) if !changes.is_empty() => {
                let mut f = finding(
                    FindingKind::GitDirty,
                    &component,
                    "a clean checkout",
                    changes.join(", "),
                );
                f.fix = format!(
                    "commit, stash or discard the changes in `{checkout}`, then run `cargo hsm sync`"
                );
                findings.push(f);
            }
            Ok(_) => {}
            Err(e) => findings.push(finding(
                FindingKind::GitDirty,
                &component,
                "a readable checkout",
                e.to_string(),
            )),
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The compose file equals what the manifest generates now.
pub fn compose(plan: &Plan, findings: &mut Vec<Finding>) -> crate::Result<()> {
    use crate::deploy::compose::ComposeStatus;
    let file = &plan.project.compose_file;
    let (expected, found) = match crate::deploy::compose::check(plan)? {
        ComposeStatus::Fresh | ComposeStatus::Absent => return Ok(()),
        ComposeStatus::Missing => (
            format!("`{file}` with the container services"),
            "no file".to_string(),
        ),
        ComposeStatus::Stale => (
            "no compose file (no container service is selected)".to_string(),
            format!("`{file}`"),
        ),
        ComposeStatus::Differs { diff } => (
            format!("`{file}` as generated from the manifest"),
            format!("a file that differs:\n{}", diff.trim_end()),
        ),
    };
    findings.push(finding(
        FindingKind::ComposeDrift,
        "compose",
        expected,
        found,
    ));
    Ok(())
}

/// Env files of environment services equal their rendering from the manifest.
pub fn env_files(
    plan: &Plan,
    skip: &BTreeSet<String>,
    findings: &mut Vec<Finding>,
) -> crate::Result<()> {
    let root = &plan.project.workspace_root;
    for sv in plan.environment_services() {
        let component = format!("service:{}", sv.name);
        if skip.contains(&component) {
            continue;
        }
        let rel = envfile::env_file_path(&sv.name);
        let want = envfile::render_env(root, sv)?;
        match std::fs::read_to_string(root.join(&rel)) {
            Ok(have) if have == want => {}
            Ok(have) => {
                let keys = |t: &str| -> Vec<String> {
                    t.lines()
                        .filter(|l| !l.starts_with('#'))
                        .map(str::to_string)
                        .collect()
                };
                let (w, h) = (keys(&want), keys(&have));
                let mut changed: Vec<String> = w
                    .iter()
                    .filter(|l| !h.contains(l))
                    .map(|l| format!("-{l}"))
                    .collect();
                changed.extend(h.iter().filter(|l| !w.contains(l)).map(|l| format!("+{l}")));
                findings.push(finding(
                    FindingKind::EnvFileDrift,
                    &component,
                    format!("`{rel}` as generated from the manifest"),
                    format!(
                        "a file that differs ({})",
                        if changed.is_empty() {
                            "comments or order".to_string()
                        } else {
                            changed.join(" ")
                        }
                    ),
                ));
            }
            Err(_) => findings.push(finding(
                FindingKind::EnvFileDrift,
                &component,
                format!("`{rel}`"),
                "no file",
            )),
        }
    }
    Ok(())
}

/// `hsm.lock` describes the current selection: same components, modes,
/// runtimes, sources and target paths, and the services' own lock files
/// have not changed since.
pub fn lock(
    plan: &Plan,
    lock: Option<&HsmLock>,
    skip: &BTreeSet<String>,
    findings: &mut Vec<Finding>,
) {
    let Some(lock) = lock else {
        findings.push(finding(
            FindingKind::LockMissing,
            "lock",
            "`hsm.lock` (written by sync)",
            "no file",
        ));
        return;
    };
    let mut stale = |what: String, expected: String, found: String| {
        findings.push(finding(FindingKind::LockStale, &what, expected, found));
    };
    for l in &plan.libraries {
        let component = format!("library:{}", l.name);
        match lock.libraries.iter().find(|x| x.name == l.name) {
            None => stale(
                component,
                "selected (manifest)".into(),
                "not in hsm.lock".into(),
            ),
            Some(x) => {
                let want = (
                    l.mode.to_string(),
                    git::transport::redact_text(&l.source.describe()),
                    l.requirement.clone(),
                );
                let have = (x.mode.clone(), x.source.clone(), x.requirement.clone());
                if want != have {
                    stale(
                        component,
                        format!("{} {} (manifest)", want.0, want.1),
                        format!("{} {} (hsm.lock)", have.0, have.1),
                    );
                }
            }
        }
    }
    let planned: BTreeSet<&str> = plan.libraries.iter().map(|l| l.name.as_str()).collect();
    for x in &lock.libraries {
        if !planned.contains(x.name.as_str()) {
            stale(
                format!("library:{}", x.name),
                "not selected (manifest)".into(),
                "in hsm.lock".into(),
            );
        }
    }
    let root = &plan.project.workspace_root;
    for sv in &plan.services {
        let component = format!("service:{}", sv.name);
        let Some(x) = lock.service(&sv.name) else {
            stale(
                component,
                "selected (manifest)".into(),
                "not in hsm.lock".into(),
            );
            continue;
        };
        let runtime = sv
            .runtime()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "external".into());
        let source = sv
            .source
            .as_ref()
            .map(|s| git::transport::redact_text(&s.describe()))
            .unwrap_or_else(|| "none".into());
        let want = (sv.mode.to_string(), runtime, source, sv.target_path.clone());
        let have = (
            x.mode.clone(),
            x.runtime.clone(),
            x.source.clone(),
            x.target_path.clone(),
        );
        if want != have {
            stale(
                component,
                format!("{} {} {} (manifest)", want.0, want.1, want.2),
                format!("{} {} {} (hsm.lock)", have.0, have.1, have.2),
            );
            continue;
        }
        if let Some(lf) = x.lockfile.as_ref().filter(|_| !skip.contains(&component)) {
            let now = std::fs::read(root.join(&lf.path))
                .map(|b| sha256_hex(&b))
                .ok();
            if now.as_deref() != Some(lf.sha256.as_str()) {
                stale(
                    component,
                    format!("`{}` as recorded in hsm.lock", lf.path),
                    if now.is_some() {
                        "a changed lock file".into()
                    } else {
                        "no lock file".into()
                    },
                );
            }
        }
    }
    let planned: BTreeSet<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    for x in &lock.services {
        if !planned.contains(x.name.as_str()) {
            stale(
                format!("service:{}", x.name),
                "not selected (manifest)".into(),
                "in hsm.lock".into(),
            );
        }
    }
}
