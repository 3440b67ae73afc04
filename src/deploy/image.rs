//! `cargo hsm image build`: an OCI image for every managed service that has
//! none of its own, so that the Plan can leave this machine.
//!
//! - An **environment service** (uv, venv, node; pixi is refused; node in
//!   [`super::node_image`]) gets a generated Dockerfile under
//!   `.hsm/images/<service>/`, beside a copy of its source (the build
//!   context, without `.venv`, `.git` and caches). It installs exactly what
//!   is locked (`uv sync --frozen --no-dev`, or the pinned requirements for
//!   venv) into `/app/.venv` before the source is copied, so that a change
//!   of source alone reuses the dependency layer, and ends on a runtime
//!   stage that runs the profile's `command` in its `working-dir` as user
//!   10001.
//! - A **container service built from source** (`build`, `git`, `local`) is
//!   built from its own Dockerfile and context, as compose would.
//!
//! uv reaches the image from PyPI: the build stage installs `uv==<the
//! host's uv version>` into a venv of its own with the base image's pip.
//! Not the host's binary: a macOS or musl host's uv does not run in a Linux
//! glibc image, and the dependencies come from PyPI in that same stage
//! anyway.
//!
//! The tag is the first 16 hex digits of a SHA-256 over the Dockerfile, the
//! build arguments and every file of the context (path, executable bit,
//! content): the lock and the source, and for a git service exactly its
//! checkout at the locked commit. Same inputs, same tag; an unchanged
//! service rebuilds from the engine's cache and keeps its tag.
//!
//! The service's build env (its env files and env layers, as sync gets
//! them) reaches the build as `--build-arg`s of the build stage only, and
//! values with `${VAR}` as build secrets (`RUN --mount=type=secret`), read
//! from this shell's environment; neither is in a layer of the image.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::model::{RuntimeType, Source};
use crate::paths::normalize;
use crate::plan::{Plan, PlannedService};

/// Where the generated Dockerfiles and build contexts live, relative to
/// the workspace root.
pub const IMAGES_DIR: &str = ".hsm/images";
/// The build secret holding the host's CA bundle (`SSL_CERT_FILE`).
pub const CA_SECRET: &str = "hsm-ca-bundle";
/// The pins of a venv service (`hsm.locks/<service>/requirements.txt`,
/// its `name==version` lines) in the build context, for pip's `-c`.
pub const CONSTRAINTS_FILE: &str = ".hsm-constraints.txt";
/// The user the runtime stage of a generated image runs as.
pub const RUNTIME_USER: u32 = 10001;
/// Directories never copied into a build context.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".venv",
    "__pycache__",
    ".hsm",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
    "node_modules",
];

/// How a service's image comes about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A published image (`docker-image` source): nothing to build.
    Published(String),
    /// Built by `image build`.
    Built(Box<Recipe>),
}

impl Origin {
    /// The image reference a cluster pulls.
    pub fn reference(&self) -> &str {
        match self {
            Origin::Published(r) => r,
            Origin::Built(r) => &r.reference,
        }
    }
}

/// Everything a build needs, computed from the Plan and the files on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub service: String,
    /// The source directory the context is made from (absolute).
    pub source_dir: Utf8PathBuf,
    /// Files of the context, relative to `source_dir`, sorted.
    pub files: Vec<Utf8PathBuf>,
    /// Files cargo-hsm adds to the context (relative path, text): the
    /// pins of a venv service as [`CONSTRAINTS_FILE`].
    pub extra: Vec<(Utf8PathBuf, String)>,
    /// The generated Dockerfile, or `None` for a service's own.
    pub generated: Option<String>,
    /// The service's own Dockerfile, relative to the context.
    pub dockerfile: Utf8PathBuf,
    /// `--build-arg` values, sorted by key.
    pub build_args: Vec<(String, String)>,
    /// Build secrets: key and the value as written (with `${VAR}`).
    pub secrets: Vec<(String, String)>,
    pub tag: String,
    /// `<repository>/<service>:<tag>`.
    pub reference: String,
}

impl Recipe {
    /// `.hsm/images/<service>` (absolute).
    pub fn dir(&self, plan: &Plan) -> Utf8PathBuf {
        plan.project
            .workspace_root
            .join(IMAGES_DIR)
            .join(&self.service)
    }
}

/// The repository of a service's image: the profile's `image-repository`,
/// else `localhost/<project>`.
pub fn repository(plan: &Plan, s: &PlannedService) -> String {
    s.image_repository
        .clone()
        .unwrap_or_else(|| format!("localhost/{}", plan.project.name))
        .trim_end_matches('/')
        .to_string()
}

