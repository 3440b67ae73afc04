//! Stage two: turn the manifest's selection and the registry into a [`Plan`].
//!
//! Pure apart from reading env files. The rules are those of
//! `hsm-concepts.md` §4: groups, modes, profiles, implications (transitive,
//! order-independent), parameter merging, env layering.

pub mod env;

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{ConfigDiagnostic, Error, KeyPath, Location, Result, SourceCache};
use crate::manifest::model::{
    ContainerEngine, DeploymentProfile, GroupEntry, ImplyValue, Mode, ProfileMode, RuntimeType,
    ServiceEntry, Source, Strategy,
};
use crate::manifest::{Entry, Loaded};
use crate::names;
use crate::paths::normalize;
use crate::plan::{
    Dependency, Deployment, EnvFile, EnvLayer, EnvVar, GroupKind, MergedParam, ParamContribution,
    Plan, PlannedGroup, PlannedLibrary, PlannedService, ProjectSettings, SelectedBy,
};

/// Default directory for clones of git-sourced services.
pub const DEFAULT_SERVICES_DIR: &str = "services";
/// Default compose file name.
pub const DEFAULT_COMPOSE_FILE: &str = "docker-compose.hsm.yml";

/// Resolves the selection into a Plan.
pub fn resolve(loaded: &Loaded) -> Result<Plan> {
    let mut r = Resolver {
        l: loaded,
        cache: loaded.sources.clone(),
        libs: BTreeMap::new(),
        svcs: BTreeMap::new(),
        groups: BTreeMap::new(),
        params: BTreeMap::new(),
        implied_services: BTreeMap::new(),
        warnings: Vec::new(),
    };
    r.validate_registry()?;
    r.seed()?;
    r.apply_implications()?;
    r.check_groups()?;
    r.build_plan()
}

/// Why a component or option is selected, and where that was said.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Why {
    text: String,
    loc: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Library,
    LibraryGroup,
    Service,
    ServiceGroup,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "library" => Kind::Library,
            "library_group" => Kind::LibraryGroup,
            "service" => Kind::Service,
            "service_group" => Kind::ServiceGroup,
            _ => return None,
        })
    }
    fn word(self) -> &'static str {
        match self {
            Kind::Library => "library",
            Kind::LibraryGroup => "library group",
            Kind::Service => "service",
            Kind::ServiceGroup => "service group",
        }
    }
}

#[derive(Debug, Default)]
struct SelectedLib {
    whys: BTreeSet<Why>,
    mode: Option<(Mode, Location)>,
}

#[derive(Debug, Default)]
struct SelectedSvc {
    whys: BTreeSet<Why>,
    mode: Option<(Mode, Location)>,
    /// Profile chosen by a standalone entry.
    profile: Option<(String, Location)>,
}

#[derive(Debug)]
struct GroupState {
    kind: GroupKind,
    options: BTreeMap<String, BTreeSet<Why>>,
    profile: Option<(String, Location)>,
}

struct ParamValue {
    value: String,
}

struct Resolver<'a> {
    l: &'a Loaded,
    cache: SourceCache,
    libs: BTreeMap<String, SelectedLib>,
    svcs: BTreeMap<String, SelectedSvc>,
    groups: BTreeMap<(GroupKind, String), GroupState>,
    /// target service → key → from → value
    params: BTreeMap<String, BTreeMap<String, BTreeMap<String, ParamValue>>>,
    /// implying service → implied services
    implied_services: BTreeMap<String, BTreeSet<String>>,
    warnings: Vec<String>,
}

/// Who implies (label), the implying service if any, what it implies, and
/// where its `implies` table is.
type Provider = (
    String,
    Option<String>,
    BTreeMap<String, ImplyValue>,
    Location,
);

/// One environment layer: which, where, described for errors, its variables.
type EnvLayerSpec = (EnvLayer, Location, String, Vec<(String, String)>);

fn err(d: ConfigDiagnostic) -> Error {
    Error::from(d)
}

