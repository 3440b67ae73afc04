//! Stage two: turn the manifest's selection and the registry into a [`Plan`].
//!
//! Pure apart from reading env files. The rules are those of
//! `hsm-concepts.md` §4: groups, modes, profiles, implications (transitive,
//! order-independent), parameter merging, env layering.

mod build;
pub mod env;
pub use validate::valid_env_name;
mod implications;
mod registry;
mod seed;
mod validate;

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{ConfigDiagnostic, Error, KeyPath, Location, Result, SourceCache};
use crate::manifest::model::{GroupEntry, ImplyValue, Mode, Source};
use crate::manifest::{Entry, Loaded};
use crate::names;
use crate::paths::normalize;
use crate::plan::{EnvLayer, GroupKind, ParamContribution, Plan};

/// Default directory for clones of git-sourced services.
pub const DEFAULT_SERVICES_DIR: &str = "services";
/// Default compose file name.
pub const DEFAULT_COMPOSE_FILE: &str = "docker-compose.hsm.yml";

/// Resolves the selection into a Plan.
pub fn resolve(loaded: &Loaded) -> Result<Plan> {
    let mut r = Resolver {
        l: loaded,
        cache: loaded.sources.clone(),
        libs: BTreeMap::new(),
        svcs: BTreeMap::new(),
        groups: BTreeMap::new(),
        params: BTreeMap::new(),
        implied_services: BTreeMap::new(),
        warnings: Vec::new(),
    };
    r.validate_registry()?;
    r.validate_values()?;
    r.seed()?;
    r.apply_implications()?;
    r.check_groups()?;
    r.build_plan()
}

/// Why a component or option is selected, and where that was said.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Why {
    text: String,
    loc: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Library,
    LibraryGroup,
    Service,
    ServiceGroup,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "library" => Kind::Library,
            "library_group" => Kind::LibraryGroup,
            "service" => Kind::Service,
            "service_group" => Kind::ServiceGroup,
            _ => return None,
        })
    }
    fn word(self) -> &'static str {
        match self {
            Kind::Library => "library",
            Kind::LibraryGroup => "library group",
            Kind::Service => "service",
            Kind::ServiceGroup => "service group",
        }
    }
}

#[derive(Debug, Default)]
struct SelectedLib {
    whys: BTreeSet<Why>,
    mode: Option<(Mode, Location)>,
}

#[derive(Debug, Default)]
struct SelectedSvc {
    whys: BTreeSet<Why>,
    mode: Option<(Mode, Location)>,
    /// Profile chosen by a standalone entry.
    profile: Option<(String, Location)>,
}

#[derive(Debug)]
struct GroupState {
    kind: GroupKind,
    options: BTreeMap<String, BTreeSet<Why>>,
    profile: Option<(String, Location)>,
}

struct ParamValue {
    value: String,
}

struct Resolver<'a> {
    l: &'a Loaded,
    cache: SourceCache,
    libs: BTreeMap<String, SelectedLib>,
    svcs: BTreeMap<String, SelectedSvc>,
    groups: BTreeMap<(GroupKind, String), GroupState>,
    /// target service → key → from → value
    params: BTreeMap<String, BTreeMap<String, BTreeMap<String, ParamValue>>>,
    /// implying service → implied services
    implied_services: BTreeMap<String, BTreeSet<String>>,
    warnings: Vec<String>,
}

/// Who implies (label), the implying service if any, what it implies, and
/// where its `implies` table is.
type Provider = (
    String,
    Option<String>,
    BTreeMap<String, ImplyValue>,
    Location,
);

/// One environment layer: which, where, described for errors, its variables.
type EnvLayerSpec = (EnvLayer, Location, String, Vec<(String, String)>);

fn err(d: ConfigDiagnostic) -> Error {
    Error::from(d)
}

impl<'a> Resolver<'a> {
    fn at(&self, kp: KeyPath) -> Location {
        self.l.at(kp)
    }

    fn unknown(&self, kind: Kind, name: &str, loc: &Location) -> Error {
        let known: Vec<&str> = match kind {
            Kind::Library => self
                .l
                .registry
                .libraries
                .keys()
                .map(String::as_str)
                .collect(),
            Kind::Service => self
                .l
                .registry
                .services
                .keys()
                .map(String::as_str)
                .collect(),
            Kind::LibraryGroup => self
                .l
                .registry
                .library_groups
                .keys()
                .map(String::as_str)
                .collect(),
            Kind::ServiceGroup => self
                .l
                .registry
                .service_groups
                .keys()
                .map(String::as_str)
                .collect(),
        };
        let mut d = self.cache.diag(
            loc,
            format!(
                "unknown {} `{name}`: it is not in the registry",
                kind.word()
            ),
        );
        d = match names::did_you_mean(name, known.iter().copied()) {
            Some(k) => d.help(format!("did you mean `{k}`?")),
            None => d.help(format!(
                "define it in the registry (`cargo hsm registry {} add {name}`)",
                match kind {
                    Kind::Library => "library",
                    Kind::Service => "service",
                    _ => "group",
                }
            )),
        };
        err(d)
    }

    fn exists(&self, kind: Kind, name: &str) -> bool {
        let reg = &self.l.registry;
        match kind {
            Kind::Library => reg.libraries.contains_key(name),
            Kind::Service => reg.services.contains_key(name),
            Kind::LibraryGroup => reg.library_groups.contains_key(name),
            Kind::ServiceGroup => reg.service_groups.contains_key(name),
        }
    }

    fn group_entry(&self, kind: GroupKind, name: &str) -> Option<&'a Entry<GroupEntry>> {
        match kind {
            GroupKind::Library => self.l.registry.library_groups.get(name),
            GroupKind::Service => self.l.registry.service_groups.get(name),
        }
    }
}

fn option_list(g: &GroupEntry) -> String {
    g.options
        .iter()
        .map(|o| format!("`{}`", o.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `my-svc` → `MY_SVC`: the prefix of an external service's variables.
pub fn env_prefix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Merges values in contribution order (contributions are sorted by who
/// passed them), dropping repeats: `auth_db,billing_db`.
pub fn merge_values(contributions: &[ParamContribution]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for c in contributions {
        for part in c.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !seen.contains(&part) {
                seen.push(part);
            }
        }
    }
    seen.join(",")
}

/// Where a service lives and where its clone goes, relative to the workspace root.
pub fn target_paths(
    name: &str,
    source: &Source,
    services_dir: &Utf8Path,
) -> (Option<Utf8PathBuf>, Option<Utf8PathBuf>) {
    match source {
        Source::Local { path, .. } => (Some(normalize(path)), None),
        Source::Build { path, .. } => (Some(normalize(path)), None),
        Source::Git { subdirectory, .. } => {
            let checkout = normalize(&services_dir.join(name));
            let target = match subdirectory {
                Some(sub) => normalize(&checkout.join(sub)),
                None => checkout.clone(),
            };
            (Some(target), Some(checkout))
        }
        Source::DockerImage { .. } | Source::Pypi { .. } => (None, None),
    }
}

/// The requirement string hsm writes for a library into a `pyproject.toml`.
pub fn library_requirement(name: &str, source: &Source) -> String {
    match source {
        Source::Pypi {
            package, version, ..
        } => crate::manifest::model::pypi_requirement(
            package.as_deref().unwrap_or(name),
            version.as_deref(),
        ),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests;
