//! Issue 8: a no-op sync costs nothing (proved by a recording `uv` stand-in
//! on `PATH` and by file mtimes), environment syncs run in parallel with
//! every failure reported and everything rolled back, and the output is the
//! same whatever `--jobs` says. Everything else runs real uv, offline.

mod sync_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use sync_support::{require, stderr, stdout, Sandbox};

/// `n` uv services `s0`, `s1`, … at `services/sN` (each depending on
/// `alpha`) and the library `beta` in the shared project; `bad` names
/// services that get an unresolvable dependency instead.
fn manifest(n: usize, bad: &[usize]) -> String {
    let mut m = String::from("[project]\nname = \"sandbox\"\n\n[libraries]\nstandalone = [\"beta\"]\n\n[services]\nstandalone = [");
    m.push_str(
        &(0..n)
            .map(|i| format!("\"s{i}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    m.push_str(
        "]\n\n[registry.libraries.beta.sources.prod]\ntype = \"pypi\"\nversion = \"==2.0.0\"\n",
    );
    for i in 0..n {
        let dep = if bad.contains(&i) {
            "no-such-package>=1"
        } else {
            "alpha"
        };
        m.push_str(&format!(
            "\n[registry.services.s{i}]\ndependencies = [\"{dep}\"]\n[registry.services.s{i}.sources.prod]\ntype = \"local\"\npath = \"services/s{i}\"\n[registry.services.s{i}.deployment-profiles.default]\nruntime = \"uv\"\n"
        ));
    }
    m
}

fn sandbox(n: usize) -> Sandbox {
    let sb = Sandbox::new();
    sb.root_pyproject("");
    for i in 0..n {
        sb.uv_service(&format!("services/s{i}"), "");
    }
    sb.write("hsm.toml", &manifest(n, &[]));
    sb
}

/// Every file and directory under `root` with its mtime.
fn mtimes(root: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            out.insert(p.clone(), md.modified().unwrap());
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// A `uv` that appends `<cwd> <args>` to `log`, then runs the real uv — or
/// fails when the file `<fail>` exists. The same binary serves every sync of
/// the test, so the tool's identity (part of the fingerprint) never changes.
fn recording_uv(sb: &Sandbox) -> (String, PathBuf, PathBuf) {
    let bin = sb.path("stand-in-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = sb.path("uv-calls.log");
    let fail = sb.path("uv-fails");
    let real = Command::new("sh")
        .args(["-c", "command -v uv"])
        .output()
        .unwrap();
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    assert!(!real.is_empty(), "uv is on PATH");
    let uv = bin.join("uv");
    std::fs::write(
        &uv,
        format!(
            "#!/bin/sh\necho \"$PWD $*\" >> '{}'\n[ -e '{}' ] && exit 1\nexec '{real}' \"$@\"\n",
            log.display(),
            fail.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&uv, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, log, fail)
}

/// After a real sync, a second one with a recording `uv` stand-in first on
/// `PATH` (this test only) calls it zero times and changes no mtime; a
/// changed input or a package slipped into a venv makes exactly that
/// component run again.
#[test]
fn noop_sync_with_recording_uv_stand_in_spawns_nothing_and_writes_nothing() {
    if !require("uv") {
        return;
    }
    let sb = sandbox(3);
    let (path, log, fail) = recording_uv(&sb);
    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        sb.read("uv-calls.log").lines().count() >= 4,
        "the first sync ran uv"
    );
    std::fs::remove_file(&log).unwrap();
    assert!(sb.exists(".hsm/fingerprints.json"));
    let lock = sb.read("hsm.lock");
    assert!(
        !lock.contains("fingerprint"),
        "hsm.lock stays free of caches:\n{lock}"
    );
    let before = mtimes(&sb.root);

    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!log.exists(), "uv was called:\n{}", sb.read("uv-calls.log"));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        "       Fresh 4 components unchanged (`-v` lists them)"
    );
    // cargo's closing line, with the time taken.
    assert!(
        lines[1].starts_with("    Finished sync in ")
            && lines[1].ends_with("s; verified: no drift"),
        "{err}"
    );
    assert_eq!(before, mtimes(&sb.root), "a no-op sync touched a file");

    // -v lists every component.
    let out = sb.cmd(&["sync", "-v"]).env("PATH", &path).output().unwrap();
    let err = stderr(&out);
    for c in ["s0 (uv)", "s1 (uv)", "s2 (uv)", "libraries (uv, .)"] {
        assert!(err.contains(&format!("Fresh {c}")), "{err}");
    }
    assert!(!log.exists());

    // An edited input: only that service runs its tool (which fails here).
    std::fs::write(&fail, "").unwrap();
    let pp = sb.read("services/s1/pyproject.toml");
    sb.write(
        "services/s1/pyproject.toml",
        &pp.replace("version = \"0.1.0\"", "version = \"0.1.1\""),
    );
    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let calls = sb.read("uv-calls.log");
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(
        calls.starts_with(&format!("{} sync", sb.path("services/s1").display())),
        "{calls}"
    );
    sb.write("services/s1/pyproject.toml", &pp);
    std::fs::remove_file(&log).unwrap();

    // A package slipped into a service's venv behind hsm's back.
    let sp = std::fs::read_dir(sb.path("services/s2/.venv/lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    std::fs::create_dir(sp.join("intruder-1.0.dist-info")).unwrap();
    // s1, whose failed sync was rolled back, left its venv marked as
    // unfinished: it runs again too.
    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let calls = sb.read("uv-calls.log");
    assert_eq!(calls.lines().count(), 2, "{calls}");
    for s in ["services/s1", "services/s2"] {
        assert!(
            calls.contains(&format!("{} sync", sb.path(s).display())),
            "{calls}"
        );
    }

    // The real uv repairs it, and then all is fresh again.
    std::fs::remove_dir(sp.join("intruder-1.0.dist-info")).unwrap();
    std::fs::remove_file(&fail).unwrap();
    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(&log).unwrap();
    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!log.exists());
}

/// What only moves lines of `hsm.toml` (a comment above everything), or
/// changes what runs in an environment rather than the environment (a
/// service's `command`), makes no environment stale: the next sync spawns no
/// uv. A changed dependency makes exactly that service run again.
#[test]
fn moved_lines_and_commands_keep_the_noop_while_a_dependency_change_syncs_one() {
    if !require("uv") {
        return;
    }
    let sb = sandbox(2);
    let (path, log, _fail) = recording_uv(&sb);
    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(&log).unwrap();

    let m = manifest(2, &[]);
    let moved = format!("# the stack of the sandbox\n#\n# (comments move every line)\n\n{}", m.replace(
        "[registry.services.s0.deployment-profiles.default]\nruntime = \"uv\"\n",
        "[registry.services.s0.deployment-profiles.default]\nruntime = \"uv\"\ncommand = [\"python\", \"-m\", \"http.server\"]\n",
    ));
    assert_ne!(moved, m);
    sb.write("hsm.toml", &moved);
    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!log.exists(), "uv was called:\n{}", sb.read("uv-calls.log"));
    assert!(
        stderr(&out).contains("Fresh 3 components unchanged"),
        "{}",
        stderr(&out)
    );
    // check agrees that nothing is pending.
    let out = sb.cmd(&["check"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // A dependency added to s1 only.
    sb.write(
        "hsm.toml",
        &moved.replace(
            "[registry.services.s1]\ndependencies = [\"alpha\"]",
            "[registry.services.s1]\ndependencies = [\"alpha\", \"gamma\"]",
        ),
    );
    let out = sb.cmd(&["sync"]).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = sb.read("uv-calls.log");
    assert!(
        calls
            .lines()
            .all(|l| l.starts_with(&sb.path("services/s1").display().to_string())),
        "only s1 runs uv:\n{calls}"
    );
    assert!(!calls.is_empty());
}

/// An env file's values reach uv's and pip's builds, so the file is part of
/// the service's fingerprint (its stat data): a changed value makes the
/// next sync (and its dry run) run that service's tool and no other, while
/// untouched env files keep the no-op a no-op (no spawn, no write).
#[test]
fn env_file_value_change_resyncs_only_its_service() {
    if !require("uv") {
        return;
    }
    let sb = sandbox(3);
    let m = manifest(3, &[]);
    let m = m
        .replace(
            "[registry.services.s0]\n",
            "[registry.services.s0]\nenv-file = [\"config/s0.env\"]\n",
        )
        .replace(
            "[registry.services.s1]\n",
            "[registry.services.s1]\nenv-file = [\"config/s1.env\"]\n",
        );
    sb.write("hsm.toml", &m);
    sb.write("config/s0.env", "# build switches\nS0_FLAG=on\n");
    sb.write("config/s1.env", "S1_FLAG=on\n");
    let (path, log, fail) = recording_uv(&sb);
    let sync = |args: &[&str]| {
        let mut a = vec!["sync"];
        a.extend_from_slice(args);
        sb.cmd(&a).env("PATH", &path).output().unwrap()
    };
    let out = sync(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(&log).unwrap();

    // Untouched env files: a no-op.
    let before = mtimes(&sb.root);
    let out = sync(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!log.exists(), "uv was called:\n{}", sb.read("uv-calls.log"));
    assert_eq!(before, mtimes(&sb.root), "a no-op sync touched a file");

    // A changed value: the dry run predicts that only s0 syncs.
    sb.write("config/s0.env", "# build switches\nS0_FLAG=off\n");
    let out = sync(&["--dry-run", "--message-format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let synced: Vec<&str> = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "sync")
        .map(|a| a["component"].as_str().unwrap())
        .collect();
    assert_eq!(synced, ["service:s0"], "{doc:#}");
    let _ = std::fs::remove_file(&log);

    // The sync runs uv for s0 alone (failing here, to prove it ran and
    // with what: the rollback keeps the old environment file).
    std::fs::write(&fail, "").unwrap();
    let out = sync(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let calls = sb.read("uv-calls.log");
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(
        calls.starts_with(&format!("{} sync", sb.path("services/s0").display())),
        "{calls}"
    );
    assert!(sb.read(".hsm/env/s0.env").contains("S0_FLAG=on\n"));
    std::fs::remove_file(&fail).unwrap();
    std::fs::remove_file(&log).unwrap();
    let out = sync(&["-v"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("Syncing s0"), "{err}");
    assert!(
        err.contains("Fresh s1") && err.contains("Fresh s2"),
        "{err}"
    );
    assert!(sb.read(".hsm/env/s0.env").contains("S0_FLAG=off\n"));
    std::fs::remove_file(&log).unwrap();
    let out = sync(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!log.exists(), "uv was called:\n{}", sb.read("uv-calls.log"));
}

/// Three services fail at once under `-j 4`: all three are reported, and
/// every file sync had changed is restored.
#[test]
fn parallel_sync_reports_every_failure_and_rolls_back() {
    if !require("uv") {
        return;
    }
    let sb = sandbox(5);
    sb.write("hsm.toml", &manifest(5, &[1, 2, 4]));
    let pps: Vec<_> = (0..5)
        .map(|i| sb.bytes(&format!("services/s{i}/pyproject.toml")))
        .collect();
    let out = sb.run(&["sync", "-j", "4"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("3 services failed to sync: `s1`, `s2`, `s4`"),
        "{err}"
    );
    assert!(err.matches("no-such-package").count() >= 3, "{err}");
    assert!(err.contains("rolled back: restored"), "{err}");
    for (i, pp) in pps.iter().enumerate() {
        assert_eq!(
            &sb.bytes(&format!("services/s{i}/pyproject.toml")),
            pp,
            "s{i}"
        );
        assert!(!sb.exists(&format!("services/s{i}/uv.lock")), "s{i}");
    }
    assert!(!sb.exists("hsm.lock"));
}

/// `-j 1` and `-j 4` do the same work, report it in the same order and
/// write the same bytes; `--message-format json` prints only the document.
#[test]
fn jobs_do_not_change_the_report_or_the_files() {
    if !require("uv") {
        return;
    }
    let mut docs = Vec::new();
    let mut locks = Vec::new();
    for jobs in ["1", "4"] {
        let sb = sandbox(4);
        let out = sb.run(&["sync", "-j", jobs, "--message-format", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(out.stderr.is_empty(), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let actions: Vec<(String, String)> = doc["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["action"].as_str().unwrap().to_string(),
                    a["component"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        docs.push(actions);
        locks.push(
            sb.read("hsm.lock")
                .replace(&sb.root.display().to_string(), "ROOT"),
        );
        for i in 0..4 {
            assert!(sb.exists(&format!("services/s{i}/.venv/pyvenv.cfg")));
        }
    }
    assert_eq!(docs[0], docs[1]);
    assert_eq!(locks[0], locks[1]);
    let syncs: Vec<&str> = docs[0]
        .iter()
        .filter(|(a, _)| a == "sync")
        .map(|(_, c)| c.as_str())
        .collect();
    assert_eq!(
        syncs,
        [
            "service:s0",
            "service:s1",
            "service:s2",
            "service:s3",
            "libraries"
        ]
    );
}

/// Git services without a checkout are cloned concurrently (`-j`), then
/// each is moved into place and checked out at its ref, in plan order; no
/// temporary clone is left behind.
#[test]
fn git_services_clone_in_parallel_and_land_at_their_refs() {
    if !require("uv") || !require("git") {
        return;
    }
    let sb = Sandbox::new();
    let mut m = String::from("[services]\nstandalone = [\"g0\", \"g1\", \"g2\"]\n");
    let mut want = Vec::new();
    for i in 0..3 {
        let (url, shas) = sb.git_remote(&format!("g{i}"), &["v1", "v2"]);
        let tag = if i == 1 { "v1" } else { "v2" };
        want.push(shas[if i == 1 { 0 } else { 1 }].clone());
        m.push_str(&format!(
            "\n[registry.services.g{i}]\nsources.prod = {{ type = \"git\", url = \"{url}\", ref = \"{tag}\" }}\ndeployment-profiles.default = {{ runtime = \"uv\" }}\n"
        ));
    }
    sb.write("hsm.toml", &m);
    let out = sb.sync(&["-j", "3"]);
    let err = stderr(&out);
    for (i, sha) in want.iter().enumerate() {
        assert!(err.contains(&format!("Cloning g{i} (")), "{err}");
        let head = sb.git(&format!("services/g{i}"), &["rev-parse", "HEAD"]);
        assert_eq!(head.trim(), sha, "g{i}");
        assert!(sb.read("hsm.lock").contains(&format!("commit = \"{sha}\"")));
    }
    let leftovers: Vec<String> = std::fs::read_dir(sb.path("services"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Cloning order in the report follows the plan, whatever finished first.
    let order: Vec<usize> = (0..3)
        .map(|i| err.find(&format!("Cloning g{i} (")).unwrap())
        .collect();
    assert!(order[0] < order[1] && order[1] < order[2], "{err}");
}
