use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::model::{GroupEntry, LibraryEntry, ManifestFile, ServiceEntry};
use crate::error::{key_path_at, ConfigDiagnostic, Error, KeyPath, Location, Result, SourceCache};
use crate::names;

/// The default manifest file name, beside the workspace's root `Cargo.toml`.
pub const MANIFEST_FILE: &str = "hsm.toml";

/// Which of the three places holds the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestLocation {
    HsmToml,
    WorkspaceMetadata,
    PackageMetadata,
}

impl ManifestLocation {
    pub fn key_prefix(self) -> KeyPath {
        match self {
            ManifestLocation::HsmToml => KeyPath::root(),
            ManifestLocation::WorkspaceMetadata => KeyPath::parse_dotted("workspace.metadata.hsm"),
            ManifestLocation::PackageMetadata => KeyPath::parse_dotted("package.metadata.hsm"),
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            ManifestLocation::HsmToml => "`hsm.toml`",
            ManifestLocation::WorkspaceMetadata => "`[workspace.metadata.hsm]` in `Cargo.toml`",
            ManifestLocation::PackageMetadata => "`[package.metadata.hsm]` in `Cargo.toml`",
        }
    }
}

/// A registry entry with the place it was defined.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub value: T,
    pub origin: Location,
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub libraries: BTreeMap<String, Entry<LibraryEntry>>,
    pub services: BTreeMap<String, Entry<ServiceEntry>>,
    pub library_groups: BTreeMap<String, Entry<GroupEntry>>,
    pub service_groups: BTreeMap<String, Entry<GroupEntry>>,
}

/// The manifest and registry as read from disk, with their source texts.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub workspace_root: Utf8PathBuf,
    pub manifest_path: Utf8PathBuf,
    pub location: ManifestLocation,
    pub manifest: ManifestFile,
    pub registry: Registry,
    /// Registry directory, if `registry.path` is set (absolute).
    pub registry_dir: Option<Utf8PathBuf>,
    pub sources: SourceCache,
    /// The manifest's root: its file (shared by every location in it) and
    /// its key prefix.
    manifest_root: Location,
}

impl Loaded {
    /// A location inside the manifest, under its key prefix.
    pub fn at(&self, key_path: KeyPath) -> Location {
        Location {
            file: self.manifest_root.file.clone(),
            key_path: self.manifest_root.key_path.join(&key_path),
            line: None,
        }
    }

    /// Every file that was read to build this manifest and registry.
    pub fn input_files(&self) -> Vec<Utf8PathBuf> {
        self.sources.files().map(Utf8Path::to_owned).collect()
    }
}

#[derive(Deserialize)]
struct CargoToml {
    workspace: Option<CargoSection>,
    package: Option<CargoSection>,
}

#[derive(Deserialize)]
struct CargoSection {
    metadata: Option<CargoMetadata>,
}

#[derive(Deserialize)]
struct CargoMetadata {
    hsm: Option<ManifestFile>,
}

/// Reads the manifest and registry of the workspace rooted at `workspace_root`.
pub fn load(workspace_root: &Utf8Path) -> Result<Loaded> {
    load_with(workspace_root, &Overlay::default())
}

/// In-memory replacements of files, so an edit can be loaded and resolved
/// (validated) before anything is written. `None` marks a removed file.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub files: BTreeMap<Utf8PathBuf, Option<String>>,
}

impl Overlay {
    fn is_file(&self, path: &Utf8Path) -> bool {
        match self.files.get(path) {
            Some(f) => f.is_some(),
            None => path.is_file(),
        }
    }
    /// A directory exists on disk or will hold a file of the overlay.
    fn is_dir(&self, dir: &Utf8Path) -> bool {
        dir.is_dir()
            || self
                .files
                .iter()
                .any(|(p, f)| f.is_some() && p.starts_with(dir) && p != dir)
    }
    fn read(&self, path: &Utf8Path, what: &str) -> Result<String> {
        match self.files.get(path) {
            Some(Some(text)) => Ok(text.clone()),
            Some(None) => Err(Error::config(format!(
                "cannot read {what} `{path}`: removed"
            ))),
            None => crate::error::read_to_string(path, what),
        }
    }
}

