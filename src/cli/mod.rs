//! The command-line front end: clap definitions, discovery of the workspace
//! with `cargo metadata`, and error rendering. Each command is a thin pair:
//! parse arguments, call one library function.

mod add;
mod check;
mod clean;
mod compose;
mod deploy;
mod edit;
mod generate;
mod list;
mod package;
mod registry;
pub mod shell;
mod sync;
mod up;
mod update;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::{Error, Result, EXIT_CONFIG, EXIT_OK};
use shell::{ColorChoice, MessageFormat, Shell, Verbosity};

/// The heading of the options every command takes.
const GLOBAL: &str = "Global Options";

#[derive(Debug, Parser)]
#[command(
    name = "cargo-hsm",
    version,
    about = "Materialize a Rust monorepo's Python libraries, isolated service environments and container services from one manifest",
    after_help = "Exit codes: 0 ok, 1 the command ran and found a problem, 2 bad usage or configuration."
)]
pub struct Cli {
    /// The workspace's `Cargo.toml`, the `hsm.toml` beside it, or their directory (default: found from the current directory)
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub manifest_path: Option<Utf8PathBuf>,
    /// No status output
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,
    /// More output
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Coloring
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN", help_heading = GLOBAL)]
    pub color: ColorChoice,
    /// Output format: human text, or JSON documents on stdout
    #[arg(long, global = true, value_enum, default_value_t = MessageFormat::Human, value_name = "FMT", help_heading = GLOBAL)]
    pub message_format: MessageFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the resolved libraries and services (the Plan)
    List(package::PackageArgs),
    /// Write the compose file of the container services (docker, podman)
    Compose(compose::ComposeArgs),
    /// Register (when new) and select a library or service in one step: `add requests@>=2.31`, `add --service redis --image redis:7-alpine`
    Add(add::AddArgs),
    /// Unselect a library or service; `--purge` also removes its registry entry
    Remove(add::RemoveArgs),
    // ---- init and the editing commands (issue 5) ----
    /// Create the manifest, the registry directory and `.gitignore` lines
    Init(edit::InitArgs),
    /// Select, unselect, switch or create services
    Service {
        #[command(subcommand)]
        cmd: edit::ServiceCmd,
    },
    /// Select, unselect, switch or create libraries
    Library {
        #[command(subcommand)]
        cmd: edit::LibraryCmd,
    },
    /// Switch every selected library and service to dev or prod
    Mode(edit::ModeArgs),
    /// Select or unselect groups and their options
    Group {
        #[command(subcommand)]
        cmd: edit::GroupCmd,
    },
    /// Show, search and edit the registry
    Registry {
        #[command(subcommand)]
        cmd: registry::RegistryCmd,
    },
    // ---- end of issue 5 commands ----
    /// Inspect what sync made: environments, git checkouts, compose and env files, hsm.lock
    Check(check::CheckArgs),
    /// Materialize the selection: git checkouts, service environments, libraries, hsm.lock
    Sync(sync::SyncArgs),
    /// Move branch refs to their tips and re-resolve the locks (all, or of the named services), then sync; shows old -> new
    Update(update::UpdateArgs),
    /// Remove what sync rebuilds: service environments, the clones hsm made (kept when they hold local work), the shared `.venv`, `.hsm/` caches
    Clean(clean::CleanArgs),
    /// Sync, then run the selected services (environments and containers, wired to each other) in the foreground
    Up(up::UpArgs),
    /// Stop the services `up` started (from any shell), dependents first; then `compose down`
    Down(up::DownArgs),
    /// List the services `up` started: state, pid or container id, uptime, ports
    Ps,
    /// Stop services and start them again, detached (as `down` + `up -d`)
    Restart(up::RestartArgs),
    /// Show the services' logs, merged with a `name |` prefix; `-f` follows them
    Logs(up::LogsArgs),
    /// Run a one-off command inside an environment service's own environment, with its env
    Run(up::RunArgs),
    /// The detached supervisor of `up -d` (started by `up -d` itself)
    #[command(name = "__supervise", hide = true)]
    Supervise(up::SuperviseArgs),
    /// Render the selection for a cluster engine: `export kubernetes`
    Export {
        #[command(subcommand)]
        cmd: deploy::ExportCmd,
    },
    /// Build OCI images of the selected services: `image build`
    Image {
        #[command(subcommand)]
        cmd: deploy::ImageCmd,
    },
    /// Print the shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(generate::CompletionsArgs),
    /// Print the man page, or write one page per command with `--out-dir`
    Man(generate::ManArgs),
}