/// The image of managed service `s`: its published one, or the recipe
/// `image build` follows. Reads the service's files (for the tag). A
/// service that cannot have an image is an error naming it.
pub fn origin(plan: &Plan, s: &PlannedService) -> Result<Origin> {
    let Some(runtime) = s.runtime() else {
        return Err(Error::config(format!(
            "service `{}` is external: it has no image",
            s.name
        )));
    };
    if let Some(Source::DockerImage { image, .. }) = &s.source {
        return Ok(Origin::Published(image.clone()));
    }
    check_reference_part(plan, s)?;
    let Some(target) = &s.target_path else {
        return Err(Error::config(format!(
            "service `{}` has no source to build an image from",
            s.name
        ))
        .with_help("give it a `docker-image`, `build`, `git` or `local` source"));
    };
    let source_dir = normalize(&plan.project.workspace_root.join(target));
    if !source_dir.is_dir() {
        return Err(Error::failed(format!(
            "the source of service `{}` is not on disk: `{target}` does not exist",
            s.name
        ))
        .with_help("run `cargo hsm sync` first (it clones git sources)"));
    }
    let files = context_files(&source_dir)?;
    let mut extra = Vec::new();
    let (generated, dockerfile) = match runtime {
        RuntimeType::Docker | RuntimeType::Podman => (
            None,
            s.dockerfile
                .clone()
                .unwrap_or_else(|| Utf8PathBuf::from("Dockerfile")),
        ),
        RuntimeType::Uv => (
            Some(uv_dockerfile(plan, s, &source_dir, &files)?),
            Utf8PathBuf::from("Dockerfile"),
        ),
        RuntimeType::Venv => {
            let pins = venv_pins(plan, s)?;
            let text = venv_dockerfile(plan, s, &source_dir, &files, pins.as_ref())?;
            if let Some(p) = pins {
                extra.push((Utf8PathBuf::from(CONSTRAINTS_FILE), p.constraints));
            }
            (Some(text), Utf8PathBuf::from("Dockerfile"))
        }
        RuntimeType::Node => (
            Some(super::node_image::dockerfile(plan, s, &source_dir, &files)?),
            Utf8PathBuf::from("Dockerfile"),
        ),
        RuntimeType::Pixi => {
            return Err(Error::config(format!(
                "service `{}` runs with pixi, and cargo-hsm builds no pixi images yet",
                s.name
            ))
            .with_help(
                "select a uv or venv profile of it for the image, or give it a `build` source with a Dockerfile",
            ))
        }
    };
    let (build_args, secrets) = build_env(plan, s)?;
    let mut h = Sha256::new();
    h.update(b"cargo-hsm image 1\n");
    match &generated {
        Some(text) => h.update(text.as_bytes()),
        None => h.update(dockerfile.as_str().as_bytes()),
    }
    for (k, v) in &build_args {
        h.update(format!("\0arg {k}={v}").as_bytes());
    }
    for (k, _) in &secrets {
        h.update(format!("\0secret {k}").as_bytes());
    }
    for f in &files {
        hash_file(&mut h, &source_dir, f)?;
    }
    for (f, text) in &extra {
        h.update(format!("\0extra {f}\0{}\0", text.len()).as_bytes());
        h.update(text.as_bytes());
    }
    let digest = h.finalize();
    let tag: String = digest.iter().take(8).fold(String::new(), |mut t, b| {
        let _ = write!(t, "{b:02x}");
        t
    });
    let reference = format!("{}/{}:{tag}", repository(plan, s), s.name);
    Ok(Origin::Built(Box::new(Recipe {
        service: s.name.clone(),
        source_dir,
        files,
        extra,
        generated,
        dockerfile,
        build_args,
        secrets,
        tag,
        reference,
    })))
}

/// An image reference is lower case: the project's and service's names
/// must be too (service names always are).
fn check_reference_part(plan: &Plan, s: &PlannedService) -> Result<()> {
    let repo = repository(plan, s);
    let ok = repo
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
    if ok && !repo.is_empty() {
        return Ok(());
    }
    let (what, help) = match &s.image_repository {
        Some(_) => (
            format!("the `image-repository` of service `{}`", s.name),
            "write a registry path in lower case: `image-repository = \"registry.example.org/team\"`",
        ),
        None => (
            format!("the image repository `{repo}` (from the project's name)"),
            "set `image-repository = \"registry.example.org/team\"` in the service's profile, or a lower-case `project.name`",
        ),
    };
    Err(Error::config(format!("{what} is not a valid image repository")).with_help(help))
}

/// The files of a build context, sorted, without [`SKIPPED_DIRS`] and
/// compiled Python.
fn context_files(dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![Utf8PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let entries = std::fs::read_dir(&abs)
            .map_err(|e| Error::failed(format!("cannot read `{abs}`: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::failed(format!("cannot read `{abs}`: {e}")))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(Error::failed(format!(
                    "`{abs}` holds a file whose name is not UTF-8: {}",
                    name.to_string_lossy()
                )));
            };
            let ty = entry
                .file_type()
                .map_err(|e| Error::failed(format!("cannot read `{abs}/{name}`: {e}")))?;
            let child = rel.join(name);
            if ty.is_dir() {
                if !SKIPPED_DIRS.contains(&name) {
                    stack.push(child);
                }
            } else if !name.ends_with(".pyc") {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hash_file(h: &mut Sha256, dir: &Utf8Path, rel: &Utf8Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(rel);
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|e| Error::failed(format!("cannot read `{path}`: {e}")))?;
    h.update(format!("\0file {rel}\0").as_bytes());
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&path)
            .map_err(|e| Error::failed(format!("cannot read `{path}`: {e}")))?;
        h.update(format!("link {}", target.display()).as_bytes());
        return Ok(());
    }
    let exec = meta.permissions().mode() & 0o111 != 0;
    h.update(format!("{} {}\0", u8::from(exec), meta.len()).as_bytes());
    let mut f = std::fs::File::open(&path)
        .map_err(|e| Error::failed(format!("cannot read `{path}`: {e}")))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::failed(format!("cannot read `{path}`: {e}")))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(())
}

