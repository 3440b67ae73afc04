//! Node.js projects: which package manager a project uses, its
//! `package.json`, its lock file, and what is installed in its
//! `node_modules`. Used by the node runtime (materialize) and by the
//! inspector alike; nothing here spawns a process.

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;

/// The package manager that installs a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Manager {
    Npm,
    Pnpm,
    Yarn,
}

impl Manager {
    pub fn as_str(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::Yarn => "yarn",
        }
    }

    /// The lock file it writes.
    pub fn lockfile(self) -> &'static str {
        match self {
            Manager::Npm => "package-lock.json",
            Manager::Pnpm => "pnpm-lock.yaml",
            Manager::Yarn => "yarn.lock",
        }
    }
}

/// Every lock file a project may have, and who reads it; npm prefers
/// `npm-shrinkwrap.json` over `package-lock.json`.
pub const LOCKFILES: &[(&str, Manager)] = &[
    ("npm-shrinkwrap.json", Manager::Npm),
    ("package-lock.json", Manager::Npm),
    ("pnpm-lock.yaml", Manager::Pnpm),
    ("yarn.lock", Manager::Yarn),
];

/// The fields of `package.json` that name packages to install.
pub const DEPENDENCY_FIELDS: &[&str] = &[
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
];

/// What a project's files say, read once.
#[derive(Debug, Clone)]
pub struct Project {
    /// `package.json`, parsed; `None` when it does not exist.
    pub manifest: Option<Value>,
    pub manager: Manager,
    /// The version that `packageManager` in `package.json` pins
    /// (`pnpm@9.15.0` → `9.15.0`), when it names [`Project::manager`].
    pub pinned: Option<String>,
    /// The lock file present (relative to the project), if any.
    pub lockfile: Option<&'static str>,
}

