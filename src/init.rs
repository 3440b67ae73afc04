//! `cargo hsm init`, `service init` and `library init`: new manifests, new
//! services and new libraries from the templates in `templates/`, embedded in
//! the binary.

use camino::{Utf8Path, Utf8PathBuf};

use crate::edit::registry::{self, EntryKind, LibrarySpec, ServiceSpec, SourceSpec};
use crate::edit::selection::{self, Component};
use crate::edit::{write_overlay, Outcome, Session};
use crate::error::{Error, Result};
use crate::manifest::model::{Mode, RuntimeType};
use crate::manifest::{load_with, Overlay, MANIFEST_FILE};
use crate::names;

/// The embedded templates.
pub mod templates {
    pub const HSM_TOML: &str = include_str!("../templates/hsm.toml");
    pub const CARGO_METADATA: &str = include_str!("../templates/cargo-metadata.toml");
    pub const GITIGNORE: &str = include_str!("../templates/gitignore");
    pub const PY_INIT: &str = include_str!("../templates/python/__init__.py");
    pub const PY_MAIN: &str = include_str!("../templates/python/__main__.py");
    pub const DOCKERFILE: &str = include_str!("../templates/container/Dockerfile");
    pub const CONTAINER_REQUIREMENTS: &str =
        include_str!("../templates/container/requirements.txt");
}

/// Default registry directory created by `init`.
pub const DEFAULT_REGISTRY_DIR: &str = "hsm-registry";
/// Where `library init` puts new libraries.
pub const PACKAGES_DIR: &str = "packages";

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// Options of `cargo hsm init`.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Put the manifest into the root `Cargo.toml` instead of `hsm.toml`.
    pub metadata: bool,
    /// Registry directory, relative to the workspace root.
    pub registry: Option<Utf8PathBuf>,
    /// Project name (default: the root package's name, else the directory's).
    pub name: Option<String>,
}

/// Creates the manifest, the registry directory and the `.gitignore` lines.
/// Refuses to overwrite an existing manifest.
pub fn init(root: &Utf8Path, opts: &InitOptions) -> Result<Outcome> {
    let hsm_path = root.join(MANIFEST_FILE);
    let cargo_path = root.join("Cargo.toml");
    let cargo_text = std::fs::read_to_string(&cargo_path)
        .map_err(|e| Error::config(format!("cannot read `{cargo_path}`: {e}")))?;
    let cargo_doc: toml_edit::DocumentMut =
        cargo_text.parse().map_err(|e: toml_edit::TomlError| {
            Error::config(format!("`{cargo_path}` is not valid TOML: {}", e.message()))
        })?;
    if hsm_path.exists() {
        return Err(Error::config(format!(
            "`{MANIFEST_FILE}` already exists in `{root}`; refusing to overwrite the manifest"
        ))
        .with_help("edit it, or use `cargo hsm library|service|group …` to change the selection"));
    }
    for (table, prefix) in [
        ("workspace", "workspace.metadata.hsm"),
        ("package", "package.metadata.hsm"),
    ] {
        if cargo_doc
            .get(table)
            .and_then(|t| t.get("metadata"))
            .and_then(|m| m.get("hsm"))
            .is_some()
        {
            return Err(Error::config(format!(
                "`Cargo.toml` already holds the hsm manifest in `[{prefix}]`; refusing to overwrite it"
            )));
        }
    }
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => cargo_doc
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .or_else(|| root.file_name().map(str::to_string))
            .unwrap_or_else(|| "project".to_string()),
    };
    let registry = opts
        .registry
        .clone()
        .unwrap_or_else(|| Utf8PathBuf::from(DEFAULT_REGISTRY_DIR));
    if registry.is_absolute() || registry.components().any(|c| c.as_str() == "..") {
        return Err(Error::config(format!(
            "the registry directory `{registry}` must be a relative path inside the workspace"
        )));
    }
    let reg_str = registry.as_str().replace('\\', "/");
    let toml_str = |s: &str| toml_edit::Value::from(s).to_string().trim().to_string();
    let quoted_name = toml_str(&name);
    let quoted_reg = toml_str(&reg_str);

    let mut ov = Overlay::default();
    if opts.metadata {
        let prefix = if cargo_doc.get("workspace").is_some() {
            "workspace.metadata.hsm"
        } else {
            "package.metadata.hsm"
        };
        let block = fill(templates::CARGO_METADATA, &[("prefix", prefix)])
            .replace("\"{name}\"", &quoted_name)
            .replace("\"{registry}\"", &quoted_reg);
        let mut text = cargo_text.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&block);
        ov.files.insert(cargo_path.clone(), Some(text));
    } else {
        let text = templates::HSM_TOML
            .replace("\"{name}\"", &quoted_name)
            .replace("\"{registry}\"", &quoted_reg);
        ov.files.insert(hsm_path.clone(), Some(text));
    }
    let reg_dir = root.join(&registry);
    for kind in ["libraries", "services", "library_groups", "service_groups"] {
        let dir = reg_dir.join(kind);
        let has_files = dir
            .read_dir_utf8()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if !has_files {
            ov.files.insert(dir.join(".gitkeep"), Some(String::new()));
        }
    }
    let gitignore = root.join(".gitignore");
    let current = std::fs::read_to_string(&gitignore).unwrap_or_default();
    let wanted = fill(templates::GITIGNORE, &[("services_dir", "services")]);
    if let Some(text) = append_missing_lines(&current, &wanted) {
        ov.files.insert(gitignore, Some(text));
    }
    let loaded = load_with(root, &ov)?;
    crate::resolve(&loaded)?;
    write_overlay(&ov)
}

