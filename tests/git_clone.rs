//! What a new clone is: hsm writes the `.git` of a new checkout itself
//! (`src/git/skeleton.rs`) and lets git fetch into it, so these check the
//! result with real git, as a user would look at it: a clean status, the
//! refs under their usual names, executable bits and symlinks, a clean
//! `fsck`, a later ref move, and a failed clone that leaves nothing.
//! The services are container services built from their checkouts, whose
//! sync only clones and writes the compose file (no engine runs).

mod git_support;
mod sync_support;

use std::os::unix::fs::PermissionsExt;

use git_support::{manifest_of, snapshot, upstream};
use sync_support::{require, stderr, Sandbox};

/// A container service built from a git checkout at `reference` (the
/// default branch when empty).
fn container(name: &str, url: &str, reference: &str) -> String {
    let r = if reference.is_empty() {
        String::new()
    } else {
        format!("ref = \"{reference}\"\n")
    };
    format!(
        "\n[registry.services.{name}.sources.prod]\ntype = \"git\"\nurl = \"{url}\"\n{r}\n[registry.services.{name}.deployment-profiles.default]\nruntime = \"podman\"\n"
    )
}

fn manifest(services: &[(&str, &str, &str)]) -> String {
    manifest_of(services, container)
}

/// `git for-each-ref` of a checkout: `<name> <sha>` lines.
fn refs(sb: &Sandbox, dir: &str) -> Vec<String> {
    sb.git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Directories and files right under `dir`.
fn entries(sb: &Sandbox, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(sb.path(dir))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_new_checkout_is_a_plain_git_clone_and_moves_like_one() {
    if !require("git") {
        return;
    }
    let sb = Sandbox::new();
    // An executable script and a symlink, committed as such.
    sb.write("remotes/web-work/start.sh", "#!/bin/sh\necho {tag}\n");
    let start = sb.path("remotes/web-work/start.sh");
    std::fs::set_permissions(&start, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("Dockerfile", sb.path("remotes/web-work/Containerfile")).unwrap();
    let files = [
        ("Dockerfile", "FROM busybox\nCOPY . /srv\n"),
        ("VERSION", "{tag}\n"),
    ];
    let (url, shas) = upstream(&sb, "web", &["v1", "v2"], &files);
    // What a sync killed mid-clone leaves behind, and a look-alike that
    // belongs to no clone of `web`.
    sb.write(
        "services/.web.clone-AbC123/.git/HEAD",
        "ref: refs/heads/x\n",
    );
    sb.write("services/.web.clone-x.clone-AAAAAA/keep", "mine\n");
    sb.write(
        "hsm.toml",
        &manifest(&[
            ("web", &url, "v1"),
            ("api", &url, "main"),
            ("tip", &url, ""),
        ]),
    );
    let out = sb.sync(&[]);
    let err = stderr(&out);
    assert!(err.contains("Cloning web"), "{err}");
    assert!(err.contains("Cloning api"), "{err}");
    assert_eq!(
        entries(&sb, "services"),
        [".web.clone-x.clone-AAAAAA", "api", "tip", "web"],
        "the unfinished clone is gone, the look-alike stays"
    );

    // What git says about the checkouts.
    for (dir, commit) in [
        ("services/web", &shas[0]),
        ("services/api", &shas[1]),
        ("services/tip", &shas[1]),
    ] {
        assert_eq!(sb.git(dir, &["status", "--porcelain"]), "", "{dir}");
        assert_eq!(sb.git(dir, &["rev-parse", "HEAD"]).trim(), commit.as_str());
        assert_eq!(
            sb.git(dir, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
            "HEAD",
            "{dir}: detached"
        );
        assert_eq!(sb.git(dir, &["config", "hsm.managed"]).trim(), "true");
        assert_eq!(sb.git(dir, &["config", "remote.origin.url"]).trim(), url);
        assert_eq!(
            sb.git(dir, &["rev-parse", "--is-shallow-repository"])
                .trim(),
            "true"
        );
        sb.git(dir, &["fsck", "--no-progress"]);
        // Nothing a sync does not need: no sample hooks, no description.
        let git_dir = entries(&sb, &format!("{dir}/.git"));
        for absent in ["hooks", "description", "branches"] {
            assert!(!git_dir.iter().any(|e| e == absent), "{dir}: {git_dir:?}");
        }
        let mode = std::fs::metadata(sb.path(&format!("{dir}/start.sh")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{dir}: start.sh is executable");
        let link = std::fs::read_link(sb.path(&format!("{dir}/Containerfile"))).unwrap();
        assert_eq!(link.to_str(), Some("Dockerfile"));
    }
    // The refs under their usual names, and what hsm fetched; nothing else
    // (no remote-tracking refs that git would have updated on the side).
    assert_eq!(
        refs(&sb, "services/web"),
        [
            format!("refs/hsm/fetched/v1 {}", shas[0]),
            format!("refs/tags/v1 {}", shas[0]),
        ]
    );
    assert_eq!(
        refs(&sb, "services/api"),
        [
            format!("refs/hsm/fetched/main {}", shas[1]),
            format!("refs/remotes/origin/main {}", shas[1]),
        ]
    );
    assert_eq!(
        refs(&sb, "services/tip"),
        [format!("refs/hsm/fetched/HEAD {}", shas[1])]
    );
    assert_eq!(sb.git("services/web", &["describe", "--tags"]).trim(), "v1");
    let lock = sb.read("hsm.lock");
    assert!(
        lock.contains(&format!("commit = \"{}\"", shas[0])),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("commit = \"{}\"", shas[1])),
        "{lock}"
    );
    let compose = sb.read("docker-compose.hsm.yml");
    assert!(compose.contains("context: services/web"), "{compose}");
    let check = sb.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));

    // A ref move fetches into the checkout as into any clone.
    sb.write(
        "hsm.toml",
        &manifest(&[
            ("web", &url, "v2"),
            ("api", &url, "main"),
            ("tip", &url, ""),
        ]),
    );
    let out = sb.sync(&[]);
    assert!(stderr(&out).contains("web"), "{}", stderr(&out));
    assert_eq!(
        sb.git("services/web", &["rev-parse", "HEAD"]).trim(),
        shas[1]
    );
    assert_eq!(sb.git("services/web", &["status", "--porcelain"]), "");
    assert_eq!(sb.read("services/web/VERSION"), "v2\n");
    let now = refs(&sb, "services/web");
    for r in [
        format!("refs/hsm/fetched/v2 {}", shas[1]),
        format!("refs/tags/v2 {}", shas[1]),
        format!("refs/tags/v1 {}", shas[0]),
    ] {
        assert!(now.contains(&r), "{r} in {now:?}");
    }
    // The move is in HEAD's reflog, as for any checkout.
    let reflog = sb.git("services/web", &["reflog", "--format=%H"]);
    assert!(reflog.contains(&shas[1]), "{reflog}");
    let check = sb.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
}

#[test]
fn a_failed_clone_of_a_container_service_is_the_git_steps_failure_and_leaves_nothing() {
    if !require("git") {
        return;
    }
    let sb = Sandbox::new();
    let (url, _) = upstream(&sb, "web", &["v1"], &[("Dockerfile", "FROM busybox\n")]);
    sb.write("hsm.toml", &manifest(&[("web", &url, "v1")]));
    sb.sync(&[]);
    sb.write(
        "hsm.toml",
        &manifest(&[("web", &url, "v1"), ("bad", &url, "no-such-tag")]),
    );
    let before = snapshot(&sb.root);
    let listed = entries(&sb, "services");
    let out = sb.run(&["sync"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for w in [
        "sync failed in step `git sources`",
        "has no tag, branch or commit `no-such-tag`",
        "service `bad`",
    ] {
        assert!(err.contains(w), "missing {w:?} in:\n{err}");
    }
    assert!(snapshot(&sb.root) == before, "{err}");
    assert_eq!(entries(&sb, "services"), listed, "{err}");
}
