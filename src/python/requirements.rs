//! `requirements.txt` files: what they ask to be installed.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use pep508_rs::{MarkerEnvironment, MarkerTree};

use super::{normalize_name, normalize_version, requirement_name};

/// Expected packages from a requirements file: `name==version` pins, and
/// names required without a pin (present at any version).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    pub pinned: BTreeMap<String, String>,
    pub unpinned: BTreeSet<String>,
}

pub fn expected_from_requirements(text: &str, env: &MarkerEnvironment) -> Requirements {
    let mut out = Requirements::default();
    for raw in text.lines() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
            continue;
        }
        let (spec, marker) = match line.split_once(';') {
            Some((s, m)) => (s.trim(), Some(m.trim())),
            None => (line, None),
        };
        if let Some(m) = marker {
            if let Ok(tree) = MarkerTree::from_str(m) {
                if !tree.evaluate(env, &[]) {
                    continue;
                }
            }
        }
        let raw_name = requirement_name(spec);
        let name_end = raw_name.len();
        let name = normalize_name(raw_name);
        if name.is_empty() {
            continue;
        }
        let rest = spec[name_end..].trim();
        let rest = if rest.starts_with('[') {
            rest.split_once(']').map(|x| x.1.trim()).unwrap_or("")
        } else {
            rest
        };
        match rest.strip_prefix("==") {
            Some(v) if !v.contains(',') && !v.contains('*') => {
                out.pinned.insert(name, normalize_version(v));
            }
            _ => {
                out.unpinned.insert(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::marker_environment;

    #[test]
    fn requirements_pins_and_markers() {
        let env = marker_environment("3.11.7").unwrap();
        let r = expected_from_requirements("# c\nAlpha==1.0\nbeta>=2\n-r other.txt\nwin==1 ; sys_platform == 'win32'\ngamma[x]==3.0 # pinned\n", &env);
        assert_eq!(r.pinned.get("alpha").map(String::as_str), Some("1.0"));
        assert_eq!(r.pinned.get("gamma").map(String::as_str), Some("3.0"));
        assert!(r.unpinned.contains("beta"));
        assert!(!r.pinned.contains_key("win"));
    }
}
