//! The real `uv` binary, resolved once per process.
//!
//! `uv` on `PATH` is often a shim (pyenv, asdf, mise): a script that picks
//! the real program from the `.python-version` of the directory it runs
//! in. A service checkout's own `.python-version` can then select an
//! interpreter without uv (`pyenv: uv: command not found`, exit 127). So the
//! binary is resolved once, from the workspace root, and every uv command
//! runs that binary directly.

use std::sync::OnceLock;

use camino::{Utf8Path, Utf8PathBuf};

use super::run_tool;

/// The uv every step runs: its path and what `uv --version` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uv {
    pub path: Utf8PathBuf,
    pub version: String,
}

impl std::fmt::Display for Uv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at `{}`", self.version, self.path)
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

/// The first line of a command's stdout, run in `dir`.
fn ask(program: &Utf8Path, args: &[&str], dir: &Utf8Path) -> Option<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = run_tool("uv resolution", program, &args, dir, false).ok()?;
    (out.status == 0)
        .then(|| out.stdout.lines().next().unwrap_or("").trim().to_string())
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

/// Finds the real uv: the first binary named `uv` on `PATH`, else what the
/// first `uv` shim resolves to from `root` (the workspace root). `None`
/// when no `uv` is on `PATH` at all.
fn resolve(root: &Utf8Path) -> Option<Uv> {
    let candidates: Vec<Utf8PathBuf> = which::which_all("uv")
        .map(|it| it.filter_map(utf8).collect())
        .unwrap_or_default();
    let first = candidates.first()?.clone();
    let path = candidates
        .iter()
        .find(|p| !is_script(p))
        .cloned()
        .or_else(|| through_shim(&first, root))
        .unwrap_or(first);
    let version = ask(&path, &["--version"], root).unwrap_or_else(|| "uv (version unknown)".into());
    Some(Uv { path, version })
}

/// The real uv, resolved on first use (from `root`) and then reused.
pub fn uv(root: &Utf8Path) -> Option<&'static Uv> {
    static UV: OnceLock<Option<Uv>> = OnceLock::new();
    UV.get_or_init(|| resolve(root)).as_ref()
}