/// `KEY=VALUE` pairs, sorted by key.
type KeyValues = Vec<(String, String)>;

/// Does `value` hold a `${VAR}` or `$VAR` (`$$` is a literal `$`)?
pub fn has_variable(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            match b.get(i + 1) {
                Some(b'$') => i += 1,
                Some(c) if *c == b'{' || c.is_ascii_alphabetic() || *c == b'_' => return true,
                _ => {}
            }
        }
        i += 1;
    }
    false
}

/// The build env: plain values as build arguments, values with `${VAR}`
/// as secrets, each sorted by key; `${HSM_SERVICE.…}` as this host reaches
/// the services (the build runs here).
fn build_env(plan: &Plan, s: &PlannedService) -> Result<(KeyValues, KeyValues)> {
    let place = crate::discovery::Place::Host;
    let mut args = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for (k, v) in crate::envfile::layers(&plan.project.workspace_root, s)? {
        let v = crate::discovery::substitute(plan, s, place, &v).unwrap_or(v);
        if has_variable(&v) {
            secrets.insert(k, v);
        } else {
            args.insert(k, v);
        }
    }
    Ok((args.into_iter().collect(), secrets.into_iter().collect()))
}

/// `major.minor` of the service's Python: its `.python-version`, else the
/// lower bound of `requires-python`.
fn python_version(dir: &Utf8Path) -> Option<String> {
    let major_minor = |v: &str| -> Option<String> {
        let mut parts = v.trim().split('.');
        let (a, b) = (parts.next()?, parts.next()?);
        let b: String = b.chars().take_while(|c| c.is_ascii_digit()).collect();
        (a.chars().all(|c| c.is_ascii_digit()) && !a.is_empty() && !b.is_empty())
            .then(|| format!("{a}.{b}"))
    };
    if let Ok(text) = std::fs::read_to_string(dir.join(".python-version")) {
        if let Some(v) = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if let Some(v) = major_minor(v) {
                return Some(v);
            }
        }
    }
    let text = std::fs::read_to_string(dir.join("pyproject.toml")).ok()?;
    let doc: toml::Table = toml::from_str(&text).ok()?;
    let spec = doc.get("project")?.get("requires-python")?.as_str()?;
    spec.split(',')
        .map(str::trim)
        .find_map(|c| {
            c.strip_prefix(">=")
                .or_else(|| c.strip_prefix("~="))
                .or_else(|| c.strip_prefix("=="))
        })
        .and_then(major_minor)
}

/// The `FROM` of a generated Dockerfile.
fn base_image(s: &PlannedService, dir: &Utf8Path) -> String {
    s.base_image
        .clone()
        .unwrap_or_else(|| match python_version(dir) {
            Some(v) => format!("python:{v}-slim"),
            None => "python:3-slim".to_string(),
        })
}

/// The first lines of every generated Dockerfile.
pub(super) fn header(plan: &Plan, s: &PlannedService) -> String {
    format!(
        "{} from {} (service `{}`). Do not edit:\n# `cargo hsm image build` rewrites it from the manifest and the service's lock.\n",
        super::HEADER_MARK,
        plan.project.manifest_location.describe(),
        s.name
    )
}

/// The `RUN --mount` option and the exports that hand the host's CA
/// bundle (the secret [`CA_SECRET`], empty when there is none) to pip and uv.
pub(super) fn ca_bundle() -> (String, String) {
    (
        format!("--mount=type=secret,id={CA_SECRET} "),
        format!(
            "if [ -s /run/secrets/{CA_SECRET} ]; then export SSL_CERT_FILE=/run/secrets/{CA_SECRET} PIP_CERT=/run/secrets/{CA_SECRET}; fi; "
        ),
    )
}

