//! Edits of the registry: entries added and removed, implications added and
//! removed, in the place each entry lives (a `<name>.toml` of the registry
//! directory, or an inline `[registry.<kind>.<name>]` table of the manifest).

use camino::Utf8PathBuf;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

use super::{array, section, Session};
use crate::error::{Error, KeyPath, Result, Seg};
use crate::manifest::model::{RuntimeType, Strategy};
use crate::names;

/// The four kinds of registry entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Library,
    Service,
    LibraryGroup,
    ServiceGroup,
}

impl EntryKind {
    /// The folder of the registry directory and the key under `[registry]`.
    pub fn dir(self) -> &'static str {
        match self {
            EntryKind::Library => "libraries",
            EntryKind::Service => "services",
            EntryKind::LibraryGroup => "library_groups",
            EntryKind::ServiceGroup => "service_groups",
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            EntryKind::Library => "library",
            EntryKind::Service => "service",
            EntryKind::LibraryGroup => "library group",
            EntryKind::ServiceGroup => "service group",
        }
    }
}

/// Where an entry is defined, when it is.
fn origin(s: &Session, kind: EntryKind, name: &str) -> Option<crate::error::Location> {
    let r = &s.loaded.registry;
    match kind {
        EntryKind::Library => r.libraries.get(name).map(|e| e.origin.clone()),
        EntryKind::Service => r.services.get(name).map(|e| e.origin.clone()),
        EntryKind::LibraryGroup => r.library_groups.get(name).map(|e| e.origin.clone()),
        EntryKind::ServiceGroup => r.service_groups.get(name).map(|e| e.origin.clone()),
    }
}

fn names_of(s: &Session, kind: EntryKind) -> Vec<&str> {
    let r = &s.loaded.registry;
    match kind {
        EntryKind::Library => r.libraries.keys().map(String::as_str).collect(),
        EntryKind::Service => r.services.keys().map(String::as_str).collect(),
        EntryKind::LibraryGroup => r.library_groups.keys().map(String::as_str).collect(),
        EntryKind::ServiceGroup => r.service_groups.keys().map(String::as_str).collect(),
    }
}

fn unknown(s: &Session, kind: EntryKind, name: &str) -> Error {
    let e = Error::config(format!(
        "unknown {} `{name}`: it is not in the registry",
        kind.word()
    ));
    match names::did_you_mean(name, names_of(s, kind)) {
        Some(k) => e.with_help(format!("did you mean `{k}`?")),
        None => e.with_help("`cargo hsm registry list` shows what the registry defines"),
    }
}

/// Whether `name` is defined, and where.
pub fn exists(s: &Session, kind: EntryKind, name: &str) -> bool {
    origin(s, kind, name).is_some()
}

/// Adds an entry; refuses a name that is already registered. New entries go
/// to the registry directory when the manifest names one, else inline.
pub fn add_entry(
    s: &mut Session,
    kind: EntryKind,
    name: &str,
    entry: Table,
) -> Result<Utf8PathBuf> {
    names::validate(name)
        .map_err(|why| Error::config(format!("invalid {} name: {why}", kind.word())))?;
    if let Some(at) = origin(s, kind, name) {
        // The same definition again: nothing to do.
        let new: Option<toml::Table> = entry_document(entry.clone()).to_string().parse().ok();
        let old: Option<toml::Table> = entry_text(s, kind, name).ok().and_then(|t| t.parse().ok());
        if new.is_some() && new == old {
            return Ok(at.file.to_path_buf());
        }
        return Err(Error::config(format!(
            "the {} `{name}` is already registered, with a different definition, in {}",
            kind.word(),
            s.loaded.sources.describe(&at)
        ))
        .with_help(format!(
            "remove it first with `cargo hsm registry {} remove {name}`, or pick another name",
            match kind {
                EntryKind::Library => "library",
                EntryKind::Service => "service",
                _ => "group",
            }
        )));
    }
    match s.loaded.registry_dir.clone() {
        Some(dir) => {
            let path = dir.join(kind.dir()).join(format!("{name}.toml"));
            if path.exists() {
                return Err(Error::config(format!(
                    "`{path}` already exists; refusing to overwrite it"
                )));
            }
            let doc = s.doc(&path)?;
            *doc = entry_document(entry);
            Ok(path)
        }
        None => {
            let path = s.loaded.manifest_path.clone();
            let m = s.manifest()?;
            let reg = section(m, "registry", "registry")?;
            let kinds = section(reg, kind.dir(), &format!("registry.{}", kind.dir()))?;
            kinds.insert(name, Item::Table(entry));
            Ok(path)
        }
    }
}

