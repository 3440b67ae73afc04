//! `node`: a Node.js service installs into its own `node_modules`, driven
//! by the lock file present: `npm ci` for `package-lock.json`, `pnpm install
//! --frozen-lockfile` for `pnpm-lock.yaml`, Yarn (the version
//! `packageManager` names, through corepack) for `yarn.lock`. Without a
//! lock, a plain sync creates one and `--locked` refuses.
//!
//! Isolation: every command runs with the service as its own project, so
//! that a root `package.json` whose `workspaces` match `services/*` (or a
//! root `pnpm-workspace.yaml`) does not adopt it: npm gets `--prefix .`,
//! pnpm `--ignore-workspace`; Yarn 2+ takes the nearest `yarn.lock` as the
//! project's root, which the service has.

use camino::{Utf8Path, Utf8PathBuf};

use super::{
    find_tool, run_tool_env, BadDependency, FileEdit, Hasher, InitTemplate, RunEnv, RuntimeAdapter,
    RuntimeCtx, RuntimeOutcome,
};
use crate::error::{Error, Result};
use crate::git::ArtifactPatterns;
use crate::node::{self, Manager, Project};
use crate::plan::Dependency;

pub struct NodeAdapter;

const NPM_HINT: &str = "install Node.js, which comes with npm (https://nodejs.org/en/download)";

/// What a node service's tools make in its checkout: `node_modules`
/// anywhere, build output at the project's root, and a lock file the
/// upstream does not commit.
pub const NODE_ARTIFACTS: ArtifactPatterns = ArtifactPatterns {
    made_by: "the Node.js package managers",
    dirs: &["node_modules"],
    suffixes: &[],
    project_dirs: &[
        "dist",
        "build",
        ".next",
        ".nuxt",
        ".turbo",
        ".parcel-cache",
        "coverage",
        ".yarn/install-state.gz",
    ],
    root_files: &["package-lock.json", "pnpm-lock.yaml", "yarn.lock"],
};

/// Files whose change alters what the package manager installs.
const INPUTS: &[&str] = &[
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    ".npmrc",
    ".yarnrc.yml",
    ".pnpmfile.cjs",
];

fn read(ctx_name: &str, target: &Utf8Path) -> Result<Project> {
    Project::read(target).map_err(|why| {
        Error::config(format!("service `{ctx_name}`: {why}"))
            .with_help("fix the service's `package.json`")
    })
}

/// The program that runs `manager` for service `name`, and the arguments
/// before its own (`corepack pnpm …`). A version pinned by
/// `packageManager` runs through corepack, which honours it.
fn program(p: &Project, name: &str) -> Result<(Utf8PathBuf, Vec<String>)> {
    let m = p.manager;
    if m == Manager::Npm {
        return Ok((find_tool("npm", name, NPM_HINT)?, Vec::new()));
    }
    let tool = m.as_str();
    let direct = || {
        which::which(tool)
            .ok()
            .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
    };
    let corepack = || {
        which::which("corepack")
            .ok()
            .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
    };
    let found = match p.pinned {
        Some(_) => corepack()
            .map(|c| (c, vec![tool.to_string()]))
            .or_else(|| direct().map(|d| (d, Vec::new()))),
        None => direct()
            .map(|d| (d, Vec::new()))
            .or_else(|| corepack().map(|c| (c, vec![tool.to_string()]))),
    };
    found.ok_or_else(|| {
        Error::failed(format!(
            "service `{name}` needs `{tool}` (its lock file is `{}`), which was not found on `PATH`, nor `corepack`",
            p.lockfile_name()
        ))
        .with_help(format!(
            "install it with `npm install -g {tool}`, or enable corepack, which comes with Node.js \
             (`corepack enable`; where its default host cannot be reached, set \
             `COREPACK_NPM_REGISTRY=https://registry.npmjs.org`)"
        ))
    })
}

/// The service's `dependencies` as `package.json` entries.
fn wanted(deps: &[Dependency]) -> Result<Vec<(String, String)>> {
    deps.iter()
        .map(|d| match d {
            Dependency::Requirement { requirement } => node::parse_spec(requirement)
                .map_err(|why| Error::config(format!("a node dependency: {why}"))),
            Dependency::Library { name, .. } => Err(Error::config(format!(
                "`{name}` is a registry library (a Python package): a node service cannot depend on it"
            ))),
        })
        .collect()
}

