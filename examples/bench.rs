//! `cargo hsm` against the shell loop a user would otherwise write.
//!
//! ```sh
//! cargo run --release --example bench            # 7 runs per case
//! cargo run --release --example bench -- --quick # 3 runs per case
//! cargo run --release --example bench -- --git   # only the git cases (e), (f)
//! ```
//!
//! Builds synthetic workspaces in a temp dir: N uv services, each installing
//! `alpha` (which needs `gamma`) from a local wheel directory made by
//! `tests/support/make_wheel.py` — no network. Runs each case and its
//! baseline alternately, prints medians and ratios. Needs `python3` and uv
//! (the real binary is used, not a pyenv shim: see the first lines printed).
//! A benchmark, not a test: nothing here fails on a slow machine.
//!
//! The git cases serve generated repositories over `file://` (git's pack
//! protocol through `git-upload-pack`, as for any remote, without network
//! latency): (e) one repository with 2,000 commits and 40 MB of old blobs,
//! cloned at a tag, against `git clone --depth 1 --branch TAG`; (f) ten
//! small repositories cloned from a cold start (no checkout, no `hsm.lock`)
//! against cloning them one after another. Each git service is a uv
//! service with nothing to install, so `cargo hsm sync` also creates ten
//! empty venvs; the baselines run `git clone` alone.

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
    if !std::env::args().any(|a| a == "--git") {
        let ws = uv_workspace(&tools, 100);
        rows.push(noop_sync(&tools, ws.path(), 100, runs));
        rows.push(check(&tools, ws.path(), 100, runs));
        drop(ws);
        rows.push(cold_sync(&tools, 20, runs));
        rows.push(resolve_compose(1000, runs));
    }
    rows.push(long_history_clone(&tools, runs));
    rows.push(ten_git_services(&tools, runs));

    println!(
        "\n| case | cargo hsm | baseline | ratio | goal | met |\n|---|---:|---:|---:|---|---|"
    );
    for r in &rows {
        println!("{}", r.markdown());
    }
}

struct Row {
    case: String,
    hsm: Duration,
    baseline: Option<Duration>,
    goal: &'static str,
    met: bool,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.baseline
            .map(|b| self.hsm.as_secs_f64() / b.as_secs_f64())
    }
    fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.case,
            ms(self.hsm),
            self.baseline.map(ms).unwrap_or_else(|| "—".into()),
            self.ratio()
                .map(|r| format!("{r:.3}"))
                .unwrap_or_else(|| "—".into()),
            self.goal,
            if self.met { "yes" } else { "no" }
        )
    }
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

/// (a) Nothing changed: `cargo hsm sync` vs the loop of `uv sync --locked`.
fn noop_sync(tools: &Tools, root: &Path, n: usize, runs: usize) -> Row {
    run(tools.hsm_sync(root), "first cargo hsm sync");
    let (mut hsm, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        hsm.push(run(tools.hsm_sync(root), "cargo hsm sync"));
        base.push(run(tools.shell_loop(root, "--locked"), "uv sync loop"));
    }
    let (h, b) = report(&format!("(a) no-op sync, N={n}"), hsm, base);
    Row {
        case: format!("(a) no-op sync, N={n}"),
        hsm: h,
        baseline: Some(b),
        goal: "ratio ≤ 0.05 and < 50 ms",
        met: h.as_secs_f64() / b.as_secs_f64() <= 0.05 && h < Duration::from_millis(50),
    }
}

/// (c) `cargo hsm check` vs the loop of `uv sync --locked --check`, on
/// the synced workspace of (a).
fn check(tools: &Tools, root: &Path, n: usize, runs: usize) -> Row {
    let hsm_check = || {
        let mut c = tools.cmd(&tools.hsm, root);
        c.args(["hsm", "check", "-q", "--manifest-path"])
            .arg(root.join("Cargo.toml"));
        c
    };
    let (mut hsm, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        hsm.push(run(hsm_check(), "cargo hsm check"));
        base.push(run(
            tools.shell_loop(root, "--locked --check"),
            "uv sync --check loop",
        ));
    }
    let (h, b) = report(&format!("(c) check, N={n}"), hsm, base);
    Row {
        case: format!("(c) `cargo hsm check`, N={n}"),
        hsm: h,
        baseline: Some(b),
        goal: "ratio ≤ 0.2",
        met: h.as_secs_f64() / b.as_secs_f64() <= 0.2,
    }
}

