//! The shapes users write: the manifest (what is selected) and the registry
//! entries (what can be selected). Every table denies unknown keys, so a typo
//! is an error instead of silently dropped configuration.

use std::collections::BTreeMap;
use std::fmt;

use camino::Utf8PathBuf;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Which runtime materializes a managed service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeType {
    Docker,
    Podman,
    Uv,
    Pixi,
    Venv,
    Node,
}

impl RuntimeType {
    pub const ALL: [RuntimeType; 6] = [
        RuntimeType::Docker,
        RuntimeType::Podman,
        RuntimeType::Uv,
        RuntimeType::Pixi,
        RuntimeType::Venv,
        RuntimeType::Node,
    ];

    /// Container runtimes end up in the compose file; the others get an
    /// isolated environment of their own.
    pub fn is_container(self) -> bool {
        matches!(self, RuntimeType::Docker | RuntimeType::Podman)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeType::Docker => "docker",
            RuntimeType::Podman => "podman",
            RuntimeType::Uv => "uv",
            RuntimeType::Pixi => "pixi",
            RuntimeType::Venv => "venv",
            RuntimeType::Node => "node",
        }
    }
}

impl fmt::Display for RuntimeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuntimeType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RuntimeType::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = RuntimeType::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown runtime `{s}`; expected one of {}", all.join(", "))
            })
    }
}

/// `dev` or `prod`: which source a component uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dev,
    #[default]
    Prod,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dev => "dev",
            Mode::Prod => "prod",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Group strategies: exactly one option, or one or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Strategy {
    #[serde(rename = "1-of-N")]
    OneOfN,
    #[serde(rename = "M-of-N")]
    MOfN,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::OneOfN => "1-of-N",
            Strategy::MOfN => "M-of-N",
        })
    }
}

/// Container engine the project expects to read the compose file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContainerEngine {
    #[default]
    Docker,
    Podman,
}

/// Whether hsm materializes a service or only passes its connection values on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProfileMode {
    #[default]
    Managed,
    External,
}

// ---------------------------------------------------------------- manifest