/// [`load`], seeing the files of `overlay` instead of those on disk.
pub fn load_with(workspace_root: &Utf8Path, overlay: &Overlay) -> Result<Loaded> {
    let ov = overlay;
    let mut sources = SourceCache::default();
    sources.display_base = Some(workspace_root.to_owned());
    let cargo_path = workspace_root.join("Cargo.toml");
    let hsm_path = workspace_root.join(MANIFEST_FILE);

    let mut found: Vec<(ManifestLocation, Location)> = Vec::new();
    if ov.is_file(&hsm_path) {
        let text = ov.read(&hsm_path, "the manifest")?;
        sources.insert(&hsm_path, text);
        found.push((
            ManifestLocation::HsmToml,
            Location::new(hsm_path.clone(), KeyPath::root()),
        ));
    }
    if ov.is_file(&cargo_path) {
        let text = ov.read(&cargo_path, "the workspace manifest")?;
        let text = sources.insert(&cargo_path, text);
        match toml_edit::Document::parse(text.as_str()) {
            Ok(doc) => {
                for loc in [
                    ManifestLocation::WorkspaceMetadata,
                    ManifestLocation::PackageMetadata,
                ] {
                    let mut item = Some(doc.as_item());
                    let prefix = loc.key_prefix();
                    for seg in prefix.segs() {
                        if let crate::error::Seg::Key(k) = seg {
                            item = item.and_then(|i| i.get(&**k));
                        }
                    }
                    if item.is_some() {
                        found.push((loc, Location::new(cargo_path.clone(), loc.key_prefix())));
                    }
                }
            }
            Err(e) => {
                // Only a problem if the manifest might be there; report it as cargo would.
                let span = e.span().unwrap_or(0..0);
                return Err(ConfigDiagnostic::new(format!(
                    "`Cargo.toml` is not valid TOML: {}",
                    e.message()
                ))
                .at_span(&sources, &cargo_path, span, KeyPath::root())
                .into());
            }
        }
    }

    let (location, _) = match found.as_slice() {
        [] => {
            return Err(Error::config(format!(
                "no hsm manifest found in `{workspace_root}`: looked for `{MANIFEST_FILE}`, `[workspace.metadata.hsm]` and `[package.metadata.hsm]` in `Cargo.toml`"
            ))
            .with_help("run `cargo hsm init` to create one"));
        }
        [one] => one.clone(),
        [a, b, ..] => {
            return Err(sources
                .diag(
                    &a.1,
                    format!(
                        "the hsm manifest is defined in two places: {} and {}",
                        a.0.describe(),
                        b.0.describe()
                    ),
                )
                .label("first definition")
                .also(&sources, &b.1, "second definition")
                .help("keep one of them and delete the other")
                .into());
        }
    };

    let manifest_path = match location {
        ManifestLocation::HsmToml => hsm_path,
        _ => cargo_path,
    };
    let manifest: ManifestFile = match location {
        ManifestLocation::HsmToml => parse_toml(&sources, &manifest_path)?,
        _ => {
            let cargo: CargoToml = parse_toml(&sources, &manifest_path)?;
            let section = if location == ManifestLocation::WorkspaceMetadata {
                cargo.workspace
            } else {
                cargo.package
            };
            section
                .and_then(|s| s.metadata)
                .and_then(|m| m.hsm)
                .unwrap_or_default()
        }
    };

    let mut loaded = Loaded {
        workspace_root: workspace_root.to_owned(),
        manifest_root: Location::new(manifest_path.as_path(), location.key_prefix()),
        manifest_path,
        location,
        manifest,
        registry: Registry::default(),
        registry_dir: None,
        sources,
    };
    load_registry(&mut loaded, ov)?;
    Ok(loaded)
}

/// Deserializes a TOML file already in the cache, turning serde and syntax
/// errors into located diagnostics with a "did you mean" where one fits.
fn parse_toml<T: DeserializeOwned>(sources: &SourceCache, path: &Utf8Path) -> Result<T> {
    let text = sources.get(path).expect("file was cached before parsing");
    toml::from_str::<T>(text).map_err(|e| toml_error(sources, path, &e))
}

