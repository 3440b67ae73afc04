//! `cargo hsm` against the tools a user would otherwise run, every case
//! and its baseline in one run.
//!
//! ```sh
//! cargo run --release --example bench            # 7 runs per case
//! cargo run --release --example bench -- --quick # 3 runs per case
//! cargo run --release --example bench -- --git   # only the git cases (e), (f)
//! cargo run --release --example bench -- --node  # only the node cases
//! ```
//!
//! Builds synthetic workspaces in a temp dir: N uv services, each installing
//! `alpha` (which needs `gamma`) from a local wheel directory made by
//! `tests/support/make_wheel.py` — no network. Runs each case and its
//! baseline alternately, prints medians and ratios against the named
//! baseline. Needs `python3` and uv (the real binary is used, not a pyenv
//! shim: see the first lines printed). A benchmark, not a test: nothing
//! here fails on a slow machine.
//!
//! The cases (issue 14's goals):
//! - no-op sync of N = 100 and N = 1,000 uv services, the whole command with
//!   its verification; linearity is the ratio of the two;
//! - the same no-op at N = 1,000 against one shared uv workspace holding the
//!   same 1,000 members (`uv sync --all-packages`, nothing to do);
//! - `check` of 100 and 1,000 services;
//! - one service's `pyproject.toml` edited among 100, then sync, against
//!   `uv sync` of that one service alone after the same edit;
//! - cold sync of 20 services (venvs removed, uv cache warm) against the
//!   shell loop of `uv sync`;
//! - `list` and `compose` of 1,000 container services, as commands;
//! - node services (`bench_support/node.rs`, issue 18): a no-op sync of 50
//!   against a loop of `npm ls`, and a cold install of 10 (npm's cache warm)
//!   against a loop of `npm ci`; these fetch from the npm registry once.
//!
//! The git cases (`--git` runs only these) serve generated repositories over
//! `file://` (git's pack protocol through `git-upload-pack`, as for any
//! remote, without network latency): (e) one repository with 2,000 commits
//! and 40 MB of old blobs, cloned at a tag, against `git clone --depth 1
//! --branch TAG`; (f) ten small repositories cloned from a cold start (no
//! checkout, no `hsm.lock`) against cloning them one after another. The
//! goal rows compare cloning with cloning: each git service is a container
//! service built from its checkout (`runtime = "podman"`; sync clones it
//! and writes the compose file, and runs no engine). The same repositories
//! as uv services (sync also creates an empty venv in each checkout) are
//! compared with `git clone` then `uv sync`, one after another, what a user
//! runs for that result. The CPU time of every process on each side is
//! printed: on a loaded machine, wall time follows the share of CPU a side
//! gets.

