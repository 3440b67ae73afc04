//! Lexical path helpers. Target paths are computed without touching the disk,
//! relative to the workspace root, so the Plan is the same from any directory.

use camino::{Utf8Component, Utf8Path, Utf8PathBuf};

/// Removes `.` and folds `dir/..` without following symlinks. Leading `..`
/// stay: `../embedder` is a legitimate sibling checkout.
pub fn normalize(path: &Utf8Path) -> Utf8PathBuf {
    let mut out: Vec<Utf8Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Utf8Component::CurDir => {}
            Utf8Component::ParentDir => match out.last() {
                Some(Utf8Component::Normal(_)) => {
                    out.pop();
                }
                Some(Utf8Component::RootDir) | Some(Utf8Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return Utf8PathBuf::from(".");
    }
    out.iter().map(|c| c.as_str()).collect()
}

/// `path` relative to `base` when it lies inside it, else `path` unchanged.
pub fn relative_to(path: &Utf8Path, base: &Utf8Path) -> Utf8PathBuf {
    path.strip_prefix(base)
        .map(|p| p.to_owned())
        .unwrap_or_else(|_| path.to_owned())
}

/// Where `path` (relative to `root`, or absolute) really is: every symlink
/// on the way that exists is followed (its target may itself be relative
/// or a symlink), and the part that does not exist yet is taken as
/// written. `Err` for a symlink loop.
pub fn physical(root: &Utf8Path, path: &Utf8Path) -> Result<Utf8PathBuf, String> {
    let canon_root = canonical(root);
    let mut cur = if path.is_absolute() {
        Utf8PathBuf::from("/")
    } else {
        canon_root
    };
    let mut todo: std::collections::VecDeque<String> =
        path.components().map(|c| c.as_str().to_string()).collect();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "/" => cur = Utf8PathBuf::from("/"),
            "." | "" => {}
            ".." => {
                cur.pop();
            }
            name => {
                let next = cur.join(name);
                match std::fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => {
                        links += 1;
                        if links > 40 {
                            return Err(format!("`{next}` is a symlink loop"));
                        }
                        let target = std::fs::read_link(&next)
                            .map_err(|e| format!("cannot read the symlink `{next}`: {e}"))?;
                        let target = Utf8PathBuf::from_path_buf(target).map_err(|t| {
                            format!("`{next}` points at a non-UTF-8 path {}", t.display())
                        })?;
                        for tc in target.components().rev() {
                            todo.push_front(tc.as_str().to_string());
                        }
                    }
                    _ => cur = next,
                }
            }
        }
    }
    Ok(cur)
}

/// Why `path` cannot be used as a `want` ("file" or "directory"): "is a
/// directory", "is a dangling symlink to `x`", "is a symlink loop", "does
/// not exist"… For messages about a path that failed `is_file`/`is_dir`.
pub fn why_not(path: &Utf8Path, want: &str) -> String {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => format!("is a directory, not a {want}"),
        Ok(m) if m.is_file() => format!("is a file, not a {want}"),
        Ok(_) => format!("is not a regular {want}"),
        Err(e) if e.raw_os_error() == Some(40) => "is a symlink loop".into(),
        Err(_) => match std::fs::read_link(path) {
            Ok(t) => format!("is a dangling symlink to `{}`", t.display()),
            Err(_) => "does not exist".into(),
        },
    }
}

fn canonical(p: &Utf8Path) -> Utf8PathBuf {
    p.canonicalize_utf8().unwrap_or_else(|_| normalize(p))
}

/// `path` relative to the workspace `root` when it really lies inside it
/// (through symlinks, see [`physical`]); else `Err` with the place it
/// resolves to (or why it cannot be resolved). The one containment rule for
/// every path hsm writes to: generated files, clones, `.hsm/`,
/// `services-dir`, `compose-file`, `python-project`, `service init --path`.
pub fn within(root: &Utf8Path, path: &Utf8Path) -> Result<Utf8PathBuf, String> {
    let p = physical(root, path)?;
    let canon_root = canonical(root);
    match p.strip_prefix(&canon_root) {
        Ok(rel) if rel.as_str().is_empty() => Ok(Utf8PathBuf::from(".")),
        Ok(rel) => Ok(rel.to_owned()),
        Err(_) => Err(format!("`{p}`, outside `{canon_root}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(
            normalize("./services/../svc/a".into()),
            Utf8PathBuf::from("svc/a")
        );
        assert_eq!(
            normalize("../embedder".into()),
            Utf8PathBuf::from("../embedder")
        );
        assert_eq!(normalize("a/../../b".into()), Utf8PathBuf::from("../b"));
        assert_eq!(normalize(".".into()), Utf8PathBuf::from("."));
        assert_eq!(normalize("/x/../y".into()), Utf8PathBuf::from("/y"));
    }

    #[cfg(unix)]
    #[test]
    fn containment_follows_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let base = Utf8PathBuf::from_path_buf(d.path().canonicalize().unwrap()).unwrap();
        let root = base.join("ws");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("real", root.join("in")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        std::os::unix::fs::symlink("../../outside/x", root.join("real/dangling")).unwrap();
        assert_eq!(within(&root, "services".into()).unwrap(), "services");
        assert_eq!(within(&root, "in/x/y".into()).unwrap(), "real/x/y");
        assert_eq!(within(&root, ".".into()).unwrap(), ".");
        assert!(within(&root, "out/x".into()).is_err());
        assert!(within(&root, "../x".into()).is_err());
        assert!(within(&root, "/abs/x".into()).is_err());
        assert!(within(&root, "real/dangling".into()).is_err());
        assert!(within(&root, "in/../../ws/real".into()).is_ok());
        assert!(within(&root, "loop/x".into()).unwrap_err().contains("loop"));
        assert!(within(&root, root.join("real").as_path()).is_ok());
    }
}
