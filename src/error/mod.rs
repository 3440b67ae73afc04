//! One error type for the whole library, and the diagnostics that point at the
//! exact key of the exact file that caused a configuration problem.
//!
//! Configuration errors carry the file, the key path and, for TOML input, a
//! span into the source so that miette can show line, column and a snippet.
//! The exit code is decided here and nowhere else: 2 for configuration and
//! usage problems, 1 when a command ran and found or hit a problem.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

pub mod render;

/// Exit code when everything went well.
pub const EXIT_OK: i32 = 0;
/// Exit code when the command ran and found a problem (drift, a failed tool).
pub const EXIT_PROBLEM: i32 = 1;
/// Exit code for bad usage or bad configuration.
pub const EXIT_CONFIG: i32 = 2;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A path to a key inside a TOML document, e.g. `services.standalone[0].profile`.
///
/// Built one key at a time, thousands of times per load, and almost never
/// shown: so it is a shared list that grows at its end. Extending a path is
/// one small allocation, and a copy of a path is a reference count.
#[derive(Clone, Default)]
pub struct KeyPath(Option<Arc<KeyNode>>);

struct KeyNode {
    parent: KeyPath,
    seg: Seg,
    len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// Shared: key paths are extended one key at a time, a thousand times
    /// per load.
    Key(Arc<str>),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(None)
    }
    pub fn parse_dotted(s: &str) -> Self {
        Self::from_segs(
            s.split('.')
                .filter(|p| !p.is_empty())
                .map(|p| Seg::Key(p.into())),
        )
    }
    /// The path of `segs`, outermost first.
    pub fn from_segs(segs: impl IntoIterator<Item = Seg>) -> Self {
        let mut p = KeyPath::root();
        for s in segs {
            p.push(s);
        }
        p
    }
    /// Appends `seg` to this path (the paths it was copied from keep theirs).
    pub fn push(&mut self, seg: Seg) {
        let parent = std::mem::take(self);
        let len = parent.len() + 1;
        *self = KeyPath(Some(Arc::new(KeyNode { parent, seg, len })));
    }
    pub fn key(&self, k: impl AsRef<str>) -> Self {
        let mut p = self.clone();
        p.push(Seg::Key(k.as_ref().into()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.push(Seg::Index(i));
        p
    }
    pub fn join(&self, other: &KeyPath) -> Self {
        if self.is_empty() {
            return other.clone();
        }
        let mut p = self.clone();
        for s in other.segs() {
            p.push(s.clone());
        }
        p
    }
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |n| n.len)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
    /// The segments, outermost first.
    pub fn segs(&self) -> Vec<&Seg> {
        let mut v = Vec::with_capacity(self.len());
        let mut at = &self.0;
        while let Some(n) = at {
            v.push(&n.seg);
            at = &n.parent.0;
        }
        v.reverse();
        v
    }
}

impl PartialEq for KeyPath {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                Arc::ptr_eq(a, b) || (a.len == b.len && a.seg == b.seg && a.parent == b.parent)
            }
            _ => false,
        }
    }
}
impl Eq for KeyPath {}
impl PartialOrd for KeyPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for KeyPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self == other {
            return std::cmp::Ordering::Equal;
        }
        self.segs().cmp(&other.segs())
    }
}
impl std::hash::Hash for KeyPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.segs().hash(state)
    }
}
impl fmt::Debug for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyPath").field(&self.segs()).finish()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in self.segs() {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    if k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                        && !k.is_empty()
                    {
                        f.write_str(k)?;
                    } else {
                        write!(f, "\"{}\"", k.replace('"', "\\\""))?;
                    }
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Where a piece of configuration came from: a file and a key path inside it.
/// For env files the key path is empty and `line` is set.
///
/// The file is shared: every key of a file carries it, and copying a
/// location must not copy its path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: Arc<Utf8Path>,
    pub key_path: KeyPath,
    pub line: Option<usize>,
}

