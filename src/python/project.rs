//! What a Python project directory declares, read from its files without
//! running anything: `pyproject.toml` (`[project]`, `[build-system]`,
//! `[tool.poetry]`, `[tool.uv]`), `setup.cfg` and `setup.py`.

use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use super::normalize_name;

/// What a `pyproject.toml` holds: `None` when it is absent or unreadable,
/// `Some(None)` when it is not valid TOML.
pub type Pyproject = Option<Option<Arc<toml::Table>>>;

/// `path`'s `pyproject.toml` parsed, once per version of the file per run:
/// one `stat` decides whether the copy parsed earlier still holds (size,
/// modification time and inode, as the fingerprints decide freshness), so
/// the inspectors and runtimes that each ask about the same file neither
/// read nor parse it again.
pub fn pyproject(path: &Utf8Path) -> Pyproject {
    static MEMO: crate::fs::StatMemo<Option<Arc<toml::Table>>> = crate::fs::StatMemo::new();
    MEMO.get_or_make(path, |text| {
        Ok::<_, ()>(toml::from_str::<toml::Table>(text).ok().map(Arc::new))
    })
    .ok()
    .flatten()
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    pub has_pyproject: bool,
    /// `[project]` exists (PEP 621): what uv needs to sync a project.
    pub has_project_table: bool,
    /// `[build-system]` exists.
    pub has_build_system: bool,
    pub setup_py: bool,
    /// PEP 503: `[project].name`, else `[tool.poetry].name`, else
    /// `setup.cfg`'s `[metadata] name`.
    pub name: Option<String>,
    /// `[project].dynamic`.
    pub dynamic: Vec<String>,
    /// `[tool.uv].package`.
    pub uv_package: Option<bool>,
}

impl ProjectInfo {
    /// Reads `dir`'s project files; missing or unreadable files count as absent.
    pub fn read(dir: &Utf8Path) -> ProjectInfo {
        let mut info = ProjectInfo {
            setup_py: dir.join("setup.py").is_file(),
            ..ProjectInfo::default()
        };
        if let Some(parsed) = pyproject(&dir.join("pyproject.toml")) {
            info.has_pyproject = true;
            if let Some(t) = parsed {
                info.apply_pyproject(&t);
            }
        }
        if info.name.is_none() {
            if let Ok(text) = std::fs::read_to_string(dir.join("setup.cfg")) {
                info.name = setup_cfg_name(&text).map(|n| normalize_name(&n));
            }
        }
        info
    }

    fn apply_pyproject(&mut self, t: &toml::Table) {
        self.has_build_system = t.contains_key("build-system");
        if let Some(p) = t.get("project").and_then(|p| p.as_table()) {
            self.has_project_table = true;
            self.name = p.get("name").and_then(|n| n.as_str()).map(normalize_name);
            self.dynamic = p
                .get("dynamic")
                .and_then(|d| d.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
        }
        let tool = t.get("tool");
        if self.name.is_none() {
            self.name = tool
                .and_then(|x| x.get("poetry"))
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .map(normalize_name);
        }
        self.uv_package = tool
            .and_then(|x| x.get("uv"))
            .and_then(|u| u.get("package"))
            .and_then(|p| p.as_bool());
    }

    /// pip can build and install it: a `setup.py`, or a `pyproject.toml`
    /// with a `[build-system]` or a `[project]` table.
    pub fn installable(&self) -> bool {
        self.setup_py || self.has_build_system || self.has_project_table
    }

    /// `dependencies` is listed in `[project].dynamic`: the build backend
    /// computes them, and a static list beside it is rejected.
    pub fn dynamic_dependencies(&self) -> bool {
        self.dynamic.iter().any(|d| d == "dependencies")
    }
}

/// Does a uv workspace `members` glob match a path (both `/`-separated,
/// relative to the workspace root)? uv expands members with the `glob`
/// crate's directory walk, so the same crate decides here: `*`, `?` and
/// `[…]` stay inside one segment, `**` spans segments.
pub fn member_glob_match(pattern: &str, path: &str) -> bool {
    glob_with(pattern, path, true)
}

/// Does a uv workspace `exclude` glob match a path? uv tests excludes with
/// `glob::Pattern::matches_path` and its default options, where `*` also
/// crosses `/`.
pub fn exclude_glob_match(pattern: &str, path: &str) -> bool {
    glob_with(pattern, path, false)
}

fn glob_with(pattern: &str, path: &str, literal_separator: bool) -> bool {
    fn clean(s: &str) -> String {
        s.split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect::<Vec<_>>()
            .join("/")
    }
    let Ok(p) = glob::Pattern::new(&clean(pattern)) else {
        return false;
    };
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: literal_separator,
        require_literal_leading_dot: false,
    };
    p.matches_with(&clean(path), opts)
}

/// A directory's `[tool.uv.workspace]`: its `members` and `exclude` globs.
type WorkspaceDecl = Option<Arc<(Vec<String>, Vec<String>)>>;

thread_local! {
    /// Directory → its workspace declaration, while a
    /// [`remember_workspaces`] scope is open on this thread.
    static WORKSPACES: std::cell::RefCell<Option<std::collections::HashMap<Utf8PathBuf, WorkspaceDecl>>> =
        const { std::cell::RefCell::new(None) };
}

