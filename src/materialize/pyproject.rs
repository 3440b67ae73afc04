//! Edits of a `pyproject.toml` with `toml_edit`: hsm adds and removes only
//! its own entries in `[project].dependencies`, `[tool.uv.sources]` and
//! `[tool.uv.workspace].exclude`, and remembers which they are in a
//! `[tool.hsm]` table of the same file, so the user's entries, comments and
//! order survive every sync.

use camino::{Utf8Component, Utf8Path, Utf8PathBuf};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

use crate::error::{Error, Result};
use crate::manifest::model::Source;

const KEY_DEPS: &str = "managed-dependencies";
const KEY_SOURCES: &str = "managed-sources";
const KEY_EXCLUDE: &str = "managed-workspace-exclude";

/// What hsm wants in one `pyproject.toml`.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// Requirement strings for `[project].dependencies`.
    pub dependencies: Vec<String>,
    /// `[tool.uv.sources]` entries, by package name.
    pub sources: Vec<(String, InlineTable)>,
    /// Paths for `[tool.uv.workspace].exclude`.
    pub workspace_exclude: Vec<String>,
}

/// The result of an edit: the new text (equal to the input when nothing
/// changes) and things worth a warning.
#[derive(Debug, Clone)]
pub struct Edited {
    pub text: String,
    pub warnings: Vec<String>,
}

use crate::python::requirement_key as requirement_name;

/// `to` relative to the directory `from` (both relative to the same base),
/// lexically. Absolute `to` stays absolute.
pub fn relative_path(from: &Utf8Path, to: &Utf8Path) -> Utf8PathBuf {
    if to.is_absolute() {
        return to.to_owned();
    }
    let norm = |p: &Utf8Path| -> Vec<String> {
        crate::paths::normalize(p)
            .components()
            .filter(|c| !matches!(c, Utf8Component::CurDir))
            .map(|c| c.as_str().to_string())
            .collect()
    };
    let (f, t) = (norm(from), norm(to));
    let common = f.iter().zip(t.iter()).take_while(|(a, b)| a == b).count();
    let mut out = Utf8PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for part in &t[common..] {
        out.push(part);
    }
    if out.as_str().is_empty() {
        Utf8PathBuf::from(".")
    } else {
        out
    }
}

fn looks_like_version(r: &str) -> bool {
    let r = r.strip_prefix('v').unwrap_or(r);
    r.starts_with(|c: char| c.is_ascii_digit())
}

/// The `[tool.uv.sources]` entry for a library source, seen from the
/// directory `project_dir` (relative to the workspace root). `None` for
/// sources that need no entry (`pypi`).
pub fn uv_source(source: &Source, project_dir: &Utf8Path) -> Option<InlineTable> {
    let mut t = InlineTable::new();
    match source {
        Source::Git {
            url,
            reference,
            subdirectory,
            ..
        } => {
            t.insert("git", url.as_str().into());
            if let Some(r) = reference {
                let is_sha =
                    (7..=40).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit());
                let key = if !is_sha && looks_like_version(r) {
                    "tag"
                } else {
                    "rev"
                };
                t.insert(key, r.as_str().into());
            }
            if let Some(sub) = subdirectory {
                t.insert("subdirectory", sub.as_str().into());
            }
        }
        Source::Local { path, editable, .. } => {
            let rel = relative_path(project_dir, path);
            t.insert("path", rel.as_str().into());
            t.insert("editable", editable.unwrap_or(true).into());
        }
        _ => return None,
    }
    Some(t)
}

fn string_list(item: Option<&Item>) -> Vec<String> {
    item.and_then(|i| i.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn parse(text: &str, path: &Utf8Path) -> Result<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|e| {
        Error::config(format!("`{path}` is not valid TOML"))
            .with_detail(e.to_string())
            .with_help("fix the file, then run `cargo hsm sync` again")
    })
}