/// Who owns the entries of `package.json` that the registry lists, and
/// which of hsm's earlier ones it no longer lists (see [`node::ownership`]);
/// `None` without a `package.json`.
fn ownership(ctx: &RuntimeCtx<'_>, p: &Project) -> Result<Option<node::Ownership>> {
    let Some(manifest) = &p.manifest else {
        return Ok(None);
    };
    let want = wanted(&ctx.service.dependencies)
        .map_err(|e| e.with_help("list npm package specs in the service's `dependencies`"))?;
    let recorded = ctx
        .previous
        .map(|l| l.added_dependencies.as_slice())
        .unwrap_or_default();
    Ok(Some(node::ownership(manifest, recorded, &want)))
}

/// hsm's entries in `package.json` that the registry no longer lists.
fn leftovers(ctx: &RuntimeCtx<'_>, p: &Project) -> Vec<String> {
    ownership(ctx, p)
        .ok()
        .flatten()
        .map(|o| o.leftovers)
        .unwrap_or_default()
}

/// The package manager's command that removes `names` from the service
/// (`package.json`, its lock and `node_modules`), so that the lock stays
/// the tool's own.
fn remove_args(
    ctx: &RuntimeCtx<'_>,
    p: &Project,
    target: &Utf8Path,
    names: &[String],
) -> Vec<String> {
    let mut a: Vec<String> = match p.manager {
        Manager::Npm => [
            "uninstall",
            "--prefix",
            ".",
            "--include=dev",
            "--no-audit",
            "--no-fund",
        ]
        .map(String::from)
        .to_vec(),
        Manager::Pnpm => ["remove", "--ignore-workspace"].map(String::from).to_vec(),
        Manager::Yarn => vec!["remove".to_string()],
    };
    if ctx.opts.offline && !p.is_yarn_berry(target) {
        a.push("--offline".into());
    }
    a.extend(names.iter().cloned());
    a
}

/// Why the package manager would change the service's lock file; `None`
/// when it installs what the lock says.
fn lock_change(p: &Project, target: &Utf8Path, edited: bool) -> Option<String> {
    let Some(lock) = p.lockfile else {
        return Some(format!("there is no lock file (`{}`)", p.lockfile_name()));
    };
    if edited {
        return Some("hsm adds the service's `dependencies` to `package.json`".into());
    }
    if p.manager != Manager::Npm {
        // pnpm and Yarn tell for themselves (`--frozen-lockfile`, `--immutable`).
        return None;
    }
    let text = std::fs::read_to_string(target.join(lock)).unwrap_or_default();
    let manifest = p.manifest.clone().unwrap_or_default();
    node::npm_lock_matches(&manifest, &text)
        .err()
        .map(|why| format!("`{lock}` does not match `package.json`: {why}"))
}

/// The package manager's arguments for this sync.
fn install_args(ctx: &RuntimeCtx<'_>, p: &Project, target: &Utf8Path) -> Vec<String> {
    let locked = ctx.opts.locked || ctx.opts.frozen;
    // Outside a dry run, hsm's edits are on disk already.
    let change = lock_change(p, target, ctx.edited && ctx.opts.dry_run);
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &[&str]| a.extend(s.iter().map(|x| x.to_string()));
    match p.manager {
        Manager::Npm => {
            if change.is_none() && !ctx.upgrade {
                push(&["ci"]);
            } else if ctx.upgrade && !locked {
                push(&["update"]);
            } else {
                push(&["install"]);
            }
            // The service is its own project, never a workspace of the root's.
            push(&["--prefix", ".", "--include=dev", "--no-audit", "--no-fund"]);
            if ctx.opts.offline {
                push(&["--offline"]);
            }
        }
        Manager::Pnpm => {
            push(&["install", "--ignore-workspace"]);
            push(&[if locked {
                "--frozen-lockfile"
            } else {
                "--no-frozen-lockfile"
            }]);
            if ctx.opts.offline {
                push(&["--offline"]);
            }
        }
        Manager::Yarn if p.is_yarn_berry(target) => {
            push(&[
                "install",
                if locked {
                    "--immutable"
                } else {
                    "--no-immutable"
                },
            ]);
        }
        Manager::Yarn => {
            push(&["install", "--non-interactive"]);
            if locked {
                push(&["--frozen-lockfile"]);
            }
            if ctx.opts.offline {
                push(&["--offline"]);
            }
        }
    }
    a
}

