//! Node services (`runtime = "node"`) against the real node, npm, and pnpm
//! and Yarn through corepack, with small real packages from the npm
//! registry. Every npm, pnpm, Yarn and corepack cache lives in this test
//! binary's `CARGO_TARGET_TMPDIR` (shared by the tests, never `~/.npm`).

mod sync_support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use sync_support::{git_in, require, stderr, stdout, sync_actions, Sandbox};

/// The caches of every package manager, under the target dir.
fn caches() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-caches")
}

/// Points npm, pnpm, Yarn and corepack at caches of the tests' own and
/// at the npm registry (corepack's default hosts are not reachable here).
fn node_env(c: &mut Command) -> &mut Command {
    let d = caches();
    c.env("npm_config_cache", d.join("npm"))
        .env("npm_config_store_dir", d.join("pnpm-store"))
        .env("npm_config_update_notifier", "false")
        .env("COREPACK_HOME", d.join("corepack"))
        .env("COREPACK_NPM_REGISTRY", "https://registry.npmjs.org")
        .env("COREPACK_INTEGRITY_KEYS", "0")
        .env("COREPACK_ENABLE_DOWNLOAD_PROMPT", "0")
        .env("YARN_GLOBAL_FOLDER", d.join("yarn-global"))
        .env("YARN_CACHE_FOLDER", d.join("yarn-cache"))
        .env("YARN_ENABLE_TELEMETRY", "0")
}

fn hsm(sb: &Sandbox, args: &[&str]) -> Output {
    let mut c = sb.cmd(args);
    node_env(&mut c).output().unwrap()
}

/// `cargo hsm run SERVICE -- CMD…` from the sandbox's root (the
/// sandbox's own options would land after `--`, in the command).
fn run_in(sb: &Sandbox, service: &str, command: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cargo-hsm"));
    c.args(["hsm", "run", service, "--"])
        .args(command)
        .current_dir(&sb.root);
    node_env(&mut c).output().unwrap()
}

fn sync(sb: &Sandbox, args: &[&str]) -> Output {
    let mut a = vec!["sync"];
    a.extend_from_slice(args);
    let o = hsm(sb, &a);
    assert!(o.status.success(), "sync {args:?} failed:\n{}", stderr(&o));
    o
}