/// While the returned guard lives, [`uv_workspace_root`] on this thread
/// looks at each directory's `pyproject.toml` once: a sync or check of a
/// thousand services under `services/` asks a thousand times about the
/// same `services/`, workspace root and directories above it. Whoever
/// writes a `pyproject.toml` inside the scope calls [`forget_workspaces`].
pub fn remember_workspaces() -> impl Drop {
    struct Scope(bool);
    impl Drop for Scope {
        fn drop(&mut self) {
            if self.0 {
                WORKSPACES.with(|w| *w.borrow_mut() = None);
            }
        }
    }
    let opened = WORKSPACES.with(|w| {
        let mut w = w.borrow_mut();
        let fresh = w.is_none();
        if fresh {
            *w = Some(Default::default());
        }
        fresh
    });
    Scope(opened)
}

/// Drops what an open [`remember_workspaces`] scope learnt (a
/// `pyproject.toml` was written).
pub fn forget_workspaces() {
    WORKSPACES.with(|w| {
        if let Some(m) = w.borrow_mut().as_mut() {
            m.clear();
        }
    });
}

/// `dir/pyproject.toml`'s `[tool.uv.workspace]`, remembered inside a scope.
fn workspace_decl(dir: &Utf8Path) -> WorkspaceDecl {
    let read = || {
        pyproject(&dir.join("pyproject.toml"))
            .flatten()
            .and_then(|t| {
                let ws = t.get("tool")?.get("uv")?.get("workspace")?;
                let list = |k: &str| -> Vec<String> {
                    ws.get(k)
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                Some(Arc::new((list("members"), list("exclude"))))
            })
    };
    let known = WORKSPACES.with(|w| w.borrow().as_ref().map(|m| m.get(dir).cloned()));
    match known {
        None => read(),
        Some(Some(decl)) => decl,
        Some(None) => {
            let decl = read();
            WORKSPACES.with(|w| {
                if let Some(m) = w.borrow_mut().as_mut() {
                    m.insert(dir.to_path_buf(), decl.clone());
                }
            });
            decl
        }
    }
}

/// The root of the uv workspace that `dir` is a member of, looking up from
/// `dir` no further than `boundary` (e.g. a git checkout): a
/// `pyproject.toml` whose `[tool.uv.workspace]` `members` match `dir` and
/// whose `exclude` does not. `None` for a project that is not a member.
pub fn uv_workspace_root(dir: &Utf8Path, boundary: &Utf8Path) -> Option<Utf8PathBuf> {
    let mut cur = dir.parent();
    while let Some(d) = cur {
        if !d.starts_with(boundary) {
            return None;
        }
        if let Some(decl) = workspace_decl(d) {
            let (members, excludes) = &*decl;
            let rel = dir.strip_prefix(d).ok()?.as_str().to_string();
            let member = members.iter().any(|m| member_glob_match(m, &rel));
            let excluded = excludes.iter().any(|e| exclude_glob_match(e, &rel));
            return (member && !excluded).then(|| d.to_path_buf());
        }
        cur = d.parent();
    }
    None
}

/// `name = …` in the `[metadata]` section of a `setup.cfg`.
fn setup_cfg_name(text: &str) -> Option<String> {
    let mut in_metadata = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_metadata = l == "[metadata]";
            continue;
        }
        if in_metadata {
            if let Some((k, v)) = l.split_once('=') {
                if k.trim() == "name" {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pep621_poetry_and_setup_cfg() {
        let d = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(d.path()).unwrap();
        std::fs::write(
            dir.join("pyproject.toml"),
            "[tool.poetry]\nname = \"Old_Style\"\n[build-system]\nrequires = [\"poetry-core<2\"]\n",
        )
        .unwrap();
        let i = ProjectInfo::read(dir);
        assert!(!i.has_project_table && i.has_build_system && i.installable());
        assert_eq!(i.name.as_deref(), Some("old-style"));
        std::fs::write(
            dir.join("pyproject.toml"),
            "[project]\nname = \"x\"\ndynamic = [\"version\", \"dependencies\"]\n",
        )
        .unwrap();
        assert!(ProjectInfo::read(dir).dynamic_dependencies());
        std::fs::remove_file(dir.join("pyproject.toml")).unwrap();
        std::fs::write(
            dir.join("setup.cfg"),
            "[options]\nname = no\n[metadata]\nname = Legacy.Pkg\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("setup.py"),
            "from setuptools import setup; setup()\n",
        )
        .unwrap();
        let i = ProjectInfo::read(dir);
        assert_eq!(i.name.as_deref(), Some("legacy-pkg"));
        assert!(i.installable() && !i.has_pyproject);
    }

    #[test]
    fn finds_the_uv_workspace_a_member_belongs_to() {
        let d = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(d.path()).unwrap();
        std::fs::create_dir_all(root.join("packages/api")).unwrap();
        std::fs::create_dir_all(root.join("tools/x")).unwrap();
        std::fs::write(
            root.join("pyproject.toml"),
            "[tool.uv.workspace]\nmembers = [\"packages/[a]*\", \"tools/*\"]\nexclude = [\"tools/x\"]\n",
        )
        .unwrap();
        assert_eq!(
            uv_workspace_root(&root.join("packages/api"), root).as_deref(),
            Some(root)
        );
        assert_eq!(uv_workspace_root(&root.join("tools/x"), root), None);
        assert_eq!(
            uv_workspace_root(&root.join("packages/api"), &root.join("packages")),
            None
        );
    }
}