/// A registry file's document from an entry table: its keys, then its tables.
fn entry_document(entry: Table) -> DocumentMut {
    let mut doc = DocumentMut::new();
    for (k, v) in entry.into_iter() {
        doc.insert(&k, v);
    }
    doc
}

/// Removes an entry: its file, or its inline table. Refused, with every
/// place that names it, while anything still does (its selection in the
/// manifest included).
pub fn remove_entry(s: &mut Session, kind: EntryKind, name: &str) -> Result<()> {
    if origin(s, kind, name).is_none() {
        return Err(unknown(s, kind, name));
    }
    let refs = super::references::references(s, kind, name);
    if !refs.is_empty() {
        let help = if refs.iter().all(|r| r.selection)
            && !matches!(kind, EntryKind::LibraryGroup | EntryKind::ServiceGroup)
        {
            format!("unselect it and remove it in one step with `cargo hsm remove {name} --purge`")
        } else {
            "remove or change those places first (`cargo hsm remove`, `cargo hsm group remove-option`, `cargo hsm registry … implies remove`)".to_string()
        };
        return Err(super::references::still_referenced(
            s, kind, name, &refs, &help,
        ));
    }
    remove_entry_unchecked(s, kind, name)
}

/// [`remove_entry`] without looking for references: for a caller that
/// removed them in the same session (`remove --purge`).
pub fn remove_entry_unchecked(s: &mut Session, kind: EntryKind, name: &str) -> Result<()> {
    let Some(at) = origin(s, kind, name) else {
        return Err(unknown(s, kind, name));
    };
    if kind == EntryKind::Service {
        drop_reinclude(s, name)?;
    }
    if at.key_path.is_empty() {
        s.remove_file(&at.file);
        return Ok(());
    }
    let m = s.manifest()?;
    if let Some(t) = m
        .get_mut("registry")
        .and_then(|r| r.get_mut(kind.dir()))
        .and_then(Item::as_table_like_mut)
    {
        t.remove(name);
    }
    Ok(())
}

/// The `!/<path>/` line that `service init` added to `.gitignore` for a
/// local service, removed with the service's entry.
fn drop_reinclude(s: &mut Session, name: &str) -> Result<()> {
    let Some(e) = s.loaded.registry.services.get(name) else {
        return Ok(());
    };
    let lines: Vec<String> = [&e.value.sources.prod, &e.value.sources.dev]
        .into_iter()
        .flatten()
        .filter_map(|src| match src {
            crate::manifest::model::Source::Local { path, .. } => Some(format!(
                "!/{}/",
                path.as_str().trim_start_matches("./").trim_end_matches('/')
            )),
            _ => None,
        })
        .collect();
    let gi = s.root.join(".gitignore");
    let Some(text) = s.text(&gi)? else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !lines.iter().any(|x| x == l.trim()))
        .collect();
    if kept.len() != text.lines().count() {
        let mut t = kept.join("\n");
        t.push('\n');
        s.set_text(&gi, t);
    }
    Ok(())
}

/// The table of an existing entry, to edit in place.
fn entry_table<'s>(s: &'s mut Session, kind: EntryKind, name: &str) -> Result<&'s mut Table> {
    let Some(at) = origin(s, kind, name) else {
        return Err(unknown(s, kind, name));
    };
    if at.key_path.is_empty() {
        return Ok(s.doc(&at.file)?.as_table_mut());
    }
    let m = s.manifest()?;
    let path = format!("registry.{}.{name}", kind.dir());
    m.get_mut("registry")
        .and_then(|r| r.get_mut(kind.dir()))
        .and_then(|k| k.get_mut(name))
        .and_then(Item::as_table_mut)
        .ok_or_else(|| {
            Error::config(format!(
                "`{path}` is written as an inline table, which `cargo hsm` cannot edit without reformatting it"
            ))
            .with_help(format!("write it as a `[{path}]` table"))
        })
}

