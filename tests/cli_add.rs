//! The one-step `add` and `remove` (issue 16): register and select in one
//! command, then a real sync (uv, git) and check; `remove --purge` refused
//! while something names the entry, with the places; shell-split commands
//! and inline-TOML sources.

mod sync_support;

use sync_support::{require, stderr, Sandbox};

fn ok(sb: &Sandbox, args: &[&str]) -> String {
    let o = sb.run(args);
    assert!(
        o.status.success(),
        "{args:?} failed ({:?}):\n{}",
        o.status.code(),
        stderr(&o)
    );
    stderr(&o)
}

fn fails(sb: &Sandbox, args: &[&str], code: i32) -> String {
    let o = sb.run(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}:\n{}", stderr(&o));
    stderr(&o)
}

/// A workspace after `cargo hsm init`, with a root project that resolves
/// offline from the sandbox's wheels.
fn initialised() -> Sandbox {
    let sb = Sandbox::new();
    ok(&sb, &["init"]);
    sb.root_pyproject("");
    sb
}

#[test]
fn one_step_add_of_a_pypi_library_an_image_service_and_a_git_service_then_sync_and_check() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = initialised();
    let (url, _) = sb.git_remote("api", &["v1"]);

    let err = ok(&sb, &["add", "alpha@>=1.0"]);
    assert!(err.contains("Adding library `alpha`"), "{err}");
    ok(
        &sb,
        &[
            "add",
            "--service",
            "redis",
            "--image",
            "redis:7-alpine",
            "--port",
            "6379:6379",
        ],
    );
    ok(
        &sb,
        &[
            "add",
            "--service",
            "api",
            "--git",
            &url,
            "--ref",
            "v1",
            "--runtime",
            "uv",
        ],
    );

    // Registered where the registry lives, through toml_edit.
    assert_eq!(
        sb.read("hsm-registry/libraries/alpha.toml"),
        "[sources.prod]\ntype = \"pypi\"\nversion = \">=1.0\"\n"
    );
    assert_eq!(
        sb.read("hsm-registry/services/redis.toml"),
        "ports = [\"6379:6379\"]\n\n[sources.prod]\ntype = \"docker-image\"\nimage = \"redis:7-alpine\"\n"
    );
    let api = sb.read("hsm-registry/services/api.toml");
    assert!(
        api.contains(&format!("url = \"{url}\"")) && api.contains("ref = \"v1\""),
        "{api}"
    );
    assert!(
        api.contains("[deployment-profiles.default]\nruntime = \"uv\""),
        "{api}"
    );
    let manifest = sb.read("hsm.toml");
    assert!(manifest.contains("standalone = [\"alpha\"]"), "{manifest}");
    assert!(
        manifest.contains("standalone = [\"redis\", \"api\"]"),
        "{manifest}"
    );

    // The same add again changes nothing; a new version updates the entry.
    let again = ok(&sb, &["add", "alpha@>=1.0"]);
    assert!(again.contains("Unchanged"), "{again}");
    ok(&sb, &["add", "alpha", "--version", ">=0.9"]);
    assert!(sb
        .read("hsm-registry/libraries/alpha.toml")
        .contains("version = \">=0.9\""));

    let o = sb.sync(&[]);
    let err = stderr(&o);
    assert!(
        err.contains("Finished sync in") && err.contains("; verified: no drift"),
        "{err}"
    );
    assert!(
        !err.contains("] Resolved"),
        "the tools' output only with -vv:\n{err}"
    );
    let root = sb.installed(".");
    assert!(
        root.iter().any(|(n, v)| n == "alpha" && v == "1.0.0"),
        "{root:?}"
    );
    assert!(
        sb.exists("services/api/.venv"),
        "the git service got its own venv"
    );
    let compose = sb.read("docker-compose.hsm.yml");
    assert!(
        compose.contains("image: redis:7-alpine") && compose.contains("6379:6379"),
        "{compose}"
    );
    let check = sb.run(&["check"]);
    assert!(check.status.success(), "check:\n{}", stderr(&check));

    // One-step remove: unselected, the entry kept; `--purge` removes it too.
    ok(&sb, &["remove", "redis"]);
    assert!(sb.exists("hsm-registry/services/redis.toml"));
    ok(&sb, &["remove", "alpha", "--purge"]);
    assert!(!sb.exists("hsm-registry/libraries/alpha.toml"));
    assert!(!sb.read("hsm.toml").contains("alpha"));
    let o = sb.sync(&[]);
    assert!(
        !sb.exists("docker-compose.hsm.yml"),
        "no container service is left, nor its compose file:\n{}",
        stderr(&o)
    );
    assert!(!sb.installed(".").iter().any(|(n, _)| n == "alpha"));
    let check = sb.run(&["check"]);
    assert!(check.status.success(), "check:\n{}", stderr(&check));
}

