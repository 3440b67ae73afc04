//! `cargo hsm compose [--check]`: write the compose file on its own, or
//! check that the one on disk is what the manifest generates now.

use camino::Utf8Path;
use clap::Args;

use super::shell::{MessageFormat, Shell};
use crate::deploy::compose::{self, ComposeOutcome, ComposeStatus};
use crate::error::{Error, Result, EXIT_OK};
use crate::fs::FileTxn;
use crate::lock::{HsmLock, LOCK_FILE};

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Write nothing; exit 1 if the file on disk differs from what would be written
    #[arg(long)]
    pub check: bool,
}

pub fn run(shell: &Shell, root: &Utf8Path, args: &ComposeArgs) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    for w in &plan.warnings {
        shell.warn(w);
    }
    let shown = &plan.project.compose_file;
    if args.check {
        let status = compose::check(&plan)?;
        if shell.format == MessageFormat::Json {
            shell.document(
                "compose-check",
                &serde_json::json!({ "path": shown, "result": status }),
            );
        }
        let problem = match status {
            // The same words as `compose` for the same state.
            ComposeStatus::Fresh => {
                let services: Vec<String> =
                    plan.container_services().map(|s| s.name.clone()).collect();
                shell.status(
                    "Fresh",
                    format!("`{shown}` ({})", services_phrase(&services)),
                );
                return Ok(EXIT_OK);
            }
            ComposeStatus::Absent => {
                shell.status("Skipping", format!("`{shown}`: {NONE_SELECTED}"));
                return Ok(EXIT_OK);
            }
            ComposeStatus::Missing => Error::failed(format!("`{shown}` is missing")),
            ComposeStatus::Stale => Error::failed(format!("`{shown}` exists, but {NONE_SELECTED}")),
            ComposeStatus::Differs { diff } => Error::failed(format!(
                "`{shown}` differs from what the manifest generates"
            ))
            .with_detail(diff),
        };
        return Err(problem.with_help("run `cargo hsm compose` to bring it up to date"));
    }

    // The compose file is sync's output too: no sync may run meanwhile.
    let ws = &plan.project.workspace_root;
    let _guard = crate::materialize::acquire_sync_lock(ws, &mut |p| {
        shell.status("Blocking", format!("waiting for file lock on {p}"))
    })?;
    let mut txn = FileTxn::new();
    let written = compose::write(&plan, &mut txn).and_then(|o| {
        let lock = record_in_lock(&plan, &mut txn)?;
        Ok((o, lock))
    });
    let (outcome, lock) = match written {
        Ok(o) => o,
        Err(e) => {
            txn.rollback();
            return Err(e);
        }
    };
    txn.commit();
    if shell.format == MessageFormat::Json {
        // The file's state now, in the words of `compose --check`'s `result`.
        let status = match outcome {
            ComposeOutcome::Written { .. } | ComposeOutcome::Unchanged { .. } => "fresh",
            ComposeOutcome::Removed { .. } | ComposeOutcome::NotNeeded { .. } => "absent",
        };
        let mut doc = serde_json::json!({ "path": shown, "result": { "status": status } });
        if let (Some(d), Ok(serde_json::Value::Object(o))) =
            (doc.as_object_mut(), serde_json::to_value(&outcome))
        {
            for (k, v) in o {
                if k != "path" {
                    d.insert(k, v);
                }
            }
        }
        shell.document("compose", &doc);
    }
    match &outcome {
        ComposeOutcome::Written { services, .. } => shell.status(
            "Writing",
            format!("`{shown}` ({})", services_phrase(services)),
        ),
        ComposeOutcome::Unchanged { services, .. } => shell.status(
            "Fresh",
            format!("`{shown}` ({})", services_phrase(services)),
        ),
        ComposeOutcome::Removed { .. } => {
            shell.status("Removing", format!("`{shown}`: {NONE_SELECTED}"))
        }
        ComposeOutcome::NotNeeded { .. } => {
            shell.status("Skipping", format!("`{shown}`: {NONE_SELECTED}"))
        }
    }
    match lock {
        LockUpdate::Written => {
            shell.status("Writing", format!("`{LOCK_FILE}` (the hash of `{shown}`)"))
        }
        LockUpdate::Unchanged => {}
        LockUpdate::NoLock => shell.warn(format!(
            "`{LOCK_FILE}` was not updated: there is none yet; `cargo hsm sync` writes it"
        )),
    }
    Ok(EXIT_OK)
}

/// What happened to `hsm.lock`, which records the compose file's hash.
enum LockUpdate {
    Written,
    Unchanged,
    NoLock,
}

/// Records the compose file as written now in `hsm.lock` (inside `txn`),
/// so that `sync --locked` and `check` agree with the file on disk.
fn record_in_lock(plan: &crate::Plan, txn: &mut FileTxn) -> Result<LockUpdate> {
    let path = HsmLock::path(&plan.project.workspace_root);
    let Some(mut lock) = HsmLock::read(&path)? else {
        return Ok(LockUpdate::NoLock);
    };
    let rel = &plan.project.compose_file;
    lock.files.retain(|f| &f.path != rel);
    if let Some(text) = compose::render(plan) {
        lock.record_file(rel.clone(), text.as_bytes());
    }
    let written = txn
        .write(&path, lock.to_toml().as_bytes(), None)
        .map_err(|e| Error::failed(format!("cannot write `{LOCK_FILE}`: {e}")))?;
    Ok(if written {
        LockUpdate::Written
    } else {
        LockUpdate::Unchanged
    })
}

/// Why there is no compose file, in every command's words.
const NONE_SELECTED: &str = "no container service (docker, podman) is selected";

fn services_phrase(services: &[String]) -> String {
    let noun = if services.len() == 1 {
        "container service"
    } else {
        "container services"
    };
    format!("{} {noun}: {}", services.len(), services.join(", "))
}
