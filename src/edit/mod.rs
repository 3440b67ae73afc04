//! Editing the user's files: the manifest (selection) and the registry.
//!
//! Every edit goes through `toml_edit`, so comments, key order, blank lines
//! and quoting elsewhere in a file survive. An edit is staged in a
//! [`Session`], loaded and resolved from memory (validated), and only then
//! written, atomically and only where something changed. A refused edit
//! leaves every file byte for byte as it was.

pub mod array;
pub mod references;
pub mod registry;
pub mod selection;

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};
use toml_edit::{DocumentMut, Item, Table};

use crate::error::{Error, Result, Seg};
use crate::fs::FileTxn;
use crate::manifest::{load, load_with, Loaded, Overlay};

/// The files a command changed. Empty when the command had nothing to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Files that did not exist before.
    pub created: Vec<Utf8PathBuf>,
    /// Existing files that were changed.
    pub written: Vec<Utf8PathBuf>,
    pub removed: Vec<Utf8PathBuf>,
    /// What rolling back an interrupted sync did first, if there was one.
    pub recovered: Option<String>,
    /// The text each file of `written` had before (for `-v`'s diffs).
    pub before: std::collections::BTreeMap<Utf8PathBuf, String>,
}

impl Outcome {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.written.is_empty() && self.removed.is_empty()
    }
}

/// Staged edits of a workspace's manifest and registry files.
pub struct Session {
    pub root: Utf8PathBuf,
    /// The manifest and registry as they are on disk.
    pub loaded: Loaded,
    docs: BTreeMap<Utf8PathBuf, DocumentMut>,
    texts: BTreeMap<Utf8PathBuf, String>,
    removed: BTreeSet<Utf8PathBuf>,
}

impl Session {
    /// Loads the workspace's manifest and registry; editing starts from a
    /// valid configuration (an invalid one is reported as it is).
    pub fn open(root: &Utf8Path) -> Result<Session> {
        let loaded = load(root)?;
        Ok(Session {
            root: root.to_owned(),
            loaded,
            docs: BTreeMap::new(),
            texts: BTreeMap::new(),
            removed: BTreeSet::new(),
        })
    }