/// Sets `sources.<which>` of an existing entry (`add requests@>=2.32` on a
/// registered library); `false` when it already says that.
pub fn set_source(
    s: &mut Session,
    kind: EntryKind,
    name: &str,
    which: &str,
    spec: &SourceSpec,
) -> Result<bool> {
    let t = entry_table(s, kind, name)?;
    let sources = section(t, "sources", "sources")?;
    let want: Option<toml::Table> = entry_document(spec.table()).to_string().parse().ok();
    let have: Option<toml::Table> = match sources.get(which) {
        Some(Item::Table(t)) => entry_document(t.clone()).to_string().parse().ok(),
        Some(Item::Value(Value::InlineTable(t))) => entry_document(t.clone().into_table())
            .to_string()
            .parse()
            .ok(),
        _ => None,
    };
    if want.is_some() && want == have {
        return Ok(false);
    }
    sources.insert(which, Item::Table(spec.table()));
    Ok(true)
}

/// The value of an implication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Implied {
    /// `"library:x" = true`
    Flag,
    /// `"library_group:g" = "o"` or `["a", "b"]`
    Options(Vec<String>),
    /// `"service:s" = { params = { k = "v" } }`
    Params(Vec<(String, String)>),
}

fn implied_value(v: &Implied) -> Value {
    match v {
        Implied::Flag => Value::from(true),
        Implied::Options(o) if o.len() == 1 => Value::from(o[0].as_str()),
        Implied::Options(o) => Value::Array(o.iter().map(String::as_str).collect()),
        Implied::Params(ps) => {
            let mut params = InlineTable::new();
            for (k, v) in ps {
                params.insert(k, Value::from(v.as_str()));
            }
            let mut t = InlineTable::new();
            t.insert("params", Value::InlineTable(params));
            t.fmt();
            Value::InlineTable(t)
        }
    }
}

fn check_target(target: &str) -> Result<()> {
    let ok = target.split_once(':').is_some_and(|(k, n)| {
        matches!(k, "library" | "library_group" | "service" | "service_group")
            && names::validate(n).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "invalid implication target `{target}`"
        ))
        .with_help("targets are `library:<name>`, `library_group:<name>`, `service:<name>` or `service_group:<name>`"))
    }
}

/// `registry … implies add NAME TARGET`: adds or replaces one implication of
/// an entry, or of one option of a group (`option`).
pub fn implies_add(
    s: &mut Session,
    kind: EntryKind,
    name: &str,
    option: Option<&str>,
    target: &str,
    value: &Implied,
) -> Result<()> {
    check_target(target)?;
    let v = implied_value(value);
    match option {
        None => {
            if matches!(kind, EntryKind::LibraryGroup | EntryKind::ServiceGroup) {
                return Err(Error::config(
                    "implications of a group belong to one of its options; name it with `--option`",
                ));
            }
            let t = entry_table(s, kind, name)?;
            let imp = section(t, "implies", "implies")?;
            imp.set_implicit(false);
            set_value(imp, target, v);
        }
        Some(o) => {
            let opt = group_option(s, kind, name, o)?;
            let imp = match opt.get_mut("implies") {
                Some(Value::InlineTable(t)) => t,
                _ => {
                    opt.insert("implies", Value::InlineTable(InlineTable::new()));
                    opt.get_mut("implies")
                        .and_then(Value::as_inline_table_mut)
                        .expect("inserted")
                }
            };
            if !imp.get(target).is_some_and(|old| same_value(old, &v)) {
                imp.insert(target, v);
                imp.fmt();
            }
            opt.fmt();
        }
    }
    Ok(())
}

/// Removes one implication. Not there: nothing to do.
pub fn implies_remove(
    s: &mut Session,
    kind: EntryKind,
    name: &str,
    option: Option<&str>,
    target: &str,
) -> Result<()> {
    match option {
        None => {
            let t = entry_table(s, kind, name)?;
            let empty = match t.get_mut("implies").and_then(Item::as_table_like_mut) {
                Some(imp) => {
                    imp.remove(target);
                    imp.is_empty()
                }
                None => false,
            };
            if empty {
                t.remove("implies");
            }
        }
        Some(o) => {
            let opt = group_option(s, kind, name, o)?;
            let empty = match opt.get_mut("implies").and_then(Value::as_inline_table_mut) {
                Some(imp) => {
                    imp.remove(target);
                    imp.is_empty()
                }
                None => false,
            };
            if empty {
                opt.remove("implies");
            }
        }
    }
    Ok(())
}

