//! The output conventions every command shares: with
//! `--message-format json` stdout holds exactly one document with `schema`
//! and `reason`; errors have one human style, without box glyphs or colour
//! unless asked; cargo's `CARGO_TERM_*` variables are honoured.

use std::path::{Path, PathBuf};

use snapbox::cmd::{cargo_bin, Command};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/rag-stack")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".venv" || name == ".hsm" || name == "target" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A fresh copy of the example, so that writing commands change nothing in the repo.
fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example(), dir.path());
    dir
}

fn hsm(root: &Path) -> Command {
    Command::new(cargo_bin!("cargo-hsm"))
        .arg("hsm")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env_remove("CARGO_TERM_COLOR")
        .env_remove("CARGO_TERM_QUIET")
        .env_remove("CARGO_TERM_VERBOSE")
        .env_remove("NO_COLOR")
}

/// Every JSON document on stdout.
fn documents(stdout: &[u8]) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter::<serde_json::Value>()
        .map(|d| d.expect("stdout holds only JSON"))
        .collect()
}

/// Data values never carry backticks (prose fields may quote with them).
fn no_backticks_in_data(v: &serde_json::Value, at: &str) {
    const PROSE: [&str; 7] = [
        "message", "help", "detail", "warnings", "expected", "found",
        // `selected_by[].reason`: why a component is selected, in words.
        "reason",
    ];
    match v {
        serde_json::Value::String(s) => assert!(!s.contains('`'), "{at}: {s}"),
        serde_json::Value::Array(a) => a.iter().for_each(|x| no_backticks_in_data(x, at)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                if !PROSE.contains(&k.as_str()) {
                    no_backticks_in_data(x, &format!("{at}.{k}"));
                }
            }
        }
        _ => {}
    }
}

#[test]
fn every_command_prints_one_document_with_schema_and_reason() {
    let sb = sandbox();
    let root = sb.path();
    let cases: &[(&[&str], &str)] = &[
        (&["list"], "plan"),
        (&["check"], "check"),
        (&["compose", "--check"], "compose-check"),
        (&["compose"], "compose"),
        (&["compose", "--check"], "compose-check"),
        (&["sync", "--dry-run"], "sync"),
        (&["registry", "list"], "registry"),
        (&["registry", "search", "vector"], "registry"),
        (&["registry", "show", "postgres"], "registry-entry"),
        (&["mode", "dev"], "edit"),
        (
            &["add", "--service", "extra-cache", "--image", "redis:7"],
            "edit",
        ),
        (&["remove", "extra-cache", "--purge"], "edit"),
        (&["update", "no-such-service"], "error"),
        (&["remove", "no-such-service"], "error"),
        (&["service", "add", "no-such-service"], "error"),
        (&["registry", "show", "no-such-entry"], "error"),
        // The example's uv service has no `uv.lock` before a sync.
        (&["export", "kubernetes"], "error"),
        (&["image", "build", "embedder"], "error"),
    ];
    for (args, reason) in cases {
        let out = hsm(root)
            .args(["--message-format", "json"])
            .args(*args)
            .output()
            .unwrap();
        let docs = documents(&out.stdout);
        assert_eq!(docs.len(), 1, "{args:?}: {docs:#?}");
        let d = &docs[0];
        assert_eq!(d["schema"], 1, "{args:?}");
        assert_eq!(d["reason"], *reason, "{args:?}: {d:#}");
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(
            keys[..2],
            ["schema", "reason"],
            "{args:?}: the envelope comes first"
        );
        no_backticks_in_data(d, &format!("{args:?}"));
        if *reason == "error" {
            assert_eq!(out.status.code(), d["exit_code"].as_i64().map(|c| c as i32));
            assert!(d["help"].is_string(), "{args:?}: {d:#}");
        }
    }
    let show = documents(
        &hsm(root)
            .args(["--message-format", "json", "registry", "show", "postgres"])
            .output()
            .unwrap()
            .stdout,
    );
    // Data, not TOML text.
    assert_eq!(show[0]["entry"]["sources"]["prod"]["type"], "docker-image");
    assert_eq!(
        show[0]["defined_in"]["file"],
        "hsm-registry/services/postgres.toml"
    );
}

