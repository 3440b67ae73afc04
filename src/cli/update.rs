//! `cargo hsm update [NAME…]`, like `cargo update` and `uv lock --upgrade`:
//! a sync in which the pins of the named components do not hold. Branch
//! refs move to their tips, uv re-resolves the services' and the shared
//! project's locks (`--upgrade`; a named library: `--upgrade-package`),
//! and a summary says what moved, old → new.

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use super::shell::{MessageFormat, Shell};
use crate::error::{Error, Result, EXIT_OK, EXIT_PROBLEM};
use crate::lock::HsmLock;
use crate::materialize::SyncOptions;

#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// Services or libraries to update, or `libraries` for the whole shared project (default: everything)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Fail (exit 1) instead of changing `hsm.lock` or a lock file: a check that nothing has newer versions
    #[arg(long)]
    pub locked: bool,
    /// No network for git or uv (also `CARGO_NET_OFFLINE=true`)
    #[arg(long, env = "CARGO_NET_OFFLINE", hide_env = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub offline: bool,
    /// Environment syncs to run at once [default: available parallelism]
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Skip the inspection of the result (`cargo hsm check`) at the end
    #[arg(long)]
    pub no_verify: bool,
}

/// One pin that moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `service:api`, `libraries`.
    pub component: String,
    /// `commit` (a git checkout) or `package` (a locked distribution).
    pub kind: &'static str,
    /// The ref, or the package's name.
    pub name: String,
    /// `None`: newly pinned.
    pub old: Option<String>,
    /// `None`: no longer pinned.
    pub new: Option<String>,
}

#[derive(Serialize)]
struct UpdateDocument<'a> {
    changes: &'a [Change],
    actions: &'a [crate::materialize::Action],
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'a crate::inspect::Report>,
}

/// The `name → version` of every package a `uv.lock` text locks.
fn locked_versions(text: &str) -> BTreeMap<String, String> {
    let Ok(doc) = toml::from_str::<toml::Table>(text) else {
        return BTreeMap::new();
    };
    doc.get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let version = p.get("version").and_then(|v| v.as_str()).unwrap_or("");
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

/// The `name → version` of every `name==version` line of a venv
/// service's pins (`hsm.locks/<service>/requirements.txt`).
fn pinned_versions(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim().split_once("=="))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The lock files `lock` records, component → path (relative).
fn lockfiles(lock: &HsmLock) -> Vec<(String, Utf8PathBuf)> {
    let mut v = Vec::new();
    if let Some(f) = lock.root.as_ref().and_then(|r| r.lockfile.as_ref()) {
        v.push(("libraries".to_string(), f.path.clone()));
    }
    for s in &lock.services {
        if let Some(f) = &s.lockfile {
            v.push((format!("service:{}", s.name), f.path.clone()));
        }
    }
    v
}

/// What moved between two locks: commits of git services, then the
/// versions in each `uv.lock` and venv service's pins (`before`: their
/// texts before the update).
pub fn changes(
    old: Option<&HsmLock>,
    new: &HsmLock,
    before: &BTreeMap<Utf8PathBuf, String>,
    root: &Utf8Path,
) -> Vec<Change> {
    let mut out = Vec::new();
    for s in &new.services {
        let Some(g) = &s.git else { continue };
        let was = old
            .and_then(|l| l.service(&s.name))
            .and_then(|o| o.git.as_ref())
            .map(|o| o.commit.clone());
        if was.as_deref() != Some(g.commit.as_str()) {
            out.push(Change {
                component: format!("service:{}", s.name),
                kind: "commit",
                name: g
                    .reference
                    .clone()
                    .unwrap_or_else(|| "(default branch)".into()),
                old: was,
                new: Some(g.commit.clone()),
            });
        }
    }
    for (component, path) in lockfiles(new) {
        // uv's lock, or the pins hsm keeps for a venv service.
        let pins = path.starts_with(crate::lock::LOCKS_DIR) && path.as_str().ends_with(".txt");
        let versions = if path.as_str().ends_with("uv.lock") {
            locked_versions
        } else if pins {
            pinned_versions
        } else {
            continue;
        };
        let Some(old_text) = before.get(&path) else {
            continue;
        };
        let new_text = std::fs::read_to_string(root.join(&path)).unwrap_or_default();
        let (a, b) = (versions(old_text), versions(&new_text));
        let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for n in names {
            let (o, w) = (a.get(n), b.get(n));
            if o != w {
                out.push(Change {
                    component: component.clone(),
                    kind: "package",
                    name: n.clone(),
                    old: o.cloned(),
                    new: w.cloned(),
                });
            }
        }
        if pins {
            out.extend(git_pin_changes(&component, old_text, &new_text));
        }
    }
    out
}

/// The git dependencies of a venv service's pins that moved to another commit.
fn git_pin_changes(component: &str, old_text: &str, new_text: &str) -> Vec<Change> {
    let commits = |t: &str| -> BTreeMap<String, String> {
        crate::python::pins::read(t)
            .into_iter()
            .map(|p| (p.name, p.commit))
            .collect()
    };
    let (a, b) = (commits(old_text), commits(new_text));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| Change {
            component: component.to_string(),
            kind: "commit",
            name: n.clone(),
            old: a.get(n).cloned(),
            new: b.get(n).cloned(),
        })
        .collect()
}

