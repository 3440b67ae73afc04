//! Sandboxes for the init and editing tests: a temp workspace with a
//! `Cargo.toml`, the binary run with `--manifest-path`, file snapshots
//! compared byte for byte, and line diffs for the snapshot tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Sandbox {
    /// A workspace holding `files` (path, contents). A `Cargo.toml` is added
    /// when `files` has none.
    pub fn new(files: &[(&str, &str)]) -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let sb = Sandbox { dir };
        if !files.iter().any(|(p, _)| *p == "Cargo.toml") {
            sb.write(
                "Cargo.toml",
                "[package]\nname = \"sandbox\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
            );
        }
        if !files.iter().any(|(p, _)| p.starts_with("src/")) {
            sb.write("src/lib.rs", "");
        }
        for (p, c) in files {
            sb.write(p, c);
        }
        sb
    }

    /// A copy of the bundled example.
    pub fn example() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rag-stack");
        copy_dir(&src, dir.path());
        Sandbox { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// Runs `cargo-hsm ARGS --manifest-path <sandbox>/Cargo.toml`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.dir.path(), args)
    }

    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-hsm"))
            .args(args)
            .arg("--manifest-path")
            .arg(self.path("Cargo.toml"))
            .arg("--color")
            .arg("never")
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .output()
            .expect("run cargo-hsm");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code,
            0,
            "`cargo hsm {}` failed:\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        r
    }

    /// Every file of the sandbox (except `target/` and `.venv/`), by path.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut m = BTreeMap::new();
        walk(self.dir.path(), self.dir.path(), &mut m);
        m
    }

    /// Runs a command that must be refused: exit 2, and every file byte
    /// for byte as before. Returns stderr.
    pub fn refused(&self, args: &[&str]) -> String {
        let before = self.files();
        let r = self.run(args);
        assert_eq!(
            r.code,
            2,
            "`cargo hsm {}` should be refused with exit 2:\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            r.stdout,
            r.stderr
        );
        let after = self.files();
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "`cargo hsm {}` created or removed files",
            args.join(" ")
        );
        for (p, b) in &before {
            assert!(
                after[p] == *b,
                "`cargo hsm {}` changed `{p}`",
                args.join(" ")
            );
        }
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        r.stderr
    }

    /// Runs a successful edit and returns the line diff of `file`.
    pub fn edit_diff(&self, file: &str, args: &[&str]) -> String {
        let before = self.read(file);
        self.ok(args);
        let after = self.read(file);
        // Running it again changes nothing (idempotent).
        let files = self.files();
        let again = self.ok(args);
        assert!(
            again.stderr.contains("Unchanged"),
            "second `cargo hsm {}` should report no change:\n{}",
            args.join(" "),
            again.stderr
        );
        assert!(
            files == self.files(),
            "second `cargo hsm {}` changed files",
            args.join(" ")
        );
        line_diff(&before, &after)
    }
}

fn walk(root: &Path, dir: &Path, m: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name == "target" || name == ".venv" {
                continue;
            }
            walk(root, &p, m);
        } else {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            m.insert(rel, std::fs::read(&p).unwrap());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            if e.file_name() == "target" {
                continue;
            }
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// The removed (`-`) and added (`+`) lines between two texts, in order,
/// with the line number of the old text (`@@ N`) before each change.
pub fn line_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    let mut in_hunk = false;
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
            in_hunk = false;
            continue;
        }
        if !in_hunk {
            out.push_str(&format!("@@ {}\n", i + 1));
            in_hunk = true;
        }
        if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// Whether `tool` is on PATH. Missing: with `CI=true` the test fails,
/// otherwise it says why and is skipped.
pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("`{tool}` is required for this test and CI=true");
        }
        eprintln!("skipping: `{tool}` is not installed");
    }
    found
}
