//! Implications, applied transitively to a fixpoint, then the group
//! cardinality checks.

use super::*;
use crate::error::Result;
use crate::manifest::model::{ImplyValue, Strategy};
use crate::plan::GroupKind;

impl Resolver<'_> {
    // ------------------------------------------------------------ implications

    /// Applies implications until nothing changes. Selections only grow, so
    /// the fixpoint does not depend on the order of application; cycles
    /// converge because a second visit adds nothing.
    pub(super) fn apply_implications(&mut self) -> Result<()> {
        loop {
            let mut changed = false;
            // Snapshot of current providers: (label, implier service, implies, base location).
            let mut providers: Vec<Provider> = Vec::new();
            for name in self.libs.keys() {
                let e = &self.l.registry.libraries[name];
                providers.push((
                    format!("library:{name}"),
                    None,
                    e.value.implies.clone(),
                    e.origin.key("implies"),
                ));
            }
            for name in self.svcs.keys() {
                let e = &self.l.registry.services[name];
                providers.push((
                    format!("service:{name}"),
                    Some(name.clone()),
                    e.value.implies.clone(),
                    e.origin.key("implies"),
                ));
            }
            for ((gk, gname), state) in &self.groups {
                let g = self.group_entry(*gk, gname).expect("validated");
                for opt in state.options.keys() {
                    let (i, o) = g
                        .value
                        .options
                        .iter()
                        .enumerate()
                        .find(|(_, o)| &o.name == opt)
                        .expect("validated");
                    let prefix = if *gk == GroupKind::Library {
                        "library_group"
                    } else {
                        "service_group"
                    };
                    let implier = if *gk == GroupKind::Service {
                        Some(opt.clone())
                    } else {
                        None
                    };
                    providers.push((
                        format!("{prefix}:{gname}/{opt}"),
                        implier,
                        o.implies.clone(),
                        g.origin.key("options").index(i).key("implies"),
                    ));
                }
            }
            for (label, implier, implies, base) in providers {
                for (target, value) in &implies {
                    let loc = base.key(target.as_str());
                    let (kind, name) = self.parse_target(target, &loc)?;
                    let why = Why {
                        text: format!("implied by {label}"),
                        loc: loc.clone(),
                    };
                    match (kind, value) {
                        (_, ImplyValue::Flag(false)) => {}
                        (Kind::Library, _) => {
                            let e = self.libs.entry(name.clone()).or_default();
                            changed |= e.whys.is_empty();
                            e.whys.insert(why);
                        }
                        (Kind::Service, v) => {
                            let e = self.svcs.entry(name.clone()).or_default();
                            changed |= e.whys.is_empty();
                            e.whys.insert(why);
                            if let Some(s) = &implier {
                                if s != &name {
                                    changed |= self
                                        .implied_services
                                        .entry(s.clone())
                                        .or_default()
                                        .insert(name.clone());
                                }
                            }
                            if let ImplyValue::Params(p) = v {
                                for (k, val) in p {
                                    let slot = self
                                        .params
                                        .entry(name.clone())
                                        .or_default()
                                        .entry(k.clone())
                                        .or_default();
                                    if !slot.contains_key(&label) {
                                        slot.insert(
                                            label.clone(),
                                            ParamValue {
                                                value: val.0.clone(),
                                            },
                                        );
                                        changed = true;
                                    }
                                }
                            }
                        }
                        (Kind::LibraryGroup | Kind::ServiceGroup, ImplyValue::Options(opts)) => {
                            let gk = if kind == Kind::LibraryGroup {
                                GroupKind::Library
                            } else {
                                GroupKind::Service
                            };
                            for o in opts {
                                changed |= self.select_option(gk, &name, o, why.clone());
                            }
                        }
                        _ => unreachable!("validated by validate_implies"),
                    }
                }
            }
            if !changed {
                return Ok(());
            }
        }
    }

    pub(super) fn check_groups(&self) -> Result<()> {
        for ((gk, gname), state) in &self.groups {
            let g = self.group_entry(*gk, gname).expect("validated");
            if g.value.strategy == Strategy::OneOfN && state.options.len() > 1 {
                let mut it = state.options.iter();
                let (a, awhy) = it.next().expect("two options");
                let (b, bwhy) = it.next().expect("two options");
                let awhy = awhy.iter().next().expect("a reason");
                let bwhy = bwhy.iter().next().expect("a reason");
                let word = if *gk == GroupKind::Library {
                    "library group"
                } else {
                    "service group"
                };
                return Err(err(self
                    .cache
                    .diag(&awhy.loc, format!(
                        "{word} `{gname}` is 1-of-N, but two options are selected: `{a}` ({}, {}) and `{b}` ({}, {})",
                        awhy.text,
                        self.cache.describe(&awhy.loc),
                        bwhy.text,
                        self.cache.describe(&bwhy.loc)
                    ))
                    .label(format!("selects `{a}`"))
                    .also(&self.cache, &bwhy.loc, format!("selects `{b}`"))
                    .help("make both selections agree, or drop the component that implies the other option")));
            }
        }
        Ok(())
    }
}