/// An option of a group entry as an inline table (`"x"` becomes `{ name = "x" }`).
fn group_option<'s>(
    s: &'s mut Session,
    kind: EntryKind,
    group: &str,
    option: &str,
) -> Result<&'s mut InlineTable> {
    if !matches!(kind, EntryKind::LibraryGroup | EntryKind::ServiceGroup) {
        return Err(Error::config(
            "`--option` applies to groups: implications of one of their options",
        ));
    }
    let t = entry_table(s, kind, group)?;
    let opts = t
        .get_mut("options")
        .and_then(Item::as_array_mut)
        .ok_or_else(|| Error::config(format!("the {} `{group}` has no `options`", kind.word())))?;
    let idx = opts.iter().position(|v| match v {
        Value::String(st) => st.value() == option,
        Value::InlineTable(t) => t.get("name").and_then(Value::as_str) == Some(option),
        _ => false,
    });
    let Some(i) = idx else {
        return Err(Error::config(format!(
            "the {} `{group}` has no option `{option}`",
            kind.word()
        )));
    };
    let v = opts.get_mut(i).expect("found");
    if let Value::String(st) = v {
        let name = st.value().clone();
        let decor = st.decor().clone();
        let mut t = InlineTable::new();
        t.insert("name", Value::from(name));
        let mut nv = Value::InlineTable(t);
        *nv.decor_mut() = decor;
        *v = nv;
    }
    Ok(v.as_inline_table_mut().expect("made inline above"))
}

/// Equal values, ignoring the whitespace and comments around them.
fn same_value(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| {
        let mut v = v.clone();
        v.decor_mut().clear();
        if let Value::InlineTable(t) = &mut v {
            t.fmt();
        }
        if let Value::Array(a) = &mut v {
            a.fmt();
        }
        v.to_string()
    };
    norm(a) == norm(b)
}

fn set_value(t: &mut Table, key: &str, v: Value) {
    match t.get_mut(key) {
        Some(Item::Value(old)) if same_value(old, &v) => {}
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = v;
            *old.decor_mut() = decor;
        }
        _ => {
            t.insert(key, Item::Value(v));
        }
    }
}

/// The fields of one source: `type=git,url=…,ref=v1`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSpec(pub Vec<(String, String)>);

impl std::str::FromStr for SourceSpec {
    type Err = String;
    /// `type=git,url=…,ref=v1`, or a TOML inline table for values with
    /// commas: `{ type = "pypi", version = ">=1.26,<3" }`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let v = if s.trim_start().starts_with('{') {
            inline_source(s)?
        } else {
            let mut v = Vec::new();
            for part in s.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, val) = part.split_once('=').ok_or_else(|| {
                    format!("`{part}` is not `key=value`; write a source as `type=git,url=…,ref=…`, `type=local,path=…`, `type=pypi,version=…`, `type=docker-image,image=…` or `type=build,path=…`, or, for a value with a comma, as a TOML inline table: `{{ type = \"pypi\", version = \">=1.26,<3\" }}`")
                })?;
                v.push((k.trim().to_string(), val.trim().to_string()));
            }
            v
        };
        if !v.iter().any(|(k, _)| k == "type") {
            return Err("a source needs `type=` (git, local, pypi, docker-image or build)".into());
        }
        Ok(SourceSpec(v))
    }
}

/// The fields of a source written as a TOML inline table.
fn inline_source(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let doc: toml::Table = toml::from_str(&format!("source = {s}"))
        .map_err(|e| format!("`{s}` is not a TOML inline table: {}", e.message()))?;
    let Some(toml::Value::Table(t)) = doc.get("source") else {
        return Err(format!("`{s}` is not a TOML inline table"));
    };
    t.iter()
        .map(|(k, v)| match v {
            toml::Value::String(x) => Ok((k.clone(), x.clone())),
            toml::Value::Boolean(b) => Ok((k.clone(), b.to_string())),
            other => Err(format!(
                "`{k}` is a {}; the fields of a source are strings (and `editable`, a boolean)",
                other.type_str()
            )),
        })
        .collect()
}