/// Entry point of the binary; returns the exit code.
pub fn main() -> i32 {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `cargo hsm …` runs `cargo-hsm hsm …`.
    if args.get(1).is_some_and(|a| a == "hsm") {
        args.remove(1);
    }
    // Shown as `cargo hsm` in usage lines, as cargo runs it.
    let parsed = Cli::command()
        .bin_name("cargo hsm")
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    // The flags, else cargo's `CARGO_TERM_QUIET` / `CARGO_TERM_VERBOSE`.
    let env_true = |k: &str| std::env::var(k).is_ok_and(|v| v == "true");
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose > 0 {
        Verbosity::Verbose
    } else if env_true("CARGO_TERM_QUIET") {
        Verbosity::Quiet
    } else if env_true("CARGO_TERM_VERBOSE") {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let shell = Shell::new(verbosity, cli.color, cli.message_format);
    // `-vv`: the tools' own output as it streams (never into a JSON stdout).
    crate::materialize::runtimes::stream_tool_output(
        cli.verbose > 1 && cli.message_format == MessageFormat::Human,
    );
    match run(&cli, &shell) {
        Ok(code) => code,
        Err(e) => {
            report(&shell, &e);
            e.exit_code()
        }
    }
}

fn run(cli: &Cli, shell: &Shell) -> Result<i32> {
    match &cli.command {
        // Need no workspace.
        Command::Completions(a) => generate::completions(shell, a),
        Command::Man(a) => generate::man(shell, a),
        Command::Check(p) => check::run(shell, &workspace_root(cli.manifest_path.as_deref())?, p),
        Command::List(p) => {
            let root = workspace_root(cli.manifest_path.as_deref())?;
            list::run(shell, &root, p)
        }
        Command::Compose(args) => {
            let root = workspace_root(cli.manifest_path.as_deref())?;
            compose::run(shell, &root, args)
        }
        Command::Add(a) => add::run_add(shell, &workspace_root(cli.manifest_path.as_deref())?, a),
        Command::Remove(a) => {
            add::run_remove(shell, &workspace_root(cli.manifest_path.as_deref())?, a)
        }
        // ---- init and the editing commands (issue 5) ----
        Command::Init(a) => {
            edit::run_init(shell, &workspace_root(cli.manifest_path.as_deref())?, a)
        }
        Command::Service { cmd } => {
            edit::run_service(shell, &workspace_root(cli.manifest_path.as_deref())?, cmd)
        }
        Command::Library { cmd } => {
            edit::run_library(shell, &workspace_root(cli.manifest_path.as_deref())?, cmd)
        }
        Command::Mode(a) => {
            edit::run_mode(shell, &workspace_root(cli.manifest_path.as_deref())?, a)
        }
        Command::Group { cmd } => {
            edit::run_group(shell, &workspace_root(cli.manifest_path.as_deref())?, cmd)
        }
        Command::Registry { cmd } => {
            registry::run_registry(shell, &workspace_root(cli.manifest_path.as_deref())?, cmd)
        } // ---- end of issue 5 commands ----
        Command::Sync(args) => {
            let root = workspace_root(cli.manifest_path.as_deref())?;
            sync::run(shell, &root, args)
        }
        Command::Update(args) => {
            update::run(shell, &workspace_root(cli.manifest_path.as_deref())?, args)
        }
        Command::Clean(args) => {
            clean::run(shell, &workspace_root(cli.manifest_path.as_deref())?, args)
        }
        Command::Up(args) => {
            let root = workspace_root(cli.manifest_path.as_deref())?;
            up::run(shell, &root, args)
        }
        Command::Down(args) => {
            let root = workspace_root(cli.manifest_path.as_deref())?;
            up::down(shell, &root, args)
        }
        Command::Ps => up::ps(shell, &workspace_root(cli.manifest_path.as_deref())?),
        Command::Restart(args) => {
            up::restart(shell, &workspace_root(cli.manifest_path.as_deref())?, args)
        }
        Command::Logs(args) => {
            up::logs(shell, &workspace_root(cli.manifest_path.as_deref())?, args)
        }
        Command::Run(args) => {
            up::run_one_off(shell, &workspace_root(cli.manifest_path.as_deref())?, args)
        }
        Command::Export { cmd } => {
            deploy::run_export(shell, &workspace_root(cli.manifest_path.as_deref())?, cmd)
        }
        Command::Image { cmd } => {
            deploy::run_image(shell, &workspace_root(cli.manifest_path.as_deref())?, cmd)
        }
        Command::Supervise(args) => {
            up::supervise(&workspace_root(cli.manifest_path.as_deref())?, args)
        }
    }
}

/// Finds the workspace root: without a process when the nearest
/// `Cargo.toml` is a workspace root itself, else with `cargo metadata`, as
/// cargo itself would.
pub fn workspace_root(manifest_path: Option<&Utf8Path>) -> Result<Utf8PathBuf> {
    let cargo_toml = manifest_path.map(cargo_toml_of).transpose()?;
    let manifest_path = cargo_toml.as_deref();
    if let Some(root) = workspace_root_fast(manifest_path) {
        return Ok(root);
    }
    let mut cmd = cargo_metadata::MetadataCommand::new();
    cmd.no_deps();
    if let Some(p) = manifest_path {
        cmd.manifest_path(p);
    }
    match cmd.exec() {
        Ok(md) => Ok(md.workspace_root),
        Err(cargo_metadata::Error::CargoMetadata { stderr }) => Err(Error::config(
            "`cargo metadata` could not find or read the Cargo workspace",
        )
        .with_detail(stderr.trim_end().to_string())
        .with_help("run inside a Cargo workspace, or pass `--manifest-path path/to/Cargo.toml`")),
        Err(e) => Err(Error::config(format!("`cargo metadata` failed: {e}"))),
    }
}

/// What `--manifest-path` names, as the root `Cargo.toml` to start from:
/// a `Cargo.toml`, the `hsm.toml` beside one, or a directory holding one.
fn cargo_toml_of(p: &Utf8Path) -> Result<Utf8PathBuf> {
    let help =
        "`--manifest-path` takes a `Cargo.toml`, the `hsm.toml` beside it, or their directory";
    let candidate = if p.is_dir() {
        p.join("Cargo.toml")
    } else if p.file_name() == Some("hsm.toml") {
        if !p.is_file() {
            return Err(
                Error::config(format!("manifest path `{p}` does not exist")).with_help(help)
            );
        }
        p.parent()
            .map(|d| {
                if d.as_str().is_empty() {
                    Utf8Path::new(".")
                } else {
                    d
                }
            })
            .unwrap_or(Utf8Path::new("."))
            .join("Cargo.toml")
    } else {
        p.to_owned()
    };
    if !candidate.is_file() {
        let what = if candidate == p {
            format!("manifest path `{p}` does not exist")
        } else {
            format!("manifest path `{p}` has no `Cargo.toml` beside it (looked for `{candidate}`)")
        };
        return Err(Error::config(what).with_help(help));
    }
    Ok(candidate)
}

/// The nearest `Cargo.toml` (`--manifest-path`, or the first one found
/// from the current directory up) when it has a `[workspace]` table: such a
/// manifest is always its own workspace root. `None` for anything else (a
/// member package, whose root cargo finds by its own rules; an unreadable
/// manifest, which `cargo metadata` then reports). Saves `cargo metadata`'s
/// ~15 ms on every command.
fn workspace_root_fast(manifest_path: Option<&Utf8Path>) -> Option<Utf8PathBuf> {
    let cwd = Utf8PathBuf::from_path_buf(std::env::current_dir().ok()?).ok()?;
    let manifest = match manifest_path {
        Some(p) => crate::paths::normalize(&cwd.join(p)),
        None => cwd
            .ancestors()
            .map(|d| d.join("Cargo.toml"))
            .find(|p| p.is_file())?,
    };
    if manifest.file_name() != Some("Cargo.toml") {
        return None;
    }
    let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).ok()?).ok()?;
    doc.get("workspace")
        .is_some_and(|w| w.is_table())
        .then(|| manifest.parent().map(Utf8Path::to_owned))
        .flatten()
}

