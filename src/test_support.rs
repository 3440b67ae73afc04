//! Helpers shared by the unit tests of several modules.

use camino::Utf8PathBuf;

/// A fresh temporary directory (removed when the guard drops) and its
/// canonical UTF-8 path.
pub(crate) fn tmp() -> (tempfile::TempDir, Utf8PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(d.path().canonicalize().unwrap()).unwrap();
    (d, p)
}
