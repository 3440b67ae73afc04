//! `requirements.txt` files as pip reads them: `\` continuations, `#`
//! comments, `-r`/`--requirement` and `-c`/`--constraint` includes,
//! `-e`/`--editable` and local paths (`.`, `./lib[extra]`), per-requirement
//! options (`--hash=…`), environment markers, and the index options
//! (`--index-url`, `--extra-index-url`, `--find-links`, …). Requirement lines
//! are parsed with `pep508_rs`, versions with `pep440_rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use camino::{Utf8Path, Utf8PathBuf};
use pep440_rs::Operator;
use pep508_rs::{ExtraName, MarkerEnvironment, MarkerTree, Requirement, VersionOrUrl};

use super::normalize_name;

/// Parses one PEP 508 requirement (`name[extras] specifiers ; marker` or
/// `name @ url`). Use this, never `Requirement::from_str` directly:
/// `pep508_rs` 0.9.2 panics on a package or extra name that ends in `-`,
/// `_` or `.` when more text follows (`foo- >=1`, `x[a-]`), so such names
/// are refused here first.
pub fn parse_requirement(text: &str) -> Result<Requirement<pep508_rs::VerbatimUrl>, String> {
    if let Some(why) = unfinished_name(text) {
        return Err(why);
    }
    Requirement::<pep508_rs::VerbatimUrl>::from_str(text).map_err(|e| e.to_string())
}

/// The package or extra name of `text` that ends in `-`, `_` or `.`, as
/// an error message (a name at the very end is left to `pep508_rs`, which
/// reports it).
fn unfinished_name(text: &str) -> Option<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let run = |s: &str| s.find(|c| !is_name(c)).unwrap_or(s.len());
    let unfinished = |name: &str| name.ends_with(['-', '_', '.']);
    let rest = text.trim_start();
    if !rest.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let (name, rest) = rest.split_at(run(rest));
    if unfinished(name) && !rest.is_empty() {
        return Some(format!(
            "the package name `{name}` must end with a letter or a digit"
        ));
    }
    let mut rest = rest.trim_start().strip_prefix('[')?;
    loop {
        rest = rest.trim_start();
        let (extra, after) = rest.split_at(run(rest));
        if unfinished(extra) {
            return Some(format!(
                "the extra `{extra}` must end with a letter or a digit"
            ));
        }
        rest = after.trim_start().strip_prefix(',')?;
    }
}

/// One named requirement (or constraint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    /// PEP 503.
    pub name: String,
    pub extras: Vec<String>,
    /// The version of an exact `==V` pin (no wildcard), PEP 440 normalised.
    pub pin: Option<String>,
    pub marker: MarkerTree,
}

/// A local project to install: `.`, `-e .[extra]`, `./libs/x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReq {
    /// As written, relative to the file's directory (or absolute).
    pub path: Utf8PathBuf,
    pub editable: bool,
    pub extras: Vec<String>,
    pub marker: MarkerTree,
}

