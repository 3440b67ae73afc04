//! `--help` of every command, as snapshots (snapbox): one file per command
//! under `tests/snapshots/help/`, the command tree walked from the clap
//! definitions so that a new command gets a snapshot too. Update them with
//! `SNAPSHOTS=overwrite cargo test --test cli_help`.

use std::path::PathBuf;
use std::process::Command;

use clap::CommandFactory;
use snapbox::cmd::cargo_bin;
use snapbox::Data;

/// Every command path: `[]`, `["sync"]`, `["registry", "service", "add"]`, …
fn paths(cmd: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let mut p = prefix.clone();
        p.push(sub.get_name().to_string());
        paths(sub, p, out);
    }
}

#[test]
fn help_of_every_command_matches_its_snapshot() {
    let mut all = Vec::new();
    paths(&cargo_hsm::cli::Cli::command(), Vec::new(), &mut all);
    assert!(all.len() > 40, "the walk found {} commands", all.len());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help");
    let assert = snapbox::Assert::new().action_env(snapbox::assert::DEFAULT_ACTION_ENV);
    for p in &all {
        let out = Command::new(cargo_bin!("cargo-hsm"))
            .arg("hsm")
            .args(p)
            .arg("--help")
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        assert!(out.status.success(), "{p:?} --help failed");
        let name = if p.is_empty() {
            "cargo-hsm".to_string()
        } else {
            p.join("-")
        };
        let file = dir.join(format!("{name}.txt"));
        assert.eq(
            Data::from(String::from_utf8(out.stdout).unwrap()),
            Data::read_from(&file, None),
        );
    }
}
