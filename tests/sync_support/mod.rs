//! Sandboxes for the `cargo hsm sync` tests: a Cargo workspace in a temp dir,
//! tiny wheels built offline, real uv, git and `python3 -m venv`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether `tool` can run. When it cannot: with `CI=true` the test fails,
/// otherwise it prints why and the caller returns early.
pub fn require(tool: &str) -> bool {
    let ok = match tool {
        "venv" => Command::new("python3")
            .args(["-c", "import venv, ensurepip"])
            .output()
            .is_ok_and(|o| o.status.success()),
        t => Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
    };
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("`{tool}` is required by this test (CI=true): install it (`.ci/run` does)");
        }
        eprintln!("skipping: `{tool}` is not available");
    }
    ok
}

pub struct Sandbox {
    _dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
}

/// The real interpreter behind `python3` (asked once per test process:
/// through a pyenv shim each question costs a shell and pyenv).
fn python_exe() -> Option<String> {
    static EXE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let o = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    })
    .clone()
}

impl Sandbox {
    /// An empty Cargo workspace with a `wheels/` directory of test packages:
    /// alpha 1.0.0 (needs gamma), beta 2.0.0, gamma 0.1.0, delta 1.0.
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let sb = Sandbox {
            _dir: Some(dir),
            root,
        };
        sb.write("Cargo.toml", "[workspace]\n");
        sb.wheel("alpha", "1.0.0", &["gamma"]);
        sb.wheel("beta", "2.0.0", &[]);
        sb.wheel("gamma", "0.1.0", &[]);
        sb.wheel("delta", "1.0", &[]);
        sb
    }

    /// A sandbox over an existing directory (e.g. a clone of another
    /// sandbox's monorepo), which its owner removes.
    pub fn at(root: PathBuf) -> Sandbox {
        Sandbox { _dir: None, root }
    }

    /// An empty temp directory (to copy another sandbox into).
    pub fn empty() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        Sandbox {
            _dir: Some(dir),
            root,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    pub fn bytes(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(rel)).ok()
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn wheel(&self, name: &str, version: &str, requires: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_wheel.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(name)
            .arg(version)
            .arg(self.path("wheels"));
        for r in requires {
            cmd.arg("--requires").arg(r);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// A root `pyproject.toml` that resolves offline from `wheels/`.
    pub fn root_pyproject(&self, extra: &str) {
        self.write(
            "pyproject.toml",
            &format!(
                "[project]\nname = \"sandbox-root\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\n# the user's own dependencies\ndependencies = [\n    \"delta\",  # mine\n]\n\n[tool.uv]\nfind-links = [\"wheels\"]\nno-index = true\n{extra}"
            ),
        );
    }

    /// A virtual uv project (nothing to build) at `rel`, resolving offline.
    pub fn uv_service(&self, rel: &str, extra: &str) {
        let depth = rel.split('/').filter(|s| !s.is_empty()).count();
        let up = "../".repeat(depth);
        self.write(
            &format!("{rel}/pyproject.toml"),
            &format!(
                "[project]\nname = \"{}\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[tool.uv]\npackage = false\nfind-links = [\"{up}wheels\"]\nno-index = true\n{extra}",
                rel.rsplit('/').next().unwrap()
            ),
        );
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-hsm"));
        c.arg("hsm")
            .args(args)
            .arg("--manifest-path")
            .arg(self.path("Cargo.toml"))
            .arg("--color")
            .arg("never")
            .current_dir(&self.root)
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("UV_NO_PROGRESS", "1")
            .env_remove("VIRTUAL_ENV")
            .env_remove("UV_PROJECT_ENVIRONMENT");
        if let Some(py) = python_exe() {
            c.env("UV_PYTHON", py);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs sync and asserts success.
    pub fn sync(&self, args: &[&str]) -> Output {
        let mut a = vec!["sync"];
        a.extend_from_slice(args);
        let o = self.run(&a);
        assert!(
            o.status.success(),
            "sync {args:?} failed ({:?}):\n{}",
            o.status.code(),
            stderr(&o)
        );
        o
    }

    /// Names (PEP 503) and versions installed in the venv at `rel`.
    pub fn installed(&self, rel: &str) -> Vec<(String, String)> {
        let lib = self.path(rel).join(".venv/lib");
        let mut out = Vec::new();
        let Ok(pys) = std::fs::read_dir(&lib) else {
            return out;
        };
        for py in pys.flatten() {
            let sp = py.path().join("site-packages");
            for e in std::fs::read_dir(sp).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if let Some(stem) = n.strip_suffix(".dist-info") {
                    let meta =
                        std::fs::read_to_string(e.path().join("METADATA")).unwrap_or_default();
                    let field = |k: &str| {
                        meta.lines()
                            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
                            .unwrap_or_else(|| stem.to_string())
                    };
                    out.push((normalize(&field("Name:")), field("Version:")));
                }
            }
        }
        out.sort();
        out
    }

    /// The registry packages of a `uv.lock` (name, version), without the
    /// project itself (virtual or editable).
    pub fn locked_packages(&self, rel_lock: &str) -> Vec<(String, String)> {
        let lock: toml::Table = toml::from_str(&self.read(rel_lock)).unwrap();
        let mut out: Vec<(String, String)> = lock["package"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["source"].get("registry").is_some())
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["version"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    pub fn git(&self, dir: &str, args: &[&str]) -> String {
        git_in(&self.path(dir), args)
    }

    /// A bare repository `remotes/<name>.git` holding a uv service at
    /// `<subdir>` with one commit per version in `tags`, each tagged.
    /// Returns the `file://` URL and the commit of each tag.
    pub fn git_remote(&self, name: &str, tags: &[&str]) -> (String, Vec<String>) {
        let work = format!("remotes/{name}-work");
        std::fs::create_dir_all(self.path(&work)).unwrap();
        self.git(&work, &["init", "-q", "-b", "main"]);
        let mut shas = Vec::new();
        for tag in tags {
            self.write(
                &format!("{work}/pyproject.toml"),
                &format!(
                    "[project]\nname = \"{name}\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[tool.uv]\npackage = false\nfind-links = [\"../../wheels\"]\nno-index = true\n"
                ),
            );
            self.write(&format!("{work}/VERSION"), &format!("{tag}\n"));
            self.write(&format!("{work}/.gitignore"), ".venv\n");
            self.git(&work, &["add", "-A"]);
            self.git(&work, &["commit", "-q", "-m", tag]);
            self.git(&work, &["tag", tag]);
            shas.push(self.git(&work, &["rev-parse", "HEAD"]).trim().to_string());
        }
        let bare = self.path(&format!("remotes/{name}.git"));
        git_in(
            &self.root,
            &["clone", "-q", "--bare", &work, bare.to_str().unwrap()],
        );
        (format!("file://{}", bare.display()), shas)
    }
}

pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.org",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// PEP 503 name normalisation, as the inspector does it.
pub fn normalize(name: &str) -> String {
    cargo_hsm::python::normalize_name(name)
}

/// stderr as text. Off a terminal nothing is wrapped, so a long message
/// stays on one line and assertions need not know where it would wrap.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Names only, from `installed`.
pub fn names(pkgs: &[(String, String)]) -> Vec<&str> {
    pkgs.iter().map(|(n, _)| n.as_str()).collect()
}

/// The actions of `sync --message-format json` (kind, component, path),
/// in report order, without `Blocking` (waiting is not an action of the
/// sync itself).
pub fn sync_actions(o: &Output) -> Vec<(String, String, String)> {
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("sync printed no JSON ({e}):\n{}\n{}", stdout(o), stderr(o)));
    doc["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["action"] != "block")
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["component"].as_str().unwrap().to_string(),
                a["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The non-`fresh` ones of [`sync_actions`].
pub fn changes(actions: &[(String, String, String)]) -> Vec<(String, String, String)> {
    actions.iter().filter(|a| a.0 != "fresh").cloned().collect()
}

/// Copies the example's tracked content (no build output or environments).
pub fn copy_example(from: &Path, to: &Path, top: bool) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let generated_anywhere = matches!(name.as_str(), ".venv" | "uv.lock" | "__pycache__");
        let generated_at_top = top
            && matches!(
                name.as_str(),
                "target" | ".hsm" | "services" | "hsm.lock" | "docker-compose.hsm.yml"
            );
        if generated_anywhere || generated_at_top {
            continue;
        }
        let dst = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_example(&entry.path(), &dst, false);
        } else {
            std::fs::copy(entry.path(), &dst).unwrap();
        }
    }
}
