//! The inspector of node services, beside the Python one: what is
//! installed in the service's `node_modules` (each installed
//! `package.json`) against what its lock file says. Reads files only.

use camino::Utf8Path;

use super::{finding, package_finding, Finding, FindingKind};
use crate::node::{self, Manager, Project};

/// Checks the node service `component` at `dir` against its lock.
pub fn inspect(component: &str, dir: &Utf8Path, findings: &mut Vec<Finding>) {
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
