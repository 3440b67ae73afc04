//! Fingerprints: what each component looked like right after its last
//! successful sync. When a component's fingerprint is unchanged, sync says
//! `Fresh` without running its tool — this is why a no-op sync spawns no
//! process.
//!
//! A fingerprint is a SHA-256 over
//! - what of the component's Plan entry shapes its environment (source,
//!   mode, dependencies, env, …), so any manifest change that matters
//!   counts, and one that only moves lines (a comment, a reordered table)
//!   or changes what runs in the environment (command, ports) does not,
//! - the stat data of its inputs (`pyproject.toml`, `uv.lock`,
//!   `requirements.txt`, …): size, modification time and inode, as cargo
//!   decides freshness — no file is read or hashed,
//! - a marker of its environment's state: the stat data of `pyvenv.cfg` and
//!   of the interpreter `bin/python` leads to, and the modification time of
//!   each `site-packages` directory (installing or
//!   removing a package adds or removes entries there, which moves its mtime).
//!   Which `lib/*/site-packages` a venv has is stored beside its
//!   fingerprint: while the mtime of `lib/` (part of the fingerprint) stays,
//!   so does its listing, and the next run stats the stored directories
//!   instead of listing `lib/` again.
//!
//! A sync with `--frozen` skips uv's lock check, so what it leaves is
//! marked (see [`Fingerprints::unchanged`]): it is fresh for another
//! `--frozen` sync only, while what a plain sync leaves is fresh for both.
//!
//! They live in `.hsm/fingerprints.json` (a cache, ignored by git), never in
//! `hsm.lock`, which only holds what users should review. The file is
//! rewritten only when a fingerprint changed; a lost or corrupt file only
//! costs one real sync.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where fingerprints live, relative to the workspace root.
pub const FINGERPRINTS: &str = ".hsm/fingerprints.json";

const VERSION: u32 = 5;

/// Component name → fingerprint (hex).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprints {
    version: u32,
    components: BTreeMap<String, String>,
    /// Component → the `site-packages` directories (relative to its venv)
    /// its fingerprint covered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sites: BTreeMap<String, Vec<String>>,
}

impl Fingerprints {
    /// The stored fingerprints; empty when the file is missing, unreadable
    /// or from another format version.
    pub fn load(root: &Utf8Path) -> Fingerprints {
        std::fs::read(root.join(FINGERPRINTS))
            .ok()
            .and_then(|b| serde_json::from_slice::<Fingerprints>(&b).ok())
            .filter(|f| f.version == VERSION)
            .unwrap_or_default()
    }

    pub fn get(&self, component: &str) -> Option<&str> {
        self.components.get(component).map(String::as_str)
    }

    /// The stored fingerprint of `component` when it equals `now` (taken
    /// now) for a sync with or without `--frozen`: what a `--frozen` sync
    /// left satisfies only another `--frozen` sync.
    pub fn unchanged(&self, component: &str, now: Option<&str>, frozen: bool) -> Option<String> {
        let now = now?;
        let stored = self.get(component)?;
        let same = stored == now || (frozen && stored == mark(now, true));
        same.then(|| stored.to_string())
    }

    /// The same fingerprints (whatever the file's format version).
    pub fn same(&self, other: &Fingerprints) -> bool {
        self.components == other.components && self.sites == other.sites
    }

    /// Forgets `component` (its next sync runs its tool); whether it had one.
    pub fn remove(&mut self, component: &str) -> bool {
        self.sites.remove(component);
        self.components.remove(component).is_some()
    }

    pub fn insert(&mut self, component: impl Into<String>, fingerprint: String) {
        self.components.insert(component.into(), fingerprint);
    }

    /// A fingerprint and the `site-packages` directories it covered.
    pub fn insert_with_sites(&mut self, component: &str, fingerprint: String, sites: Vec<String>) {
        self.insert(component, fingerprint);
        self.sites.insert(component.to_string(), sites);
    }

    /// The `site-packages` directories the stored fingerprint covered, for
    /// [`Hasher::knowing_sites`].
    pub fn sites(&self, component: &str) -> Option<&[String]> {
        self.sites.get(component).map(Vec::as_slice)
    }

    /// Keeps `component`'s stored fingerprint from `from` unchanged.
    pub fn carry(&mut self, from: &Fingerprints, component: &str) {
        if let Some(fp) = from.components.get(component) {
            self.components.insert(component.to_string(), fp.clone());
        }
        if let Some(s) = from.sites.get(component) {
            self.sites.insert(component.to_string(), s.clone());
        }
    }