/// A parse error with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqError {
    pub file: Utf8PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ReqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` line {}: {}", self.file, self.line, self.message)
    }
}

/// Everything a requirements file (and the files it includes) asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequirementsFile {
    pub requirements: Vec<Req>,
    pub constraints: Vec<Req>,
    /// Local projects, with paths relative to the directory of the top file.
    pub local: Vec<LocalReq>,
    /// Every file read, the top one first (for freshness).
    pub files: Vec<Utf8PathBuf>,
    /// `--index-url`, `--find-links`, … lines, as written (pip applies them).
    pub index_options: Vec<String>,
    /// Some requirement carries `--hash`: pip then checks hashes for every
    /// requirement of that install, and cannot install a local project with it.
    pub hashed: bool,
    /// An entry pip installs under a name this file does not say (a bare
    /// URL): what it installs cannot be told apart from strays.
    pub unnamed: bool,
}

/// Options that take a value and only tune pip (index, build, install).
const VALUE_OPTIONS: &[&str] = &[
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",
    "--no-binary",
    "--only-binary",
    "--prefer-binary",
    "--use-feature",
    "--config-settings",
    "--global-option",
    "--install-option",
];
/// Flags without a value.
const FLAG_OPTIONS: &[&str] = &["--no-index", "--pre", "--prefer-binary", "--require-hashes"];

/// Reads `path` and every file it includes (`-r`, `-c`), relative to the
/// including file, as pip does. Includes that form a cycle are read once.
pub fn read(path: &Utf8Path) -> Result<RequirementsFile, ReqError> {
    let mut out = RequirementsFile::default();
    let base = path.parent().unwrap_or(Utf8Path::new("")).to_path_buf();
    let mut seen = BTreeSet::new();
    read_into(path, &base, false, &mut out, &mut seen, None)?;
    Ok(out)
}

/// Parses requirements text that is not in a file (e.g. a service's
/// `dependencies`), with local paths relative to `base`.
pub fn parse_text(
    text: &str,
    name: &Utf8Path,
    base: &Utf8Path,
) -> Result<RequirementsFile, ReqError> {
    let mut out = RequirementsFile::default();
    let mut seen = BTreeSet::new();
    parse_into(text, name, base, base, false, &mut out, &mut seen)?;
    Ok(out)
}

fn read_into(
    path: &Utf8Path,
    base: &Utf8Path,
    constraint: bool,
    out: &mut RequirementsFile,
    seen: &mut BTreeSet<Utf8PathBuf>,
    from: Option<(&Utf8Path, usize)>,
) -> Result<(), ReqError> {
    let key = crate::paths::normalize(path);
    if !seen.insert(key) {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| match from {
        Some((file, line)) => ReqError {
            file: file.to_path_buf(),
            line,
            message: format!("cannot read the included file `{path}`: {e}"),
        },
        None => ReqError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read it: {e}"),
        },
    })?;
    out.files.push(path.to_path_buf());
    let dir = path.parent().unwrap_or(Utf8Path::new("")).to_path_buf();
    parse_into(&text, path, &dir, base, constraint, out, seen)
}

/// Logical lines: `\` continuations joined, comments removed; each with
/// the number of its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if cur.is_empty() {
            start = i + 1;
        }
        // A comment starts at `#` at the line start or after whitespace.
        let mut line = raw;
        let bytes = raw.as_bytes();
        for (j, &b) in bytes.iter().enumerate() {
            if b == b'#' && (j == 0 || bytes[j - 1].is_ascii_whitespace()) {
                line = &raw[..j];
                break;
            }
        }
        match line.strip_suffix('\\') {
            Some(rest) if line.len() == raw.len() || !rest.is_empty() => {
                cur.push_str(rest);
                cur.push(' ');
            }
            _ => {
                cur.push_str(line);
                let l = cur.trim().to_string();
                if !l.is_empty() {
                    out.push((start, l));
                }
                cur.clear();
            }
        }
    }
    let l = cur.trim().to_string();
    if !l.is_empty() {
        out.push((start, l));
    }
    out
}

