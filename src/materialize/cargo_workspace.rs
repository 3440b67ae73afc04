//! The monorepo's Cargo workspace and the Rust crates inside hsm's
//! checkouts. A git-sourced service that is a Rust crate (a maturin/PyO3
//! extension module) is cloned inside the workspace's directory; cargo,
//! when the service's build backend runs it, walks up to the workspace's
//! `Cargo.toml` and refuses to build a package that is not one of its
//! members ("current package believes it's in a workspace when it's
//! not"). cargo's own fix is `[workspace].exclude`: hsm adds the checkout
//! there with `toml_edit`, keeping the user's formatting, and only when
//! nothing else (an exclude of its own, or a `[workspace]` inside the
//! checkout) already keeps the crate out.

use camino::{Utf8Component, Utf8Path, Utf8PathBuf};
use toml_edit::{Array, DocumentMut, Item, Value};

use crate::error::{Error, Result};

/// Whether the checkout at `checkout` (absolute) holds, at `target`
/// (absolute, inside it), a Cargo package that cargo would place in an
/// enclosing workspace: the package's manifest (`Cargo.toml`, or maturin's
/// `[tool.maturin].manifest-path`) with no `[workspace]` table at or above
/// it up to the checkout's root.
pub fn crate_needs_exclude(checkout: &Utf8Path, target: &Utf8Path) -> bool {
    package_manifest(target).is_some_and(|m| own_workspace(checkout, &m).is_none())
}

/// Where cargo writes the `Cargo.lock` of the crate that a Python build
/// backend builds at `target` (absolute, inside the checkout at
/// `checkout`): at the root of the crate's own workspace within the
/// checkout, else beside its manifest. `None` when there is no crate.
pub fn cargo_lock(checkout: &Utf8Path, target: &Utf8Path) -> Option<Utf8PathBuf> {
    let manifest = package_manifest(target)?;
    let dir =
        own_workspace(checkout, &manifest).or_else(|| manifest.parent().map(Utf8Path::to_owned))?;
    Some(dir.join("Cargo.lock"))
}

/// The directory of the `Cargo.toml` with a `[workspace]` table at or above
/// `manifest`'s directory, up to the checkout's root.
fn own_workspace(checkout: &Utf8Path, manifest: &Utf8Path) -> Option<Utf8PathBuf> {
    let mut dir = manifest.parent();
    while let Some(d) = dir {
        if !d.starts_with(checkout) {
            break;
        }
        let text = std::fs::read_to_string(d.join("Cargo.toml")).unwrap_or_default();
        if text
            .parse::<DocumentMut>()
            .is_ok_and(|doc| doc.contains_key("workspace"))
        {
            return Some(d.to_owned());
        }
        dir = d.parent();
    }
    None
}

/// The Cargo manifest a Python build backend builds at `target`.
fn package_manifest(target: &Utf8Path) -> Option<Utf8PathBuf> {
    let pyproject = std::fs::read_to_string(target.join("pyproject.toml")).unwrap_or_default();
    // Parsed only when it may name one: a no-op sync reads, never parses.
    let named = pyproject
        .contains("manifest-path")
        .then(|| pyproject.parse::<DocumentMut>().ok())
        .flatten()
        .and_then(|doc| {
            doc.get("tool")?
                .get("maturin")?
                .get("manifest-path")?
                .as_str()
                .map(str::to_string)
        });
    let manifest = crate::paths::normalize(&target.join(named.as_deref().unwrap_or("Cargo.toml")));
    manifest.is_file().then_some(manifest)
}

