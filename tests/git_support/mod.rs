//! Real git servers on 127.0.0.1 for the git transport tests, each started
//! by the test and stopped when dropped: `git http-backend` behind TLS and
//! basic auth (tests/support/git_https_server.py), a counting CONNECT proxy
//! (tests/support/connect_proxy.py) and OpenSSH's sshd with key auth. A
//! [`GitHome`] is the user's own git setup: a `HOME` with its own
//! `.gitconfig`, and none of this machine's overrides (`GIT_SSL_CAINFO`,
//! proxies, `GIT_SSH_COMMAND`, an ssh agent).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sync_support::{git_in, Sandbox};

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Variables of this machine that would make a test pass or fail by
/// accident.
const CLEARED: &[&str] = &[
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "GIT_SSL_NO_VERIFY",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "SSH_AUTH_SOCK",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_PROXY_COMMAND",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// A user's own git setup.
pub struct GitHome {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
}

impl GitHome {
    pub fn new() -> GitHome {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().canonicalize().unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Test\n\temail = test@example.org\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        GitHome { _dir: dir, home }
    }

    /// `git config --global KEY VALUE` in this home.
    pub fn config(&self, key: &str, value: &str) {
        let mut c = Command::new("git");
        self.apply(&mut c);
        run(c.args(["config", "--global", "--add", key, value]));
    }

    pub fn unset(&self, key: &str) {
        let mut c = Command::new("git");
        self.apply(&mut c);
        let _ = c.args(["config", "--global", "--unset-all", key]).output();
    }

    /// Makes `cmd` run as the user of this home.
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for k in CLEARED {
            cmd.env_remove(k);
        }
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            // uv's cache stays where it is: a warm cache, as on a developer's machine.
            .env("UV_CACHE_DIR", uv_cache_dir())
    }
}

fn uv_cache_dir() -> String {
    std::env::var("UV_CACHE_DIR").unwrap_or_else(|_| {
        let o = Command::new("uv").args(["cache", "dir"]).output();
        o.ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| format!("{}/.cache/uv", std::env::var("HOME").unwrap_or_default()))
    })
}

/// A CA made with openssl and a server certificate for 127.0.0.1 signed by it.
pub struct Ca {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        std::fs::create_dir_all(dir).unwrap();
        let p = |f: &str| dir.join(f);
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=hsm test CA"])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")));
        std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("ext.cnf"))
            .arg("-out")
            .arg(p("server.pem")));
        Ca {
            ca: p("ca.pem"),
            cert: p("server.pem"),
            key: p("server.key"),
        }
    }
}

/// A child process killed (by its id) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_file(path: &Path, what: &str, child: &mut Child) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            return s;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `git http-backend` over HTTPS with basic auth, serving `root`'s bare repositories.
pub struct HttpsServer {
    _child: Guard,
    pub port: u16,
    log: PathBuf,
}