/// `--opt=value` or `--opt value`: the option and its value, if `tok`
/// (with `next`) spells `opt`.
fn option_value<'a>(
    tokens: &'a [&'a str],
    i: usize,
    names: &[&str],
) -> Option<(Option<&'a str>, usize)> {
    let tok = tokens[i];
    for n in names {
        if tok == *n {
            return Some((tokens.get(i + 1).copied(), 2));
        }
        if let Some(v) = tok.strip_prefix(n) {
            if let Some(v) = v.strip_prefix('=') {
                return Some((Some(v), 1));
            }
            // `-rfile.txt`, `-e.`: short options glue their value on.
            if n.len() == 2 && !v.is_empty() {
                return Some((Some(v), 1));
            }
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn parse_into(
    text: &str,
    file: &Utf8Path,
    dir: &Utf8Path,
    base: &Utf8Path,
    constraint: bool,
    out: &mut RequirementsFile,
    seen: &mut BTreeSet<Utf8PathBuf>,
) -> Result<(), ReqError> {
    let err = |line: usize, message: String| ReqError {
        file: file.to_path_buf(),
        line,
        message,
    };
    for (line, l) in logical_lines(text) {
        let tokens: Vec<&str> = l.split_whitespace().collect();
        if tokens[0].starts_with('-') {
            if let Some((v, _)) = option_value(&tokens, 0, &["-r", "--requirement"]) {
                let v = v.ok_or_else(|| err(line, "`-r` needs a file name".into()))?;
                read_into(
                    &dir.join(v),
                    base,
                    constraint,
                    out,
                    seen,
                    Some((file, line)),
                )?;
            } else if let Some((v, _)) = option_value(&tokens, 0, &["-c", "--constraint"]) {
                let v = v.ok_or_else(|| err(line, "`-c` needs a file name".into()))?;
                read_into(&dir.join(v), base, true, out, seen, Some((file, line)))?;
            } else if let Some((v, used)) = option_value(&tokens, 0, &["-e", "--editable"]) {
                let v = v.ok_or_else(|| err(line, "`-e` needs a path or URL".into()))?;
                let rest = tokens[used.min(tokens.len())..].join(" ");
                entry(v, &rest, true, line, dir, base, constraint, out)
                    .map_err(|m| err(line, m))?;
            } else if VALUE_OPTIONS
                .iter()
                .chain(FLAG_OPTIONS)
                .any(|o| tokens[0] == *o || tokens[0].starts_with(&format!("{o}=")))
            {
                out.index_options.push(l.clone());
            } else {
                return Err(err(line, format!("unknown option `{}`", tokens[0])));
            }
            continue;
        }
        // The requirement ends where its options (`--hash=…`) begin.
        let end = tokens
            .iter()
            .position(|t| t.starts_with("--") || (t.starts_with('-') && t.len() == 2))
            .unwrap_or(tokens.len());
        if tokens[end..].iter().any(|t| t.starts_with("--hash")) {
            out.hashed = true;
        }
        let spec = tokens[..end].join(" ");
        entry(&spec, "", false, line, dir, base, constraint, out).map_err(|m| err(line, m))?;
    }
    Ok(())
}

/// Whether a requirement line names a local path rather than a package.
fn is_path(spec: &str) -> bool {
    spec.starts_with('.')
        || spec.starts_with('/')
        || spec.starts_with("file:")
        || spec.starts_with('~')
}

#[allow(clippy::too_many_arguments)]
fn entry(
    spec: &str,
    marker_rest: &str,
    editable: bool,
    _line: usize,
    dir: &Utf8Path,
    base: &Utf8Path,
    constraint: bool,
    out: &mut RequirementsFile,
) -> Result<(), String> {
    let (spec, marker_text) = match spec.split_once(';') {
        Some((s, m)) => (s.trim(), Some(m.trim())),
        None => (spec.trim(), None),
    };
    let marker_text = marker_text.or_else(|| marker_rest.trim().strip_prefix(';').map(str::trim));
    let marker = match marker_text {
        Some(m) if !m.is_empty() => {
            MarkerTree::from_str(m).map_err(|e| format!("invalid environment marker `{m}`: {e}"))?
        }
        _ => MarkerTree::TRUE,
    };
    if is_path(spec) {
        let raw = spec.strip_prefix("file://").unwrap_or(spec);
        let (path, extras) = match raw.rfind('[') {
            Some(i) if raw.ends_with(']') => (
                &raw[..i],
                raw[i + 1..raw.len() - 1]
                    .split(',')
                    .map(normalize_name)
                    .filter(|e| !e.is_empty())
                    .collect(),
            ),
            _ => (raw, Vec::new()),
        };
        let abs = crate::paths::normalize(&dir.join(path));
        let mut rel = crate::paths::relative_to(&abs, &crate::paths::normalize(base));
        if rel.as_str().is_empty() {
            rel = ".".into();
        }
        out.local.push(LocalReq {
            path: rel,
            editable,
            extras,
            marker,
        });
        return Ok(());
    }
    // `-e git+https://…#egg=name`: named by its egg fragment.
    if spec.contains("://") && !spec.contains('@') || spec.starts_with("git+") {
        let name = spec
            .split("#egg=")
            .nth(1)
            .map(|egg| normalize_name(egg.split('&').next().unwrap_or("")))
            .unwrap_or_default();
        if name.is_empty() {
            out.unnamed |= !constraint;
        } else {
            push(out, constraint, name, Vec::new(), None, marker);
        }
        return Ok(());
    }
    let full = match marker_text {
        Some(m) if !m.is_empty() => format!("{spec} ; {m}"),
        _ => spec.to_string(),
    };
    let req = parse_requirement(&full).map_err(|e| format!("invalid requirement `{spec}`: {e}"))?;
    let pin = match &req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(specs)) if specs.len() == 1 => {
            let s = specs.iter().next().expect("one specifier");
            matches!(s.operator(), Operator::Equal | Operator::ExactEqual)
                .then(|| s.version().to_string())
        }
        _ => None,
    };
    let extras = req.extras.iter().map(|e| e.to_string()).collect();
    push(
        out,
        constraint,
        req.name.to_string(),
        extras,
        pin,
        req.marker,
    );
    Ok(())
}

fn push(
    out: &mut RequirementsFile,
    constraint: bool,
    name: String,
    extras: Vec<String>,
    pin: Option<String>,
    marker: MarkerTree,
) {
    let r = Req {
        name: normalize_name(&name),
        extras,
        pin,
        marker,
    };
    if constraint {
        out.constraints.push(r);
    } else {
        out.requirements.push(r);
    }
}

/// Expected packages: `name==version` pins, and names required without a
/// pin (present at any version).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    pub pinned: BTreeMap<String, String>,
    pub unpinned: BTreeSet<String>,
    /// Requested extras per package (for following `Requires-Dist`).
    pub extras: BTreeMap<String, BTreeSet<String>>,
    /// Local projects whose markers hold here.
    pub local: Vec<LocalReq>,
}