/// Appends the lines of `block` that `current` lacks (comments only when
/// something else is added). `None` when nothing is missing.
fn append_missing_lines(current: &str, block: &str) -> Option<String> {
    let have: std::collections::BTreeSet<&str> = current.lines().map(str::trim).collect();
    let missing: Vec<&str> = block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !have.contains(l.trim()))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut text = current.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.is_empty() {
        text.push('\n');
    }
    for l in block.lines() {
        if l.starts_with('#') || missing.contains(&l) {
            text.push_str(l);
            text.push('\n');
        }
    }
    Some(text)
}

/// Options of `cargo hsm service init`.
#[derive(Debug, Clone)]
pub struct ServiceInitOptions {
    pub name: String,
    pub runtime: RuntimeType,
    /// Where to create it, relative to the workspace root or absolute
    /// (inside the workspace). Default `<services-dir>/<name>`.
    pub path: Option<Utf8PathBuf>,
    pub register: bool,
    pub git_init: bool,
}

/// What `service init` / `library init` created.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new directory, relative to the workspace root.
    pub dir: Utf8PathBuf,
    /// Manifest and registry files changed.
    pub outcome: Outcome,
}

/// A Python module name for a component name.
pub fn module_name(name: &str) -> String {
    let m = name.replace(['-', '.'], "_");
    if m.starts_with(|c: char| c.is_ascii_digit()) {
        format!("svc_{m}")
    } else {
        m
    }
}

/// Resolves `path` against the workspace root; refuses a path outside it.
fn inside_root(root: &Utf8Path, path: &Utf8Path) -> Result<Utf8PathBuf> {
    let rel = crate::paths::within(root, path).map_err(|resolved| {
        Error::config(format!(
            "`{path}` is outside the workspace: it resolves to {resolved}; create the directory inside it"
        ))
    })?;
    if rel.as_str() == "." {
        return Err(Error::config(
            "the target directory cannot be the workspace root itself",
        ));
    }
    Ok(rel)
}

