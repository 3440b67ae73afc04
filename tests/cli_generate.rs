//! Shell completions and man pages come from the clap definitions: the bash
//! script, sourced in a real bash, completes subcommands and flags; `man
//! --out-dir` writes one page per command.

use std::process::Command;

use snapbox::cmd::cargo_bin;

fn hsm(args: &[&str]) -> std::process::Output {
    Command::new(cargo_bin!("cargo-hsm"))
        .arg("hsm")
        .args(args)
        .output()
        .unwrap()
}

/// What bash completes for the words typed so far (the last one partial).
fn complete(script: &std::path::Path, words: &[&str]) -> String {
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        r#"source '{}'
fn=$(complete -p cargo-hsm | sed -E 's/.*-F ([^ ]+).*/\1/')
COMP_WORDS=({})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$fn" cargo-hsm "${{COMP_WORDS[$COMP_CWORD]}}" "${{COMP_WORDS[$((COMP_CWORD-1))]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script.display(),
        quoted.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &prog])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completion_completes_subcommands_and_their_flags() {
    let out = hsm(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("cargo-hsm.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let got = complete(&script, &["cargo-hsm", "sy"]);
    assert_eq!(got.lines().collect::<Vec<_>>(), ["sync"], "{got}");
    // Past a subcommand too (clap_complete's hyphenated-name bug).
    let got = complete(&script, &["cargo-hsm", "registry", "s"]);
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        ["show", "search", "service"],
        "{got}"
    );
    let got = complete(&script, &["cargo-hsm", "sync", "--fr"]);
    assert_eq!(got.trim(), "--frozen", "{got}");
}

#[test]
fn every_shell_gets_a_script() {
    for sh in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = hsm(&["completions", sh]);
        assert_eq!(out.status.code(), Some(0), "{sh}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("cargo-hsm") && text.contains("sync"), "{sh}");
    }
    assert_eq!(hsm(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = hsm(&["man", "--out-dir", out_dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "cargo-hsm.1",
        "cargo-hsm-sync.1",
        "cargo-hsm-registry-service-add.1",
        "cargo-hsm-completions.1",
    ] {
        let text = std::fs::read_to_string(out_dir.join(page)).unwrap();
        assert!(text.contains(".TH "), "{page}");
    }
    let sync = std::fs::read_to_string(out_dir.join("cargo-hsm-sync.1")).unwrap();
    assert!(sync.contains("frozen"));
    // Without --out-dir: the main page on stdout.
    let out = hsm(&["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH cargo-hsm 1"));
}