impl SourceSpec {
    /// `pypi, version >=2.31`: the source in words, for status lines.
    pub fn describe(&self) -> String {
        let ty = self
            .0
            .iter()
            .find(|(k, _)| k == "type")
            .map_or("source", |(_, v)| v.as_str());
        let rest: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k != "type")
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if rest.is_empty() {
            ty.to_string()
        } else {
            format!("{ty}, {}", rest.join(", "))
        }
    }
    pub fn local(path: &str, editable: Option<bool>) -> SourceSpec {
        let mut v = vec![
            ("type".to_string(), "local".to_string()),
            ("path".to_string(), path.to_string()),
        ];
        if let Some(e) = editable {
            v.push(("editable".to_string(), e.to_string()));
        }
        SourceSpec(v)
    }
    fn table(&self) -> Table {
        let mut t = Table::new();
        for (k, v) in &self.0 {
            let val = if k == "editable" && (v == "true" || v == "false") {
                Value::from(v == "true")
            } else {
                Value::from(v.as_str())
            };
            t.insert(k, Item::Value(val));
        }
        t
    }
}

/// `KEY=VALUE`, for `--env`, `--param`, `--external`.
pub fn parse_pair(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not `KEY=VALUE`"))?;
    if k.trim().is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((k.trim().to_string(), v.to_string()))
}

fn sources_table(prod: &Option<SourceSpec>, dev: &Option<SourceSpec>) -> Option<Table> {
    if prod.is_none() && dev.is_none() {
        return None;
    }
    let mut t = Table::new();
    t.set_implicit(true);
    if let Some(p) = prod {
        t.insert("prod", Item::Table(p.table()));
    }
    if let Some(d) = dev {
        t.insert("dev", Item::Table(d.table()));
    }
    Some(t)
}

fn str_array(items: &[String]) -> Value {
    Value::Array(items.iter().map(String::as_str).collect::<Array>())
}

fn pairs_table(items: &[(String, String)]) -> Value {
    let mut t = InlineTable::new();
    for (k, v) in items {
        t.insert(k, Value::from(v.as_str()));
    }
    t.fmt();
    Value::InlineTable(t)
}

/// Everything a library entry holds.
#[derive(Debug, Clone, Default)]
pub struct LibrarySpec {
    pub description: Option<String>,
    pub prod: Option<SourceSpec>,
    pub dev: Option<SourceSpec>,
}

impl LibrarySpec {
    pub fn table(&self) -> Table {
        let mut t = Table::new();
        if let Some(d) = &self.description {
            t.insert("description", toml_edit::value(d.as_str()));
        }
        if let Some(s) = sources_table(&self.prod, &self.dev) {
            t.insert("sources", Item::Table(s));
        }
        t
    }
}

/// Everything a service entry holds, with one deployment profile.
#[derive(Debug, Clone, Default)]
pub struct ServiceSpec {
    pub description: Option<String>,
    pub dependencies: Vec<String>,
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    pub env: Vec<(String, String)>,
    pub env_file: Vec<String>,
    pub depends_on: Vec<String>,
    pub container_name: Option<String>,
    pub restart: Option<String>,
    pub aliases: Vec<String>,
    pub prod: Option<SourceSpec>,
    pub dev: Option<SourceSpec>,
    /// Name of the deployment profile the next fields describe (`default`).
    pub profile: Option<String>,
    pub profile_mode: Option<String>,
    pub runtime: Option<RuntimeType>,
    pub command: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub profile_env: Vec<(String, String)>,
    pub external: Vec<(String, String)>,
}

