//! `cargo hsm completions SHELL` and `cargo hsm man`: shell completions
//! and man pages generated from the same clap definitions as the parser,
//! so they can never disagree with what the command accepts.

use camino::Utf8PathBuf;
use clap::{Args, CommandFactory};
use clap_complete::Shell as CompletionShell;

use super::shell::Shell;
use crate::error::{Error, Result, EXIT_OK};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (`cargo-hsm.1`, `cargo-hsm-sync.1`, …) into DIR instead of printing the main page
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<Utf8PathBuf>,
}

/// The command tree as the binary knows it: `cargo-hsm` (the name a shell
/// sees), which also takes the `hsm` that cargo passes.
fn command() -> clap::Command {
    super::Cli::command()
}

pub fn completions(shell: &Shell, args: &CompletionsArgs) -> Result<i32> {
    shell.out(&completion_script(args.shell));
    Ok(EXIT_OK)
}

/// The script for `cargo-hsm`. clap_complete's bash script never completes
/// past a subcommand when the binary's name has a hyphen (the dispatch loop
/// and the case arms escape it differently, clap-rs/clap#6421), so bash's is
/// generated for `cargo_hsm` and then registered for `cargo-hsm`.
pub fn completion_script(sh: CompletionShell) -> String {
    let name = if sh == CompletionShell::Bash {
        "cargo_hsm"
    } else {
        "cargo-hsm"
    };
    let mut out = Vec::new();
    clap_complete::generate(sh, &mut command(), name, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    if sh != CompletionShell::Bash {
        return text;
    }
    text.lines()
        .map(|l| match l.strip_suffix(" cargo_hsm") {
            Some(head) if l.trim_start().starts_with("complete ") => format!("{head} cargo-hsm"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub fn man(shell: &Shell, args: &ManArgs) -> Result<i32> {
    let cmd = command();
    let Some(dir) = &args.out_dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| Error::failed(format!("cannot render the man page: {e}")))?;
        shell.out(&String::from_utf8_lossy(&out));
        return Ok(EXIT_OK);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::failed(format!("cannot create `{dir}`: {e}")))?;
    let mut pages = Vec::new();
    collect(cmd, "cargo-hsm", &mut pages);
    for (name, page) in &pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(page.clone())
            .render(&mut out)
            .map_err(|e| Error::failed(format!("cannot render the man page of `{name}`: {e}")))?;
        let path = dir.join(format!("{name}.1"));
        crate::fs::write_if_changed(&path, &out, None)
            .map_err(|e| Error::failed(format!("cannot write `{path}`: {e}")))?;
    }
    shell.status("Generated", format!("{} man pages in `{dir}`", pages.len()));
    Ok(EXIT_OK)
}

/// Every command with its page name (`cargo-hsm-registry-service-add`).
fn collect(cmd: clap::Command, name: &str, out: &mut Vec<(String, clap::Command)>) {
    let cmd = cmd.name(name.to_string());
    for sub in cmd.get_subcommands() {
        if sub.get_name() != "help" {
            let sub_name = format!("{name}-{}", sub.get_name());
            collect(sub.clone(), &sub_name, out);
        }
    }
    out.push((name.to_string(), cmd));
}