impl RequirementsFile {
    /// Appends another file's (or text's) entries.
    pub fn extend(&mut self, other: RequirementsFile) {
        self.requirements.extend(other.requirements);
        self.constraints.extend(other.constraints);
        self.local.extend(other.local);
        self.files.extend(other.files);
        self.index_options.extend(other.index_options);
        self.hashed |= other.hashed;
        self.unnamed |= other.unnamed;
    }

    /// What pip installs from these entries here: markers evaluated, a
    /// constraint's pin applied to an unpinned requirement of its package.
    pub fn expected(&self, env: &MarkerEnvironment) -> Requirements {
        let mut out = Requirements::default();
        let holds = |m: &MarkerTree| m.evaluate(env, &[] as &[ExtraName]);
        let constraint_pins: BTreeMap<&str, &str> = self
            .constraints
            .iter()
            .filter(|c| holds(&c.marker))
            .filter_map(|c| c.pin.as_deref().map(|p| (c.name.as_str(), p)))
            .collect();
        for r in self.requirements.iter().filter(|r| holds(&r.marker)) {
            let pin = r
                .pin
                .as_deref()
                .or_else(|| constraint_pins.get(r.name.as_str()).copied());
            match pin {
                Some(v) => {
                    out.unpinned.remove(&r.name);
                    out.pinned.insert(r.name.clone(), v.to_string());
                }
                None if !out.pinned.contains_key(&r.name) => {
                    out.unpinned.insert(r.name.clone());
                }
                None => {}
            }
            if !r.extras.is_empty() {
                out.extras
                    .entry(r.name.clone())
                    .or_default()
                    .extend(r.extras.iter().cloned());
            }
        }
        out.local = self
            .local
            .iter()
            .filter(|l| holds(&l.marker))
            .cloned()
            .collect();
        out
    }
}