    /// Writes the file unless it already holds exactly these fingerprints.
    pub fn save(&self, root: &Utf8Path) -> std::io::Result<bool> {
        let doc = Fingerprints {
            version: VERSION,
            components: self.components.clone(),
            sites: self.sites.clone(),
        };
        let mut text = serde_json::to_string_pretty(&doc).expect("plain data serialises");
        text.push('\n');
        // A cache: a lost or empty one after a power loss only makes the
        // next sync run the tools again.
        crate::fs::write_cache_if_changed(&root.join(FINGERPRINTS), text.as_bytes(), None)
    }
}

/// The fingerprint a sync stores: `--frozen` marks it (see
/// [`Fingerprints::unchanged`]).
pub fn mark(fingerprint: &str, frozen: bool) -> String {
    if frozen {
        format!("{fingerprint}+frozen")
    } else {
        fingerprint.to_string()
    }
}

/// What of a service's Plan entry its environment is made from. Not why or
/// where it was selected, nor what only runs in it or beside it (command,
/// ports, depends-on …): those change no environment.
#[derive(Serialize)]
pub struct ServiceInputs<'p> {
    name: &'p str,
    mode: crate::manifest::model::Mode,
    profile: &'p str,
    deployment: &'p crate::plan::Deployment,
    source: &'p Option<crate::manifest::model::Source>,
    target_path: &'p Option<Utf8PathBuf>,
    checkout_path: &'p Option<Utf8PathBuf>,
    env: &'p BTreeMap<String, crate::plan::EnvVar>,
    env_files: &'p [crate::plan::EnvFile],
    params: &'p BTreeMap<String, crate::plan::MergedParam>,
    dependencies: &'p [crate::plan::Dependency],
}

impl<'p> ServiceInputs<'p> {
    pub fn of(sv: &'p crate::plan::PlannedService) -> Self {
        ServiceInputs {
            name: &sv.name,
            mode: sv.mode,
            profile: &sv.profile,
            deployment: &sv.deployment,
            source: &sv.source,
            target_path: &sv.target_path,
            checkout_path: &sv.checkout_path,
            env: &sv.env,
            env_files: &sv.env_files,
            params: &sv.params,
            dependencies: &sv.dependencies,
        }
    }
}

/// What of a library's Plan entry the shared environment is made from.
#[derive(Serialize)]
pub struct LibraryInputs<'p> {
    name: &'p str,
    mode: crate::manifest::model::Mode,
    source: &'p crate::manifest::model::Source,
    requirement: &'p str,
    target_path: &'p Option<Utf8PathBuf>,
}

impl<'p> LibraryInputs<'p> {
    pub fn of(l: &'p crate::plan::PlannedLibrary) -> Self {
        LibraryInputs {
            name: &l.name,
            mode: l.mode,
            source: &l.source,
            requirement: &l.requirement,
            target_path: &l.target_path,
        }
    }
}

/// Builds one fingerprint from labelled parts.
pub struct Hasher {
    sha: Sha256,
    /// An environment that does not exist is never fresh.
    env_missing: bool,
    /// The venv's `site-packages` directories from its stored fingerprint.
    known_sites: Option<Vec<String>>,
    /// The ones [`Hasher::venv`] covered.
    sites: Vec<String>,
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

/// [`crate::fs::stat_key`] as bytes, for hashing.
fn stat_id(m: &std::fs::Metadata) -> [u8; 32] {
    let (len, mtime, nsec, ino) = crate::fs::stat_key(m);
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&len.to_le_bytes());
    id[8..16].copy_from_slice(&mtime.to_le_bytes());
    id[16..24].copy_from_slice(&nsec.to_le_bytes());
    id[24..].copy_from_slice(&ino.to_le_bytes());
    id
}

