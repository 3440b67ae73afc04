//! `cargo hsm add` and `cargo hsm remove`: register and select in one
//! step (as `cargo add` and `uv add` do), unselect and, with `--purge`,
//! unregister. Both go through the same validated [`Session`] as every
//! other edit.

use camino::Utf8Path;
use clap::Args;

use super::edit::{edit_reporting, ModeArg};
use super::shell::Shell;
use crate::edit::references::{references, still_referenced};
use crate::edit::registry::{
    self as reg, parse_pair, EntryKind, LibrarySpec, ServiceSpec, SourceSpec,
};
use crate::edit::selection::{self as sel, Component};
use crate::edit::Session;
use crate::error::{Error, Result};
use crate::manifest::model::{Mode, RuntimeType};
use crate::plan::{Plan, SelectedBy};

/// A command line split with shell rules (`shlex`):
/// `"sh -c 'echo hello world'"` is `["sh", "-c", "echo hello world"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(pub Vec<String>);

impl std::str::FromStr for CommandLine {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match shlex::split(s) {
            Some(v) if !v.is_empty() => Ok(CommandLine(v)),
            Some(_) => Err("the command is empty".into()),
            None => Err(format!(
                "`{s}` has an unterminated quote or a trailing backslash"
            )),
        }
    }
}

fn parse_runtime(s: &str) -> std::result::Result<RuntimeType, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The library or service; a PyPI library may carry its version: `requests@>=2.31` or `requests>=2.31`
    pub name: String,
    /// It is a service (its own environment, or a container), not a library
    #[arg(long, conflicts_with = "library")]
    pub service: bool,
    /// It is a library (needed only when a service has the same name)
    #[arg(long)]
    pub library: bool,
    /// PEP 440 version specifier of a PyPI library (`>=2.31`)
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["git", "path", "image"])]
    pub version: Option<String>,
    /// The PyPI project's name, when it is not NAME
    #[arg(long, value_name = "PROJECT", conflicts_with_all = ["git", "path", "image"])]
    pub pypi_name: Option<String>,
    /// A git repository as the source
    #[arg(long, value_name = "URL", conflicts_with_all = ["path", "image"])]
    pub git: Option<String>,
    /// The tag, branch or commit of `--git`
    #[arg(long = "ref", value_name = "REF", requires = "git")]
    pub reference: Option<String>,
    /// The project's directory inside the `--git` repository
    #[arg(long, value_name = "DIR", requires = "git")]
    pub subdirectory: Option<String>,
    /// A local directory as the source, relative to the workspace root (libraries: editable)
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub path: Option<String>,
    /// A container image as a service's source (`redis:7-alpine`)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// The service's runtime (default: docker for an image, uv otherwise)
    #[arg(long, value_parser = parse_runtime)]
    pub runtime: Option<RuntimeType>,
    /// A service's port, `HOST:CONTAINER` or the port a process listens on (repeatable)
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<String>,
    /// A service's environment variable (repeatable)
    #[arg(long = "env", value_parser = parse_pair, value_name = "KEY=VALUE")]
    pub env: Vec<(String, String)>,
    /// A service's command, split with shell rules (`"python -m api"`)
    #[arg(long, value_name = "CMD")]
    pub command: Option<CommandLine>,
    /// Select it as an option of this group instead of on its own
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Source mode of the standalone selection
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Deployment profile of a service's selection (and of its new entry's `--runtime`, `--command`)
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The selected library or service
    pub name: String,
    /// Also remove its registry entry (refused while anything else names it)
    #[arg(long)]
    pub purge: bool,
    /// It is a service (needed only when a library has the same name)
    #[arg(long, conflicts_with = "library")]
    pub service: bool,
    /// It is a library (needed only when a service has the same name)
    #[arg(long)]
    pub library: bool,
    /// Remove it from this group's selection instead of the standalone list
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
}

/// `requests@>=2.31` / `requests>=2.31` / `requests`: the name, and the
/// version specifier when one is written.
fn split_spec(arg: &str) -> (String, Option<String>) {
    if let Some((n, v)) = arg.split_once('@') {
        return (n.trim().to_string(), Some(v.trim().to_string()));
    }
    match arg.find(['<', '>', '=', '!', '~', ' ', ',']) {
        Some(i) => (
            arg[..i].trim().to_string(),
            Some(arg[i..].trim().to_string()),
        ),
        None => (arg.to_string(), None),
    }
}

impl AddArgs {
    /// Whether any option describes a service.
    fn service_only(&self) -> bool {
        self.service
            || self.image.is_some()
            || self.runtime.is_some()
            || !self.ports.is_empty()
            || !self.env.is_empty()
            || self.command.is_some()
            || self.profile.is_some()
    }

