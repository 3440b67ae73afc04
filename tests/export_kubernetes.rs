//! `cargo hsm export kubernetes` on the bundled example (after a real,
//! offline `cargo hsm sync`, which locks its uv service): snapshots of
//! every file (snapbox; the content-hash tags of built images redacted),
//! schema validation with `kubernetes-validate --strict` against pinned
//! Kubernetes 1.31 schemas, byte-identical output, `--check`, and the
//! refusals. Update the snapshots with
//! `SNAPSHOTS=overwrite cargo test --test export_kubernetes`.

mod kube_support;
mod sync_support;

use std::path::{Path, PathBuf};

use kube_support::{validate, validator};
use snapbox::Data;
use sync_support::{copy_example, require, stderr, Sandbox};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// `localhost/rag-stack/<service>:<16 hex>` → `…:[TAG]`.
fn redact_tags(text: &str) -> String {
    text.lines()
        .map(|l| match l.rsplit_once(':') {
            Some((head, tag))
                if head.contains("image: localhost/rag-stack/")
                    && tag.len() == 16
                    && tag.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                format!("{head}:[TAG]")
            }
            _ => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn the_example_exports_valid_deterministic_manifests() {
    if !require("uv") || !require("venv") || !validator() {
        return;
    }
    let sb = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rag-stack");
    copy_example(&example, &sb.root, true);
    sb.sync(&["--offline"]);

    let out = sb.run(&["export", "kubernetes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = sb.path("deploy/kubernetes");
    let files = yaml_files(&dir);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "_volumes.yaml",
            "embedder.yaml",
            "gateway.yaml",
            "gpu-worker.yaml",
            "llm-api.yaml",
            "postgres.yaml",
            "qdrant.yaml",
            "redis.yaml",
            "reranker.yaml"
        ]
    );
    validate(&files).unwrap_or_else(|e| panic!("kubernetes-validate --strict:\n{e}"));

    // The snapshots.
    let snaps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/export-kubernetes");
    let assert = snapbox::Assert::new().action_env(snapbox::assert::DEFAULT_ACTION_ENV);
    let first: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    for (f, n) in files.iter().zip(&names) {
        let text = std::fs::read_to_string(f).unwrap();
        assert.eq(
            Data::from(redact_tags(&text)),
            Data::read_from(&snaps.join(n), None),
        );
    }
    // The values of `${VAR}` and env files are never written.
    let pg = sb.read("deploy/kubernetes/postgres.yaml");
    assert!(pg.contains("secretKeyRef"), "{pg}");
    // `${PG_PASSWORD}` only in the comment that shows how to create the
    // Secret from the shell, never as an object's value.
    assert!(
        !pg.lines()
            .any(|l| !l.starts_with('#') && l.contains("${PG_PASSWORD}")),
        "{pg}"
    );
    let env_file = sb.read("config/postgres.env");
    for line in env_file
        .lines()
        .filter(|l| l.contains('=') && !l.starts_with('#'))
    {
        let value = line.split_once('=').unwrap().1;
        assert!(
            !pg.contains(&format!(": {value}\n")),
            "{value} leaked into:\n{pg}"
        );
    }

    // Again: byte-identical, nothing rewritten; `--check` agrees.
    let out = sb.run(&["export", "kubernetes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Fresh `deploy/kubernetes` (9 files)"),
        "{}",
        stderr(&out)
    );
    let again: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(first, again);
    let out = sb.run(&["export", "kubernetes", "--check"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A change of the uv service's source changes its image tag, so the
    // files on disk are stale: `--check` exits 1 and shows the line.
    sb.write("components/embedder/src/embedder/extra.py", "X = 1\n");
    let out = sb.run(&["export", "kubernetes", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`deploy/kubernetes/embedder.yaml` differs"),
        "{err}"
    );
    assert!(
        err.contains("+          image: localhost/rag-stack/embedder:"),
        "{err}"
    );
    assert!(!err.contains("gateway.yaml"), "{err}");

    // Another namespace: every object carries it, DNS names follow.
    let out = sb.run(&[
        "export",
        "kubernetes",
        "--namespace",
        "rag",
        "--out",
        "k8s-rag",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gw = sb.read("k8s-rag/gateway.yaml");
    assert!(gw.contains("  namespace: rag\n"), "{gw}");
    assert!(
        gw.contains("EMBEDDER_URL: http://embedder.rag.svc:8081"),
        "{gw}"
    );
    validate(&yaml_files(&sb.path("k8s-rag"))).unwrap();

    // Local play: host ports, and discovery through the host gateway.
    let out = sb.run(&["export", "kubernetes", "--host-ports", "--out", "k8s-play"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gw = sb.read("k8s-play/gateway.yaml");
    assert!(gw.contains("hostPort: 18080"), "{gw}");
    // podman 4.3 races the removal of a finished "once" init container.
    assert!(
        gw.contains("io.podman.annotations.init.container.type: always"),
        "{gw}"
    );
    assert!(!sb
        .read("deploy/kubernetes/gateway.yaml")
        .contains("io.podman"));
    assert!(
        gw.contains("EMBEDDER_URL: http://host.containers.internal:8081"),
        "{gw}"
    );
    // One file for `podman kube play`, every object, dependencies first:
    // the PVCs, then each service after the ones it depends on.
    let play = sb.read("k8s-play/_play.yaml");
    assert!(!sb.exists("deploy/kubernetes/_play.yaml"));
    let deployments: Vec<&str> = play
        .split("\n---\n")
        .filter(|d| d.contains("kind: Deployment"))
        .map(|d| d.lines().find_map(|l| l.strip_prefix("  name: ")).unwrap())
        .collect();
    assert_eq!(
        deployments,
        [
            "postgres",
            "embedder",
            "redis",
            "gateway",
            "gpu-worker",
            "qdrant",
            "reranker"
        ],
        "{play}"
    );
    assert!(
        play.find("kind: PersistentVolumeClaim").unwrap() < play.find("kind: Deployment").unwrap()
    );
    assert!(
        play.contains("#   kubectl create secret generic postgres-env --from-env-file=config/postgres.env --from-literal=POSTGRES_PASSWORD=\"${PG_PASSWORD}\" --dry-run=client -o jsonpath='{.data}' | podman secret create postgres-env -\n"),
        "{play}"
    );
    let play_first = play.clone();
    let out = sb.run(&["export", "kubernetes", "--host-ports", "--out", "k8s-play"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sb.read("k8s-play/_play.yaml"), play_first);
    validate(&yaml_files(&sb.path("k8s-play"))).unwrap();

    // The negative control: the validator does reject a wrong file.
    let bad = sb.path("bad.yaml");
    std::fs::write(
        &bad,
        redact_tags(&sb.read("deploy/kubernetes/redis.yaml"))
            .replace("imagePullPolicy:", "imagePullPolizy:"),
    )
    .unwrap();
    assert!(validate(&[bad]).is_err());
}

/// A small workspace with one container service and `extra` registry lines.
fn sandbox(service: &str) -> Sandbox {
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write(
        "hsm.toml",
        &format!(
            "[project]\nname = \"t\"\n[services]\nstandalone = [\"web\"]\n[registry.services.web]\nsources.prod = {{ type = \"docker-image\", image = \"busybox:1.36\" }}\n{service}\n"
        ),
    );
    sb
}

#[test]
fn what_a_cluster_cannot_run_is_refused_by_name() {
    for (extra, says, help) in [
        (
            "volumes = [\"./data:/data\"]",
            "error: service `web` cannot be exported to Kubernetes: it bind-mounts the host path `./data` (volumes[0] = `./data:/data`), which does not exist in a cluster",
            "help: use a named volume instead (`data:/data`)",
        ),
        (
            "volumes = [\"my_data:/data\"]",
            "its volume name `my_data` (volumes[0]) is not a DNS label",
            "help: rename the volume",
        ),
        (
            "ports = [\"8000-8010:8000-8010\"]",
            "its port `8000-8010:8000-8010` (ports[0]) is a range or a variable",
            "help: write single ports",
        ),
        (
            "healthcheck = { http = \"/\" }",
            "its `http` healthcheck has no port to probe",
            "help: declare the port in `ports`",
        ),
        // These two are resolution errors, with file, key and line.
        (
            "volumes = [\"data:/data\"]\nvolume-sizes = { data = \"10GB\" }",
            "the size `10GB` of volume `data` of service `web` is not a Kubernetes quantity\n --> hsm.toml:8:25 (registry.services.web.volume-sizes.data)",
            "help: write a number with a binary or decimal suffix",
        ),
        (
            "volumes = [\"data:/data\"]\nvolume-sizes = { logs = \"1Gi\" }",
            "`volume-sizes` of service `web` names `logs`, which is not one of its named volumes\n --> hsm.toml:8:",
            "help: name a volume of its `volumes`",
        ),
    ] {
        let sb = sandbox(extra);
        let out = sb.run(&["export", "kubernetes"]);
        assert_eq!(out.status.code(), Some(2), "{extra}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{extra}:\n{err}");
        assert!(err.contains(help), "{extra}:\n{err}");
        assert!(!sb.exists("deploy/kubernetes/web.yaml"), "{extra}: a file was written");
    }

    // `volume-sizes`: two services that size one volume differently are
    // refused; one size reaches the claim.
    let sb = sandbox("volumes = [\"data:/data\"]\nvolume-sizes = { data = \"5Gi\" }\n[registry.services.db]\nvolumes = [\"data:/var/lib/db\"]\nvolume-sizes = { data = \"2Gi\" }\nsources.prod = { type = \"docker-image\", image = \"busybox:1.36\" }");
    sb.write(
        "hsm.toml",
        &sb.read("hsm.toml")
            .replace("standalone = [\"web\"]", "standalone = [\"web\", \"db\"]"),
    );
    let out = sb.run(&["export", "kubernetes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("service `web` cannot be exported to Kubernetes: its `volume-sizes` gives volume `data` the size `5Gi`, and service `db` gives it `2Gi`"),
        "{}",
        stderr(&out)
    );
    sb.write(
        "hsm.toml",
        &sb.read("hsm.toml").replace("\"2Gi\"", "\"5Gi\""),
    );
    let out = sb.run(&["export", "kubernetes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pvc = sb.read("deploy/kubernetes/_volumes.yaml");
    assert!(pvc.contains("storage: \"5Gi\""), "{pvc}");
    assert!(pvc.contains("cargo-hsm/used-by: \"db,web\""), "{pvc}");
    if validator() {
        validate(&yaml_files(&sb.path("deploy/kubernetes"))).unwrap();
    }

    // A uv service that was never synced has no lock to build from.
    let sb = Sandbox::empty();
    sb.write("Cargo.toml", "[workspace]\n");
    sb.write(
        "hsm.toml",
        "[project]\nname = \"t\"\n[services]\nstandalone = [\"api\"]\n[registry.services.api]\nsources.prod = { type = \"local\", path = \"api\" }\ndeployment-profiles.default = { runtime = \"uv\", command = [\"python\", \"-m\", \"api\"] }\n",
    );
    sb.write(
        "api/pyproject.toml",
        "[project]\nname = \"api\"\nversion = \"0\"\n",
    );
    let out = sb.run(&["export", "kubernetes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "error: service `api` has no `uv.lock` in `api`, so there is nothing locked to install"
        ),
        "{err}"
    );
    assert!(err.contains("help: run `cargo hsm sync` first"), "{err}");

    // A file in the output directory that cargo-hsm did not write stays.
    let sb = sandbox("");
    sb.write("deploy/kubernetes/web.yaml", "# mine\n");
    let out = sb.run(&["export", "kubernetes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("`deploy/kubernetes/web.yaml` exists and was not generated by cargo-hsm"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sb.read("deploy/kubernetes/web.yaml"), "# mine\n");

    // A service that is no longer selected: its old file is stale for
    // `--check`, and removed by the next export.
    let sb = sandbox("ports = [\"8080\"]");
    assert!(sb.run(&["export", "kubernetes"]).status.success());
    let gone = sb.path("deploy/kubernetes/old.yaml");
    std::fs::copy(sb.path("deploy/kubernetes/web.yaml"), &gone).unwrap();
    let out = sb.run(&["export", "kubernetes", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`deploy/kubernetes/old.yaml` is no longer generated"),
        "{}",
        stderr(&out)
    );
    let out = sb.run(&["export", "kubernetes"]);
    assert!(
        stderr(&out).contains("Removing `deploy/kubernetes/old.yaml`"),
        "{}",
        stderr(&out)
    );
    assert!(!gone.exists());

    // `--out` stays inside the workspace.
    let out = sb.run(&["export", "kubernetes", "--out", "../elsewhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`--out ../elsewhere` is not a directory inside the workspace"),
        "{}",
        stderr(&out)
    );
}