#[test]
fn remove_says_what_still_names_an_entry_and_why_it_stays_selected() {
    let sb = Sandbox::new();
    sb.write(
        "hsm.toml",
        r#"[services]
standalone = ["api", "redis"]

[registry.services.redis.sources.prod]
type = "docker-image"
image = "redis:7"

[registry.services.api]
depends-on = ["redis"]

[registry.services.api.sources.prod]
type = "docker-image"
image = "api:1"

[registry.services.api.implies]
"service:redis" = true
"#,
    );
    let before = sb.read("hsm.toml");
    // Removing the entry outright: refused, with both places named.
    let err = fails(&sb, &["registry", "service", "remove", "redis"], 2);
    assert!(
        err.contains("cannot remove the service `redis` from the registry"),
        "{err}"
    );
    assert!(
        !err.contains("registry service add"),
        "not the message for adding one:\n{err}"
    );
    assert!(
        err.contains("the service `api` depends on it (`depends-on`)"),
        "{err}"
    );
    assert!(err.contains("the service `api` implies it"), "{err}");
    assert!(
        err.contains("it is selected in `[services].standalone`"),
        "{err}"
    );
    assert!(err.contains("--> hsm.toml:"), "{err}");
    assert_eq!(sb.read("hsm.toml"), before, "nothing written");

    // Unselecting: done, and told that the implication keeps it.
    let err = ok(&sb, &["remove", "redis"]);
    assert!(err.contains("Updated `hsm.toml`"), "{err}");
    assert!(
        err.contains("the service `redis` stays selected: implied by service:api"),
        "{err}"
    );
    assert!(sb.read("hsm.toml").contains("standalone = [\"api\"]"));

    // `--purge` while `api` still names it: refused, nothing written.
    let before = sb.read("hsm.toml");
    let err = fails(&sb, &["remove", "redis", "--purge"], 2);
    assert!(err.contains("the service `api` depends on it"), "{err}");
    assert!(
        !err.contains("selected in"),
        "its own selection goes in the same edit:\n{err}"
    );
    assert_eq!(sb.read("hsm.toml"), before);

    // A name that is not there: what there is to remove, not how to add.
    let err = fails(&sb, &["remove", "redsi"], 2);
    assert!(
        err.contains("there is no service `redsi` to remove"),
        "{err}"
    );
    assert!(err.contains("did you mean `redis`?"), "{err}");
    let err = fails(&sb, &["service", "remove", "redsi"], 2);
    assert!(
        err.contains("there is no service `redsi` to remove"),
        "{err}"
    );
}