impl Project {
    /// Reads `dir/package.json` and looks for lock files. The package
    /// manager is the one whose lock file is present (the one that
    /// `packageManager` names, when several are), else the one that
    /// `packageManager` names, else npm.
    pub fn read(dir: &Utf8Path) -> Result<Project, String> {
        let path = dir.join("package.json");
        let manifest = match std::fs::read_to_string(&path) {
            Ok(text) => Some(
                serde_json::from_str::<Value>(&text)
                    .map_err(|e| format!("`{path}` is not valid JSON: {e}"))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read `{path}`: {e}")),
        };
        let named = manifest
            .as_ref()
            .and_then(|m| m.get("packageManager"))
            .and_then(Value::as_str)
            .and_then(|s| {
                let (name, version) = s.split_once('@')?;
                let m = match name {
                    "npm" => Manager::Npm,
                    "pnpm" => Manager::Pnpm,
                    "yarn" => Manager::Yarn,
                    _ => return None,
                };
                // `yarn@4.5.3+sha512.…`: the version without its hash.
                let v = version.split('+').next().unwrap_or(version).to_string();
                Some((m, v))
            });
        let present: Vec<(&'static str, Manager)> = LOCKFILES
            .iter()
            .copied()
            .filter(|(f, _)| dir.join(f).is_file())
            .collect();
        let chosen = present
            .iter()
            .find(|(_, m)| named.as_ref().is_some_and(|(n, _)| n == m))
            .or(present.first())
            .copied();
        let (manager, lockfile) = match (chosen, &named) {
            (Some((f, m)), _) => (m, Some(f)),
            (None, Some((m, _))) => (*m, None),
            (None, None) => (Manager::Npm, None),
        };
        let pinned = named.filter(|(m, _)| *m == manager).map(|(_, v)| v);
        Ok(Project {
            manifest,
            manager,
            pinned,
            lockfile,
        })
    }

    /// The lock file the project has, or the one its manager will write.
    pub fn lockfile_name(&self) -> &'static str {
        self.lockfile.unwrap_or(self.manager.lockfile())
    }

    /// Whether `package.json` declares any package to install.
    pub fn has_dependencies(&self) -> bool {
        self.manifest.as_ref().is_some_and(|m| {
            DEPENDENCY_FIELDS.iter().any(|f| {
                m.get(f)
                    .and_then(Value::as_object)
                    .is_some_and(|o| !o.is_empty())
            })
        })
    }

    /// Yarn 2 or later ("berry"), whose lock and flags differ from Yarn 1's.
    pub fn is_yarn_berry(&self, dir: &Utf8Path) -> bool {
        if self.manager != Manager::Yarn {
            return false;
        }
        if let Some(v) = &self.pinned {
            return v.split('.').next().and_then(|m| m.parse::<u32>().ok()) >= Some(2);
        }
        std::fs::read_to_string(dir.join("yarn.lock")).is_ok_and(|t| t.contains("__metadata:"))
    }
}

/// Whether Yarn 2+ at `dir` installs into `node_modules` (`nodeLinker:
/// node-modules` in `.yarnrc.yml`) rather than Plug'n'Play.
pub fn yarn_uses_node_modules(dir: &Utf8Path) -> bool {
    let text = std::fs::read_to_string(dir.join(".yarnrc.yml")).unwrap_or_default();
    text.lines().any(|l| {
        let l = l.trim();
        l.strip_prefix("nodeLinker:")
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
            .is_some_and(|v| v == "node-modules")
    })
}

/// One entry of a field of `package.json` (or of a lock's root package).
type Declared = BTreeMap<String, BTreeMap<String, String>>;

fn declared(v: Option<&Value>) -> Declared {
    let mut out = Declared::new();
    for f in DEPENDENCY_FIELDS {
        let entries: BTreeMap<String, String> = v
            .and_then(|v| v.get(f))
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if !entries.is_empty() {
            out.insert(f.to_string(), entries);
        }
    }
    out
}

/// Whether npm's lock `lock` (text) records what `package.json` declares
/// now (its root package, `packages[""]`); otherwise the first difference,
/// in words. A lock of format 1 (npm 6) has no root package: trusted.
pub fn npm_lock_matches(manifest: &Value, lock: &str) -> Result<(), String> {
    let lock: Value = serde_json::from_str(lock).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(root) = lock.get("packages").map(|p| p.get("")) else {
        return Ok(());
    };
    let want = declared(Some(manifest));
    let have = declared(root);
    for f in DEPENDENCY_FIELDS {
        let (w, h) = (want.get(*f), have.get(*f));
        if w == h {
            continue;
        }
        let empty = BTreeMap::new();
        let (w, h) = (w.unwrap_or(&empty), h.unwrap_or(&empty));
        let names: BTreeSet<&String> = w.keys().chain(h.keys()).collect();
        for n in names {
            match (w.get(n), h.get(n)) {
                (Some(a), Some(b)) if a != b => {
                    return Err(format!(
                        "`{f}.{n}` is `{a}` in package.json but `{b}` in the lock"
                    ))
                }
                (Some(a), None) => {
                    return Err(format!(
                        "package.json's `{f}.{n}` (`{a}`) is not in the lock"
                    ))
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "the lock has `{f}.{n}`, which package.json no longer declares"
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// What a lock file says is installed: each package's versions, and the
/// ones that may be left out (optional, e.g. for another platform).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expected {
    pub packages: BTreeMap<String, BTreeSet<String>>,
    pub optional: BTreeSet<String>,
}

impl Expected {
    fn add(&mut self, name: &str, version: &str, optional: bool) {
        if name.is_empty() || version.is_empty() {
            return;
        }
        self.packages
            .entry(name.to_string())
            .or_default()
            .insert(version.to_string());
        if optional {
            self.optional.insert(name.to_string());
        }
    }
}

/// The packages that the lock `text` of `manager` installs.
pub fn expected(manager: Manager, text: &str) -> Result<Expected, String> {
    match manager {
        Manager::Npm => npm_expected(text),
        Manager::Pnpm => Ok(pnpm_expected(text)),
        Manager::Yarn => Ok(yarn_expected(text)),
    }
}

fn npm_expected(text: &str) -> Result<Expected, String> {
    let lock: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let mut out = Expected::default();
    if let Some(pkgs) = lock.get("packages").and_then(Value::as_object) {
        for (path, e) in pkgs {
            // Only what lands in a `node_modules`; a workspace link points
            // elsewhere.
            let Some(i) = path.rfind("node_modules/") else {
                continue;
            };
            if e.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let name = &path[i + "node_modules/".len()..];
            let version = e.get("version").and_then(Value::as_str).unwrap_or("");
            let optional = e.get("optional").and_then(Value::as_bool) == Some(true);
            out.add(name, version, optional);
        }
        return Ok(out);
    }
    // Format 1 (npm 6): a tree of `dependencies`.
    fn walk(deps: &Value, out: &mut Expected) {
        for (name, e) in deps.as_object().into_iter().flatten() {
            let version = e.get("version").and_then(Value::as_str).unwrap_or("");
            let optional = e.get("optional").and_then(Value::as_bool) == Some(true);
            out.add(name, version, optional);
            if let Some(d) = e.get("dependencies") {
                walk(d, out);
            }
        }
    }
    if let Some(d) = lock.get("dependencies") {
        walk(d, &mut out);
    }
    Ok(out)
}

/// `name@version` (a scoped name keeps its leading `@`).
fn split_at_version(s: &str) -> Option<(&str, &str)> {
    let i = s[1.min(s.len())..].find('@')? + 1.min(s.len());
    Some((&s[..i], &s[i + 1..]))
}

/// pnpm's lock (formats 6 and 9): the keys of `packages:`
/// (`is-number@7.0.0:`, `/is-number@7.0.0:`, `'@scope/x@1.0.0':`).
fn pnpm_expected(text: &str) -> Expected {
    let mut out = Expected::default();
    let mut in_packages = false;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_packages = line.trim_end() == "packages:";
            current = None;
            continue;
        }
        if !in_packages {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if indent == 2 && t.ends_with(':') {
            let key = t
                .trim_end_matches(':')
                .trim_matches(|c| c == '\'' || c == '"');
            let key = key.strip_prefix('/').unwrap_or(key);
            // Peer suffixes: `react-dom@18.2.0(react@18.2.0)`.
            let key = key.split('(').next().unwrap_or(key);
            if let Some((name, version)) = split_at_version(key) {
                out.add(name, version, false);
                current = Some(name.to_string());
            }
        } else if indent == 4 && t == "optional: true" {
            if let Some(n) = &current {
                out.optional.insert(n.clone());
            }
        }
    }
    out
}

/// Yarn's lock: Yarn 1 (`version "7.0.0"`) and Yarn 2+ (`resolution:
/// "is-number@npm:7.0.0"`); the project's own workspaces are left out.
fn yarn_expected(text: &str) -> Expected {
    let mut out = Expected::default();
    let mut key: Option<String> = None;
    // The package of the current entry, once its resolution is read.
    let mut name: Option<String> = None;
    let mut conditional = false;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            key = Some(line.trim_end_matches(':').to_string());
            name = None;
            conditional = false;
            continue;
        }
        let Some(k) = &key else { continue };
        if k.starts_with("__metadata") {
            continue;
        }
        let t = line.trim();
        if t.starts_with("conditions: ") {
            // Yarn 2+: a package for some platforms only (`os=darwin`),
            // before or after its resolution.
            conditional = true;
            if let Some(n) = &name {
                out.optional.insert(n.clone());
            }
        } else if let Some(r) = t.strip_prefix("resolution: ") {
            let r = r.trim_matches('"');
            if let Some((n, rest)) = split_at_version(r) {
                if let Some(v) = rest.strip_prefix("npm:") {
                    out.add(n, v, conditional);
                    name = Some(n.to_string());
                }
            }
        } else if let Some(v) = t.strip_prefix("version \"") {
            // Yarn 1: the name from the first descriptor of the key.
            let first = k.split(", ").next().unwrap_or(k).trim_matches('"');
            if let Some((name, _)) = split_at_version(first) {
                out.add(name, v.trim_end_matches('"'), false);
            }
        }
    }
    out
}

/// A package in `node_modules` whose own `package.json` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub path: Utf8PathBuf,
    pub why: String,
}

/// What is installed in `node_modules`: each package's versions, read from
/// the installed `package.json` files (nested `node_modules` and pnpm's
/// `.pnpm/*/node_modules` included; links are not packages of their own).
pub fn installed(node_modules: &Utf8Path) -> (BTreeMap<String, BTreeSet<String>>, Vec<Broken>) {
    let mut out = BTreeMap::new();
    let mut broken = Vec::new();
    walk(node_modules, &mut out, &mut broken);
    (out, broken)
}

fn entries(dir: &Utf8Path) -> Vec<(String, Utf8PathBuf)> {
    let mut v: Vec<(String, Utf8PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = Utf8PathBuf::from_path_buf(e.path()).ok()?;
            Some((p.file_name()?.to_string(), p))
        })
        .collect();
    v.sort();
    v
}

