//! `cargo hsm check`: inspect everything sync made, change nothing.

use camino::Utf8Path;

use super::shell::{MessageFormat, Shell};
use crate::error::{Result, EXIT_OK, EXIT_PROBLEM};
use crate::inspect::{Finding, Report};

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub lock: super::sync::LockArgs,
    #[command(flatten)]
    pub packages: super::package::PackageArgs,
}

pub fn run(shell: &Shell, root: &Utf8Path, args: &CheckArgs) -> Result<i32> {
    crate::lock::HsmLock::prefetch(&crate::lock::HsmLock::path(root));
    let (_, plan) = crate::plan(root)?;
    let only = args.packages.selected(&plan)?;
    for w in &plan.warnings {
        shell.warn(w);
    }
    // A running sync changes what is inspected: wait for it, as the build
    // script's check does, and say so.
    let _shared = crate::materialize::wait_for_sync(&plan.project.workspace_root, &mut |p| {
        shell.status("Blocking", format!("waiting for file lock on {p}"))
    })?;
    let mut report = crate::check_with(&plan, &args.lock.options())?;
    match only {
        Some(names) => {
            super::package::filter_report(&mut report, &plan, &names);
            let shown = super::package::filter_plan(&plan, &names);
            Ok(print_report(shell, &report, &shown))
        }
        None => Ok(print_report(shell, &report, &plan)),
    }
}

/// Prints a report (human on stderr, JSON on stdout) and returns the exit code.
pub fn print_report(shell: &Shell, report: &Report, plan: &crate::Plan) -> i32 {
    match shell.format {
        MessageFormat::Json => shell.document("check", report),
        MessageFormat::Human => {
            if report.clean {
                let envs = plan.environment_services().count();
                let containers = plan.container_services().count();
                shell.status(
                    "Checked",
                    format!(
                        "{envs} environment service{}, {containers} container service{}, {} librar{}: no drift",
                        plural(envs),
                        plural(containers),
                        plan.libraries.len(),
                        if plan.libraries.len() == 1 { "y" } else { "ies" }
                    ),
                );
            } else {
                for f in &report.findings {
                    eprintln!("{}", render(f, &shell.style));
                }
                let fixes: std::collections::BTreeSet<String> =
                    report.findings.iter().map(|f| f.help()).collect();
                shell.headline(
                    "error",
                    &format!(
                        "{} finding{}: what is on disk is not what the manifest and the lock files say",
                        report.findings.len(),
                        plural(report.findings.len())
                    ),
                );
                for fix in fixes {
                    shell.headline("help", &fix);
                }
            }
        }
    }
    if report.clean {
        EXIT_OK
    } else {
        EXIT_PROBLEM
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One drift line: `drift: component [kind]` (yellow on a terminal), what
/// was expected, and what was found, a diff in it in git's colours.
fn render(f: &Finding, style: &crate::error::render::Style) -> String {
    use crate::error::render::{BOLD, YELLOW};
    let mut s = format!(
        "{} {} [{}]\n  expected: {}\n     found: ",
        style.paint(YELLOW, "drift:"),
        style.paint(BOLD, &f.component),
        f.kind.as_str(),
        f.expected
    );
    let mut lines = f.found.lines();
    s.push_str(lines.next().unwrap_or(""));
    let rest: Vec<&str> = lines.collect();
    let diff = style.color && crate::diff::is_unified(&rest.join("\n"));
    for l in rest {
        let l = if diff {
            crate::diff::paint_line(l, true)
        } else {
            l.to_string()
        };
        s.push_str(&format!("\n            {l}"));
    }
    s
}
