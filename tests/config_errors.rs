//! Broken manifests and registries: each gives exit code 2, a message that
//! says what is wrong, the file, the key path and, for TOML, line and column.

use std::path::Path;
use std::process::Command;

struct Case<'a> {
    files: &'a [(&'a str, &'a str)],
    message: &'a str,
    file: Option<&'a str>,
    key_path: Option<&'a str>,
    line: Option<u64>,
    help: Option<&'a str>,
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn run(root: &Path, json: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-hsm"));
    cmd.args(["hsm", "list", "--color", "never", "--manifest-path"])
        .arg(root.join("Cargo.toml"));
    if json {
        cmd.args(["--message-format", "json"]);
    }
    cmd.output().unwrap()
}

fn check(case: Case<'_>) {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<(&str, &str)> = case.files.to_vec();
    if !files.iter().any(|(p, _)| *p == "Cargo.toml") {
        files.push(("Cargo.toml", "[workspace]\n"));
    }
    write(dir.path(), &files);

    let human = run(dir.path(), false);
    let stderr = String::from_utf8_lossy(&human.stderr);
    assert_eq!(human.status.code(), Some(2), "exit code, stderr:\n{stderr}");
    // Compare with white space folded (snippets indent, messages do not).
    let flat: String = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(case.message),
        "human output lacks {:?}:\n{stderr}",
        case.message
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        human.stdout.is_empty(),
        "nothing on stdout for a human error"
    );

    let out = run(dir.path(), true);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(doc["reason"], "error");
    assert_eq!(doc["exit_code"], 2);
    let msg = doc["message"].as_str().unwrap();
    assert!(
        msg.contains(case.message),
        "JSON message {msg:?} lacks {:?}",
        case.message
    );
    assert_eq!(doc["file"].as_str(), case.file, "file in {doc:#}");
    if let Some(k) = case.key_path {
        assert_eq!(doc["key_path"].as_str(), Some(k), "key path in {doc:#}");
    }
    if let Some(l) = case.line {
        assert_eq!(doc["line"].as_u64(), Some(l), "line in {doc:#}");
        assert!(doc["column"].as_u64().is_some(), "column in {doc:#}");
        // The human rendering shows the snippet header `file:line:col`.
        let header = format!("{}:{l}:", case.file.unwrap());
        assert!(
            stderr.contains(&header),
            "snippet header {header} in:\n{stderr}"
        );
    }
    if let Some(h) = case.help {
        assert!(
            doc["help"].as_str().is_some_and(|x| x.contains(h)),
            "help {h:?} in {doc:#}"
        );
    }
}

const SVC_X: &str = "[registry.services.x]\nsources.prod = { type = \"local\", path = \"x\" }\n";

#[test]
fn bad_toml_syntax() {
    check(Case {
        files: &[("hsm.toml", "[services]\nstandalone = [\"x\"\n")],
        message: "invalid TOML",
        file: Some("hsm.toml"),
        key_path: None,
        line: Some(2),
        help: None,
    });
}

#[test]
fn unknown_key_with_did_you_mean() {
    check(Case {
        files: &[(
            "hsm.toml",
            "[project]\nname = \"p\"\n\n[servces]\nstandalone = []\n",
        )],
        message: "unknown key at `servces`",
        file: Some("hsm.toml"),
        key_path: Some("servces"),
        line: Some(4),
        help: Some("did you mean `services`?"),
    });
}

#[test]
fn unknown_key_deep_in_a_registry_file() {
    check(Case {
        files: &[
            (
                "hsm.toml",
                "[registry]\npath = \"reg\"\n[services]\nstandalone = [\"api\"]\n",
            ),
            (
                "reg/services/api.toml",
                "[deployment-profiles.default]\nruntime = \"uv\"\nworking_dir = \".\"\n",
            ),
        ],
        message: "unknown field `working_dir`",
        file: Some("reg/services/api.toml"),
        key_path: Some("deployment-profiles.default.working_dir"),
        line: Some(3),
        help: Some("did you mean `working-dir`?"),
    });
}