impl ServiceSpec {
    pub fn table(&self) -> Table {
        let mut t = Table::new();
        if let Some(d) = &self.description {
            t.insert("description", toml_edit::value(d.as_str()));
        }
        let lists: [(&str, &Vec<String>); 6] = [
            ("dependencies", &self.dependencies),
            ("ports", &self.ports),
            ("volumes", &self.volumes),
            ("env-file", &self.env_file),
            ("depends-on", &self.depends_on),
            ("aliases", &self.aliases),
        ];
        for (k, v) in lists {
            if !v.is_empty() {
                t.insert(k, Item::Value(str_array(v)));
            }
        }
        if !self.env.is_empty() {
            t.insert("env", Item::Value(pairs_table(&self.env)));
        }
        if let Some(c) = &self.container_name {
            t.insert("container-name", toml_edit::value(c.as_str()));
        }
        if let Some(r) = &self.restart {
            t.insert("restart", toml_edit::value(r.as_str()));
        }
        if let Some(s) = sources_table(&self.prod, &self.dev) {
            t.insert("sources", Item::Table(s));
        }
        let mut p = Table::new();
        if let Some(m) = &self.profile_mode {
            p.insert("mode", toml_edit::value(m.as_str()));
        }
        if let Some(r) = self.runtime {
            p.insert("runtime", toml_edit::value(r.as_str()));
        }
        if let Some(c) = &self.command {
            p.insert("command", Item::Value(str_array(c)));
        }
        if let Some(w) = &self.working_dir {
            p.insert("working-dir", toml_edit::value(w.as_str()));
        }
        if !self.profile_env.is_empty() {
            p.insert("env", Item::Value(pairs_table(&self.profile_env)));
        }
        if !self.external.is_empty() {
            p.insert("external", Item::Value(pairs_table(&self.external)));
        }
        // A named profile is worth writing even when empty (it exists, with
        // the defaults); an empty `default` says nothing.
        if !p.is_empty() || self.profile.as_deref().is_some_and(|n| n != "default") {
            let mut profiles = Table::new();
            profiles.set_implicit(true);
            profiles.insert(self.profile.as_deref().unwrap_or("default"), Item::Table(p));
            t.insert("deployment-profiles", Item::Table(profiles));
        }
        t
    }
}

/// Everything a group entry holds.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub strategy: Strategy,
    pub options: Vec<String>,
    pub comment: Option<String>,
    pub description: Option<String>,
}

impl GroupSpec {
    pub fn table(&self) -> Table {
        let mut t = Table::new();
        t.insert("strategy", toml_edit::value(self.strategy.to_string()));
        if let Some(c) = &self.comment {
            t.insert("comment", toml_edit::value(c.as_str()));
        }
        if let Some(d) = &self.description {
            t.insert("description", toml_edit::value(d.as_str()));
        }
        let mut a = Array::new();
        for o in &self.options {
            if !a.iter().any(|v| v.as_str() == Some(o.as_str())) {
                array::push(&mut a, Value::from(o.as_str()));
            }
        }
        t.insert("options", Item::Value(Value::Array(a)));
        t
    }
}

/// The key path of an entry, for messages: `registry.services.x` or a file.
pub fn describe(s: &Session, kind: EntryKind, name: &str) -> Option<String> {
    defined_in(s, kind, name).map(|(file, kp)| match kp {
        None => format!("`{file}`"),
        Some(kp) => format!("`{file}` at `{kp}`"),
    })
}

/// Where an entry is defined: the file (relative to the workspace root)
/// and, for an inline entry, its table's key path.
pub fn defined_in(
    s: &Session,
    kind: EntryKind,
    name: &str,
) -> Option<(Utf8PathBuf, Option<String>)> {
    origin(s, kind, name).map(|o| {
        let shown = s.loaded.sources.display_path(&o.file);
        if o.key_path.is_empty() {
            (shown, None)
        } else {
            let kp = KeyPath::from_segs(
                o.key_path
                    .segs()
                    .into_iter()
                    .filter(|s| matches!(s, Seg::Key(_)))
                    .cloned(),
            );
            (shown, Some(kp.to_string()))
        }
    })
}

/// The TOML text of an entry: its file, or its inline table as a file of
/// its own would hold it.
pub fn entry_text(s: &Session, kind: EntryKind, name: &str) -> Result<String> {
    let Some(at) = origin(s, kind, name) else {
        return Err(unknown(s, kind, name));
    };
    let text = s
        .loaded
        .sources
        .get(&at.file)
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default();
    if at.key_path.is_empty() {
        return Ok(text);
    }
    let doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Error::config(e.message().to_string()))?;
    let mut item = doc.as_item();
    for seg in at.key_path.segs() {
        if let Seg::Key(k) = seg {
            item = item
                .get(&**k)
                .ok_or_else(|| Error::config(format!("cannot find `{}`", at.key_path)))?;
        }
    }
    let table = match item {
        Item::Table(t) => t.clone(),
        Item::Value(Value::InlineTable(t)) => t.clone().into_table(),
        _ => return Err(Error::config(format!("`{}` is not a table", at.key_path))),
    };
    let mut t = table;
    t.set_implicit(false);
    t.decor_mut().clear();
    let mut out = entry_document(t).to_string();
    if out.starts_with('\n') {
        out.remove(0);
    }
    Ok(out)
}