#[test]
fn commands_split_with_shell_rules_and_sources_take_inline_toml() {
    let sb = Sandbox::new();
    sb.write("hsm.toml", "[services]\nstandalone = []\n");
    ok(
        &sb,
        &[
            "registry",
            "service",
            "add",
            "hello",
            "--prod",
            "type=local,path=svc",
            "--runtime",
            "venv",
            "--command",
            "sh -c 'echo hello world'",
        ],
    );
    ok(
        &sb,
        &[
            "registry",
            "library",
            "add",
            "numpy",
            "--prod",
            r#"{ type = "pypi", version = ">=1.26,<3" }"#,
        ],
    );
    ok(
        &sb,
        &[
            "registry",
            "service",
            "add",
            "cache",
            "--prod",
            "type=docker-image,image=redis:7",
        ],
    );
    let t = sb.read("hsm.toml");
    assert!(
        t.contains(r#"command = ["sh", "-c", "echo hello world"]"#),
        "{t}"
    );
    assert!(t.contains(r#"version = ">=1.26,<3""#), "{t}");
    // No empty `[deployment-profiles.default]` for a service without one.
    assert!(
        !t.contains("[registry.services.cache.deployment-profiles"),
        "{t}"
    );

    // The short form's error points at the inline-table form.
    let err = fails(
        &sb,
        &[
            "registry",
            "library",
            "add",
            "np2",
            "--prod",
            "type=pypi,version=>=1.26,<3",
        ],
        2,
    );
    assert!(
        err.contains("`<3` is not `key=value`") && err.contains("TOML inline table"),
        "{err}"
    );
    let err = fails(
        &sb,
        &[
            "registry",
            "service",
            "add",
            "bad",
            "--prod",
            "type=local,path=x",
            "--command",
            "sh -c 'oops",
        ],
        2,
    );
    assert!(err.contains("unterminated quote"), "{err}");
}

#[test]
fn init_ignores_target_add_creates_the_root_project_and_service_init_git_inits() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    // The monorepo is a git repository already: `--git-init` must still
    // give the service a repository of its own.
    sync_support::git_in(&sb.root, &["init", "-q"]);
    ok(&sb, &["init"]);
    assert!(sb.read(".gitignore").lines().any(|l| l == "/target"));
    assert!(!sb.exists("pyproject.toml"));
    let err = ok(&sb, &["add", "alpha"]);
    assert!(err.contains("Created `pyproject.toml`"), "{err}");
    let pp = sb.read("pyproject.toml");
    assert!(
        pp.contains("[project]") && pp.contains("requires-python"),
        "{pp}"
    );

    ok(&sb, &["service", "init", "api", "--git-init"]);
    assert!(sb.exists("services/api/.git"), "its own repository");
    assert!(sb.read(".gitignore").contains("!/services/api/"));
    ok(&sb, &["remove", "api", "--purge"]);
    assert!(
        !sb.read(".gitignore").contains("!/services/api/"),
        "{}",
        sb.read(".gitignore")
    );
}

#[test]
fn mode_dev_then_prod_leaves_the_manifest_as_it_was_and_dev_without_a_dev_source_warns() {
    let sb = Sandbox::new();
    let manifest = r#"[libraries]
standalone = ["numpy", "tok"]   # mine
groups.vec = { strategy = "1-of-N", selection = "qd" }

[registry.libraries.numpy.sources.prod]
type = "pypi"

[registry.libraries.tok.sources.prod]
type = "pypi"

[registry.libraries.tok.sources.dev]
type = "local"
path = "tok"

[registry.libraries.qd.sources.prod]
type = "pypi"

[registry.library_groups.vec]
strategy = "1-of-N"
options = ["qd"]
"#;
    sb.write("hsm.toml", manifest);
    std::fs::create_dir_all(sb.path("tok")).unwrap();
    ok(&sb, &["mode", "dev"]);
    let dev = sb.read("hsm.toml");
    assert!(dev.contains(r#"{ name = "numpy", mode = "dev" }"#), "{dev}");
    assert!(dev.contains("[modes]\nqd = \"dev\""), "{dev}");
    ok(&sb, &["mode", "prod"]);
    assert_eq!(
        sb.read("hsm.toml"),
        manifest,
        "the round trip undoes the first switch"
    );

    let err = ok(&sb, &["library", "mode", "numpy", "dev"]);
    assert!(
        err.contains(
            "warning: the library `numpy` has no dev source: in dev mode it uses its prod source"
        ),
        "{err}"
    );
    let err = ok(&sb, &["library", "mode", "tok", "dev"]);
    assert!(!err.contains("warning"), "{err}");
    ok(&sb, &["library", "mode", "numpy", "prod"]);
    ok(&sb, &["library", "mode", "tok", "prod"]);
    assert_eq!(sb.read("hsm.toml"), manifest);
}