/// `ARG` lines of the build stage, and the `RUN --mount` options and
/// exports of the secrets, for the step that installs dependencies.
pub(super) fn env_lines(plan: &Plan, s: &PlannedService) -> Result<(String, String, String)> {
    let (args, secrets) = build_env(plan, s)?;
    let mut arg_lines = String::new();
    for (k, _) in &args {
        let _ = writeln!(arg_lines, "ARG {k}");
    }
    // The host's CA bundle (`SSL_CERT_FILE`), for networks whose TLS is
    // intercepted; an empty file when there is none, so that the
    // Dockerfile does not depend on it.
    let (mut mounts, mut exports) = ca_bundle();
    let mut vars = String::new();
    for (k, _) in &secrets {
        let _ = write!(mounts, "--mount=type=secret,id={k} ");
        let _ = write!(vars, "{k}=\"$(cat /run/secrets/{k})\" ");
    }
    if !vars.is_empty() {
        let _ = write!(exports, "export {}; ", vars.trim_end());
    }
    Ok((arg_lines, mounts, exports))
}

/// The runtime stage: the built `/app` on a fresh base, run as a user.
fn runtime_stage(out: &mut String, base: &str, s: &PlannedService) {
    runtime_stage_with(
        out,
        base,
        s,
        "/app/.venv/bin",
        "VIRTUAL_ENV=/app/.venv PYTHONUNBUFFERED=1 HOME=/tmp",
    );
}

/// [`runtime_stage`] with `bin` first on `PATH` and `vars` set.
pub(super) fn runtime_stage_with(
    out: &mut String,
    base: &str,
    s: &PlannedService,
    bin: &str,
    vars: &str,
) {
    let _ = writeln!(out, "\nFROM {base}");
    let _ = writeln!(out, "COPY --from=build /app /app");
    let _ = writeln!(
        out,
        "ENV PATH={bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\\n    {vars}"
    );
    let _ = writeln!(out, "WORKDIR {}", app_dir(s));
    let mut ports: Vec<u16> = crate::discovery::listen_ports(s)
        .iter()
        .map(|p| p.target)
        .collect();
    ports.dedup();
    for p in ports {
        let _ = writeln!(out, "EXPOSE {p}");
    }
    let _ = writeln!(out, "USER {RUNTIME_USER}:{RUNTIME_USER}");
    if let Some(cmd) = &s.command {
        let _ = writeln!(
            out,
            "CMD {}",
            serde_json::to_string(cmd).expect("strings serialise")
        );
    }
}

/// The profile's `working-dir` inside the image.
pub fn app_dir(s: &PlannedService) -> String {
    let wd = s.working_dir.as_deref().unwrap_or(Utf8Path::new("."));
    normalize(&Utf8Path::new("/app").join(wd)).into_string()
}

fn uv_dockerfile(
    plan: &Plan,
    s: &PlannedService,
    dir: &Utf8Path,
    files: &[Utf8PathBuf],
) -> Result<String> {
    let has = |f: &str| files.iter().any(|p| p == f);
    if !has("uv.lock") {
        return Err(Error::failed(format!(
            "service `{}` has no `uv.lock` in `{}`, so there is nothing locked to install",
            s.name,
            crate::paths::relative_to(dir, &plan.project.workspace_root)
        ))
        .with_help("run `cargo hsm sync` first (it locks the service with `uv lock`)"));
    }
    let uv = crate::tool::find_uv(
        &plan.project.workspace_root,
        &s.name,
        "install uv (`pip install uv`): the image installs the same version",
    )?;
    let version = uv
        .version()
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.')
    {
        return Err(Error::failed(format!(
            "cannot tell the version of uv at `{}` (`uv --version` said `{}`)",
            uv.path,
            uv.version()
        )));
    }
    let base = base_image(s, dir);
    let (args, mounts, exports) = env_lines(plan, s)?;
    let (ca, ca_export) = ca_bundle();
    let mut metadata: Vec<&str> = ["pyproject.toml", "uv.lock", ".python-version"]
        .into_iter()
        .filter(|f| has(f))
        .collect();
    metadata.sort();
    let mut out = header(plan, s);
    let _ = writeln!(out, "FROM {base} AS build");
    let _ = writeln!(
        out,
        "# uv from PyPI, the version that locked the service, in a venv of its own."
    );
    let _ = writeln!(
        out,
        "RUN {ca}{ca_export}python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check \"uv=={version}\""
    );
    let _ = writeln!(
        out,
        "ENV UV_PROJECT_ENVIRONMENT=/app/.venv UV_PYTHON=python3 UV_PYTHON_DOWNLOADS=never \\\n    UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_NO_CACHE=1"
    );
    out.push_str(&args);
    let _ = writeln!(out, "WORKDIR /app");
    let _ = writeln!(out, "# The lock and the project metadata first: the dependency layer is cached until they change.");
    let _ = writeln!(out, "COPY {} ./", metadata.join(" "));
    let _ = writeln!(
        out,
        "RUN {mounts}{exports}/opt/uv/bin/uv sync --frozen --no-dev --no-install-project"
    );
    let _ = writeln!(out, "COPY . .");
    let _ = writeln!(
        out,
        "RUN {mounts}{exports}/opt/uv/bin/uv sync --frozen --no-dev --no-editable"
    );
    runtime_stage(&mut out, &base, s);
    Ok(out)
}