impl Location {
    pub fn new(file: impl Into<Arc<Utf8Path>>, key_path: KeyPath) -> Self {
        Location {
            file: file.into(),
            key_path,
            line: None,
        }
    }
    pub fn line(file: impl Into<Arc<Utf8Path>>, line: usize) -> Self {
        Location {
            file: file.into(),
            key_path: KeyPath::root(),
            line: Some(line),
        }
    }
    pub fn key(&self, k: impl AsRef<str>) -> Self {
        Location {
            file: self.file.clone(),
            key_path: self.key_path.key(k),
            line: None,
        }
    }
    pub fn index(&self, i: usize) -> Self {
        Location {
            file: self.file.clone(),
            key_path: self.key_path.index(i),
            line: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.file)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if !self.key_path.is_empty() {
            write!(f, " at `{}`", self.key_path)?;
        }
        Ok(())
    }
}

/// The text of every configuration file read so far, kept so that an error
/// found long after parsing can still point at the exact span.
#[derive(Debug, Default, Clone)]
pub struct SourceCache {
    /// Hashed by the path's text, not ordered: comparing or hashing paths
    /// component by component made loading a thousand registry files cost
    /// more than parsing them. A path spelled another way (`a/./b`) is
    /// still found (see [`SourceCache::source`]).
    files: HashMap<String, Arc<Source>>,
    /// Paths are shown relative to this directory (the workspace root).
    pub display_base: Option<Utf8PathBuf>,
}

#[derive(Debug)]
struct Source {
    text: Arc<String>,
    /// The parsed document, made on first use: locating many keys in one big
    /// registry file must not parse it again each time.
    doc: std::sync::OnceLock<Option<toml_edit::Document<String>>>,
    /// Byte offsets of line starts, made on first use (line/column lookups
    /// for a thousand services must not rescan a big file each time).
    lines: std::sync::OnceLock<Vec<usize>>,
}

impl Source {
    fn span_of(&self, loc: &Location) -> Option<Range<usize>> {
        if let Some(line) = loc.line {
            return line_span(&self.text, line);
        }
        let doc = self
            .doc
            .get_or_init(|| toml_edit::Document::parse(self.text.as_str().to_owned()).ok())
            .as_ref()?;
        span_in_document(doc.as_item(), &loc.key_path)
    }

    fn line_col_of(&self, loc: &Location) -> Option<(usize, usize)> {
        let span = self.span_of(loc)?;
        let text = &self.text;
        let starts = self.lines.get_or_init(|| {
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        let line = starts.partition_point(|&s| s <= span.start);
        let start = starts[line - 1];
        let col = text
            .get(start..span.start)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Some((line, col))
    }
}

/// A [`Location`] whose line and column are computed on first use (see
/// [`SourceCache::pinpoint`]). Compares by the location only.
#[derive(Debug, Clone)]
pub struct Pinpoint {
    source: Option<Arc<Source>>,
    loc: Location,
    found: Arc<std::sync::OnceLock<Option<(usize, usize)>>>,
}

impl Pinpoint {
    pub fn location(&self) -> &Location {
        &self.loc
    }
    /// 1-based line and column, when the key can be found.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        *self
            .found
            .get_or_init(|| self.source.as_ref()?.line_col_of(&self.loc))
    }
}

impl PartialEq for Pinpoint {
    fn eq(&self, other: &Self) -> bool {
        self.loc == other.loc
    }
}
impl Eq for Pinpoint {}
impl PartialOrd for Pinpoint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pinpoint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.loc.cmp(&other.loc)
    }
}

