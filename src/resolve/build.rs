//! From the resolved selection to the [`Plan`]: modes, sources, and the
//! services with their deployment, target path and layered env.
use std::collections::BTreeMap;

use camino::Utf8Path;

use super::*;
use crate::error::{Error, Location, Result, SourceCache};
use crate::manifest::model::{
    ContainerEngine, DeploymentProfile, Mode, ProfileMode, RuntimeType, ServiceEntry, Source,
};
use crate::manifest::Entry;
use crate::names;
use crate::paths::normalize;
use crate::plan::{
    Dependency, Deployment, EnvFile, EnvLayer, EnvVar, GroupKind, MergedParam, ParamContribution,
    Plan, PlannedGroup, PlannedLibrary, PlannedService, ProjectSettings, SelectedBy,
};

impl Resolver<'_> {
    // ------------------------------------------------------------ plan

    pub(super) fn mode_of(&self, name: &str, explicit: &Option<(Mode, Location)>) -> Mode {
        if let Some((m, _)) = explicit {
            return *m;
        }
        self.l.manifest.modes.get(name).copied().unwrap_or_default()
    }

    pub(super) fn library_mode(&self, name: &str) -> Mode {
        let explicit = self.libs.get(name).and_then(|l| l.mode.clone());
        self.mode_of(name, &explicit)
    }

    pub(super) fn build_plan(mut self) -> Result<Plan> {
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

    pub(super) fn why_text(&self, w: &Why) -> SelectedBy {
        SelectedBy {
            reason: w.text.clone(),
            file: self.cache.display_path(&w.loc.file),
            at: self.cache.pinpoint(&w.loc),
        }
    }

    pub(super) fn group_of(&self, gk: GroupKind, name: &str) -> Option<String> {
        self.groups
            .iter()
            .find(|((k, _), st)| *k == gk && st.options.contains_key(name))
            .map(|((_, g), _)| g.clone())
    }

    pub(super) fn pick_source(
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
        let loc = || origin.key("sources").key(key).key("type");
        match (kind, source) {
            (Kind::Library, Source::DockerImage { .. } | Source::Build { .. }) => Err(err(self
                .cache
                .diag(&loc(), format!("library `{name}` has a `{}` source; libraries take `pypi`, `git` or `local`", source.kind())))),
            (Kind::Service, Source::Pypi { .. }) => Err(err(self
                .cache
                .diag(&loc(), format!("service `{name}` has a `pypi` source; services take `git`, `local`, `docker-image` or `build`")))),
            // A pypi source without `package` installs the entry's own
            // name: say so in the Plan, so that nothing downstream (list,
            // hsm.lock) has to guess it.
            (Kind::Library, Source::Pypi { package: None, version, env }) => Ok(Source::Pypi {
                package: Some(name.to_string()),
                version: version.clone(),
                env: env.clone(),
            }),
            _ => Ok(source.clone()),
        }
    }

    pub(super) fn plan_service(
        &mut self,
        name: &str,
        project: &ProjectSettings,
    ) -> Result<PlannedService> {
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
        if let Some(co) = &checkout_path {
            if let Err(resolved) = crate::paths::within(&self.l.workspace_root, co) {
                let key = if mode == Mode::Dev && e.sources.dev.is_some() {
                    "dev"
                } else {
                    "prod"
                };
                return Err(err(self
                    .cache
                    .diag(&entry.origin.key("sources").key(key), format!("the clone of service `{name}` would go to `{co}`, which resolves to {resolved}"))
                    .help("clones go inside the workspace: remove the symlink, or set `project.services-dir`")));
            }
        }

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

        // PersistentVolumeClaim sizes: of named volumes of this service,
        // as Kubernetes quantities.
        for (vol, size) in &e.volume_sizes {
            let loc = entry.origin.key("volume-sizes").key(vol);
            let named = e
                .volumes
                .iter()
                .any(|v| v.split(':').next() == Some(vol.as_str()) && v.contains(':'));
            if !named {
                return Err(err(self
                    .cache
                    .diag(&loc, format!("`volume-sizes` of service `{name}` names `{vol}`, which is not one of its named volumes"))
                    .help(format!("name a volume of its `volumes` (`\"{vol}:/path\"`), or remove `{vol}` from `volume-sizes`"))));
            }
            if !is_quantity(size) {
                return Err(err(self
                    .cache
                    .diag(&loc, format!("the size `{size}` of volume `{vol}` of service `{name}` is not a Kubernetes quantity"))
                    .help("write a number with a binary or decimal suffix, such as `\"10Gi\"`, `\"500Mi\"` or `\"2G\"`")));
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
            volume_sizes: e.volume_sizes.clone(),
            depends_on,
            healthcheck,
            container_name: e.container_name.clone(),
            restart: e.restart.clone(),
            aliases: e.aliases.clone(),
            url_scheme: e.url_scheme.clone(),
            stop_timeout: e.stop_timeout.clone(),
            image_repository: profile.image_repository.clone(),
            base_image: profile.base_image.clone(),
            wait_for_dependencies: profile.wait_for_dependencies,
            wait_image: profile.wait_image.clone(),
            group: self.group_of(GroupKind::Service, name),
            selected_by: self.svcs[name]
                .whys
                .iter()
                .map(|w| self.why_text(w))
                .collect(),
        })
    }

    /// Replaces `${HSM_MERGED_PARAMS.key}`; every other `${…}` stays literal.
    pub(super) fn substitute(
        &mut self,
        service: &str,
        value: &str,
        params: &BTreeMap<String, MergedParam>,
    ) -> String {
        const OPEN: &str = "${HSM_MERGED_PARAMS.";
        // Most values name no parameter: no `$` at all, checked by a plain
        // scan (a substring search costs more to set up than this).
        if !value.bytes().any(|b| b == b'$') {
            return value.to_owned();
        }
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
    pub(super) fn layer_env(
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
        // key → where it was set, an index into `places`. A variable's own
        // location is only made when a conflict is reported.
        let mut set_at: BTreeMap<String, usize> = BTreeMap::new();
        let mut places: Vec<Place> = Vec::new();
        let mut env: BTreeMap<String, EnvVar> = BTreeMap::new();
        let mut env_files = Vec::new();

        let conflict = |cache: &SourceCache,
                        key: &str,
                        prev: &Place,
                        loc: &Location,
                        what: &str|
         -> Error {
            let prev_loc = prev.of(key);
            err(cache
                .diag(loc, format!(
                    "environment variable `{key}` of service `{name}` is set twice: by {} ({}) and by {what} ({})",
                    prev.what,
                    cache.describe(&prev_loc),
                    cache.describe(loc)
                ))
                .label(format!("`{key}` set again here"))
                .also(cache, &prev_loc, format!("`{key}` first set here"))
                .help("set each variable in one place only"))
        };

        for (i, rel) in e.env_file.iter().enumerate() {
            let rel_n = normalize(rel);
            let path = self.l.workspace_root.join(&rel_n);
            let loc = entry.origin.key("env-file").index(i);
            if !path.is_file() {
                let what = crate::paths::why_not(&path, "file");
                return Err(err(self
                    .cache
                    .diag(&loc, format!("env file `{rel}` of service `{name}` {what}"))
                    .help("create it, or remove it from `env-file` (paths are relative to the workspace root)")));
            }
            let lines = env::read_env_file(&mut self.cache, &path)?;
            let file: std::sync::Arc<Utf8Path> = path.as_path().into();
            let mut keys = Vec::new();
            let what = format!("env file `{rel}`");
            for l in lines {
                let here = Location::line(file.clone(), l.line);
                if let Some(prev) = set_at.get(&l.key) {
                    return Err(conflict(&self.cache, &l.key, &places[*prev], &here, &what));
                }
                set_at.insert(l.key.clone(), places.len());
                places.push(Place {
                    loc: here,
                    by_key: false,
                    what: what.clone(),
                });
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
            if vars.is_empty() {
                continue;
            }
            let place = places.len();
            places.push(Place {
                loc: base,
                by_key: layer != EnvLayer::External,
                what,
            });
            for (k, v) in vars {
                if let Some(prev) = set_at.get(&k) {
                    let here = &places[place];
                    return Err(conflict(
                        &self.cache,
                        &k,
                        &places[*prev],
                        &here.of(&k),
                        &here.what,
                    ));
                }
                set_at.insert(k.clone(), place);
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
                    &places[*prev],
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

    pub(super) fn profile_name_of(&self, name: &str, sel: &SelectedSvc) -> String {
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
    pub(super) fn param_location(&self, from: &str, target: &str) -> Option<Location> {
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

/// Where a layer of a service's env (or one line of an env file) is set.
struct Place {
    loc: Location,
    /// Each variable is a key under `loc` (the external values of another
    /// service are all shown at their table).
    by_key: bool,
    what: String,
}

impl Place {
    fn of(&self, key: &str) -> Location {
        if self.by_key {
            self.loc.key(key)
        } else {
            self.loc.clone()
        }
    }
}

/// A Kubernetes storage quantity: a positive number (digits, one optional
/// fraction) and an optional binary (`Ki` … `Ei`) or decimal (`k` … `E`)
/// suffix.
fn is_quantity(s: &str) -> bool {
    let suffixes = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    suffixes.iter().any(|suf| {
        let Some(num) = s.strip_suffix(suf) else {
            return false;
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && (frac.is_empty() != num.contains('.'))
            && num.bytes().any(|b| b != b'0' && b != b'.')
    })
}

#[cfg(test)]
mod quantity_tests {
    #[test]
    fn kubernetes_quantities() {
        for ok in ["1Gi", "10Gi", "500Mi", "2G", "1.5Gi", "1000", "100k"] {
            assert!(super::is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "0Gi", "1GB", "1 Gi", "-1Gi", "1.Gi", "ten", "1gi"] {
            assert!(!super::is_quantity(bad), "{bad}");
        }
    }
}