#[test]
fn wrong_type() {
    check(Case {
        files: &[("hsm.toml", "[services]\nstandalone = \"x\"\n")],
        message: "wrong type",
        file: Some("hsm.toml"),
        key_path: Some("services.standalone"),
        line: Some(2),
        help: None,
    });
}

#[test]
fn unknown_runtime() {
    check(Case {
        files: &[("hsm.toml", &format!("[services]\nstandalone = [\"x\"]\n{SVC_X}deployment-profiles.default = {{ runtime = \"dokcer\" }}\n"))],
        message: "unknown variant `dokcer`",
        file: Some("hsm.toml"),
        key_path: Some("registry.services.x.deployment-profiles.default.runtime"),
        line: Some(5),
        help: Some("did you mean `docker`?"),
    });
}

const GROUP: &str = "[registry.service_groups.db]\nstrategy = \"1-of-N\"\noptions = [\"pg\", \"mysql\"]\n[registry.services.pg]\nsources.prod = { type = \"docker-image\", image = \"postgres\" }\n[registry.services.mysql]\nsources.prod = { type = \"docker-image\", image = \"mysql\" }\n";

#[test]
fn one_of_n_with_two_selections() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!("[services]\ngroups.db = {{ selection = [\"pg\", \"mysql\"] }}\n{GROUP}"),
        )],
        message: "service group `db` is 1-of-N but 2 options are selected: `pg`, `mysql`",
        file: Some("hsm.toml"),
        key_path: Some("services.groups.db.selection"),
        line: Some(2),
        help: Some("select exactly one option"),
    });
}

#[test]
fn option_not_in_group() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!("[services]\ngroups.db = {{ selection = \"sqlite\" }}\n{GROUP}"),
        )],
        message: "`sqlite` is not an option of service group `db`",
        file: Some("hsm.toml"),
        key_path: Some("services.groups.db.selection"),
        line: Some(2),
        help: Some("options are: `pg`, `mysql`"),
    });
}

#[test]
fn strategy_disagrees_with_registry() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!(
                "[services]\ngroups.db = {{ strategy = \"M-of-N\", selection = \"pg\" }}\n{GROUP}"
            ),
        )],
        message: "service group `db` is 1-of-N in the registry, but the manifest says M-of-N",
        file: Some("hsm.toml"),
        key_path: Some("services.groups.db.strategy"),
        line: Some(2),
        help: None,
    });
}

#[test]
fn empty_m_of_n_selection() {
    let text = format!("[services]\ngroups.db = {{ selection = [] }}\n{GROUP}")
        .replace("\"1-of-N\"", "\"M-of-N\"");
    check(Case {
        files: &[("hsm.toml", &text)],
        message: "service group `db` selects nothing",
        file: Some("hsm.toml"),
        key_path: Some("services.groups.db.selection"),
        line: Some(2),
        help: None,
    });
}

#[test]
fn undefined_profile() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!("[services]\nstandalone = [{{ name = \"x\", profile = \"cloud\" }}]\n{SVC_X}deployment-profiles.default = {{ runtime = \"uv\" }}\ndeployment-profiles.local = {{ runtime = \"venv\" }}\n"),
        )],
        message: "service `x` has no deployment profile `cloud`; it defines `default`, `local`",
        file: Some("hsm.toml"),
        key_path: Some("services.standalone[0].profile"),
        line: Some(2),
        help: None,
    });
}

#[test]
fn name_with_parent_dir() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!("[services]\nstandalone = [\"../x\"]\n{SVC_X}"),
        )],
        message: "invalid component name: `../x` contains a path separator",
        file: Some("hsm.toml"),
        key_path: Some("services.standalone[0]"),
        line: Some(2),
        help: None,
    });
}