impl SourceCache {
    pub fn insert(&mut self, path: &Utf8Path, text: String) -> Arc<String> {
        let text = Arc::new(text);
        let source = Source {
            text: text.clone(),
            doc: Default::default(),
            lines: Default::default(),
        };
        self.files
            .insert(path.as_str().to_owned(), Arc::new(source));
        text
    }
    /// The file cached under `path`, spelled as it was inserted or any
    /// other way that names the same path.
    fn source(&self, path: &Utf8Path) -> Option<&Arc<Source>> {
        self.files.get(path.as_str()).or_else(|| {
            self.files
                .iter()
                .find(|(k, _)| Utf8Path::new(k.as_str()) == path)
                .map(|(_, s)| s)
        })
    }
    pub fn get(&self, path: &Utf8Path) -> Option<&Arc<String>> {
        self.source(path).map(|s| &s.text)
    }
    /// Every file read so far, in path order.
    pub fn files(&self) -> impl Iterator<Item = &Utf8Path> {
        let mut v: Vec<&Utf8Path> = self
            .files
            .keys()
            .map(|k| Utf8Path::new(k.as_str()))
            .collect();
        v.sort();
        v.into_iter()
    }

    pub fn display_path(&self, path: &Utf8Path) -> Utf8PathBuf {
        match &self.display_base {
            // The common case, a path joined onto the base: the rest of its
            // text, when that is already in the clean form (no empty, `.`
            // or `..` part) that a component-wise strip would give.
            Some(base) if !base.as_str().ends_with('/') => match path
                .as_str()
                .strip_prefix(base.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(rest) if rest.split('/').all(|c| !matches!(c, "" | "." | "..")) => {
                    Utf8PathBuf::from(rest)
                }
                _ => path
                    .strip_prefix(base)
                    .map(|p| p.to_owned())
                    .unwrap_or_else(|_| path.to_owned()),
            },
            Some(base) => path
                .strip_prefix(base)
                .map(|p| p.to_owned())
                .unwrap_or_else(|_| path.to_owned()),
            None => path.to_owned(),
        }
    }

    /// The span of the value at `key_path` in `file`, if both can be found.
    pub fn span_of(&self, loc: &Location) -> Option<Range<usize>> {
        self.source(&loc.file)?.span_of(loc)
    }

    /// Builds a diagnostic located at `loc`.
    pub fn diag(&self, loc: &Location, message: impl Into<String>) -> ConfigDiagnostic {
        let mut d = ConfigDiagnostic::new(message);
        d.attach(self, loc);
        d
    }

    /// 1-based line and column of `loc`, when it can be found.
    pub fn line_col_of(&self, loc: &Location) -> Option<(usize, usize)> {
        self.source(&loc.file)?.line_col_of(loc)
    }

    /// `loc`'s line and column, found only when first asked for: most
    /// commands never show where a component was selected, and locating a
    /// key parses its whole file again.
    pub fn pinpoint(&self, loc: &Location) -> Pinpoint {
        Pinpoint {
            source: self.source(&loc.file).cloned(),
            loc: loc.clone(),
            found: Arc::default(),
        }
    }

    /// A location in human words, `file:line:col (key)`.
    pub fn describe(&self, loc: &Location) -> String {
        let shown = self.display_path(&loc.file);
        let mut s = format!("`{shown}`");
        if let Some((l, c)) = self.line_col_of(loc) {
            s = format!("`{shown}:{l}:{c}`");
        }
        if !loc.key_path.is_empty() {
            s.push_str(&format!(" (`{}`)", loc.key_path));
        }
        s
    }
}

fn line_span(text: &str, line: usize) -> Option<Range<usize>> {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let trimmed = l.trim_end_matches(['\n', '\r']);
            return Some(start..start + trimmed.len());
        }
        start += l.len();
    }
    None
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Finds the span of the value at `key_path` in a TOML text.
/// Falls back to the deepest ancestor that exists.
pub fn span_of_key_path(text: &str, key_path: &KeyPath) -> Option<Range<usize>> {
    let doc = toml_edit::Document::parse(text).ok()?;
    span_in_document(doc.as_item(), key_path)
}

