//! Helpers of the real image tests (tests/image_kube_play.rs,
//! tests/image_node.rs): the tests' podman store with local base images
//! made by tests/support/podman-*-image.sh, podman itself, and `podman
//! kube play` of a file until a port answers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::compose_support::{http_get, missing, podman_as_root, podman_env_with, run_bounded};

pub type Env = Vec<(String, String)>;

/// The tests' podman store (overlay) with the images that `scripts`
/// (in tests/support) create, or `None` (skipped locally, failing under
/// `CI=true`); `tarball`: the cached root filesystem one of them needs,
/// which debootstrap makes when it is not there.
pub fn podman_with_images(scripts: &[&str], tarball: &str) -> Option<Env> {
    if !podman_as_root(&[
        ("podman", "the container engine"),
        ("bash", "runs tests/support/podman-*.sh"),
    ]) {
        return None;
    }
    let cache = std::env::var("HSM_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/cargo-hsm")
        });
    if !cache.join(tarball).is_file() && !Path::new("/usr/sbin/debootstrap").exists() {
        missing("debootstrap is not installed and no cached root filesystem exists (`.ci/run` makes it)");
        return None;
    }
    let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hsm-podman-overlay");
    let env = podman_env_with(&state, "overlay");
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    for script in scripts {
        let out = run_bounded(
            Command::new("bash")
                .arg(support.join(script))
                .envs(env.iter().map(|(k, v)| (k, v))),
            Duration::from_secs(600),
        )
        .expect(script);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(env)
}

pub fn podman(env: &Env, args: &[&str], limit: u64) -> std::process::Output {
    run_bounded(
        Command::new("podman")
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v))),
        Duration::from_secs(limit),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `podman kube down` of the played file, and the removal of its podman
/// secrets, however the test ends.
pub struct Played {
    pub file: PathBuf,
    pub env: Env,
    pub secrets: Vec<String>,
}

impl Drop for Played {
    fn drop(&mut self) {
        let f = self.file.to_string_lossy().into_owned();
        let _ = podman(&self.env, &["kube", "down", &f], 60);
        for s in &self.secrets {
            let _ = podman(&self.env, &["secret", "rm", s], 30);
        }
    }
}

/// `podman kube play` of `file`, then the body of the first 200 answer of
/// GET / on `port` (within 20 s); the pods go when the guard drops.
pub fn play_until_answer(env: &Env, file: &Path, port: u16, what: &str) -> (Played, String) {
    let played = Played {
        file: file.to_path_buf(),
        env: env.clone(),
        secrets: Vec::new(),
    };
    let t = Instant::now();
    let out = podman(env, &["kube", "play", &file.to_string_lossy()], 180);
    assert!(
        out.status.success(),
        "kube play: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..80 {
        if let Ok((200, body)) = http_get(port, "/") {
            eprintln!("kube play until `{what}` answered: {:.1?}", t.elapsed());
            return (played, body);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let pods = podman(env, &["pod", "ps"], 30);
    panic!(
        "{what} did not answer on {port}: {}",
        String::from_utf8_lossy(&pods.stdout)
    )
}

/// The tag of the image `image build` reports building.
pub fn built_reference(err: &str) -> String {
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("Building `"))
        .unwrap_or_else(|| panic!("no Building line in:\n{err}"));
    line.split('`').nth(1).unwrap().to_string()
}