fn short(v: &str, kind: &str) -> String {
    if kind == "commit" {
        v.chars().take(7).collect()
    } else {
        format!("v{v}")
    }
}

/// The names must be selected services or `libraries`.
fn check_names(plan: &crate::Plan, names: &[String]) -> Result<()> {
    for n in names {
        if n == "libraries" || plan.service(n).is_some() || plan.library(n).is_some() {
            continue;
        }
        let known: Vec<&str> = plan
            .services
            .iter()
            .map(|s| s.name.as_str())
            .chain(plan.libraries.iter().map(|l| l.name.as_str()))
            .collect();
        let e = Error::config(format!(
            "`{n}` is not a selected service or library (nor `libraries`, the whole shared project)"
        ));
        return Err(match crate::names::did_you_mean(n, known.iter().copied()) {
            Some(k) => e.with_help(format!("did you mean `{k}`?")),
            None => e.with_help("`cargo hsm list` shows the selected services"),
        });
    }
    Ok(())
}

pub fn run(shell: &Shell, root: &Utf8Path, args: &UpdateArgs) -> Result<i32> {
    let started = std::time::Instant::now();
    let (_, plan) = crate::plan(root)?;
    for w in &plan.warnings {
        shell.warn(w);
    }
    check_names(&plan, &args.names)?;
    let previous = HsmLock::read(&HsmLock::path(root))?;
    let mut before = BTreeMap::new();
    for (_, path) in previous.iter().flat_map(lockfiles) {
        if let Ok(t) = std::fs::read_to_string(root.join(&path)) {
            before.insert(path, t);
        }
    }
    let opts = SyncOptions {
        locked: args.locked,
        frozen: false,
        offline: args.offline,
        dry_run: false,
        jobs: args.jobs.map_or(0, usize::from),
        tool_versions: shell.verbosity == super::shell::Verbosity::Verbose,
    };
    let names: BTreeSet<String> = args.names.iter().cloned().collect();
    let scope = crate::materialize::Scope {
        update: Some(names),
        only: None,
    };
    let (report, verification) =
        super::sync::sync_and_verify_with(shell, &plan, &opts, !args.no_verify, &scope)?;
    let changes = changes(previous.as_ref(), &report.lock, &before, root);
    match shell.format {
        MessageFormat::Json => shell.document(
            "update",
            &UpdateDocument {
                changes: &changes,
                actions: &report.actions,
                warnings: &report.warnings,
                verification: verification.as_ref(),
            },
        ),
        MessageFormat::Human => {
            for c in &changes {
                let who = c.component.trim_start_matches("service:");
                let (verb, text) = match (&c.old, &c.new) {
                    (Some(o), Some(n)) => (
                        "Updating",
                        format!(
                            "{who}: {} {} -> {}",
                            c.name,
                            short(o, c.kind),
                            short(n, c.kind)
                        ),
                    ),
                    (None, Some(n)) => {
                        ("Adding", format!("{who}: {} {}", c.name, short(n, c.kind)))
                    }
                    (Some(o), None) => (
                        "Removing",
                        format!("{who}: {} {}", c.name, short(o, c.kind)),
                    ),
                    (None, None) => continue,
                };
                shell.status(verb, text);
            }
            if changes.is_empty() {
                shell.status(
                    "Unchanged",
                    "every pin is at the newest the manifest allows",
                );
            }
            if let Some(v) = verification.as_ref().filter(|v| !v.clean) {
                super::check::print_report(shell, v, &plan);
            }
            super::sync::finished(shell, started, "update", verification.as_ref());
        }
    }
    Ok(if verification.is_some_and(|v| !v.clean) {
        EXIT_PROBLEM
    } else {
        EXIT_OK
    })
}
