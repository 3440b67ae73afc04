//! Runtime adapters: one small trait, one file per runtime. Adding a runtime
//! is one new file and one arm in [`adapter`]. Besides installing, the trait
//! answers every question another stage asks of a runtime: where its
//! environment lives (`clean`, the journal), how a process runs in it (`up`,
//! `run`), what `service init` writes, which files in a checkout its tools
//! make (never local work), and what a service's `dependencies` may say.

mod node;
mod pixi;
mod uv;
mod venv;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::fs::FileTxn;
use crate::lock::LockedService;
use crate::manifest::model::RuntimeType;
use crate::plan::PlannedService;

pub use crate::tool::{find_uv, Uv};
pub use node::NodeAdapter;
pub use pixi::PixiAdapter;
pub use uv::{mode_flags as uv_mode_flags, UvAdapter};
pub use venv::VenvAdapter;

use super::fingerprint::Hasher;
use super::SyncOptions;

/// Everything an adapter may read or write while it syncs one service.
pub struct RuntimeCtx<'a> {
    /// Absolute.
    pub workspace_root: &'a Utf8Path,
    pub service: &'a PlannedService,
    pub opts: &'a SyncOptions,
    /// Every file the adapter writes, or lets its tool write, goes through here.
    pub txn: &'a mut FileTxn,
    /// What the previous sync recorded for this service.
    pub previous: Option<&'a LockedService>,
    /// The commit a git service's checkout sits at once the git step ran
    /// (in a dry run: the one it would check out; `None` when that takes a
    /// fetch first, or for another source).
    pub commit: Option<&'a str>,
    /// hsm put build inputs into the checkout that the tool does not watch
    /// (a kept `Cargo.lock`): the service's project must be built again.
    pub rebuild: bool,
    /// The project builds a Rust crate whose `Cargo.lock` must stay as it
    /// is (`--locked`, `--frozen`): see [`build_env`].
    pub locked_crate: bool,
    /// Edits of the service's files made before the tool ran (e.g. its
    /// `pyproject.toml`); an adapter that sees one never reports `Fresh`.
    pub edited: bool,
    /// `cargo hsm update`: the tool re-resolves the service's lock
    /// (`uv sync --upgrade`).
    pub upgrade: bool,
}

/// A file an adapter wants changed before its tool runs.
#[derive(Debug, Clone)]
pub struct FileEdit {
    /// Absolute.
    pub path: Utf8PathBuf,
    pub contents: String,
    pub warnings: Vec<String>,
}

/// What happened to one service.
#[derive(Debug, Clone)]
pub struct RuntimeOutcome {
    /// The command lines that ran, for `-v`.
    pub commands: Vec<String>,
    /// The contents of [`pins_path`] after the sync (see
    /// [`RuntimeAdapter::pins_file`]), which sync writes.
    pub pins: Option<Vec<u8>>,
}

/// How a process of an environment service runs inside its environment.
#[derive(Debug, Clone)]
pub struct RunEnv {
    /// Put first on `PATH` (`.venv/bin`, `node_modules/.bin`).
    pub bin: Utf8PathBuf,
    /// What must exist, else the service was never synced.
    pub required: Option<Utf8PathBuf>,
    /// Variables set for the process (`VIRTUAL_ENV`).
    pub vars: Vec<(String, String)>,
}

/// What `service init` creates for a runtime.
#[derive(Debug, Clone, Default)]
pub struct InitTemplate {
    /// The runtime's own tool, run first with the new directory last on its
    /// command line (`uv init --no-workspace …`), and the file it must make.
    pub tool: Option<(&'static str, Vec<String>, &'static str)>,
    /// Files written into the new directory (relative path, text).
    pub files: Vec<(String, String)>,
    /// The `command` of its default profile.
    pub command: Vec<String>,
}

/// A Python package `module` (`__init__.py`, `__main__.py`) for a new service.
fn python_module(vars: &[(&str, &str)], module: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("{module}/__init__.py"),
            fill(include_str!("../../../templates/python/__init__.py"), vars),
        ),
        (
            format!("{module}/__main__.py"),
            fill(include_str!("../../../templates/python/__main__.py"), vars),
        ),
    ]
}

/// `template` with each `{key}` replaced by its value.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// A `python` virtual environment at `.venv` (uv, venv): its `bin` first
/// on `PATH`, `VIRTUAL_ENV` set, as `activate` does.
fn venv_run_env(target: &Utf8Path) -> RunEnv {
    let venv = target.join(".venv");
    RunEnv {
        bin: venv.join("bin"),
        required: Some(venv.join("bin")),
        vars: vec![("VIRTUAL_ENV".into(), venv.to_string())],
    }
}