/// `path:size:mtime` of the binary `tool` resolves to, or `tool:absent`.
fn tool_identity(tool: &str) -> String {
    let Some(p) = which::which(tool)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
    else {
        return format!("{tool}:absent");
    };
    let real = p.canonicalize_utf8().unwrap_or(p);
    let md = std::fs::metadata(&real).ok();
    let size = md.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = md
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{real}:{size}:{mtime}")
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher {
            sha: Sha256::new(),
            env_missing: false,
            known_sites: None,
            sites: Vec::new(),
        }
    }

    /// For a comparison with the stored fingerprint: [`Hasher::venv`] stats
    /// the `site-packages` directories that fingerprint covered instead of
    /// listing `lib/`. Sound because `lib/`'s mtime is hashed as well: a
    /// listing that changed changes the fingerprint either way.
    pub fn knowing_sites(mut self, sites: Option<&[String]>) -> Hasher {
        self.known_sites = sites.map(<[String]>::to_vec);
        self
    }

    fn part(&mut self, label: &str, bytes: &[u8]) {
        self.sha.update(label.as_bytes());
        self.sha.update((bytes.len() as u64).to_le_bytes());
        self.sha.update(bytes);
    }

    /// Any serialisable value (a Plan entry).
    pub fn value(&mut self, label: &str, v: &impl Serialize) {
        let json = serde_json::to_vec(v).expect("plain data serialises");
        self.part(label, &json);
    }

    pub fn text(&mut self, label: &str, s: &str) {
        self.part(label, s.as_bytes());
    }

    /// A file's stat data (size, modification time, inode), or that it is
    /// absent: one `stat`, no read.
    pub fn file(&mut self, path: &Utf8Path) {
        match std::fs::metadata(path) {
            Ok(m) => self.part(path.as_str(), &stat_id(&m)),
            Err(_) => self.part(path.as_str(), b"\0absent"),
        }
    }

    /// The state of the virtual environment at `venv`: its `pyvenv.cfg` and
    /// the mtime of `lib/` and of every `lib/*/site-packages` (one
    /// `read_dir` unless they are known, no spawn).
    pub fn venv(&mut self, venv: &Utf8Path) {
        let cfg = venv.join("pyvenv.cfg");
        match std::fs::metadata(&cfg) {
            Ok(m) if m.is_file() => self.part(cfg.as_str(), &stat_id(&m)),
            _ => {
                self.env_missing = true;
                self.part(cfg.as_str(), b"\0absent");
            }
        }
        // A sync changed it and did not finish: never fresh.
        self.env_missing |= venv.join(crate::python::venv::INCOMPLETE_MARKER).exists();
        // The interpreter it runs (the link followed): gone or replaced,
        // the environment is not what the last sync left.
        self.file(&venv.join("bin/python"));
        let lib = venv.join("lib");
        self.mtime(&lib);
        let sites = match self.known_sites.take() {
            Some(known) => known,
            None => {
                let mut dirs: Vec<String> = std::fs::read_dir(&lib)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .map(|name| format!("lib/{name}/site-packages"))
                    .collect();
                dirs.sort();
                dirs
            }
        };
        for d in &sites {
            self.mtime(&venv.join(d));
        }
        self.sites = sites;
    }

    /// An environment directory (e.g. pixi's `conda-meta`): its mtime, and
    /// no fingerprint at all when it does not exist.
    pub fn env_dir(&mut self, dir: &Utf8Path) {
        self.env_missing |= !dir.is_dir();
        self.mtime(dir);
    }

    /// Which `tool` would run: its resolved path, size and mtime (an upgrade
    /// of uv changes them), without spawning it.
    pub fn tool(&mut self, tool: &str) {
        // Resolved once per process: a sync of a hundred services asks a
        // hundred times for the same `uv`.
        static IDS: std::sync::Mutex<BTreeMap<String, String>> =
            std::sync::Mutex::new(BTreeMap::new());
        let id = {
            let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
            ids.entry(tool.to_string())
                .or_insert_with(|| tool_identity(tool))
                .clone()
        };
        self.part("tool", id.as_bytes());
    }

    /// Environment variables that change what a tool installs.
    pub fn env_vars(&mut self, names: &[&str]) {
        for n in names {
            let v = std::env::var_os(n).map(|v| v.to_string_lossy().into_owned());
            self.part(n, v.as_deref().unwrap_or("\0unset").as_bytes());
        }
    }

    /// [`Hasher::env_vars`] of [`TOOL_ENV_VARS`], read from the
    /// environment once per process (every component asks).
    pub fn tool_env_vars(&mut self) {
        static VALUES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let v = VALUES.get_or_init(|| {
            let mut h = Hasher::new();
            h.env_vars(TOOL_ENV_VARS);
            h.sha.finalize().to_vec()
        });
        self.part("tool-env", v);
    }

    /// The modification time of `path` (nanoseconds), or that it is absent.
    pub fn mtime(&mut self, path: &Utf8Path) {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(path) {
            Ok(m) => {
                let mut t = [0u8; 16];
                t[..8].copy_from_slice(&m.mtime().to_le_bytes());
                t[8..].copy_from_slice(&m.mtime_nsec().to_le_bytes());
                self.part(path.as_str(), &t);
            }
            Err(_) => self.part(path.as_str(), b"\0absent"),
        }
    }

    /// The fingerprint; `None` when the environment does not exist (such a
    /// component is never fresh).
    pub fn finish(self) -> Option<String> {
        self.finish_with_sites().map(|(fp, _)| fp)
    }

    /// [`Hasher::finish`], with the `site-packages` directories covered.
    pub fn finish_with_sites(self) -> Option<(String, Vec<String>)> {
        if self.env_missing {
            return None;
        }
        Some((crate::lock::hex(&self.sha.finalize()), self.sites))
    }
}

