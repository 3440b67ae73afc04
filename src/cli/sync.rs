//! `cargo hsm sync`: parse the flags, call [`crate::materialize::sync`].

use camino::Utf8Path;
use serde::Serialize;

use super::shell::{MessageFormat, Shell};
use crate::error::{Result, EXIT_OK, EXIT_PROBLEM};
use crate::materialize::{self, Action, SyncOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Fail if `hsm.lock` or a service's lock file would change
    #[arg(long)]
    pub locked: bool,
    /// Use the commits in `hsm.lock` and the lock files as they are; resolve nothing (implies --locked)
    #[arg(long)]
    pub frozen: bool,
    /// No network for git or uv
    #[arg(long)]
    pub offline: bool,
    /// Print what sync would do; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the inspection of the result (`cargo hsm check`) at the end
    #[arg(long)]
    pub no_verify: bool,
}

/// The JSON document of `sync --message-format json`.
#[derive(Serialize)]
struct SyncDocument<'a> {
    schema: u32,
    reason: &'static str,
    dry_run: bool,
    actions: &'a [Action],
    warnings: &'a [String],
    /// The inspection of the result, unless `--no-verify` or `--dry-run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'a crate::inspect::Report>,
}

pub fn run(shell: &Shell, root: &Utf8Path, args: &SyncArgs) -> Result<i32> {
    let (_, plan) = crate::plan(root)?;
    for w in &plan.warnings {
        shell.warn(w);
    }
    let opts = SyncOptions {
        locked: args.locked,
        frozen: args.frozen,
        offline: args.offline,
        dry_run: args.dry_run,
    };
    let mut progress = |a: &Action| {
        shell.status(a.action.verb(), &a.message);
        if let Some(c) = &a.command {
            shell.verbose(format!("             `{c}`"));
        }
    };
    let report = materialize::sync(&plan, &opts, &mut progress)?;
    for w in &report.warnings {
        shell.warn(w);
    }
    // Sync's own verification: the same inspection as `cargo hsm check`.
    let verification = if report.dry_run || args.no_verify {
        None
    } else {
        Some(crate::inspect::check(&plan)?)
    };
    let mut code = EXIT_OK;
    match shell.format {
        MessageFormat::Json => shell.json(&SyncDocument {
            schema: crate::plan::PLAN_SCHEMA,
            reason: "sync",
            dry_run: report.dry_run,
            actions: &report.actions,
            warnings: &report.warnings,
            verification: verification.as_ref(),
        }),
        MessageFormat::Human => {
            if report.dry_run {
                shell.warn("dry run: nothing was changed");
            }
            if let Some(v) = verification.as_ref().filter(|v| !v.clean) {
                super::check::print_report(shell, v, &plan);
            }
        }
    }
    if verification.is_some_and(|v| !v.clean) {
        code = EXIT_PROBLEM;
    }
    Ok(code)
}
