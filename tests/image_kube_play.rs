//! `cargo hsm image build` and `cargo hsm export kubernetes --host-ports`,
//! run for real: a uv service's image is built by podman from its lock on
//! a local Debian base image (tests/support/podman-python-image.sh:
//! debootstrap + `podman import`, cached between runs), and a busybox
//! httpd is built from its own Dockerfile, whose build step reads a build
//! secret. The exported `_play.yaml` runs under `podman kube play`: the
//! service answers on its port, reaches the httpd through the discovery
//! variables, and both get their `${VAR}` values from their Secrets
//! (podman secrets). No secret value is in an image layer, its history or
//! its config, nor in an exported file. `podman kube down` removes it all.
//!
//! The podman store is the tests' own (tests/support/podman-env.sh) with
//! the overlay driver. The venv image is behind `#[ignore]`:
//! `cargo test --test image_kube_play -- --ignored`.

mod compose_support;
mod image_support;
mod sync_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use compose_support::{free_port, http_get, missing, run_bounded};
use image_support::{podman, podman_with_images, Env, Played};
use sync_support::{stderr, Sandbox};

/// Standard base64, for the podman secrets of local play.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `needle` is anywhere in the file `path` (`grep -F`: fast on
/// a 200 MB image archive, where a debug-built scan is not).
fn file_contains(path: &Path, needle: &str) -> bool {
    let out = Command::new("grep")
        .args(["-qF", "--", needle])
        .arg(path)
        .status()
        .unwrap();
    assert!(out.code() != Some(2), "grep failed on {}", path.display());
    out.success()
}

/// The tests' podman store with the busybox and python base images, or
/// `None` (skipped locally, failing under `CI=true`).
fn podman_ready() -> Option<(Env, std::sync::MutexGuard<'static, ()>)> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let env = podman_with_images(
        &["podman-busybox-image.sh", "podman-python-image.sh"],
        "debian-bookworm-python3.tar",
    )?;
    Some((env, one))
}

/// `podman secret create NAME -` with the value podman 4.3's kube play
/// reads for a `secretKeyRef`: a JSON map of base64 values (what
/// `kubectl create secret generic NAME --from-literal=K=V --dry-run=client
/// -o jsonpath='{.data}'` prints, as docs/deploying.md shows).
fn podman_secret(env: &Env, name: &str, key: &str, value: &str) {
    let _ = podman(env, &["secret", "rm", name], 30);
    let json = format!("{{\"{key}\":\"{}\"}}", base64(value.as_bytes()));
    let mut child = Command::new("podman")
        .args(["secret", "create", name, "-"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "podman secret create {name}"
    );
}

const API: &str = r#""""Answers GET / with its greeting and what the web service says."""
import http.server
import os
import urllib.request


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = os.environ["WEB_URL"] + "/"
        upstream = urllib.request.urlopen(url, timeout=5).read().decode().strip()
        body = f"{os.environ['GREETING']} as {os.getuid()} in {os.getcwd()}; token {os.environ['API_TOKEN']}; {url} says: {upstream}\n"
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ["API_PORT"])
http.server.ThreadingHTTPServer((os.environ["HSM_BIND_HOST"], port), Handler).serve_forever()
"#;

fn manifest(project: &str, web_port: u16, api_port: u16, runtime: &str) -> String {
    format!(
        r#"[project]
name = "{project}"
container-engine = "podman"

[services]
standalone = ["web", "api"]

[registry.services.web]
ports = ["{web_port}:8080"]
url-scheme = "http"
env = {{ WEB_TOKEN = "${{HSM_PLAY_WEB_TOKEN}}" }}
sources.prod = {{ type = "local", path = "web" }}
deployment-profiles.default = {{ runtime = "podman", command = ["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"] }}

[registry.services.api]
ports = ["{api_port}"]
depends-on = ["web"]
healthcheck = {{ http = "/" }}
env = {{ GREETING = "hello from api", API_PORT = "{api_port}", API_TOKEN = "${{HSM_PLAY_API_TOKEN}}" }}
sources.prod = {{ type = "local", path = "api" }}

[registry.services.api.deployment-profiles.default]
runtime = "{runtime}"
command = ["python", "-m", "api"]
base-image = "localhost/hsm-python:3.11"
wait-image = "localhost/hsm-busybox:latest"
"#
    )
}