impl HttpsServer {
    pub fn start(root: &Path, ca: &Ca, user: &str, password: &str, state: &Path) -> HttpsServer {
        std::fs::create_dir_all(state).unwrap();
        let port_file = state.join("https.port");
        let log = state.join("https.log");
        let mut child = Command::new("python3")
            .arg(support("git_https_server.py"))
            .arg(root)
            .arg(&ca.cert)
            .arg(&ca.key)
            .arg(user)
            .arg(password)
            .arg(&port_file)
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let port = wait_for_file(&port_file, "the https git server", &mut child)
            .trim()
            .parse()
            .unwrap();
        HttpsServer {
            _child: Guard(child),
            port,
            log,
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("https://127.0.0.1:{}/{repo}", self.port)
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

/// A CONNECT proxy that counts the tunnels it opened.
pub struct Proxy {
    _child: Guard,
    pub port: u16,
    count: PathBuf,
}

impl Proxy {
    pub fn start(state: &Path) -> Proxy {
        std::fs::create_dir_all(state).unwrap();
        let port_file = state.join("proxy.port");
        let count = state.join("proxy.tunnels");
        let mut child = Command::new("python3")
            .arg(support("connect_proxy.py"))
            .arg(&port_file)
            .arg(&count)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let port = wait_for_file(&port_file, "the proxy", &mut child)
            .trim()
            .parse()
            .unwrap();
        Proxy {
            _child: Guard(child),
            port,
            count,
        }
    }

    pub fn tunnels(&self) -> usize {
        std::fs::read_to_string(&self.count)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

/// OpenSSH's sshd on 127.0.0.1 with key auth for the current user, and the
/// client side in a [`GitHome`]: a key, an ssh config with a Host alias,
/// a known_hosts file, and `core.sshCommand` pointing ssh at them (OpenSSH
/// reads the passwd home, not `$HOME`).
pub struct Sshd {
    _child: Guard,
    pub port: u16,
    /// The alias in the ssh config.
    pub alias: &'static str,
    pub known_hosts: PathBuf,
    host_pub: String,
}

/// Whether `program` can be started (tools without `--version`: ssh,
/// sshd, openssl). When it cannot: with `CI=true` the test fails,
/// otherwise it prints why and the caller returns early.
pub fn require_program(program: &str, package: &str) -> bool {
    let found = Command::new(program)
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "`{program}` is required by this test (CI=true): install {package} (`.ci/run` does)"
        );
    }
    eprintln!("skipping: `{program}` is not available");
    false
}

/// Whether sshd and the ssh client can be used here; with `CI=true` they must.
pub fn require_sshd() -> bool {
    require_program("/usr/sbin/sshd", "openssh-server")
        && require_program("ssh", "openssh-client")
        && require_program("ssh-keygen", "openssh-client")
}

impl Sshd {
    pub fn start(home: &GitHome) -> Sshd {
        let dir = home.home.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        let keygen = |path: &Path| {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(path));
        };
        keygen(&dir.join("host_key"));
        keygen(&home.home.join("id_test"));
        std::fs::copy(home.home.join("id_test.pub"), dir.join("authorized_keys")).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        std::fs::create_dir_all("/run/sshd").ok();
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "sshd exited: {st}: {}",
                    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "sshd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let known_hosts = home.home.join("known_hosts");
        let user = run(Command::new("id").arg("-un")).trim().to_string();
        let ssh_config = home.home.join("ssh_config");
        std::fs::write(
            &ssh_config,
            format!(
                "Host gitbox\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {h}/id_test\n  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n  BatchMode yes\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n",
                h = home.home.display(),
                kh = known_hosts.display()
            ),
        )
        .unwrap();
        home.config(
            "core.sshCommand",
            &format!("ssh -F {}", ssh_config.display()),
        );
        let s = Sshd {
            _child: Guard(child),
            port,
            alias: "gitbox",
            known_hosts,
            host_pub,
        };
        s.trust_host_key();
        s
    }

    /// known_hosts holds the server's real key.
    pub fn trust_host_key(&self) {
        let key: Vec<&str> = self.host_pub.split_whitespace().take(2).collect();
        std::fs::write(
            &self.known_hosts,
            format!("[127.0.0.1]:{} {}\n", self.port, key.join(" ")),
        )
        .unwrap();
    }

    /// known_hosts holds another key for the server.
    pub fn distrust_host_key(&self, scratch: &Path) {
        let k = scratch.join("other_host_key");
        let _ = std::fs::remove_file(&k);
        let _ = std::fs::remove_file(scratch.join("other_host_key.pub"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&k));
        let other = std::fs::read_to_string(scratch.join("other_host_key.pub")).unwrap();
        let key: Vec<&str> = other.split_whitespace().take(2).collect();
        std::fs::write(
            &self.known_hosts,
            format!("[127.0.0.1]:{} {}\n", self.port, key.join(" ")),
        )
        .unwrap();
    }
}

/// Every file under `root` (but sync's own `.hsm/` and what is inside `.git`
/// directories, where a refused sync may have fetched) and its bytes, for
/// "nothing the user has changed" assertions.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = snapshot_all(root);
    all.retain(|p, _| !p.components().any(|c| c.as_os_str() == ".git"));
    all
}

/// [`snapshot`] including `.git` directories: byte-identical trees.
pub fn snapshot_all(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                if !rel.starts_with(".hsm") {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    out
}

/// A bare repository `remotes/<name>.git` with one commit per tag, each
/// holding `files` (path, text; `{tag}` replaced by the tag) and tagged.
/// Returns the `file://` URL and each tag's commit.
pub fn upstream(
    sb: &Sandbox,
    name: &str,
    tags: &[&str],
    files: &[(&str, &str)],
) -> (String, Vec<String>) {
    let work = format!("remotes/{name}-work");
    std::fs::create_dir_all(sb.path(&work)).unwrap();
    sb.git(&work, &["init", "-q", "-b", "main"]);
    let mut shas = Vec::new();
    for tag in tags {
        for (path, text) in files {
            sb.write(&format!("{work}/{path}"), &text.replace("{tag}", tag));
        }
        sb.git(&work, &["add", "-A"]);
        sb.git(&work, &["commit", "-q", "--allow-empty", "-m", tag]);
        sb.git(&work, &["tag", tag]);
        shas.push(sb.git(&work, &["rev-parse", "HEAD"]).trim().to_string());
    }
    let bare = sb.path(&format!("remotes/{name}.git"));
    git_in(
        &sb.root,
        &["clone", "-q", "--bare", &work, bare.to_str().unwrap()],
    );
    (format!("file://{}", bare.display()), shas)
}

/// A virtual uv project that resolves offline from the sandbox's wheels,
/// for an upstream checked out at `services/<name>`.
pub const UV_PROJECT: &str = "[project]\nname = \"svc\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = []\n\n[tool.uv]\npackage = false\nfind-links = [\"../../wheels\"]\nno-index = true\n";

/// `[registry.services.<name>]` with a git source and the uv runtime.
pub fn git_service(name: &str, url: &str, reference: &str) -> String {
    format!(
        "\n[registry.services.{name}.sources.prod]\ntype = \"git\"\nurl = \"{url}\"\nref = \"{reference}\"\n\n[registry.services.{name}.deployment-profiles.default]\nruntime = \"uv\"\n"
    )
}

/// A manifest selecting `services` (name, url, ref), each a git-sourced uv service.
pub fn manifest(services: &[(&str, &str, &str)]) -> String {
    manifest_of(services, git_service)
}

/// A manifest selecting `services` (name, url, ref), each registered by
/// `entry` (such as [`git_service`]).
pub fn manifest_of(
    services: &[(&str, &str, &str)],
    entry: fn(&str, &str, &str) -> String,
) -> String {
    let names: Vec<String> = services
        .iter()
        .map(|(n, _, _)| format!("\"{n}\""))
        .collect();
    let mut s = format!("[services]\nstandalone = [{}]\n", names.join(", "));
    for (n, u, r) in services {
        s.push_str(&entry(n, u, r));
    }
    s
}
