//! Seeding: what the manifest selects directly (standalone entries, group
//! selections), with modes and profiles.
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::error::{Error, KeyPath, Location, Result};
use crate::manifest::model::Strategy;
use crate::names;
use crate::plan::GroupKind;

impl Resolver<'_> {
    // ------------------------------------------------------------ seeding

    pub(super) fn seed(&mut self) -> Result<()> {
        let l = self.l;
        let m = &l.manifest;
        if let Some(pm) = &m.libraries.package_manager {
            if pm != "uv" {
                return Err(err(self
                    .cache
                    .diag(
                        &self.at(KeyPath::parse_dotted("libraries.package-manager")),
                        format!("unsupported package manager `{pm}`"),
                    )
                    .help(
                        "`uv` is the only package manager for the shared environment",
                    )));
            }
        }
        for name in m.modes.keys() {
            let loc = self.at(KeyPath::parse_dotted("modes").key(name.as_str()));
            if !self.exists(Kind::Library, name) && !self.exists(Kind::Service, name) {
                let known: Vec<&str> = self
                    .l
                    .registry
                    .libraries
                    .keys()
                    .chain(self.l.registry.services.keys())
                    .map(String::as_str)
                    .collect();
                let mut d = self.cache.diag(&loc, format!("`[modes]` names `{name}`, which is neither a library nor a service in the registry"));
                if let Some(k) = names::did_you_mean(name, known) {
                    d = d.help(format!("did you mean `{k}`?"));
                }
                return Err(err(d));
            }
        }

        let mut seen: BTreeMap<&str, Location> = BTreeMap::new();
        let standalone = self.at(KeyPath::parse_dotted("libraries.standalone"));
        for (i, sel) in m.libraries.standalone.iter().enumerate() {
            let loc = standalone.index(i);
            self.check_name(&sel.name, &loc)?;
            if !self.exists(Kind::Library, &sel.name) {
                return Err(self.unknown(Kind::Library, &sel.name, &loc));
            }
            if let Some(prev) = seen.insert(&sel.name, loc.clone()) {
                return Err(self.duplicate_selection("library", &sel.name, &loc, &prev));
            }
            let e = self.libs.entry(sel.name.clone()).or_default();
            e.whys.insert(Why {
                text: "standalone".into(),
                loc: loc.clone(),
            });
            if let Some(mode) = sel.mode {
                e.mode = Some((mode, loc.key("mode")));
            }
        }
        let mut seen: BTreeMap<&str, Location> = BTreeMap::new();
        let standalone = self.at(KeyPath::parse_dotted("services.standalone"));
        for (i, sel) in m.services.standalone.iter().enumerate() {
            let loc = standalone.index(i);
            self.check_name(&sel.name, &loc)?;
            if !self.exists(Kind::Service, &sel.name) {
                return Err(self.unknown(Kind::Service, &sel.name, &loc));
            }
            if let Some(prev) = seen.insert(&sel.name, loc.clone()) {
                return Err(self.duplicate_selection("service", &sel.name, &loc, &prev));
            }
            let e = self.svcs.entry(sel.name.clone()).or_default();
            e.whys.insert(Why {
                text: "standalone".into(),
                loc: loc.clone(),
            });
            if let Some(mode) = sel.mode {
                e.mode = Some((mode, loc.key("mode")));
            }
            if let Some(p) = &sel.profile {
                e.profile = Some((p.clone(), loc.key("profile")));
            }
        }

        let lib_groups: Vec<_> = m
            .libraries
            .groups
            .iter()
            .map(|(g, s)| {
                (
                    GroupKind::Library,
                    g.clone(),
                    s.strategy,
                    s.selection.0.clone(),
                    None,
                )
            })
            .collect();
        let svc_groups: Vec<_> = m
            .services
            .groups
            .iter()
            .map(|(g, s)| {
                (
                    GroupKind::Service,
                    g.clone(),
                    s.strategy,
                    s.selection.0.clone(),
                    s.profile.clone(),
                )
            })
            .collect();
        for (gk, gname, strategy, selection, profile) in lib_groups.into_iter().chain(svc_groups) {
            let section = if gk == GroupKind::Library {
                "libraries"
            } else {
                "services"
            };
            let loc = self.at(KeyPath::parse_dotted(section)
                .key("groups")
                .key(gname.as_str()));
            let kind = if gk == GroupKind::Library {
                Kind::LibraryGroup
            } else {
                Kind::ServiceGroup
            };
            self.check_name(&gname, &loc)?;
            let Some(g) = self.group_entry(gk, &gname) else {
                return Err(self.unknown(kind, &gname, &loc));
            };
            if let Some(s) = strategy {
                if s != g.value.strategy {
                    return Err(err(self
                        .cache
                        .diag(
                            &loc.key("strategy"),
                            format!(
                                "{} `{gname}` is {} in the registry, but the manifest says {s}",
                                kind.word(),
                                g.value.strategy
                            ),
                        )
                        .also(
                            &self.cache,
                            &g.origin.key("strategy"),
                            "the registry's strategy",
                        )
                        .help(format!(
                            "write `strategy = \"{}\"` or leave the key out",
                            g.value.strategy
                        ))));
                }
            }
            let sel_loc = loc.key("selection");
            match (g.value.strategy, selection.len()) {
                (_, 0) => {
                    return Err(err(self
                        .cache
                        .diag(
                            &sel_loc,
                            format!("{} `{gname}` selects nothing", kind.word()),
                        )
                        .help(format!("select one of: {}", option_list(&g.value)))))
                }
                (Strategy::OneOfN, n) if n > 1 => {
                    return Err(err(self
                        .cache
                        .diag(
                            &sel_loc,
                            format!(
                                "{} `{gname}` is 1-of-N but {n} options are selected: {}",
                                kind.word(),
                                selection
                                    .iter()
                                    .map(|s| format!("`{s}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                        .help(
                            "select exactly one option, or make the group M-of-N in the registry",
                        )))
                }
                _ => {}
            }
            let mut dup = BTreeSet::new();
            for opt in &selection {
                if !dup.insert(opt) {
                    return Err(err(self.cache.diag(
                        &sel_loc,
                        format!("{} `{gname}` selects `{opt}` twice", kind.word()),
                    )));
                }
                if !g.value.options.iter().any(|o| &o.name == opt) {
                    return Err(err(self
                        .cache
                        .diag(
                            &sel_loc,
                            format!("`{opt}` is not an option of {} `{gname}`", kind.word()),
                        )
                        .also(
                            &self.cache,
                            &g.origin.key("options"),
                            format!("the options of `{gname}`"),
                        )
                        .help(format!("options are: {}", option_list(&g.value)))));
                }
            }
            let state = self
                .groups
                .entry((gk, gname.clone()))
                .or_insert_with(|| GroupState {
                    kind: gk,
                    options: BTreeMap::new(),
                    profile: None,
                });
            if let Some(p) = profile {
                state.profile = Some((p, loc.key("profile")));
            }
            for opt in selection {
                let why = Why {
                    text: format!("{} `{gname}`", kind.word()),
                    loc: sel_loc.clone(),
                };
                self.select_option(gk, &gname, &opt, why);
            }
        }
        Ok(())
    }

    pub(super) fn check_name(&self, name: &str, loc: &Location) -> Result<()> {
        names::validate(name).map_err(|why| {
            err(self
                .cache
                .diag(loc, format!("invalid component name: {why}")))
        })
    }

    pub(super) fn duplicate_selection(
        &self,
        what: &str,
        name: &str,
        loc: &Location,
        prev: &Location,
    ) -> Error {
        err(self
            .cache
            .diag(loc, format!("the {what} `{name}` is selected twice"))
            .label("second selection")
            .also(&self.cache, prev, "first selection")
            .help("remove one of the two entries"))
    }

    /// Selects an option of a group and the component it names. Returns
    /// whether anything new was selected.
    pub(super) fn select_option(
        &mut self,
        gk: GroupKind,
        gname: &str,
        opt: &str,
        why: Why,
    ) -> bool {
        let state = self
            .groups
            .entry((gk, gname.to_string()))
            .or_insert_with(|| GroupState {
                kind: gk,
                options: BTreeMap::new(),
                profile: None,
            });
        let new_opt = !state.options.contains_key(opt);
        state
            .options
            .entry(opt.to_string())
            .or_default()
            .insert(why);
        let comp_why = Why {
            text: format!(
                "option of {} group `{gname}`",
                if gk == GroupKind::Library {
                    "library"
                } else {
                    "service"
                }
            ),
            loc: self
                .group_entry(gk, gname)
                .map(|g| g.origin.clone())
                .unwrap_or_else(|| self.at(KeyPath::root())),
        };
        let new_comp = match gk {
            GroupKind::Library => {
                let e = self.libs.entry(opt.to_string()).or_default();
                let new = e.whys.is_empty();
                e.whys.insert(comp_why);
                new
            }
            GroupKind::Service => {
                let e = self.svcs.entry(opt.to_string()).or_default();
                let new = e.whys.is_empty();
                e.whys.insert(comp_why);
                new
            }
        };
        new_opt || new_comp
    }
}