/// A package the lock takes from a path outside the service's directory
/// is not in the build context: refused, naming it.
fn outside_paths(s: &PlannedService, dir: &Utf8Path) -> Result<()> {
    let text = std::fs::read_to_string(dir.join("uv.lock")).map_err(|e| {
        Error::failed(format!(
            "cannot read the `uv.lock` of service `{}`: {e}",
            s.name
        ))
    })?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| {
        Error::failed(format!(
            "the `uv.lock` of service `{}` is not TOML: {e}",
            s.name
        ))
    })?;
    let packages = doc.get("package").and_then(|p| p.as_array());
    for p in packages.into_iter().flatten() {
        let Some(source) = p.get("source").and_then(|v| v.as_table()) else {
            continue;
        };
        for key in ["editable", "path", "directory", "virtual"] {
            let Some(path) = source.get(key).and_then(|v| v.as_str()) else {
                continue;
            };
            let p_norm = normalize(&dir.join(path));
            if !p_norm.starts_with(dir) {
                let name = p.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                return Err(Error::config(format!(
                    "service `{}` locks `{name}` from `{path}`, outside its own directory, which its image build cannot see",
                    s.name
                ))
                .with_help(format!(
                    "give `{name}` a `git` or `pypi` source for the image (its prod mode), or move it inside the service"
                )));
            }
        }
    }
    Ok(())
}

/// What sync pinned for a git-sourced venv service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VenvPins {
    /// The `name==version` lines (and comments) of the pins file.
    constraints: String,
    /// The git dependencies at their pinned commits
    /// (`name @ git+URL@<commit>`), which pip takes as requirements.
    git: Vec<String>,
}

/// The pins of `s` in `hsm.locks/<service>/requirements.txt`, which sync
/// writes for a git-sourced venv service; `None` for a service without
/// (its own requirements file is what it pins).
fn venv_pins(plan: &Plan, s: &PlannedService) -> Result<Option<VenvPins>> {
    if s.checkout_path.is_none() {
        return Ok(None);
    }
    let rel = crate::lock::committed_lock(&s.name, Utf8Path::new(crate::python::pins::FILE));
    let path = plan.project.workspace_root.join(&rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::failed(format!(
                "venv service `{}` has no pins in `{rel}`, so its image would not install what sync installed",
                s.name
            ))
            .with_help("run `cargo hsm sync` first (it writes the pins)"))
        }
        Err(e) => return Err(Error::failed(format!("cannot read `{rel}`: {e}"))),
    };
    Ok(Some(VenvPins {
        constraints: crate::python::pins::constraints(&text),
        git: crate::python::pins::read(&text)
            .iter()
            .map(|p| p.requirement())
            .collect(),
    }))
}

/// `'…'` for a shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn venv_dockerfile(
    plan: &Plan,
    s: &PlannedService,
    dir: &Utf8Path,
    files: &[Utf8PathBuf],
    pins: Option<&VenvPins>,
) -> Result<String> {
    let has = |f: &str| files.iter().any(|p| p == f);
    let mut pip = Vec::new();
    for d in &s.dependencies {
        match d {
            crate::plan::Dependency::Requirement { requirement } => pip.push(requirement.clone()),
            crate::plan::Dependency::Library {
                name,
                source: Source::Pypi { .. },
                requirement,
                ..
            } => {
                let _ = name;
                pip.push(requirement.clone());
            }
            crate::plan::Dependency::Library { name, .. } => {
                return Err(Error::config(format!(
                    "venv service `{}` depends on library `{name}`, whose source is not on PyPI; its image cannot install it",
                    s.name
                ))
                .with_help("give the library a `pypi` source, or run the service with uv (the library is then in its lock)"));
            }
        }
    }
    let installable = has("pyproject.toml") || has("setup.py");
    if !has("requirements.txt") && !installable && pip.is_empty() {
        return Err(Error::config(format!(
            "venv service `{}` has nothing to install into an image",
            s.name
        ))
        .with_help("add a `requirements.txt` or a `pyproject.toml`, or give it `dependencies`"));
    }
    let base = base_image(s, dir);
    let (args, mounts, exports) = env_lines(plan, s)?;
    let mut out = header(plan, s);
    let _ = writeln!(out, "FROM {base} AS build");
    out.push_str(&args);
    let _ = writeln!(out, "WORKDIR /app");
    let _ = writeln!(
        out,
        "RUN python3 -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir --disable-pip-version-check --upgrade pip"
    );
    let mut pip_cmd =
        "/app/.venv/bin/pip install --no-cache-dir --disable-pip-version-check".to_string();
    if let Some(p) = pins {
        let _ = writeln!(
            out,
            "# What sync pinned (hsm.locks/{}/requirements.txt): every install is constrained to it.",
            s.name
        );
        let _ = writeln!(out, "COPY {CONSTRAINTS_FILE} ./");
        if !p.git.is_empty() {
            let quoted: Vec<String> = p.git.iter().map(|r| sh_quote(r)).collect();
            let _ = writeln!(
                out,
                "RUN {mounts}{exports}{pip_cmd} --no-deps {}",
                quoted.join(" ")
            );
        }
        pip_cmd.push_str(&format!(" -c {CONSTRAINTS_FILE}"));
    }
    if has("requirements.txt") {
        let _ = writeln!(out, "COPY requirements.txt ./");
        let _ = writeln!(out, "RUN {mounts}{exports}{pip_cmd} -r requirements.txt");
    }
    if !pip.is_empty() {
        let quoted: Vec<String> = pip.iter().map(|r| sh_quote(r)).collect();
        let _ = writeln!(out, "RUN {mounts}{exports}{pip_cmd} {}", quoted.join(" "));
    }
    let _ = writeln!(out, "COPY . .");
    if installable {
        let _ = writeln!(out, "RUN {mounts}{exports}{pip_cmd} --no-deps .");
    }
    runtime_stage(&mut out, &base, s);
    Ok(out)
}