fn walk(
    node_modules: &Utf8Path,
    out: &mut BTreeMap<String, BTreeSet<String>>,
    broken: &mut Vec<Broken>,
) {
    for (name, path) in entries(node_modules) {
        if name == ".pnpm" {
            // pnpm leaves packages it no longer uses in its virtual store
            // until it prunes it (days later): what it installed now is what
            // its own record, `.pnpm/lock.yaml`, lists.
            let current = std::fs::read_to_string(path.join("lock.yaml"))
                .ok()
                .map(|t| pnpm_expected(&t));
            for (dir, store) in entries(&path) {
                let used = current.as_ref().is_none_or(|c| {
                    pnpm_store_entry(&dir)
                        .is_some_and(|(n, v)| c.packages.get(&n).is_some_and(|vs| vs.contains(&v)))
                });
                if used {
                    walk(&store.join("node_modules"), out, broken);
                }
            }
        } else if name.starts_with('.') {
            // `.bin`, `.package-lock.json`, `.modules.yaml`, `.cache`.
        } else if name.starts_with('@') {
            for (child, p) in entries(&path) {
                package(&format!("{name}/{child}"), &p, out, broken);
            }
        } else {
            package(&name, &path, out, broken);
        }
    }
}

/// The package and version of a directory of pnpm's virtual store:
/// `is-number@7.0.0`, `@scope+name@1.0.0`, `react-dom@18.2.0_react@18.2.0`.
fn pnpm_store_entry(dir: &str) -> Option<(String, String)> {
    let dir = match dir.strip_prefix('@') {
        Some(rest) => format!("@{}", rest.replacen('+', "/", 1)),
        None => dir.to_string(),
    };
    let (name, version) = split_at_version(&dir)?;
    let version = version.split('_').next().unwrap_or(version);
    Some((name.to_string(), version.to_string()))
}