/// The images `image build` reports building, by service
/// (`Building `REF` (SERVICE)`).
fn built_references(err: &str) -> std::collections::BTreeMap<String, String> {
    let refs: std::collections::BTreeMap<String, String> = err
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Building `"))
        .map(|l| {
            let (r, rest) = l.split_once('`').unwrap();
            let svc = rest.trim().trim_start_matches('(').trim_end_matches(')');
            (svc.to_string(), r.to_string())
        })
        .collect();
    assert!(!refs.is_empty(), "no Building line in:\n{err}");
    refs
}

fn build_and_play(runtime: &str) {
    let Some((env, _one)) = podman_ready() else {
        return;
    };
    let (web_port, api_port) = (free_port(), free_port());
    let project = format!("play{}{runtime}", std::process::id());
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write("hsm.toml", &manifest(&project, web_port, api_port, runtime));
    sb.write("api/api.py", API);
    // The httpd's build step reads its build secret; only a hash of it
    // lands in the image. The engine's cache does not key on a secret's
    // value (nor does the tag), so the label makes this run's step run.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    sb.write(
        "web/Dockerfile",
        &format!("FROM localhost/hsm-busybox:latest\nLABEL hsm-test-run={nanos}\nRUN --mount=type=secret,id=WEB_TOKEN sha256sum /run/secrets/WEB_TOKEN | cut -c1-64 > /www/token.sha256\n"),
    );
    let api_token = format!("api-token-{}-{nanos}", std::process::id());
    let web_token = format!("web token {}/{nanos}", std::process::id());
    match runtime {
        "uv" => sb.write(
            "api/pyproject.toml",
            "[project]\nname = \"api\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = []\n",
        ),
        _ => sb.write("api/requirements.txt", "# nothing pinned: the standard library is enough\n"),
    }
    let with_env = |args: &[&str]| {
        let mut c = sb.cmd(args);
        c.envs(env.iter().map(|(k, v)| (k, v)))
            .env("HSM_PLAY_API_TOKEN", &api_token)
            .env("HSM_PLAY_WEB_TOKEN", &web_token);
        run_bounded(&mut c, Duration::from_secs(600)).unwrap()
    };
    let out = with_env(&["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The real build, then the same again: a cache hit with the same tag.
    let t = Instant::now();
    let out = with_env(&["image", "build"]);
    let first = t.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let references = built_references(&stderr(&out));
    let reference = references["api"].clone();
    let web_ref = references["web"].clone();
    assert!(
        reference.starts_with(&format!("localhost/{project}/api:")),
        "{reference}"
    );
    for r in [&reference, &web_ref] {
        assert!(podman(&env, &["image", "exists", r], 30).status.success());
    }
    let dockerfile = sb.read(".hsm/images/api/Dockerfile");
    assert!(dockerfile.contains("USER 10001:10001"), "{dockerfile}");
    assert!(dockerfile.contains("ARG GREETING"), "{dockerfile}");
    assert!(
        dockerfile.contains("--mount=type=secret,id=API_TOKEN"),
        "{dockerfile}"
    );
    let t = Instant::now();
    let out = with_env(&["image", "build"]);
    let again = t.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(built_references(&stderr(&out)), references);
    eprintln!(
        "image build of `api` ({runtime}) and `web`: {first:.1?}; again (cache hit): {again:.1?}"
    );
    // Build arguments live in the build stage only; secret values are in
    // no layer, no history and no config of either image.
    let saved = sb.path("saved.tar");
    for r in [&reference, &web_ref] {
        let history = podman(&env, &["history", "--no-trunc", r], 30);
        let inspect = podman(&env, &["image", "inspect", r], 30);
        for o in [&history, &inspect] {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success());
            assert!(!text.contains("hello from api"), "{r}: {text}");
            assert!(
                !text.contains(&api_token) && !text.contains(&web_token),
                "{r}: {text}"
            );
        }
        let _ = std::fs::remove_file(&saved);
        let out = podman(&env, &["save", "-o", &saved.to_string_lossy(), r], 120);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::metadata(&saved).unwrap().len() > 1_000_000);
        for token in [&api_token, &web_token] {
            assert!(
                !file_contains(&saved, token),
                "{token} is in a layer of {r}"
            );
        }
        if r == &web_ref {
            // The control: what the build step wrote is found.
            assert!(file_contains(&saved, &sha256_hex(web_token.as_bytes())));
        }
    }
    let _ = std::fs::remove_file(&saved);

    // The manifests for local play: `_play.yaml`, dependencies first
    // (kube play runs pods in file order and waits for their init
    // containers).
    let out = with_env(&["export", "kubernetes", "--host-ports", "--out", "k8s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let play = sb.path("k8s/_play.yaml");
    let played_text = sb.read("k8s/_play.yaml");
    assert!(played_text.contains(&format!("image: {reference}")));
    assert!(
        played_text.find("name: web-env").unwrap() < played_text.find("name: api-env").unwrap()
    );
    assert!(
        played_text.contains("| podman secret create api-env -"),
        "{played_text}"
    );
    for f in ["_play.yaml", "api.yaml", "web.yaml"] {
        let text = sb.read(&format!("k8s/{f}"));
        assert!(
            !text.contains(&api_token) && !text.contains(&web_token),
            "{f}"
        );
    }
    // The Secrets of local play: podman secrets, as the header says.
    podman_secret(&env, "api-env", "API_TOKEN", &api_token);
    podman_secret(&env, "web-env", "WEB_TOKEN", &web_token);
    let played = Played {
        file: play.clone(),
        env: env.clone(),
        secrets: vec!["api-env".into(), "web-env".into()],
    };
    let t = Instant::now();
    let out = podman(&env, &["kube", "play", &play.to_string_lossy()], 180);
    assert!(
        out.status.success(),
        "kube play: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut got = None;
    for _ in 0..80 {
        if let Ok((200, body)) = http_get(api_port, "/") {
            got = Some(body);
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("kube play until `api` answered: {:.1?}", t.elapsed());
    let body = got.unwrap_or_else(|| {
        let logs = podman(&env, &["pod", "ps"], 30);
        panic!(
            "api did not answer on {api_port}: {}",
            String::from_utf8_lossy(&logs.stdout)
        )
    });
    assert_eq!(
        body.trim(),
        format!("hello from api as 10001 in /app; token {api_token}; http://host.containers.internal:{web_port}/ says: hsm-busybox ok")
    );
    // The httpd's build step read its secret: the hash it wrote is the
    // value's; and the running container has the value from its Secret.
    let (status, hash) = http_get(web_port, "/token.sha256").unwrap();
    assert_eq!(
        (status, hash.trim()),
        (200, sha256_hex(web_token.as_bytes()).as_str())
    );
    let out = podman(&env, &["exec", "web-pod-0-web", "env"], 30);
    let web_env = String::from_utf8_lossy(&out.stdout);
    assert!(
        web_env
            .lines()
            .any(|l| l == format!("WEB_TOKEN={web_token}")),
        "{web_env}"
    );

    drop(played);
    let pods = podman(&env, &["pod", "ps", "-q"], 30);
    assert_eq!(
        String::from_utf8_lossy(&pods.stdout).trim(),
        "",
        "pods left after kube down"
    );
    assert!(http_get(api_port, "/").is_err());
}

#[test]
fn a_uv_service_image_runs_under_kube_play_and_reaches_a_container() {
    build_and_play("uv");
}

#[test]
#[ignore = "a second real build and play (about 40 s): cargo test --test image_kube_play -- --ignored"]
fn a_venv_service_image_runs_under_kube_play() {
    build_and_play("venv");
}

/// A `docker-registry serve` (distribution 2.8, Debian's `docker-registry`)
/// of the test's own: TLS with a test CA, htpasswd auth, storage in a temp
/// dir; killed when dropped.
struct Registry {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const REGISTRY: &str = "/usr/bin/docker-registry";

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A CA and a server certificate for 127.0.0.1; a bcrypt htpasswd
        // (the registry takes no other hash).
        sh(
            d,
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hsm-test-ca -keyout ca.key -out ca.crt 2>/dev/null
             openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout srv.key -out srv.csr 2>/dev/null
             printf 'subjectAltName=IP:127.0.0.1\n' > ext
             openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out srv.crt 2>/dev/null
             python3 -W ignore -c \"import crypt; print('hsm:' + crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))\" > htpasswd",
        );
        let port = free_port();
        std::fs::write(
            d.join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {0}/data\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: hsm-test\n  tls:\n    certificate: {0}/srv.crt\n    key: {0}/srv.key\nauth:\n  htpasswd:\n    realm: hsm-test\n    path: {0}/htpasswd\n",
                d.display()
            ),
        )
        .unwrap();
        let child = Command::new(REGISTRY)
            .args(["serve", &d.join("config.yml").to_string_lossy()])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(d.join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let r = Registry { child, port, dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the registry did not listen: {}",
            std::fs::read_to_string(r.dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// GET `path` of the registry's HTTP API, authenticated.
    fn get(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "10", "-u", "hsm:s3cret", "--cacert"])
            .arg(self.dir.path().join("ca.crt"))
            .arg(format!("https://127.0.0.1:{}{path}", self.port))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// `cargo hsm image build --push` to a real registry (TLS and htpasswd):
/// without a login the push fails, naming the service, the registry and
/// `podman login`; after `podman login` (the test's own auth file,
/// `REGISTRY_AUTH_FILE`) it arrives, under the deterministic tag.
#[test]
fn push_goes_to_a_real_registry_through_the_engines_login() {
    if !Path::new(REGISTRY).exists() {
        missing("docker-registry is not installed (`.ci/run` installs it: `apt-get install docker-registry`)");
        return;
    }
    let Some((mut env, _one)) = podman_ready() else {
        return;
    };
    let reg = Registry::start();
    let host = format!("127.0.0.1:{}", reg.port);
    // podman trusts the test CA through Go's `SSL_CERT_FILE`, on top of
    // the host's bundle; credentials go to the test's own auth file.
    let bundle = reg.dir.path().join("bundle.pem");
    let mut pem = std::env::var("SSL_CERT_FILE")
        .ok()
        .and_then(|f| std::fs::read(f).ok())
        .unwrap_or_else(|| std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default());
    pem.extend(std::fs::read(reg.dir.path().join("ca.crt")).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let auth = reg.dir.path().join("auth.json");
    std::fs::write(&auth, "{}\n").unwrap();
    env.push((
        "SSL_CERT_FILE".into(),
        bundle.to_string_lossy().into_owned(),
    ));
    env.push((
        "REGISTRY_AUTH_FILE".into(),
        auth.to_string_lossy().into_owned(),
    ));

    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write(
        "hsm.toml",
        &format!(
            "[project]\nname = \"pushed\"\ncontainer-engine = \"podman\"\n[services]\nstandalone = [\"web\"]\n[registry.services.web]\nsources.prod = {{ type = \"local\", path = \"web\" }}\ndeployment-profiles.default = {{ runtime = \"podman\", image-repository = \"{host}/team\" }}\n"
        ),
    );
    sb.write(
        "web/Dockerfile",
        "FROM localhost/hsm-busybox:latest\nRUN echo pushed > /www/index.html\n",
    );
    let run = |args: &[&str]| {
        let mut c = sb.cmd(args);
        c.envs(env.iter().map(|(k, v)| (k, v)));
        run_bounded(&mut c, Duration::from_secs(300)).unwrap()
    };

    // No login yet: the registry refuses, and the error says what to run.
    let out = run(&["image", "build", "--push"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let reference = built_references(&err)["web"].clone();
    assert!(
        err.contains(&format!(
            "error: the push of service `web`'s image `{reference}` to registry `{host}` failed"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("`podman login {host}`")), "{err}");
    // The engine's own words are shown too.
    assert!(err.contains("authentication required"), "{err}");
    assert_eq!(
        reg.get("/v2/_catalog")["repositories"],
        serde_json::json!([])
    );

    // The engine's own login, then the push arrives under its tag.
    let mut login = Command::new("podman");
    login
        .args(["login", "-u", "hsm", "--password-stdin", &host])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = login.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    }
    assert!(child.wait().unwrap().success(), "podman login");
    let t = Instant::now();
    let out = run(&["image", "build", "--push", "--tag", "v1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!("image build --push (cache hit + push): {:.1?}", t.elapsed());
    let err = stderr(&out);
    assert_eq!(built_references(&err)["web"], reference);
    assert!(err.contains(&format!("Pushed `{reference}`")), "{err}");
    let (name, tag) = reference
        .strip_prefix(&format!("{host}/"))
        .unwrap()
        .rsplit_once(':')
        .unwrap();
    assert_eq!(name, "team/web");
    assert_eq!(tag.len(), 16, "{tag}");
    assert_eq!(
        reg.get("/v2/_catalog")["repositories"],
        serde_json::json!(["team/web"])
    );
    let mut tags: Vec<String> = reg.get(&format!("/v2/{name}/tags/list"))["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, [tag.to_string(), "v1".to_string()]);
    for r in [reference.clone(), format!("{host}/{name}:v1")] {
        let _ = podman(&env, &["rmi", &r], 30);
    }
}

/// A git-sourced venv service's image installs what sync pinned: sync
/// pins `six` from PyPI in `hsm.locks/api/requirements.txt`; with the pin
/// moved to an older release, the image has that release, so the pins are
/// pip's constraints in the image build.
#[test]
#[ignore = "a real venv image build with PyPI downloads (about 40 s): cargo test --test image_kube_play -- --ignored"]
fn a_venv_image_installs_the_pinned_versions() {
    let Some((env, _one)) = podman_ready() else {
        return;
    };
    let sb = Sandbox::empty();
    let work = sb.path("remotes/api-work");
    std::fs::create_dir_all(&work).unwrap();
    sync_support::git_in(&work, &["init", "-q", "-b", "main"]);
    sb.write("remotes/api-work/requirements.txt", "six\n");
    sb.write(
        "remotes/api-work/api.py",
        "import six\nprint(six.__version__)\n",
    );
    sync_support::git_in(&work, &["add", "-A"]);
    sync_support::git_in(&work, &["commit", "-q", "-m", "v1"]);
    sync_support::git_in(&work, &["tag", "v1"]);
    let bare = sb.path("remotes/api.git");
    sync_support::git_in(
        &sb.root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    );
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write(
        "hsm.toml",
        &format!(
            "[project]\nname = \"pins{}\"\ncontainer-engine = \"podman\"\n[services]\nstandalone = [\"api\"]\n[registry.services.api]\nsources.prod = {{ type = \"git\", url = \"file://{}\", ref = \"v1\" }}\n[registry.services.api.deployment-profiles.default]\nruntime = \"venv\"\ncommand = [\"python\", \"api.py\"]\nbase-image = \"localhost/hsm-python:3.11\"\n",
            std::process::id(),
            bare.display()
        ),
    );
    let run = |args: &[&str]| {
        let mut c = sb.cmd(args);
        c.envs(env.iter().map(|(k, v)| (k, v)));
        run_bounded(&mut c, Duration::from_secs(600)).unwrap()
    };
    let out = run(&["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pins = sb.read("hsm.locks/api/requirements.txt");
    let pinned = pins
        .lines()
        .find(|l| l.starts_with("six=="))
        .unwrap_or_else(|| panic!("no pin of six:\n{pins}"));
    assert_ne!(pinned, "six==1.16.0", "PyPI's newest six is 1.16.0 again?");
    sb.write(
        "hsm.locks/api/requirements.txt",
        &pins.replace(pinned, "six==1.16.0"),
    );
    let t = Instant::now();
    let out = run(&["image", "build"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!("venv image with pins: {:.1?}", t.elapsed());
    let reference = built_references(&stderr(&out))["api"].clone();
    let dockerfile = sb.read(".hsm/images/api/Dockerfile");
    assert!(
        dockerfile.contains("-c .hsm-constraints.txt -r requirements.txt"),
        "{dockerfile}"
    );
    let out = podman(&env, &["run", "--rm", "--network=none", &reference], 120);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.16.0");
    let _ = podman(&env, &["rmi", &reference], 30);
}