/// What [`build`] did for one service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub service: String,
    pub reference: String,
    pub extra_tags: Vec<String>,
    pub pushed: bool,
    /// `.hsm/images/<service>/Dockerfile` for a generated one.
    pub dockerfile: Option<Utf8PathBuf>,
}

/// How to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Extra tags (`--tag`), as `<repository>/<service>:<tag>`.
    pub tags: Vec<String>,
    pub push: bool,
}

/// Writes the context and the Dockerfile of `recipe` under
/// `.hsm/images/<service>/` and runs the engine's `build` (and `push`).
/// Secrets go to the engine as files of mode 0600 in a temporary
/// directory that is removed afterwards.
pub fn build(plan: &Plan, recipe: &Recipe, opts: &BuildOptions, verbose: bool) -> Result<Built> {
    let engine = match plan.project.container_engine {
        crate::manifest::model::ContainerEngine::Docker => "docker",
        crate::manifest::model::ContainerEngine::Podman => "podman",
    };
    let engine_path = which::which(engine).map_err(|_| {
        Error::failed(format!(
            "`{engine}` (the project's `container-engine`) was not found on `PATH`"
        ))
        .with_help("install it, or set `project.container-engine` to the engine you have")
    })?;
    if let Some(s) = plan
        .service(&recipe.service)
        .filter(|s| s.runtime() == Some(RuntimeType::Uv))
    {
        outside_paths(s, &recipe.source_dir)?;
    }
    let dir = recipe.dir(plan);
    let context = dir.join("context");
    let rel_dir = Utf8PathBuf::from(IMAGES_DIR).join(&recipe.service);
    let _ = std::fs::remove_dir_all(&context);
    let io = |what: &str, p: &Utf8Path, e: std::io::Error| {
        Error::failed(format!("cannot {what} `{p}`: {e}"))
    };
    std::fs::create_dir_all(&context).map_err(|e| io("create", &context, e))?;
    for f in &recipe.files {
        let from = recipe.source_dir.join(f);
        let to = context.join(f);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
        }
        let meta = std::fs::symlink_metadata(&from).map_err(|e| io("read", &from, e))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| io("read", &from, e))?;
            std::os::unix::fs::symlink(target, &to).map_err(|e| io("write", &to, e))?;
        } else {
            std::fs::copy(&from, &to).map_err(|e| io("write", &to, e))?;
        }
    }
    for (f, text) in &recipe.extra {
        let to = context.join(f);
        std::fs::write(&to, text).map_err(|e| io("write", &to, e))?;
    }
    let dockerfile = match &recipe.generated {
        Some(text) => {
            let path = dir.join("Dockerfile");
            crate::fs::write_if_changed(&path, text.as_bytes(), None)
                .map_err(|e| io("write", &path, e))?;
            path
        }
        None => context.join(&recipe.dockerfile),
    };
    let secrets_dir = tempfile::Builder::new()
        .prefix("hsm-build-secrets")
        .tempdir()
        .map_err(|e| Error::failed(format!("cannot create a temporary directory: {e}")))?;
    let mut secret_files = Vec::new();
    for (i, (k, raw)) in recipe.secrets.iter().enumerate() {
        let value = crate::envfile::expand(raw, |name| std::env::var(name).ok());
        let path = secrets_dir.path().join(format!("s{i}"));
        write_secret(&path, value.as_bytes())
            .map_err(|e| Error::failed(format!("cannot write a build secret: {e}")))?;
        secret_files.push((k.clone(), path));
    }
    let ca = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            let empty = secrets_dir.path().join("no-ca");
            let _ = write_secret(&empty, b"");
            empty
        });
    secret_files.push((CA_SECRET.to_string(), ca));
    let args = build_command(engine, recipe, opts, &dockerfile, &context, &secret_files);
    run_engine(&engine_path, &args, verbose, &recipe.service, None)?;
    let mut pushed = false;
    if opts.push {
        let mut refs = vec![recipe.reference.clone()];
        refs.extend(opts.tags.iter().cloned());
        for r in refs {
            run_engine(
                &engine_path,
                &push_command(&r),
                verbose,
                &recipe.service,
                Some((engine, &r)),
            )?;
        }
        pushed = true;
    }
    Ok(Built {
        service: recipe.service.clone(),
        reference: recipe.reference.clone(),
        extra_tags: opts.tags.clone(),
        pushed,
        dockerfile: recipe
            .generated
            .as_ref()
            .map(|_| rel_dir.join("Dockerfile")),
    })
}