/// Why the `.venv` at `target` is half-made (see [`RuntimeAdapter::half_made`]);
/// `pip`: the venv runtime's, which needs pip in it. One marked unfinished
/// is whole: the runtime runs over it again.
fn venv_half_made(target: &Utf8Path, pip: bool) -> Option<String> {
    let venv = target.join(".venv");
    if !venv.is_dir() || venv.join(crate::python::venv::INCOMPLETE_MARKER).exists() {
        return None;
    }
    crate::python::venv::broken(&venv, pip)
}

/// A service's `dependencies` entry that its runtime cannot install: what
/// is wrong, and what to write instead.
pub struct BadDependency {
    pub why: String,
    pub help: String,
}

/// A Python requirement (uv, venv): a registry library or PEP 508.
fn check_requirement(dep: &str, is_library: bool) -> std::result::Result<(), BadDependency> {
    if is_library {
        return Ok(());
    }
    crate::python::requirements::parse_requirement(dep)
        .map(|_| ())
        .map_err(|why| BadDependency {
            why: format!(
                "`{dep}` is neither a registry library nor a valid requirement (PEP 508): {}",
                why.lines().next().unwrap_or("")
            ),
            help: "write a requirement such as `numpy>=2` or `requests[socks]==2.32.3`, or the name of a registry library".into(),
        })
}

