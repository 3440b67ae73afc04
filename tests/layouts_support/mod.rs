//! Real Python project layouts as synthetic upstreams, each built by its
//! real build backend from PyPI. The backends are downloaded once per
//! machine into `$CARGO_TARGET_TMPDIR/layout-backends` (`pip download`),
//! then every uv and pip call resolves offline from that directory and the
//! sandbox's own wheels.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::sync_support::Sandbox;

/// The build backends every layout needs, as wheels in one directory.
pub fn backends() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("layout-backends");
        let done = dir.join(".complete-v2");
        if done.exists() {
            return dir;
        }
        std::fs::create_dir_all(&dir).unwrap();
        // Two resolutions: poetry-core 1.x and 2.x cannot share one.
        for set in [
            &[
                "setuptools>=64",
                "setuptools_scm>=8",
                "wheel",
                "hatchling",
                "hatch-vcs",
                "flit_core>=3.4",
                "editables",
                "pdm-backend",
                "poetry-core>=1,<2",
            ][..],
            &["poetry-core>=2,<3"][..],
        ] {
            pip_download(&dir, set);
        }
        std::fs::write(&done, "").unwrap();
        dir
    })
}

/// `pip download` of the wheels of `reqs` (and what they need) into `dir`.
fn pip_download(dir: &Path, reqs: &[&str]) {
    let o = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(dir)
        .args(reqs)
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_NO_INDEX")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pip download of {reqs:?} failed (PyPI needed once): {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// maturin (a platform wheel) beside the other backends, downloaded once
/// per machine, only by the maturin cases.
pub fn maturin_backend() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = backends();
        let done = dir.join(".complete-maturin-v1");
        if done.exists() {
            return;
        }
        pip_download(dir, &["maturin>=1,<2"]);
        std::fs::write(&done, "").unwrap();
    });
}

/// Where the maturin cases' inner cargo builds share their compiled
/// dependencies, so that only the first one pays for syn, quote and the
/// like. pyo3 itself is built again each time: maturin points
/// `PYO3_PYTHON` at each build's isolated interpreter, which reruns its
/// build script.
pub fn shared_cargo_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("maturin-target")
}

