//! The inspector of node services, beside the Python one: what is
//! installed in the service's `node_modules` (each installed
//! `package.json`) against what its lock file says. Reads files only.

use camino::Utf8Path;

use super::{finding, package_finding, Finding, FindingKind};
use crate::node::{self, Manager, Project};
use crate::plan::{Dependency, PlannedService};

/// The entries the registry lists for `svc` now (name, range); the ones
/// that are not npm specs are the plan's errors, not drift.
fn wanted(svc: &PlannedService) -> Vec<(String, String)> {
    svc.dependencies
        .iter()
        .filter_map(|d| match d {
            Dependency::Requirement { requirement } => node::parse_spec(requirement).ok(),
            Dependency::Library { .. } => None,
        })
        .collect()
}

/// The root's `node_modules` (at the workspace root `root`) holds the
/// packages of the node service at `target` (relative to `root`): the
/// root's `workspaces` adopted it, which hsm, leaving the root's files
/// alone, cannot undo.
pub fn inspect_root(
    root: &Utf8Path,
    target: &Utf8Path,
    svc: &PlannedService,
    findings: &mut Vec<Finding>,
) {
    let how = node::adopted_by(root, target);
    if how.is_empty() {
        return;
    }
    // What of the service's packages (its lock's, else the ones its
    // `package.json` declares) the root's top level holds, hoisted there.
    let dir = root.join(target);
    let mut names = std::collections::BTreeSet::new();
    if let Ok(p) = Project::read(&dir) {
        for f in node::DEPENDENCY_FIELDS {
            let declared = p.manifest.as_ref().and_then(|m| m.get(f));
            let declared = declared.and_then(|d| d.as_object()).into_iter().flatten();
            names.extend(declared.map(|(k, _)| k.clone()));
        }
        let locked = p
            .lockfile
            .and_then(|l| std::fs::read_to_string(dir.join(l)).ok())
            .and_then(|t| node::expected(p.manager, &t).ok());
        names.extend(locked.into_iter().flat_map(|e| e.packages.into_keys()));
    }
    let nm = root.join("node_modules");
    let hoisted: Vec<String> = names
        .into_iter()
        .filter(|n| nm.join(n).join("package.json").is_file())
        .collect();
    let mut found = how.join("; ");
    if !hoisted.is_empty() {
        found.push_str(&format!(
            "; it holds the service's {}",
            hoisted
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    findings.push(
        finding(
            FindingKind::RootHasServicePackage,
            "root",
            format!(
                "a root `node_modules` without service `{}` (it installs into `{target}/node_modules` only)",
                svc.name
            ),
            found,
        )
        .with_fix(format!(
            "narrow the root's `workspaces` in `package.json` (or `packages` in `pnpm-workspace.yaml`) so that it \
             does not match `{target}`, then reinstall the root (`rm -rf node_modules` and `npm install` there); \
             hsm never changes the root's files"
        )),
    );
}

/// hsm's entries in the service's `package.json` that the registry no
/// longer lists (`recorded`: what `hsm.lock` says hsm added).
fn leftovers(
    component: &str,
    manifest: &serde_json::Value,
    svc: &PlannedService,
    recorded: &[String],
    findings: &mut Vec<Finding>,
) {
    let own = node::ownership(manifest, recorded, &wanted(svc));
    for name in own.leftovers {
        let range = manifest["dependencies"][&name].as_str().unwrap_or_default();
        findings.push(package_finding(
            FindingKind::DependencyLeftover,
            component,
            &name,
            format!(
                "no `{name}` in `package.json`'s `dependencies` (hsm added it; the registry no longer lists it)"
            ),
            format!("`\"{name}\": \"{range}\"`"),
        ));
    }
}

/// Checks the node service `component` at `dir` against its lock, and
/// `package.json` against what hsm added to it (`recorded`).
pub fn inspect(
    component: &str,
    dir: &Utf8Path,
    svc: &PlannedService,
    recorded: &[String],
    findings: &mut Vec<Finding>,
) {
    let p = match Project::read(dir) {
        Ok(p) => p,
        Err(why) => {
            findings.push(
                finding(
                    FindingKind::VenvBroken,
                    component,
                    "a readable `package.json`",
                    why,
                )
                .with_fix("fix the service's `package.json`"),
            );
            return;
        }
    };
    let Some(manifest) = &p.manifest else {
        findings.push(
            finding(
                FindingKind::VenvMissing,
                component,
                format!("`{}`", dir.join("package.json")),
                "none",
            )
            .with_fix("create it (`npm init -y`), or choose another runtime"),
        );
        return;
    };
    leftovers(component, manifest, svc, recorded, findings);
    let Some(lockfile) = p.lockfile else {
        findings.push(finding(
            FindingKind::LockfileMissing,
            component,
            format!("`{}`", dir.join(p.lockfile_name())),
            "no lock file",
        ));
        return;
    };
    let lock = dir.join(lockfile);
    let text = match std::fs::read_to_string(&lock) {
        Ok(t) => t,
        Err(e) => {
            findings.push(finding(
                FindingKind::LockfileMissing,
                component,
                format!("a readable `{lock}`"),
                e.to_string(),
            ));
            return;
        }
    };
    if p.manager == Manager::Npm {
        if let Err(why) = node::npm_lock_matches(manifest, &text) {
            findings.push(finding(
                FindingKind::LockfileStale,
                component,
                format!("`{lock}` recording what `package.json` declares"),
                why,
            ));
        }
    }
    let expected = match node::expected(p.manager, &text) {
        Ok(e) => e,
        Err(why) => {
            findings.push(finding(
                FindingKind::LockfileMissing,
                component,
                format!("a readable `{lock}`"),
                why,
            ));
            return;
        }
    };
    let nm = dir.join("node_modules");
    if !nm.is_dir() {
        if !expected.packages.is_empty() {
            findings.push(finding(
                FindingKind::VenvMissing,
                component,
                format!("the packages of `{lockfile}` in `{nm}`"),
                "no `node_modules`",
            ));
        }
        return;
    }
    if p.is_yarn_berry(dir) && !node::yarn_uses_node_modules(dir) {
        findings.push(
            finding(
                FindingKind::VenvBroken,
                component,
                "Yarn installing into `node_modules`",
                "Plug'n'Play (`nodeLinker` is not `node-modules`)",
            )
            .with_fix("add `nodeLinker: node-modules` to the service's `.yarnrc.yml`"),
        );
        return;
    }
    let (installed, broken) = node::installed(&nm);
    for b in broken {
        findings.push(finding(
            FindingKind::VenvBroken,
            component,
            format!("a readable `{}`", b.path),
            b.why,
        ));
    }
    let show = |name: &str, versions: &std::collections::BTreeSet<String>| {
        let v: Vec<&str> = versions.iter().map(String::as_str).collect();
        format!("{name} {}", v.join(", "))
    };
    for (name, want) in &expected.packages {
        let none = Default::default();
        let have = installed.get(name).unwrap_or(&none);
        let missing: std::collections::BTreeSet<String> = want.difference(have).cloned().collect();
        let unexpected = have.difference(want).next().is_some();
        if have.is_empty() && expected.optional.contains(name) {
            continue;
        }
        if !missing.is_empty() && !unexpected {
            // Every installed copy is one the lock wants; one is not there.
            findings.push(package_finding(
                FindingKind::PackageMissing,
                component,
                name,
                show(name, &missing),
                "not installed",
            ));
        } else if unexpected {
            findings.push(package_finding(
                FindingKind::PackageWrongVersion,
                component,
                name,
                show(name, want),
                show(name, have),
            ));
        }
    }
    for (name, have) in &installed {
        if !expected.packages.contains_key(name) {
            findings.push(package_finding(
                FindingKind::PackageExtra,
                component,
                name,
                format!("no {name} ({lockfile} does not need it)"),
                show(name, have),
            ));
        }
    }
}