/// Everything under `hsm.toml` (or `[workspace.metadata.hsm]`, `[package.metadata.hsm]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ManifestFile {
    #[serde(default)]
    pub project: ProjectSection,
    #[serde(default)]
    pub registry: RegistrySection,
    #[serde(default)]
    pub libraries: LibrariesSection,
    #[serde(default)]
    pub services: ServicesSection,
    #[serde(default)]
    pub modes: BTreeMap<String, Mode>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectSection {
    pub name: Option<String>,
    pub services_dir: Option<Utf8PathBuf>,
    pub compose_file: Option<Utf8PathBuf>,
    pub python_project: Option<Utf8PathBuf>,
    pub container_engine: Option<ContainerEngine>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    pub path: Option<Utf8PathBuf>,
    #[serde(default)]
    pub libraries: BTreeMap<String, LibraryEntry>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceEntry>,
    #[serde(default)]
    pub library_groups: BTreeMap<String, GroupEntry>,
    #[serde(default)]
    pub service_groups: BTreeMap<String, GroupEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LibrariesSection {
    pub package_manager: Option<String>,
    #[serde(default)]
    pub standalone: Vec<LibrarySelection>,
    #[serde(default)]
    pub groups: BTreeMap<String, LibraryGroupSelection>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServicesSection {
    #[serde(default)]
    pub standalone: Vec<ServiceSelection>,
    #[serde(default)]
    pub groups: BTreeMap<String, ServiceGroupSelection>,
}

/// `"name"` or `{ name = "…", mode = "dev" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibrarySelection {
    pub name: String,
    pub mode: Option<Mode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LibrarySelectionTable {
    name: String,
    mode: Option<Mode>,
}

/// `"name"` or `{ name = "…", mode = "dev", profile = "cloud" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSelection {
    pub name: String,
    pub mode: Option<Mode>,
    pub profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceSelectionTable {
    name: String,
    mode: Option<Mode>,
    profile: Option<String>,
}

macro_rules! string_or_table {
    ($ty:ident, $table:ident, |$n:ident| $from_name:expr, |$t:ident| $from_table:expr, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, $n: &str) -> Result<$ty, E> {
                        let $n = $n.to_string();
                        Ok($from_name)
                    }
                    fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<$ty, M::Error> {
                        let $t = $table::deserialize(de::value::MapAccessDeserializer::new(m))?;
                        Ok($from_table)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

string_or_table!(
    LibrarySelection,
    LibrarySelectionTable,
    |n| LibrarySelection {
        name: n,
        mode: None
    },
    |t| LibrarySelection {
        name: t.name,
        mode: t.mode
    },
    "a library name or a table `{ name = \"…\", mode = \"dev\" }`"
);

string_or_table!(
    ServiceSelection,
    ServiceSelectionTable,
    |n| ServiceSelection {
        name: n,
        mode: None,
        profile: None
    },
    |t| ServiceSelection {
        name: t.name,
        mode: t.mode,
        profile: t.profile
    },
    "a service name or a table `{ name = \"…\", mode = \"dev\", profile = \"…\" }`"
);

/// One name or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Names(pub Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an option name or a list of option names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Names, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    v.push(s);
                }
                Ok(Names(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryGroupSelection {
    pub strategy: Option<Strategy>,
    pub selection: Names,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceGroupSelection {
    pub strategy: Option<Strategy>,
    pub selection: Names,
    pub profile: Option<String>,
}

// ---------------------------------------------------------------- registry

/// Where a component's code or image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Source {
    Git {
        url: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subdirectory: Option<Utf8PathBuf>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, EnvValue>,
    },
    Local {
        path: Utf8PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        editable: Option<bool>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, EnvValue>,
    },
    Pypi {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        package: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, EnvValue>,
    },
    DockerImage {
        image: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, EnvValue>,
    },
    Build {
        path: Utf8PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dockerfile: Option<Utf8PathBuf>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, EnvValue>,
    },
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Git { .. } => "git",
            Source::Local { .. } => "local",
            Source::Pypi { .. } => "pypi",
            Source::DockerImage { .. } => "docker-image",
            Source::Build { .. } => "build",
        }
    }
    pub fn env(&self) -> &BTreeMap<String, EnvValue> {
        match self {
            Source::Git { env, .. }
            | Source::Local { env, .. }
            | Source::Pypi { env, .. }
            | Source::DockerImage { env, .. }
            | Source::Build { env, .. } => env,
        }
    }
    /// A one-line description for humans.
    pub fn describe(&self) -> String {
        match self {
            Source::Git {
                url,
                reference,
                subdirectory,
                ..
            } => {
                let mut s = format!("git {url}");
                if let Some(r) = reference {
                    s.push_str(&format!(" @ {r}"));
                }
                if let Some(d) = subdirectory {
                    s.push_str(&format!(" ({d})"));
                }
                s
            }
            Source::Local { path, .. } => format!("local {path}"),
            Source::Pypi {
                package, version, ..
            } => match package {
                Some(p) => format!("pypi {}", pypi_requirement(p, version.as_deref())),
                None => match version.as_deref().map(str::trim) {
                    None | Some("") => "pypi".to_string(),
                    Some(v) => format!("pypi {}", pypi_requirement("", Some(v))),
                },
            },
            Source::DockerImage { image, .. } => format!("image {image}"),
            Source::Build {
                path, dockerfile, ..
            } => match dockerfile {
                Some(d) => format!("build {path} ({d})"),
                None => format!("build {path}"),
            },
        }
    }
}

/// The requirement string of a pypi source: `package`, then its `version`
/// specifier, a bare version meaning `==` (`23.2.0` → `black==23.2.0`).
pub fn pypi_requirement(package: &str, version: Option<&str>) -> String {
    match version.map(str::trim) {
        None | Some("") => package.to_string(),
        Some(v) if v.starts_with(|c: char| c.is_ascii_digit()) => format!("{package}=={v}"),
        Some(v) => format!("{package}{v}"),
    }
}

/// An environment value: strings, and numbers or booleans written bare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    pub prod: Option<Source>,
    pub dev: Option<Source>,
}

/// `[registry.libraries.<name>]` or `libraries/<name>.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LibraryEntry {
    pub description: Option<String>,
    #[serde(default)]
    pub sources: Sources,
    #[serde(default)]
    pub implies: BTreeMap<String, ImplyValue>,
}

/// `[registry.services.<name>]` or `services/<name>.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServiceEntry {
    pub description: Option<String>,
    /// Registry library names or PEP 508 requirement strings.
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Kubernetes export: the size of the PersistentVolumeClaim of each
    /// named volume (`{ pgdata = "10Gi" }`; default `1Gi`).
    #[serde(default)]
    pub volume_sizes: BTreeMap<String, String>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    #[serde(default)]
    pub env_file: Vec<Utf8PathBuf>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    pub healthcheck: Option<toml::Table>,
    pub container_name: Option<String>,
    pub restart: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The scheme of `<NAME>_URL` for the services that use this one (`http`).
    pub url_scheme: Option<String>,
    /// How long `up` waits after SIGTERM before SIGKILL (`10s`, compose's `stop_grace_period`).
    pub stop_timeout: Option<String>,
    #[serde(default)]
    pub sources: Sources,
    #[serde(default)]
    pub deployment_profiles: BTreeMap<String, DeploymentProfile>,
    #[serde(default)]
    pub implies: BTreeMap<String, ImplyValue>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeploymentProfile {
    pub mode: Option<ProfileMode>,
    pub runtime: Option<RuntimeType>,
    pub command: Option<Vec<String>>,
    pub working_dir: Option<Utf8PathBuf>,
    /// For container runtimes with a `git` or `local` source: the Dockerfile,
    /// relative to the checkout (compose's `build.dockerfile`).
    pub dockerfile: Option<Utf8PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    #[serde(default)]
    pub external: BTreeMap<String, EnvValue>,
    /// Where `cargo hsm image build --push` pushes the service's image
    /// (`registry.example.org/team`); also the repository the Kubernetes
    /// export names it by.
    pub image_repository: Option<String>,
    /// The `FROM` of an environment service's generated Dockerfile
    /// (default `python:<version>-slim`, the version from the service's
    /// `.python-version` or `requires-python`).
    pub base_image: Option<String>,
    /// Kubernetes export: an init container that waits until each
    /// dependency answers on its port (default `true`).
    pub wait_for_dependencies: Option<bool>,
    /// Kubernetes export: the image of that init container (default
    /// `busybox:1.36`; it runs `nc`).
    pub wait_image: Option<String>,
}

/// `[registry.library_groups.<name>]` / `service_groups`, or a file per group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub strategy: Strategy,
    pub comment: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub options: Vec<GroupOption>,
}