/// (b) Every service's `.venv` removed, uv's cache warm: `cargo hsm sync`
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
    let (h, b) = report(
        &format!("(b) cold sync, warm cache, N={n}, {cores} cores"),
        hsm,
        base,
    );
    Row {
        case: format!("(b) cold sync, warm uv cache, N={n}"),
        hsm: h,
        baseline: Some(b),
        goal: "ratio ≤ 0.7 on 2 cores",
        met: h.as_secs_f64() / b.as_secs_f64() <= 0.7,
    }
}

/// (d) Load + resolve + render the compose file for `n` container
/// services, each from its own registry file, in-process.
fn resolve_compose(n: usize, runs: usize) -> Row {
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
    let root = camino::Utf8Path::from_path(root).unwrap();
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..runs.max(5) {
        let t = Instant::now();
        let (_, plan) = cargo_hsm::plan(root).expect("the bench manifest resolves");
        let yaml = cargo_hsm::compose::render(&plan).expect("container services");
        times.push(t.elapsed());
        size = yaml.len();
    }
    let h = median(times);
    println!(
        "(d) resolve + compose, {n} services: {} ({size} bytes of YAML)",
        ms(h)
    );
    Row {
        case: format!("(d) load + resolve + compose, {n} services, in-process"),
        hsm: h,
        baseline: None,
        goal: "< 100 ms",
        met: h < Duration::from_millis(100),
    }
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

fn git_workspace(services: &[(String, String)]) -> tempfile::TempDir {
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
            "\n[registry.services.{name}]\nsources.prod = {{ type = \"git\", url = \"{url}\", ref = \"v1\" }}\ndeployment-profiles.default = {{ runtime = \"uv\" }}\n"
        ));
    }
    write(&root.join("hsm.toml"), &m);
    dir
}

/// Back to a cold start: no checkouts, no lock, no fingerprints.
fn cold(root: &Path) {
    for p in ["services", ".hsm", "hsm.lock", "clones"] {
        let p = root.join(p);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }
}

/// `git clone --depth 1 --branch v1 URL clones/NAME`, one after another.
fn clone_loop(tools: &Tools, root: &Path, services: &[(String, String)]) -> Command {
    let mut script = String::from("set -e; mkdir -p clones; ");
    for (name, url) in services {
        script.push_str(&format!(
            "git clone -q --depth 1 --branch v1 '{url}' clones/{name}; "
        ));
    }
    let mut c = tools.cmd(Path::new("sh"), root);
    c.arg("-c").arg(script);
    c
}

/// `cargo hsm sync` of `services` from a cold start vs [`clone_loop`],
/// alternating; medians.
fn cold_git_sync(
    tools: &Tools,
    services: &[(String, String)],
    runs: usize,
    case: &str,
) -> (Duration, Duration) {
    let ws = git_workspace(services);
    let root = ws.path();
    run(tools.hsm_sync(root), "first cargo hsm sync (warms uv)");
    let (mut hsm, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        cold(root);
        hsm.push(run(tools.hsm_sync(root), "cargo hsm sync"));
        cold(root);
        base.push(run(clone_loop(tools, root, services), "git clone loop"));
    }
    report(case, hsm, base)
}

/// (e) One long-history repository cloned at a tag.
fn long_history_clone(tools: &Tools, runs: usize) -> Row {
    let remotes = tempfile::tempdir().unwrap();
    let bare = remotes.path().join("long.git");
    let t = Instant::now();
    generated_repo(&bare, 2000, 20);
    println!(
        "(e) generated 2,000 commits with 40 MB of old blobs in {}",
        ms(t.elapsed())
    );
    let services = vec![("long".to_string(), format!("file://{}", bare.display()))];
    let (h, b) = cold_git_sync(tools, &services, runs, "(e) long history at a tag");
    Row {
        case: "(e) clone a 2,000-commit repo with 40 MB of old blobs at a tag (+ its empty venv) vs `git clone --depth 1 --branch`".into(),
        hsm: h,
        baseline: Some(b),
        goal: "ratio ≤ 1.2",
        met: h.as_secs_f64() / b.as_secs_f64() <= 1.2,
    }
}

/// (f) Ten git services from a cold start vs cloning them one after another.
fn ten_git_services(tools: &Tools, runs: usize) -> Row {
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
    let (h, b) = cold_git_sync(
        tools,
        &services,
        runs,
        &format!("(f) ten git services, cold, {cores} cores"),
    );
    Row {
        case: "(f) ten git services from a cold start (+ ten empty venvs) vs `git clone --depth 1` one after another".into(),
        hsm: h,
        baseline: Some(b),
        goal: "ratio ≤ 0.6 on 2 cores",
        met: h.as_secs_f64() / b.as_secs_f64() <= 0.6,
    }
}
