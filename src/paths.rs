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
}