/// Walks a parsed document by reference; falls back to the deepest ancestor.
fn span_in_document(root: &toml_edit::Item, key_path: &KeyPath) -> Option<Range<usize>> {
    enum Node<'a> {
        Item(&'a toml_edit::Item),
        Value(&'a toml_edit::Value),
        Table(&'a toml_edit::Table),
    }
    let mut node = Node::Item(root);
    let mut best: Option<Range<usize>> = None;
    for seg in key_path.segs() {
        let (key_span, next) = match (seg, node) {
            (Seg::Key(k), Node::Item(toml_edit::Item::Table(t)))
            | (Seg::Key(k), Node::Table(t)) => {
                let Some((key, value)) = t.get_key_value(k) else {
                    break;
                };
                (key.span(), Node::Item(value))
            }
            (Seg::Key(k), Node::Item(toml_edit::Item::Value(toml_edit::Value::InlineTable(t))))
            | (Seg::Key(k), Node::Value(toml_edit::Value::InlineTable(t))) => {
                let Some((key, value)) = t.get_key_value(k) else {
                    break;
                };
                (key.span(), Node::Item(value))
            }
            (Seg::Index(i), Node::Item(toml_edit::Item::Value(toml_edit::Value::Array(a))))
            | (Seg::Index(i), Node::Value(toml_edit::Value::Array(a))) => {
                let Some(v) = a.get(*i) else { break };
                (None, Node::Value(v))
            }
            (Seg::Index(i), Node::Item(toml_edit::Item::ArrayOfTables(a))) => {
                let Some(t) = a.get(*i) else { break };
                (t.span(), Node::Table(t))
            }
            _ => break,
        };
        let span = match next {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
            Node::Table(t) => t.span(),
        };
        best = span.or(key_span).or(best);
        node = next;
    }
    best
}

/// Finds the innermost key path whose value span contains `offset`.
pub fn key_path_at(text: &str, offset: usize) -> KeyPath {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return KeyPath::root();
    };
    let mut path = KeyPath::root();
    walk_to_offset(doc.as_item(), offset, &mut path);
    path
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn walk_to_offset(item: &toml_edit::Item, offset: usize, path: &mut KeyPath) {
    match item {
        toml_edit::Item::Table(t) => {
            for (k, v) in t.iter() {
                let key = t.key(k);
                let key_hit = key.is_some_and(|key| contains(key.span(), offset));
                if key_hit || contains(v.span(), offset) || table_contains(v, offset) {
                    path.push(Seg::Key(k.into()));
                    walk_to_offset(v, offset, path);
                    return;
                }
            }
        }
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
            for (k, v) in t.iter() {
                let key = t.key(k);
                let key_hit = key.is_some_and(|key| contains(key.span(), offset));
                if key_hit || contains(v.span(), offset) {
                    path.push(Seg::Key(k.into()));
                    walk_to_offset(&toml_edit::Item::Value(v.clone()), offset, path);
                    return;
                }
            }
        }
        toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                if contains(v.span(), offset) {
                    path.push(Seg::Index(i));
                    walk_to_offset(&toml_edit::Item::Value(v.clone()), offset, path);
                    return;
                }
            }
        }
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                if contains(t.span(), offset) {
                    path.push(Seg::Index(i));
                    walk_to_offset(&toml_edit::Item::Table(t.clone()), offset, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// A standard table's span covers only its header; its body is found through
/// its children.
fn table_contains(item: &toml_edit::Item, offset: usize) -> bool {
    match item {
        toml_edit::Item::Table(t) => t.iter().any(|(k, v)| {
            t.key(k).is_some_and(|key| contains(key.span(), offset))
                || contains(v.span(), offset)
                || table_contains(v, offset)
        }),
        toml_edit::Item::ArrayOfTables(a) => a.iter().any(|t| contains(t.span(), offset)),
        _ => false,
    }
}

/// A configuration problem, located in a file when possible.
#[derive(Debug, Clone)]
pub struct ConfigDiagnostic {
    pub message: String,
    pub help: Option<String>,
    pub file: Option<Utf8PathBuf>,
    pub key_path: Option<KeyPath>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    label: Option<String>,
    src: Option<NamedSource<Arc<String>>>,
    span: Option<SourceSpan>,
    related: Vec<ConfigDiagnostic>,
    /// A secondary place shown under the main error ("first defined here").
    secondary: bool,
    /// The place is a line of an env file: its value is never shown.
    redact: bool,
}

/// A message, a help or a label, which is one line by contract (more lines
/// go to [`Error::with_detail`]): every control character in it is shown as
/// its escape (`\n`, `\t`, `\u{1b}`), as names are, so that user text in it
/// (a value, a path, a command, a ref, a URL) can neither break the line
/// nor move the terminal's cursor.
pub fn one_line(text: impl Into<String>) -> String {
    let text = text.into();
    if !text.chars().any(char::is_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

impl ConfigDiagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigDiagnostic {
            message: one_line(message),
            help: None,
            file: None,
            key_path: None,
            line: None,
            column: None,
            label: None,
            src: None,
            span: None,
            related: Vec::new(),
            secondary: false,
            redact: false,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(one_line(help));
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(one_line(label));
        self
    }

    /// Adds a second place that takes part in the problem ("first defined here").
    pub fn also(mut self, cache: &SourceCache, loc: &Location, label: impl Into<String>) -> Self {
        let mut d = ConfigDiagnostic::new(label.into());
        d.attach(cache, loc);
        d.secondary = true;
        self.related.push(d);
        self
    }

    fn attach(&mut self, cache: &SourceCache, loc: &Location) {
        let shown = cache.display_path(&loc.file);
        self.file = Some(shown.clone());
        if !loc.key_path.is_empty() {
            self.key_path = Some(loc.key_path.clone());
        }
        self.line = loc.line;
        self.redact = loc.line.is_some() && loc.key_path.is_empty();
        if let (Some(text), Some(span)) = (cache.get(&loc.file), cache.span_of(loc)) {
            let (l, c) = line_col(text, span.start);
            self.line = Some(l);
            self.column = Some(c);
            self.src = Some(NamedSource::new(shown.as_str(), text.clone()));
            self.span = Some(SourceSpan::from(span));
        }
    }

    /// Attaches a raw span (used for TOML syntax errors where no key path exists).
    pub fn at_span(
        mut self,
        cache: &SourceCache,
        file: &Utf8Path,
        span: Range<usize>,
        key_path: KeyPath,
    ) -> Self {
        let shown = cache.display_path(file);
        self.file = Some(shown.clone());
        if !key_path.is_empty() {
            self.key_path = Some(key_path);
        }
        if let Some(text) = cache.get(file) {
            let mut start = span.start.min(text.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = span.end.min(text.len()).max(start);
            while !text.is_char_boundary(end) {
                end += 1;
            }
            let (l, c) = line_col(text, start);
            self.line = Some(l);
            self.column = Some(c);
            self.src = Some(NamedSource::new(shown.as_str(), text.clone()));
            self.span = Some(SourceSpan::from(start..end));
        }
        self
    }

    /// `file:line:col (key path)`, for one-line renderings (build scripts, JSON).
    pub fn location_string(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        let mut s = file.to_string();
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
            if let Some(c) = self.column {
                s.push_str(&format!(":{c}"));
            }
        }
        if let Some(k) = &self.key_path {
            s.push_str(&format!(" ({k})"));
        }
        Some(s)
    }

    pub fn related(&self) -> &[ConfigDiagnostic] {
        &self.related
    }

    /// A plain, multi-line rendering without colours or snippets.
    pub fn plain(&self) -> String {
        let mut s = self.message.clone();
        if let Some(loc) = self.location_string() {
            s.push_str(&format!("\n  --> {loc}"));
        }
        for r in &self.related {
            if let Some(loc) = r.location_string() {
                s.push_str(&format!("\n  --> {loc}: {}", r.message));
            } else {
                s.push_str(&format!("\n  note: {}", r.message));
            }
        }
        if let Some(h) = &self.help {
            s.push_str(&format!("\n  help: {h}"));
        }
        s
    }
}

impl fmt::Display for ConfigDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigDiagnostic {}

impl Diagnostic for ConfigDiagnostic {
    fn severity(&self) -> Option<miette::Severity> {
        self.secondary.then_some(miette::Severity::Advice)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let label = self
            .label
            .clone()
            .or_else(|| self.key_path.as_ref().map(|k| k.to_string()));
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            label, span,
        ))))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(self.related.iter().map(|d| d as &dyn Diagnostic)))
        }
    }
}