    /// The prod source the options describe, if any.
    fn source(&self, kind: Component, version: Option<&str>) -> Option<SourceSpec> {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let mut v = Vec::new();
        if let Some(url) = &self.git {
            v.push(pair("type", "git"));
            v.push(pair("url", url));
            if let Some(r) = &self.reference {
                v.push(pair("ref", r));
            }
            if let Some(d) = &self.subdirectory {
                v.push(pair("subdirectory", d));
            }
        } else if let Some(p) = &self.path {
            return Some(SourceSpec::local(
                p,
                (kind == Component::Library).then_some(true),
            ));
        } else if let Some(i) = &self.image {
            v.push(pair("type", "docker-image"));
            v.push(pair("image", i));
        } else if kind == Component::Library && (version.is_some() || self.pypi_name.is_some()) {
            v.push(pair("type", "pypi"));
            if let Some(p) = &self.pypi_name {
                v.push(pair("package", p));
            }
            if let Some(ver) = version {
                v.push(pair("version", ver));
            }
        } else {
            return None;
        }
        Some(SourceSpec(v))
    }
}

/// Which kind `name` is: said by a flag, else the one the registry has,
/// else (a new entry) a library unless an option describes a service.
fn kind_of(s: &Session, name: &str, service: bool, library: bool) -> Result<Component> {
    if service {
        return Ok(Component::Service);
    }
    if library {
        return Ok(Component::Library);
    }
    match (
        sel::is_known(s, Component::Library, name),
        sel::is_known(s, Component::Service, name),
    ) {
        (true, true) => Err(Error::config(format!(
            "`{name}` is both a registered library and a registered service"
        ))
        .with_help("say which one with `--library` or `--service`")),
        (false, true) => Ok(Component::Service),
        _ => Ok(Component::Library),
    }
}

fn entry_kind(k: Component) -> EntryKind {
    match k {
        Component::Library => EntryKind::Library,
        Component::Service => EntryKind::Service,
    }
}

pub fn run_add(shell: &Shell, root: &Utf8Path, a: &AddArgs) -> Result<i32> {
    let (name, at_version) = split_spec(&a.name);
    if at_version.is_some() && a.version.is_some() {
        return Err(Error::config(format!(
            "the version is given twice: in `{}` and with `--version`",
            a.name
        )));
    }
    let version = at_version.or(a.version.clone());
    let mut s = Session::open(root)?;
    let kind = kind_of(&s, &name, a.service_only(), a.library)?;
    if kind == Component::Library && a.service_only() {
        return Err(Error::config(
            "`--image`, `--runtime`, `--port`, `--env`, `--command` and `--profile` describe a service",
        )
        .with_help(format!("add it as a service: `cargo hsm add --service {name} …`")));
    }
    if kind == Component::Service && (version.is_some() || a.pypi_name.is_some()) {
        return Err(Error::config(
            "a version or a PyPI name applies to PyPI libraries; a service's source is `--image`, `--git` or `--path`",
        ));
    }
    let source = a.source(kind, version.as_deref());
    let ek = entry_kind(kind);
    let what = kind.word();
    let known = sel::is_known(&s, kind, &name);
    if known {
        let extra =
            !a.ports.is_empty() || !a.env.is_empty() || a.command.is_some() || a.runtime.is_some();
        if extra {
            return Err(Error::config(format!(
                "the {what} `{name}` is registered already; `add` only selects it (and can change its source)"
            ))
            .with_help(format!(
                "change its entry with `cargo hsm registry show {name}` and an editor, or remove it first with `cargo hsm remove {name} --purge`"
            )));
        }
        if let Some(src) = &source {
            if reg::set_source(&mut s, ek, &name, "prod", src)? {
                shell.status(
                    "Updating",
                    format!("the {what} `{name}`'s prod source: {}", src.describe()),
                );
            }
        }
    } else {
        let table = match kind {
            Component::Library => LibrarySpec {
                description: None,
                prod: Some(
                    source
                        .clone()
                        .unwrap_or_else(|| SourceSpec(vec![("type".into(), "pypi".into())])),
                ),
                dev: None,
            }
            .table(),
            Component::Service => {
                let Some(src) = source.clone() else {
                    return Err(Error::config(format!(
                        "the service `{name}` is not in the registry, and nothing says where it comes from"
                    ))
                    .with_help(format!(
                        "give its source: `cargo hsm add --service {name} --image IMAGE`, `--git URL --ref REF` or `--path DIR`"
                    )));
                };
                ServiceSpec {
                    ports: a.ports.clone(),
                    env: a.env.clone(),
                    prod: Some(src),
                    profile: a.profile.clone(),
                    runtime: a.runtime,
                    command: a.command.as_ref().map(|c| c.0.clone()),
                    ..ServiceSpec::default()
                }
                .table()
            }
        };
        let described = source
            .as_ref()
            .map(SourceSpec::describe)
            .unwrap_or_else(|| format!("pypi {name}"));
        shell.status("Adding", format!("{what} `{name}` ({described})"));
        reg::add_entry(&mut s, ek, &name, table)?;
    }
    match &a.group {
        Some(g) => {
            if a.mode.is_some() || (kind == Component::Service && a.profile.is_some()) {
                return Err(Error::config("`--mode` and `--profile` apply to standalone selections; with `--group`, use `cargo hsm service mode` and `cargo hsm group add GROUP --profile`"));
            }
            if !known {
                return Err(Error::config(format!(
                    "the {what} `{name}` is new: it is not an option of the group `{g}` yet"
                ))
                .with_help(format!(
                    "add it to the group's `options` in the registry, then `cargo hsm group add-option {g} {name}`"
                )));
            }
            sel::add_option(&mut s, Some(kind), g, &name)?;
        }
        None => sel::add_unchecked(
            &mut s,
            kind,
            &name,
            a.mode.map(Mode::from),
            a.profile.as_deref(),
        )?,
    }
    if kind == Component::Library {
        crate::init::stage_root_pyproject(&mut s)?;
    }
    edit_reporting(shell, root, &format!("add {name}"), s, |_| Vec::new())
}