/// `e`, an error parsing `path` (in the cache), as a located diagnostic.
fn toml_error(sources: &SourceCache, path: &Utf8Path, e: &toml::de::Error) -> Error {
    let text = sources.get(path).expect("file was cached before parsing");
    let span = e.span().unwrap_or(0..0);
    let message = e.message().trim().to_string();
    let key_path = if toml_edit::Document::parse(text.as_str()).is_ok() {
        key_path_at(text, span.start)
    } else {
        KeyPath::root()
    };
    let mut d = ConfigDiagnostic::new(describe_serde_message(&message, &key_path))
        .at_span(sources, path, span, key_path);
    if let Some(help) = suggestion(&message) {
        d = d.help(help);
    }
    Error::from(d)
}

fn describe_serde_message(message: &str, key_path: &KeyPath) -> String {
    let head = if message.starts_with("unknown field") {
        "unknown key"
    } else if message.starts_with("unknown variant") {
        "unknown value"
    } else if message.starts_with("invalid type") {
        "wrong type"
    } else if message.starts_with("missing field") {
        "missing key"
    } else if message.starts_with("duplicate") {
        "duplicate key"
    } else {
        "invalid TOML"
    };
    if key_path.is_empty() {
        format!("{head}: {message}")
    } else {
        format!("{head} at `{key_path}`: {message}")
    }
}

/// From "unknown field `servces`, expected one of `project`, `services`"
/// builds "did you mean `services`?".
fn suggestion(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (word, tail) = rest.split_once('`')?;
    let known: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    names::did_you_mean(word, known.iter().copied()).map(|k| format!("did you mean `{k}`?"))
}

fn load_registry(loaded: &mut Loaded, ov: &Overlay) -> Result<()> {
    let inline = std::mem::take(&mut loaded.manifest.registry);
    let registry = loaded.manifest_root.key("registry");
    let inline_origin = |kind: &str, name: &str| registry.key(kind).key(name);

    let mut reg = Registry::default();
    for (name, value) in inline.libraries {
        let origin = inline_origin("libraries", &name);
        check_entry_name(&loaded.sources, &name, &origin)?;
        reg.libraries.insert(name, Entry { value, origin });
    }
    for (name, value) in inline.services {
        let origin = inline_origin("services", &name);
        check_entry_name(&loaded.sources, &name, &origin)?;
        reg.services.insert(name, Entry { value, origin });
    }
    for (name, value) in inline.library_groups {
        let origin = inline_origin("library_groups", &name);
        check_entry_name(&loaded.sources, &name, &origin)?;
        reg.library_groups.insert(name, Entry { value, origin });
    }
    for (name, value) in inline.service_groups {
        let origin = inline_origin("service_groups", &name);
        check_entry_name(&loaded.sources, &name, &origin)?;
        reg.service_groups.insert(name, Entry { value, origin });
    }

    if let Some(rel) = inline.path.clone() {
        let dir = loaded.workspace_root.join(&rel);
        let at = registry.key("path");
        if !ov.is_dir(&dir) {
            let what = crate::paths::why_not(&dir, "directory");
            return Err(loaded
                .sources
                .diag(&at, format!("the registry directory `{rel}` {what}"))
                .help("create it with `cargo hsm init`, or fix `registry.path` (it is relative to the workspace root)")
                .into());
        }
        for (old, new) in [
            ("packages", "libraries"),
            ("containers", "services"),
            ("package_groups", "library_groups"),
            ("container_groups", "service_groups"),
        ] {
            if dir.join(old).is_dir() {
                return Err(loaded
                    .sources
                    .diag(&at, format!("the registry directory `{rel}` has a `{old}/` folder, which is HSM's old name"))
                    .help(format!("rename `{rel}/{old}` to `{rel}/{new}`"))
                    .into());
            }
        }
        read_dir_entries(
            &mut loaded.sources,
            ov,
            &dir,
            "libraries",
            &mut reg.libraries,
        )?;
        read_dir_entries(&mut loaded.sources, ov, &dir, "services", &mut reg.services)?;
        read_dir_entries(
            &mut loaded.sources,
            ov,
            &dir,
            "library_groups",
            &mut reg.library_groups,
        )?;
        read_dir_entries(
            &mut loaded.sources,
            ov,
            &dir,
            "service_groups",
            &mut reg.service_groups,
        )?;
        loaded.registry_dir = Some(dir);
    }
    loaded.manifest.registry.path = inline.path;
    loaded.registry = reg;
    Ok(())
}