/// Materializes one service's isolated environment in its target path.
pub trait RuntimeAdapter {
    /// The executable this runtime needs on `PATH`.
    fn tool(&self) -> &'static str;
    /// How to install [`RuntimeAdapter::tool`].
    fn install_hint(&self) -> &'static str;
    /// The service's own lock file (relative to the target path), if the runtime has one.
    fn lockfile(&self, target: &Utf8Path) -> Option<Utf8PathBuf>;
    /// The lock file hsm keeps in `hsm.locks/<service>/` for a git-sourced
    /// service whose upstream does not commit it (relative to the target path).
    fn committed_lockfile(&self, _target: &Utf8Path) -> Option<Utf8PathBuf> {
        None
    }
    /// The environment directory its tool creates in the target path:
    /// what `clean` removes and what the journal watches.
    fn env_dir(&self, target: &Utf8Path) -> Utf8PathBuf {
        target.join(".venv")
    }
    /// Why the environment at `target` is half-made (a killed tool left
    /// it), so that sync removes it first; `None` when it is whole or absent.
    fn half_made(&self, _target: &Utf8Path) -> Option<String> {
        None
    }
    /// How `up` and `run` start a process in the environment.
    fn run_env(&self, target: &Utf8Path) -> RunEnv {
        venv_run_env(target)
    }
    /// A command run through the runtime's own tool (`pixi run`), as
    /// program and arguments; `None` to run it directly.
    fn wrap_command(
        &self,
        _service: &str,
        _target: &Utf8Path,
        _command: &[String],
    ) -> Result<Option<(Utf8PathBuf, Vec<String>)>> {
        Ok(None)
    }
    /// What `service init NAME --runtime <this>` creates; `module` is the
    /// name as a Python module (`my_svc`).
    fn init_template(&self, name: &str, module: &str) -> InitTemplate;
    /// The files its tools make in a git checkout: never local work.
    fn artifacts(&self) -> &'static crate::git::ArtifactPatterns {
        &crate::git::PYTHON_ARTIFACTS
    }
    /// Whether `dep`, an entry of the service's `dependencies`, is
    /// something this runtime installs; `is_library` when it names a
    /// registry library (a Python package of the shared project).
    fn check_dependency(
        &self,
        _dep: &str,
        _is_library: bool,
    ) -> std::result::Result<(), BadDependency> {
        Ok(())
    }
    /// The service's manifest that hsm edits (its `pyproject.toml`): in a
    /// git checkout, its recorded hash tells a later sync that the edit is
    /// hsm's, not the user's.
    fn edited_manifest(&self) -> Option<&'static str> {
        None
    }
    /// The entries hsm owns in the service's manifest after this sync,
    /// where that file cannot record them itself (`package.json`: JSON has
    /// no comments), for `hsm.lock` to keep; read before [`RuntimeAdapter::edits`]
    /// are written. `None` for a runtime whose manifest records its own
    /// (`[tool.hsm]` in `pyproject.toml`).
    fn owned_entries(
        &self,
        _ctx: &RuntimeCtx<'_>,
        _target: &Utf8Path,
    ) -> Result<Option<Vec<String>>> {
        Ok(None)
    }
    /// The file of exact pins (`name==version`) that the runtime keeps in
    /// `hsm.locks/<service>/` for a git-sourced service, when its tool has
    /// no lock file of its own: what it installed, so that `--locked` and
    /// `--frozen` install the same set elsewhere although the upstream
    /// pins nothing.
    fn pins_file(&self) -> Option<&'static str> {
        None
    }
    /// Edits of the service's files that sync makes before the tool runs.
    fn edits(&self, _ctx: &RuntimeCtx<'_>, _target: &Utf8Path) -> Result<Vec<FileEdit>> {
        Ok(Vec::new())
    }
    /// The command sync would run, for `--dry-run`.
    fn describe(&self, ctx: &RuntimeCtx<'_>, target: &Utf8Path) -> String;
    /// Whether the environment at `target` already matches its inputs, so
    /// that sync can report `Fresh` and skip [`RuntimeAdapter::sync`].
    fn is_fresh(&self, _ctx: &RuntimeCtx<'_>, _target: &Utf8Path) -> Result<bool> {
        Ok(false)
    }
    /// For `--dry-run`, when [`RuntimeAdapter::sync`] is due: whether the
    /// tool will rewrite the service's lock file (which changes `hsm.lock`).
    fn lockfile_would_change(&self, _ctx: &RuntimeCtx<'_>, _target: &Utf8Path) -> Result<bool> {
        Ok(false)
    }
    /// Feeds `h` the service's inputs and its environment's state (see
    /// [`crate::materialize::fingerprint`]): reads only, spawns nothing.
    fn fingerprint(&self, h: &mut Hasher, target: &Utf8Path) {
        for f in [
            "pyproject.toml",
            "uv.lock",
            "requirements.txt",
            ".python-version",
        ] {
            h.file(&target.join(f));
        }
        h.venv(&target.join(".venv"));
    }
    /// Creates or updates the environment at `target` (absolute).
    fn sync(&self, ctx: &mut RuntimeCtx<'_>, target: &Utf8Path) -> Result<RuntimeOutcome>;
}

/// The adapter of an environment runtime; `None` for container runtimes.
pub fn adapter(runtime: RuntimeType) -> Option<Box<dyn RuntimeAdapter>> {
    match runtime {
        RuntimeType::Uv => Some(Box::new(UvAdapter)),
        RuntimeType::Venv => Some(Box::new(VenvAdapter)),
        RuntimeType::Pixi => Some(Box::new(PixiAdapter)),
        RuntimeType::Node => Some(Box::new(NodeAdapter)),
        RuntimeType::Docker | RuntimeType::Podman => None,
    }
}

/// The files the tools of `sv`'s runtime make in its checkout (see
/// [`RuntimeAdapter::artifacts`]); a container service's build context
/// keeps the Python ones.
pub fn artifacts_of(sv: &PlannedService) -> &'static crate::git::ArtifactPatterns {
    sv.runtime()
        .and_then(adapter)
        .map_or(&crate::git::PYTHON_ARTIFACTS, |a| a.artifacts())
}

/// `hsm.locks/<service>/<pins>` (relative to the workspace root) for a
/// git-sourced service whose runtime keeps pins (see
/// [`RuntimeAdapter::pins_file`]); `None` for every other service.
pub fn pins_path(sv: &PlannedService) -> Option<Utf8PathBuf> {
    sv.checkout_path.as_ref()?;
    let file = adapter(sv.runtime()?)?.pins_file()?;
    Some(crate::lock::committed_lock(&sv.name, Utf8Path::new(file)))
}

/// maturin's variable for the arguments of its PEP 517 build: the
/// service's own value, else the user's.
const MATURIN_ARGS: &str = "MATURIN_PEP517_ARGS";

/// `env` (a service's resolved environment) for its runtime's tools: when
/// its project builds a Rust crate whose `Cargo.lock` must stay as it is,
/// maturin's build arguments gain `--locked`, so that cargo refuses to
/// change it. cargo's `--locked` also for hsm's `--frozen`: cargo's
/// `--frozen` would forbid the network as well, which hsm's does not.
pub fn build_env(ctx: &RuntimeCtx<'_>, mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    if !ctx.locked_crate {
        return env;
    }
    let own = env.iter().position(|(k, _)| k == MATURIN_ARGS);
    let base = match own {
        Some(i) => env.remove(i).1,
        None => std::env::var(MATURIN_ARGS).unwrap_or_default(),
    };
    let args = if base.split_whitespace().any(|a| a == "--locked") {
        base
    } else {
        format!("{base} --locked").trim_start().to_string()
    };
    env.push((MATURIN_ARGS.to_string(), args));
    env
}