/// A failure while running a command (a tool failed, drift was found, a file
/// could not be written). Exit code 1.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub help: Option<String>,
    /// Extra detail shown under the message (a tool's stderr, a list of files).
    pub detail: Option<String>,
    /// Overrides exit code 1 (130 / 143: interrupted by SIGINT / SIGTERM).
    pub exit_code: Option<i32>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(d) = &self.detail {
            let d = d.trim_end();
            if !d.is_empty() {
                write!(f, "\n{d}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

impl Diagnostic for Failure {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}

/// The error of every fallible operation in this crate.
#[derive(Debug, Clone)]
pub enum Error {
    /// Bad configuration or usage: exit code 2.
    Config(Box<ConfigDiagnostic>),
    /// The command ran and hit a problem: exit code 1.
    Failed(Box<Failure>),
}

impl Error {
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(Box::new(ConfigDiagnostic::new(message)))
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed(Box::new(Failure {
            message: one_line(message),
            help: None,
            detail: None,
            exit_code: None,
        }))
    }
    /// A failure with its own exit code (130 / 143 after a signal).
    pub fn with_exit_code(mut self, code: i32) -> Self {
        if let Error::Failed(f) = &mut self {
            f.exit_code = Some(code);
        }
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        match &mut self {
            Error::Config(d) => d.help = Some(one_line(help)),
            Error::Failed(f) => f.help = Some(one_line(help)),
        }
        self
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        match &mut self {
            Error::Config(d) => {
                let extra = detail.into();
                d.message = format!("{}\n{}", d.message, extra.trim_end());
            }
            Error::Failed(f) => f.detail = Some(detail.into()),
        }
        self
    }
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => EXIT_CONFIG,
            Error::Failed(f) => f.exit_code.unwrap_or(EXIT_PROBLEM),
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Error::Config(d) => &d.message,
            Error::Failed(f) => &f.message,
        }
    }
    /// A plain multi-line rendering: for build scripts and logs.
    pub fn plain(&self) -> String {
        match self {
            Error::Config(d) => d.plain(),
            Error::Failed(f) => {
                let mut s = f.to_string();
                if let Some(h) = &f.help {
                    s.push_str(&format!("\n  help: {h}"));
                }
                s
            }
        }
    }
}

impl From<ConfigDiagnostic> for Error {
    fn from(d: ConfigDiagnostic) -> Self {
        Error::Config(Box::new(d))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(d) => fmt::Display::fmt(d, f),
            Error::Failed(x) => fmt::Display::fmt(x, f),
        }
    }
}

impl std::error::Error for Error {}

impl Diagnostic for Error {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self {
            Error::Config(d) => Diagnostic::help(d.as_ref()),
            Error::Failed(f) => Diagnostic::help(f.as_ref()),
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match self {
            Error::Config(d) => d.source_code(),
            Error::Failed(_) => None,
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        match self {
            Error::Config(d) => d.labels(),
            Error::Failed(_) => None,
        }
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self {
            Error::Config(d) => Diagnostic::related(d.as_ref()),
            Error::Failed(_) => None,
        }
    }
}

/// Reads a file, mapping I/O errors to a located configuration error.
pub fn read_to_string(path: &Utf8Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read {what} `{path}`: {e}")))
}
