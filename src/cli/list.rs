//! `cargo hsm list`: the Plan as a readable tree, or as one JSON document.

use std::fmt::Write;

use camino::Utf8Path;

use super::shell::{MessageFormat, Shell, Verbosity};
use crate::error::{Result, EXIT_OK};
use crate::plan::{
    Dependency, Deployment, GroupKind, Plan, PlanDocument, PlannedLibrary, PlannedService,
    SelectedBy, PLAN_SCHEMA,
};

pub fn run(shell: &Shell, root: &Utf8Path, packages: &super::package::PackageArgs) -> Result<i32> {
    let verbose = shell.verbosity == Verbosity::Verbose;
    let (_, plan) = crate::plan(root)?;
    let plan = match packages.selected(&plan)? {
        Some(names) => super::package::filter_plan(&plan, &names),
        None => plan,
    };
    match shell.format {
        MessageFormat::Json => shell.document(
            "plan",
            &PlanDocument {
                schema: PLAN_SCHEMA,
                plan: &plan,
            },
        ),
        MessageFormat::Human => shell.out(&render(&plan, verbose)),
    }
    for w in &plan.warnings {
        shell.warn(w);
    }
    Ok(EXIT_OK)
}

/// The human tree. Components in a group are shown under it; the others at
/// the top, with what selected them when it was not the manifest. With
/// `verbose`, each one's details follow on lines of their own: a
/// library's requirement, a service's command, ports, volumes and
/// dependencies.
pub fn render(plan: &Plan, verbose: bool) -> String {
    let lib_line = |l: &PlannedLibrary| lib_line(l, verbose);
    let svc_line = |sv: &PlannedService| svc_line(sv, verbose);
    let mut s = String::new();
    let p = &plan.project;
    let _ = writeln!(s, "{} ({})", p.name, p.workspace_root);
    let _ = writeln!(s, "libraries -> shared environment `{}`", p.python_project);
    let mut rows: Vec<Row> = Vec::new();
    for l in plan.libraries.iter().filter(|l| l.group.is_none()) {
        rows.push(Row::Item(lib_line(l)));
    }
    for g in plan.groups.iter().filter(|g| g.kind == GroupKind::Library) {
        let children = g
            .selection
            .iter()
            .filter_map(|o| plan.library(o))
            .map(lib_line)
            .collect();
        rows.push(Row::Group(
            format!("group {} ({})", g.name, g.strategy),
            children,
        ));
    }
    draw(&mut s, &rows);
    let _ = writeln!(s, "services");
    let mut rows: Vec<Row> = Vec::new();
    for sv in plan.services.iter().filter(|sv| sv.group.is_none()) {
        rows.push(Row::Item(svc_line(sv)));
    }
    for g in plan.groups.iter().filter(|g| g.kind == GroupKind::Service) {
        let mut title = format!("group {} ({})", g.name, g.strategy);
        if let Some(p) = &g.profile {
            title.push_str(&format!(" profile={p}"));
        }
        let children = g
            .selection
            .iter()
            .filter_map(|o| plan.service(o))
            .map(svc_line)
            .collect();
        rows.push(Row::Group(title, children));
    }
    draw(&mut s, &rows);
    s
}

enum Row {
    Item(String),
    Group(String, Vec<String>),
}

fn draw(s: &mut String, rows: &[Row]) {
    if rows.is_empty() {
        let _ = writeln!(s, "    (none)");
    }
    for (i, row) in rows.iter().enumerate() {
        let last = i + 1 == rows.len();
        let (branch, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        match row {
            Row::Item(line) => item(s, branch, indent, line),
            Row::Group(title, children) => {
                let _ = writeln!(s, "{branch}{title}");
                for (j, c) in children.iter().enumerate() {
                    let (b, i) = if j + 1 == children.len() {
                        ("└── ", "    ")
                    } else {
                        ("├── ", "│   ")
                    };
                    item(s, &format!("{indent}{b}"), &format!("{indent}{i}"), c);
                }
            }
        }
    }
}

/// One item: its first line after the branch, detail lines under it.
fn item(s: &mut String, branch: &str, indent: &str, text: &str) {
    let mut lines = text.lines();
    let _ = writeln!(s, "{branch}{}", lines.next().unwrap_or(""));
    for l in lines {
        let _ = writeln!(s, "{indent}    {l}");
    }
}

fn implied_note(selected_by: &[SelectedBy]) -> String {
    if selected_by
        .iter()
        .any(|w| !w.reason.starts_with("implied by "))
    {
        String::new()
    } else {
        let who: Vec<&str> = selected_by
            .iter()
            .filter_map(|w| w.reason.strip_prefix("implied by "))
            .collect();
        format!("  (implied by {})", who.join(", "))
    }
}

fn lib_line(l: &PlannedLibrary, verbose: bool) -> String {
    let mut s = format!(
        "{:<20} {:<4}  source={}",
        l.name,
        l.mode,
        l.source.describe()
    );
    if let Some(t) = &l.target_path {
        s.push_str(&format!("  path={t}"));
    }
    s.push_str(&implied_note(&l.selected_by));
    if verbose {
        s.push_str(&format!("\nrequirement: {}", l.requirement));
    }
    s
}

fn svc_line(sv: &PlannedService, verbose: bool) -> String {
    let deploy = match &sv.deployment {
        Deployment::Managed { runtime } => format!("runtime={runtime}"),
        Deployment::External { .. } => "external".to_string(),
    };
    let mut s = format!(
        "{:<20} {:<4}  profile={}  {deploy}",
        sv.name, sv.mode, sv.profile
    );
    if let Some(src) = &sv.source {
        s.push_str(&format!("  source={}", src.describe()));
    }
    if let Some(t) = &sv.target_path {
        s.push_str(&format!("  path={t}"));
        // A sibling checkout (`path = "../embedder"`): hsm writes only its
        // `.venv` and the entries the manifest asks for there.
        if t.is_absolute() || t.starts_with("..") {
            s.push_str("  (outside the workspace)");
        }
    }
    if !sv.params.is_empty() {
        let ps: Vec<String> = sv
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.value))
            .collect();
        s.push_str(&format!("  params[{}]", ps.join(" ")));
    }
    s.push_str(&implied_note(&sv.selected_by));
    if verbose {
        if let Some(c) = &sv.command {
            s.push_str(&format!("\ncommand: {}", c.join(" ")));
            if let Some(w) = &sv.working_dir {
                s.push_str(&format!("  (in {w})"));
            }
        }
        for (what, v) in [
            ("ports", &sv.ports),
            ("volumes", &sv.volumes),
            ("depends-on", &sv.depends_on),
        ] {
            if !v.is_empty() {
                s.push_str(&format!("\n{what}: {}", v.join(", ")));
            }
        }
        if !sv.dependencies.is_empty() {
            let deps: Vec<&str> = sv
                .dependencies
                .iter()
                .map(|d| match d {
                    Dependency::Library { requirement, .. }
                    | Dependency::Requirement { requirement } => requirement.as_str(),
                })
                .collect();
            s.push_str(&format!("\ndependencies: {}", deps.join(", ")));
        }
    }
    s
}
