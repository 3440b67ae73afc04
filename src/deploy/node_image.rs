//! The generated Dockerfile of a node service (`runtime = "node"`): the
//! package manager installs exactly the service's lock, without its dev
//! dependencies, before the source is copied (so that a change of source
//! alone reuses the dependency layer); the runtime stage runs the
//! profile's `command` with `node_modules/.bin` first on `PATH`, as user
//! 10001.
//!
//! The base image is the profile's `base-image`, else `node:<major>-slim`
//! with the major version the service names: its `.nvmrc`, else its
//! `.node-version`, else the lowest major that `engines.node` in
//! `package.json` allows (`>=18` → 18, `^20.11` → 20); `lts/*`, or none of
//! them, gives `node:lts-slim`.

use std::fmt::Write as _;

use camino::{Utf8Path, Utf8PathBuf};

use super::image::{env_lines, header, runtime_stage_with, CA_SECRET};
use crate::error::{Error, Result};
use crate::node::{Manager, Project};
use crate::plan::{Plan, PlannedService};

/// The major version of a version or range (`v20.11.1`, `>=18.17 <21`,
/// `20.x`, `^22`); `None` when it names none (`lts/*`, `node`, `*`).
fn major(spec: &str) -> Option<u32> {
    let spec = spec.trim();
    let start = spec.find(|c: char| c.is_ascii_digit())?;
    // `lts/iron`-like names and words before the digits are no version.
    let before = &spec[..start];
    if !before
        .chars()
        .all(|c| matches!(c, 'v' | '=' | '>' | '^' | '~' | ' '))
    {
        return None;
    }
    let digits: String = spec[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The first line of a version file that is not blank or a comment.
fn version_file(dir: &Utf8Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

/// The major version of Node.js the service at `dir` names (see the
/// module's rule).
pub fn node_major(dir: &Utf8Path, project: &Project) -> Option<u32> {
    for f in [".nvmrc", ".node-version"] {
        if let Some(v) = version_file(dir, f) {
            return major(&v);
        }
    }
    let engines = project
        .manifest
        .as_ref()?
        .get("engines")?
        .get("node")?
        .as_str()?;
    // The lowest major any alternative (`^18 || ^20`) allows.
    engines.split("||").filter_map(major).min()
}

/// The `FROM` of the service's image.
fn base_image(s: &PlannedService, dir: &Utf8Path, project: &Project) -> String {
    s.base_image
        .clone()
        .unwrap_or_else(|| match node_major(dir, project) {
            Some(m) => format!("node:{m}-slim"),
            None => "node:lts-slim".to_string(),
        })
}

/// The install command of the build stage: exactly the lock, without dev
/// dependencies.
fn install(project: &Project, dir: &Utf8Path) -> String {
    match project.manager {
        Manager::Npm => "npm ci --omit=dev --no-audit --no-fund".into(),
        // corepack (in the official node images) runs the version that
        // `packageManager` pins.
        Manager::Pnpm => "corepack pnpm install --frozen-lockfile --prod".into(),
        Manager::Yarn if !project.is_yarn_berry(dir) => {
            "corepack yarn install --frozen-lockfile --production --non-interactive".into()
        }
        Manager::Yarn => {
            let major = project
                .pinned
                .as_deref()
                .and_then(|v| v.split('.').next()?.parse::<u32>().ok());
            if major.is_some_and(|m| m >= 4) {
                // Yarn 4's built-in `focus`: the lock's production packages.
                "corepack yarn workspaces focus --all --production".into()
            } else {
                // Yarn 2 and 3 need a plugin for that: the whole lock.
                "corepack yarn install --immutable".into()
            }
        }
    }
}

/// The generated Dockerfile of node service `s` at `dir`, whose context
/// holds `files`.
pub fn dockerfile(
    plan: &Plan,
    s: &PlannedService,
    dir: &Utf8Path,
    files: &[Utf8PathBuf],
) -> Result<String> {
    let rel = crate::paths::relative_to(dir, &plan.project.workspace_root);
    let project = Project::read(dir).map_err(|why| {
        Error::config(format!("service `{}`: {why}", s.name))
            .with_help("fix the service's `package.json`")
    })?;
    if project.manifest.is_none() {
        return Err(Error::config(format!(
            "service `{}` runs with node, but `{rel}/package.json` does not exist",
            s.name
        ))
        .with_help(format!("create it with `npm init -y` in `{rel}`")));
    }
    let Some(lockfile) = project.lockfile else {
        return Err(Error::failed(format!(
            "service `{}` has no lock file in `{rel}` (`{}`), so there is nothing locked to install",
            s.name,
            project.lockfile_name()
        ))
        .with_help("run `cargo hsm sync` first (it creates the lock with the package manager)"));
    };
    if project.is_yarn_berry(dir) && !crate::node::yarn_uses_node_modules(dir) {
        return Err(Error::config(format!(
            "service `{}` uses Yarn 2+ with Plug'n'Play, which its image cannot run as hsm builds it",
            s.name
        ))
        .with_help("add `nodeLinker: node-modules` to the service's `.yarnrc.yml`"));
    }
    let has = |f: &str| files.iter().any(|p| p == f);
    // What the package manager reads, before the source.
    let mut metadata: Vec<&str> = vec!["package.json", lockfile];
    for f in [
        ".npmrc",
        ".yarnrc.yml",
        ".pnpmfile.cjs",
        "pnpm-workspace.yaml",
    ] {
        if has(f) {
            metadata.push(f);
        }
    }
    metadata.sort();
    let yarn_dirs: Vec<&str> = [".yarn/releases", ".yarn/plugins"]
        .into_iter()
        .filter(|d| files.iter().any(|p| p.starts_with(d)))
        .collect();
    let base = base_image(s, dir, &project);
    let (args, mounts, exports) = env_lines(plan, s)?;
    let mut out = header(plan, s);
    let _ = writeln!(out, "FROM {base} AS build");
    out.push_str(&args);
    let _ = writeln!(out, "ENV COREPACK_ENABLE_DOWNLOAD_PROMPT=0");
    let _ = writeln!(out, "WORKDIR /app");
    let _ = writeln!(
        out,
        "# `package.json` and the lock first: the dependency layer is cached until they change."
    );
    let _ = writeln!(out, "COPY {} ./", metadata.join(" "));
    for d in yarn_dirs {
        let _ = writeln!(out, "COPY {d} ./{d}");
    }
    let ca = format!(
        "if [ -s /run/secrets/{CA_SECRET} ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/{CA_SECRET}; fi; "
    );
    let _ = writeln!(out, "RUN {mounts}{exports}{ca}{}", install(&project, dir));
    let _ = writeln!(out, "COPY . .");
    runtime_stage_with(
        &mut out,
        &base,
        s,
        "/app/node_modules/.bin",
        "NODE_ENV=production HOME=/tmp",
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_major_version_comes_from_nvmrc_node_version_then_engines() {
        assert_eq!(major("v20.11.1"), Some(20));
        assert_eq!(major(">=18.17 <21"), Some(18));
        assert_eq!(major("^22"), Some(22));
        assert_eq!(major("20.x"), Some(20));
        assert_eq!(major("lts/*"), None);
        assert_eq!(major("lts/iron"), None);
        assert_eq!(major("node"), None);

        let d = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(d.path()).unwrap();
        let pj = "{\"name\":\"x\",\"engines\":{\"node\":\"^20.11 || >=18\"}}";
        std::fs::write(dir.join("package.json"), pj).unwrap();
        let p = Project::read(dir).unwrap();
        assert_eq!(node_major(dir, &p), Some(18));
        std::fs::write(dir.join(".node-version"), "22.1.0\n").unwrap();
        assert_eq!(node_major(dir, &p), Some(22));
        std::fs::write(dir.join(".nvmrc"), "# pinned\nlts/*\n").unwrap();
        assert_eq!(node_major(dir, &p), None, "`.nvmrc` comes first");
    }

    #[test]
    fn each_manager_installs_its_lock_without_dev_dependencies() {
        let d = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(d.path()).unwrap();
        let with = |pm: &str, lock: &str, text: &str| {
            std::fs::write(
                dir.join("package.json"),
                format!("{{\"name\":\"x\",\"packageManager\":\"{pm}\"}}"),
            )
            .unwrap();
            for f in ["package-lock.json", "pnpm-lock.yaml", "yarn.lock"] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            std::fs::write(dir.join(lock), text).unwrap();
            install(&Project::read(dir).unwrap(), dir)
        };
        assert_eq!(
            with("npm@10.0.0", "package-lock.json", "{}"),
            "npm ci --omit=dev --no-audit --no-fund"
        );
        assert_eq!(
            with("pnpm@9.15.0", "pnpm-lock.yaml", "lockfileVersion: '9.0'\n"),
            "corepack pnpm install --frozen-lockfile --prod"
        );
        assert_eq!(
            with("yarn@1.22.22", "yarn.lock", "# yarn lockfile v1\n"),
            "corepack yarn install --frozen-lockfile --production --non-interactive"
        );
        assert_eq!(
            with("yarn@4.5.3", "yarn.lock", "__metadata:\n  version: 8\n"),
            "corepack yarn workspaces focus --all --production"
        );
        assert_eq!(
            with("yarn@3.8.0", "yarn.lock", "__metadata:\n  version: 6\n"),
            "corepack yarn install --immutable"
        );
    }
}
