//! `cargo hsm sync`: parse the flags, call [`crate::materialize::sync_with_progress`],
//! and show its progress: spinners on a terminal (one line per running
//! environment sync), plain status lines otherwise, nothing but the JSON
//! document with `--message-format json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use camino::Utf8Path;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::shell::{MessageFormat, Shell, Verbosity};
use crate::error::{Result, EXIT_OK, EXIT_PROBLEM};
use crate::materialize::{self, Action, ActionKind, Progress, SyncOptions};

/// `--locked`, `--frozen` and `--offline`, defined once for `sync` and
/// `check` (which predicts the sync they give).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LockArgs {
    /// Fail if `hsm.lock` or a service's lock file would change
    #[arg(long)]
    pub locked: bool,
    /// Use the commits in `hsm.lock` and the lock files as they are; resolve nothing (implies --locked)
    #[arg(long)]
    pub frozen: bool,
    /// No network for git or uv (also `CARGO_NET_OFFLINE=true`)
    #[arg(long, env = "CARGO_NET_OFFLINE", hide_env = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub offline: bool,
}

impl LockArgs {
    /// Sync's options for these flags.
    pub fn options(&self) -> SyncOptions {
        SyncOptions {
            locked: self.locked,
            frozen: self.frozen,
            offline: self.offline,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print what sync would do; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Environment syncs to run at once [default: available parallelism]
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Skip the inspection of the result (`cargo hsm check`) at the end
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub packages: super::package::PackageArgs,
}

/// The JSON document of `sync --message-format json`.
#[derive(Serialize)]
struct SyncDocument<'a> {
    dry_run: bool,
    actions: &'a [Action],
    warnings: &'a [String],
    /// The inspection of the result, unless `--no-verify` or `--dry-run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'a crate::inspect::Report>,
}

pub fn run(shell: &Shell, root: &Utf8Path, args: &SyncArgs) -> Result<i32> {
    let started = std::time::Instant::now();
    crate::lock::HsmLock::prefetch(&crate::lock::HsmLock::path(root));
    let (_, plan) = crate::plan(root)?;
    for w in &plan.warnings {
        shell.warn(w);
    }
    let opts = SyncOptions {
        dry_run: args.dry_run,
        jobs: args.jobs.map_or(0, usize::from),
        tool_versions: shell.verbosity == super::shell::Verbosity::Verbose,
        ..args.lock.options()
    };
    let only = args.packages.selected(&plan)?;
    let scope = materialize::Scope {
        update: None,
        only: only.clone(),
    };
    let (report, mut verification) =
        sync_and_verify_with(shell, &plan, &opts, !args.no_verify, &scope)?;
    let plan = match &only {
        Some(names) => {
            if let Some(v) = verification.as_mut() {
                super::package::filter_report(v, &plan, names);
            }
            super::package::filter_plan(&plan, names)
        }
        None => plan,
    };
    let mut code = EXIT_OK;
    match shell.format {
        MessageFormat::Json => shell.document(
            "sync",
            &SyncDocument {
                dry_run: report.dry_run,
                actions: &report.actions,
                warnings: &report.warnings,
                verification: verification.as_ref(),
            },
        ),
        MessageFormat::Human => {
            if report.dry_run {
                shell.warn("dry run: nothing was changed");
            }
            if let Some(v) = verification.as_ref().filter(|v| !v.clean) {
                super::check::print_report(shell, v, &plan);
            }
            let what = match (&only, report.dry_run) {
                (_, true) => "dry run".to_string(),
                (Some(names), false) => format!(
                    "sync of {}",
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                (None, false) => "sync".to_string(),
            };
            finished(shell, started, &what, verification.as_ref());
        }
    }
    if verification.is_some_and(|v| !v.clean) {
        code = EXIT_PROBLEM;
    }
    Ok(code)
}

/// cargo's closing line: `Finished sync in 1.23s; verified: no drift`.
pub(super) fn finished(
    shell: &Shell,
    started: std::time::Instant,
    what: &str,
    verification: Option<&crate::inspect::Report>,
) {
    let verified = match verification {
        None => String::new(),
        Some(v) if v.clean => "; verified: no drift".to_string(),
        Some(v) => {
            let n = v.findings.len();
            format!(
                "; verification found {n} problem{}",
                if n == 1 { "" } else { "s" }
            )
        }
    };
    shell.status(
        "Finished",
        format!(
            "{what} in {:.2}s{verified}",
            started.elapsed().as_secs_f64()
        ),
    );
}

/// Runs the sync with its progress display, then (unless `verify` is
/// false or it is a dry run) its own verification: the same inspection as
/// `cargo hsm check`, but not again of what sync found unchanged (`Fresh`).
pub(super) fn sync_and_verify(
    shell: &Shell,
    plan: &crate::Plan,
    opts: &SyncOptions,
    verify: bool,
) -> Result<(materialize::SyncReport, Option<crate::inspect::Report>)> {
    sync_and_verify_with(shell, plan, opts, verify, &materialize::Scope::default())
}

/// [`sync_and_verify`] of a part of the selection (`-p`), or as `cargo hsm
/// update`.
pub(super) fn sync_and_verify_with(
    shell: &Shell,
    plan: &crate::Plan,
    opts: &SyncOptions,
    verify: bool,
    scope: &materialize::Scope,
) -> Result<(materialize::SyncReport, Option<crate::inspect::Report>)> {
    let mut display = Display::new(shell);
    let result = materialize::sync_scoped(plan, opts, scope, &mut |p| display.event(p));
    display.finish(result.is_ok());
    let report = result?;
    for w in &report.warnings {
        shell.warn(w);
    }
    let verification = if report.dry_run || !verify {
        None
    } else {
        Some(crate::inspect::verify(
            plan,
            Some(&report.lock),
            &report.unchanged(),
        )?)
    };
    Ok((report, verification))
}

/// Sync's progress on stderr.
struct Display<'s> {
    shell: &'s Shell,
    /// Spinners, when stderr is a terminal.
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    /// `Fresh` components not shown one by one (normal verbosity).
    fresh: usize,
}

impl<'s> Display<'s> {
    fn new(shell: &'s Shell) -> Self {
        let live = shell.format == MessageFormat::Human
            && shell.verbosity != Verbosity::Quiet
            && std::io::stderr().is_terminal();
        let bars = live.then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                HashMap::new(),
            )
        });
        Display {
            shell,
            bars,
            fresh: 0,
        }
    }

    /// Prints a line above the spinners.
    fn line(&self, f: impl FnOnce()) {
        match &self.bars {
            Some((mp, _)) => mp.suspend(f),
            None => f(),
        }
    }

    fn event(&mut self, p: Progress<'_>) {
        let shell = self.shell;
        match p {
            Progress::Action(a) if a.action == ActionKind::Fresh => {
                if shell.verbosity == Verbosity::Verbose {
                    self.line(|| shell.status(a.action.verb(), &a.message));
                } else {
                    self.fresh += 1;
                }
            }
            Progress::Action(a) => {
                self.line(|| {
                    shell.status(a.action.verb(), &a.message);
                    if let Some(c) = &a.command {
                        shell.verbose(format!("             `{c}`"));
                    }
                    if let Some(d) = &a.diff {
                        shell.diff(d);
                    }
                });
                if let (Some((mp, running)), ActionKind::Sync) = (&mut self.bars, a.action) {
                    let bar = mp.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                            .expect("valid template"),
                    );
                    bar.set_message(a.message.clone());
                    bar.enable_steady_tick(Duration::from_millis(100));
                    running.insert(a.component.clone(), bar);
                }
            }
            Progress::Finished { component, .. } => {
                if let Some((_, running)) = &mut self.bars {
                    if let Some(bar) = running.remove(component) {
                        bar.finish_and_clear();
                    }
                }
            }
        }
    }

    /// Clears the spinners and, after a success, prints the summary of
    /// fresh components.
    fn finish(self, ok: bool) {
        if let Some((mp, running)) = self.bars {
            for bar in running.into_values() {
                bar.finish_and_clear();
            }
            let _ = mp.clear();
        }
        if ok && self.fresh > 0 {
            let n = self.fresh;
            self.shell.status(
                "Fresh",
                format!(
                    "{n} component{} unchanged (`-v` lists them)",
                    if n == 1 { "" } else { "s" }
                ),
            );
        }
    }
}
