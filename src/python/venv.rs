//! Half-made virtual environments: what a tool killed half-way leaves.

use camino::Utf8Path;

/// Written into an environment before a sync lets a tool change it, and
/// removed when the tool finished: its presence means "not finished".
pub const INCOMPLETE_MARKER: &str = ".hsm-incomplete";

/// Why the virtual environment at `venv` (which exists) is not usable, or
/// `None`. `needs_pip`: the runtime installs with the venv's own pip.
/// Reads only; spawns nothing.
pub fn broken(venv: &Utf8Path, needs_pip: bool) -> Option<String> {
    if venv.join(INCOMPLETE_MARKER).exists() {
        return Some("a sync changed it and did not finish".into());
    }
    let cfg = venv.join("pyvenv.cfg");
    let Ok(text) = std::fs::read_to_string(&cfg) else {
        return Some("it has no `pyvenv.cfg`".into());
    };
    let home = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "home").then(|| v.trim().to_string())
    });
    match home {
        None => return Some("its `pyvenv.cfg` names no `home`".into()),
        Some(h) if !Utf8Path::new(&h).is_dir() => {
            return Some(format!(
                "its `pyvenv.cfg` points at `{h}`, which does not exist"
            ))
        }
        _ => {}
    }
    let bin = venv.join("bin");
    if std::fs::metadata(bin.join("python")).is_err() && !venv.join("Scripts/python.exe").is_file()
    {
        return Some("its interpreter `bin/python` is missing or dangling".into());
    }
    if needs_pip && !has_pip(venv) {
        return Some("it has no pip (`python -m venv` did not finish)".into());
    }
    None
}

fn has_pip(venv: &Utf8Path) -> bool {
    let Ok(lib) = std::fs::read_dir(venv.join("lib")) else {
        return false;
    };
    lib.flatten().any(|py| {
        std::fs::read_dir(py.path().join("site-packages"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("pip-") && n.ends_with(".dist-info")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_sign_of_a_half_made_venv() {
        let d = tempfile::tempdir().unwrap();
        let venv = Utf8Path::from_path(d.path()).unwrap().join(".venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        assert!(broken(&venv, false).unwrap().contains("pyvenv.cfg"));
        let home = d.path().to_str().unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), format!("home = {home}\n")).unwrap();
        assert!(broken(&venv, false).unwrap().contains("interpreter"));
        std::fs::write(venv.join("bin/python"), "").unwrap();
        assert_eq!(broken(&venv, false), None);
        assert!(broken(&venv, true).unwrap().contains("pip"));
        std::fs::create_dir_all(venv.join("lib/python3.12/site-packages/pip-24.0.dist-info"))
            .unwrap();
        assert_eq!(broken(&venv, true), None);
        std::fs::write(venv.join(INCOMPLETE_MARKER), "").unwrap();
        assert!(broken(&venv, true).unwrap().contains("did not finish"));
    }
}
