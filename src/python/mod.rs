//! Python packaging rules shared by the sync engine and the inspector:
//! PEP 503 names, PEP 440 versions, PEP 508 markers and requirement lines,
//! and `requirements.txt` files.

pub mod installed;
pub mod pins;
pub mod project;
pub mod requirements;
pub mod venv;

use std::str::FromStr;

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};

/// PEP 503 name normalisation: `Foo.Bar_baz` → `foo-bar-baz`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// PEP 440 normalisation (`1.0RC1` → `1.0rc1`, `01.02` → `1.2`); versions
/// that do not parse are compared as written.
pub fn normalize_version(v: &str) -> String {
    pep440_rs::Version::from_str(v.trim())
        .map(|v| v.to_string())
        .unwrap_or_else(|_| v.trim().to_string())
}

/// The distribution name at the start of a requirement string.
pub fn requirement_name(req: &str) -> &str {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    &req[..end]
}

/// The PEP 503 name of the package a requirement string names: the key
/// under which two requirements for one package compare equal.
pub fn requirement_key(req: &str) -> String {
    normalize_name(requirement_name(req.trim()))
}

/// PEP 440 equality (`3.0` == `3`), or textual when a side does not parse.
pub fn same_version(a: &str, b: &str) -> bool {
    match (
        pep440_rs::Version::from_str(a),
        pep440_rs::Version::from_str(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// PEP 508 marker environment of this machine for a given Python version.
pub fn marker_environment(python_full_version: &str) -> Option<MarkerEnvironment> {
    let mut parts = python_full_version.split('.');
    let python_version = format!("{}.{}", parts.next()?, parts.next().unwrap_or("0"));
    let (sys_platform, platform_system, os_name) = match std::env::consts::OS {
        "linux" => ("linux", "Linux", "posix"),
        "macos" => ("darwin", "Darwin", "posix"),
        "windows" => ("win32", "Windows", "nt"),
        "freebsd" => ("freebsd", "FreeBSD", "posix"),
        other => (other, other, "posix"),
    };
    let machine = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("macos", "aarch64") => "arm64",
        ("windows", "x86_64") => "AMD64",
        (_, arch) => arch,
    };
    MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: python_full_version,
        os_name,
        platform_machine: machine,
        platform_python_implementation: "CPython",
        platform_release: "",
        platform_system,
        platform_version: "",
        python_full_version,
        python_version: &python_version,
        sys_platform,
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_normalise() {
        assert_eq!(normalize_name("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(normalize_version("1.0RC1"), "1.0rc1");
        assert_eq!(normalize_version("01.02"), "1.2");
    }
}
