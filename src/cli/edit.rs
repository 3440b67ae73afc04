//! `init`, `service …`, `library …`, `mode`, `group …`, `registry …`: thin
//! wrappers over [`crate::init`] and [`crate::edit`].

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, Subcommand, ValueEnum};

use super::shell::{MessageFormat, Shell};
use crate::edit::registry::{
    self as reg, parse_pair, EntryKind, GroupSpec, Implied, LibrarySpec, ServiceSpec, SourceSpec,
};
use crate::edit::selection::{self as sel, Component};
use crate::edit::{Outcome, Session};
use crate::error::{Error, Result, EXIT_OK};
use crate::init::{self, InitOptions, ServiceInitOptions};
use crate::manifest::model::{Mode, RuntimeType, Strategy};

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

fn parse_runtime(s: &str) -> std::result::Result<RuntimeType, String> {
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
        /// uv, venv, pixi, docker or podman
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

#[derive(Debug, Subcommand)]
pub enum ImpliesCmd {
    /// Add or replace an implication: `true`, `--select OPTION`… for a group target, `--param K=V`… for a service target
    Add {
        /// The registry entry that implies
        name: String,
        /// `library:<n>`, `library_group:<g>`, `service:<n>` or `service_group:<g>`
        target: String,
        /// For a group entry: the option the implication belongs to
        #[arg(long)]
        option: Option<String>,
        /// Option(s) the implied group must select
        #[arg(long = "select", value_name = "OPTION", conflicts_with = "params")]
        select: Vec<String>,
        /// Parameter passed to the implied service
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_pair)]
        params: Vec<(String, String)>,
    },
    /// Remove an implication
    Remove {
        /// The registry entry that implies
        name: String,
        /// The implied target, as given to `implies add`
        target: String,
        /// For a group entry: the option the implication belongs to
        #[arg(long)]
        option: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Prod source, `key=value` pairs: `type=git,url=…,ref=v1`, `type=pypi,version=>=2`, `type=docker-image,image=…`, `type=local,path=…`, `type=build,path=…,dockerfile=…`; or a TOML inline table for values with commas: `{ type = "pypi", version = ">=1.26,<3" }`
    #[arg(long, value_name = "SPEC")]
    pub prod: Option<SourceSpec>,
    /// Dev source, same form as `--prod` (usually `type=local,path=…,editable=true`)
    #[arg(long, value_name = "SPEC")]
    pub dev: Option<SourceSpec>,
}

#[derive(Debug, Subcommand)]
pub enum RegLibraryCmd {
    /// Register a library
    Add {
        /// Name of the new library entry
        name: String,
        /// One line on what the library is
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        sources: SourceArgs,
    },
    /// Remove a library from the registry
    Remove {
        /// Name of the library entry
        name: String,
    },
    /// Edit what selecting the library implies
    Implies {
        #[command(subcommand)]
        cmd: ImpliesCmd,
    },
}

