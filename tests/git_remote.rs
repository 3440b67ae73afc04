//! Git sources against real remotes on 127.0.0.1, through the user's own
//! git setup only (a test `HOME` with its own `.gitconfig`; this machine's
//! `GIT_SSL_CAINFO`, proxies and ssh settings cleared): HTTPS with a
//! private CA and a credential helper, a CONNECT proxy, sshd with key auth
//! through `core.sshCommand` and a Host alias, `insteadOf`, an scp-like
//! URL and a submodule.

mod git_support;
mod sync_support;

use std::process::Output;

use git_support::{manifest, snapshot_all, Ca, GitHome, HttpsServer, Proxy, Sshd};
use sync_support::{git_in, require, stderr, Sandbox};

fn sync_as(sb: &Sandbox, home: &GitHome, args: &[&str]) -> Output {
    let mut a = vec!["sync"];
    a.extend_from_slice(args);
    let mut c = sb.cmd(&a);
    home.apply(&mut c);
    c.output().unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "sync failed:\n{}", stderr(&o));
    o
}

fn head(sb: &Sandbox, rel: &str) -> String {
    sb.git(rel, &["rev-parse", "HEAD"]).trim().to_string()
}

/// A new commit on `main` of `remotes/<name>.git`, pushed from its work tree.
fn push_commit(sb: &Sandbox, name: &str, text: &str) -> String {
    let work = format!("remotes/{name}-work");
    sb.git(&work, &["checkout", "-q", "main"]);
    sb.write(&format!("{work}/VERSION"), text);
    sb.git(&work, &["commit", "-q", "-am", text]);
    let bare = sb.path(&format!("remotes/{name}.git"));
    sb.git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    head(sb, &work)
}