/// `"name"` or `{ name = "…", implies = { … } }`.
#[derive(Debug, Clone)]
pub struct GroupOption {
    pub name: String,
    pub implies: BTreeMap<String, ImplyValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupOptionTable {
    name: String,
    #[serde(default)]
    implies: BTreeMap<String, ImplyValue>,
    #[allow(dead_code)]
    description: Option<String>,
}

string_or_table!(
    GroupOption,
    GroupOptionTable,
    |n| GroupOption {
        name: n,
        implies: BTreeMap::new()
    },
    |t| GroupOption {
        name: t.name,
        implies: t.implies
    },
    "an option name or a table `{ name = \"…\", implies = { … } }`"
);

/// The value of one implication: `true`, an option or options for a group,
/// or `{ params = { … } }` for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImplyValue {
    Flag(bool),
    Options(Vec<String>),
    Params(BTreeMap<String, EnvValue>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImplyTable {
    #[serde(default)]
    params: BTreeMap<String, EnvValue>,
}

impl<'de> Deserialize<'de> for ImplyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ImplyValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "`true`, an option name, a list of option names, or `{ params = { … } }`",
                )
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ImplyValue, E> {
                Ok(ImplyValue::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ImplyValue, E> {
                Ok(ImplyValue::Options(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<ImplyValue, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    v.push(s);
                }
                Ok(ImplyValue::Options(v))
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<ImplyValue, M::Error> {
                let t = ImplyTable::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(ImplyValue::Params(t.params))
            }
        }
        d.deserialize_any(V)
    }
}
