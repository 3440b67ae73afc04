//! Plan-time checks of values that would otherwise fail late, inside a
//! tool, or be written somewhere they must not: paths that leave the
//! workspace, environment variable names and values that would inject
//! lines into env files, requirement and version specifiers (PEP 508 /
//! PEP 440) for the Python runtimes, empty urls and paths.
use std::collections::BTreeMap;

use camino::Utf8Path;

use super::*;
use crate::error::{Location, Result};
use crate::manifest::model::{EnvValue, ImplyValue, RuntimeType, ServiceEntry, Sources};

/// `[A-Za-z_][A-Za-z0-9_]*`: what a POSIX shell, docker compose and env
/// files all accept as a variable name.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Resolver<'_> {
    pub(super) fn validate_values(&self) -> Result<()> {
        self.validate_project_paths()?;
        let reg = &self.l.registry;
        for (name, e) in &reg.libraries {
            self.validate_sources(&e.value.sources, &e.origin, true)?;
            for (key, src) in [
                ("prod", &e.value.sources.prod),
                ("dev", &e.value.sources.dev),
            ] {
                let Some(src @ Source::Pypi { .. }) = src else {
                    continue;
                };
                let req = library_requirement(name, src);
                if let Err(why) = crate::python::requirements::parse_requirement(&req) {
                    let loc = e.origin.key("sources").key(key);
                    return Err(self.bad(
                        &loc,
                        format!("library `{name}`: `{req}` is not a valid requirement (PEP 508 / PEP 440): {}", first_line(&why)),
                        "write `version` as a PEP 440 specifier such as `>=2,<3` or `==1.4.2`",
                    ));
                }
            }
            self.validate_implies_params(&e.value.implies, || e.origin.key("implies"))?;
        }
        for (name, e) in &reg.services {
            self.validate_service(name, &e.value, &e.origin)?;
        }
        for g in reg
            .library_groups
            .values()
            .chain(reg.service_groups.values())
        {
            for (i, o) in g.value.options.iter().enumerate() {
                let loc = || g.origin.key("options").index(i).key("implies");
                self.validate_implies_params(&o.implies, loc)?;
            }
        }
        Ok(())
    }

    fn bad(&self, loc: &Location, message: String, help: &str) -> Error {
        err(self.cache.diag(loc, message).help(help.to_string()))
    }

    /// `services-dir`, `compose-file`, `python-project` and `.hsm/` lie
    /// inside the workspace, through symlinks.
    fn validate_project_paths(&self) -> Result<()> {
        let p = &self.l.manifest.project;
        let root = &self.l.workspace_root;
        let project = KeyPath::root().key("project");
        for (key, value) in [
            ("services-dir", &p.services_dir),
            ("compose-file", &p.compose_file),
            ("python-project", &p.python_project),
        ] {
            let Some(v) = value else { continue };
            let loc = self.at(project.key(key));
            if let Some(c) = v.as_str().chars().find(|c| c.is_control()) {
                return Err(self.bad(
                    &loc,
                    format!(
                        "`project.{key}` contains the control character U+{:04X}",
                        c as u32
                    ),
                    "write it as one line of printable text",
                ));
            }
            if v.as_str().trim().is_empty() {
                return Err(self.bad(
                    &loc,
                    format!("`project.{key}` is empty"),
                    "remove the key to use the default, or name a path inside the workspace",
                ));
            }
            if let Err(resolved) = crate::paths::within(root, v) {
                return Err(self.bad(
                    &loc,
                    format!("`project.{key}` = `{v}` resolves to {resolved}: hsm writes only inside the workspace"),
                    "use a relative path inside the workspace (a symlink on the way must point inside it too)",
                ));
            }
        }
        if let Err(resolved) = crate::paths::within(root, Utf8Path::new(".hsm")) {
            return Err(Error::config(format!(
                "`.hsm` resolves to {resolved}: hsm keeps its state only inside the workspace"
            ))
            .with_help("remove the `.hsm` symlink (hsm recreates the directory)"));
        }
        Ok(())
    }

    /// Every location below is made only for an error: checking a
    /// thousand entries must not build the key paths of their values.
    fn validate_sources(&self, sources: &Sources, origin: &Location, library: bool) -> Result<()> {
        for (key, src) in [("prod", &sources.prod), ("dev", &sources.dev)] {
            let Some(src) = src else { continue };
            let loc = || origin.key("sources").key(key);
            let empty = |field: &str| -> Error {
                self.bad(
                    &loc().key(field),
                    format!("`sources.{key}.{field}` is empty"),
                    match field {
                        "path" => "name the directory (relative to the workspace root); an empty path does not mean the workspace root",
                        _ => "give it a value, or remove the source",
                    },
                )
            };
            // One line of printable text: a line break or an escape
            // sequence would reach git's command line, a path or the
            // terminal.
            let fields: [(&str, Option<&str>); 3] = match src {
                Source::Git {
                    url,
                    reference,
                    subdirectory,
                    ..
                } => [
                    ("url", Some(url)),
                    ("ref", reference.as_deref()),
                    ("subdirectory", subdirectory.as_ref().map(|p| p.as_str())),
                ],
                Source::Local { path, .. } => {
                    [("path", Some(path.as_str())), ("", None), ("", None)]
                }
                Source::Build {
                    path, dockerfile, ..
                } => [
                    ("path", Some(path.as_str())),
                    ("dockerfile", dockerfile.as_ref().map(|p| p.as_str())),
                    ("", None),
                ],
                Source::DockerImage { image, .. } => {
                    [("image", Some(image)), ("", None), ("", None)]
                }
                Source::Pypi {
                    package, version, ..
                } => [
                    ("package", package.as_deref()),
                    ("version", version.as_deref()),
                    ("", None),
                ],
            };
            for (field, value) in fields {
                if let Some(c) = value.and_then(|v| v.chars().find(|c| c.is_control())) {
                    return Err(self.bad(
                        &loc().key(field),
                        format!(
                            "`sources.{key}.{field}` contains the control character U+{:04X}",
                            c as u32
                        ),
                        "write it as one line of printable text",
                    ));
                }
            }
            match src {
                Source::Git {
                    url, subdirectory, ..
                } => {
                    if url.trim().is_empty() {
                        return Err(empty("url"));
                    }
                    if let Some(sub) = subdirectory {
                        if sub.as_str().trim().is_empty() {
                            return Err(empty("subdirectory"));
                        }
                        let n = normalize(sub);
                        if sub.is_absolute() || n.starts_with("..") {
                            return Err(self.bad(
                                &loc().key("subdirectory"),
                                format!("`subdirectory` = `{sub}` leaves the clone"),
                                "name a directory inside the repository, relative to its root",
                            ));
                        }
                    }
                }
                Source::Local { path, .. } | Source::Build { path, .. } => {
                    if path.as_str().trim().is_empty() {
                        return Err(empty("path"));
                    }
                }
                Source::DockerImage { image, .. } => {
                    if image.trim().is_empty() {
                        return Err(empty("image"));
                    }
                }
                Source::Pypi { package, .. } => {
                    if package.as_deref().is_some_and(|p| p.trim().is_empty()) {
                        return Err(empty("package"));
                    }
                }
            }
            if !library {
                self.validate_env(src.env(), || loc().key("env"))?;
            }
        }
        Ok(())
    }

    fn validate_service(&self, name: &str, e: &ServiceEntry, origin: &Location) -> Result<()> {
        self.validate_sources(&e.sources, origin, false)?;
        self.validate_env(&e.env, || origin.key("env"))?;
        for (pname, p) in &e.deployment_profiles {
            let ploc = || origin.key("deployment-profiles").key(pname.as_str());
            self.validate_env(&p.env, || ploc().key("env"))?;
            for (k, v) in &p.external {
                self.validate_value(k, &v.0, || ploc().key("external").key(k.as_str()))?;
            }
        }
        self.validate_implies_params(&e.implies, || origin.key("implies"))?;
        // Each runtime the service may run with says what its
        // `dependencies` may hold (a profile without a runtime: uv's).
        let mut runtimes: Vec<RuntimeType> = e
            .deployment_profiles
            .values()
            .map(|p| p.runtime.unwrap_or(RuntimeType::Uv))
            .collect();
        if runtimes.is_empty() {
            runtimes.push(RuntimeType::Uv);
        }
        runtimes.sort();
        runtimes.dedup();
        for rt in runtimes {
            let Some(adapter) = crate::materialize::runtimes::adapter(rt) else {
                continue;
            };
            for (i, dep) in e.dependencies.iter().enumerate() {
                let dep = dep.trim();
                if dep.is_empty() {
                    continue;
                }
                let is_library = self.l.registry.libraries.contains_key(dep);
                if let Err(bad) = adapter.check_dependency(dep, is_library) {
                    return Err(self.bad(
                        &origin.key("dependencies").index(i),
                        format!("service `{name}`: {}", bad.why),
                        &bad.help,
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_implies_params(
        &self,
        implies: &BTreeMap<String, ImplyValue>,
        base: impl Fn() -> Location,
    ) -> Result<()> {
        for (target, v) in implies {
            if let ImplyValue::Params(params) = v {
                self.validate_env(params, || base().key(target.as_str()).key("params"))?;
            }
        }
        Ok(())
    }

    fn validate_env(
        &self,
        env: &BTreeMap<String, EnvValue>,
        base: impl Fn() -> Location,
    ) -> Result<()> {
        for (k, v) in env {
            let loc = || base().key(k.as_str());
            if !valid_env_name(k) {
                return Err(self.bad(
                    &loc(),
                    format!(
                        "`{}` is not a valid environment variable name",
                        k.escape_debug()
                    ),
                    "names match `[A-Za-z_][A-Za-z0-9_]*`",
                ));
            }
            self.validate_value(k, &v.0, loc)?;
        }
        Ok(())
    }

    fn validate_value(&self, key: &str, value: &str, loc: impl Fn() -> Location) -> Result<()> {
        if value.contains(['\n', '\r', '\0']) {
            return Err(self.bad(
                &loc(),
                format!("the value of `{key}` contains a line break (or NUL), which would add lines to the env file"),
                "keep values on one line",
            ));
        }
        Ok(())
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::valid_env_name;

    #[test]
    fn env_names() {
        for ok in ["A", "_x", "DB_PASSWORD", "a1"] {
            assert!(valid_env_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A=B", "X\nLD_PRELOAD", "A-B", "A.B", "É"] {
            assert!(!valid_env_name(bad), "{bad}");
        }
    }
}