impl RuntimeAdapter for NodeAdapter {
    fn tool(&self) -> &'static str {
        "node"
    }
    fn install_hint(&self) -> &'static str {
        NPM_HINT
    }
    fn lockfile(&self, target: &Utf8Path) -> Option<Utf8PathBuf> {
        let p = Project::read(target).ok()?;
        Some(p.lockfile_name().into())
    }
    fn committed_lockfile(&self, target: &Utf8Path) -> Option<Utf8PathBuf> {
        self.lockfile(target)
    }
    fn env_dir(&self, target: &Utf8Path) -> Utf8PathBuf {
        target.join("node_modules")
    }

    fn run_env(&self, target: &Utf8Path) -> RunEnv {
        let nm = target.join("node_modules");
        let needs = Project::read(target).is_ok_and(|p| p.has_dependencies());
        RunEnv {
            bin: nm.join(".bin"),
            required: needs.then_some(nm),
            vars: Vec::new(),
        }
    }

    fn init_template(&self, name: &str, _module: &str) -> InitTemplate {
        let vars = [("name", name)];
        InitTemplate {
            tool: None,
            files: vec![
                (
                    "package.json".into(),
                    super::fill(include_str!("../../../templates/node/package.json"), &vars),
                ),
                (
                    "index.js".into(),
                    super::fill(include_str!("../../../templates/node/index.js"), &vars),
                ),
            ],
            command: vec!["npm".into(), "start".into()],
        }
    }

    fn artifacts(&self) -> &'static ArtifactPatterns {
        &NODE_ARTIFACTS
    }

    fn check_dependency(
        &self,
        dep: &str,
        is_library: bool,
    ) -> std::result::Result<(), BadDependency> {
        if is_library {
            return Err(BadDependency {
                why: format!(
                    "`{dep}` is a registry library, a Python package of the shared project, which a node service cannot install"
                ),
                help: "list npm package specs (`is-number@^7.0.0`) in a node service's `dependencies`".into(),
            });
        }
        node::parse_spec(dep)
            .map(|_| ())
            .map_err(|why| BadDependency {
                why,
                help: "write an npm package spec such as `is-number@^7.0.0` or `@types/node@20`"
                    .into(),
            })
    }

    fn edited_manifest(&self) -> Option<&'static str> {
        Some("package.json")
    }

    fn owned_entries(
        &self,
        ctx: &RuntimeCtx<'_>,
        target: &Utf8Path,
    ) -> Result<Option<Vec<String>>> {
        let Ok(p) = Project::read(target) else {
            // `edits` reports the unreadable file.
            return Ok(None);
        };
        Ok(ownership(ctx, &p)?.map(|o| o.ours.iter().map(|(n, r)| node::record(n, r)).collect()))
    }

    fn edits(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Result<Vec<FileEdit>> {
        let sv = ctx.service;
        let rel = sv.target_path.clone().unwrap_or_else(|| ".".into());
        let path = target.join("package.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::config(format!(
                    "service `{}` runs with node, but `{rel}/package.json` does not exist",
                    sv.name
                ))
                .with_help(format!(
                    "create it with `npm init -y` in `{rel}`, or choose another runtime"
                )));
            }
            Err(e) => return Err(Error::failed(format!("cannot read `{path}`: {e}"))),
        };
        if sv.dependencies.is_empty() {
            return Ok(Vec::new());
        }
        let p = read(&sv.name, target)?;
        let Some(own) = ownership(ctx, &p)? else {
            return Ok(Vec::new());
        };
        if own.ours.is_empty() {
            return Ok(Vec::new());
        }
        match node::with_dependencies(&text, &own.ours) {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(contents)) => Ok(vec![FileEdit {
                path,
                contents,
                warnings: Vec::new(),
            }]),
            Err(why) => Err(Error::config(format!("`{rel}/package.json`: {why}"))
                .with_help("fix the service's `package.json`")),
        }
    }

    fn fingerprint(&self, h: &mut Hasher, target: &Utf8Path) {
        for f in INPUTS {
            h.file(&target.join(f));
        }
        let nm = target.join("node_modules");
        // What each manager records of the tree it installed.
        for f in [".package-lock.json", ".modules.yaml", ".yarn-state.yml"] {
            h.file(&nm.join(f));
        }
        let p = Project::read(target).ok();
        if p.as_ref().is_some_and(Project::has_dependencies) {
            // Missing, the service is never fresh.
            h.env_dir(&nm);
        } else {
            h.mtime(&nm);
        }
        if let Some(p) = p.filter(|p| p.manager != Manager::Npm) {
            h.tool(p.manager.as_str());
            h.tool("corepack");
            h.text("pinned", p.pinned.as_deref().unwrap_or(""));
        } else {
            h.tool("npm");
        }
    }

    fn lockfile_would_change(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> Result<bool> {
        if ctx.opts.frozen || ctx.opts.locked {
            return Ok(false);
        }
        let p = read(&ctx.service.name, target)?;
        Ok(ctx.upgrade
            || !leftovers(ctx, &p).is_empty()
            || lock_change(&p, target, ctx.edited && ctx.opts.dry_run).is_some())
    }

    fn describe(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> String {
        let Ok(p) = Project::read(target) else {
            return "npm ci".into();
        };
        let tool = match (p.manager, &p.pinned) {
            (Manager::Npm, _) => "npm".to_string(),
            (m, Some(v)) => format!("{}@{v}", m.as_str()),
            (m, None) => m.as_str().to_string(),
        };
        let install = format!("{tool} {}", install_args(ctx, &p, target).join(" "));
        let gone = leftovers(ctx, &p);
        if gone.is_empty() {
            return install;
        }
        let remove = format!("{tool} {}", remove_args(ctx, &p, target, &gone).join(" "));
        // npm's uninstall installs the rest of the lock too (see `sync`).
        let alone = p.manager == Manager::Npm
            && target.join("node_modules").is_dir()
            && lock_change(&p, target, ctx.edited && ctx.opts.dry_run).is_none();
        if alone {
            remove
        } else {
            format!("{remove} && {install}")
        }
    }

    fn sync(&self, ctx: &mut RuntimeCtx<'_>, target: &Utf8Path) -> Result<RuntimeOutcome> {
        let name = ctx.service.name.clone();
        let who = format!("service `{name}`");
        let p = read(&name, target)?;
        if p.manifest.is_none() {
            let rel = ctx.service.target_path.clone().unwrap_or_default();
            return Err(Error::config(format!(
                "service `{name}` runs with node, but `{rel}/package.json` does not exist"
            ))
            .with_help(format!("create it with `npm init -y` in `{rel}`")));
        }
        let locked = ctx.opts.locked || ctx.opts.frozen;
        let gone = leftovers(ctx, &p);
        if locked {
            let why = match gone.as_slice() {
                [] => lock_change(&p, target, false),
                names => Some(format!(
                    "hsm would remove {} from `package.json`: it added {} and the registry no longer lists {}",
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                    if names.len() == 1 { "it" } else { "them" },
                    if names.len() == 1 { "it" } else { "them" },
                )),
            };
            if let Some(why) = why {
                let flag = if ctx.opts.frozen {
                    "--frozen"
                } else {
                    "--locked"
                };
                return Err(Error::failed(format!(
                    "service `{name}`: `{flag}` forbids changing its lock file, but {why}"
                ))
                .with_help(format!(
                    "run `cargo hsm sync` without `{flag}` to update `{}`, and commit it",
                    p.lockfile_name()
                )));
            }
        }
        if p.is_yarn_berry(target) && !node::yarn_uses_node_modules(target) {
            return Err(Error::config(format!(
                "service `{name}` uses Yarn 2+ with Plug'n'Play (no `node_modules`), which hsm does not support: \
                 it checks and runs what is installed in `node_modules`"
            ))
            .with_help("add `nodeLinker: node-modules` to the service's `.yarnrc.yml`"));
        }
        let (program, mut args) = program(&p, &name)?;
        for f in ["package.json", p.lockfile_name()] {
            let path = target.join(f);
            ctx.txn
                .snapshot(&path)
                .map_err(|e| Error::failed(format!("cannot read `{path}`: {e}")))?;
        }
        let mut commands = Vec::new();
        let mut p = p;
        if !gone.is_empty() {
            // hsm's own entries that the registry dropped, removed by the
            // package manager: `package.json`, the lock and `node_modules`.
            let mut rm = args.clone();
            rm.extend(remove_args(ctx, &p, target, &gone));
            commands.push(super::command_line(&program, &rm));
            run_tool_env(&who, &program, &rm, target, true, &[], &[])?;
            p = read(&name, target)?;
            let whole = p.manager == Manager::Npm
                && target.join("node_modules").is_dir()
                && lock_change(&p, target, false).is_none();
            if whole {
                // npm's uninstall installed the rest of the tree as locked.
                return Ok(RuntimeOutcome {
                    commands,
                    pins: None,
                });
            }
        }
        args.extend(install_args(ctx, &p, target));
        let line = super::command_line(&program, &args);
        commands.push(line.clone());
        run_tool_env(&who, &program, &args, target, true, &[], &[])?;
        let after = read(&name, target)?;
        if after.has_dependencies() && !target.join("node_modules").is_dir() {
            return Err(Error::failed(format!(
                "`{line}` for service `{name}` did not create `{}`",
                target.join("node_modules")
            ))
            .with_help("check the package manager's configuration (`.npmrc`, `.yarnrc.yml`): hsm needs a `node_modules`"));
        }
        Ok(RuntimeOutcome {
            commands,
            pins: None,
        })
    }
}