pub fn run_remove(shell: &Shell, root: &Utf8Path, a: &RemoveArgs) -> Result<i32> {
    let mut s = Session::open(root)?;
    let name = a.name.as_str();
    let kind = if a.service {
        Component::Service
    } else if a.library {
        Component::Library
    } else {
        match (
            sel::is_known(&s, Component::Library, name),
            sel::is_known(&s, Component::Service, name),
        ) {
            (true, true) => {
                return Err(Error::config(format!(
                    "`{name}` is both a registered library and a registered service"
                ))
                .with_help("say which one with `--library` or `--service`"))
            }
            (false, true) => Component::Service,
            (true, false) => Component::Library,
            (false, false) => {
                let lib = sel::unknown_for_removal(&s, Component::Library, name);
                let svc = sel::unknown_for_removal(&s, Component::Service, name);
                // The kind with a close name gives the better "did you mean".
                let better = match &svc {
                    Error::Config(d) if d.help.as_deref().is_some_and(|h| h.starts_with("did")) => {
                        svc
                    }
                    _ => lib,
                };
                return Err(better);
            }
        }
    };
    match &a.group {
        Some(g) => sel::remove_option(&mut s, Some(kind), g, name)?,
        None => sel::remove(&mut s, kind, name)?,
    }
    if a.purge {
        let ek = entry_kind(kind);
        let blocking: Vec<_> = references(&s, ek, name)
            .into_iter()
            .filter(|r| {
                // The standalone selection, or this group's, goes in this edit.
                !(r.selection
                    && match &a.group {
                        None => r.what.contains("standalone"),
                        Some(g) => r.what.contains(&format!("`{g}`")),
                    })
            })
            .collect();
        if !blocking.is_empty() {
            return Err(still_referenced(
                &s,
                ek,
                name,
                &blocking,
                "remove or change those places first; `cargo hsm remove` without `--purge` only unselects it",
            ));
        }
        reg::remove_entry_unchecked(&mut s, ek, name)?;
        sel::forget_mode(&mut s, name)?;
    }
    let (kind_word, owned) = (kind.word(), name.to_string());
    edit_reporting(shell, root, &format!("remove {name}"), s, move |plan| {
        still_selected(plan, kind, &owned)
            .map(|why| vec![format!("the {kind_word} `{owned}` stays selected: {why}")])
            .unwrap_or_default()
    })
}

/// Why `name` is still in the Plan after an edit meant to unselect it, in
/// words with the places: `None` when it left the Plan.
pub fn still_selected(plan: &Plan, kind: Component, name: &str) -> Option<String> {
    let by: &[SelectedBy] = match kind {
        Component::Library => &plan.library(name)?.selected_by,
        Component::Service => &plan.service(name)?.selected_by,
    };
    let why: Vec<String> = by
        .iter()
        .map(|b| {
            let at = match b.line() {
                Some(l) => format!("`{}:{l}`", b.file),
                None => format!("`{}`", b.file),
            };
            format!("{} ({at}, `{}`)", b.reason, b.key_path())
        })
        .collect();
    Some(why.join("; "))
}