#[path = "bench_support/node.rs"]
mod node;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 7 };
    let tools = Tools::find();
    println!("machine: {}", machine());
    println!("uv:      {} ({})", tools.uv.display(), tools.uv_version);
    println!("python:  {} (UV_PYTHON, for both sides)", tools.python);
    println!("hsm:     {}", tools.hsm.display());
    println!("runs:    {runs} per side, alternating; medians\n");

    let mut rows = Vec::new();
    let only_node = std::env::args().any(|a| a == "--node");
    if !only_node && !std::env::args().any(|a| a == "--git") {
        let ws100 = uv_workspace(&tools, 100);
        let noop100 = noop_sync(&tools, ws100.path(), runs);
        let check100 = hsm_check(&tools, ws100.path(), runs);
        rows.push(Row::alone("no-op sync, N=100", noop100, "—", true));
        rows.push(Row::alone("check, N=100", check100, "—", true));
        rows.push(edit_one(&tools, ws100.path(), runs));
        drop(ws100);

        let ws1000 = uv_workspace(&tools, 1000);
        let noop1000 = noop_sync(&tools, ws1000.path(), runs);
        rows.push(Row::alone(
            "no-op sync, N=1000",
            noop1000,
            "≤ 50 ms",
            noop1000 <= Duration::from_millis(50),
        ));
        rows.push(Row::versus(
            "no-op sync, N=1000 vs N=100 (linear: 10)",
            noop1000,
            "no-op sync, N=100",
            noop100,
            "ratio ≤ 12",
            12.0,
        ));
        let shared = shared_workspace_noop(&tools, ws1000.path(), runs);
        rows.push(Row::versus(
            "no-op sync, N=1000",
            noop1000,
            "one uv workspace of 1000 members, no-op `uv sync`",
            shared,
            "ratio ≤ 0.5",
            0.5,
        ));
        let check1000 = hsm_check(&tools, ws1000.path(), runs);
        rows.push(Row::alone(
            "check, N=1000",
            check1000,
            "≤ 150 ms",
            check1000 <= Duration::from_millis(150),
        ));
        rows.push(Row::versus(
            "check, N=1000 vs N=100 (linear: 10)",
            check1000,
            "check, N=100",
            check100,
            "ratio ≤ 12",
            12.0,
        ));
        drop(ws1000);

        rows.push(cold_sync(&tools, 20, runs));
        rows.extend(list_compose(&tools, 1000, runs));
    }
    if !only_node {
        rows.extend(long_history_clone(&tools, runs));
        rows.extend(ten_git_services(&tools, runs));
    }
    if !std::env::args().any(|a| a == "--git") {
        if node::available() {
            rows.extend(node::cases(&tools, runs, quick));
        } else {
            println!("node cases left out: `npm` is not on PATH");
        }
    }

    println!(
        "\n| case | cargo hsm | baseline | baseline time | ratio | goal | met |\n|---|---:|---|---:|---:|---|---|"
    );
    for r in &rows {
        println!("{}", r.markdown());
    }
}

struct Row {
    case: String,
    hsm: Duration,
    /// What the ratio is taken against, and its median.
    baseline: Option<(String, Duration)>,
    goal: &'static str,
    met: bool,
}

impl Row {
    fn alone(case: &str, hsm: Duration, goal: &'static str, met: bool) -> Row {
        Row {
            case: case.into(),
            hsm,
            baseline: None,
            goal,
            met,
        }
    }

    /// Met when `hsm / base ≤ max_ratio`.
    fn versus(
        case: &str,
        hsm: Duration,
        base_name: &str,
        base: Duration,
        goal: &'static str,
        max_ratio: f64,
    ) -> Row {
        let r = hsm.as_secs_f64() / base.as_secs_f64();
        println!(
            "{case}: cargo hsm {} | {base_name} {} | ratio {r:.3}",
            ms(hsm),
            ms(base)
        );
        Row {
            case: case.into(),
            hsm,
            baseline: Some((base_name.into(), base)),
            goal,
            met: r <= max_ratio,
        }
    }

    fn markdown(&self) -> String {
        let (name, time, ratio) = match &self.baseline {
            Some((n, b)) => (
                n.clone(),
                ms(*b),
                format!("{:.3}", self.hsm.as_secs_f64() / b.as_secs_f64()),
            ),
            None => ("—".into(), "—".into(), "—".into()),
        };
        format!(
            "| {} | {} | {name} | {time} | {ratio} | {} | {} |",
            self.case,
            ms(self.hsm),
            self.goal,
            match (self.goal, self.met) {
                ("—", _) => "—",
                (_, true) => "yes",
                (_, false) => "no",
            }
        )
    }
}

