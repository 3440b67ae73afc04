//! What refers to a registry entry, and where: the places that make
//! removing it wrong (its selection in the manifest, another entry's
//! `implies`, `depends-on` or `dependencies`, a group's options).

use super::registry::EntryKind;
use super::Session;
use crate::error::{ConfigDiagnostic, Error, KeyPath, Location};
use crate::manifest::model::ImplyValue;
use std::collections::BTreeMap;

/// The groups the manifest selects, with their selected options.
type SelectedGroups<'a> = Vec<(&'a str, &'a [String])>;

/// One place that names an entry.
#[derive(Debug, Clone)]
pub struct Reference {
    /// `the service `api` implies it`, `it is selected in `[services].standalone``.
    pub what: String,
    pub at: Location,
    /// The manifest's own selection of the entry (standalone or in a group).
    pub selection: bool,
}

/// The implication target that names an entry: `service:redis`.
pub fn target(kind: EntryKind, name: &str) -> String {
    let k = match kind {
        EntryKind::Library => "library",
        EntryKind::Service => "service",
        EntryKind::LibraryGroup => "library_group",
        EntryKind::ServiceGroup => "service_group",
    };
    format!("{k}:{name}")
}

fn implies_refs(
    out: &mut Vec<Reference>,
    implies: &BTreeMap<String, ImplyValue>,
    target: &str,
    at: Location,
    who: String,
) {
    if implies.contains_key(target) {
        out.push(Reference {
            what: format!("{who} implies it"),
            at: at.key("implies").key(target),
            selection: false,
        });
    }
}

/// Every place in the registry and the manifest that names `name` as a
/// `kind`, in a stable order (registry entries by kind and name, then the
/// manifest).
pub fn references(s: &Session, kind: EntryKind, name: &str) -> Vec<Reference> {
    let r = &s.loaded.registry;
    let tgt = target(kind, name);
    let mut out = Vec::new();
    for (n, e) in &r.libraries {
        implies_refs(
            &mut out,
            &e.value.implies,
            &tgt,
            e.origin.clone(),
            format!("the library `{n}`"),
        );
    }
    for (n, e) in &r.services {
        let who = format!("the service `{n}`");
        implies_refs(&mut out, &e.value.implies, &tgt, e.origin.clone(), who);
        if kind == EntryKind::Library {
            for (i, d) in e.value.dependencies.iter().enumerate() {
                if d == name {
                    out.push(Reference {
                        what: format!("the service `{n}` depends on it (`dependencies`)"),
                        at: e.origin.key("dependencies").index(i),
                        selection: false,
                    });
                }
            }
        }
        if kind == EntryKind::Service && n != name {
            for (i, d) in e.value.depends_on.iter().enumerate() {
                if d == name {
                    out.push(Reference {
                        what: format!("the service `{n}` depends on it (`depends-on`)"),
                        at: e.origin.key("depends-on").index(i),
                        selection: false,
                    });
                }
            }
        }
    }
    let groups = [
        (&r.library_groups, EntryKind::Library, "library group"),
        (&r.service_groups, EntryKind::Service, "service group"),
    ];
    for (map, member, word) in groups {
        for (g, e) in map {
            for (i, o) in e.value.options.iter().enumerate() {
                let opt = e.origin.key("options").index(i);
                if member == kind && o.name == name {
                    out.push(Reference {
                        what: format!("it is an option of the {word} `{g}`"),
                        at: opt.clone(),
                        selection: false,
                    });
                }
                let who = format!("the option `{}` of the {word} `{g}`", o.name);
                implies_refs(&mut out, &o.implies, &tgt, opt, who);
            }
        }
    }
    let m = &s.loaded.manifest;
    let at = |kp: KeyPath| s.loaded.at(kp);
    let (section, standalone, selected_groups): (&str, Vec<&str>, SelectedGroups) = match kind {
        EntryKind::Library | EntryKind::LibraryGroup => (
            "libraries",
            m.libraries
                .standalone
                .iter()
                .map(|l| l.name.as_str())
                .collect(),
            m.libraries
                .groups
                .iter()
                .map(|(g, sel)| (g.as_str(), sel.selection.0.as_slice()))
                .collect(),
        ),
        EntryKind::Service | EntryKind::ServiceGroup => (
            "services",
            m.services
                .standalone
                .iter()
                .map(|l| l.name.as_str())
                .collect(),
            m.services
                .groups
                .iter()
                .map(|(g, sel)| (g.as_str(), sel.selection.0.as_slice()))
                .collect(),
        ),
    };
    let base = KeyPath::root().key(section);
    match kind {
        EntryKind::Library | EntryKind::Service => {
            for (i, n) in standalone.iter().enumerate() {
                if *n == name {
                    out.push(Reference {
                        what: format!("it is selected in `[{section}].standalone`"),
                        at: at(base.key("standalone").index(i)),
                        selection: true,
                    });
                }
            }
            for (g, names) in &selected_groups {
                if names.iter().any(|n| n == name) {
                    out.push(Reference {
                        what: format!("it is the selected option of the group `{g}`"),
                        at: at(base.key("groups").key(g).key("selection")),
                        selection: true,
                    });
                }
            }
        }
        EntryKind::LibraryGroup | EntryKind::ServiceGroup => {
            if selected_groups.iter().any(|(g, _)| *g == name) {
                out.push(Reference {
                    what: format!("it is selected in `[{section}].groups`"),
                    at: at(base.key("groups").key(name)),
                    selection: true,
                });
            }
        }
    }
    out
}

/// The error for removing an entry that `refs` still name: each place as
/// a located note, and what to do.
pub fn still_referenced(
    s: &Session,
    kind: EntryKind,
    name: &str,
    refs: &[Reference],
    help: &str,
) -> Error {
    let sources = &s.loaded.sources;
    let first = &refs[0];
    let more = match refs.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more place, below)".to_string(),
        n => format!(" (and {n} more places, below)"),
    };
    let mut d: ConfigDiagnostic = sources
        .diag(
            &first.at,
            format!(
                "cannot remove the {} `{name}` from the registry: {}{more}",
                kind.word(),
                first.what
            ),
        )
        .help(help);
    for r in &refs[1..] {
        d = d.also(sources, &r.at, r.what.clone());
    }
    Error::Config(Box::new(d))
}