fn write_secret(path: &std::path::Path, value: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(value)
}

/// The engine's `build` command line (after the engine's name). Both
/// engines take the same flags, except that podman is told never to pull
/// a base image it has (`--pull=missing`); docker's `--secret` and
/// `RUN --mount=type=secret` need BuildKit, its default builder since
/// Docker 23. Secrets are `(id, file)`.
pub fn build_command(
    engine: &str,
    recipe: &Recipe,
    opts: &BuildOptions,
    dockerfile: &Utf8Path,
    context: &Utf8Path,
    secrets: &[(String, std::path::PathBuf)],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "build".into(),
        "-f".into(),
        dockerfile.to_string(),
        "-t".into(),
        recipe.reference.clone(),
    ];
    for t in &opts.tags {
        args.extend(["-t".into(), t.clone()]);
    }
    if engine == "podman" {
        // Base images are the user's to pull; a build never pulls behind their back.
        args.push("--pull=missing".into());
    }
    for (k, v) in &recipe.build_args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    for (id, path) in secrets {
        args.extend(["--secret".into(), format!("id={id},src={}", path.display())]);
    }
    args.push(context.to_string());
    args
}

/// The engine's `push` command line: the same for docker and podman,
/// which both use the credentials of their own `login`.
pub fn push_command(reference: &str) -> Vec<String> {
    vec!["push".to_string(), reference.to_string()]
}