    /// The current text of `path`: staged, cached from loading, or on disk.
    fn original_text(&self, path: &Utf8Path) -> Result<Option<String>> {
        if let Some(t) = self.loaded.sources.get(path) {
            return Ok(Some(t.as_str().to_owned()));
        }
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::failed(format!("cannot read `{path}`: {e}"))),
        }
    }

    /// The TOML document of `path`, parsed once and edited in place. A file
    /// that does not exist starts as an empty document.
    pub fn doc(&mut self, path: &Utf8Path) -> Result<&mut DocumentMut> {
        if !self.docs.contains_key(path) {
            let text = self.original_text(path)?.unwrap_or_default();
            let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
                Error::config(format!("`{path}` is not valid TOML: {}", e.message()))
            })?;
            self.removed.remove(path);
            self.docs.insert(path.to_owned(), doc);
        }
        Ok(self.docs.get_mut(path).expect("inserted above"))
    }

    /// Stages the whole text of a non-TOML file (`.gitignore`).
    pub fn set_text(&mut self, path: &Utf8Path, text: String) {
        self.texts.insert(path.to_owned(), text);
    }

    /// The staged or current text of a non-TOML file.
    pub fn text(&self, path: &Utf8Path) -> Result<Option<String>> {
        match self.texts.get(path) {
            Some(t) => Ok(Some(t.clone())),
            None => self.original_text(path),
        }
    }

    /// Stages the removal of a file.
    pub fn remove_file(&mut self, path: &Utf8Path) {
        self.docs.remove(path);
        self.removed.insert(path.to_owned());
    }

    /// The manifest's own table: the document root of `hsm.toml`, or
    /// `[workspace.metadata.hsm]` / `[package.metadata.hsm]` of `Cargo.toml`.
    pub fn manifest(&mut self) -> Result<&mut Table> {
        let path = self.loaded.manifest_path.clone();
        let prefix = self.loaded.location.key_prefix();
        let shown = self.loaded.sources.display_path(&path);
        let mut t = self.doc(&path)?.as_table_mut();
        let mut at = String::new();
        for seg in prefix.segs() {
            if let Seg::Key(k) = seg {
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(k);
                t = t.get_mut(k).and_then(Item::as_table_mut).ok_or_else(|| {
                    Error::config(format!(
                        "`{at}` in `{shown}` is written as an inline table, which `cargo hsm` cannot edit without reformatting it"
                    ))
                    .with_help(format!("write it as a `[{at}]` table"))
                })?;
            }
        }
        Ok(t)
    }

    /// The files as they would be after the staged edits; unchanged files
    /// are left out.
    fn overlay(&self) -> Result<Overlay> {
        let mut ov = Overlay::default();
        for (path, doc) in &self.docs {
            let new = doc.to_string();
            if self.original_text(path)?.as_deref() != Some(new.as_str()) {
                ov.files.insert(path.clone(), Some(new));
            }
        }
        for (path, text) in &self.texts {
            if self.original_text(path)?.as_deref() != Some(text.as_str()) {
                ov.files.insert(path.clone(), Some(text.clone()));
            }
        }
        for path in &self.removed {
            if path.exists() {
                ov.files.insert(path.clone(), None);
            }
        }
        Ok(ov)
    }

    /// Loads and resolves the staged state from memory: the edit is refused
    /// (exit 2, nothing written) when the result would not be valid.
    pub fn validate(&self) -> Result<Loaded> {
        let ov = self.overlay()?;
        let loaded = load_with(&self.root, &ov)?;
        crate::resolve(&loaded)?;
        Ok(loaded)
    }

    /// Validates, then writes every changed file atomically; on a write
    /// error every file is restored.
    /// A sync that was killed is rolled back first (it never wrote these
    /// files, so the staged edits still apply).
    pub fn commit(self) -> Result<Outcome> {
        let ov = self.overlay()?;
        let recovered = crate::materialize::journal::recover_interrupted(&self.root)?
            .map(|r| crate::materialize::journal::recovery_note(&r));
        if ov.files.is_empty() {
            return Ok(Outcome {
                recovered,
                ..Outcome::default()
            });
        }
        let loaded = load_with(&self.root, &ov)?;
        crate::resolve(&loaded)?;
        let mut out = write_overlay(&ov)?;
        out.recovered = recovered;
        Ok(out)
    }
}

/// Writes (or removes) the files of an overlay as one transaction.
pub(crate) fn write_overlay(ov: &Overlay) -> Result<Outcome> {
    let mut txn = FileTxn::new();
    let mut out = Outcome::default();
    let result: std::io::Result<()> = (|| {
        for (path, text) in &ov.files {
            match text {
                Some(t) => {
                    let old = std::fs::read_to_string(path).ok();
                    let existed = old.is_some() || path.exists();
                    if txn.write(path, t.as_bytes(), None)? {
                        if existed {
                            if let Some(old) = old {
                                out.before.insert(path.clone(), old);
                            }
                            out.written.push(path.clone());
                        } else {
                            out.created.push(path.clone());
                        }
                    }
                }
                None => {
                    if txn.remove(path)? {
                        out.removed.push(path.clone());
                    }
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            txn.commit();
            Ok(out)
        }
        Err(e) => {
            let failed = txn.rollback();
            let mut err = Error::failed(format!("could not write the edited files: {e}"));
            if !failed.is_empty() {
                let list: Vec<String> = failed.iter().map(|(p, e)| format!("{p}: {e}")).collect();
                err = err.with_detail(format!(
                    "these files could not be restored:\n{}",
                    list.join("\n")
                ));
            }
            Err(err)
        }
    }
}

/// The table `key` of `parent`, created as a `[header]` table when missing.
pub(crate) fn section<'t>(parent: &'t mut Table, key: &str, what: &str) -> Result<&'t mut Table> {
    if !parent.contains_key(key) {
        let mut t = Table::new();
        t.set_implicit(true);
        parent.insert(key, Item::Table(t));
    }
    parent
        .get_mut(key)
        .and_then(Item::as_table_mut)
        .ok_or_else(|| {
            Error::config(format!(
                "`{what}` is not a table that `cargo hsm` can edit (an inline table or a value)"
            ))
            .with_help(format!("write it as a `[{what}]` table"))
        })
}
