//! Checks of the registry itself: entries, implication targets.
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::error::{Error, Location, Result};
use crate::manifest::model::ImplyValue;
use crate::names;
use crate::plan::GroupKind;

impl Resolver<'_> {
    // ------------------------------------------------------------ registry checks

    /// Checks what can be checked without a selection: group options exist,
    /// implication targets are well-formed and exist.
    pub(super) fn validate_registry(&self) -> Result<()> {
        let reg = &self.l.registry;
        for (kind, groups, member_kind) in [
            (Kind::LibraryGroup, &reg.library_groups, Kind::Library),
            (Kind::ServiceGroup, &reg.service_groups, Kind::Service),
        ] {
            for (gname, g) in groups {
                if g.value.options.is_empty() {
                    return Err(err(self
                        .cache
                        .diag(
                            &g.origin,
                            format!("{} `{gname}` has no options", kind.word()),
                        )
                        .help("add `options = [\"…\"]` naming registry entries")));
                }
                let mut seen = BTreeSet::new();
                for (i, opt) in g.value.options.iter().enumerate() {
                    let loc = g.origin.key("options").index(i);
                    if !seen.insert(opt.name.as_str()) {
                        return Err(err(self.cache.diag(
                            &loc,
                            format!(
                                "{} `{gname}` lists the option `{}` twice",
                                kind.word(),
                                opt.name
                            ),
                        )));
                    }
                    if !self.exists(member_kind, &opt.name) {
                        return Err(self.unknown(member_kind, &opt.name, &loc));
                    }
                    self.validate_implies(&opt.implies, &loc.key("implies"))?;
                }
            }
        }
        for e in reg.libraries.values() {
            self.validate_implies(&e.value.implies, &e.origin.key("implies"))?;
        }
        for e in reg.services.values() {
            self.validate_implies(&e.value.implies, &e.origin.key("implies"))?;
        }
        Ok(())
    }

    pub(super) fn parse_target(&self, target: &str, loc: &Location) -> Result<(Kind, String)> {
        let Some((k, n)) = target.split_once(':') else {
            return Err(err(self
                .cache
                .diag(loc, format!("implication target `{target}` has no kind"))
                .help("write `library:<name>`, `library_group:<name>`, `service:<name>` or `service_group:<name>`")));
        };
        let Some(kind) = Kind::parse(k) else {
            let hint =
                names::did_you_mean(k, ["library", "library_group", "service", "service_group"]);
            let mut d = self.cache.diag(
                loc,
                format!("implication target `{target}` has an unknown kind `{k}`"),
            );
            d = d.help(match hint {
                Some(h) => format!("did you mean `{h}:{n}`?"),
                None => "kinds are `library`, `library_group`, `service` and `service_group`"
                    .to_string(),
            });
            return Err(err(d));
        };
        if !self.exists(kind, n) {
            return Err(self.unknown(kind, n, loc));
        }
        Ok((kind, n.to_string()))
    }

    pub(super) fn validate_implies(
        &self,
        implies: &BTreeMap<String, ImplyValue>,
        base: &Location,
    ) -> Result<()> {
        for (target, value) in implies {
            let loc = base.key(target.as_str());
            let (kind, name) = self.parse_target(target, &loc)?;
            let bad = |what: &str| -> Error {
                err(self
                    .cache
                    .diag(&loc, format!("implication `{target}`: {what}")))
            };
            match (kind, value) {
                (Kind::Library, ImplyValue::Flag(_)) => {}
                (Kind::Library, ImplyValue::Params(p)) if p.is_empty() => {}
                (Kind::Library, _) => return Err(bad("a library implication takes `true`")),
                (Kind::Service, ImplyValue::Flag(_) | ImplyValue::Params(_)) => {}
                (Kind::Service, ImplyValue::Options(_)) => {
                    return Err(bad(
                        "a service implication takes `true` or `{ params = { … } }`",
                    ))
                }
                (Kind::LibraryGroup | Kind::ServiceGroup, ImplyValue::Options(opts)) => {
                    let gk = if kind == Kind::LibraryGroup {
                        GroupKind::Library
                    } else {
                        GroupKind::Service
                    };
                    let g = self
                        .group_entry(gk, &name)
                        .expect("checked by parse_target");
                    if opts.is_empty() {
                        return Err(bad("names no option"));
                    }
                    for o in opts {
                        if !g.value.options.iter().any(|x| &x.name == o) {
                            return Err(err(self
                                .cache
                                .diag(&loc, format!("implication `{target}` selects `{o}`, which is not an option of {} `{name}`", kind.word()))
                                .also(&self.cache, &g.origin.key("options"), format!("the options of `{name}`"))
                                .help(format!("options are: {}", option_list(&g.value)))));
                        }
                    }
                }
                (Kind::LibraryGroup | Kind::ServiceGroup, _) => {
                    return Err(bad(
                        "a group implication takes an option name or a list of option names",
                    ))
                }
            }
        }
        Ok(())
    }
}