thread_local! {
    /// Variables that [`hsm`] sets (`Some`) or removes (`None`) for the
    /// current test: the inner cargo build's target dir and jobs.
    pub static EXTRA_ENV: std::cell::RefCell<Vec<(&'static str, Option<String>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `cargo hsm` in `sb`, resolving offline from the backends and the
/// sandbox's wheels, for uv and pip alike.
pub fn hsm(sb: &Sandbox, args: &[&str]) -> Command {
    let mut c = sb.cmd(args);
    EXTRA_ENV.with(|e| {
        for (k, v) in e.borrow().iter() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
    });
    let wheels = sb.path("wheels");
    c.env(
        "UV_FIND_LINKS",
        format!("{},{}", backends().display(), wheels.display()),
    )
    .env("UV_NO_INDEX", "1")
    .env(
        "PIP_FIND_LINKS",
        format!("{} {}", backends().display(), wheels.display()),
    )
    .env("PIP_NO_INDEX", "1")
    .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    c
}

/// A standard Python `.gitignore`: what real upstreams ignore.
pub const GITIGNORE: &str = ".venv/\n__pycache__/\n*.egg-info/\nbuild/\ndist/\n*.pyc\n";

/// One upstream layout: its files, given the project name and version.
pub struct Layout {
    pub name: &'static str,
    /// PEP 503 name of the distribution it builds.
    pub dist: &'static str,
    /// Writes the project's files into `dir` for `version` (dynamic-version
    /// layouts ignore it: their version comes from git tags).
    pub write: fn(dir: &Path, version: &str),
    /// The version comes from the git tag (setuptools_scm, hatch-vcs).
    pub from_tag: bool,
    /// uv cannot sync it as a project (no `[project]` table): the uv
    /// runtime refuses with exit 2 and names the fix.
    pub uv_refuses: bool,
}

fn w(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn module(dir: &Path, rel: &str) {
    w(dir, rel, "def hello():\n    return 'hi'\n");
}

pub const SETUP_PY_ONLY: Layout = Layout {
    name: "setuptools-setup-py-only",
    dist: "legacy-app",
    write: |d, v| {
        w(
            d,
            "setup.py",
            &format!(
                "from setuptools import setup\nsetup(name='legacy_app', version='{v}', packages=['legacy_app'], install_requires=['alpha'])\n"
            ),
        );
        module(d, "legacy_app/__init__.py");
    },
    from_tag: false,
    uv_refuses: true,
};

pub const SETUP_CFG: Layout = Layout {
    name: "setuptools-setup-cfg",
    dist: "cfg-app",
    write: |d, v| {
        w(
            d,
            "pyproject.toml",
            "[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n",
        );
        w(
            d,
            "setup.cfg",
            &format!(
                "[metadata]\nname = cfg-app\nversion = {v}\n\n[options]\npackage_dir =\n    = src\npackages = find:\ninstall_requires =\n    alpha\n\n[options.packages.find]\nwhere = src\n"
            ),
        );
        module(d, "src/cfg_app/__init__.py");
    },
    from_tag: false,
    uv_refuses: true,
};

pub const SETUPTOOLS_PYPROJECT: Layout = Layout {
    name: "setuptools-pyproject-src",
    dist: "st-app",
    write: |d, v| {
        w(
            d,
            "pyproject.toml",
            &format!(
                "[project]\nname = \"st-app\"\nversion = \"{v}\"\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n"
            ),
        );
        module(d, "src/st_app/__init__.py");
    },
    from_tag: false,
    uv_refuses: false,
};

pub const SETUPTOOLS_SCM: Layout = Layout {
    name: "setuptools-scm-dynamic-version",
    dist: "scm-app",
    write: |d, _| {
        w(
            d,
            "pyproject.toml",
            "[project]\nname = \"scm-app\"\ndynamic = [\"version\"]\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[build-system]\nrequires = [\"setuptools>=64\", \"setuptools_scm>=8\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[tool.setuptools_scm]\n",
        );
        module(d, "src/scm_app/__init__.py");
    },
    from_tag: true,
    uv_refuses: false,
};

pub const HATCH_VCS: Layout = Layout {
    name: "hatchling-hatch-vcs-dynamic-version",
    dist: "vcs-app",
    write: |d, _| {
        w(
            d,
            "pyproject.toml",
            "[project]\nname = \"vcs-app\"\ndynamic = [\"version\"]\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[build-system]\nrequires = [\"hatchling\", \"hatch-vcs\"]\nbuild-backend = \"hatchling.build\"\n\n[tool.hatch.version]\nsource = \"vcs\"\n",
        );
        module(d, "vcs_app/__init__.py");
    },
    from_tag: true,
    uv_refuses: false,
};

pub const FLIT: Layout = Layout {
    name: "flit-core-dunder-version-flat",
    dist: "flit-app",
    write: |d, v| {
        w(
            d,
            "pyproject.toml",
            "[project]\nname = \"flit_app\"\ndynamic = [\"version\", \"description\"]\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[build-system]\nrequires = [\"flit_core>=3.4\"]\nbuild-backend = \"flit_core.buildapi\"\n",
        );
        w(
            d,
            "flit_app/__init__.py",
            &format!("\"\"\"A flit project.\"\"\"\n__version__ = \"{v}\"\n"),
        );
    },
    from_tag: false,
    uv_refuses: false,
};

pub const POETRY_1: Layout = Layout {
    name: "poetry-core-1-no-project-table",
    dist: "poetry-one",
    write: |d, v| {
        w(
            d,
            "pyproject.toml",
            &format!(
                "[tool.poetry]\nname = \"poetry-one\"\nversion = \"{v}\"\ndescription = \"\"\nauthors = [\"A <a@example.org>\"]\npackages = [{{ include = \"poetry_one\" }}]\n\n[tool.poetry.dependencies]\npython = \">=3.8\"\nalpha = \"*\"\n\n[build-system]\nrequires = [\"poetry-core>=1,<2\"]\nbuild-backend = \"poetry.core.masonry.api\"\n"
            ),
        );
        module(d, "poetry_one/__init__.py");
    },
    from_tag: false,
    uv_refuses: true,
};

pub const POETRY_2: Layout = Layout {
    name: "poetry-core-2-project-table",
    dist: "poetry-two",
    write: |d, v| {
        w(
            d,
            "pyproject.toml",
            &format!(
                "[project]\nname = \"poetry-two\"\nversion = \"{v}\"\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[tool.poetry]\npackages = [{{ include = \"poetry_two\", from = \"src\" }}]\n\n[build-system]\nrequires = [\"poetry-core>=2,<3\"]\nbuild-backend = \"poetry.core.masonry.api\"\n"
            ),
        );
        module(d, "src/poetry_two/__init__.py");
    },
    from_tag: false,
    uv_refuses: false,
};

pub const PDM: Layout = Layout {
    name: "pdm-backend",
    dist: "pdm-app",
    write: |d, v| {
        w(
            d,
            "pyproject.toml",
            &format!(
                "[project]\nname = \"pdm-app\"\nversion = \"{v}\"\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[build-system]\nrequires = [\"pdm-backend\"]\nbuild-backend = \"pdm.backend\"\n"
            ),
        );
        module(d, "src/pdm_app/__init__.py");
    },
    from_tag: false,
    uv_refuses: false,
};

/// An upstream that is itself a uv workspace: the root project depends on
/// a member, which depends on `alpha`.
pub const UV_WORKSPACE_ROOT: Layout = Layout {
    name: "upstream-uv-workspace-root",
    dist: "ws-app",
    write: |d, v| {
        w(
            d,
            "pyproject.toml",
            &format!(
                "[project]\nname = \"ws-app\"\nversion = \"{v}\"\nrequires-python = \">=3.8\"\ndependencies = [\"ws-core\"]\n\n[tool.uv.sources]\nws-core = {{ workspace = true }}\n\n[tool.uv.workspace]\nmembers = [\"packages/*\"]\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n\n[tool.hatch.build.targets.wheel]\npackages = [\"ws_app\"]\n"
            ),
        );
        module(d, "ws_app/__init__.py");
        w(
            d,
            "packages/ws-core/pyproject.toml",
            "[project]\nname = \"ws-core\"\nversion = \"0.3.0\"\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n\n[tool.hatch.build.targets.wheel]\npackages = [\"ws_core\"]\n",
        );
        module(d, "packages/ws-core/ws_core/__init__.py");
    },
    from_tag: false,
    uv_refuses: false,
};

/// maturin with a small PyO3 crate (pure Rust, no Python sources): the
/// extension module `rust_ext`, whose `version()` returns the version it
/// was built from, so a test sees that a changed source was rebuilt. Like
/// `maturin new`, it ignores `/target` and commits no `Cargo.lock`.
pub const MATURIN_PYO3: Layout = Layout {
    name: "maturin-pyo3-extension-module",
    dist: "rust-ext",
    write: |d, v| {
        w(
            d,
            "pyproject.toml",
            &format!(
                "[project]\nname = \"rust-ext\"\nversion = \"{v}\"\nrequires-python = \">=3.8\"\ndependencies = [\"alpha\"]\n\n[build-system]\nrequires = [\"maturin>=1,<2\"]\nbuild-backend = \"maturin\"\n\n[tool.maturin]\nfeatures = [\"pyo3/extension-module\"]\n"
            ),
        );
        w(
            d,
            "Cargo.toml",
            &format!(
                "[package]\nname = \"rust_ext\"\nversion = \"{v}\"\nedition = \"2021\"\n\n[lib]\nname = \"rust_ext\"\ncrate-type = [\"cdylib\"]\n\n[dependencies]\npyo3 = \"0.22\"\n"
            ),
        );
        w(
            d,
            "src/lib.rs",
            &format!(
                "use pyo3::prelude::*;\n\n/// The version this module was built from.\n#[pyfunction]\nfn version() -> &'static str {{\n    \"{v}\"\n}}\n\n#[pymodule]\nfn rust_ext(m: &Bound<'_, PyModule>) -> PyResult<()> {{\n    m.add_function(wrap_pyfunction!(version, m)?)?;\n    Ok(())\n}}\n"
            ),
        );
        w(d, ".gitignore", &format!("/target\n{GITIGNORE}"));
    },
    from_tag: false,
    uv_refuses: false,
};

/// A bare repository `remotes/<name>.git` with one commit per tag, each
/// writing `layout` at that version (and a standard `.gitignore`).
pub fn git_upstream(sb: &Sandbox, name: &str, layout: &Layout, tags: &[&str]) -> String {
    let work = format!("remotes/{name}-work");
    std::fs::create_dir_all(sb.path(&work)).unwrap();
    sb.git(&work, &["init", "-q", "-b", "main"]);
    for tag in tags {
        let v = tag.trim_start_matches('v');
        // A layout may write its own `.gitignore` over the standard one.
        sb.write(&format!("{work}/.gitignore"), GITIGNORE);
        (layout.write)(&sb.path(&work), v);
        sb.write(&format!("{work}/CHANGES"), &format!("{tag}\n"));
        sb.git(&work, &["add", "-A"]);
        sb.git(&work, &["commit", "-q", "-m", tag]);
        sb.git(&work, &["tag", tag]);
    }
    let bare = sb.path(&format!("remotes/{name}.git"));
    crate::sync_support::git_in(
        &sb.root,
        &["clone", "-q", "--bare", &work, bare.to_str().unwrap()],
    );
    format!("file://{}", bare.display())
}

/// Writes a wheel into `dir` (relative to the sandbox), not `wheels/`.
pub fn wheel_into(sb: &Sandbox, dir: &str, name: &str, version: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_wheel.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(name)
        .arg(version)
        .arg(sb.path(dir))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// `uv pip <args> --python <venv python>`, offline, no dependencies pulled.
pub fn uv_pip(sb: &Sandbox, venv_dir: &str, args: &[&str]) {
    let python = sb.path(venv_dir).join(".venv/bin/python");
    let o = Command::new("uv")
        .arg("pip")
        .args(args)
        .arg("--python")
        .arg(&python)
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "uv pip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