impl<'a> Resolver<'a> {
    fn at(&self, kp: KeyPath) -> Location {
        self.l.at(kp)
    }

    fn unknown(&self, kind: Kind, name: &str, loc: &Location) -> Error {
        let known: Vec<&str> = match kind {
            Kind::Library => self
                .l
                .registry
                .libraries
                .keys()
                .map(String::as_str)
                .collect(),
            Kind::Service => self
                .l
                .registry
                .services
                .keys()
                .map(String::as_str)
                .collect(),
            Kind::LibraryGroup => self
                .l
                .registry
                .library_groups
                .keys()
                .map(String::as_str)
                .collect(),
            Kind::ServiceGroup => self
                .l
                .registry
                .service_groups
                .keys()
                .map(String::as_str)
                .collect(),
        };
        let mut d = self.cache.diag(
            loc,
            format!(
                "unknown {} `{name}`: it is not in the registry",
                kind.word()
            ),
        );
        d = match names::did_you_mean(name, known.iter().copied()) {
            Some(k) => d.help(format!("did you mean `{k}`?")),
            None => d.help(format!(
                "define it in the registry (`cargo hsm registry {} add {name}`)",
                match kind {
                    Kind::Library => "library",
                    Kind::Service => "service",
                    _ => "group",
                }
            )),
        };
        err(d)
    }

    fn exists(&self, kind: Kind, name: &str) -> bool {
        let reg = &self.l.registry;
        match kind {
            Kind::Library => reg.libraries.contains_key(name),
            Kind::Service => reg.services.contains_key(name),
            Kind::LibraryGroup => reg.library_groups.contains_key(name),
            Kind::ServiceGroup => reg.service_groups.contains_key(name),
        }
    }