/// Whether `uv sync` in the project at `dir` would rewrite its `uv.lock`:
/// `uv lock --check`, which reads and resolves but writes nothing. Never
/// with `--frozen`, which does not lock.
pub fn uv_lock_would_change(dir: &Utf8Path, opts: &SyncOptions) -> bool {
    if opts.frozen {
        return false;
    }
    if !dir.join("uv.lock").is_file() {
        return true;
    }
    let Ok(uv) = find_tool("uv", "", "") else {
        return true;
    };
    let mut args = vec!["lock".to_string(), "--check".to_string()];
    if opts.offline {
        args.push("--offline".into());
    }
    run_tool("the dry run", &uv, &args, dir, false).map_or(true, |o| o.status != 0)
}

/// Finds `tool` on `PATH`, or says which service needs it and how to get it.
pub fn find_tool(tool: &str, service: &str, hint: &str) -> Result<Utf8PathBuf> {
    let path = which::which(tool).map_err(|_| {
        Error::failed(format!(
            "service `{service}` needs `{tool}`, which was not found on `PATH`"
        ))
        .with_help(hint.to_string())
    })?;
    Utf8PathBuf::from_path_buf(path).map_err(|p| {
        Error::failed(format!(
            "the path of `{tool}` is not UTF-8: {}",
            p.display()
        ))
    })
}

pub use crate::tool::LEAKY_ENV;

/// A finished child process.
pub struct ToolOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args…` in `dir` without the leaky variables; the error of
/// a failure names `who` (e.g. "service `embedder`"), the full command line
/// and its stderr.
pub fn run_tool(
    who: &str,
    program: &Utf8Path,
    args: &[String],
    dir: &Utf8Path,
    check: bool,
) -> Result<ToolOutput> {
    run_tool_env(who, program, args, dir, check, &[], &[])
}

/// [`run_tool`] with `env` (a service's resolved environment) added; the
/// leaky variables stay removed even when `env` sets them, and only `own`
/// (hsm's own choices, e.g. `UV_PROJECT_ENVIRONMENT` for a workspace
/// member) may set them.
pub fn run_tool_env(
    who: &str,
    program: &Utf8Path,
    args: &[String],
    dir: &Utf8Path,
    check: bool,
    env: &[(String, String)],
    own: &[(&str, &str)],
) -> Result<ToolOutput> {
    let streaming = check && STREAM_OUTPUT.load(std::sync::atomic::Ordering::Relaxed);
    let mut expr = duct::cmd(program.as_std_path(), args).dir(dir.as_std_path());
    expr = if streaming {
        // `-vv`: both streams, merged, read line by line below.
        expr.stderr_to_stdout()
    } else {
        expr.stdout_capture().stderr_capture()
    };
    let mut expr = expr.stdin_null().unchecked().before_spawn(|cmd| {
        super::interrupt::prepare_child(cmd);
        Ok(())
    });
    // duct applies the outermost (last) call first: the leaky variables are
    // removed, then the service's env is set, then hsm's own choices.
    for (k, v) in own {
        expr = expr.env(k, v);
    }
    for (k, v) in env {
        if !LEAKY_ENV.contains(&k.as_str()) {
            expr = expr.env(k, v);
        }
    }
    for k in LEAKY_ENV {
        expr = expr.env_remove(k);
    }
    let line = command_line(program, args);
    let cannot = |e: std::io::Error| Error::failed(format!("cannot run `{line}` for {who}: {e}"));
    super::interrupt::check()?;
    super::interrupt::before_tool()?;
    if streaming {
        return stream(expr, who, &line, dir, program);
    }
    let handle = expr.start().map_err(cannot)?;
    let name = program.file_name().unwrap_or(program.as_str());
    let registered = handle
        .pids()
        .first()
        .map(|&pid| super::interrupt::register_child(pid, program.as_str()));
    super::interrupt::test_point(&format!("spawn:{name}"));
    let out = handle.into_output().map_err(cannot)?;
    drop(registered);
    // A tool stopped by Ctrl-C failed because of it, not on its own.
    super::interrupt::check()?;
    let status = out.status.code().unwrap_or(-1);
    let res = ToolOutput {
        status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if check && status != 0 {
        let mut detail = res.stderr.trim_end().to_string();
        if detail.is_empty() {
            detail = res.stdout.trim_end().to_string();
        }
        let e = Error::failed(format!(
            "`{line}` failed for {who} (exit code {status}, in `{dir}`)"
        ))
        .with_detail(detail);
        return Err(match disk_full(dir, &res) {
            Some(why) => e.with_help(why),
            None => e,
        });
    }
    Ok(res)
}

/// Below this, a file system counts as full: a tool that failed there
/// most likely failed for want of space.
const NEARLY_FULL: u64 = 1 << 20;

/// When a tool failed in `dir` on a full disk: its words say so (`No space
/// left on device`), or they do not (`python3 -m venv` hides ensurepip's)
/// and the file system it wrote to has next to nothing free. The help then
/// says what will fix it, which a new sync alone will not.
fn disk_full(dir: &Utf8Path, out: &ToolOutput) -> Option<String> {
    let said = [&out.stderr, &out.stdout]
        .iter()
        .any(|t| t.contains("No space left on device") || t.contains("Errno 28"));
    let free = free_bytes(dir);
    if !said && free.is_none_or(|f| f >= NEARLY_FULL) {
        return None;
    }
    let left = free.map_or(String::new(), |f| format!(" ({} KiB free)", f / 1024));
    Some(format!(
        "the disk holding `{dir}` is full{left}: free some space, then run `cargo hsm sync` again"
    ))
}