/// The `[tool.hsm]` record of what hsm manages in this file.
fn recorded(doc: &DocumentMut) -> Wanted {
    let hsm = doc.get("tool").and_then(|t| t.get("hsm"));
    let sources = string_list(hsm.and_then(|h| h.get(KEY_SOURCES)))
        .into_iter()
        .map(|n| (n, InlineTable::new()))
        .collect();
    Wanted {
        dependencies: string_list(hsm.and_then(|h| h.get(KEY_DEPS))),
        sources,
        workspace_exclude: string_list(hsm.and_then(|h| h.get(KEY_EXCLUDE))),
    }
}

/// Whether the file already holds exactly what hsm wants.
fn already_applied(doc: &DocumentMut, want: &Wanted) -> bool {
    let rec = recorded(doc);
    let names = |w: &Wanted| -> Vec<String> { w.sources.iter().map(|(n, _)| n.clone()).collect() };
    if rec.dependencies != want.dependencies
        || names(&rec) != names(want)
        || rec.workspace_exclude != want.workspace_exclude
    {
        return false;
    }
    let deps = string_list(doc.get("project").and_then(|p| p.get("dependencies")));
    if !want.dependencies.iter().all(|d| deps.contains(d)) {
        return false;
    }
    let sources = doc
        .get("tool")
        .and_then(|t| t.get("uv"))
        .and_then(|u| u.get("sources"));
    for (name, table) in &want.sources {
        let Some(cur) = sources.and_then(|s| s.get(name)) else {
            return false;
        };
        let cur = match cur {
            Item::Value(Value::InlineTable(t)) => t.clone(),
            Item::Table(t) => t.clone().into_inline_table(),
            _ => return false,
        };
        if !same_table(&cur, table) {
            return false;
        }
    }
    let excl = string_list(
        doc.get("tool")
            .and_then(|t| t.get("uv"))
            .and_then(|u| u.get("workspace"))
            .and_then(|w| w.get("exclude")),
    );
    want.workspace_exclude.iter().all(|e| excl.contains(e))
}

fn same_table(a: &InlineTable, b: &InlineTable) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            b.get(k)
                .is_some_and(|w| v.to_string().trim() == w.to_string().trim())
        })
}

/// The comment that ends the line before a value (`"a",  # note` keeps
/// `  # note` in the next value's prefix or in the array's trailing text).
fn split_comment(decor: &str) -> Option<(&str, &str)> {
    let nl = decor.rfind('\n')?;
    decor[..nl]
        .contains('#')
        .then(|| (&decor[..nl], &decor[nl..]))
}

/// Pushes a string onto an array, following the layout of its last element
/// and keeping a comment that ends the last line where it was.
fn push_like(arr: &mut Array, s: &str) {
    let prefix = arr.iter().last().and_then(|v| {
        v.decor()
            .prefix()
            .and_then(|p| p.as_str())
            .map(str::to_string)
    });
    let multiline = prefix.as_deref().is_some_and(|p| p.contains('\n'));
    let mut v = Value::from(s);
    match prefix {
        Some(p) if multiline => {
            let indent = &p[p.rfind('\n').unwrap_or(0)..];
            let trailing = arr.trailing().as_str().unwrap_or("").to_string();
            let new_prefix = match split_comment(&trailing) {
                Some((comment, rest)) => {
                    arr.set_trailing(rest.to_string());
                    format!("{comment}{indent}")
                }
                None => indent.to_string(),
            };
            v.decor_mut().set_prefix(new_prefix);
            arr.push_formatted(v);
            arr.set_trailing_comma(true);
        }
        Some(_) => {
            v.decor_mut().set_prefix(" ");
            arr.push_formatted(v);
        }
        None => arr.push(s),
    }
}