#[test]
fn one_error_style_without_glyphs_or_colour_off_a_terminal() {
    let sb = sandbox();
    let root = sb.path();
    for args in [
        &["service", "add", "no-such-service"][..],
        &["registry", "show", "no-such-entry"][..],
    ] {
        let out = hsm(root).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains("\nhelp: "), "{args:?}: {err}");
        for glyph in ['×', '│', '╭', '\x1b'] {
            assert!(!err.contains(glyph), "{args:?}: {glyph:?} in {err}");
        }
        // Off a terminal nothing is wrapped: each message is one line.
        assert!(err
            .lines()
            .all(|l| !l.starts_with("  ") || l.starts_with("  |")));
    }
}

#[test]
fn cargo_term_color_and_quiet_are_honoured() {
    let sb = sandbox();
    let root = sb.path();
    let err = |envs: &[(&str, &str)], args: &[&str]| {
        let mut c = hsm(root).args(args);
        for (k, v) in envs {
            c = c.env(k, v);
        }
        let out = c.output().unwrap();
        String::from_utf8(out.stderr).unwrap()
    };
    let bad = ["service", "add", "no-such-service"];
    assert!(err(&[("CARGO_TERM_COLOR", "always")], &bad).contains("\x1b[1;31merror"));
    assert!(!err(&[("CARGO_TERM_COLOR", "never")], &bad).contains('\x1b'));
    // `--color` wins over the variable, as in cargo.
    assert!(!err(
        &[("CARGO_TERM_COLOR", "always")],
        &["--color", "never", "service", "add", "x"]
    )
    .contains('\x1b'));
    assert!(err(&[], &["compose"]).contains("docker-compose.hsm.yml"));
    assert_eq!(err(&[("CARGO_TERM_QUIET", "true")], &["compose"]), "");
    // Errors still show when quiet.
    assert!(err(&[("CARGO_TERM_QUIET", "true")], &bad).starts_with("error: "));
}

/// A bare workspace with the given `hsm.toml` and extra files.
fn workspace(manifest: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::write(dir.path().join("hsm.toml"), manifest).unwrap();
    for (p, text) in files {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn an_error_past_column_65535_is_exit_2_never_a_panic() {
    let ws = workspace(&format!("{}\n", "x".repeat(65_536)), &[]);
    for args in [
        &["list"][..],
        &["check"],
        &["sync"],
        &["sync", "--dry-run"],
        &["compose", "--check"],
        &["service", "add", "api"],
    ] {
        for json in [false, true] {
            let mut c = hsm(ws.path()).env("RUST_BACKTRACE", "0").args(args);
            if json {
                c = c.args(["--message-format", "json"]);
            }
            let out = c.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} json={json}: {err}");
            assert!(err.contains("hsm.toml:1:"), "{args:?}: {err}");
            assert!(err.len() < 1_000, "{args:?}: {} bytes of stderr", err.len());
            if json {
                let docs = documents(&out.stdout);
                assert_eq!(docs.len(), 1);
                assert_eq!(docs[0]["exit_code"], 2);
            }
        }
    }
}

#[test]
fn env_file_errors_show_no_secret() {
    let manifest = r#"
[services]
standalone = ["api"]

[registry.services.api]
env-file = ["config/api.env"]
sources.prod = { type = "local", path = "api" }
deployment-profiles.default = { runtime = "venv" }
"#;
    let ws = workspace(
        manifest,
        &[
            ("api/requirements.txt", ""),
            (
                "config/api.env",
                "A=1\nDB_PASSWORD=supersecret\nthis line is wrong hunter3\nAPI_KEY=hunter2\n",
            ),
        ],
    );
    let out = hsm(ws.path()).arg("list").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("config/api.env:3"), "{err}");
    for secret in ["supersecret", "hunter2", "hunter3"] {
        assert!(!err.contains(secret), "{secret} shown: {err}");
    }
}

#[test]
fn manifest_path_takes_cargo_toml_hsm_toml_or_their_directory() {
    let root = example();
    for p in [root.join("Cargo.toml"), root.join("hsm.toml"), root.clone()] {
        let out = Command::new(cargo_bin!("cargo-hsm"))
            .args(["hsm", "list", "--manifest-path"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("rag-stack ("));
    }
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(cargo_bin!("cargo-hsm"))
        .args(["hsm", "list", "--manifest-path"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no `Cargo.toml`") && err.contains("help: `--manifest-path` takes"),
        "{err}"
    );
}