/// The bytes an unprivileged process may still write on `dir`'s file system.
#[cfg(unix)]
fn free_bytes(dir: &Utf8Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_str()).ok()?;
    // SAFETY: `s` is plain data that `statvfs` fills in when it returns 0.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some(s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Utf8Path) -> Option<u64> {
    None
}

/// `-vv`: the tools' own output is shown as it streams.
static STREAM_OUTPUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Shows (`true`) the output of the tools a sync runs as it comes, each
/// line after the component's name, as `cargo -vv` shows build scripts'.
pub fn stream_tool_output(on: bool) {
    STREAM_OUTPUT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// [`run_tool_env`] under `-vv`: each line of the merged output goes to
/// stderr as it comes, and is kept for the error when the tool fails.
fn stream(
    expr: duct::Expression,
    who: &str,
    line: &str,
    dir: &Utf8Path,
    program: &Utf8Path,
) -> Result<ToolOutput> {
    use std::io::{BufRead, Write};
    let cannot = |e: std::io::Error| Error::failed(format!("cannot run `{line}` for {who}: {e}"));
    let reader = expr.reader().map_err(cannot)?;
    let registered = reader
        .pids()
        .first()
        .map(|&pid| super::interrupt::register_child(pid, program.as_str()));
    let mut all = String::new();
    let mut lines = std::io::BufReader::new(&reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                let l = String::from_utf8_lossy(&buf);
                let _ = write!(std::io::stderr().lock(), "       [{who}] {l}");
                if !l.ends_with('\n') {
                    let _ = writeln!(std::io::stderr().lock());
                }
                all.push_str(&l);
            }
            Err(e) => return Err(cannot(e)),
        }
    }
    let status = match reader.try_wait() {
        Ok(Some(out)) => out.status.code().unwrap_or(-1),
        Ok(None) => -1,
        Err(e) => return Err(cannot(e)),
    };
    drop(registered);
    super::interrupt::check()?;
    if status != 0 {
        return Err(Error::failed(format!(
            "`{line}` failed for {who} (exit code {status}, in `{dir}`)"
        ))
        .with_detail(all.trim_end().to_string()));
    }
    Ok(ToolOutput {
        status,
        stdout: all,
        stderr: String::new(),
    })
}

/// A command line as a user would type it.
pub fn command_line(program: &Utf8Path, args: &[String]) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,%".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let name = program.file_name().unwrap_or(program.as_str());
    let mut s = quote(name);
    for a in args {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    fn service_env_reaches_the_tool_but_leaky_variables_do_not() {
        let sh = Utf8PathBuf::from("/bin/sh");
        let args = vec![
            "-c".to_string(),
            "echo \"$VIRTUAL_ENV:$UV_PROJECT_ENVIRONMENT:$HSM_T_FOO\"".to_string(),
        ];
        let env = vec![
            ("VIRTUAL_ENV".to_string(), "/elsewhere".to_string()),
            ("HSM_T_FOO".to_string(), "1".to_string()),
        ];
        let out = run_tool_env(
            "test",
            &sh,
            &args,
            Utf8Path::new("/"),
            true,
            &env,
            &[("UV_PROJECT_ENVIRONMENT", "/v")],
        )
        .unwrap();
        assert_eq!(out.stdout.trim(), ":/v:1");
    }
}