#[test]
fn registry_entry_name_with_upper_case() {
    check(Case {
        files: &[(
            "hsm.toml",
            "[registry.services.Api]\nsources.prod = { type = \"local\", path = \"x\" }\n",
        )],
        message: "invalid component name: `Api` must start with a lowercase letter",
        file: Some("hsm.toml"),
        key_path: Some("registry.services.Api"),
        line: Some(1),
        help: None,
    });
}

#[test]
fn duplicate_registry_entry_inline_and_directory() {
    check(Case {
        files: &[
            ("hsm.toml", &format!("[registry]\npath = \"reg\"\n{SVC_X}")),
            (
                "reg/services/x.toml",
                "sources.prod = { type = \"local\", path = \"y\" }\n",
            ),
        ],
        message: "the service `x` is defined twice in the registry",
        file: Some("reg/services/x.toml"),
        key_path: None,
        line: None,
        help: Some("keep one definition"),
    });
}

#[test]
fn missing_env_file() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!("[services]\nstandalone = [\"x\"]\n{SVC_X}env-file = [\"config/x.env\"]\n"),
        )],
        message: "env file `config/x.env` of service `x` does not exist",
        file: Some("hsm.toml"),
        key_path: Some("registry.services.x.env-file[0]"),
        line: Some(5),
        help: Some("create it"),
    });
}

#[test]
fn env_line_without_equals() {
    check(Case {
        files: &[
            (
                "hsm.toml",
                &format!("[services]\nstandalone = [\"x\"]\n{SVC_X}env-file = [\"x.env\"]\n"),
            ),
            ("x.env", "# comment\nA=1\nexport B\n"),
        ],
        message: "invalid env file `x.env`: line 3 has no `=`",
        file: Some("x.env"),
        key_path: None,
        line: Some(3),
        help: Some("KEY=VALUE"),
    });
}

#[test]
fn duplicate_key_inside_an_env_file() {
    check(Case {
        files: &[
            (
                "hsm.toml",
                &format!("[services]\nstandalone = [\"x\"]\n{SVC_X}env-file = [\"x.env\"]\n"),
            ),
            ("x.env", "A=1\n\nA=2\n"),
        ],
        message: "line 3 sets `A` again (first set on line 1)",
        file: Some("x.env"),
        key_path: None,
        line: Some(3),
        help: None,
    });
}

#[test]
fn duplicate_env_key_across_layers() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!("[services]\nstandalone = [\"x\"]\n{SVC_X}env = {{ PORT = \"1\" }}\ndeployment-profiles.default = {{ runtime = \"uv\", env = {{ PORT = \"2\" }} }}\n"),
        )],
        message: "environment variable `PORT` of service `x` is set twice: by the service's `env`",
        file: Some("hsm.toml"),
        key_path: Some("registry.services.x.deployment-profiles.default.env.PORT"),
        line: Some(6),
        help: None,
    });
}

#[test]
fn unknown_component_selected() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!("[services]\nstandalone = [\"y\"]\n{SVC_X}"),
        )],
        message: "unknown service `y`: it is not in the registry",
        file: Some("hsm.toml"),
        key_path: Some("services.standalone[0]"),
        line: Some(2),
        help: Some("cargo hsm registry service add y"),
    });
}

#[test]
fn unknown_implication_kind() {
    check(Case {
        files: &[(
            "hsm.toml",
            &format!("{SVC_X}implies = {{ \"servce:x\" = true }}\n"),
        )],
        message: "implication target `servce:x` has an unknown kind `servce`",
        file: Some("hsm.toml"),
        key_path: Some("registry.services.x.implies.\"servce:x\""),
        line: Some(3),
        help: Some("did you mean `service:x`?"),
    });
}

#[test]
fn two_manifest_locations() {
    check(Case {
        files: &[
            ("hsm.toml", "[services]\n"),
            ("Cargo.toml", "[workspace]\n\n[workspace.metadata.hsm]\nservices = {}\n"),
        ],
        message: "the hsm manifest is defined in two places: `hsm.toml` and `[workspace.metadata.hsm]` in `Cargo.toml`",
        file: Some("hsm.toml"),
        key_path: None,
        line: None,
        help: Some("keep one of them"),
    });
}

