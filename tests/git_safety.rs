//! Sync never loses a user's work in a git checkout: each case below was
//! destroyed with exit 0 before, and is now refused with exit 1, naming
//! what would be lost, with every file still there afterwards.

mod git_support;
mod sync_support;

use git_support::{manifest, snapshot, upstream, UV_PROJECT};
use sync_support::{require, stderr, Sandbox};

const IGNORING: &str = ".venv/\n.env\ndata/\n";

fn files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("pyproject.toml", UV_PROJECT),
        ("VERSION", "{tag}\n"),
        (".gitignore", IGNORING),
    ]
}

fn head(sb: &Sandbox) -> String {
    sb.git("services/emb", &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

/// Sync fails with exit 1, saying `words`, and changes no file at all.
fn refused(sb: &Sandbox, words: &[&str]) -> String {
    let before = snapshot(&sb.root);
    let out = sb.run(&["sync"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for w in words {
        assert!(err.contains(w), "missing {w:?} in:\n{err}");
    }
    assert!(
        snapshot(&sb.root) == before,
        "sync changed files although it refused:\n{err}"
    );
    err
}

#[test]
fn ignored_file_blocks_a_reclone_after_the_url_is_respelled() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    let (url, shas) = upstream(&sb, "emb", &["v1"], &files());
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v1")]));
    sb.sync(&[]);
    sb.write("services/emb/.env", "API_KEY=mine\n");
    let plain = url.strip_prefix("file://").unwrap();
    sb.write("hsm.toml", &manifest(&[("emb", plain, "v1")]));
    let err = refused(&sb, &["has local work", "ignored: .env", "commit and push"]);
    assert!(!err.contains("Cloning"), "{err}");
    assert_eq!(sb.read("services/emb/.env"), "API_KEY=mine\n");
    assert_eq!(head(&sb), shas[0]);

    // Without it, the re-spelled url re-clones and says why.
    std::fs::remove_file(sb.path("services/emb/.env")).unwrap();
    let out = sb.sync(&[]);
    assert!(
        stderr(&out).contains("Recloning emb: its `url` changed from"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_repository_hsm_did_not_clone_is_never_replaced() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    let (url, _) = upstream(&sb, "emb", &["v1"], &files());
    let (other, _) = upstream(&sb, "mine", &["m1"], &files());
    // The user's own clean, pushed clone of another repository, with data.
    sync_support::git_in(&sb.root, &["clone", "-q", &other, "services/emb"]);
    sb.write("services/emb/data/big.bin", "precious data\n");
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v1")]));
    refused(
        &sb,
        &[
            "`services/emb` is a git repository that hsm did not clone",
            "config hsm.managed true",
        ],
    );
    assert_eq!(sb.read("services/emb/data/big.bin"), "precious data\n");
    assert!(!sb.exists("hsm.lock"));

    // A local-only repository with a tag, same answer.
    std::fs::remove_dir_all(sb.path("services/emb")).unwrap();
    std::fs::create_dir_all(sb.path("services/emb")).unwrap();
    sb.git("services/emb", &["init", "-q"]);
    sb.write("services/emb/notes.md", "mine\n");
    sb.git("services/emb", &["add", "-A"]);
    sb.git("services/emb", &["commit", "-q", "-m", "mine"]);
    sb.git("services/emb", &["tag", "v1"]);
    refused(&sb, &["hsm did not clone"]);
    assert_eq!(sb.read("services/emb/notes.md"), "mine\n");
}

#[test]
fn an_unpushed_commit_under_a_local_tag_is_local_work() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    let (url, shas) = upstream(&sb, "emb", &["v1", "v2"], &files());
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v1")]));
    sb.sync(&[]);
    sb.write("services/emb/VERSION", "mine\n");
    sb.git("services/emb", &["commit", "-q", "-am", "mine"]);
    sb.git("services/emb", &["tag", "mine"]);
    let mine = head(&sb);
    sb.git("services/emb", &["checkout", "-q", "--detach", &shas[0]]);
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v2")]));
    refused(
        &sb,
        &["tag mine at", "1 commit that the remote does not have"],
    );
    assert_eq!(sb.git("services/emb", &["rev-parse", "mine"]).trim(), mine);
    assert_eq!(head(&sb), shas[0]);
}

#[test]
fn a_local_branch_ahead_is_local_work_and_the_move_goes_on_without_it() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    let (url, shas) = upstream(&sb, "emb", &["v1", "v2"], &files());
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v1")]));
    sb.sync(&[]);
    sb.git("services/emb", &["switch", "-q", "-c", "work"]);
    sb.write("services/emb/VERSION", "mine\n");
    sb.git("services/emb", &["commit", "-q", "-am", "mine"]);
    sb.git("services/emb", &["checkout", "-q", "--detach", &shas[0]]);
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v2")]));
    refused(
        &sb,
        &["branch work at", "commit that the remote does not have"],
    );

    sb.git("services/emb", &["branch", "-q", "-D", "work"]);
    sb.sync(&[]);
    assert_eq!(head(&sb), shas[1]);
    // hsm's own shallow fetches count as published: the next move is fine too.
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v1")]));
    sb.sync(&[]);
    assert_eq!(head(&sb), shas[0]);
    assert_eq!(
        sb.git("services/emb", &["status", "--porcelain"]),
        "",
        "runtime files are excluded from the user's view"
    );
}
