//! The real `uv` binary, resolved once per process: sync runs it
//! (`materialize`), and `image build` installs the same version in an
//! image (`deploy::image`), so it lives beside both.
//!
//! `uv` on `PATH` is often a shim (pyenv, asdf, mise): a script that picks
//! the real program from the `.python-version` of the directory it runs
//! in. A service checkout's own `.python-version` can then select an
//! interpreter without uv (`pyenv: uv: command not found`, exit 127). So the
//! binary is resolved once, from the workspace root, and every uv command
//! runs that binary directly.

use std::sync::OnceLock;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};

/// Variables that would send a tool to another environment than the
/// service's own; never passed to children.
pub const LEAKY_ENV: &[&str] = &[
    "VIRTUAL_ENV",
    "UV_PROJECT_ENVIRONMENT",
    "UV_PROJECT",
    "UV_WORKING_DIR",
    "UV_FROZEN",
    "UV_LOCKED",
    "CONDA_PREFIX",
    "PIXI_PROJECT_MANIFEST",
    // A package manager told to leave packages out, or to act on another
    // project, would not install what the service's lock says.
    "NODE_ENV",
    "npm_config_omit",
    "npm_config_production",
    "npm_config_prefix",
    "npm_config_global",
    "npm_config_workspace",
    "npm_config_workspaces",
    "npm_config_frozen_lockfile",
];

/// The uv every step runs: its path, and what `uv --version` says, asked
/// on first use only (a spawn).
#[derive(Debug)]
pub struct Uv {
    pub path: Utf8PathBuf,
    root: Utf8PathBuf,
    version: OnceLock<String>,
}

impl Uv {
    /// `with `/path/uv``, or with `with_version` (`-v`; a spawn the first
    /// time) `with uv 0.13.9 (…) at `/path/uv``: for an action's command.
    pub fn describe(&self, with_version: bool) -> String {
        if with_version {
            format!("with {} at `{}`", self.version(), self.path)
        } else {
            format!("with `{}`", self.path)
        }
    }

    /// `uv 0.13.9 (…)`, or `uv (version unknown)`.
    pub fn version(&self) -> &str {
        self.version.get_or_init(|| {
            ask(&self.path, &["--version"], &self.root)
                .unwrap_or_else(|| "uv (version unknown)".into())
        })
    }
}

/// A script (`#!` first), not a binary.
fn is_script(path: &Utf8Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head == b"#!")
}

fn utf8(p: std::path::PathBuf) -> Option<Utf8PathBuf> {
    Utf8PathBuf::from_path_buf(p).ok()
}

/// The first line of a command's stdout, run in `dir`, without the leaky
/// variables.
fn ask(program: &Utf8Path, args: &[&str], dir: &Utf8Path) -> Option<String> {
    let mut expr = duct::cmd(program.as_std_path(), args)
        .dir(dir.as_std_path())
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    for k in LEAKY_ENV {
        expr = expr.env_remove(k);
    }
    let out = expr.run().ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| stdout.lines().next().unwrap_or("").trim().to_string())
        .filter(|s| !s.is_empty())
}

/// What a shim resolves to, asked from `dir`: pyenv's own answer when the
/// shim is pyenv's, else uv itself (it exports its path as `UV` to the
/// commands it runs).
fn through_shim(shim: &Utf8Path, dir: &Utf8Path) -> Option<Utf8PathBuf> {
    let text = std::fs::read_to_string(shim).unwrap_or_default();
    if text.contains("pyenv") {
        if let Some(pyenv) = which::which("pyenv").ok().and_then(utf8) {
            if let Some(p) = ask(&pyenv, &["which", "uv"], dir) {
                let p = Utf8PathBuf::from(p);
                if p.is_file() && !is_script(&p) {
                    return Some(p);
                }
            }
        }
    }
    let p = Utf8PathBuf::from(ask(
        shim,
        &[
            "run",
            "--no-project",
            "--no-config",
            "--no-python-downloads",
            "--quiet",
            "--",
            "printenv",
            "UV",
        ],
        dir,
    )?);
    (p.is_file() && !is_script(&p)).then_some(p)
}

/// A version manager's shim (pyenv, asdf, mise): a script in a `shims`
/// directory, or one that names its manager. A user's own wrapper script
/// is not one: it runs as it is.
fn is_shim(path: &Utf8Path) -> bool {
    if !is_script(path) {
        return false;
    }
    let in_shims_dir = path
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|n| n == "shims");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // What pyenv's and asdf's shims run; a wrapper that merely calls a
    // shim by its path is the user's own.
    in_shims_dir
        || ["libexec/pyenv\" exec", "pyenv exec ", "asdf exec "]
            .iter()
            .any(|m| text.contains(m))
}

/// Finds the real uv: the first `uv` on `PATH`, or, when that is a version
/// manager's shim, what it resolves to from `root` (the workspace root),
/// else the next binary named `uv` on `PATH`. `None` when no `uv` is on
/// `PATH` at all.
fn resolve(root: &Utf8Path) -> Option<Uv> {
    let candidates: Vec<Utf8PathBuf> = which::which_all("uv")
        .map(|it| it.filter_map(utf8).collect())
        .unwrap_or_default();
    let first = candidates.first()?.clone();
    let path = if is_shim(&first) {
        through_shim(&first, root)
            .or_else(|| candidates.iter().find(|p| !is_script(p)).cloned())
            .unwrap_or(first)
    } else {
        first
    };
    Some(Uv {
        path,
        root: root.to_owned(),
        version: OnceLock::new(),
    })
}

/// The real uv, resolved on first use (from `root`) and then reused.
pub fn uv(root: &Utf8Path) -> Option<&'static Uv> {
    static UV: OnceLock<Option<Uv>> = OnceLock::new();
    UV.get_or_init(|| resolve(root)).as_ref()
}

/// The real uv, or an error that names `who` needs it and `hint`.
pub fn find_uv(root: &Utf8Path, who: &str, hint: &str) -> Result<&'static Uv> {
    uv(root).ok_or_else(|| {
        Error::failed(format!("{who} needs `uv`, which was not found on `PATH`"))
            .with_help(hint.to_string())
    })
}