/// `npm` itself, with the tests' cache, in `dir`.
fn npm(dir: &std::path::Path, args: &[&str]) -> String {
    let mut c = Command::new("npm");
    c.args(args).current_dir(dir);
    let o = node_env(&mut c).output().unwrap();
    assert!(o.status.success(), "npm {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// The findings of `check --message-format json`: (kind, package).
fn findings(sb: &Sandbox) -> (Option<i32>, Vec<(String, String)>) {
    let o = hsm(sb, &["check", "--message-format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    let f = v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings in {v:#}"))
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["package"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (o.status.code(), f)
}

/// The version of the package installed at `rel` (a `node_modules/…` dir).
fn version(sb: &Sandbox, rel: &str) -> String {
    let v: Value = serde_json::from_str(&sb.read(&format!("{rel}/package.json"))).unwrap();
    v["version"].as_str().unwrap().to_string()
}

/// A no-op sync: `web` is `Fresh` and nothing is synced (nothing spawned).
fn assert_fresh(sb: &Sandbox) {
    let o = hsm(sb, &["sync", "--message-format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let acts = sync_actions(&o);
    assert!(
        acts.iter().any(|a| a.0 == "fresh" && a.1 == "service:web"),
        "{acts:?}"
    );
    assert!(!acts.iter().any(|a| a.0 == "sync"), "{acts:?}");
}

/// The local node service `web` (is-number 7.0.0) whose `packageManager`
/// is `pm` (`pnpm@9.15.0`), selected with no registry `dependencies`.
fn pinned_web(pm: &str) -> Sandbox {
    let sb = sandbox();
    sb.write(
        "services/web/package.json",
        &format!("{{\n  \"name\": \"web\",\n  \"version\": \"1.0.0\",\n  \"private\": true,\n  \"packageManager\": \"{pm}\",\n  \"dependencies\": {{\"is-number\": \"7.0.0\"}}\n}}\n"),
    );
    sb.write("hsm.toml", &manifest(LOCAL, ""));
    sb
}

fn sandbox() -> Sandbox {
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb
}

/// A manifest selecting the node service `web`; `source` is its
/// `[sources.prod]` body and `extra` goes into its registry entry.
fn manifest(source: &str, extra: &str) -> String {
    format!(
        r#"[services]
standalone = ["web"]

[registry.services.web]
{extra}

[registry.services.web.sources.prod]
{source}

[registry.services.web.deployment-profiles.default]
runtime = "node"
command = ["node", "index.js"]
"#
    )
}

const LOCAL: &str = "type = \"local\"\npath = \"services/web\"";

/// A sandbox with the local node service `web` (is-number 7.0.0) and
/// `extra` in its registry entry.
fn local_web(extra: &str) -> Sandbox {
    let sb = sandbox();
    sb.write(
        "services/web/package.json",
        &package_json("web", "\"is-number\": \"7.0.0\""),
    );
    sb.write("hsm.toml", &manifest(LOCAL, extra));
    sb
}

fn package_json(name: &str, deps: &str) -> String {
    format!(
        "{{\n  \"name\": \"{name}\",\n  \"version\": \"1.0.0\",\n  \"private\": true,\n  \"dependencies\": {{{deps}}}\n}}\n"
    )
}

/// `npm ci` installs into the service only; check is clean; the next sync
/// spawns nothing (`Fresh`); check catches an extra, a removed and a
/// changed package. The registry's `dependencies` reach `package.json`.
#[test]
fn npm_ci_installs_into_the_service_and_check_catches_extra_missing_and_changed_packages() {
    if !require("npm") {
        return;
    }
    // is-odd 3.0.1 needs is-number ^6: a nested node_modules.
    let sb = local_web("dependencies = [\"is-odd@3.0.1\"]");
    // No lock yet: a plain sync creates one (`npm install`).
    let o = sync(&sb, &["-v"]);
    assert!(
        stderr(&o).contains("npm install --prefix ."),
        "{}",
        stderr(&o)
    );
    assert!(sb.exists("services/web/package-lock.json"));
    let pj: Value = serde_json::from_str(&sb.read("services/web/package.json")).unwrap();
    assert_eq!(pj["dependencies"]["is-odd"], "3.0.1", "{pj:#}");
    assert_eq!(pj["dependencies"]["is-number"], "7.0.0", "{pj:#}");
    assert!(sb
        .read("hsm.lock")
        .contains("services/web/package-lock.json"));

    // From the lock: `npm ci`.
    std::fs::remove_dir_all(sb.path("services/web/node_modules")).unwrap();
    let o = sync(&sb, &["-v"]);
    assert!(stderr(&o).contains("npm ci --prefix ."), "{}", stderr(&o));
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "7.0.0");
    assert_eq!(
        version(
            &sb,
            "services/web/node_modules/is-odd/node_modules/is-number"
        ),
        "6.0.0"
    );
    assert!(!sb.exists("node_modules"), "nothing lands in the root");
    assert_eq!(findings(&sb), (Some(0), vec![]));

    // A no-op sync: fresh, nothing spawned.
    assert_fresh(&sb);

    // An extra package installed by hand.
    sb.write(
        "services/web/node_modules/left-pad/package.json",
        "{\"name\": \"left-pad\", \"version\": \"1.3.0\"}\n",
    );
    let (code, f) = findings(&sb);
    assert_eq!(code, Some(1));
    assert_eq!(f, [("package-extra".to_string(), "left-pad".to_string())]);
    std::fs::remove_dir_all(sb.path("services/web/node_modules/left-pad")).unwrap();

    // A changed version.
    let pj = sb.path("services/web/node_modules/is-odd/package.json");
    let text = std::fs::read_to_string(&pj).unwrap();
    std::fs::write(
        &pj,
        text.replace("\"version\": \"3.0.1\"", "\"version\": \"3.0.0\""),
    )
    .unwrap();
    let (code, f) = findings(&sb);
    assert_eq!(code, Some(1));
    assert_eq!(
        f,
        [("package-wrong-version".to_string(), "is-odd".to_string())],
    );
    std::fs::write(&pj, text).unwrap();

    // A removed package; sync puts it back.
    std::fs::remove_dir_all(sb.path("services/web/node_modules/is-number")).unwrap();
    let (code, f) = findings(&sb);
    assert_eq!(code, Some(1));
    assert_eq!(
        f,
        [("package-missing".to_string(), "is-number".to_string())]
    );
    sync(&sb, &[]);
    assert_eq!(findings(&sb), (Some(0), vec![]));

    // node_modules gone: drift.
    std::fs::remove_dir_all(sb.path("services/web/node_modules")).unwrap();
    let (code, f) = findings(&sb);
    assert_eq!(code, Some(1));
    assert_eq!(f, [("venv-missing".to_string(), String::new())]);
}

/// A sandbox whose root `package.json` (returned) declares `workspaces:
/// ["services/*"]`, with the local node service `web` (is-number 7.0.0).
fn workspaces_root() -> (Sandbox, &'static str) {
    let sb = sandbox();
    let root_pj = "{\n  \"name\": \"monorepo\",\n  \"private\": true,\n  \"workspaces\": [\"services/*\"]\n}\n";
    sb.write("package.json", root_pj);
    sb.write(
        "services/web/package.json",
        &package_json("web", "\"is-number\": \"7.0.0\""),
    );
    sb.write("hsm.toml", &manifest(LOCAL, ""));
    (sb, root_pj)
}

/// A root `package.json` whose `workspaces` match `services/*`: npm would
/// install the service into the root's `node_modules` and rewrite the
/// root's lock. hsm's sync leaves the root's files byte-identical.
#[test]
fn root_workspaces_glob_does_not_adopt_the_node_service() {
    if !require("npm") {
        return;
    }
    let (sb, root_pj) = workspaces_root();
    sync(&sb, &[]);
    assert_eq!(sb.read("package.json"), root_pj);
    assert!(
        !sb.exists("package-lock.json"),
        "the root's lock was written"
    );
    assert!(!sb.exists("node_modules"), "the root got a node_modules");
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "7.0.0");
    let lock: Value = serde_json::from_str(&sb.read("services/web/package-lock.json")).unwrap();
    assert_eq!(lock["name"], "web", "the service has a lock of its own");
    assert_eq!(findings(&sb), (Some(0), vec![]));
}

/// `--locked` with a lock that would change (a new registry dependency):
/// refused before anything runs, and no file changes.
#[test]
fn locked_refuses_a_lock_that_would_change_and_changes_nothing() {
    if !require("npm") {
        return;
    }
    let sb = local_web("");
    sync(&sb, &[]);
    sync(&sb, &["--locked"]);
    let files = |sb: &Sandbox| -> Vec<Option<Vec<u8>>> {
        [
            "services/web/package.json",
            "services/web/package-lock.json",
            "hsm.lock",
        ]
        .iter()
        .map(|f| sb.bytes(f))
        .collect()
    };
    let before = files(&sb);
    sb.write(
        "hsm.toml",
        &manifest(LOCAL, "dependencies = [\"is-odd@3.0.1\"]"),
    );
    let o = hsm(&sb, &["sync", "--locked"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`--locked` forbids changing its lock file"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("is-odd"), "{}", stderr(&o));
    assert_eq!(before, files(&sb));
    assert!(!sb.exists("services/web/node_modules/is-odd"));

    // Without a lock at all, `--locked` refuses too.
    std::fs::remove_file(sb.path("services/web/package-lock.json")).unwrap();
    sb.write("hsm.toml", &manifest(LOCAL, ""));
    let o = hsm(&sb, &["sync", "--locked"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("there is no lock file"),
        "{}",
        stderr(&o)
    );
    assert!(!sb.exists("services/web/package-lock.json"));
}

/// A git-sourced node service at one tag, then at another: the checkout
/// moves although `node_modules/` and build output (`dist/`) are in it.
#[test]
fn git_sourced_node_service_follows_its_tag() {
    if !require("npm") || !require("git") {
        return;
    }
    let sb = sandbox();
    let work = sb.path("remotes/web-work");
    std::fs::create_dir_all(&work).unwrap();
    git_in(&work, &["init", "-q", "-b", "main"]);
    let mut shas = Vec::new();
    for (tag, v) in [("v1.0.0", "7.0.0"), ("v2.0.0", "6.0.0")] {
        sb.write(
            "remotes/web-work/package.json",
            &package_json("web", &format!("\"is-number\": \"{v}\"")),
        );
        sb.write("remotes/web-work/index.js", "console.log('web');\n");
        npm(
            &work,
            &["install", "--package-lock-only", "--no-audit", "--no-fund"],
        );
        git_in(&work, &["add", "-A"]);
        git_in(&work, &["commit", "-q", "-m", tag]);
        git_in(&work, &["tag", tag]);
        shas.push(git_in(&work, &["rev-parse", "HEAD"]).trim().to_string());
    }
    let bare = sb.path("remotes/web.git");
    git_in(
        &sb.root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let source = |tag: &str| {
        format!(
            "type = \"git\"\nurl = \"file://{}\"\nref = \"{tag}\"",
            bare.display()
        )
    };
    sb.write("hsm.toml", &manifest(&source("v1.0.0"), ""));
    sync(&sb, &[]);
    assert_eq!(
        sb.git("services/web", &["rev-parse", "HEAD"]).trim(),
        shas[0]
    );
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "7.0.0");
    assert_eq!(findings(&sb), (Some(0), vec![]));
    // A registry dependency edits the checkout's package.json and lock, and
    // dropping it again removes it with `npm uninstall`: both files are
    // hsm's doing, never local work, also after the tool's edit.
    sb.write(
        "hsm.toml",
        &manifest(&source("v1.0.0"), "dependencies = [\"is-odd@3.0.1\"]"),
    );
    sync(&sb, &[]);
    assert_eq!(version(&sb, "services/web/node_modules/is-odd"), "3.0.1");
    assert_eq!(findings(&sb), (Some(0), vec![]));
    sb.write("hsm.toml", &manifest(&source("v1.0.0"), ""));
    let o = sync(&sb, &["-v"]);
    assert!(stderr(&o).contains("npm uninstall"), "{}", stderr(&o));
    assert!(!sb.exists("services/web/node_modules/is-odd"));
    assert_eq!(findings(&sb), (Some(0), vec![]));
    // Build output beside node_modules: not local work either.
    sb.write("services/web/dist/bundle.js", "built\n");

    sb.write("hsm.toml", &manifest(&source("v2.0.0"), ""));
    let o = sync(&sb, &[]);
    assert!(
        stderr(&o).contains("Checking out web (v2.0.0"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        sb.git("services/web", &["rev-parse", "HEAD"]).trim(),
        shas[1]
    );
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "6.0.0");
    assert_eq!(findings(&sb), (Some(0), vec![]));
    let exclude = sb.read("services/web/.git/info/exclude");
    assert!(exclude.contains("node_modules/\n"), "{exclude}");

    // Real local work is still kept.
    sb.write("services/web/notes.txt", "mine\n");
    sb.write("hsm.toml", &manifest(&source("v1.0.0"), ""));
    let o = hsm(&sb, &["sync"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("notes.txt"), "{}", stderr(&o));
    assert_eq!(
        sb.git("services/web", &["rev-parse", "HEAD"]).trim(),
        shas[1]
    );
}

/// `service init --runtime node` writes a `package.json` with a start
/// script and registers it; `run` finds the dependencies' executables in
/// `node_modules/.bin`.
#[test]
fn service_init_node_then_run_finds_node_modules_bin() {
    if !require("npm") {
        return;
    }
    let sb = sandbox();
    let o = hsm(&sb, &["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hsm(&sb, &["service", "init", "web", "--runtime", "node"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pj: Value = serde_json::from_str(&sb.read("services/web/package.json")).unwrap();
    assert_eq!(pj["scripts"]["start"], "node index.js");
    assert_eq!(pj["name"], "web");
    let o = run_in(&sb, "web", &["npm", "start", "--silent"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("web is running"),
        "{:?} {}",
        stdout(&o),
        stderr(&o)
    );

    // A dependency with an executable (semver has no dependencies).
    let pj_text = sb.read("services/web/package.json");
    sb.write(
        "services/web/package.json",
        &pj_text.replace(
            "\"private\": true,",
            "\"private\": true,\n  \"dependencies\": {\n    \"semver\": \"7.6.3\"\n  },",
        ),
    );
    let o = run_in(&sb, "web", &["semver", "1.2.3", "-r", ">1.0.0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "1.2.3");
    assert_eq!(findings(&sb), (Some(0), vec![]));
}

/// Whether corepack can fetch `spec` (`pnpm@9.15.0`) here; else, why not.
fn corepack_gets(spec: &str) -> Result<(), String> {
    let mut c = Command::new("corepack");
    c.args([spec, "--version"]);
    match node_env(&mut c).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "corepack could not fetch {spec}: {}",
            stderr(&o)
                .lines()
                .find(|l| l.contains("Error"))
                .unwrap_or("")
        )),
        Err(e) => Err(format!("corepack cannot run: {e}")),
    }
}

/// Whether a package manager can be had; with `CI=true` it must.
fn have(spec: &str) -> bool {
    match corepack_gets(spec) {
        Ok(()) => true,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{why} (CI=true: `.ci/run` checks corepack and the npm registry)")
        }
        Err(why) => {
            eprintln!("skipping: {why}");
            false
        }
    }
}

/// pnpm (through corepack, from the npm registry): `pnpm-lock.yaml`
/// created, then `--frozen-lockfile`; a root `pnpm-workspace.yaml` that
/// matches `services/*` does not adopt the service.
#[test]
fn pnpm_through_corepack_installs_from_its_lock_and_ignores_the_root_workspace() {
    if !require("npm") || !have("pnpm@9.15.0") {
        return;
    }
    let sb = sandbox();
    sb.write("pnpm-workspace.yaml", "packages:\n  - \"services/*\"\n");
    sb.write(
        "services/web/package.json",
        "{\n  \"name\": \"web\",\n  \"version\": \"1.0.0\",\n  \"private\": true,\n  \"packageManager\": \"pnpm@9.15.0\",\n  \"dependencies\": {\"is-odd\": \"3.0.1\"}\n}\n",
    );
    sb.write("hsm.toml", &manifest(LOCAL, ""));
    let o = sync(&sb, &["-v"]);
    assert!(
        stderr(&o).contains("--no-frozen-lockfile"),
        "{}",
        stderr(&o)
    );
    assert!(sb.exists("services/web/pnpm-lock.yaml"));
    assert!(!sb.exists("pnpm-lock.yaml") && !sb.exists("node_modules"));
    assert_eq!(version(&sb, "services/web/node_modules/is-odd"), "3.0.1");
    assert_eq!(findings(&sb), (Some(0), vec![]));
    std::fs::remove_dir_all(sb.path("services/web/node_modules")).unwrap();
    let o = sync(&sb, &["--locked", "-v"]);
    assert!(stderr(&o).contains("--frozen-lockfile"), "{}", stderr(&o));
    assert_eq!(findings(&sb), (Some(0), vec![]));
    // The store copy of is-number changed by hand: caught.
    let store = std::fs::read_dir(sb.path("services/web/node_modules/.pnpm"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("is-number@"))
        .unwrap()
        .path()
        .join("node_modules/is-number/package.json");
    let text = std::fs::read_to_string(&store).unwrap();
    std::fs::remove_file(&store).unwrap();
    std::fs::write(&store, text.replace("\"6.0.0\"", "\"6.0.1\"")).unwrap();
    let (code, f) = findings(&sb);
    assert_eq!(code, Some(1));
    assert_eq!(
        f,
        [("package-wrong-version".to_string(), "is-number".to_string())]
    );
}

/// Yarn 4 (the version `packageManager` names, through corepack): Plug'n'
/// Play is refused with the fix; with `nodeLinker: node-modules` it
/// installs, check is clean, and `--locked` is `--immutable`.
#[test]
fn yarn_berry_refuses_plug_n_play_and_installs_with_node_modules_linker() {
    if !require("npm") || !have("yarn@4.5.3") {
        return;
    }
    let sb = pinned_web("yarn@4.5.3");
    let o = hsm(&sb, &["sync"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("add `nodeLinker: node-modules` to the service's `.yarnrc.yml`"),
        "{}",
        stderr(&o)
    );
    assert!(!sb.exists("services/web/.pnp.cjs"));
    sb.write("services/web/.yarnrc.yml", "nodeLinker: node-modules\n");
    let o = sync(&sb, &["-v"]);
    assert!(
        stderr(&o).contains("install --no-immutable"),
        "{}",
        stderr(&o)
    );
    assert!(sb.exists("services/web/yarn.lock"));
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "7.0.0");
    assert_eq!(findings(&sb), (Some(0), vec![]));
    std::fs::remove_dir_all(sb.path("services/web/node_modules")).unwrap();
    let o = sync(&sb, &["--locked", "-v"]);
    assert!(stderr(&o).contains("install --immutable"), "{}", stderr(&o));
    assert_eq!(findings(&sb), (Some(0), vec![]));
}

/// A node service's `dependencies` are npm specs: a PEP 508 string or a
/// registry library is refused at the key, before anything runs.
#[test]
fn node_dependencies_must_be_npm_specs() {
    let sb = sandbox();
    sb.write("services/web/package.json", &package_json("web", ""));
    sb.write(
        "hsm.toml",
        &manifest(LOCAL, "dependencies = [\"numpy>=2\"]"),
    );
    let o = hsm(&sb, &["sync"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("`numpy>=2` is not a valid npm package name"),
        "{e}"
    );
    assert!(e.contains("hsm.toml"), "{e}");
    assert!(!sb.exists("services/web/node_modules") && !sb.exists("hsm.lock"));
}

/// A missing package manager names the service and how to get it: npm
/// comes with Node.js; pnpm from the npm registry or through corepack.
#[test]
fn a_missing_package_manager_names_the_service_and_how_to_get_it() {
    if !require("npm") {
        return;
    }
    let sb = local_web("");
    // A `PATH` with node and npm only: no pnpm, no corepack.
    let bin = sb.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["node", "npm"] {
        let real = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let real = PathBuf::from(stdout(&real).trim());
        std::os::unix::fs::symlink(std::fs::canonicalize(real).unwrap(), bin.join(tool)).unwrap();
    }
    sb.write("services/web/pnpm-lock.yaml", "lockfileVersion: '9.0'\n");
    let o = hsm_with_path(&sb, &bin);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("service `web` needs `pnpm` (its lock file is `pnpm-lock.yaml`)"),
        "{e}"
    );
    assert!(e.contains("npm install -g pnpm"), "{e}");
    assert!(e.contains("COREPACK_NPM_REGISTRY"), "{e}");

    std::fs::remove_file(sb.path("services/web/pnpm-lock.yaml")).unwrap();
    let empty = sb.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = hsm_with_path(&sb, &empty);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("service `web` needs `npm`"), "{e}");
    assert!(e.contains("install Node.js, which comes with npm"), "{e}");
    assert!(!sb.exists("services/web/node_modules"));
}

/// `cargo hsm sync` with `PATH` set to `dir` alone.
fn hsm_with_path(sb: &Sandbox, dir: &std::path::Path) -> Output {
    let mut c = sb.cmd(&["sync"]);
    node_env(&mut c).env("PATH", dir).output().unwrap()
}

/// An upstream that commits no lock: the first sync's `package-lock.json`
/// is kept in `hsm.locks/web/`, and a fresh checkout installs it with
/// `--locked`.
#[test]
fn git_upstream_without_a_lock_gets_one_kept_in_hsm_locks() {
    if !require("npm") || !require("git") {
        return;
    }
    let sb = sandbox();
    let work = sb.path("remotes/web-work");
    sb.write(
        "remotes/web-work/package.json",
        &package_json("web", "\"is-number\": \"7.0.0\""),
    );
    git_in(&work, &["init", "-q", "-b", "main"]);
    git_in(&work, &["add", "-A"]);
    git_in(&work, &["commit", "-q", "-m", "v1"]);
    git_in(&work, &["tag", "v1"]);
    let source = format!(
        "type = \"git\"\nurl = \"file://{}\"\nref = \"v1\"",
        work.display()
    );
    sb.write("hsm.toml", &manifest(&source, ""));
    sync(&sb, &[]);
    let kept = sb.read("hsm.locks/web/package-lock.json");
    assert!(kept.contains("node_modules/is-number"), "{kept}");
    assert!(sb
        .read("hsm.lock")
        .contains("hsm.locks/web/package-lock.json"));
    std::fs::remove_dir_all(sb.path("services/web")).unwrap();
    let o = sync(&sb, &["--locked", "-v"]);
    assert!(stderr(&o).contains("npm ci"), "{}", stderr(&o));
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "7.0.0");
    assert_eq!(findings(&sb), (Some(0), vec![]));
}

/// The entries hsm recorded as its own in `hsm.lock` (`added-dependencies`).
fn added(sb: &Sandbox) -> Vec<String> {
    let lock: toml::Table = toml::from_str(&sb.read("hsm.lock")).unwrap();
    lock["service"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some("web"))
        .and_then(|s| s.get("added-dependencies"))
        .and_then(|a| a.as_array())
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// `package.json`'s `dependencies` as (name, range).
fn declared(sb: &Sandbox) -> Vec<(String, String)> {
    let pj: Value = serde_json::from_str(&sb.read("services/web/package.json")).unwrap();
    pj["dependencies"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// check reports hsm's `is-odd` as left over; all findings.
fn leftover_is_odd(sb: &Sandbox) -> Vec<(String, String)> {
    let (code, f) = findings(sb);
    assert_eq!(code, Some(1));
    assert!(
        f.contains(&("dependency-leftover".to_string(), "is-odd".to_string())),
        "{f:?}"
    );
    f
}

/// A dependency that the registry lists reaches `package.json` and
/// `hsm.lock` records it as hsm's; once the registry drops it, check
/// reports the leftover and sync removes it with `npm uninstall`
/// (`package.json`, the lock and `node_modules`). The user's own entries
/// stay: one they wrote themselves, and one they had before the registry
/// listed the same name, which hsm does not take over.
#[test]
fn a_dependency_the_registry_drops_leaves_package_json_through_npm_uninstall() {
    if !require("npm") {
        return;
    }
    // The user's is-number 7.0.0; the registry also lists is-number (hsm
    // leaves the user's entry) and is-odd (hsm adds it).
    let listed = "dependencies = [\"is-odd@3.0.1\", \"is-number@^7.0.0\"]";
    let sb = local_web(listed);
    let o = hsm(&sb, &["sync"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        declared(&sb),
        pairs(&[("is-number", "7.0.0"), ("is-odd", "3.0.1")])
    );
    assert_eq!(added(&sb), ["is-odd@3.0.1"]);
    assert_eq!(findings(&sb), (Some(0), vec![]));

    // The registry drops both.
    sb.write("hsm.toml", &manifest(LOCAL, ""));
    let f = leftover_is_odd(&sb);
    assert!(
        !f.iter().any(|(_, p)| p == "is-number"),
        "the user's entry is not hsm's: {f:?}"
    );
    let o = hsm(&sb, &["check"]);
    assert!(
        stderr(&o).contains("hsm added it; the registry no longer lists it"),
        "{}",
        stderr(&o)
    );
    // `--locked` refuses: the lock would change.
    let before = sb.bytes("services/web/package-lock.json");
    let o = hsm(&sb, &["sync", "--locked"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("hsm would remove `is-odd` from `package.json`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(sb.bytes("services/web/package-lock.json"), before);
    // A dry run says what it would run: the uninstall alone, which
    // installs the rest of the lock as it is.
    let o = hsm(&sb, &["sync", "--dry-run", "-v"]);
    assert!(
        stderr(&o).contains("`npm uninstall --prefix . --include=dev --no-audit --no-fund is-odd`"),
        "{}",
        stderr(&o)
    );
    assert!(sb.exists("services/web/node_modules/is-odd"));

    let o = sync(&sb, &["-v"]);
    assert!(
        stderr(&o).contains("`npm uninstall --prefix . --include=dev --no-audit --no-fund is-odd`"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("npm ci"), "{}", stderr(&o));
    assert_eq!(declared(&sb), pairs(&[("is-number", "7.0.0")]));
    let lock = sb.read("services/web/package-lock.json");
    assert!(!lock.contains("is-odd"), "{lock}");
    assert!(!sb.exists("services/web/node_modules/is-odd"));
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "7.0.0");
    assert!(added(&sb).is_empty());
    assert_eq!(findings(&sb), (Some(0), vec![]));
    assert_fresh(&sb);

    // An entry of hsm's that the user changed is theirs from then on.
    sb.write(
        "hsm.toml",
        &manifest(LOCAL, "dependencies = [\"is-odd@3.0.1\"]"),
    );
    sync(&sb, &[]);
    assert_eq!(added(&sb), ["is-odd@3.0.1"]);
    let text = sb.read("services/web/package.json");
    sb.write(
        "services/web/package.json",
        &text.replace("\"is-odd\": \"3.0.1\"", "\"is-odd\": \"^3.0.1\""),
    );
    sb.write("hsm.toml", &manifest(LOCAL, ""));
    sync(&sb, &[]);
    assert_eq!(
        declared(&sb),
        pairs(&[("is-number", "7.0.0"), ("is-odd", "^3.0.1")])
    );
    assert_eq!(findings(&sb), (Some(0), vec![]));
}

/// The package manager `pm` (`pnpm@9.15.0`, through corepack) removes the
/// dependency the registry dropped with `remove` (`flags` before the
/// name): from `package.json`, its lock `lock` and `node_modules`.
fn leftover_removed_by(pm: &str, lock: &str, flags: &str) {
    if !require("npm") || !have(pm) {
        return;
    }
    let sb = pinned_web(pm);
    if pm.starts_with("yarn") {
        sb.write("services/web/.yarnrc.yml", "nodeLinker: node-modules\n");
    }
    let lock = format!("services/web/{lock}");
    sb.write(
        "hsm.toml",
        &manifest(LOCAL, "dependencies = [\"is-odd@3.0.1\"]"),
    );
    sync(&sb, &[]);
    assert_eq!(added(&sb), ["is-odd@3.0.1"]);
    assert!(sb.read(&lock).contains("is-odd"));
    sb.write("hsm.toml", &manifest(LOCAL, ""));
    leftover_is_odd(&sb);
    let o = sync(&sb, &["-v"]);
    assert!(
        stderr(&o).contains(&format!(" remove{flags} is-odd && ")),
        "{}",
        stderr(&o)
    );
    assert_eq!(declared(&sb), pairs(&[("is-number", "7.0.0")]));
    assert!(!sb.read(&lock).contains("is-odd"));
    assert!(!sb.exists("services/web/node_modules/is-odd"));
    assert_eq!(findings(&sb), (Some(0), vec![]));
    assert_fresh(&sb);
}

/// The same with pnpm (through corepack): `pnpm remove --ignore-workspace`.
#[test]
fn a_dependency_the_registry_drops_leaves_package_json_through_pnpm_remove() {
    leftover_removed_by("pnpm@9.15.0", "pnpm-lock.yaml", " --ignore-workspace");
}

/// The same with Yarn 4 (through corepack, `nodeLinker: node-modules`):
/// `yarn remove`.
#[test]
fn a_dependency_the_registry_drops_leaves_package_json_through_yarn_remove() {
    leftover_removed_by("yarn@4.5.3", "yarn.lock", "");
}

/// Every file under `dir` (links as their target), for byte comparisons.
fn tree(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                let to = std::fs::read_link(&p).unwrap();
                out.push((p, to.to_string_lossy().into_owned().into_bytes()));
            } else if t.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The root-workspaces pitfall, already fallen into: the user ran `npm
/// install` at the root, whose `workspaces` match `services/*`, so the
/// root's `node_modules` links the service and holds its packages. check
/// reports it with the fix; sync installs the service into its own
/// `node_modules`, leaves every file of the root as it was, and fails its
/// verification with the same finding. Once the root no longer adopts the
/// service, check is clean.
#[test]
fn a_root_node_modules_holding_a_service_is_a_finding_and_sync_leaves_the_root_alone() {
    if !require("npm") {
        return;
    }
    let (sb, root_pj) = workspaces_root();
    npm(&sb.root, &["install", "--no-audit", "--no-fund"]);
    assert!(sb.exists("node_modules/is-number") && sb.exists("node_modules/web"));
    assert!(!sb.exists("services/web/node_modules/is-number"));

    let o = hsm(&sb, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("root [root-has-service-package]"), "{e}");
    assert!(
        e.contains("`node_modules/web` links to `services/web`"),
        "{e}"
    );
    assert!(e.contains("it holds the service's `is-number`"), "{e}");
    assert!(e.contains("narrow the root's `workspaces`"), "{e}");

    let root_files = |sb: &Sandbox| {
        (
            sb.bytes("package.json"),
            sb.bytes("package-lock.json"),
            tree(&sb.path("node_modules")),
        )
    };
    let before = root_files(&sb);
    let o = hsm(&sb, &["sync"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("root [root-has-service-package]"),
        "{}",
        stderr(&o)
    );
    assert!(before == root_files(&sb), "sync changed the root's files");
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "7.0.0");

    // The fix: the root's workspaces no longer match the service.
    sb.write("package.json", &root_pj.replace("services/*", "packages/*"));
    std::fs::remove_dir_all(sb.path("node_modules")).unwrap();
    std::fs::remove_file(sb.path("package-lock.json")).unwrap();
    npm(&sb.root, &["install", "--no-audit", "--no-fund"]);
    assert_eq!(findings(&sb), (Some(0), vec![]));
}

/// The same pitfall with pnpm: `pnpm install` at a root whose
/// `pnpm-workspace.yaml` matches `services/*` installs the service from
/// the root's store, and pnpm's record at the root lists it.
#[test]
fn a_root_pnpm_install_that_took_in_a_service_is_a_finding() {
    if !require("npm") || !have("pnpm@9.15.0") {
        return;
    }
    let sb = pinned_web("pnpm@9.15.0");
    sb.write("pnpm-workspace.yaml", "packages:\n  - \"services/*\"\n");
    sb.write(
        "package.json",
        "{\"name\": \"monorepo\", \"private\": true, \"packageManager\": \"pnpm@9.15.0\"}\n",
    );
    let mut c = Command::new("corepack");
    c.args(["pnpm", "install", "--no-frozen-lockfile"])
        .current_dir(&sb.root);
    let o = node_env(&mut c).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hsm(&sb, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "pnpm's `node_modules/.pnpm/lock.yaml` installs `services/web` as a workspace of the root"
        ),
        "{}",
        stderr(&o)
    );
    let before = (sb.bytes("pnpm-lock.yaml"), tree(&sb.path("node_modules")));
    let o = hsm(&sb, &["sync"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        before == (sb.bytes("pnpm-lock.yaml"), tree(&sb.path("node_modules"))),
        "sync changed the root's files"
    );
    assert_eq!(version(&sb, "services/web/node_modules/is-number"), "7.0.0");
}
