//! The resolved selection: plain, serialisable data. Everything after
//! resolution (`list`, `sync --dry-run`, compose, the lock file) reads only
//! this.

use std::collections::BTreeMap;

use camino::Utf8PathBuf;
use serde::Serialize;

use crate::manifest::model::{ContainerEngine, Mode, RuntimeType, Source, Strategy};
use crate::manifest::ManifestLocation;

/// Version of the JSON shape of the Plan printed by `list --message-format json`.
pub const PLAN_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    pub project: ProjectSettings,
    /// Sorted by name.
    pub libraries: Vec<PlannedLibrary>,
    /// Sorted by name.
    pub services: Vec<PlannedService>,
    /// Sorted by kind, then name.
    pub groups: Vec<PlannedGroup>,
    /// Things worth telling the user that are not errors.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProjectSettings {
    pub name: String,
    /// Absolute.
    pub workspace_root: Utf8PathBuf,
    /// Absolute path of the file holding the manifest.
    pub manifest_path: Utf8PathBuf,
    pub manifest_location: ManifestLocation,
    /// Relative to the workspace root.
    pub services_dir: Utf8PathBuf,
    /// Relative to the workspace root.
    pub compose_file: Utf8PathBuf,
    /// Relative to the workspace root.
    pub python_project: Utf8PathBuf,
    pub container_engine: ContainerEngine,
    pub package_manager: String,
    /// Absolute path of the registry directory, when one is used.
    pub registry_dir: Option<Utf8PathBuf>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedLibrary {
    pub name: String,
    pub mode: Mode,
    pub source: Source,
    /// The requirement hsm writes into the shared `pyproject.toml`.
    pub requirement: String,
    /// For local sources: the path, relative to the workspace root.
    pub target_path: Option<Utf8PathBuf>,
    pub group: Option<String>,
    pub selected_by: Vec<SelectedBy>,
}

/// Why a component is in the Plan, and where that was said. Serialises with
/// the `line` and `column` of that place, found only then.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SelectedBy {
    /// `standalone`, `option of service group `infra``, `implied by service:embedder`, …
    pub reason: String,
    /// Relative to the workspace root when inside it.
    pub file: Utf8PathBuf,
    /// The place; its key path is written out, and its line found, only
    /// when shown.
    pub at: crate::error::Pinpoint,
}

impl SelectedBy {
    pub fn key_path(&self) -> String {
        self.at.location().key_path.to_string()
    }
    pub fn line(&self) -> Option<usize> {
        self.at.line_col().map(|(l, _)| l)
    }
    pub fn column(&self) -> Option<usize> {
        self.at.line_col().map(|(_, c)| c)
    }
}

impl Serialize for SelectedBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SelectedBy", 5)?;
        st.serialize_field("reason", &self.reason)?;
        st.serialize_field("file", &self.file)?;
        st.serialize_field("key_path", &self.key_path())?;
        st.serialize_field("line", &self.line())?;
        st.serialize_field("column", &self.column())?;
        st.end()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Deployment {
    Managed { runtime: RuntimeType },
    External { values: BTreeMap<String, String> },
}