/// Variables that change what uv or pip install: part of every fingerprint,
/// so changing one makes the next sync run the tools again.
pub const TOOL_ENV_VARS: &[&str] = &[
    "UV_PYTHON",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_OFFLINE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
];

/// The files of a local Python project that decide what installing it
/// pulls in: a local library's or service's new dependency must make its
/// environment stale.
pub const PROJECT_INPUTS: &[&str] = &[
    "pyproject.toml",
    "uv.lock",
    "requirements.txt",
    "setup.py",
    "setup.cfg",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::tmp;

    fn venv_fp(dir: &Utf8Path) -> Option<String> {
        let mut h = Hasher::new();
        h.file(&dir.join("pyproject.toml"));
        h.venv(&dir.join(".venv"));
        h.finish()
    }

    #[test]
    fn changes_with_inputs_and_installed_packages_only() {
        let (_d, dir) = tmp();
        let sp = dir.join(".venv/lib/python3.11/site-packages");
        std::fs::create_dir_all(&sp).unwrap();
        std::fs::write(dir.join(".venv/pyvenv.cfg"), "home = /x\n").unwrap();
        std::fs::write(dir.join("pyproject.toml"), "[project]\n").unwrap();
        let a = venv_fp(&dir);
        assert_eq!(a, venv_fp(&dir), "same state, same fingerprint");

        std::fs::write(dir.join("pyproject.toml"), "[project]\nname = \"x\"\n").unwrap();
        let b = venv_fp(&dir);
        assert_ne!(a, b, "an input's size and mtime count");

        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::create_dir(sp.join("gamma-0.1.0.dist-info")).unwrap();
        let c = venv_fp(&dir);
        assert_ne!(b, c, "a package installed into the venv counts");

        std::fs::remove_dir_all(dir.join(".venv")).unwrap();
        assert_eq!(venv_fp(&dir), None, "no venv, no fingerprint");
    }

    #[test]
    fn known_sites_give_the_listing_s_fingerprint_while_lib_is_unchanged() {
        let (_d, dir) = tmp();
        let venv = dir.join(".venv");
        std::fs::create_dir_all(venv.join("lib/python3.11/site-packages")).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /x\n").unwrap();
        let take = |known: Option<&[String]>| {
            let mut h = Hasher::new().knowing_sites(known);
            h.venv(&venv);
            h.finish_with_sites().unwrap()
        };
        let (listed, sites) = take(None);
        assert_eq!(sites, ["lib/python3.11/site-packages"]);
        assert_eq!(take(Some(&sites)).0, listed, "same state, same fingerprint");

        // A second interpreter's directory: lib/ moves, so the stale list
        // cannot make the fingerprint look unchanged.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::create_dir_all(venv.join("lib/python3.12/site-packages")).unwrap();
        let (relisted, more) = take(None);
        assert_eq!(more.len(), 2);
        assert_ne!(take(Some(&sites)).0, listed);
        assert_ne!(relisted, listed);
    }

    #[test]
    fn tool_identity_and_its_environment_are_part_of_the_fingerprint() {
        let fp = |tool: &str| {
            let mut h = Hasher::new();
            h.tool(tool);
            h.env_vars(&["HSM_FINGERPRINT_TEST_VAR"]);
            h.finish()
        };
        std::env::remove_var("HSM_FINGERPRINT_TEST_VAR");
        let base = fp("sh");
        assert_eq!(base, fp("sh"));
        assert_ne!(base, fp("hsm-no-such-tool"));
        std::env::set_var("HSM_FINGERPRINT_TEST_VAR", "https://mirror.invalid/simple");
        assert_ne!(base, fp("sh"));
        std::env::remove_var("HSM_FINGERPRINT_TEST_VAR");
    }

    #[test]
    fn saved_only_when_changed() {
        let (_d, root) = tmp();
        let mut f = Fingerprints::load(&root);
        assert_eq!(f.get("service:a"), None);
        f.insert_with_sites("service:a", "1".into(), vec!["lib/p/site-packages".into()]);
        assert!(f.save(&root).unwrap());
        assert!(!f.save(&root).unwrap());
        assert_eq!(Fingerprints::load(&root).get("service:a"), Some("1"));
        let sites = ["lib/p/site-packages".to_string()];
        assert_eq!(
            Fingerprints::load(&root).sites("service:a"),
            Some(&sites[..])
        );
        std::fs::write(root.join(FINGERPRINTS), "not json").unwrap();
        assert_eq!(Fingerprints::load(&root), Fingerprints::default());
    }
}