/// Removes the strings `pred` picks, handing a comment in a removed value's
/// prefix on to the next value (or the array's trailing text).
fn remove_values(arr: &mut Array, pred: impl Fn(&str) -> bool) {
    let mut i = arr.len();
    while i > 0 {
        i -= 1;
        let hit = arr.get(i).and_then(|v| v.as_str()).is_some_and(&pred);
        if !hit {
            continue;
        }
        let prefix = arr
            .get(i)
            .and_then(|v| {
                v.decor()
                    .prefix()
                    .and_then(|p| p.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        arr.remove(i);
        if let Some((comment, _)) = split_comment(&prefix) {
            let comment = comment.to_string();
            if let Some(next) = arr.get_mut(i) {
                let p = next
                    .decor()
                    .prefix()
                    .and_then(|p| p.as_str())
                    .unwrap_or("")
                    .to_string();
                next.decor_mut().set_prefix(format!("{comment}{p}"));
            } else {
                let t = arr.trailing().as_str().unwrap_or("").to_string();
                arr.set_trailing(format!("{comment}{t}"));
            }
        }
    }
    if arr.is_empty() {
        arr.set_trailing_comma(false);
    }
}

fn table_mut<'a>(parent: &'a mut Table, key: &str) -> Result<&'a mut Table> {
    let item = parent.entry(key).or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    item.as_table_mut()
        .ok_or_else(|| Error::config(format!("`{key}` is not a table")))
}

/// Applies `want` to the text of a `pyproject.toml` at `path`.
pub fn apply(text: &str, path: &Utf8Path, want: &Wanted) -> Result<Edited> {
    let mut doc = parse(text, path)?;
    if already_applied(&doc, want) {
        return Ok(Edited {
            text: text.to_string(),
            warnings: Vec::new(),
        });
    }
    let rec = recorded(&doc);
    let mut warnings = Vec::new();
    let mut kept = Wanted::default();

    // [project].dependencies
    if !want.dependencies.is_empty() || !rec.dependencies.is_empty() {
        let project = doc
            .get_mut("project")
            .and_then(|p| p.as_table_like_mut())
            .ok_or_else(|| {
                Error::config(format!("`{path}` has no `[project]` table"))
                    .with_help("add `[project]` with `name`, `version` and `dependencies = []`")
            })?;
        let deps = project
            .entry("dependencies")
            .or_insert(Item::Value(Value::Array(Array::new())));
        let arr = deps.as_array_mut().ok_or_else(|| {
            Error::config(format!(
                "`project.dependencies` in `{path}` is not an array"
            ))
        })?;
        remove_values(arr, |s| rec.dependencies.iter().any(|r| r == s));
        for d in &want.dependencies {
            let name = requirement_name(d);
            let user = arr
                .iter()
                .filter_map(|v| v.as_str())
                .find(|s| requirement_name(s) == name)
                .map(str::to_string);
            match user {
                Some(u) => warnings.push(format!(
                    "`{path}` already requires `{u}`; hsm leaves it as it is instead of adding `{d}`"
                )),
                None => {
                    push_like(arr, d);
                    kept.dependencies.push(d.clone());
                }
            }
        }
    }

    // [tool.uv.sources] and [tool.uv.workspace].exclude
    let needs_tool = !want.sources.is_empty()
        || !rec.sources.is_empty()
        || !want.workspace_exclude.is_empty()
        || !rec.workspace_exclude.is_empty();
    if needs_tool {
        let root = doc.as_table_mut();
        let tool = table_mut(root, "tool")?;
        let uv = table_mut(tool, "uv")?;
        if !want.sources.is_empty() || !rec.sources.is_empty() {
            let existed = uv.contains_key("sources");
            let sources = table_mut(uv, "sources")?;
            let mut removed_any = false;
            for (name, _) in &rec.sources {
                removed_any |= sources.remove(name).is_some();
            }
            for (name, t) in &want.sources {
                if sources.contains_key(name) {
                    warnings.push(format!(
                        "`{path}` already has `[tool.uv.sources].{name}`; hsm leaves it as it is"
                    ));
                    continue;
                }
                sources.insert(name, Item::Value(Value::InlineTable(t.clone())));
                kept.sources.push((name.clone(), t.clone()));
            }
            if sources.is_empty() && (removed_any || !existed) {
                uv.remove("sources");
            } else if !existed {
                sources.set_implicit(false);
            }
        }
        if !want.workspace_exclude.is_empty() || !rec.workspace_exclude.is_empty() {
            if let Some(ws) = uv.get_mut("workspace").and_then(|w| w.as_table_like_mut()) {
                let had = ws.contains_key("exclude");
                let ex = ws
                    .entry("exclude")
                    .or_insert(Item::Value(Value::Array(Array::new())));
                let arr = ex.as_array_mut().ok_or_else(|| {
                    Error::config(format!(
                        "`tool.uv.workspace.exclude` in `{path}` is not an array"
                    ))
                })?;
                remove_values(arr, |s| rec.workspace_exclude.iter().any(|r| r == s));
                for e in &want.workspace_exclude {
                    if arr.iter().any(|v| v.as_str() == Some(e)) {
                        continue;
                    }
                    push_like(arr, e);
                    kept.workspace_exclude.push(e.clone());
                }
                if arr.is_empty() && (!had || !rec.workspace_exclude.is_empty()) {
                    ws.remove("exclude");
                }
            }
        }
        if uv.is_empty() {
            tool.remove("uv");
        }
    }

    // [tool.hsm]: the record of what is ours.
    {
        let root = doc.as_table_mut();
        let any = !kept.dependencies.is_empty()
            || !kept.sources.is_empty()
            || !kept.workspace_exclude.is_empty();
        if any {
            let tool = table_mut(root, "tool")?;
            let mut hsm = Table::new();
            hsm.decor_mut().set_prefix(
                "\n# Entries that `cargo hsm sync` manages in this file (it edits nothing else).\n",
            );
            let list = |xs: Vec<String>| -> Item {
                let mut a = Array::new();
                for x in xs {
                    a.push(x);
                }
                Item::Value(Value::Array(a))
            };
            if !kept.dependencies.is_empty() {
                hsm.insert(KEY_DEPS, list(kept.dependencies.clone()));
            }
            if !kept.sources.is_empty() {
                hsm.insert(
                    KEY_SOURCES,
                    list(kept.sources.iter().map(|(n, _)| n.clone()).collect()),
                );
            }
            if !kept.workspace_exclude.is_empty() {
                hsm.insert(KEY_EXCLUDE, list(kept.workspace_exclude.clone()));
            }
            match tool.get_mut("hsm").and_then(|h| h.as_table_mut()) {
                Some(existing) => {
                    for k in [KEY_DEPS, KEY_SOURCES, KEY_EXCLUDE] {
                        existing.remove(k);
                    }
                    for (k, v) in hsm.iter() {
                        existing.insert(k, v.clone());
                    }
                }
                None => {
                    tool.insert("hsm", Item::Table(hsm));
                }
            }
        } else if let Some(tool) = root.get_mut("tool").and_then(|t| t.as_table_mut()) {
            if let Some(h) = tool.get_mut("hsm").and_then(|h| h.as_table_mut()) {
                for k in [KEY_DEPS, KEY_SOURCES, KEY_EXCLUDE] {
                    h.remove(k);
                }
                if h.is_empty() {
                    tool.remove("hsm");
                }
            }
        }
        if let Some(tool) = root.get("tool").and_then(|t| t.as_table()) {
            if tool.is_empty() && tool.is_implicit() {
                root.remove("tool");
            }
        }
    }

    Ok(Edited {
        text: doc.to_string(),
        warnings,
    })
}

pub use crate::python::project::{exclude_glob_match, member_glob_match as glob_match};

/// The uv workspace that the root `pyproject.toml` declares: its member and
/// exclude globs. `None` when it declares none.
pub fn workspace_globs(text: &str, path: &Utf8Path) -> Result<Option<(Vec<String>, Vec<String>)>> {
    let doc = parse(text, path)?;
    let Some(ws) = doc
        .get("tool")
        .and_then(|t| t.get("uv"))
        .and_then(|u| u.get("workspace"))
    else {
        return Ok(None);
    };
    Ok(Some((
        string_list(ws.get("members")),
        string_list(ws.get("exclude")),
    )))
}

/// The exclusions hsm manages (recorded in `[tool.hsm]`).
pub fn managed_excludes(text: &str, path: &Utf8Path) -> Result<Vec<String>> {
    Ok(recorded(&parse(text, path)?).workspace_exclude)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = r#"[project]
name = "root"
version = "0.1.0"
# the user's own dependencies
dependencies = [
    "requests>=2",  # keep me
]

[tool.uv.sources]
requests = { path = "../vendored/requests" }
"#;

    fn p() -> &'static Utf8Path {
        Utf8Path::new("pyproject.toml")
    }

    fn want_lib() -> Wanted {
        let mut src = InlineTable::new();
        src.insert("path", "libs/a".into());
        src.insert("editable", true.into());
        Wanted {
            dependencies: vec!["alpha".into()],
            sources: vec![("alpha".into(), src)],
            workspace_exclude: vec![],
        }
    }

    #[test]
    fn adds_then_removes_only_hsm_entries() {
        let added = apply(USER, p(), &want_lib()).unwrap();
        assert!(
            added.text.contains("\"requests>=2\",  # keep me"),
            "{}",
            added.text
        );
        assert!(added.text.contains("    \"alpha\",\n]"), "{}", added.text);
        assert!(added
            .text
            .contains("alpha = { path = \"libs/a\", editable = true }"));
        assert!(added.text.contains("managed-dependencies = [\"alpha\"]"));
        // Applying again changes nothing.
        let again = apply(&added.text, p(), &want_lib()).unwrap();
        assert_eq!(again.text, added.text);
        // Removing the library restores the user's file byte for byte.
        let removed = apply(&added.text, p(), &Wanted::default()).unwrap();
        assert_eq!(removed.text, USER);
    }

    #[test]
    fn never_replaces_a_user_entry() {
        let mut w = want_lib();
        w.dependencies = vec!["Requests".into()];
        w.sources[0].0 = "requests".into();
        let e = apply(USER, p(), &w).unwrap();
        assert_eq!(e.warnings.len(), 2, "{:?}", e.warnings);
        assert!(e
            .text
            .contains("requests = { path = \"../vendored/requests\" }"));
        assert!(!e.text.contains("managed-"));
    }

    #[test]
    fn workspace_exclude_is_added_and_removed() {
        let text = "[project]\nname = \"r\"\nversion = \"0\"\ndependencies = []\n\n[tool.uv.workspace]\nmembers = [\"services/*\"]\n";
        let w = Wanted {
            workspace_exclude: vec!["services/foo".into()],
            ..Default::default()
        };
        let e = apply(text, p(), &w).unwrap();
        assert!(
            e.text.contains("exclude = [\"services/foo\"]"),
            "{}",
            e.text
        );
        let back = apply(&e.text, p(), &Wanted::default()).unwrap();
        assert_eq!(back.text, text);
    }

    #[test]
    fn globs_and_relative_paths() {
        assert!(glob_match("services/*", "services/foo"));
        assert!(!glob_match("services/*", "services/foo/bar"));
        assert!(glob_match("**/foo", "a/b/foo"));
        assert!(glob_match("./svc-?", "svc-1"));
        // Character classes, as uv (the `glob` crate) reads them.
        assert!(glob_match("services/[a]*", "services/api"));
        assert!(!glob_match("services/[a]*", "services/web"));
        assert!(glob_match("services/[!w]*", "services/api"));
        assert!(exclude_glob_match("services/*", "services/a/b"));
        assert_eq!(
            relative_path("services/a".into(), "libs/x".into()),
            "../../libs/x"
        );
        assert_eq!(relative_path(".".into(), "libs/x".into()), "libs/x");
        assert_eq!(requirement_name("Foo.Bar_baz>=1"), "foo-bar-baz");
    }
}