#[test]
fn https_with_a_private_ca_a_credential_helper_branch_pins_and_a_proxy() {
    if !require("uv") || !require("git") || !git_support::require_program("openssl", "openssl") {
        return;
    }
    let sb = Sandbox::new();
    let home = GitHome::new();
    let (_, shas) = sb.git_remote("emb", &["v1.0.0", "v1.1.0"]);
    let ca = Ca::new(&home.home.join("tls"));
    let srv = HttpsServer::start(
        &sb.path("remotes"),
        &ca,
        "alice",
        "s3cret-pw",
        &home.home.join("state"),
    );
    let creds = home.home.join("git-credentials");
    std::fs::write(
        &creds,
        format!("https://alice:s3cret-pw@127.0.0.1:{}\n", srv.port),
    )
    .unwrap();
    home.config("http.sslCAInfo", ca.ca.to_str().unwrap());
    home.config(
        "credential.helper",
        &format!("store --file {}", creds.display()),
    );
    let url = srv.url("emb.git");

    // Clone at a tag, then move to another tag.
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v1.0.0")]));
    let out = ok(sync_as(&sb, &home, &[]));
    assert!(stderr(&out).contains("Cloning emb"), "{}", stderr(&out));
    assert_eq!(head(&sb, "services/emb"), shas[0]);
    assert!(srv.requests() > 0);
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v1.1.0")]));
    ok(sync_as(&sb, &home, &[]));
    assert_eq!(head(&sb, "services/emb"), shas[1]);
    assert_eq!(sb.git("services/emb", &["status", "--porcelain"]), "");
    let lock = sb.read("hsm.lock");
    assert!(!lock.contains("s3cret"), "{lock}");

    // A branch is pinned: it stays at its locked commit when the branch
    // moves upstream, with no request to the server.
    sb.write("hsm.toml", &manifest(&[("emb", &url, "main")]));
    ok(sync_as(&sb, &home, &[]));
    assert_eq!(head(&sb, "services/emb"), shas[1]);
    let pinned = sb.read("hsm.lock");
    let moved = push_commit(&sb, "emb", "v-next\n");
    let before = srv.requests();
    let out = ok(sync_as(&sb, &home, &[]));
    assert_eq!(srv.requests(), before, "a pinned branch needs no network");
    assert!(!stderr(&out).contains("Fetching"), "{}", stderr(&out));
    assert_eq!(head(&sb, "services/emb"), shas[1]);
    assert_eq!(sb.read("hsm.lock"), pinned);
    // A fresh checkout with the lock: the locked commit, not the branch tip.
    std::fs::remove_dir_all(sb.path("services/emb")).unwrap();
    ok(sync_as(&sb, &home, &["--locked"]));
    assert_eq!(head(&sb, "services/emb"), shas[1]);
    // Once the lock is updated (written again), the pin moves.
    std::fs::remove_file(sb.path("hsm.lock")).unwrap();
    ok(sync_as(&sb, &home, &[]));
    assert_eq!(head(&sb, "services/emb"), moved);

    // Through a proxy: `http.proxy` on loopback sees the tunnels.
    let proxy = Proxy::start(&home.home.join("state"));
    home.config("http.proxy", &format!("http://127.0.0.1:{}", proxy.port));
    std::fs::remove_dir_all(sb.path("services/emb")).unwrap();
    ok(sync_as(&sb, &home, &[]));
    assert_eq!(head(&sb, "services/emb"), moved);
    assert!(proxy.tunnels() >= 1, "git went around the proxy");
    home.unset("http.proxy");

    // A wrong password: a clear error naming the service, url and ref,
    // which says what to configure, and shows no password.
    std::fs::write(
        &creds,
        format!("https://alice:wrong-pw@127.0.0.1:{}\n", srv.port),
    )
    .unwrap();
    sb.write("hsm.toml", &manifest(&[("emb", &url, "v1.0.0")]));
    let lock_before = sb.bytes("hsm.lock");
    let out = sync_as(&sb, &home, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot fetch service `emb`"), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("v1.0.0"), "{err}");
    assert!(err.contains("Authentication failed"), "{err}");
    assert!(err.contains("credential helper"), "{err}");
    assert!(
        !err.contains("wrong-pw") && !err.contains("s3cret"),
        "{err}"
    );
    assert_eq!(sb.bytes("hsm.lock"), lock_before);
    assert_eq!(head(&sb, "services/emb"), moved);
}

#[test]
fn ssh_through_the_users_ssh_setup_insteadof_scp_like_urls_and_submodules() {
    if !require("uv") || !require("git") || !git_support::require_sshd() {
        return;
    }
    let sb = Sandbox::new();
    let home = GitHome::new();
    let sshd = Sshd::start(&home);
    let (_, shas) = sb.git_remote("emb", &["v1.0.0", "v1.1.0"]);
    let remotes = sb.path("remotes");
    let r = remotes.display();
    let alias = sshd.alias;

    // A superproject whose submodule lives on the same server.
    let (_, _) = sb.git_remote("lib", &["l1"]);
    let sup = sb.path("remotes/sup-work");
    std::fs::create_dir_all(&sup).unwrap();
    sb.git("remotes/sup-work", &["init", "-q", "-b", "main"]);
    sb.write(
        "remotes/sup-work/pyproject.toml",
        &sb.read("remotes/emb-work/pyproject.toml"),
    );
    let mut add = std::process::Command::new("git");
    home.apply(&mut add);
    let o = add
        .args(["submodule", "add", "-q"])
        .arg(format!("ssh://{alias}{r}/lib.git"))
        .arg("lib")
        .current_dir(&sup)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sb.git("remotes/sup-work", &["add", "-A"]);
    sb.git("remotes/sup-work", &["commit", "-q", "-m", "with lib"]);
    sb.git("remotes/sup-work", &["tag", "s1"]);
    git_in(
        &sb.root,
        &[
            "clone",
            "-q",
            "--bare",
            sup.to_str().unwrap(),
            &format!("{r}/sup.git"),
        ],
    );

    home.config(
        &format!("url.ssh://{alias}{r}/.insteadOf"),
        "https://git.example.invalid/",
    );
    let emb_url = format!("ssh://{alias}{r}/emb.git");
    let scp_url = format!("{alias}:{r}/emb.git");
    let services = |emb_ref: &str| {
        manifest(&[
            ("emb", &emb_url, emb_ref),
            ("scp", &scp_url, "v1.1.0"),
            ("alias", "https://git.example.invalid/emb.git", "v1.0.0"),
            ("sup", &format!("ssh://{alias}{r}/sup.git"), "s1"),
        ])
    };
    sb.write("hsm.toml", &services("v1.0.0"));
    ok(sync_as(&sb, &home, &[]));
    assert_eq!(head(&sb, "services/emb"), shas[0]);
    assert_eq!(head(&sb, "services/scp"), shas[1]);
    assert_eq!(head(&sb, "services/alias"), shas[0]);
    assert_eq!(sb.read("services/sup/lib/VERSION"), "l1\n");
    assert!(sb
        .read("hsm.lock")
        .contains("https://git.example.invalid/emb.git"));
    for s in ["emb", "scp", "alias", "sup"] {
        assert_eq!(
            sb.git(&format!("services/{s}"), &["status", "--porcelain"]),
            "",
            "{s}"
        );
    }

    // A host whose key does not match is refused; nothing changes.
    sshd.distrust_host_key(&home.home);
    sb.write("hsm.toml", &services("v1.1.0"));
    let before = snapshot_all(&sb.root);
    let out = sync_as(&sb, &home, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot fetch service `emb`"), "{err}");
    assert!(err.contains("known_hosts"), "{err}");
    let after = snapshot_all(&sb.root);
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "a refused host changed files: {changed:?}"
    );

    sshd.trust_host_key();
    ok(sync_as(&sb, &home, &[]));
    assert_eq!(head(&sb, "services/emb"), shas[1]);
}
