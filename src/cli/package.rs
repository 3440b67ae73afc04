//! `-p/--package NAME` on `sync`, `check` and `list`, as `cargo -p` and
//! `uv sync --package`: act on (or show) some services or libraries only.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::inspect::Report;
use crate::plan::Plan;

/// The name that stands for the whole shared project.
const LIBRARIES: &str = "libraries";

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PackageArgs {
    /// Only this service or library (repeatable); `libraries` is the whole shared project
    #[arg(short = 'p', long = "package", value_name = "NAME")]
    pub packages: Vec<String>,
}

impl PackageArgs {
    /// The named components, checked against the Plan; `None` without `-p`.
    pub fn selected(&self, plan: &Plan) -> Result<Option<BTreeSet<String>>> {
        if self.packages.is_empty() {
            return Ok(None);
        }
        for n in &self.packages {
            if n == LIBRARIES || plan.service(n).is_some() || plan.library(n).is_some() {
                continue;
            }
            let known = plan
                .services
                .iter()
                .map(|s| s.name.as_str())
                .chain(plan.libraries.iter().map(|l| l.name.as_str()));
            let e = Error::config(format!(
                "`-p {n}`: no selected service or library is named `{n}`"
            ));
            return Err(match crate::names::did_you_mean(n, known) {
                Some(k) => e.with_help(format!("did you mean `{k}`?")),
                None => e.with_help("`cargo hsm list` shows what is selected"),
            });
        }
        Ok(Some(self.packages.iter().cloned().collect()))
    }
}

/// Whether `-p` of `names` covers the shared project's libraries.
fn libraries_named(plan: &Plan, names: &BTreeSet<String>) -> bool {
    names.contains(LIBRARIES) || plan.libraries.iter().any(|l| names.contains(&l.name))
}

/// The Plan with only the named components (and the groups that select
/// them, with only those options).
pub fn filter_plan(plan: &Plan, names: &BTreeSet<String>) -> Plan {
    let mut p = plan.clone();
    let all_libraries = names.contains(LIBRARIES);
    p.services.retain(|s| names.contains(&s.name));
    p.libraries
        .retain(|l| all_libraries || names.contains(&l.name));
    let kept: BTreeSet<String> = p
        .services
        .iter()
        .map(|s| s.name.clone())
        .chain(p.libraries.iter().map(|l| l.name.clone()))
        .collect();
    for g in &mut p.groups {
        g.selection.retain(|o| kept.contains(o));
    }
    p.groups.retain(|g| !g.selection.is_empty());
    p
}

/// The findings about the named components only: their own, the shared
/// project's for libraries, and the compose file's for a container service.
pub fn filter_report(report: &mut Report, plan: &Plan, names: &BTreeSet<String>) {
    let containers = names
        .iter()
        .any(|n| plan.service(n).is_some_and(|s| s.is_container()));
    let libraries = libraries_named(plan, names);
    report.findings.retain(|f| {
        let c = f.component.as_str();
        match c.strip_prefix("service:") {
            Some(n) => names.contains(n),
            None => (libraries && c.starts_with("librar")) || (containers && c == "compose"),
        }
    });
    report.clean = report.findings.is_empty();
}