/// The registry host of an image reference (`docker.io` when the first
/// component is not a host).
pub fn registry_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Runs the engine; `push` is `Some((engine, reference))` for a push, whose
/// failure names the registry and the login to run.
fn run_engine(
    engine: &std::path::Path,
    args: &[String],
    verbose: bool,
    service: &str,
    push: Option<(&str, &str)>,
) -> Result<()> {
    let shown = format!(
        "{} {}",
        engine.display(),
        args.iter()
            .map(|a| if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut cmd = duct::cmd(engine, args).unchecked();
    if !verbose {
        cmd = cmd.stderr_to_stdout().stdout_capture();
    }
    let out = cmd
        .run()
        .map_err(|e| Error::failed(format!("cannot run `{shown}`: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = text.lines().rev().take(25).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let detail = format!("command: {shown}\n{}", tail.join("\n"));
    Err(match push {
        Some((name, reference)) => {
            let registry = registry_of(reference);
            Error::failed(format!(
                "the push of service `{service}`'s image `{reference}` to registry `{registry}` failed ({})",
                out.status
            ))
            .with_detail(detail)
            .with_help(format!(
                "cargo-hsm pushes with {name}'s own credentials: log in with `{name} login {registry}`, then run `cargo hsm image build {service} --push` again"
            ))
        }
        None => Error::failed(format!(
            "the image build of service `{service}` failed ({})",
            out.status
        ))
        .with_detail(detail)
        .with_help("read the engine's output above; `-v` shows all of it as it runs"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_found_and_dollars_escaped() {
        assert!(has_variable("${PG_PASSWORD}"));
        assert!(has_variable("postgres://${U}:${P}@db"));
        assert!(has_variable("$HOME/x"));
        assert!(!has_variable("plain"));
        assert!(!has_variable("$$literal"));
        assert!(!has_variable("costs 5$"));
        assert!(!has_variable("a$1"));
    }

    #[test]
    fn python_version_from_the_project() {
        let d = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(d.path()).unwrap();
        assert_eq!(python_version(dir), None);
        std::fs::write(
            dir.join("pyproject.toml"),
            "[project]\nname='x'\nrequires-python = \">=3.11, <4\"\n",
        )
        .unwrap();
        assert_eq!(python_version(dir).as_deref(), Some("3.11"));
        std::fs::write(dir.join(".python-version"), "3.12.4\n").unwrap();
        assert_eq!(python_version(dir).as_deref(), Some("3.12"));
    }

    fn recipe() -> Recipe {
        Recipe {
            service: "api".into(),
            source_dir: "/w/api".into(),
            files: vec![],
            extra: vec![],
            generated: Some(String::new()),
            dockerfile: "Dockerfile".into(),
            build_args: vec![("GREETING".into(), "hello there".into())],
            secrets: vec![("API_TOKEN".into(), "${TOKEN}".into())],
            tag: "0123456789abcdef".into(),
            reference: "registry.example.org:5000/team/api:0123456789abcdef".into(),
        }
    }

    #[test]
    fn docker_and_podman_command_lines() {
        let opts = BuildOptions {
            tags: vec!["registry.example.org:5000/team/api:v1".into()],
            push: true,
        };
        let secrets = vec![
            (
                "API_TOKEN".to_string(),
                std::path::PathBuf::from("/tmp/s/s0"),
            ),
            (
                CA_SECRET.to_string(),
                std::path::PathBuf::from("/tmp/s/no-ca"),
            ),
        ];
        let df = Utf8Path::new("/w/.hsm/images/api/Dockerfile");
        let ctx = Utf8Path::new("/w/.hsm/images/api/context");
        let docker = build_command("docker", &recipe(), &opts, df, ctx, &secrets);
        assert_eq!(
            docker,
            [
                "build",
                "-f",
                "/w/.hsm/images/api/Dockerfile",
                "-t",
                "registry.example.org:5000/team/api:0123456789abcdef",
                "-t",
                "registry.example.org:5000/team/api:v1",
                "--build-arg",
                "GREETING=hello there",
                "--secret",
                "id=API_TOKEN,src=/tmp/s/s0",
                "--secret",
                "id=hsm-ca-bundle,src=/tmp/s/no-ca",
                "/w/.hsm/images/api/context",
            ]
        );
        let podman = build_command("podman", &recipe(), &opts, df, ctx, &secrets);
        let mut expected = docker.clone();
        expected.insert(7, "--pull=missing".into());
        assert_eq!(podman, expected);
        // The secret's value is never on the command line, only its file.
        assert!(!docker.iter().any(|a| a.contains("${TOKEN}")));
        assert_eq!(
            push_command("registry.example.org:5000/team/api:v1"),
            ["push", "registry.example.org:5000/team/api:v1"]
        );
    }

    #[test]
    fn registries_of_references() {
        assert_eq!(registry_of("127.0.0.1:5000/team/api:x"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/org/api:x"), "ghcr.io");
        assert_eq!(registry_of("localhost/p/api:x"), "localhost");
        assert_eq!(registry_of("team/api:x"), "docker.io");
    }

    #[test]
    fn venv_images_install_what_sync_pinned() {
        let (_d, root) = crate::test_support::tmp();
        std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(
            root.join("hsm.toml"),
            "[project]\nname = \"t\"\n[services]\nstandalone = [\"api\"]\n[registry.services.api]\nsources.prod = { type = \"git\", url = \"https://example.org/api.git\", ref = \"v1\" }\ndeployment-profiles.default = { runtime = \"venv\", command = [\"python\", \"-m\", \"api\"] }\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("services/api")).unwrap();
        std::fs::write(root.join("services/api/requirements.txt"), "requests\n").unwrap();
        let plan = crate::plan(&root).map(|(_, p)| p).unwrap();
        let s = plan.service("api").unwrap();
        let err = origin(&plan, s).unwrap_err().to_string();
        assert!(
            err.contains("has no pins in `hsm.locks/api/requirements.txt`"),
            "{err}"
        );

        std::fs::create_dir_all(root.join("hsm.locks/api")).unwrap();
        let pins = "# Generated by `cargo hsm sync`.\nidna==3.7\nrequests==2.32.3\ntoolz @ git+https://example.org/toolz.git@0123456789abcdef0123456789abcdef01234567  # ref: main\n";
        std::fs::write(root.join("hsm.locks/api/requirements.txt"), pins).unwrap();
        let Origin::Built(r) = origin(&plan, s).unwrap() else {
            panic!("a venv service is built")
        };
        let text = r.generated.as_deref().unwrap();
        let pip = "/app/.venv/bin/pip install --no-cache-dir --disable-pip-version-check";
        for line in [
            format!("COPY {CONSTRAINTS_FILE} ./"),
            format!("{pip} --no-deps 'toolz @ git+https://example.org/toolz.git@0123456789abcdef0123456789abcdef01234567'"),
            format!("{pip} -c {CONSTRAINTS_FILE} -r requirements.txt"),
        ] {
            assert!(text.contains(&line), "{line}\nnot in:\n{text}");
        }
        // The constraints before the requirements; git lines are no constraints.
        assert!(text.find(CONSTRAINTS_FILE).unwrap() < text.find("-r requirements.txt").unwrap());
        assert_eq!(
            r.extra,
            [(
                Utf8PathBuf::from(CONSTRAINTS_FILE),
                "# Generated by `cargo hsm sync`.\nidna==3.7\nrequests==2.32.3\n".to_string()
            )]
        );
        // Other pins, another tag; the same pins, the same tag.
        let tag = r.tag.clone();
        std::fs::write(
            root.join("hsm.locks/api/requirements.txt"),
            pins.replace("idna==3.7", "idna==3.8"),
        )
        .unwrap();
        let Origin::Built(r2) = origin(&plan, s).unwrap() else {
            unreachable!()
        };
        assert_ne!(r2.tag, tag);
        std::fs::write(root.join("hsm.locks/api/requirements.txt"), pins).unwrap();
        let Origin::Built(r3) = origin(&plan, s).unwrap() else {
            unreachable!()
        };
        assert_eq!(r3.tag, tag);
    }
}