#[derive(Debug, Args)]
pub struct ServiceFields {
    /// One line on what the service is
    #[arg(long)]
    pub description: Option<String>,
    /// Registry library or requirement string (repeatable)
    #[arg(long = "dependency", value_name = "REQ")]
    pub dependencies: Vec<String>,
    /// `HOST:CONTAINER` (repeatable)
    #[arg(long = "port")]
    pub ports: Vec<String>,
    /// (repeatable)
    #[arg(long = "volume")]
    pub volumes: Vec<String>,
    /// `KEY=VALUE` (repeatable)
    #[arg(long = "env", value_parser = parse_pair, value_name = "KEY=VALUE")]
    pub env: Vec<(String, String)>,
    /// (repeatable)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// (repeatable)
    #[arg(long = "depends-on", value_name = "SERVICE")]
    pub depends_on: Vec<String>,
    /// The container's name in the compose file
    #[arg(long)]
    pub container_name: Option<String>,
    /// Compose restart policy (`no`, `always`, `on-failure`, `unless-stopped`)
    #[arg(long)]
    pub restart: Option<String>,
    /// (repeatable)
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Name of the deployment profile the next options describe
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// managed or external
    #[arg(long, value_name = "MODE")]
    pub profile_mode: Option<String>,
    /// docker, podman, uv, pixi or venv
    #[arg(long, value_parser = parse_runtime)]
    pub runtime: Option<RuntimeType>,
    /// The command, split with shell rules (`"python -m embedder"`, `"sh -c 'echo hello'"`)
    #[arg(long, value_name = "CMD")]
    pub command: Option<super::add::CommandLine>,
    /// Directory the command runs in, relative to the service
    #[arg(long)]
    pub working_dir: Option<String>,
    /// Profile env `KEY=VALUE` (repeatable)
    #[arg(long = "profile-env", value_parser = parse_pair, value_name = "KEY=VALUE")]
    pub profile_env: Vec<(String, String)>,
    /// External connection value `KEY=VALUE` (repeatable)
    #[arg(long = "external", value_parser = parse_pair, value_name = "KEY=VALUE")]
    pub external: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
pub enum RegServiceCmd {
    /// Register a service
    Add {
        /// Name of the new service entry
        name: String,
        #[command(flatten)]
        fields: Box<ServiceFields>,
    },
    /// Remove a service from the registry
    Remove {
        /// Name of the service entry
        name: String,
    },
    /// Edit what selecting the service implies
    Implies {
        #[command(subcommand)]
        cmd: ImpliesCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegGroupCmd {
    /// Register a group
    Add {
        /// Name of the new group entry
        name: String,
        /// A group of libraries or of services
        #[arg(long, value_enum)]
        kind: KindArg,
        /// `1-of-N` (exactly one option) or `M-of-N` (one or more)
        #[arg(long, value_enum)]
        strategy: StrategyArg,
        /// Option name (repeatable)
        #[arg(long = "option", value_name = "NAME")]
        options: Vec<String>,
        /// What the choice is about (HSM's `comment`)
        #[arg(long)]
        comment: Option<String>,
        /// One line on what the group is
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a group from the registry
    Remove {
        /// Name of the group entry
        name: String,
        /// Whether NAME is a library or a service group (needed only when both exist)
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Edit what selecting one of the group's options implies (`--option`)
    Implies {
        /// Whether the group is a library or a service group (needed only when both exist)
        #[arg(long, value_enum, global = true)]
        kind: Option<KindArg>,
        #[command(subcommand)]
        cmd: ImpliesCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Every registry entry and where it is defined
    List,
    /// One entry's definition
    Show {
        /// Name of the entry
        name: String,
        /// Which kind of entry NAME is (needed only when several kinds share it)
        #[arg(long, value_enum)]
        kind: Option<RegKindArg>,
    },
    /// Entries whose name, description or comment contains TERM
    Search {
        /// Part of a name, description or comment (case-insensitive)
        term: String,
    },
    /// Add, remove or edit library entries
    Library {
        #[command(subcommand)]
        cmd: RegLibraryCmd,
    },
    /// Add, remove or edit service entries
    Service {
        #[command(subcommand)]
        cmd: RegServiceCmd,
    },
    /// Add, remove or edit group entries
    Group {
        #[command(subcommand)]
        cmd: RegGroupCmd,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegKindArg {
    Library,
    Service,
    LibraryGroup,
    ServiceGroup,
}

fn entry_kind(k: RegKindArg) -> EntryKind {
    match k {
        RegKindArg::Library => EntryKind::Library,
        RegKindArg::Service => EntryKind::Service,
        RegKindArg::LibraryGroup => EntryKind::LibraryGroup,
        RegKindArg::ServiceGroup => EntryKind::ServiceGroup,
    }
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
        shell.status(
            "Updated",
            format!("`{}`", crate::paths::relative_to(p, root)),
        );
    }
    for p in &out.removed {
        shell.status(
            "Removed",
            format!("`{}`", crate::paths::relative_to(p, root)),
        );
    }
    Ok(EXIT_OK)
}

fn edit(
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

fn implied(select: &[String], params: &[(String, String)]) -> Implied {
    if !params.is_empty() {
        Implied::Params(params.to_vec())
    } else if !select.is_empty() {
        Implied::Options(select.to_vec())
    } else {
        Implied::Flag
    }
}

fn run_implies(
    shell: &Shell,
    root: &Utf8Path,
    kind: Option<EntryKind>,
    group_kind: Option<KindArg>,
    cmd: &ImpliesCmd,
) -> Result<i32> {
    let resolve_kind = |s: &Session, name: &str| -> Result<EntryKind> {
        match kind {
            Some(k) => Ok(k),
            None => {
                let (c, _) = sel::require_group(s, group_kind.map(Component::from), name)?;
                Ok(match c {
                    Component::Library => EntryKind::LibraryGroup,
                    Component::Service => EntryKind::ServiceGroup,
                })
            }
        }
    };
    match cmd {
        ImpliesCmd::Add {
            name,
            target,
            option,
            select,
            params,
        } => edit(shell, root, &format!("implies add {name} {target}"), |s| {
            let k = resolve_kind(s, name)?;
            reg::implies_add(
                s,
                k,
                name,
                option.as_deref(),
                target,
                &implied(select, params),
            )
        }),
        ImpliesCmd::Remove {
            name,
            target,
            option,
        } => edit(
            shell,
            root,
            &format!("implies remove {name} {target}"),
            |s| {
                let k = resolve_kind(s, name)?;
                reg::implies_remove(s, k, name, option.as_deref(), target)
            },
        ),
    }
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

fn service_spec(f: &ServiceFields) -> ServiceSpec {
    ServiceSpec {
        description: f.description.clone(),
        dependencies: f.dependencies.clone(),
        ports: f.ports.clone(),
        volumes: f.volumes.clone(),
        env: f.env.clone(),
        env_file: f.env_file.clone(),
        depends_on: f.depends_on.clone(),
        container_name: f.container_name.clone(),
        restart: f.restart.clone(),
        aliases: f.aliases.clone(),
        prod: f.sources.prod.clone(),
        dev: f.sources.dev.clone(),
        profile: Some(f.profile.clone()),
        profile_mode: f.profile_mode.clone(),
        runtime: f.runtime,
        command: f.command.as_ref().map(|c| c.0.clone()),
        working_dir: f.working_dir.clone(),
        profile_env: f.profile_env.clone(),
        external: f.external.clone(),
    }
}

/// One row of `registry list` / `search`.
struct Row {
    kind: EntryKind,
    name: String,
    about: Option<String>,
    at: String,
    defined_in: Option<(Utf8PathBuf, Option<String>)>,
}

fn rows(s: &Session) -> Vec<Row> {
    let r = &s.loaded.registry;
    let mut v = Vec::new();
    for (n, e) in &r.libraries {
        v.push((EntryKind::Library, n, e.value.description.clone()));
    }
    for (n, e) in &r.services {
        v.push((EntryKind::Service, n, e.value.description.clone()));
    }
    for (n, e) in &r.library_groups {
        v.push((
            EntryKind::LibraryGroup,
            n,
            e.value.comment.clone().or(e.value.description.clone()),
        ));
    }
    for (n, e) in &r.service_groups {
        v.push((
            EntryKind::ServiceGroup,
            n,
            e.value.comment.clone().or(e.value.description.clone()),
        ));
    }
    v.into_iter()
        .map(|(kind, name, about)| Row {
            kind,
            at: reg::describe(s, kind, name).unwrap_or_default(),
            defined_in: reg::defined_in(s, kind, name),
            name: name.clone(),
            about,
        })
        .collect()
}

/// `{ "file": …, "key_path": … }`: where a registry entry is defined.
fn place_json(p: &(Utf8PathBuf, Option<String>)) -> serde_json::Value {
    serde_json::json!({ "file": p.0, "key_path": p.1 })
}

fn print_rows(shell: &Shell, rows: &[Row]) {
    if shell.format == MessageFormat::Json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "kind": r.kind.word(),
                    "name": r.name,
                    "description": r.about,
                    "defined_in": r.defined_in.as_ref().map(place_json),
                })
            })
            .collect();
        shell.document("registry", &serde_json::json!({ "entries": v }));
        return;
    }
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!("{:<14} {:<20} {}", r.kind.word(), r.name, r.at));
        if let Some(a) = &r.about {
            out.push_str(&format!("  {a}"));
        }
        out.push('\n');
    }
    shell.out(&out);
}

pub fn run_registry(shell: &Shell, root: &Utf8Path, cmd: &RegistryCmd) -> Result<i32> {
    match cmd {
        RegistryCmd::List => {
            let s = Session::open(root)?;
            print_rows(shell, &rows(&s));
            Ok(EXIT_OK)
        }
        RegistryCmd::Search { term } => {
            let s = Session::open(root)?;
            let t = term.to_lowercase();
            let found: Vec<Row> = rows(&s)
                .into_iter()
                .filter(|r| {
                    r.name.to_lowercase().contains(&t)
                        || r.about
                            .as_ref()
                            .is_some_and(|a| a.to_lowercase().contains(&t))
                })
                .collect();
            if found.is_empty() && shell.format == MessageFormat::Human {
                shell.status("Searched", format!("no registry entry matches `{term}`"));
            }
            print_rows(shell, &found);
            Ok(EXIT_OK)
        }
        RegistryCmd::Show { name, kind } => {
            let s = Session::open(root)?;
            let kinds: Vec<EntryKind> = match kind {
                Some(k) => vec![entry_kind(*k)],
                None => vec![
                    EntryKind::Library,
                    EntryKind::Service,
                    EntryKind::LibraryGroup,
                    EntryKind::ServiceGroup,
                ],
            };
            let found: Vec<EntryKind> = kinds
                .into_iter()
                .filter(|k| reg::exists(&s, *k, name))
                .collect();
            match found.as_slice() {
                [] => Err(
                    Error::config(format!("no registry entry is named `{name}`")).with_help(
                        "`cargo hsm registry search` finds entries by part of their name",
                    ),
                ),
                [k] => {
                    let text = reg::entry_text(&s, *k, name)?;
                    if shell.format == MessageFormat::Json {
                        let entry: toml::Table = toml::from_str(&text).map_err(|e| {
                            Error::config(format!("registry entry `{name}`: {}", e.message()))
                        })?;
                        shell.document(
                            "registry-entry",
                            &serde_json::json!({
                                "kind": k.word(),
                                "name": name,
                                "defined_in": reg::defined_in(&s, *k, name).as_ref().map(place_json),
                                "entry": entry,
                            }),
                        );
                    } else {
                        shell.out(&format!(
                            "# {} `{name}`, defined in {}\n{text}",
                            k.word(),
                            reg::describe(&s, *k, name).unwrap_or_default()
                        ));
                    }
                    Ok(EXIT_OK)
                }
                _ => Err(Error::config(format!(
                    "`{name}` names more than one registry entry ({})",
                    found
                        .iter()
                        .map(|k| k.word())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .with_help("say which one with `--kind`")),
            }
        }
        RegistryCmd::Library { cmd } => match cmd {
            RegLibraryCmd::Add {
                name,
                description,
                sources,
            } => {
                let spec = LibrarySpec {
                    description: description.clone(),
                    prod: sources.prod.clone(),
                    dev: sources.dev.clone(),
                };
                edit(shell, root, &format!("registry library add {name}"), |s| {
                    reg::add_entry(s, EntryKind::Library, name, spec.table()).map(|_| ())
                })
            }
            RegLibraryCmd::Remove { name } => edit(
                shell,
                root,
                &format!("registry library remove {name}"),
                |s| reg::remove_entry(s, EntryKind::Library, name),
            ),
            RegLibraryCmd::Implies { cmd } => {
                run_implies(shell, root, Some(EntryKind::Library), None, cmd)
            }
        },
        RegistryCmd::Service { cmd } => match cmd {
            RegServiceCmd::Add { name, fields } => {
                let spec = service_spec(fields);
                edit(shell, root, &format!("registry service add {name}"), |s| {
                    reg::add_entry(s, EntryKind::Service, name, spec.table()).map(|_| ())
                })
            }
            RegServiceCmd::Remove { name } => edit(
                shell,
                root,
                &format!("registry service remove {name}"),
                |s| reg::remove_entry(s, EntryKind::Service, name),
            ),
            RegServiceCmd::Implies { cmd } => {
                run_implies(shell, root, Some(EntryKind::Service), None, cmd)
            }
        },
        RegistryCmd::Group { cmd } => match cmd {
            RegGroupCmd::Add {
                name,
                kind,
                strategy,
                options,
                comment,
                description,
            } => {
                let spec = GroupSpec {
                    strategy: match strategy {
                        StrategyArg::OneOfN => Strategy::OneOfN,
                        StrategyArg::MOfN => Strategy::MOfN,
                    },
                    options: options.clone(),
                    comment: comment.clone(),
                    description: description.clone(),
                };
                let k = match kind {
                    KindArg::Library => EntryKind::LibraryGroup,
                    KindArg::Service => EntryKind::ServiceGroup,
                };
                edit(shell, root, &format!("registry group add {name}"), |s| {
                    reg::add_entry(s, k, name, spec.table()).map(|_| ())
                })
            }
            RegGroupCmd::Remove { name, kind } => {
                edit(shell, root, &format!("registry group remove {name}"), |s| {
                    let (c, _) = sel::require_group(s, kind.map(Component::from), name)?;
                    let k = match c {
                        Component::Library => EntryKind::LibraryGroup,
                        Component::Service => EntryKind::ServiceGroup,
                    };
                    reg::remove_entry(s, k, name)
                })
            }
            RegGroupCmd::Implies { kind, cmd } => run_implies(shell, root, None, *kind, cmd),
        },
    }
}