#[test]
fn error_inside_workspace_metadata_points_into_cargo_toml() {
    check(Case {
        files: &[(
            "Cargo.toml",
            "[workspace]\n\n[workspace.metadata.hsm.project]\nname = \"p\"\ncompose = \"x.yml\"\n",
        )],
        message: "unknown field `compose`",
        file: Some("Cargo.toml"),
        key_path: Some("workspace.metadata.hsm.project.compose"),
        line: Some(5),
        help: Some("did you mean `compose-file`?"),
    });
}

#[test]
fn no_manifest_anywhere() {
    check(Case {
        files: &[],
        message: "no hsm manifest found",
        file: None,
        key_path: None,
        line: None,
        help: Some("cargo hsm init"),
    });
}

#[test]
fn missing_prod_source() {
    check(Case {
        files: &[("hsm.toml", "[services]\nstandalone = [\"x\"]\n[registry.services.x]\nsources.dev = { type = \"local\", path = \"x\" }\n")],
        message: "the service `x` has no `sources.prod`",
        file: Some("hsm.toml"),
        key_path: Some("registry.services.x"),
        line: Some(3),
        help: Some("cargo hsm service mode x dev"),
    });
}

#[test]
fn environment_runtime_with_an_image_source() {
    check(Case {
        files: &[(
            "hsm.toml",
            "[services]\nstandalone = [\"x\"]\n[registry.services.x]\nsources.prod = { type = \"docker-image\", image = \"redis\" }\ndeployment-profiles.default = { runtime = \"uv\" }\n",
        )],
        message: "service `x` runs with `uv`, which needs a `git` or `local` source",
        file: Some("hsm.toml"),
        key_path: Some("registry.services.x.deployment-profiles.default.runtime"),
        line: Some(5),
        help: None,
    });
}

#[test]
fn modes_table_names_an_unknown_component() {
    check(Case {
        files: &[("hsm.toml", &format!("[modes]\nxx = \"dev\"\n{SVC_X}"))],
        message: "`[modes]` names `xx`, which is neither a library nor a service",
        file: Some("hsm.toml"),
        key_path: Some("modes.xx"),
        line: Some(2),
        help: None,
    });
}

#[test]
fn old_hsm_registry_folder_names() {
    check(Case {
        files: &[
            ("hsm.toml", "[registry]\npath = \"reg\"\n"),
            ("reg/containers/x.toml", ""),
        ],
        message: "has a `containers/` folder, which is HSM's old name",
        file: Some("hsm.toml"),
        key_path: Some("registry.path"),
        line: Some(2),
        help: Some("rename `reg/containers` to `reg/services`"),
    });
}

/// A registry big enough to be read on every core: the problem reported is
/// still the first in path order (a syntax error in `s030` comes before an
/// unknown key in `s070`), with its file, key path and line.
#[test]
fn first_problem_in_path_order_among_many_registry_files() {
    let good = "sources.prod = { type = \"docker-image\", image = \"busybox\" }\ndeployment-profiles.default = { runtime = \"docker\" }\n";
    let names: Vec<String> = (0..100)
        .map(|i| format!("reg/services/s{i:03}.toml"))
        .collect();
    let mut files: Vec<(&str, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let text = match i {
                30 => "sources.prod = { type = \"docker-image\", image = \"busybox\" }\ndeployment-profiles.default = { runtime = \"docker\", workdir = \".\" }\n",
                70 => "sources.prod = { type = \"docker-image\" image = \"busybox\" }\n",
                _ => good,
            };
            (n.as_str(), text)
        })
        .collect();
    files.push((
        "hsm.toml",
        "[registry]\npath = \"reg\"\n[services]\nstandalone = [\"s000\"]\n",
    ));
    check(Case {
        files: &files,
        message: "unknown field `workdir`",
        file: Some("reg/services/s030.toml"),
        key_path: Some("deployment-profiles.default.workdir"),
        line: Some(2),
        help: None,
    });
}