/// `text` (the workspace's `Cargo.toml` at `path`) with each of `paths`
/// (relative to its directory) in `[workspace].exclude`, unless an entry
/// there already covers it. Unchanged text when there is nothing to add or
/// the file declares no `[workspace]`.
pub fn with_excludes(text: &str, path: &Utf8Path, paths: &[Utf8PathBuf]) -> Result<String> {
    let mut doc = text.parse::<DocumentMut>().map_err(|e| {
        Error::config(format!("`{path}` is not valid TOML"))
            .with_detail(e.to_string())
            .with_help("fix the file, then run `cargo hsm sync` again")
    })?;
    let Some(ws) = doc.get_mut("workspace").and_then(|w| w.as_table_like_mut()) else {
        return Ok(text.to_string());
    };
    let existing: Vec<String> = ws
        .get("exclude")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<&Utf8PathBuf> = paths
        .iter()
        .filter(|p| !existing.iter().any(|e| covers(Utf8Path::new(e), p)))
        .collect();
    if missing.is_empty() {
        return Ok(text.to_string());
    }
    let ex = ws
        .entry("exclude")
        .or_insert(Item::Value(Value::Array(Array::new())));
    let arr = ex
        .as_array_mut()
        .ok_or_else(|| Error::config(format!("`workspace.exclude` in `{path}` is not an array")))?;
    for p in missing {
        arr.push(p.as_str());
    }
    Ok(doc.to_string())
}

/// Whether the exclude entry `entry` keeps `path` out (cargo compares
/// paths by prefix, component by component).
fn covers(entry: &Utf8Path, path: &Utf8Path) -> bool {
    let parts = |p: &Utf8Path| -> Vec<String> {
        crate::paths::normalize(p)
            .components()
            .filter(|c| !matches!(c, Utf8Component::CurDir))
            .map(|c| c.as_str().to_string())
            .collect()
    };
    parts(path).starts_with(&parts(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Utf8PathBuf {
        Utf8PathBuf::from(s)
    }

    #[test]
    fn adds_only_what_no_entry_covers_and_keeps_formatting() {
        let text =
            "# the monorepo\n[workspace]\nmembers = [\"crates/*\"]  # ours\nresolver = \"2\"\n";
        let path = Utf8Path::new("Cargo.toml");
        let out = with_excludes(text, path, &[p("services/ext")]).unwrap();
        assert!(out.contains("members = [\"crates/*\"]  # ours"), "{out}");
        assert!(out.contains("exclude = [\"services/ext\"]"), "{out}");
        assert_eq!(
            with_excludes(&out, path, &[p("services/ext")]).unwrap(),
            out
        );
        let covered = "[workspace]\nexclude = [\"./services\"]\n";
        assert_eq!(
            with_excludes(covered, path, &[p("services/ext")]).unwrap(),
            covered
        );
        let package = "[package]\nname = \"x\"\n";
        assert_eq!(
            with_excludes(package, path, &[p("services/ext")]).unwrap(),
            package
        );
        assert!(!covers(
            Utf8Path::new("services/e"),
            Utf8Path::new("services/ext")
        ));
        assert!(with_excludes("[workspace", path, &[]).is_err());
    }

    #[test]
    fn a_crate_with_its_own_workspace_needs_no_exclude() {
        let d = tempfile::tempdir().unwrap();
        let co = Utf8PathBuf::from_path_buf(d.path().to_owned()).unwrap();
        assert!(!crate_needs_exclude(&co, &co), "no Cargo.toml, no crate");
        std::fs::write(co.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert!(crate_needs_exclude(&co, &co));
        std::fs::write(
            co.join("Cargo.toml"),
            "[package]\nname = \"x\"\n[workspace]\n",
        )
        .unwrap();
        assert!(!crate_needs_exclude(&co, &co));
        // maturin's manifest-path, below the Python project.
        let py = co.join("py");
        std::fs::create_dir_all(py.join("rust")).unwrap();
        std::fs::write(
            py.join("pyproject.toml"),
            "[tool.maturin]\nmanifest-path = \"rust/Cargo.toml\"\n",
        )
        .unwrap();
        std::fs::write(py.join("rust/Cargo.toml"), "[package]\nname = \"y\"\n").unwrap();
        assert!(
            !crate_needs_exclude(&co, &py),
            "the checkout's workspace holds it"
        );
        assert_eq!(cargo_lock(&co, &py), Some(co.join("Cargo.lock")));
        std::fs::write(co.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert!(crate_needs_exclude(&co, &py));
        assert_eq!(cargo_lock(&co, &py), Some(py.join("rust/Cargo.lock")));
        assert_eq!(cargo_lock(&co, &co.join("nothing")), None);
    }
}
