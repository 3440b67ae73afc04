//! Load + resolve on arbitrary input, then render whatever error comes
//! out: no input may panic. The input is up to seven texts separated by
//! NUL bytes: `hsm.toml`, then the registry files `hsm-registry/services/
//! {embedder,postgres}.toml`, `library_groups/vector-client.toml`,
//! `service_groups/vector-db.toml`, `libraries/my-utils.toml`, and an env
//! file text. Everything is in memory (an `Overlay`): nothing is written.
#![no_main]

use camino::Utf8PathBuf;
use cargo_hsm::error::render::{render, Style};
use cargo_hsm::manifest::{load_with, Overlay};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 5] = [
    "hsm-registry/services/embedder.toml",
    "hsm-registry/services/postgres.toml",
    "hsm-registry/library_groups/vector-client.toml",
    "hsm-registry/service_groups/vector-db.toml",
    "hsm-registry/libraries/my-utils.toml",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let root = Utf8PathBuf::from("/hsm-fuzz-workspace-that-does-not-exist");
    let mut ov = Overlay::default();
    ov.files
        .insert(root.join("Cargo.toml"), Some("[workspace]\n".to_string()));
    ov.files.insert(
        root.join("hsm.toml"),
        Some(parts.next().unwrap_or_default().to_string()),
    );
    for f in FILES {
        if let Some(p) = parts.next() {
            ov.files.insert(root.join(f), Some(p.to_string()));
        }
    }
    if let Some(env) = parts.next() {
        let _ = cargo_hsm::resolve::env::parse_env_file(env);
    }
    let style = Style {
        color: false,
        width: Some(80),
    };
    let result = load_with(&root, &ov).and_then(|loaded| cargo_hsm::resolve(&loaded));
    match result {
        Ok(plan) => {
            let _ = cargo_hsm::deploy::compose::render(&plan);
        }
        Err(e) => {
            let shown = render(&e, &style);
            assert!(!shown.is_empty());
            let _ = e.plain();
        }
    }
});
