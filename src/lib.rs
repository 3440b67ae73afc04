//! `cargo hsm`: one declarative manifest for a Rust monorepo's Python
//! libraries, isolated service environments and container services.
//!
//! The pipeline, one module per stage:
//! [`manifest`] (load) → [`resolve`] (→ [`plan::Plan`]) → [`materialize`]
//! (driver + one file per step) → [`lock`] + [`inspect`]; [`deploy`]
//! renders the Plan for an engine (compose, Kubernetes, images) and [`run`]
//! starts it (`up`).
//!
//! Shared modules, used by the stages and never using them: [`python`]
//! (PEP 503 names, requirements), [`git`] (checkouts), [`envfile`]
//! (a service's resolved env), [`fs`] (atomic writes and the file
//! transaction), [`paths`], [`names`], [`error`].

pub mod build;
#[cfg(feature = "cli")]
pub mod cli;
pub mod deploy;
pub mod diff;
pub mod discovery;
pub mod edit;
pub mod envfile;
pub mod error;
pub mod fs;
pub mod git;
pub mod healthcheck;
pub mod init;
pub mod inspect;
pub mod lock;
pub mod manifest;
pub mod materialize;
pub mod names;
pub mod node;
pub mod paths;
pub mod plan;
pub mod python;
pub mod resolve;
pub mod run;
#[cfg(test)]
mod test_support;
pub mod tool;

pub use error::{Error, Result};
pub use manifest::{load, Loaded};
pub use plan::Plan;
pub use resolve::resolve;

/// Loads the manifest of the workspace at `workspace_root` and resolves it.
pub fn plan(workspace_root: &camino::Utf8Path) -> Result<(Loaded, Plan)> {
    let loaded = load(workspace_root)?;
    let plan = resolve(&loaded)?;
    Ok((loaded, plan))
}

/// `cargo hsm check`: the inspection of what is on disk ([`inspect::check`]),
/// plus everything `cargo hsm sync` would still change, as its dry run
/// predicts it (a generated file, `hsm.lock`, a checkout): so that check
/// passes exactly when `sync --locked` has nothing to change.
pub fn check(plan: &Plan) -> Result<inspect::Report> {
    check_with(plan, &materialize::SyncOptions::default())
}

/// [`check`], predicting the sync that `opts` would run (`--locked`,
/// `--frozen`, `--offline`; always a dry run): with `--locked`, a lock file
/// that sync would change is a finding of what stops `sync --locked`.
pub fn check_with(plan: &Plan, opts: &materialize::SyncOptions) -> Result<inspect::Report> {
    let mut report = inspect::check(plan)?;
    let opts = materialize::SyncOptions {
        dry_run: true,
        ..*opts
    };
    let pending = match materialize::sync(plan, &opts, &mut |_| {}) {
        Ok(dry) => dry
            .actions
            .iter()
            .filter(|a| {
                !matches!(
                    a.action,
                    materialize::ActionKind::Fresh
                        | materialize::ActionKind::Block
                        | materialize::ActionKind::Sync
                )
            })
            .map(|a| {
                (
                    a.component.clone(),
                    format!(
                        "sync would {} {}",
                        a.action.verb().to_lowercase(),
                        a.message
                    ),
                )
            })
            .collect(),
        // The inspection's findings already say what stops the sync (a
        // checkout with local work, a broken environment): one finding
        // each; but what stops `sync --locked` is what `check --locked`
        // was asked about.
        Err(_) if !report.clean && !opts.locked() => Vec::new(),
        Err(e) => vec![(
            "sync".to_string(),
            format!(
                "{} would fail: {}",
                match (opts.frozen, opts.locked) {
                    (true, _) => "sync --frozen",
                    (false, true) => "sync --locked",
                    _ => "sync",
                },
                e.plain()
            ),
        )],
    };
    report.add_pending(pending);
    Ok(report)
}