impl Deployment {
    pub fn runtime(&self) -> Option<RuntimeType> {
        match self {
            Deployment::Managed { runtime } => Some(*runtime),
            Deployment::External { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedService {
    pub name: String,
    pub mode: Mode,
    pub profile: String,
    pub deployment: Deployment,
    /// `None` only for external services without a source.
    pub source: Option<Source>,
    /// Where the service lives, relative to the workspace root: the local
    /// path, `<services-dir>/<name>[/<subdirectory>]` for git, the build
    /// context for `build`; `None` for images and external services.
    pub target_path: Option<Utf8PathBuf>,
    /// For git sources: the clone's directory, relative to the workspace root.
    pub checkout_path: Option<Utf8PathBuf>,
    /// Container services built from a `build`, `git` or `local` source: the
    /// Dockerfile relative to the build context (`None`: compose's default).
    pub dockerfile: Option<Utf8PathBuf>,
    pub command: Option<Vec<String>>,
    pub working_dir: Option<Utf8PathBuf>,
    /// The service's environment without env-file values, sorted by key.
    pub env: BTreeMap<String, EnvVar>,
    /// Env files in declared order, relative to the workspace root.
    pub env_files: Vec<EnvFile>,
    /// Parameters passed by implications, merged.
    pub params: BTreeMap<String, MergedParam>,
    pub dependencies: Vec<Dependency>,
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    /// `volume-sizes`: the PersistentVolumeClaim size of named volumes
    /// (Kubernetes quantities, checked), by volume.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_sizes: BTreeMap<String, String>,
    /// Declared `depends-on`, then services this one implies, without duplicates.
    pub depends_on: Vec<String>,
    pub healthcheck: Option<serde_json::Value>,
    pub container_name: Option<String>,
    pub restart: Option<String>,
    pub aliases: Vec<String>,
    /// The scheme of the `<NAME>_URL` discovery value (`http`), if declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_scheme: Option<String>,
    /// Grace between SIGTERM and SIGKILL when `up` stops it, as written (`10s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<String>,
    /// The profile's `image-repository` (`image build --push`, export).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// The profile's `base-image` for an environment service's image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    /// The profile's `wait-for-dependencies` (Kubernetes init container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_for_dependencies: Option<bool>,
    /// The profile's `wait-image` (that init container's image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_image: Option<String>,
    pub group: Option<String>,
    pub selected_by: Vec<SelectedBy>,
}

impl PlannedService {
    pub fn runtime(&self) -> Option<RuntimeType> {
        self.deployment.runtime()
    }
    /// Managed with docker or podman: belongs in the compose file.
    pub fn is_container(&self) -> bool {
        self.runtime().is_some_and(|r| r.is_container())
    }
    /// Managed with uv, pixi or venv: gets its own environment.
    pub fn is_environment(&self) -> bool {
        self.runtime().is_some_and(|r| !r.is_container())
    }
}

/// Where a variable of a service's environment was set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum EnvLayer {
    Service,
    Profile,
    Source,
    /// Connection values of an external service this one implies.
    External,
    /// Parameters passed by implications.
    Params,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnvVar {
    pub value: String,
    pub layer: EnvLayer,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnvFile {
    pub path: Utf8PathBuf,
    /// The keys it sets (values are not copied into the Plan).
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MergedParam {
    /// Values de-duplicated and joined with commas.
    pub value: String,
    /// Who passed what, in merge order.
    pub contributions: Vec<ParamContribution>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParamContribution {
    /// `service:embedder`, `library:x`, `service_group:vector-db/qdrant`, ...
    pub from: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Dependency {
    /// A registry library, with the source its mode picks.
    Library {
        name: String,
        mode: Mode,
        source: Source,
        requirement: String,
    },
    /// A PEP 508 requirement string, as written.
    Requirement { requirement: String },
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum GroupKind {
    Library,
    Service,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedGroup {
    pub kind: GroupKind,
    pub name: String,
    pub strategy: Strategy,
    /// Selected options, sorted.
    pub selection: Vec<String>,
    pub profile: Option<String>,
    pub comment: Option<String>,
}

impl Plan {
    pub fn service(&self, name: &str) -> Option<&PlannedService> {
        self.services.iter().find(|s| s.name == name)
    }
    pub fn library(&self, name: &str) -> Option<&PlannedLibrary> {
        self.libraries.iter().find(|l| l.name == name)
    }
    /// The services that end up in the compose file.
    pub fn container_services(&self) -> impl Iterator<Item = &PlannedService> {
        self.services.iter().filter(|s| s.is_container())
    }
    /// The services that get an isolated environment.
    pub fn environment_services(&self) -> impl Iterator<Item = &PlannedService> {
        self.services.iter().filter(|s| s.is_environment())
    }
}

/// The Plan as printed by `list --message-format json`.
#[derive(Serialize)]
pub struct PlanDocument<'a> {
    pub schema: u32,
    pub plan: &'a Plan,
}