fn package(
    name: &str,
    dir: &Utf8Path,
    out: &mut BTreeMap<String, BTreeSet<String>>,
    broken: &mut Vec<Broken>,
) {
    let is_link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
    if is_link || !dir.is_dir() {
        return;
    }
    let pj = dir.join("package.json");
    let version = std::fs::read_to_string(&pj)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        .and_then(|v| {
            v.get("version")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| "no `version` in it".to_string())
        });
    match version {
        Ok(v) => {
            out.entry(name.to_string()).or_default().insert(v);
        }
        Err(why) => broken.push(Broken { path: pj, why }),
    }
    let nested = dir.join("node_modules");
    if nested.is_dir() {
        walk(&nested, out, broken);
    }
}

/// How the `node_modules` of the directory `root` took in the project at
/// `service` (relative to `root`), each in words: a package manager that
/// treats the service as a workspace of the root's `package.json` links it
/// there and hoists its packages into the root. Empty when it did not.
/// Reads the top level of `node_modules` and the managers' own records.
pub fn adopted_by(root: &Utf8Path, service: &Utf8Path) -> Vec<String> {
    let nm = root.join("node_modules");
    if service.as_str().is_empty() || service == "." || !nm.is_dir() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let want = std::fs::canonicalize(root.join(service)).ok();
    let mut links = Vec::new();
    for (name, path) in entries(&nm) {
        let children = if name.starts_with('@') {
            entries(&path)
                .into_iter()
                .map(|(c, p)| (format!("{name}/{c}"), p))
                .collect()
        } else {
            vec![(name, path)]
        };
        for (name, path) in children {
            let is_link =
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            if is_link && want.is_some() && std::fs::canonicalize(&path).ok() == want {
                links.push(name);
            }
        }
    }
    for name in links {
        out.push(format!("`node_modules/{name}` links to `{service}`"));
    }
    // npm's record of the root's install lists its workspaces by path.
    let hidden = std::fs::read_to_string(nm.join(".package-lock.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    if hidden
        .as_ref()
        .and_then(|v| v.get("packages"))
        .and_then(|p| p.get(service.as_str()))
        .is_some()
    {
        out.push(format!(
            "npm's `node_modules/.package-lock.json` installs `{service}` as a workspace of the root"
        ));
    }
    // pnpm's: the importers of the root's install.
    let pnpm = std::fs::read_to_string(nm.join(".pnpm/lock.yaml")).unwrap_or_default();
    let key = format!("  {service}:");
    if pnpm.lines().any(|l| l == key) {
        out.push(format!(
            "pnpm's `node_modules/.pnpm/lock.yaml` installs `{service}` as a workspace of the root"
        ));
    }
    out
}

/// An npm package spec from a service's `dependencies`: `name`,
/// `name@range`, `@scope/name@range`. Returns the name and the range
/// (`latest` when none is given).
pub fn parse_spec(spec: &str) -> Result<(String, String), String> {
    let spec = spec.trim();
    let (name, range) = match split_at_version(spec) {
        Some((n, r)) => (n, r.trim()),
        None => (spec, "latest"),
    };
    if range.is_empty() {
        return Err(format!("`{spec}` has an empty version range after `@`"));
    }
    valid_name(name)?;
    Ok((name.to_string(), range.to_string()))
}

/// npm's rules for a package name: at most 214 characters, lowercase
/// URL-safe characters, optionally `@scope/`, not starting with `.` or `_`.
fn valid_name(name: &str) -> Result<(), String> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && !p.starts_with('_')
            && p.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_' | '~')
            })
    };
    let valid = name.len() <= 214
        && match name.strip_prefix('@') {
            Some(scoped) => scoped
                .split_once('/')
                .is_some_and(|(s, n)| ok_part(s) && ok_part(n)),
            None => ok_part(name),
        };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid npm package name (lowercase letters, digits, `-`, `.`, `_`, `~`; optionally `@scope/`)"
        ))
    }
}

