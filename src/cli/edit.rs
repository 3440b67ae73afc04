//! `init`, `service …`, `library …`, `mode`, `group …`: thin wrappers
//! over [`crate::init`] and [`crate::edit`] (`registry …` is in
//! [`super::registry`]).

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, Subcommand, ValueEnum};

use super::shell::{MessageFormat, Shell, Verbosity};
use crate::edit::selection::{self as sel, Component};
use crate::edit::{Outcome, Session};
use crate::error::{Error, Result, EXIT_OK};
use crate::init::{self, InitOptions, ServiceInitOptions};
use crate::manifest::model::{Mode, RuntimeType};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Dev,
    Prod,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Dev => Mode::Dev,
            ModeArg::Prod => Mode::Prod,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Library,
    Service,
}

impl From<KindArg> for Component {
    fn from(k: KindArg) -> Component {
        match k {
            KindArg::Library => Component::Library,
            KindArg::Service => Component::Service,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StrategyArg {
    #[value(name = "1-of-N", alias = "1-of-n")]
    OneOfN,
    #[value(name = "M-of-N", alias = "m-of-n")]
    MOfN,
}

pub(super) fn parse_runtime(s: &str) -> std::result::Result<RuntimeType, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Put the manifest into the root `Cargo.toml` (`[workspace.metadata.hsm]`, or `[package.metadata.hsm]` in a single-crate repo) instead of `hsm.toml`
    #[arg(long)]
    pub metadata: bool,
    /// Registry directory, relative to the workspace root
    #[arg(long, value_name = "DIR", default_value = init::DEFAULT_REGISTRY_DIR)]
    pub registry: Utf8PathBuf,
    /// Project name (default: the root package's or the directory's name)
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Registry name
    pub name: String,
    /// Select it as an option of this group instead of on its own
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Source mode of the standalone selection
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Name of the selected library or service
    pub name: String,
    /// Remove it from this group's selection instead of the standalone list
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
}

#[derive(Debug, Args)]
pub struct ModeOfArgs {
    /// Name of the selected library or service
    pub name: String,
    /// `dev` (its dev source, falling back on prod) or `prod`
    #[arg(value_enum)]
    pub mode: ModeArg,
}

#[derive(Debug, Subcommand)]
pub enum LibraryCmd {
    /// Select a registry library
    Add(AddArgs),
    /// Unselect a library
    Remove(RemoveArgs),
    /// Use the library's dev or prod source
    Mode(ModeOfArgs),
    /// Create `packages/NAME` with `uv init --lib --no-workspace` and register it (editable, dev)
    Init {
        /// Name of the new library (also its directory under `packages/`)
        name: String,
        /// Run `git init` in the new directory
        #[arg(long)]
        git_init: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Select a registry service
    Add {
        #[command(flatten)]
        add: AddArgs,
        /// Deployment profile of the standalone selection
        #[arg(long)]
        profile: Option<String>,
    },
    /// Unselect a service
    Remove(RemoveArgs),
    /// Use the service's dev or prod source
    Mode(ModeOfArgs),
    /// Create `<services-dir>/NAME` from the runtime's template and register it
    Init {
        /// Name of the new service (also its directory under `<services-dir>`)
        name: String,
        /// uv, venv, pixi, node, docker or podman
        #[arg(long, value_parser = parse_runtime, default_value = "uv")]
        runtime: RuntimeType,
        /// Create it here instead of `<services-dir>/NAME` (inside the workspace)
        #[arg(long, value_name = "DIR")]
        path: Option<Utf8PathBuf>,
        /// Only create the directory; do not touch the manifest or registry
        #[arg(long)]
        no_register: bool,
        /// Run `git init` in the new directory
        #[arg(long)]
        git_init: bool,
    },
}

#[derive(Debug, Args)]
pub struct ModeArgs {
    /// Mode for every selected library and service
    #[arg(value_enum)]
    pub mode: ModeArg,
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Select a registry group (with `--option`)
    Add {
        /// Name of the registry group
        group: String,
        /// Option(s) to select
        #[arg(long = "option", value_name = "OPTION")]
        options: Vec<String>,
        /// Deployment profile for the group's services
        #[arg(long)]
        profile: Option<String>,
        /// Whether GROUP is a library or a service group (needed only when both exist)
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Unselect a group
    Remove {
        /// Name of the selected group
        group: String,
        /// Whether GROUP is a library or a service group (needed only when both exist)
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Select an option: 1-of-N replaces the selection, M-of-N adds to it
    AddOption {
        /// Name of the group
        group: String,
        /// The option to select
        option: String,
        /// Whether GROUP is a library or a service group (needed only when both exist)
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Unselect an option
    RemoveOption {
        /// Name of the group
        group: String,
        /// The option to unselect
        option: String,
        /// Whether GROUP is a library or a service group (needed only when both exist)
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
}

/// Reports what an edit changed, in cargo's voice (or as JSON).
fn report(shell: &Shell, root: &Utf8Path, what: &str, out: &Outcome) -> Result<i32> {
    if let Some(note) = &out.recovered {
        shell.warn(note);
    }
    if shell.format == MessageFormat::Json {
        let rel = |v: &[Utf8PathBuf]| -> Vec<Utf8PathBuf> {
            v.iter()
                .map(|p| crate::paths::relative_to(p, root))
                .collect()
        };
        shell.document(
            "edit",
            &serde_json::json!({
                "command": what,
                "created": rel(&out.created),
                "written": rel(&out.written),
                "removed": rel(&out.removed),
            }),
        );
        return Ok(EXIT_OK);
    }
    if out.is_empty() {
        shell.status("Unchanged", format!("{what}: nothing to do"));
    }
    for p in &out.created {
        shell.status(
            "Created",
            format!("`{}`", crate::paths::relative_to(p, root)),
        );
    }
    for p in &out.written {
        let rel = crate::paths::relative_to(p, root);
        shell.status("Updated", format!("`{rel}`"));
        // `-v`: what changed, as a diff (coloured on a terminal).
        if let (Verbosity::Verbose, Some(old)) = (shell.verbosity, out.before.get(p)) {
            let new = std::fs::read_to_string(p).unwrap_or_default();
            shell.diff(&crate::diff::unified(
                old,
                &new,
                &format!("{rel} (before)"),
                &format!("{rel} (after)"),
                200,
            ));
        }
    }
    for p in &out.removed {
        shell.status(
            "Removed",
            format!("`{}`", crate::paths::relative_to(p, root)),
        );
    }
    Ok(EXIT_OK)
}

pub(super) fn edit(
    shell: &Shell,
    root: &Utf8Path,
    what: &str,
    f: impl FnOnce(&mut Session) -> Result<()>,
) -> Result<i32> {
    let mut s = Session::open(root)?;
    f(&mut s)?;
    let out = s.commit()?;
    report(shell, root, what, &out)
}

/// [`edit`] for a session staged already: validates, tells what the new
/// state means (`notes` of its Plan: "stays selected because …"), writes,
/// and reports.
pub(super) fn edit_reporting(
    shell: &Shell,
    root: &Utf8Path,
    what: &str,
    s: Session,
    notes: impl FnOnce(&crate::Plan) -> Vec<String>,
) -> Result<i32> {
    let loaded = s.validate()?;
    let plan = crate::resolve(&loaded)?;
    let out = s.commit()?;
    let code = report(shell, root, what, &out)?;
    for n in notes(&plan) {
        shell.warn(n);
    }
    Ok(code)
}

/// The warning for `dev` on an entry without a dev source: prod is used.
fn no_dev_source(s: &Session, kind: Component, name: &str, mode: Mode) -> Option<String> {
    if mode != Mode::Dev {
        return None;
    }
    let r = &s.loaded.registry;
    let sources = match kind {
        Component::Library => &r.libraries.get(name)?.value.sources,
        Component::Service => &r.services.get(name)?.value.sources,
    };
    if sources.dev.is_some() {
        return None;
    }
    let prod = sources
        .prod
        .as_ref()
        .map(|p| format!(" (`{}`)", p.describe()))
        .unwrap_or_default();
    Some(format!(
        "the {} `{name}` has no dev source: in dev mode it uses its prod source{prod}",
        kind.word()
    ))
}

pub fn run_init(shell: &Shell, root: &Utf8Path, a: &InitArgs) -> Result<i32> {
    let out = init::init(
        root,
        &InitOptions {
            metadata: a.metadata,
            registry: Some(a.registry.clone()),
            name: a.name.clone(),
        },
    )?;
    report(shell, root, "init", &out)
}

fn cwd_path(p: &Utf8Path) -> Result<Utf8PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|c| Utf8PathBuf::from_path_buf(c).ok())
        .ok_or_else(|| Error::failed("the current directory is not valid UTF-8"))?;
    Ok(cwd.join(p))
}

pub fn run_library(shell: &Shell, root: &Utf8Path, cmd: &LibraryCmd) -> Result<i32> {
    let k = Component::Library;
    match cmd {
        LibraryCmd::Add(a) => edit(shell, root, &format!("library add {}", a.name), |s| {
            match &a.group {
                Some(g) => {
                    if a.mode.is_some() {
                        return Err(Error::config("`--mode` applies to standalone selections; set a group option's mode with `cargo hsm library mode NAME dev|prod`"));
                    }
                    sel::add_option(s, Some(k), g, &a.name)?
                }
                None => sel::add(s, k, &a.name, a.mode.map(Mode::from), None)?,
            }
            crate::init::stage_root_pyproject(s).map(|_| ())
        }),
        LibraryCmd::Remove(a) => {
            let mut s = Session::open(root)?;
            match &a.group {
                Some(g) => sel::remove_option(&mut s, Some(k), g, &a.name)?,
                None => sel::remove(&mut s, k, &a.name)?,
            }
            edit_reporting(
                shell,
                root,
                &format!("library remove {}", a.name),
                s,
                |plan| {
                    super::add::still_selected(plan, k, &a.name)
                        .map(|why| vec![format!("the library `{}` stays selected: {why}", a.name)])
                        .unwrap_or_default()
                },
            )
        }
        LibraryCmd::Mode(a) => {
            let mut s = Session::open(root)?;
            sel::set_mode(&mut s, k, &a.name, a.mode.into())?;
            let note = no_dev_source(&s, k, &a.name, a.mode.into());
            edit_reporting(shell, root, &format!("library mode {}", a.name), s, |_| {
                note.into_iter().collect()
            })
        }
        LibraryCmd::Init { name, git_init } => {
            let c = init::library_init(root, name, *git_init)?;
            shell.status("Created", format!("library `{name}` in `{}`", c.dir));
            report(shell, root, &format!("library init {name}"), &c.outcome)
        }
    }
}

pub fn run_service(shell: &Shell, root: &Utf8Path, cmd: &ServiceCmd) -> Result<i32> {
    let k = Component::Service;
    match cmd {
        ServiceCmd::Add { add: a, profile } => edit(
            shell,
            root,
            &format!("service add {}", a.name),
            |s| match &a.group {
                Some(g) => {
                    if a.mode.is_some() || profile.is_some() {
                        return Err(Error::config("`--mode` and `--profile` apply to standalone selections; with `--group`, use `cargo hsm service mode` and `cargo hsm group add GROUP --profile`"));
                    }
                    sel::add_option(s, Some(k), g, &a.name)
                }
                None => sel::add(s, k, &a.name, a.mode.map(Mode::from), profile.as_deref()),
            },
        ),
        ServiceCmd::Remove(a) => {
            let mut s = Session::open(root)?;
            match &a.group {
                Some(g) => sel::remove_option(&mut s, Some(k), g, &a.name)?,
                None => sel::remove(&mut s, k, &a.name)?,
            }
            edit_reporting(
                shell,
                root,
                &format!("service remove {}", a.name),
                s,
                |plan| {
                    super::add::still_selected(plan, k, &a.name)
                        .map(|why| vec![format!("the service `{}` stays selected: {why}", a.name)])
                        .unwrap_or_default()
                },
            )
        }
        ServiceCmd::Mode(a) => {
            let mut s = Session::open(root)?;
            sel::set_mode(&mut s, k, &a.name, a.mode.into())?;
            let note = no_dev_source(&s, k, &a.name, a.mode.into());
            edit_reporting(shell, root, &format!("service mode {}", a.name), s, |_| {
                note.into_iter().collect()
            })
        }
        ServiceCmd::Init {
            name,
            runtime,
            path,
            no_register,
            git_init,
        } => {
            let path = match path {
                Some(p) => Some(cwd_path(p)?),
                None => None,
            };
            let c = init::service_init(
                root,
                &ServiceInitOptions {
                    name: name.clone(),
                    runtime: *runtime,
                    path,
                    register: !no_register,
                    git_init: *git_init,
                },
            )?;
            shell.status(
                "Created",
                format!("service `{name}` ({runtime}) in `{}`", c.dir),
            );
            report(shell, root, &format!("service init {name}"), &c.outcome)
        }
    }
}

pub fn run_mode(shell: &Shell, root: &Utf8Path, a: &ModeArgs) -> Result<i32> {
    let mode: Mode = a.mode.into();
    edit(shell, root, &format!("mode {mode}"), |s| {
        sel::set_all_modes(s, mode)
    })
}

pub fn run_group(shell: &Shell, root: &Utf8Path, cmd: &GroupCmd) -> Result<i32> {
    match cmd {
        GroupCmd::Add {
            group,
            options,
            profile,
            kind,
        } => edit(shell, root, &format!("group add {group}"), |s| {
            sel::group_add(
                s,
                kind.map(Component::from),
                group,
                options,
                profile.as_deref(),
            )
        }),
        GroupCmd::Remove { group, kind } => {
            edit(shell, root, &format!("group remove {group}"), |s| {
                sel::group_remove(s, kind.map(Component::from), group)
            })
        }
        GroupCmd::AddOption {
            group,
            option,
            kind,
        } => edit(
            shell,
            root,
            &format!("group add-option {group} {option}"),
            |s| sel::add_option(s, kind.map(Component::from), group, option),
        ),
        GroupCmd::RemoveOption {
            group,
            option,
            kind,
        } => edit(
            shell,
            root,
            &format!("group remove-option {group} {option}"),
            |s| sel::remove_option(s, kind.map(Component::from), group, option),
        ),
    }
}
