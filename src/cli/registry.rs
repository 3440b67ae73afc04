//! `registry …`: show, search and edit the registry; thin wrappers over
//! [`crate::edit::registry`].

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, Subcommand, ValueEnum};

use super::edit::{edit, parse_runtime, KindArg, StrategyArg};
use super::shell::{MessageFormat, Shell};
use crate::edit::registry::{
    self as reg, parse_pair, EntryKind, GroupSpec, Implied, LibrarySpec, ServiceSpec, SourceSpec,
};
use crate::edit::selection::{self as sel, Component};
use crate::edit::Session;
use crate::error::{Error, Result, EXIT_OK};
use crate::manifest::model::{RuntimeType, Strategy};

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
    /// A compose volume, `NAME:/path` or `./dir:/path` (repeatable)
    #[arg(long = "volume")]
    pub volumes: Vec<String>,
    /// `KEY=VALUE` (repeatable)
    #[arg(long = "env", value_parser = parse_pair, value_name = "KEY=VALUE")]
    pub env: Vec<(String, String)>,
    /// An env file of `KEY=VALUE` lines, relative to the workspace (repeatable)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// A service this one needs running and ready first, for `up` and compose (repeatable)
    #[arg(long = "depends-on", value_name = "SERVICE")]
    pub depends_on: Vec<String>,
    /// The container's name in the compose file
    #[arg(long)]
    pub container_name: Option<String>,
    /// Compose restart policy (`no`, `always`, `on-failure`, `unless-stopped`)
    #[arg(long)]
    pub restart: Option<String>,
    /// Another host name of the container on the compose network (repeatable)
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
    /// docker, podman, uv, pixi, venv or node
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