/// Refuses an existing non-empty directory (or a file in the way).
fn require_empty_target(root: &Utf8Path, rel: &Utf8Path) -> Result<bool> {
    let abs = root.join(rel);
    if abs.is_file() {
        return Err(Error::config(format!("`{rel}` exists and is a file")));
    }
    if abs.is_dir() {
        let non_empty = abs
            .read_dir_utf8()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
        if non_empty {
            return Err(Error::config(format!(
                "`{rel}` already exists and is not empty; refusing to overwrite it"
            ))
            .with_help("pick another name or `--path`, or register the existing directory with `cargo hsm registry service add`"));
        }
        return Ok(true);
    }
    Ok(false)
}

/// Undoes the creation of a directory after a failure.
fn cleanup(abs: &Utf8Path, existed: bool) {
    if existed {
        if let Ok(rd) = abs.read_dir_utf8() {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    let _ = std::fs::remove_dir_all(p);
                } else {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    } else {
        let _ = std::fs::remove_dir_all(abs);
    }
}

fn write_new(path: &Utf8Path, text: &str) -> Result<()> {
    crate::fs::write_if_changed(path, text.as_bytes(), None)
        .map(|_| ())
        .map_err(|e| Error::failed(format!("cannot write `{path}`: {e}")))
}

fn run_tool(program: &str, args: &[&str], dir: &Utf8Path) -> Result<()> {
    let line = format!("{program} {}", args.join(" "));
    if which::which(program).is_err() {
        return Err(Error::failed(format!(
            "`{program}` is not installed (needed for `{line}`)"
        ))
        .with_help(match program {
            "uv" => "install uv: https://docs.astral.sh/uv/getting-started/installation/",
            _ => "install it and try again",
        }));
    }
    let out = duct::cmd(program, args)
        .dir(dir)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| Error::failed(format!("could not run `{line}`: {e}")))?;
    if !out.status.success() {
        return Err(Error::failed(format!("`{line}` failed ({})", out.status))
            .with_detail(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    Ok(())
}

/// Creates a service from the template of its runtime and registers it.
pub fn service_init(root: &Utf8Path, o: &ServiceInitOptions) -> Result<Created> {
    names::validate(&o.name)
        .map_err(|why| Error::config(format!("invalid service name: {why}")))?;
    let mut s = Session::open(root)?;
    let services_dir = s
        .loaded
        .manifest
        .project
        .services_dir
        .clone()
        .unwrap_or_else(|| Utf8PathBuf::from(crate::resolve::DEFAULT_SERVICES_DIR));
    let rel = match &o.path {
        Some(p) => inside_root(root, p)?,
        None => inside_root(root, &services_dir.join(&o.name))?,
    };
    let existed = require_empty_target(root, &rel)?;
    let module = module_name(&o.name);
    let rel_str = rel.as_str().replace('\\', "/");

    // An environment runtime's template comes from its adapter; a
    // container service is a Dockerfile, whose CMD starts it.
    let template =
        crate::materialize::runtimes::adapter(o.runtime).map(|a| a.init_template(&o.name, &module));
    let command: Option<Vec<String>> = template.as_ref().map(|t| t.command.clone());
    if o.register {
        let spec = ServiceSpec {
            description: Some(format!("{} (created by `cargo hsm service init`)", o.name)),
            prod: Some(SourceSpec::local(&rel_str, None)),
            dev: Some(SourceSpec::local(&rel_str, None)),
            profile: Some("default".into()),
            profile_mode: Some("managed".into()),
            runtime: Some(o.runtime),
            command: command.clone(),
            ..Default::default()
        };
        registry::add_entry(&mut s, EntryKind::Service, &o.name, spec.table())?;
        // The selection is checked against the registry as it will be.
        add_standalone_unchecked(&mut s, Component::Service, &o.name, None)?;
        // A directory under the services directory is ignored by `init`'s
        // `.gitignore`; this one is the user's code, so it is re-included.
        let gi = root.join(".gitignore");
        if let Some(text) = s.text(&gi)? {
            let ignored = format!("/{}/*", services_dir.as_str().trim_end_matches('/'));
            if rel.starts_with(&services_dir) && text.lines().any(|l| l.trim() == ignored) {
                let line = format!("!/{rel_str}/");
                if !text.lines().any(|l| l.trim() == line) {
                    let mut t = text.clone();
                    if !t.ends_with('\n') {
                        t.push('\n');
                    }
                    t.push_str(&line);
                    t.push('\n');
                    s.set_text(&gi, t);
                }
            }
        }
        s.validate()?;
    }

    let abs = root.join(&rel);
    let created = (|| -> Result<()> {
        let vars: [(&str, &str); 2] = [("name", &o.name), ("module", &module)];
        match &template {
            Some(t) => {
                if let Some((tool, args, made)) = &t.tool {
                    if let Some(parent) = abs.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| Error::failed(format!("cannot create `{parent}`: {e}")))?;
                    }
                    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
                    args.push(abs.as_str());
                    run_tool(tool, &args, root)?;
                    let made = abs.join(made);
                    if !made.is_file() {
                        return Err(Error::failed(format!(
                            "`{tool} {}` did not create `{made}`",
                            args[0]
                        )));
                    }
                }
                for (rel, text) in &t.files {
                    let path = abs.join(rel);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| Error::failed(format!("cannot create `{parent}`: {e}")))?;
                    }
                    write_new(&path, text)?;
                }
            }
            None => {
                write_new(&abs.join("Dockerfile"), &fill(templates::DOCKERFILE, &vars))?;
                write_new(
                    &abs.join("requirements.txt"),
                    &fill(templates::CONTAINER_REQUIREMENTS, &vars),
                )?;
                write_module(&abs, &vars, &module)?;
            }
        }
        if o.git_init {
            run_tool("git", &["init", "--quiet"], &abs)?;
        }
        Ok(())
    })();
    if let Err(e) = created {
        cleanup(&abs, existed);
        return Err(e);
    }
    // A root uv workspace whose `members` glob matches the new directory would
    // adopt it (installing into the root venv); exclude it there, as sync does,
    // leaving the user's `members` untouched.
    if o.runtime == RuntimeType::Uv {
        if let Err(e) = stage_root_exclusion(&mut s, root) {
            cleanup(&abs, existed);
            return Err(e);
        }
    }
    commit_or_clean_up(s, &abs, existed, rel)
}

