//! The README's main job: `cargo hsm sync` on a fresh copy of the bundled
//! example must keep working, offline, and a second run must change nothing.

mod sync_support;

use std::path::Path;
use std::time::SystemTime;

use sync_support::{copy_example, require, stderr, Sandbox};

fn mtimes(root: &Path, rels: &[&str]) -> Vec<SystemTime> {
    rels.iter()
        .map(|r| std::fs::metadata(root.join(r)).unwrap().modified().unwrap())
        .collect()
}

#[test]
fn example_syncs_offline_and_a_second_sync_is_fresh() {
    if !require("uv") || !require("venv") {
        return;
    }
    let sb = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rag-stack");
    copy_example(&example, &sb.root, true);
    let tracked = ["pyproject.toml", "components/embedder/pyproject.toml"];
    let before: Vec<String> = tracked.iter().map(|t| sb.read(t)).collect();

    let out = sb.sync(&["--offline"]);
    let err = stderr(&out);
    for line in [
        "Syncing embedder (uv, components/embedder)",
        "Syncing reranker (venv, components/reranker)",
        "Syncing gpu-worker (venv, components/gpu-worker)",
        "Syncing libraries (uv, .)",
        "Writing docker-compose.hsm.yml (4 container services)",
        "Writing hsm.lock",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    // The committed pyproject files already hold hsm's entries: running the
    // README's command leaves the example's tracked files as they are.
    let after: Vec<String> = tracked.iter().map(|t| sb.read(t)).collect();
    assert_eq!(before, after);

    // Each environment service has its own venv; the root has the libraries.
    for svc in [
        "components/embedder",
        "components/reranker",
        "components/gpu-worker",
        ".",
    ] {
        assert!(
            sb.exists(&format!("{svc}/.venv/pyvenv.cfg")),
            "{svc} has no venv"
        );
    }
    let root: Vec<String> = sb.installed(".").into_iter().map(|(n, _)| n).collect();
    for lib in ["my-utils", "qdrant-adapter", "tokenizer-lib"] {
        assert!(
            root.contains(&lib.to_string()),
            "root venv lacks {lib}: {root:?}"
        );
    }
    assert!(!root.contains(&"embedder".to_string()));
    let emb: Vec<String> = sb
        .installed("components/embedder")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(emb.contains(&"tokenizer-lib".to_string()), "{emb:?}");
    assert!(!emb.contains(&"qdrant-adapter".to_string()), "{emb:?}");

    // Compose: exactly the container services.
    let compose = sb.read("docker-compose.hsm.yml");
    for svc in ["gateway:", "postgres:", "qdrant:", "redis:"] {
        assert!(
            compose.contains(&format!("\n  {svc}\n")),
            "{svc} missing:\n{compose}"
        );
    }
    for not in ["embedder:", "reranker:", "gpu-worker:", "llm-api:"] {
        assert!(
            !compose.contains(&format!("\n  {not}\n")),
            "{not} present:\n{compose}"
        );
    }
    // The gateway reaches the embedder process through podman's host
    // gateway, with no hand-written host name (tests/up_podman.rs runs it).
    assert!(
        compose.contains("GATEWAY_UPSTREAM: http://host.containers.internal:8081"),
        "{compose}"
    );

    let generated = [
        "docker-compose.hsm.yml",
        "hsm.lock",
        "uv.lock",
        "components/embedder/uv.lock",
        ".hsm/env/embedder.env",
    ];
    let t0 = mtimes(&sb.root, &generated);
    let again = stderr(&sb.sync(&["--offline", "-v"]));
    assert!(
        !again.contains("Syncing") && !again.contains("Writing"),
        "second sync did work:\n{again}"
    );
    assert!(again.contains("Fresh embedder (uv)"), "{again}");
    assert_eq!(
        t0,
        mtimes(&sb.root, &generated),
        "a no-op sync rewrote a file"
    );
}