/// The medians of a case and its baseline, printed side by side.
fn report(case: &str, hsm: Vec<Duration>, base: Vec<Duration>) -> (Duration, Duration) {
    let (h, b) = (median(hsm), median(base));
    println!(
        "{case}: cargo hsm {} | baseline {} | ratio {:.3}",
        ms(h),
        ms(b),
        h.as_secs_f64() / b.as_secs_f64()
    );
    (h, b)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Tools {
    uv: PathBuf,
    uv_version: String,
    python: String,
    hsm: PathBuf,
    /// `PATH` with the real uv's directory first.
    path: String,
}

impl Tools {
    fn find() -> Tools {
        let py = |code: &str| {
            Command::new("python3")
                .args(["-c", code])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let python = py("import sys; print(sys.executable)")
            .expect("bench needs python3 (for the wheels and the venvs)");
        // The real binary: a pyenv shim on PATH adds ~55 ms to every call.
        let uv = py("import uv; print(uv.find_uv_bin())")
            .map(PathBuf::from)
            .or_else(|| which("uv"))
            .expect("bench needs uv (`pip install uv`)");
        let uv_version = Command::new(&uv)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let path = format!(
            "{}:{}",
            uv.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Tools {
            uv,
            uv_version,
            python,
            hsm: hsm_binary(),
            path,
        }
    }

    fn cmd(&self, program: &Path, dir: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(dir)
            .env("PATH", &self.path)
            .env("UV_PYTHON", &self.python)
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("UV_NO_PROGRESS", "1")
            .env_remove("VIRTUAL_ENV")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    fn hsm_sync(&self, root: &Path) -> Command {
        let mut c = self.cmd(&self.hsm, root);
        c.args(["hsm", "sync", "-q", "--manifest-path"])
            .arg(root.join("Cargo.toml"));
        c
    }

    /// `for d in services/*; do uv sync <args> --project "$d"; done`
    fn shell_loop(&self, root: &Path, args: &str) -> Command {
        let mut c = self.cmd(Path::new("sh"), root);
        c.arg("-c").arg(format!(
            "set -e; for d in services/*; do \"{}\" sync {args} --project \"$d\"; done",
            self.uv.display()
        ));
        c
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// The `cargo-hsm` binary beside this example's profile directory, built
/// first if missing.
fn hsm_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("cargo-hsm");
    let release = profile_dir.ends_with("release");
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["build", "--quiet", "--bin", "cargo-hsm"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        c.arg("--release");
    }
    // Always rebuild-if-stale: the binary must match this source.
    let st = c.status().expect("cannot run cargo");
    assert!(st.success(), "cargo build --bin cargo-hsm failed");
    if !release {
        eprintln!("warning: not a release build; run with `--release` for real numbers");
    }
    bin
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cores} cores, {cpu}, {}", std::env::consts::OS)
}

fn run(mut c: Command, what: &str) -> Duration {
    let t = Instant::now();
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A Cargo workspace with `n` uv services and the wheels they install.
fn uv_workspace(tools: &Tools, n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("Cargo.toml"), "[workspace]\n");
    let make_wheel = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_wheel.py");
    for (name, version, requires) in [("alpha", "1.0.0", Some("gamma")), ("gamma", "0.1.0", None)] {
        let mut c = Command::new(&tools.python);
        c.arg(&make_wheel)
            .args([name, version])
            .arg(root.join("wheels"));
        if let Some(r) = requires {
            c.args(["--requires", r]);
        }
        run(c, "make_wheel.py");
    }
    let mut m = String::from("[project]\nname = \"bench\"\n\n[services]\nstandalone = [");
    m.push_str(
        &(0..n)
            .map(|i| format!("\"s{i:03}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    m.push_str("]\n");
    for i in 0..n {
        let name = format!("s{i:03}");
        write(
            &root.join(format!("services/{name}/pyproject.toml")),
            &format!(
                "[project]\nname = \"{name}\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[tool.uv]\npackage = false\nfind-links = [\"../../wheels\"]\nno-index = true\n"
            ),
        );
        m.push_str(&format!(
            "\n[registry.services.{name}]\ndependencies = [\"alpha\"]\nsources.prod = {{ type = \"local\", path = \"services/{name}\" }}\ndeployment-profiles.default = {{ runtime = \"uv\" }}\n"
        ));
    }
    write(&root.join("hsm.toml"), &m);
    dir
}

fn hsm_cmd(tools: &Tools, root: &Path, args: &[&str]) -> Command {
    let mut c = tools.cmd(&tools.hsm, root);
    c.arg("hsm")
        .args(args)
        .arg("-q")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    c
}

fn times(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    median((0..runs).map(|_| f()).collect())
}

/// Nothing changed: the whole `cargo hsm sync`, its verification included.
fn noop_sync(tools: &Tools, root: &Path, runs: usize) -> Duration {
    run(tools.hsm_sync(root), "first cargo hsm sync");
    run(tools.hsm_sync(root), "second cargo hsm sync");
    let d = times(runs, || run(tools.hsm_sync(root), "cargo hsm sync"));
    println!("no-op sync: {}", ms(d));
    d
}

fn hsm_check(tools: &Tools, root: &Path, runs: usize) -> Duration {
    let d = times(runs, || {
        run(hsm_cmd(tools, root, &["check"]), "cargo hsm check")
    });
    println!("check: {}", ms(d));
    d
}

/// The same members as one shared uv workspace (a copy of the services
/// under a root `pyproject.toml` whose `members` glob holds them all),
/// synced once, then timed doing nothing.
fn shared_workspace_noop(tools: &Tools, hsm_root: &Path, runs: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for e in std::fs::read_dir(hsm_root.join("services"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name();
        let text = std::fs::read_to_string(e.path().join("pyproject.toml"))
            .unwrap()
            .replace("find-links = [\"../../wheels\"]\nno-index = true\n", "");
        write(
            &root.join("services").join(&name).join("pyproject.toml"),
            &text,
        );
    }
    copy_dir(&hsm_root.join("wheels"), &root.join("wheels"));
    write(
        &root.join("pyproject.toml"),
        "[project]\nname = \"shared\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[tool.uv]\npackage = false\nfind-links = [\"wheels\"]\nno-index = true\n\n[tool.uv.workspace]\nmembers = [\"services/*\"]\n",
    );
    let uv_sync = || {
        let mut c = tools.cmd(&tools.uv, root);
        c.args(["sync", "--all-packages"]);
        c
    };
    run(uv_sync(), "first uv sync of the shared workspace");
    let d = times(runs, || run(uv_sync(), "uv sync --all-packages"));
    println!(
        "shared uv workspace, no-op `uv sync --all-packages`: {}",
        ms(d)
    );
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// One service's `pyproject.toml` edited among 100 (its version moves, so
/// uv relocks), then `cargo hsm sync`; against `uv sync` of that service
/// alone after the same kind of edit.
fn edit_one(tools: &Tools, root: &Path, runs: usize) -> Row {
    let dir = root.join("services/s050");
    let pp = dir.join("pyproject.toml");
    let original = std::fs::read_to_string(&pp).unwrap();
    let mut flip = 0u32;
    let mut edit = || {
        flip += 1;
        let v = format!("version = \"0.1.{flip}\"");
        std::fs::write(&pp, original.replace("version = \"0.1.0\"", &v)).unwrap();
    };
    let (mut hsm, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        edit();
        hsm.push(run(tools.hsm_sync(root), "cargo hsm sync after an edit"));
        edit();
        let mut c = tools.cmd(&tools.uv, &dir);
        c.arg("sync");
        base.push(run(c, "uv sync of one service"));
    }
    std::fs::write(&pp, &original).unwrap();
    run(tools.hsm_sync(root), "cargo hsm sync (restore)");
    Row::versus(
        "one pyproject edited among 100, then sync",
        median(hsm),
        "`uv sync` of that one service",
        median(base),
        "ratio ≤ 1.3",
        1.3,
    )
}

/// Every service's `.venv` removed, uv's cache warm: `cargo hsm sync`
/// (parallel) vs the loop of `uv sync --locked`.
fn cold_sync(tools: &Tools, n: usize, runs: usize) -> Row {
    let ws = uv_workspace(tools, n);
    let root = ws.path();
    run(
        tools.hsm_sync(root),
        "first cargo hsm sync (warms the cache)",
    );
    let clear = || {
        for e in std::fs::read_dir(root.join("services")).unwrap().flatten() {
            let _ = std::fs::remove_dir_all(e.path().join(".venv"));
        }
    };
    let (mut hsm, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        clear();
        hsm.push(run(tools.hsm_sync(root), "cargo hsm sync"));
        clear();
        base.push(run(tools.shell_loop(root, "--locked"), "uv sync loop"));
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    Row::versus(
        &format!("cold sync, warm uv cache, N={n}, {cores} cores"),
        median(hsm),
        "shell loop of `uv sync --locked`",
        median(base),
        "ratio ≤ 0.6",
        0.6,
    )
}

/// `cargo hsm list` and `cargo hsm compose` of `n` container services,
/// each from its own registry file, as users run them.
fn list_compose(tools: &Tools, n: usize, runs: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("Cargo.toml"), "[workspace]\n");
    let mut m = String::from(
        "[project]\nname = \"bench\"\n\n[registry]\npath = \"hsm-registry\"\n\n[services]\nstandalone = [",
    );
    m.push_str(
        &(0..n)
            .map(|i| format!("\"c{i:04}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    m.push_str("]\n");
    write(&root.join("hsm.toml"), &m);
    for i in 0..n {
        write(
            &root.join(format!("hsm-registry/services/c{i:04}.toml")),
            &format!(
                "env = {{ PORT = \"{}\", NAME = \"c{i:04}\" }}\nsources.prod = {{ type = \"docker-image\", image = \"registry.example/c{i:04}:1.{i}\" }}\ndeployment-profiles.default = {{ runtime = \"docker\" }}\n",
                10000 + i
            ),
        );
    }
    run(
        hsm_cmd(tools, root, &["compose"]),
        "first cargo hsm compose",
    );
    let mut rows = Vec::new();
    for cmd in ["list", "compose"] {
        let d = times(runs.max(5), || run(hsm_cmd(tools, root, &[cmd]), cmd));
        println!("{cmd}, {n} services: {}", ms(d));
        rows.push(Row::alone(
            &format!("`{cmd}`, {n} container services"),
            d,
            "≤ 40 ms",
            d <= Duration::from_millis(40),
        ));
    }
    rows
}

/// A uv project with nothing to install: what a git service needs to sync.
const EMPTY_UV_PROJECT: &str = "[project]\nname = \"svc\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[tool.uv]\npackage = false\n";

/// A bare repository at `dest` from a `git fast-import` stream: `commits`
/// commits, the first `big` of which each add a 2 MB incompressible blob
/// (removed again later, so only history holds them), the last tagged `v1`.
fn generated_repo(dest: &Path, commits: usize, big: usize) {
    use std::io::Write;
    let st = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(dest)
        .status()
        .unwrap();
    assert!(st.success());
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dest)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        };
        for i in 0..commits {
            let msg = format!("commit {i}");
            write!(
                w,
                "commit refs/heads/main\ncommitter Bench <bench@example.org> {} +0000\ndata {}\n{msg}\n",
                1_600_000_000 + i,
                msg.len()
            )
            .unwrap();
            if i == 0 {
                write!(
                    w,
                    "M 100644 inline pyproject.toml\ndata {}\n{EMPTY_UV_PROJECT}\n",
                    EMPTY_UV_PROJECT.len()
                )
                .unwrap();
                write!(w, "M 100644 inline .gitignore\ndata 7\n.venv/\n\n").unwrap();
                let dockerfile = "FROM busybox\nCOPY . /srv\n";
                write!(
                    w,
                    "M 100644 inline Dockerfile\ndata {}\n{dockerfile}\n",
                    dockerfile.len()
                )
                .unwrap();
            }
            if i < big {
                let blob = noise(2 << 20);
                write!(w, "M 100644 inline data/blob{i}.bin\ndata {}\n", blob.len()).unwrap();
                w.write_all(&blob).unwrap();
                w.write_all(b"\n").unwrap();
            } else if i == big {
                w.write_all(b"D data\n").unwrap();
            }
            let text = format!("{i}\n");
            write!(w, "M 100644 inline VERSION\ndata {}\n{text}\n", text.len()).unwrap();
        }
        w.write_all(b"reset refs/tags/v1\nfrom refs/heads/main\n\n")
            .unwrap();
    }
    assert!(child.wait().unwrap().success(), "git fast-import failed");
}

/// A workspace of `services` (name, url) at tag `v1`, each with `runtime`.
fn git_workspace(services: &[(String, String)], runtime: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("Cargo.toml"), "[workspace]\n");
    let names: Vec<String> = services.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let mut m = format!(
        "[project]\nname = \"bench\"\n\n[services]\nstandalone = [{}]\n",
        names.join(", ")
    );
    for (name, url) in services {
        m.push_str(&format!(
            "\n[registry.services.{name}]\nsources.prod = {{ type = \"git\", url = \"{url}\", ref = \"v1\" }}\ndeployment-profiles.default = {{ runtime = \"{runtime}\" }}\n"
        ));
    }
    write(&root.join("hsm.toml"), &m);
    dir
}

/// Back to a cold start: no checkouts, no lock, no fingerprints, no
/// compose file.
fn cold(root: &Path) {
    for p in [
        "services",
        ".hsm",
        "hsm.lock",
        "clones",
        "docker-compose.hsm.yml",
    ] {
        let p = root.join(p);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }
}

/// `git clone --depth 1 --branch v1 URL clones/NAME`, one after another;
/// with `uv`, each followed by `uv sync` in the clone: what a user runs by
/// hand for the same result as `cargo hsm sync` (a checkout and its venv).
fn clone_loop(
    tools: &Tools,
    root: &Path,
    services: &[(String, String)],
    uv: Option<&Path>,
) -> Command {
    let mut script = String::from("set -e; mkdir -p clones; ");
    for (name, url) in services {
        script.push_str(&format!(
            "git clone -q --depth 1 --branch v1 '{url}' clones/{name}; "
        ));
        if let Some(uv) = uv {
            script.push_str(&format!(
                "\"{}\" sync -q --project clones/{name}; ",
                uv.display()
            ));
        }
    }
    let mut c = tools.cmd(Path::new("sh"), root);
    c.arg("-c").arg(script);
    c
}

/// The CPU time (user + system) of every child process reaped so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// [`run`], and the CPU time it cost, with every process it started.
fn run_cpu(c: Command, what: &str) -> (Duration, Duration) {
    let before = children_cpu();
    let wall = run(c, what);
    (wall, children_cpu() - before)
}

/// What one git case measured: medians of wall time.
struct GitCase {
    /// `cargo hsm sync` of container services built from the checkouts.
    hsm: Duration,
    clones: Duration,
    /// `cargo hsm sync` of uv services (a checkout and an empty venv each).
    hsm_uv: Duration,
    clones_and_syncs: Duration,
}

/// From a cold start, alternating: `cargo hsm sync` of `services` as
/// container services, [`clone_loop`], `cargo hsm sync` of them as uv
/// services, and [`clone_loop`] with `uv sync`. Medians of wall time, and
/// of CPU time (printed: on a loaded machine wall time follows the CPU share).
fn cold_git_sync(tools: &Tools, services: &[(String, String)], runs: usize, case: &str) -> GitCase {
    let containers = git_workspace(services, "podman");
    let uv = git_workspace(services, "uv");
    let (c_root, uv_root) = (containers.path(), uv.path());
    run(tools.hsm_sync(uv_root), "first cargo hsm sync (warms uv)");
    let sides = [
        "cargo hsm",
        "git clone loop",
        "cargo hsm (uv)",
        "clone + uv sync loop",
    ];
    let mut wall: [Vec<Duration>; 4] = Default::default();
    let mut cpu: [Vec<Duration>; 4] = Default::default();
    for _ in 0..runs {
        for (i, side) in sides.iter().enumerate() {
            let (root, c) = match i {
                0 => (c_root, tools.hsm_sync(c_root)),
                1 => (c_root, clone_loop(tools, c_root, services, None)),
                2 => (uv_root, tools.hsm_sync(uv_root)),
                _ => (
                    uv_root,
                    clone_loop(tools, uv_root, services, Some(&tools.uv)),
                ),
            };
            cold(root);
            let (w, c) = run_cpu(c, side);
            wall[i].push(w);
            cpu[i].push(c);
        }
    }
    let cpu: Vec<String> = sides
        .iter()
        .zip(cpu)
        .map(|(s, c)| format!("{s} {}", ms(median(c))))
        .collect();
    println!("{case}: CPU (all processes) {}", cpu.join(" | "));
    let [hsm, clones, hsm_uv, both] = wall;
    let (h, b) = report(case, hsm, clones);
    let (hu, bu) = (median(hsm_uv), median(both));
    println!(
        "{case} (uv): cargo hsm {} | clone + uv sync {} | ratio {:.3} (vs the clones alone {:.3})",
        ms(hu),
        ms(bu),
        hu.as_secs_f64() / bu.as_secs_f64(),
        hu.as_secs_f64() / b.as_secs_f64()
    );
    GitCase {
        hsm: h,
        clones: b,
        hsm_uv: hu,
        clones_and_syncs: bu,
    }
}

/// (e) One long-history repository cloned at a tag.
fn long_history_clone(tools: &Tools, runs: usize) -> Vec<Row> {
    let remotes = tempfile::tempdir().unwrap();
    let bare = remotes.path().join("long.git");
    let t = Instant::now();
    generated_repo(&bare, 2000, 20);
    println!(
        "(e) generated 2,000 commits with 40 MB of old blobs in {}",
        ms(t.elapsed())
    );
    let services = vec![("long".to_string(), format!("file://{}", bare.display()))];
    let g = cold_git_sync(tools, &services, runs, "(e) long history at a tag");
    vec![
        Row::versus(
            "(e) clone a 2,000-commit repo with 40 MB of old blobs at a tag (a container service's checkout)",
            g.hsm,
            "`git clone --depth 1 --branch`",
            g.clones,
            "ratio ≤ 1.2",
            1.2,
        ),
        Row::versus(
            "(e) the same as a uv service (checkout + empty venv)",
            g.hsm_uv,
            "`git clone --depth 1 --branch` + `uv sync`",
            g.clones_and_syncs,
            "—",
            f64::INFINITY,
        ),
    ]
}

/// (f) Ten git services from a cold start vs cloning them one after another.
fn ten_git_services(tools: &Tools, runs: usize) -> Vec<Row> {
    let remotes = tempfile::tempdir().unwrap();
    let services: Vec<(String, String)> = (0..10)
        .map(|i| {
            let bare = remotes.path().join(format!("g{i}.git"));
            generated_repo(&bare, 200, 0);
            (format!("g{i}"), format!("file://{}", bare.display()))
        })
        .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let g = cold_git_sync(
        tools,
        &services,
        runs,
        &format!("(f) ten git services, cold, {cores} cores"),
    );
    vec![
        Row::versus(
            "(f) ten git services from a cold start (container services' checkouts)",
            g.hsm,
            "`git clone --depth 1`, one after another",
            g.clones,
            "ratio ≤ 0.6 on 2 cores",
            0.6,
        ),
        Row::versus(
            "(f) the same as uv services (checkouts + ten empty venvs)",
            g.hsm_uv,
            "`git clone --depth 1` + `uv sync`, one after another",
            g.clones_and_syncs,
            "—",
            f64::INFINITY,
        ),
    ]
}
