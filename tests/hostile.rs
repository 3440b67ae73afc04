//! Issue 13, hostile manifests: every path hsm writes to stays inside the
//! workspace (through symlinks), and bad values are refused at plan time.
//! Each case exits 2 naming the file and the key (or line), and changes no
//! file: neither the tree outside the workspace (hashed) nor the workspace
//! itself (no `.hsm/` either).

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Ws {
    _dir: tempfile::TempDir,
    /// `base/ws`: the workspace.
    root: PathBuf,
    /// `base/outside`: what no manifest may touch.
    outside: PathBuf,
}

fn ws(hsm_toml: &str) -> Ws {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("ws");
    let outside = base.join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(outside.join("x")).unwrap();
    std::fs::write(outside.join("keep.txt"), "keep\n").unwrap();
    std::fs::write(
        outside.join("pyproject.toml"),
        "[project]\nname = \"outside\"\nversion = \"0.1.0\"\ndependencies = []\n",
    )
    .unwrap();
    std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::write(
        root.join("pyproject.toml"),
        "[project]\nname = \"root\"\nversion = \"0.1.0\"\ndependencies = []\n",
    )
    .unwrap();
    std::fs::write(root.join("hsm.toml"), hsm_toml).unwrap();
    Ws {
        _dir: dir,
        root,
        outside,
    }
}

impl Ws {
    fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cargo-hsm"))
            .arg("hsm")
            .args(args)
            .arg("--manifest-path")
            .arg(self.root.join("Cargo.toml"))
            .args(["--color", "never"])
            .env("UV_OFFLINE", "1")
            .output()
            .unwrap()
    }
}

/// Every entry under `dir` (symlinks not followed) with its bytes or target.
fn hash_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let v = if md.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec()
            } else if md.is_dir() {
                stack.push(p.clone());
                b"<dir>".to_vec()
            } else {
                std::fs::read(&p).unwrap()
            };
            out.insert(p, v);
        }
    }
    out
}

/// `args` exits 2, its message holds every needle, and nothing changed
/// inside or outside the workspace.
fn refused(w: &Ws, args: &[&str], needles: &[&str]) {
    let outside = hash_tree(&w.outside);
    let inside = hash_tree(&w.root);
    let out = w.run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let flat: String = err.split_whitespace().collect::<Vec<_>>().join(" ");
    for n in needles {
        assert!(flat.contains(n), "{args:?}: no {n:?} in:\n{err}");
    }
    assert_eq!(outside, hash_tree(&w.outside), "{args:?} wrote outside");
    assert_eq!(inside, hash_tree(&w.root), "{args:?} changed the workspace");
}

fn both(w: &Ws, needles: &[&str]) {
    refused(w, &["list"], needles);
    refused(w, &["sync"], needles);
}

const GIT_SVC: &str = "[services]\nstandalone = [\"g\"]\n[registry.services.g.sources.prod]\ntype = \"git\"\nurl = \"file:///nonexistent/g.git\"\n";

#[test]
fn services_dir_outside_the_workspace_is_refused() {
    let w = ws("");
    let abs = w.outside.join("x");
    for v in [abs.to_str().unwrap(), "../outside/x"] {
        w.write(
            "hsm.toml",
            &format!("[project]\nservices-dir = \"{v}\"\n\n{GIT_SVC}"),
        );
        both(&w, &["hsm.toml", "project.services-dir", "outside/x"]);
    }
}

#[test]
fn compose_file_and_python_project_outside_are_refused() {
    let w = ws("");
    w.write(
        "hsm.toml",
        "[project]\ncompose-file = \"../outside/x.yml\"\n\n[services]\nstandalone = [\"pg\"]\n[registry.services.pg.sources.prod]\ntype = \"docker-image\"\nimage = \"postgres:16\"\n",
    );
    both(&w, &["project.compose-file", "outside/x.yml"]);
    w.write("hsm.toml", "[project]\ncompose-file = \"\"\n");
    both(&w, &["project.compose-file", "is empty"]);
    w.write(
        "hsm.toml",
        "[project]\npython-project = \"../outside\"\n\n[libraries]\nstandalone = [\"beta\"]\n[registry.libraries.beta.sources.prod]\ntype = \"pypi\"\n",
    );
    both(&w, &["project.python-project", "outside"]);
}

#[test]
fn git_subdirectory_stays_inside_its_clone() {
    let w = ws("");
    for sub in ["../..", "/etc", "a/../../.."] {
        w.write("hsm.toml", &format!("{GIT_SVC}subdirectory = \"{sub}\"\n"));
        both(
            &w,
            &[
                "registry.services.g.sources.prod.subdirectory",
                "leaves the clone",
            ],
        );
    }
}