/// Renders an error: on stderr in the one human style, and with
/// `--message-format json` also as the command's JSON document on stdout
/// (unless the command printed its document already).
fn report(shell: &Shell, e: &Error) {
    if shell.format == MessageFormat::Json && !shell.printed() {
        shell.document("error", &error_json(e));
    }
    shell.error(e);
}

/// The JSON shape of an error, for `--message-format json`: the whole
/// error (its help, the tool output or list under it, every place
/// involved), so that nothing the human rendering shows is lost.
pub fn error_json(e: &Error) -> serde_json::Value {
    fn place(d: &crate::error::ConfigDiagnostic) -> serde_json::Value {
        serde_json::json!({
            "message": d.message,
            "file": d.file,
            "line": d.line,
            "column": d.column,
            "key_path": d.key_path.as_ref().map(|k| k.to_string()),
        })
    }
    let mut v = serde_json::json!({
        "exit_code": e.exit_code(),
        "message": e.message(),
    });
    match e {
        Error::Config(d) => {
            v["file"] = serde_json::json!(d.file);
            v["line"] = serde_json::json!(d.line);
            v["column"] = serde_json::json!(d.column);
            v["key_path"] = serde_json::json!(d.key_path.as_ref().map(|k| k.to_string()));
            v["help"] = serde_json::json!(d.help);
            v["related"] = d.related().iter().map(place).collect();
        }
        Error::Failed(f) => {
            v["detail"] = serde_json::json!(f.detail.as_deref().map(str::trim_end));
            v["help"] = serde_json::json!(f.help);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every command, with the path of commands to it,
    /// that has no description.
    fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if matches!(id, "help" | "version") || a.is_hide_set() {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            if sub.get_about().is_none() {
                out.push(format!("{path} {} (the command)", sub.get_name()));
            }
            undescribed(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn the_command_tree_is_valid() {
        // clap's own checks (unique short flags, global ones included).
        super::Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_argument_has_a_description() {
        let mut missing = Vec::new();
        undescribed(&super::Cli::command(), "cargo hsm", &mut missing);
        assert!(
            missing.is_empty(),
            "no description:\n{}",
            missing.join("\n")
        );
    }
}