/// Writes the session's edits; if that fails, removes what was created.
fn commit_or_clean_up(
    s: Session,
    abs: &Utf8Path,
    existed: bool,
    rel: Utf8PathBuf,
) -> Result<Created> {
    match s.commit() {
        Ok(outcome) => Ok(Created { dir: rel, outcome }),
        Err(e) => {
            cleanup(abs, existed);
            Err(e)
        }
    }
}

/// Stages hsm's managed state of the root `pyproject.toml` for the session's
/// plan, which now includes the new service.
fn stage_root_exclusion(s: &mut Session, root: &Utf8Path) -> Result<()> {
    let loaded = s.validate()?;
    let plan = crate::resolve(&loaded)?;
    let abs = root
        .join(&plan.project.python_project)
        .join("pyproject.toml");
    let Ok(text) = std::fs::read_to_string(&abs) else {
        return Ok(());
    };
    let want = crate::materialize::root_wanted(&plan, &text, &abs)?;
    if want.workspace_exclude.is_empty() {
        return Ok(());
    }
    let edited = crate::materialize::pyproject::apply(&text, &abs, &want)?;
    if edited.text != text {
        s.set_text(&abs, edited.text);
    }
    Ok(())
}

/// Stages the shared project's `pyproject.toml`, as `uv init --bare`
/// writes it, when the edited selection has libraries and there is none:
/// the fix sync's error would otherwise suggest. `Some(path)` when staged.
pub fn stage_root_pyproject(s: &mut Session) -> Result<Option<Utf8PathBuf>> {
    let loaded = s.validate()?;
    let plan = crate::resolve(&loaded)?;
    let abs = s
        .root
        .join(&plan.project.python_project)
        .join("pyproject.toml");
    if plan.libraries.is_empty() || abs.exists() || s.text(&abs)?.is_some() {
        return Ok(None);
    }
    let name: String = plan
        .project
        .name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    let name = if name.is_empty() {
        "workspace".to_string()
    } else {
        name
    };
    // uv's own text (with the `requires-python` of the Python it finds),
    // made in a scratch directory so that the edit stays one transaction.
    let from_uv = tempfile::tempdir().ok().and_then(|d| {
        let dir = Utf8Path::from_path(d.path())?.to_owned();
        run_tool(
            "uv",
            &[
                "init",
                "--bare",
                "--no-workspace",
                "--vcs",
                "none",
                "--name",
                &name,
                dir.as_str(),
            ],
            &dir,
        )
        .ok()?;
        std::fs::read_to_string(dir.join("pyproject.toml")).ok()
    });
    let text = from_uv.unwrap_or_else(|| {
        format!("[project]\nname = \"{name}\"\nversion = \"0.1.0\"\ndependencies = []\n")
    });
    s.set_text(&abs, text);
    Ok(Some(abs))
}