/// Who owns the entries that hsm wants in a `package.json`'s
/// `dependencies`. JSON has no comments, so the file cannot say which
/// entries hsm added: `hsm.lock` records them (`name@range`, as hsm wrote
/// them), and this sorts out what that record means now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// hsm's entries after this sync (`name`, `range`), in the registry's
    /// order: what it writes, and what `hsm.lock` records.
    pub ours: Vec<(String, String)>,
    /// Names the registry lists that the user's own entries already
    /// declare (in any dependency field): left as they are, never recorded.
    pub users: Vec<String>,
    /// hsm's entries that the registry no longer lists, still in
    /// `dependencies` as hsm wrote them: what a sync removes.
    pub leftovers: Vec<String>,
}

/// The record of one entry, as `hsm.lock` keeps it.
pub fn record(name: &str, range: &str) -> String {
    format!("{name}@{range}")
}

/// What `manifest` (a parsed `package.json`) holds of `wanted`, given
/// `recorded`, the entries a previous sync added (see [`record`]). An
/// entry is hsm's while it reads as hsm wrote it; one the user changed,
/// or wrote before hsm came to add the same name, is the user's.
pub fn ownership(manifest: &Value, recorded: &[String], wanted: &[(String, String)]) -> Ownership {
    let recorded: BTreeMap<String, String> =
        recorded.iter().filter_map(|r| parse_spec(r).ok()).collect();
    let deps = manifest.get("dependencies").and_then(Value::as_object);
    let current = |n: &str| deps.and_then(|d| d.get(n)).and_then(Value::as_str);
    let declared_anywhere = |n: &str| {
        DEPENDENCY_FIELDS.iter().any(|f| {
            manifest
                .get(f)
                .and_then(Value::as_object)
                .is_some_and(|o| o.contains_key(n))
        })
    };
    let mut out = Ownership::default();
    for (name, range) in wanted {
        let ours = match (recorded.get(name), current(name)) {
            // As hsm wrote it, or gone: hsm's to write.
            (Some(r), Some(c)) => r == c,
            (Some(_), None) => !declared_anywhere(name),
            (None, _) => !declared_anywhere(name),
        };
        if ours {
            out.ours.push((name.clone(), range.clone()));
        } else {
            out.users.push(name.clone());
        }
    }
    for (name, range) in &recorded {
        if !wanted.iter().any(|(n, _)| n == name) && current(name) == Some(range.as_str()) {
            out.leftovers.push(name.clone());
        }
    }
    out
}