    fn group_entry(&self, kind: GroupKind, name: &str) -> Option<&'a Entry<GroupEntry>> {
        match kind {
            GroupKind::Library => self.l.registry.library_groups.get(name),
            GroupKind::Service => self.l.registry.service_groups.get(name),
        }
    }

    // ------------------------------------------------------------ registry checks

    /// Checks what can be checked without a selection: group options exist,
    /// implication targets are well-formed and exist.
    fn validate_registry(&self) -> Result<()> {
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

    fn parse_target(&self, target: &str, loc: &Location) -> Result<(Kind, String)> {
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

    fn validate_implies(
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

    // ------------------------------------------------------------ seeding

    fn seed(&mut self) -> Result<()> {
        let m = &self.l.manifest;
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

        let mut seen: BTreeMap<String, Location> = BTreeMap::new();
        for (i, sel) in m.libraries.standalone.iter().enumerate() {
            let loc = self.at(KeyPath::parse_dotted("libraries.standalone").index(i));
            self.check_name(&sel.name, &loc)?;
            if !self.exists(Kind::Library, &sel.name) {
                return Err(self.unknown(Kind::Library, &sel.name, &loc));
            }
            if let Some(prev) = seen.insert(sel.name.clone(), loc.clone()) {
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
        let mut seen: BTreeMap<String, Location> = BTreeMap::new();
        for (i, sel) in m.services.standalone.iter().enumerate() {
            let loc = self.at(KeyPath::parse_dotted("services.standalone").index(i));
            self.check_name(&sel.name, &loc)?;
            if !self.exists(Kind::Service, &sel.name) {
                return Err(self.unknown(Kind::Service, &sel.name, &loc));
            }
            if let Some(prev) = seen.insert(sel.name.clone(), loc.clone()) {
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

    fn check_name(&self, name: &str, loc: &Location) -> Result<()> {
        names::validate(name).map_err(|why| {
            err(self
                .cache
                .diag(loc, format!("invalid component name: {why}")))
        })
    }

    fn duplicate_selection(
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
    fn select_option(&mut self, gk: GroupKind, gname: &str, opt: &str, why: Why) -> bool {
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

    // ------------------------------------------------------------ implications

    /// Applies implications until nothing changes. Selections only grow, so
    /// the fixpoint does not depend on the order of application; cycles
    /// converge because a second visit adds nothing.
    fn apply_implications(&mut self) -> Result<()> {
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

    fn check_groups(&self) -> Result<()> {
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

    // ------------------------------------------------------------ plan

    fn mode_of(&self, name: &str, explicit: &Option<(Mode, Location)>) -> Mode {
        if let Some((m, _)) = explicit {
            return *m;
        }
        self.l.manifest.modes.get(name).copied().unwrap_or_default()
    }

    fn library_mode(&self, name: &str) -> Mode {
        let explicit = self.libs.get(name).and_then(|l| l.mode.clone());
        self.mode_of(name, &explicit)
    }

    fn build_plan(mut self) -> Result<Plan> {
        let p = &self.l.manifest.project;
        let root = &self.l.workspace_root;
        let project = ProjectSettings {
            name: p
                .name
                .clone()
                .unwrap_or_else(|| root.file_name().unwrap_or("project").to_string()),
            workspace_root: root.clone(),
            manifest_path: self.l.manifest_path.clone(),
            manifest_location: self.l.location,
            services_dir: normalize(
                p.services_dir
                    .as_deref()
                    .unwrap_or(Utf8Path::new(DEFAULT_SERVICES_DIR)),
            ),
            compose_file: normalize(
                p.compose_file
                    .as_deref()
                    .unwrap_or(Utf8Path::new(DEFAULT_COMPOSE_FILE)),
            ),
            python_project: normalize(p.python_project.as_deref().unwrap_or(Utf8Path::new("."))),
            container_engine: p.container_engine.unwrap_or(ContainerEngine::Docker),
            package_manager: self
                .l
                .manifest
                .libraries
                .package_manager
                .clone()
                .unwrap_or_else(|| "uv".into()),
            registry_dir: self.l.registry_dir.clone(),
        };

        let mut libraries = Vec::new();
        for (name, sel) in &self.libs {
            let entry = &self.l.registry.libraries[name];
            let mode = self.mode_of(name, &sel.mode);
            let source = self.pick_source(
                Kind::Library,
                name,
                mode,
                &entry.value.sources,
                &entry.origin,
            )?;
            let requirement = library_requirement(name, &source);
            let target_path = match &source {
                Source::Local { path, .. } => Some(normalize(path)),
                _ => None,
            };
            libraries.push(PlannedLibrary {
                name: name.clone(),
                mode,
                source,
                requirement,
                target_path,
                group: self.group_of(GroupKind::Library, name),
                selected_by: sel.whys.iter().map(|w| self.why_text(w)).collect(),
            });
        }

        let svc_names: Vec<String> = self.svcs.keys().cloned().collect();
        let mut services = Vec::new();
        for name in &svc_names {
            services.push(self.plan_service(name, &project)?);
        }

        let groups = self
            .groups
            .iter()
            .map(|((gk, gname), st)| {
                let g = self.group_entry(*gk, gname).expect("validated");
                PlannedGroup {
                    kind: st.kind,
                    name: gname.clone(),
                    strategy: g.value.strategy,
                    selection: st.options.keys().cloned().collect(),
                    profile: st.profile.as_ref().map(|(p, _)| p.clone()),
                    comment: g
                        .value
                        .comment
                        .clone()
                        .or_else(|| g.value.description.clone()),
                }
            })
            .collect();
        self.warnings.sort();
        self.warnings.dedup();
        Ok(Plan {
            project,
            libraries,
            services,
            groups,
            warnings: self.warnings,
        })
    }

    fn why_text(&self, w: &Why) -> SelectedBy {
        let (line, column) = match self.cache.line_col_of(&w.loc) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        SelectedBy {
            reason: w.text.clone(),
            file: self.cache.display_path(&w.loc.file),
            key_path: w.loc.key_path.to_string(),
            line,
            column,
        }
    }

    fn group_of(&self, gk: GroupKind, name: &str) -> Option<String> {
        self.groups
            .iter()
            .find(|((k, _), st)| *k == gk && st.options.contains_key(name))
            .map(|((_, g), _)| g.clone())
    }

    fn pick_source(
        &self,
        kind: Kind,
        name: &str,
        mode: Mode,
        sources: &crate::manifest::model::Sources,
        origin: &Location,
    ) -> Result<Source> {
        let chosen = match mode {
            Mode::Dev => sources.dev.as_ref().or(sources.prod.as_ref()),
            Mode::Prod => sources.prod.as_ref(),
        };
        let Some(source) = chosen else {
            return Err(err(self
                .cache
                .diag(origin, format!("the {} `{name}` has no `sources.prod`{}", kind.word(), if mode == Mode::Dev { " or `sources.dev`" } else { "" }))
                .help(match (mode, sources.dev.is_some()) {
                    (Mode::Prod, true) => format!("add `[sources.prod]`, or select `{name}` in dev mode (`cargo hsm {} mode {name} dev`)", kind.word()),
                    _ => "add a `[sources.prod]` table".to_string(),
                })));
        };
        let key = if mode == Mode::Dev && sources.dev.is_some() {
            "dev"
        } else {
            "prod"
        };
        let loc = origin.key("sources").key(key).key("type");
        match (kind, source) {
            (Kind::Library, Source::DockerImage { .. } | Source::Build { .. }) => Err(err(self
                .cache
                .diag(&loc, format!("library `{name}` has a `{}` source; libraries take `pypi`, `git` or `local`", source.kind())))),
            (Kind::Service, Source::Pypi { .. }) => Err(err(self
                .cache
                .diag(&loc, format!("service `{name}` has a `pypi` source; services take `git`, `local`, `docker-image` or `build`")))),
            _ => Ok(source.clone()),
        }
    }

    fn plan_service(&mut self, name: &str, project: &ProjectSettings) -> Result<PlannedService> {
        let entry: &Entry<ServiceEntry> = &self.l.registry.services[name];
        let e = &entry.value;
        let sel = &self.svcs[name];
        let mode = self.mode_of(name, &sel.mode);

        // Profile: group's, else standalone entry's, else `default`.
        let mut group_profile: Option<(String, Location, String)> = None;
        for ((gk, gname), st) in &self.groups {
            if *gk == GroupKind::Service && st.options.contains_key(name) {
                if let Some((p, loc)) = &st.profile {
                    if let Some((prev, prev_loc, prev_g)) = &group_profile {
                        if prev != p {
                            return Err(err(self
                                .cache
                                .diag(loc, format!("service `{name}` gets profile `{p}` from group `{gname}` and `{prev}` from group `{prev_g}`"))
                                .also(&self.cache, prev_loc, format!("profile `{prev}`"))));
                        }
                    }
                    group_profile = Some((p.clone(), loc.clone(), gname.clone()));
                }
            }
        }
        let (profile_name, profile_loc) = match (&group_profile, &sel.profile) {
            (Some((p, l, _)), _) => (p.clone(), Some(l.clone())),
            (None, Some((p, l))) => (p.clone(), Some(l.clone())),
            (None, None) => ("default".to_string(), None),
        };
        let implicit = DeploymentProfile::default();
        let profile: &DeploymentProfile = if e.deployment_profiles.is_empty()
            && profile_name == "default"
        {
            &implicit
        } else {
            match e.deployment_profiles.get(&profile_name) {
                Some(p) => p,
                None => {
                    let defined: Vec<&str> =
                        e.deployment_profiles.keys().map(String::as_str).collect();
                    let loc = profile_loc.unwrap_or_else(|| entry.origin.clone());
                    let mut d = self.cache.diag(
                        &loc,
                        format!(
                            "service `{name}` has no deployment profile `{profile_name}`{}",
                            if defined.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    "; it defines {}",
                                    defined
                                        .iter()
                                        .map(|p| format!("`{p}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            }
                        ),
                    );
                    d = d.also(
                        &self.cache,
                        &entry.origin,
                        format!("service `{name}` is defined here"),
                    );
                    d = match names::did_you_mean(&profile_name, defined.iter().copied()) {
                        Some(k) => d.help(format!("did you mean `{k}`?")),
                        None => d.help(format!("add `[deployment-profiles.{profile_name}]` to the service, or choose a defined profile")),
                    };
                    return Err(err(d));
                }
            }
        };
        let profile_origin = entry
            .origin
            .key("deployment-profiles")
            .key(profile_name.as_str());
        let external = profile.mode == Some(ProfileMode::External);

        let source = if external {
            match mode {
                Mode::Dev => e.sources.dev.clone().or_else(|| e.sources.prod.clone()),
                Mode::Prod => e.sources.prod.clone(),
            }
        } else {
            Some(self.pick_source(Kind::Service, name, mode, &e.sources, &entry.origin)?)
        };

        let deployment = if external {
            if e.deployment_profiles
                .get(&profile_name)
                .is_some_and(|p| p.external.is_empty())
            {
                self.warnings.push(format!("service `{name}`: external profile `{profile_name}` has no `external` values to pass on"));
            }
            Deployment::External {
                values: profile
                    .external
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            }
        } else {
            let src = source.as_ref().expect("managed services have a source");
            let runtime = profile.runtime.unwrap_or(match src {
                Source::DockerImage { .. } | Source::Build { .. } => RuntimeType::Docker,
                _ => RuntimeType::Uv,
            });
            if !runtime.is_container()
                && matches!(src, Source::DockerImage { .. } | Source::Build { .. })
            {
                return Err(err(self
                    .cache
                    .diag(&profile_origin.key("runtime"), format!("service `{name}` runs with `{runtime}`, which needs a `git` or `local` source, but its source is `{}`", src.kind()))
                    .help("use a container runtime (`docker`, `podman`) for image and build sources")));
            }
            Deployment::Managed { runtime }
        };

        // Dockerfile: the `build` source's, or the profile's for `git` and
        // `local` sources; only container runtimes build images.
        let dockerfile = match (&deployment, &source) {
            (Deployment::Managed { runtime }, Some(src)) if runtime.is_container() => {
                match (src, &profile.dockerfile) {
                    (Source::DockerImage { .. }, Some(_)) => {
                        return Err(err(self
                            .cache
                            .diag(&profile_origin.key("dockerfile"), format!("service `{name}` sets `dockerfile`, but its source is an image (`docker-image`), which is not built"))
                            .help("remove `dockerfile`, or use a `build`, `git` or `local` source")));
                    }
                    (
                        Source::Build {
                            dockerfile: Some(_),
                            ..
                        },
                        Some(_),
                    ) => {
                        return Err(err(self
                            .cache
                            .diag(&profile_origin.key("dockerfile"), format!("service `{name}` sets `dockerfile` both in its `build` source and in profile `{profile_name}`"))
                            .help("keep one of the two")));
                    }
                    (Source::Build { dockerfile, .. }, None) => dockerfile.clone(),
                    (_, d) => d.clone(),
                }
            }
            _ => {
                if profile.dockerfile.is_some() {
                    let how = match &deployment {
                        Deployment::Managed { runtime } => format!("runs with `{runtime}`"),
                        Deployment::External { .. } => "is external".to_string(),
                    };
                    return Err(err(self
                        .cache
                        .diag(&profile_origin.key("dockerfile"), format!("service `{name}` sets `dockerfile` in profile `{profile_name}`, but it {how}; only `docker` and `podman` services are built"))
                        .help("remove `dockerfile`, or set `runtime = \"docker\"` or `\"podman\"`")));
                }
                None
            }
        };

        // Target and checkout paths.
        let (target_path, checkout_path) = match (&deployment, &source) {
            (Deployment::Managed { .. }, Some(src)) => {
                target_paths(name, src, &project.services_dir)
            }
            _ => (None, None),
        };

        // Parameters passed to this service, merged.
        let mut params = BTreeMap::new();
        if let Some(keys) = self.params.get(name) {
            for (key, from) in keys {
                let contributions: Vec<ParamContribution> = from
                    .iter()
                    .map(|(f, v)| ParamContribution {
                        from: f.clone(),
                        value: v.value.clone(),
                    })
                    .collect();
                params.insert(
                    key.clone(),
                    MergedParam {
                        value: merge_values(&contributions),
                        contributions,
                    },
                );
            }
        }

        // Environment layers.
        let (env, env_files) = self.layer_env(
            name,
            entry,
            profile,
            &profile_origin,
            &source,
            mode,
            &params,
        )?;

        let command = profile.command.as_ref().map(|c| {
            c.iter()
                .map(|a| self.substitute(name, a, &params))
                .collect::<Vec<_>>()
        });

        // Dependencies: registry libraries or requirement strings.
        let mut dependencies = Vec::new();
        for (i, dep) in e.dependencies.iter().enumerate() {
            let dep = dep.trim();
            if dep.is_empty() {
                return Err(err(self.cache.diag(
                    &entry.origin.key("dependencies").index(i),
                    format!("service `{name}` has an empty dependency"),
                )));
            }
            if let Some(lib) = self.l.registry.libraries.get(dep) {
                let lmode = self.library_mode(dep);
                let src =
                    self.pick_source(Kind::Library, dep, lmode, &lib.value.sources, &lib.origin)?;
                dependencies.push(Dependency::Library {
                    name: dep.to_string(),
                    mode: lmode,
                    requirement: library_requirement(dep, &src),
                    source: src,
                });
            } else {
                dependencies.push(Dependency::Requirement {
                    requirement: dep.to_string(),
                });
            }
        }

        // depends_on: declared, then implied services.
        let mut depends_on: Vec<String> = Vec::new();
        for (i, d) in e.depends_on.iter().enumerate() {
            if !self.svcs.contains_key(d) {
                let loc = entry.origin.key("depends-on").index(i);
                if !self.exists(Kind::Service, d) {
                    return Err(self.unknown(Kind::Service, d, &loc));
                }
                return Err(err(self
                    .cache
                    .diag(&loc, format!("service `{name}` depends on `{d}`, which is not selected"))
                    .help(format!("select `{d}` (`cargo hsm service add {d}`), or imply it with `\"service:{d}\" = true`"))));
            }
            if !depends_on.contains(d) {
                depends_on.push(d.clone());
            }
        }
        if let Some(implied) = self.implied_services.get(name) {
            for d in implied {
                if !depends_on.contains(d) {
                    depends_on.push(d.clone());
                }
            }
        }

        let healthcheck = e
            .healthcheck
            .as_ref()
            .map(|h| serde_json::to_value(h).expect("TOML tables convert to JSON"));

        Ok(PlannedService {
            name: name.to_string(),
            mode,
            profile: profile_name,
            deployment,
            source,
            target_path,
            checkout_path,
            dockerfile,
            command,
            working_dir: profile.working_dir.clone(),
            env,
            env_files,
            params,
            dependencies,
            ports: e.ports.clone(),
            volumes: e.volumes.clone(),
            depends_on,
            healthcheck,
            container_name: e.container_name.clone(),
            restart: e.restart.clone(),
            aliases: e.aliases.clone(),
            group: self.group_of(GroupKind::Service, name),
            selected_by: self.svcs[name]
                .whys
                .iter()
                .map(|w| self.why_text(w))
                .collect(),
        })
    }

    /// Replaces `${HSM_MERGED_PARAMS.key}`; every other `${…}` stays literal.
    fn substitute(
        &mut self,
        service: &str,
        value: &str,
        params: &BTreeMap<String, MergedParam>,
    ) -> String {
        const OPEN: &str = "${HSM_MERGED_PARAMS.";
        let mut out = String::new();
        let mut rest = value;
        while let Some(i) = rest.find(OPEN) {
            out.push_str(&rest[..i]);
            let after = &rest[i + OPEN.len()..];
            match after.find('}') {
                Some(j) => {
                    let key = &after[..j];
                    match params.get(key) {
                        Some(p) => out.push_str(&p.value),
                        None => self.warnings.push(format!(
                            "service `{service}`: `${{HSM_MERGED_PARAMS.{key}}}` has no value (no selected component passes `{key}`); it becomes empty"
                        )),
                    }
                    rest = &after[j + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_env(
        &mut self,
        name: &str,
        entry: &Entry<ServiceEntry>,
        profile: &DeploymentProfile,
        profile_origin: &Location,
        source: &Option<Source>,
        mode: Mode,
        params: &BTreeMap<String, MergedParam>,
    ) -> Result<(BTreeMap<String, EnvVar>, Vec<EnvFile>)> {
        let e = &entry.value;
        // key → (where it was set, human description)
        let mut set_at: BTreeMap<String, (Location, String)> = BTreeMap::new();
        let mut env: BTreeMap<String, EnvVar> = BTreeMap::new();
        let mut env_files = Vec::new();

        let conflict = |cache: &SourceCache,
                        key: &str,
                        prev: &(Location, String),
                        loc: &Location,
                        what: &str|
         -> Error {
            err(cache
                .diag(loc, format!(
                    "environment variable `{key}` of service `{name}` is set twice: by {} ({}) and by {what} ({})",
                    prev.1,
                    cache.describe(&prev.0),
                    cache.describe(loc)
                ))
                .label(format!("`{key}` set again here"))
                .also(cache, &prev.0, format!("`{key}` first set here"))
                .help("set each variable in one place only"))
        };

        for (i, rel) in e.env_file.iter().enumerate() {
            let rel_n = normalize(rel);
            let path = self.l.workspace_root.join(&rel_n);
            let loc = entry.origin.key("env-file").index(i);
            if !path.is_file() {
                return Err(err(self
                    .cache
                    .diag(&loc, format!("env file `{rel}` of service `{name}` does not exist"))
                    .help("create it, or remove it from `env-file` (paths are relative to the workspace root)")));
            }
            let lines = env::read_env_file(&mut self.cache, &path)?;
            let mut keys = Vec::new();
            for l in lines {
                let here = Location::line(path.clone(), l.line);
                if let Some(prev) = set_at.get(&l.key) {
                    return Err(conflict(
                        &self.cache,
                        &l.key,
                        prev,
                        &here,
                        &format!("env file `{rel}`"),
                    ));
                }
                set_at.insert(l.key.clone(), (here, format!("env file `{rel}`")));
                keys.push(l.key);
            }
            env_files.push(EnvFile { path: rel_n, keys });
        }

        let source_key = if mode == Mode::Dev && e.sources.dev.is_some() {
            "dev"
        } else {
            "prod"
        };
        let mut layers: Vec<EnvLayerSpec> = vec![
            (
                EnvLayer::Service,
                entry.origin.key("env"),
                "the service's `env`".into(),
                e.env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            ),
            (
                EnvLayer::Profile,
                profile_origin.key("env"),
                "the profile's `env`".into(),
                profile
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            ),
            (
                EnvLayer::Source,
                entry.origin.key("sources").key(source_key).key("env"),
                "the source's `env`".into(),
                source
                    .as_ref()
                    .map(|s| {
                        s.env()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.0.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        ];
        // Connection values of external services this one implies.
        if let Some(implied) = self.implied_services.get(name).cloned() {
            for target in implied {
                let t = &self.l.registry.services[&target];
                let Some(tsel) = self.svcs.get(&target) else {
                    continue;
                };
                let tprofile = self.profile_name_of(&target, tsel);
                if let Some(p) = t.value.deployment_profiles.get(&tprofile) {
                    if p.mode == Some(ProfileMode::External) {
                        let prefix = env_prefix(&target);
                        layers.push((
                            EnvLayer::External,
                            t.origin
                                .key("deployment-profiles")
                                .key(tprofile.as_str())
                                .key("external"),
                            format!("the external values of `{target}`"),
                            p.external
                                .iter()
                                .map(|(k, v)| (format!("{prefix}_{}", env_prefix(k)), v.0.clone()))
                                .collect(),
                        ));
                    }
                }
            }
        }
        for (layer, base, what, vars) in layers {
            for (k, v) in vars {
                let loc = if layer == EnvLayer::External {
                    base.clone()
                } else {
                    base.key(k.as_str())
                };
                if let Some(prev) = set_at.get(&k) {
                    return Err(conflict(&self.cache, &k, prev, &loc, &what));
                }
                set_at.insert(k.clone(), (loc, what.clone()));
                let value = self.substitute(name, &v, params);
                env.insert(
                    k,
                    EnvVar {
                        value,
                        layer: layer.clone(),
                    },
                );
            }
        }
        for (k, p) in params {
            if let Some(prev) = set_at.get(k) {
                let from = p
                    .contributions
                    .first()
                    .map(|c| c.from.clone())
                    .unwrap_or_default();
                let loc = self
                    .param_location(&from, name)
                    .unwrap_or_else(|| entry.origin.clone());
                return Err(conflict(
                    &self.cache,
                    k,
                    prev,
                    &loc,
                    &format!("a parameter passed by `{from}`"),
                ));
            }
            env.insert(
                k.clone(),
                EnvVar {
                    value: p.value.clone(),
                    layer: EnvLayer::Params,
                },
            );
        }
        Ok((env, env_files))
    }

    fn profile_name_of(&self, name: &str, sel: &SelectedSvc) -> String {
        for ((gk, _), st) in &self.groups {
            if *gk == GroupKind::Service && st.options.contains_key(name) {
                if let Some((p, _)) = &st.profile {
                    return p.clone();
                }
            }
        }
        sel.profile
            .as_ref()
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| "default".into())
    }

    /// Where `from` (a provider label) passes params to `target`.
    fn param_location(&self, from: &str, target: &str) -> Option<Location> {
        let key = format!("service:{target}");
        if let Some(n) = from.strip_prefix("service:") {
            return Some(
                self.l
                    .registry
                    .services
                    .get(n)?
                    .origin
                    .key("implies")
                    .key(key),
            );
        }
        if let Some(n) = from.strip_prefix("library:") {
            return Some(
                self.l
                    .registry
                    .libraries
                    .get(n)?
                    .origin
                    .key("implies")
                    .key(key),
            );
        }
        None
    }
}

fn option_list(g: &GroupEntry) -> String {
    g.options
        .iter()
        .map(|o| format!("`{}`", o.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `my-svc` → `MY_SVC`: the prefix of an external service's variables.
pub fn env_prefix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Merges values in contribution order (contributions are sorted by who
/// passed them), dropping repeats: `auth_db,billing_db`.
pub fn merge_values(contributions: &[ParamContribution]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for c in contributions {
        for part in c.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !seen.contains(&part) {
                seen.push(part);
            }
        }
    }
    seen.join(",")
}

/// Where a service lives and where its clone goes, relative to the workspace root.
pub fn target_paths(
    name: &str,
    source: &Source,
    services_dir: &Utf8Path,
) -> (Option<Utf8PathBuf>, Option<Utf8PathBuf>) {
    match source {
        Source::Local { path, .. } => (Some(normalize(path)), None),
        Source::Build { path, .. } => (Some(normalize(path)), None),
        Source::Git { subdirectory, .. } => {
            let checkout = normalize(&services_dir.join(name));
            let target = match subdirectory {
                Some(sub) => normalize(&checkout.join(sub)),
                None => checkout.clone(),
            };
            (Some(target), Some(checkout))
        }
        Source::DockerImage { .. } | Source::Pypi { .. } => (None, None),
    }
}

/// The requirement string hsm writes for a library into a `pyproject.toml`.
pub fn library_requirement(name: &str, source: &Source) -> String {
    match source {
        Source::Pypi {
            package, version, ..
        } => {
            let pkg = package.clone().unwrap_or_else(|| name.to_string());
            match version.as_deref().map(str::trim) {
                None | Some("") => pkg,
                Some(v) if v.starts_with(|c: char| c.is_ascii_digit()) => format!("{pkg}=={v}"),
                Some(v) => format!("{pkg}{v}"),
            }
        }
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests;