fn write_module(dir: &Utf8Path, vars: &[(&str, &str)], module: &str) -> Result<()> {
    write_new(
        &dir.join(module).join("__init__.py"),
        &fill(templates::PY_INIT, vars),
    )?;
    write_new(
        &dir.join(module).join("__main__.py"),
        &fill(templates::PY_MAIN, vars),
    )
}

/// Adds a standalone selection for an entry staged in this session (the
/// loaded registry does not know it yet; `Session::validate` checks it).
fn add_standalone_unchecked(
    s: &mut Session,
    kind: Component,
    name: &str,
    mode: Option<Mode>,
) -> Result<()> {
    selection::add_unchecked(s, kind, name, mode, None)
}

/// Creates `packages/NAME` with `uv init --lib --no-workspace`, registers it
/// with a local, editable dev source and selects it in dev mode.
pub fn library_init(root: &Utf8Path, name: &str, git_init: bool) -> Result<Created> {
    names::validate(name).map_err(|why| Error::config(format!("invalid library name: {why}")))?;
    let mut s = Session::open(root)?;
    let rel = Utf8PathBuf::from(PACKAGES_DIR).join(name);
    let existed = require_empty_target(root, &rel)?;
    let spec = LibrarySpec {
        description: Some(format!("{name} (created by `cargo hsm library init`)")),
        prod: None,
        dev: Some(SourceSpec::local(rel.as_str(), Some(true))),
    };
    registry::add_entry(&mut s, EntryKind::Library, name, spec.table())?;
    add_standalone_unchecked(&mut s, Component::Library, name, Some(Mode::Dev))?;
    s.validate()?;
    let abs = root.join(&rel);
    // `--vcs git` does nothing inside an existing repository: `git init` below.
    let vcs = "none";
    let created = (|| -> Result<()> {
        std::fs::create_dir_all(root.join(PACKAGES_DIR))
            .map_err(|e| Error::failed(format!("cannot create `{PACKAGES_DIR}`: {e}")))?;
        run_tool(
            "uv",
            &[
                "init",
                "--lib",
                "--no-workspace",
                "--vcs",
                vcs,
                "--name",
                name,
                abs.as_str(),
            ],
            root,
        )?;
        if git_init {
            run_tool("git", &["init", "--quiet"], &abs)?;
        }
        Ok(())
    })();
    if let Err(e) = created {
        cleanup(&abs, existed);
        return Err(e);
    }
    commit_or_clean_up(s, &abs, existed, rel)
}