/// `package.json` (`text`) with each `(name, range)` in `dependencies`;
/// `None` when it already has them. Keeps its key order and indentation.
pub fn with_dependencies(text: &str, deps: &[(String, String)]) -> Result<Option<String>, String> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(obj) = v.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    let entry = obj
        .entry("dependencies")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(d) = entry.as_object_mut() else {
        return Err("its `dependencies` is not an object".into());
    };
    let mut changed = false;
    for (name, range) in deps {
        if d.get(name).and_then(Value::as_str) != Some(range.as_str()) {
            d.insert(name.clone(), Value::String(range.clone()));
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    // npm writes `JSON.stringify(pkg, null, indent)` with the file's own
    // indentation and a final newline; so does hsm.
    let indent: String = text
        .lines()
        .nth(1)
        .map(|l| l.chars().take_while(|c| *c == ' ' || *c == '\t').collect())
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| "  ".into());
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&v, &mut ser).map_err(|e| e.to_string())?;
    let mut out = String::from_utf8(buf).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_names_are_refused() {
        assert_eq!(
            parse_spec("is-number@^7.0.0").unwrap(),
            ("is-number".into(), "^7.0.0".into())
        );
        assert_eq!(
            parse_spec("@types/node@20").unwrap(),
            ("@types/node".into(), "20".into())
        );
        assert_eq!(
            parse_spec("left-pad").unwrap(),
            ("left-pad".into(), "latest".into())
        );
        assert!(parse_spec("Left-Pad").is_err());
        assert!(parse_spec("numpy>=2").is_err());
        assert!(parse_spec("x@").is_err());
        assert!(parse_spec("@scope").is_err());
        assert!(parse_spec("../evil").is_err());
    }

    #[test]
    fn locks_of_each_manager_list_their_packages() {
        let npm = r#"{"lockfileVersion":3,"packages":{"":{"name":"x"},
            "node_modules/a":{"version":"1.0.0"},
            "node_modules/a/node_modules/b":{"version":"2.0.0","optional":true},
            "node_modules/@s/c":{"version":"3.0.0"},
            "node_modules/ws":{"resolved":"packages/ws","link":true}}}"#;
        let e = expected(Manager::Npm, npm).unwrap();
        assert_eq!(e.packages.keys().collect::<Vec<_>>(), ["@s/c", "a", "b"]);
        assert!(e.optional.contains("b"));

        let pnpm = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      a:\n        specifier: 1.0.0\n        version: 1.0.0\n\npackages:\n\n  a@1.0.0:\n    resolution: {integrity: sha512-x}\n\n  '@s/c@3.0.0':\n    resolution: {integrity: sha512-y}\n    optional: true\n\nsnapshots:\n\n  a@1.0.0: {}\n";
        let e = expected(Manager::Pnpm, pnpm).unwrap();
        assert_eq!(e.packages["a"], BTreeSet::from(["1.0.0".to_string()]));
        assert_eq!(e.packages["@s/c"], BTreeSet::from(["3.0.0".to_string()]));
        assert!(e.optional.contains("@s/c"));

        let berry = "__metadata:\n  version: 8\n\n\"a@npm:^1.0.0\":\n  version: 1.0.0\n  resolution: \"a@npm:1.0.0\"\n\n\"fse@npm:^2\":\n  version: 2.3.3\n  resolution: \"fse@npm:2.3.3\"\n  conditions: os=darwin\n\n\"x@workspace:.\":\n  version: 0.0.0-use.local\n  resolution: \"x@workspace:.\"\n";
        let e = expected(Manager::Yarn, berry).unwrap();
        assert_eq!(e.packages.keys().collect::<Vec<_>>(), ["a", "fse"]);
        assert!(e.optional.contains("fse") && !e.optional.contains("a"));

        let classic = "# yarn lockfile v1\n\n\n\"@s/c@^3\", \"@s/c@~3.0\":\n  version \"3.0.1\"\n\na@^1.0.0:\n  version \"1.0.0\"\n";
        let e = expected(Manager::Yarn, classic).unwrap();
        assert_eq!(e.packages["@s/c"], BTreeSet::from(["3.0.1".to_string()]));
        assert_eq!(e.packages["a"], BTreeSet::from(["1.0.0".to_string()]));
    }

    #[test]
    fn npm_lock_matches_only_what_package_json_declares() {
        let pj: Value = serde_json::from_str(r#"{"dependencies":{"a":"^1.0.0"}}"#).unwrap();
        let lock = r#"{"lockfileVersion":3,"packages":{"":{"dependencies":{"a":"^1.0.0"}}}}"#;
        assert!(npm_lock_matches(&pj, lock).is_ok());
        let pj2: Value = serde_json::from_str(r#"{"dependencies":{"a":"^2.0.0"}}"#).unwrap();
        let e = npm_lock_matches(&pj2, lock).unwrap_err();
        assert!(e.contains("`dependencies.a` is `^2.0.0`"), "{e}");
        let pj3: Value = serde_json::from_str(r#"{}"#).unwrap();
        assert!(npm_lock_matches(&pj3, lock).is_err());
    }

    #[test]
    fn pnpm_store_directories_name_their_package() {
        assert_eq!(
            pnpm_store_entry("is-number@7.0.0"),
            Some(("is-number".into(), "7.0.0".into()))
        );
        assert_eq!(
            pnpm_store_entry("@types+node@20.1.0"),
            Some(("@types/node".into(), "20.1.0".into()))
        );
        assert_eq!(
            pnpm_store_entry("react-dom@18.2.0_react@18.2.0"),
            Some(("react-dom".into(), "18.2.0".into()))
        );
        assert_eq!(pnpm_store_entry("lock.yaml"), None);
    }

    #[test]
    fn ownership_keeps_the_users_entries_and_finds_hsms_leftovers() {
        let pj: Value = serde_json::from_str(
            r#"{"dependencies":{"mine":"^1","ours":"1.0.0","gone":"2.0.0","changed":"^9"},
                "devDependencies":{"dev":"^3"}}"#,
        )
        .unwrap();
        let recorded = [
            record("ours", "1.0.0"),
            record("gone", "2.0.0"),
            record("changed", "3.0.0"),
            record("lost", "1.0.0"),
        ];
        let wanted = [
            ("ours".to_string(), "1.1.0".to_string()),
            ("mine".to_string(), "1.0.0".to_string()),
            ("dev".to_string(), "3.0.0".to_string()),
            ("new".to_string(), "latest".to_string()),
        ];
        let o = ownership(&pj, &recorded, &wanted);
        assert_eq!(
            o.ours,
            [
                ("ours".to_string(), "1.1.0".to_string()),
                ("new".to_string(), "latest".to_string())
            ]
        );
        assert_eq!(o.users, ["mine", "dev"]);
        // `changed` reads as the user wrote it now; `lost` is not there.
        assert_eq!(o.leftovers, ["gone"]);
    }

    #[test]
    fn dependencies_are_added_in_place_with_the_files_indentation() {
        let text = "{\n    \"name\": \"x\",\n    \"version\": \"1.0.0\"\n}\n";
        let deps = [("a".to_string(), "^1".to_string())];
        let out = with_dependencies(text, &deps).unwrap().unwrap();
        assert_eq!(
            out,
            "{\n    \"name\": \"x\",\n    \"version\": \"1.0.0\",\n    \"dependencies\": {\n        \"a\": \"^1\"\n    }\n}\n"
        );
        assert_eq!(with_dependencies(&out, &deps).unwrap(), None);
        assert!(with_dependencies("[1]", &deps).is_err());
    }
}