/// Expected packages of requirements `text` (no includes read), for tests
/// and callers holding text only.
pub fn expected_from_requirements(text: &str, env: &MarkerEnvironment) -> Requirements {
    parse_text(text, Utf8Path::new("requirements"), Utf8Path::new("."))
        .map(|f| f.expected(env))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pep508_rs` panics on these (found by the fuzz target): each is an
    /// error here, and good requirements still parse.
    #[test]
    fn names_ending_in_a_separator_are_errors_not_panics() {
        for (text, says) in [
            ("foo- >=1", "package name `foo-`"),
            ("no-such-\u{249}ckage>=1", "package name `no-such-`"),
            ("a_;python_version>'3'", "package name `a_`"),
            ("x[a-]", "extra `a-`"),
            ("x [ok, b. ]==1", "extra `b.`"),
            ("x[a_", "extra `a_`"),
        ] {
            let e = parse_requirement(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        // In a requirements file: an error naming its line.
        let e = parse_text(
            "ok==1\nfoo- >=1\n",
            Utf8Path::new("r.txt"),
            Utf8Path::new("."),
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("must end with a letter or a digit"),
            "{e}"
        );
        for text in ["foo-", "x[", "-x", "[a-]"] {
            assert!(parse_requirement(text).is_err(), "{text}");
        }
        for text in [
            "foo-bar>=1",
            "x[a-b, c]==1",
            "a.b @ https://e.org/a.whl",
            " y ; python_version>'3'",
        ] {
            assert!(parse_requirement(text).is_ok(), "{text}");
        }
    }
    use crate::python::marker_environment;

    #[test]
    fn requirements_pins_and_markers() {
        let env = marker_environment("3.11.7").unwrap();
        let r = expected_from_requirements(
            "# c\nAlpha==1.0\nbeta>=2\nwin==1 ; sys_platform == 'win32'\ngamma[x]==3.0 # pinned\n",
            &env,
        );
        assert_eq!(r.pinned.get("alpha").map(String::as_str), Some("1.0"));
        assert_eq!(r.pinned.get("gamma").map(String::as_str), Some("3.0"));
        assert!(r.unpinned.contains("beta"));
        assert!(!r.pinned.contains_key("win"));
        assert_eq!(r.extras["gamma"], BTreeSet::from(["x".to_string()]));
    }

    #[test]
    fn hashed_pins_with_continuations_converge() {
        let env = marker_environment("3.11.7").unwrap();
        let text = "six==1.16.0 \\\n    --hash=sha256:1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926 \\\n    --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n    # via -r requirements.in\nidna==3.4 ; python_version >= \"3\" \\\n    --hash=sha256:abc\n";
        let r = expected_from_requirements(text, &env);
        assert_eq!(r.pinned.get("six").map(String::as_str), Some("1.16.0"));
        assert_eq!(r.pinned.get("idna").map(String::as_str), Some("3.4"));
        assert_eq!(r.pinned.len(), 2);
        assert!(r.unpinned.is_empty());
    }

    #[test]
    fn editables_includes_constraints_and_index_options() {
        let dir = tempfile::tempdir().unwrap();
        let d = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(d.join("reqs")).unwrap();
        std::fs::write(
            d.join("requirements.txt"),
            "--index-url https://pypi.org/simple\n--extra-index-url=https://x/simple\n-f ./wheels\n--find-links=../w\n--no-index\n-e .[cli,Fast]\n-r reqs/base.txt\n-c constraints.txt\n./libs/tool\nname @ https://example.org/name-1.0.tar.gz\n-e git+https://example.org/r.git@v1#egg=From_Git\n",
        )
        .unwrap();
        // Included paths are relative to the including file.
        std::fs::write(
            d.join("reqs/base.txt"),
            "requests\n-r ../requirements.txt\n-e ..\n",
        )
        .unwrap();
        std::fs::write(d.join("constraints.txt"), "requests==2.31.0\nidna==3.4\n").unwrap();
        let f = read(&d.join("requirements.txt")).unwrap();
        assert_eq!(f.files.len(), 3);
        assert_eq!(f.index_options.len(), 5);
        let local: Vec<(&str, bool, &[String])> = f
            .local
            .iter()
            .map(|l| (l.path.as_str(), l.editable, l.extras.as_slice()))
            .collect();
        assert_eq!(
            local,
            [
                (".", true, &["cli".to_string(), "fast".to_string()][..]),
                (".", true, &[][..]),
                ("libs/tool", false, &[][..]),
            ]
        );
        let env = marker_environment("3.11.7").unwrap();
        let e = f.expected(&env);
        assert_eq!(e.pinned.get("requests").map(String::as_str), Some("2.31.0"));
        assert!(!e.pinned.contains_key("idna"), "constraints add nothing");
        assert!(e.unpinned.contains("name") && e.unpinned.contains("from-git"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(d.join("r.txt"), "ok==1\n\n-r missing.txt\n").unwrap();
        let e = read(&d.join("r.txt")).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("missing.txt"), "{e}");
        std::fs::write(d.join("r.txt"), "ok==1\nbad===\n").unwrap();
        let e = read(&d.join("r.txt")).unwrap_err();
        assert_eq!(e.line, 2);
        std::fs::write(d.join("r.txt"), "--bogus x\n").unwrap();
        assert!(read(&d.join("r.txt"))
            .unwrap_err()
            .message
            .contains("--bogus"));
    }

    #[test]
    fn bare_urls_and_hashes_are_flagged() {
        let t = |text: &str| parse_text(text, Utf8Path::new("r"), Utf8Path::new(".")).unwrap();
        assert!(t("https://example.org/x-1.0.tar.gz\n").unnamed);
        assert!(!t("x @ https://example.org/x-1.0.tar.gz\n").unnamed);
        assert!(t("x==1 --hash=sha256:00\n").hashed);
        assert!(!t("x==1\n").hashed);
    }
}