#[test]
fn symlinked_services_and_hsm_dirs_pointing_outside_are_refused() {
    let w = ws(GIT_SVC);
    symlink(w.outside.join("x"), w.root.join("services")).unwrap();
    both(&w, &["clone of service `g`", "outside/x"]);
    std::fs::remove_file(w.root.join("services")).unwrap();

    w.write("hsm.toml", "");
    symlink(&w.outside, w.root.join(".hsm")).unwrap();
    both(&w, &["`.hsm` resolves to", "outside"]);
}

/// A symlink inside the cloned repository cannot take `subdirectory` out.
#[test]
fn a_symlink_in_the_clone_cannot_lead_subdirectory_out() {
    let w = ws("");
    let repo = w.outside.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env_remove("GIT_SSL_CAINFO")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    symlink("../../../outside", repo.join("out")).unwrap();
    std::fs::write(repo.join("README"), "r\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "x"]);
    w.write(
        "hsm.toml",
        &format!(
            "[services]\nstandalone = [\"g\"]\n[registry.services.g.sources.prod]\ntype = \"git\"\nurl = \"file://{}\"\nsubdirectory = \"out\"\n",
            repo.display()
        ),
    );
    let outside = hash_tree(&w.outside);
    let out = w.run(&["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("must stay inside the clone"), "{err}");
    assert_eq!(outside, hash_tree(&w.outside));
    assert!(
        !w.root.join("services/g").exists(),
        "the clone was rolled back"
    );
    assert!(!w.root.join(".hsm").exists(), "{err}");
}

const SVC: &str = "[services]\nstandalone = [\"s\"]\n[registry.services.s.sources.prod]\ntype = \"local\"\npath = \"svc\"\n[registry.services.s.deployment-profiles.default]\nruntime = \"uv\"\n";

#[test]
fn env_names_and_values_are_validated_in_every_layer() {
    let w = ws("");
    w.write(
        "svc/pyproject.toml",
        "[project]\nname = \"s\"\nversion = \"0\"\n",
    );
    for (extra, needles) in [
        (
            "[registry.services.s.env]\n\"X\\nLD_PRELOAD\" = \"/tmp/evil.so\"\n",
            &["not a valid environment variable name", "registry.services.s.env"][..],
        ),
        (
            "[registry.services.s.env]\n\"A=B\" = \"x\"\n",
            &["`A=B` is not a valid environment variable name"][..],
        ),
        ("[registry.services.s.env]\n\"\" = \"y\"\n", &["not a valid environment variable name"][..]),
        (
            "[registry.services.s.deployment-profiles.default.env]\n\"1X\" = \"y\"\n",
            &["deployment-profiles.default.env"][..],
        ),
        (
            "[registry.services.s.sources.prod.env]\n\"A-B\" = \"y\"\n",
            &["sources.prod.env"][..],
        ),
        (
            "[registry.services.s.env]\nA = \"x\\nLD_PRELOAD=/tmp/evil.so\"\n",
            &["line break", "registry.services.s.env.A"][..],
        ),
        (
            "[registry.services.t.sources.prod]\ntype = \"docker-image\"\nimage = \"x\"\n[registry.services.s.implies]\n\"service:t\" = { params = { \"a b\" = \"1\" } }\n",
            &["`a b` is not a valid environment variable name", "implies"][..],
        ),
    ] {
        w.write("hsm.toml", &format!("{SVC}{extra}"));
        both(&w, needles);
        assert!(!w.root.join(".hsm").exists());
    }
}

#[test]
fn requirements_versions_urls_and_paths_are_validated_at_plan_time() {
    let w = ws("");
    w.write(
        "svc/pyproject.toml",
        "[project]\nname = \"s\"\nversion = \"0\"\n",
    );
    let lib = |version: &str| {
        format!(
            "[libraries]\nstandalone = [\"beta\"]\n[registry.libraries.beta.sources.prod]\ntype = \"pypi\"\nversion = \"{version}\"\n"
        )
    };
    for (text, needles) in [
        (
            "[services]\nstandalone = [\"s\"]\n[registry.services.s]\ndependencies = [\"numpy>>2\"]\n[registry.services.s.sources.prod]\ntype = \"local\"\npath = \"svc\"\n[registry.services.s.deployment-profiles.default]\nruntime = \"uv\"\n".to_string(),
            vec!["`numpy>>2`", "registry.services.s.dependencies[0]"],
        ),
        (lib(">>>1"), vec!["`beta>>>1`", "registry.libraries.beta.sources.prod"]),
        (lib("~~~1"), vec!["PEP 440", "registry.libraries.beta.sources.prod"]),
        (
            GIT_SVC.replace("url = \"file:///nonexistent/g.git\"", "url = \"\""),
            vec!["`sources.prod.url` is empty", "hsm.toml"],
        ),
        (
            SVC.replace("path = \"svc\"", "path = \"\""),
            vec!["`sources.prod.path` is empty", "registry.services.s.sources.prod.path"],
        ),
    ] {
        w.write("hsm.toml", &text);
        both(&w, &needles);
    }
}

#[test]
fn registry_entries_that_cannot_be_read_are_errors_naming_the_path() {
    let w = ws("[registry]\npath = \"reg\"\n");
    std::fs::create_dir_all(w.root.join("reg/services")).unwrap();
    // (entry, what it is: a symlink's target or a kind, what the error says)
    for (entry, what, needles) in [
        (
            "reg/services/.toml",
            "file",
            &["reg/services/.toml", "no component name"][..],
        ),
        (
            "reg/services/dangling.toml",
            "nowhere.toml",
            &["dangling.toml", "dangling symlink"],
        ),
        (
            "reg/services/loop.toml",
            "loop.toml",
            &["loop.toml", "symlink loop"],
        ),
        ("reg/services/x.toml", "dir", &["x.toml", "is a directory"]),
        (
            "reg/service_groups",
            "service_groups",
            &["reg/service_groups", "symlink loop"],
        ),
    ] {
        let p = w.root.join(entry);
        match what {
            "file" => w.write(entry, ""),
            "dir" => std::fs::create_dir(&p).unwrap(),
            target => symlink(target, &p).unwrap(),
        }
        refused(&w, &["list"], needles);
        if what == "dir" {
            std::fs::remove_dir(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }

    std::fs::remove_dir_all(w.root.join("reg")).unwrap();
    w.write("reg", "a file\n");
    refused(
        &w,
        &["list"],
        &["registry.path", "is a file, not a directory"],
    );
}

#[test]
fn small_ones_name_length_env_file_directory_and_no_hsm_dir_on_exit_2() {
    let w = ws("");
    let long = "a".repeat(250);
    w.write(
        "hsm.toml",
        &format!("[services]\nstandalone = [\"{long}\"]\n[registry.services.{long}.sources.prod]\ntype = \"local\"\npath = \"svc\"\n"),
    );
    both(&w, &["250 characters long", "at most 64"]);

    w.write(
        "svc/pyproject.toml",
        "[project]\nname = \"s\"\nversion = \"0\"\n",
    );
    std::fs::create_dir_all(w.root.join("config/s.env")).unwrap();
    w.write(
        "hsm.toml",
        "[services]\nstandalone = [\"s\"]\n[registry.services.s]\nenv-file = [\"config/s.env\"]\n[registry.services.s.sources.prod]\ntype = \"local\"\npath = \"svc\"\n[registry.services.s.deployment-profiles.default]\nruntime = \"uv\"\n",
    );
    both(
        &w,
        &[
            "config/s.env",
            "is a directory",
            "registry.services.s.env-file[0]",
        ],
    );

    // An exit-2 error found mid-sync (the source directory is missing)
    // creates no `.hsm/`.
    w.write(
        "hsm.toml",
        &SVC.replace("path = \"svc\"", "path = \"missing\""),
    );
    refused(&w, &["sync"], &["`missing`, which does not exist"]);
}

/// An edited file without any write bit is refused (even for root), not
/// rewritten; one with write bits keeps its mode (and owner).
#[test]
fn read_only_files_are_refused_and_modes_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let w = ws("[libraries]\nstandalone = [\"beta\"]\n[registry.libraries.beta.sources.prod]\ntype = \"pypi\"\nversion = \"==2.0.0\"\n");
    let pp = w.root.join("pyproject.toml");
    std::fs::set_permissions(&pp, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&pp).unwrap();
    let out = w.run(&["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("read-only (mode 0444)"), "{err}");
    assert!(err.contains("pyproject.toml"), "{err}");
    assert_eq!(std::fs::read(&pp).unwrap(), before);
    let m = std::fs::metadata(&pp).unwrap().permissions().mode() & 0o777;
    assert_eq!(m, 0o444);
    assert!(!w.root.join(".hsm").exists(), "{err}");
}

/// A key with control characters (an escape sequence, a line break) is
/// printed with `?` for each, on the `-->` line as in the message and the
/// snippet: the terminal shows what the manifest holds.
#[test]
fn control_characters_in_keys_are_shown_as_question_marks() {
    let w = ws("[services]\nstandalone = [\"ok\"]\n[registry.services.\"a\\u001b[2Jb\\nc\".sources.prod]\ntype = \"docker-image\"\nimage = \"x\"\n[registry.services.ok.sources.prod]\ntype = \"docker-image\"\nimage = \"x\"\n");
    let out = w.run(&["list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
    let arrow = err
        .lines()
        .find(|l| l.contains("-->"))
        .unwrap_or_else(|| panic!("no --> line: {err}"));
    assert!(arrow.contains("hsm.toml:"), "{arrow}");
    assert!(arrow.contains("a?[2Jb?c"), "{arrow:?}\n{err}");
    // The message names the character and stays on one line.
    let headline = err.lines().next().unwrap();
    assert!(
        headline.contains(r"`a\u{1b}[2Jb\nc` contains the control character U+001B"),
        "{err}"
    );
}

/// Found by the fuzz target: `pep508_rs` panics on a name that ends in
/// `-`, `_` or `.` before more text (`foo- >=1`, `x[a-]`). In a manifest
/// it is exit 2 with the key; the crash input itself is the last case.
#[test]
fn requirement_names_ending_in_a_separator_are_errors_not_panics() {
    let w = ws("");
    w.write(
        "svc/pyproject.toml",
        "[project]\nname = \"s\"\nversion = \"0\"\n",
    );
    for dep in ["foo- >=1", "x[a-]", "no-such-\u{249}ckage>=1"] {
        w.write(
            "hsm.toml",
            &SVC.replace(
                "[registry.services.s.sources.prod]",
                &format!("[registry.services.s]\ndependencies = [\"{dep}\"]\n[registry.services.s.sources.prod]"),
            ),
        );
        both(
            &w,
            &[
                "registry.services.s.dependencies[0]",
                "must end with a letter or a digit",
            ],
        );
    }
}

/// User text other than names, with a line break or an escape sequence.
/// Where it can never be right (a url, a ref, a path, an image, a project
/// path) it is refused at plan time, naming the key and the character.
/// Elsewhere (a requirement, an env file's path) the message shows it
/// escaped (`\n`, `\u{1b}`), as names are: the error stays on its one
/// line and the terminal receives no escape sequence.
#[test]
fn control_characters_in_values_are_refused_or_shown_escaped() {
    let w = ws("");
    w.write(
        "svc/pyproject.toml",
        "[project]\nname = \"s\"\nversion = \"0\"\n",
    );
    let git = |field: &str| {
        format!("[services]\nstandalone = [\"g\"]\n[registry.services.g.sources.prod]\ntype = \"git\"\nurl = \"file:///nonexistent/g.git\"\n{field}\n")
    };
    let refused_at_plan_time = [
        (
            git("").replace("g.git\"", "g.git\\nNEXT\""),
            "registry.services.g.sources.prod.url",
            "U+000A",
        ),
        (
            git("ref = \"v1\\u001b[2J\""),
            "registry.services.g.sources.prod.ref",
            "U+001B",
        ),
        (
            git("subdirectory = \"a\\rb\""),
            "registry.services.g.sources.prod.subdirectory",
            "U+000D",
        ),
        (
            SVC.replace("path = \"svc\"", "path = \"svc\\nNEXT\""),
            "registry.services.s.sources.prod.path",
            "U+000A",
        ),
        (
            "[services]\nstandalone = [\"c\"]\n[registry.services.c.sources.prod]\ntype = \"docker-image\"\nimage = \"redis\\n:7\"\n".to_string(),
            "registry.services.c.sources.prod.image",
            "U+000A",
        ),
        (
            format!("[project]\nservices-dir = \"s\\tx\"\n\n{}", git("")),
            "project.services-dir",
            "U+0009",
        ),
    ];
    for (manifest, key, char) in refused_at_plan_time {
        w.write("hsm.toml", &manifest);
        both(
            &w,
            &[key, &format!("contains the control character {char}")],
        );
    }
    let shown_escaped = [
        (
            SVC.replace(
                "[registry.services.s.sources.prod]",
                "[registry.services.s]\ndependencies = [\"numpy>>2\\u001b[2J\\nNEXT\"]\n[registry.services.s.sources.prod]",
            ),
            r"`numpy>>2\u{1b}[2J\nNEXT` is neither a registry library nor a valid requirement",
        ),
        (
            SVC.replace(
                "[registry.services.s.sources.prod]",
                "[registry.services.s]\nenv-file = [\"no\\nNEXT.env\"]\n[registry.services.s.sources.prod]",
            ),
            r"env file `no\nNEXT.env` of service `s` does not exist",
        ),
    ];
    for (manifest, headline) in shown_escaped {
        w.write("hsm.toml", &manifest);
        for cmd in ["list", "sync"] {
            refused(&w, &[cmd], &[]);
            let out = w.run(&[cmd]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains('\x1b'), "{err:?}");
            let first = err.lines().next().unwrap_or_default();
            assert!(first.starts_with("error: "), "{err}");
            assert!(first.contains(headline), "{cmd}: {first:?}\n{err}");
        }
    }
}