fn check_entry_name(sources: &SourceCache, name: &str, origin: &Location) -> Result<()> {
    names::validate(name)
        .map_err(|why| Error::from(sources.diag(origin, format!("invalid component name: {why}"))))
}

fn read_dir_entries<T: DeserializeOwned + Send>(
    sources: &mut SourceCache,
    ov: &Overlay,
    dir: &Utf8Path,
    kind: &str,
    into: &mut BTreeMap<String, Entry<T>>,
) -> Result<()> {
    let sub = dir.join(kind);
    if !ov.is_dir(&sub) {
        if sub.symlink_metadata().is_ok() {
            return Err(Error::config(format!(
                "the registry folder `{sub}` {}",
                crate::paths::why_not(&sub, "directory")
            ))
            .with_help(format!("make `{kind}/` a directory of `<name>.toml` files")));
        }
        return Ok(());
    }
    let mut files: Vec<Utf8PathBuf> = ov
        .files
        .iter()
        .filter(|(p, f)| {
            f.is_some() && p.parent() == Some(sub.as_path()) && p.extension() == Some("toml")
        })
        .map(|(p, _)| p.clone())
        .collect();
    if sub.is_dir() {
        let rd = sub.read_dir_utf8().map_err(|e| {
            Error::config(format!("cannot read the registry directory `{sub}`: {e}"))
        })?;
        for entry in rd {
            let entry = entry.map_err(|e| {
                Error::config(format!("cannot read the registry directory `{sub}`: {e}"))
            })?;
            let path = entry.path().to_owned();
            let name = entry.file_name();
            let is_toml = name.ends_with(".toml");
            let removed = matches!(ov.files.get(&path), Some(None));
            // A regular file is one by its directory entry, with no `stat`;
            // a symlink is followed.
            let is_file = || {
                if ov.files.contains_key(&path) {
                    ov.is_file(&path)
                } else {
                    entry.file_type().is_ok_and(|t| t.is_file()) || path.is_file()
                }
            };
            let is_file = is_toml && is_file();
            if is_toml && !removed && (name == ".toml" || !is_file) {
                let why = if name == ".toml" {
                    "its name has no component name before `.toml`".to_string()
                } else {
                    format!("it {}", crate::paths::why_not(&path, "file"))
                };
                return Err(Error::config(format!(
                    "the registry entry `{path}` cannot be read: {why}"
                ))
                .with_help("every `<name>.toml` in a registry folder must be a regular file (or a symlink to one)"));
            }
            if is_file && path.extension() == Some("toml") {
                files.push(path);
            }
        }
    }
    // Every path here is `sub/<name>.toml`: ordering by the string is the
    // same as by components, and much cheaper for a thousand files.
    files.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    files.dedup_by(|a, b| a.as_str() == b.as_str());
    // Reading and parsing a thousand small files is most of loading such a
    // registry: both split over the cores; what they found is then taken
    // in path order, so the first problem reported is the same either way.
    let parsed = crate::materialize::pool::map_split(
        &files,
        64,
        || (),
        |path| {
            ov.read(path, "the registry file").map(|text| {
                let value = toml::from_str::<T>(&text);
                (text, value)
            })
        },
    );
    for (path, read) in files.into_iter().zip(parsed) {
        let name = path.file_stem().unwrap_or_default().to_string();
        let (text, value) = read?;
        sources.insert(&path, text);
        let origin = Location::new(path.clone(), KeyPath::root());
        if let Err(why) = names::validate(&name) {
            return Err(Error::config(format!(
                "invalid component name in file name `{path}`: {why}"
            ))
            .with_help("rename the file to a valid component name"));
        }
        let value: T = value.map_err(|e| toml_error(sources, &path, &e))?;
        if let Some(prev) = into.get(&name) {
            return Err(sources
                .diag(
                    &origin,
                    format!(
                        "the {} `{name}` is defined twice in the registry",
                        singular(kind)
                    ),
                )
                .label("second definition")
                .also(sources, &prev.origin, "first definition")
                .help("keep one definition and remove the other")
                .into());
        }
        into.insert(name, Entry { value, origin });
    }
    Ok(())
}

fn singular(kind: &str) -> &'static str {
    match kind {
        "libraries" => "library",
        "services" => "service",
        "library_groups" => "library group",
        _ => "service group",
    }
}
