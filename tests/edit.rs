//! The editing commands on a heavily commented `hsm.toml` (inline registry)
//! and a `Cargo.toml` with `[workspace.metadata.hsm]` (directory registry):
//! each edit changes only the intended lines, is idempotent, and every
//! refusal leaves every file byte for byte as it was.

mod edit_support;

use edit_support::Sandbox;
use snapbox::{assert_data_eq, str};

/// Comments everywhere, odd spacing, single quotes, dotted keys, a
/// multi-line array with a comment per element.
const HSM_TOML: &str = r#"# Top comment: the manifest of the demo stack.
# It has two lines.

[project]
name = 'demo'   # single-quoted on purpose
services-dir = "services"

[libraries]
# the libraries every service shares
standalone = ["utils"]   # keep this comment
groups.vector-client = { strategy = "1-of-N", selection = "qdrant-adapter" } # vector client

[services]
standalone = [
  # the first service
  { name = "api", mode = "dev" },   # api comment
  "worker",                          # worker comment
]
groups.infra = { strategy = "M-of-N", selection = ["postgres"] }   # infra comment

[modes]
# group members' modes
qdrant-adapter = "dev"

# ------------------------------------------------------------- registry
[registry.libraries.utils]   # utils entry
description = "Helpers"
sources.prod = { type = "pypi", version = ">=1" }

[registry.libraries.qdrant-adapter]
sources.prod = { type = "pypi" }
sources.dev = { type = "local", path = "libs/qdrant-adapter" }

[registry.libraries.milvus-adapter]
sources.prod = { type = "pypi" }

[registry.library_groups.vector-client]
strategy = "1-of-N"
options = ["qdrant-adapter", "milvus-adapter"]   # two clients

[registry.services.api]
sources.prod = { type = "docker-image", image = "demo/api:1" }
sources.dev = { type = "build", path = "api" }

[registry.services.worker]
sources.prod = { type = "docker-image", image = "demo/worker:1" }

[registry.services.postgres]
sources.prod = { type = "docker-image", image = "postgres:16" }

[registry.services.redis]
sources.prod = { type = "docker-image", image = "redis:7" }

[registry.services.cache]
sources.prod = { type = "docker-image", image = "memcached:1" }

[registry.service_groups.infra]
strategy = "M-of-N"
options = ["postgres", "redis"]
# trailing comment of the file
"#;

fn hsm() -> Sandbox {
    Sandbox::new(&[("hsm.toml", HSM_TOML)])
}

#[test]
fn service_add_appends_one_line_to_a_commented_multiline_array() {
    let sb = hsm();
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["service", "add", "cache"]),
        str![[r#"
@@ 18
+  "cache",

"#]]
    );
}

#[test]
fn service_add_with_mode_and_remove_keep_neighbours_comments() {
    let sb = hsm();
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["service", "add", "cache", "--mode", "dev"]),
        str![[r#"
@@ 18
+  { name = "cache", mode = "dev" },

"#]]
    );
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["service", "remove", "worker"]),
        str![[r#"
@@ 17
-  "worker",                          # worker comment

"#]]
    );
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["service", "remove", "api"]),
        str![[r#"
@@ 16
-  { name = "api", mode = "dev" },   # api comment

"#]]
    );
}

#[test]
fn mode_of_a_standalone_entry_changes_only_its_value() {
    let sb = hsm();
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["service", "mode", "worker", "dev"]),
        str![[r#"
@@ 17
-  "worker",                          # worker comment
+  { name = "worker", mode = "dev" },                          # worker comment

"#]]
    );
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["service", "mode", "api", "prod"]),
        str![[r#"
@@ 16
-  { name = "api", mode = "dev" },   # api comment
+  "api",   # api comment

"#]]
    );
    // A group member's mode lives in `[modes]`.
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["library", "mode", "qdrant-adapter", "prod"]),
        str![[r#"
@@ 21
-[modes]
-# group members' modes
-qdrant-adapter = "dev"
-

"#]]
    );
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["service", "mode", "postgres", "dev"]),
        str![[r#"
@@ 56
+
+[modes]
+postgres = "dev"

"#]]
    );
}

#[test]
fn library_add_and_remove_in_a_single_line_array() {
    let sb = hsm();
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["library", "add", "milvus-adapter"]),
        str![[r#"
@@ 10
-standalone = ["utils"]   # keep this comment
+standalone = ["utils", "milvus-adapter"]   # keep this comment

"#]]
    );
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["library", "remove", "utils"]),
        str![[r#"
@@ 10
-standalone = ["utils", "milvus-adapter"]   # keep this comment
+standalone = ["milvus-adapter"]   # keep this comment

"#]]
    );
}

#[test]
fn group_options_one_of_n_replaces_m_of_n_appends() {
    let sb = hsm();
    assert_data_eq!(
        sb.edit_diff(
            "hsm.toml",
            &["group", "add-option", "vector-client", "milvus-adapter"]
        ),
        str![[r#"
@@ 11
-groups.vector-client = { strategy = "1-of-N", selection = "qdrant-adapter" } # vector client
+groups.vector-client = { strategy = "1-of-N", selection = "milvus-adapter" } # vector client

"#]]
    );
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["group", "add-option", "infra", "redis"]),
        str![[r#"
@@ 19
-groups.infra = { strategy = "M-of-N", selection = ["postgres"] }   # infra comment
+groups.infra = { strategy = "M-of-N", selection = ["postgres", "redis"] }   # infra comment

"#]]
    );
    // `service add --group` is `group add-option`.
    let before = sb.files();
    sb.ok(&["service", "add", "redis", "--group", "infra"]);
    assert!(before == sb.files());
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["group", "remove-option", "infra", "postgres"]),
        str![[r#"
@@ 19
-groups.infra = { strategy = "M-of-N", selection = ["postgres", "redis"] }   # infra comment
+groups.infra = { strategy = "M-of-N", selection = ["redis"] }   # infra comment

"#]]
    );
}

#[test]
fn group_add_and_remove() {
    let sb = hsm();
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["group", "remove", "infra"]),
        str![[r#"
@@ 19
-groups.infra = { strategy = "M-of-N", selection = ["postgres"] }   # infra comment

"#]]
    );
    assert_data_eq!(
        sb.edit_diff(
            "hsm.toml",
            &["group", "add", "infra", "--option", "redis", "--option", "postgres"]
        ),
        str![[r#"
@@ 19
+groups.infra = { strategy = "M-of-N", selection = ["redis", "postgres"] }

"#]]
    );
}

#[test]
fn mode_switches_every_selected_component() {
    let sb = hsm();
    assert_data_eq!(
        sb.edit_diff("hsm.toml", &["mode", "dev"]),
        str![[r#"
@@ 10
-standalone = ["utils"]   # keep this comment
+standalone = [{ name = "utils", mode = "dev" }]   # keep this comment
@@ 17
-  "worker",                          # worker comment
+  { name = "worker", mode = "dev" },                          # worker comment
@@ 24
+postgres = "dev"

"#]]
    );
}

#[test]
fn registry_entries_added_inline_keep_the_file() {
    let sb = hsm();
    assert_data_eq!(
        sb.edit_diff(
            "hsm.toml",
            &[
                "registry",
                "service",
                "add",
                "search",
                "--description",
                "Full-text search",
                "--prod",
                "type=docker-image,image=meilisearch:1",
                "--port",
                "7700:7700",
                "--env",
                "MEILI_ENV=development",
                "--runtime",
                "docker",
            ]
        ),
        str![[r#"
@@ 57
+[registry.services.search]
+description = "Full-text search"
+ports = ["7700:7700"]
+env = { MEILI_ENV = "development" }
+
+[registry.services.search.sources.prod]
+type = "docker-image"
+image = "meilisearch:1"
+
+[registry.services.search.deployment-profiles.default]
+runtime = "docker"
+

"#]]
    );
    assert_data_eq!(
        sb.edit_diff(
            "hsm.toml",
            &[
                "registry",
                "service",
                "implies",
                "add",
                "api",
                "service:postgres",
                "--param",
                "db_name=api"
            ]
        ),
        str![[r#"
@@ 45
+[registry.services.api.implies]
+"service:postgres" = { params = { db_name = "api" } }
+

"#]]
    );
    assert_data_eq!(
        sb.edit_diff(
            "hsm.toml",
            &[
                "registry",
                "service",
                "implies",
                "remove",
                "api",
                "service:postgres"
            ]
        ),
        str![[r#"
@@ 45
-[registry.services.api.implies]
-"service:postgres" = { params = { db_name = "api" } }
-

"#]]
    );
    // Removing an entry that no longer exists is an unknown name (exit 2),
    // so this step is not run twice.
    let before = sb.read("hsm.toml");
    sb.ok(&["registry", "service", "remove", "cache"]);
    assert_data_eq!(
        edit_support::line_diff(&before, &sb.read("hsm.toml")),
        str![[r#"
@@ 54
-[registry.services.cache]
-sources.prod = { type = "docker-image", image = "memcached:1" }
-

"#]]
    );
    let e = sb.refused(&["registry", "service", "remove", "cache"]);
    assert!(e.contains("unknown service `cache`"), "{e}");
}

#[test]
fn refusals_leave_every_file_byte_identical() {
    let sb = hsm();
    let e = sb.refused(&["service", "add", "wroker"]);
    assert!(
        e.contains("unknown service `wroker`") && e.contains("did you mean `worker`?"),
        "{e}"
    );
    let e = sb.refused(&["group", "add-option", "infra", "qdrant"]);
    assert!(
        e.contains("has no option `qdrant`") && e.contains("postgres, redis"),
        "{e}"
    );
    let e = sb.refused(&["group", "add", "vector-client", "--option", "nope"]);
    assert!(e.contains("has no option `nope`"), "{e}");
    let e = sb.refused(&["group", "remove-option", "vector-client", "qdrant-adapter"]);
    assert!(
        e.contains("would leave the library group `vector-client`"),
        "{e}"
    );
    let e = sb.refused(&["group", "add", "vector-db", "--option", "x"]);
    assert!(e.contains("unknown group `vector-db`"), "{e}");
    let e = sb.refused(&[
        "registry",
        "service",
        "add",
        "api",
        "--prod",
        "type=docker-image,image=x",
    ]);
    assert!(e.contains("already registered"), "{e}");
    // Still selected: the removal is refused, with the place that selects it.
    let e = sb.refused(&["registry", "service", "remove", "worker"]);
    assert!(
        e.contains("cannot remove the service `worker`")
            && e.contains("selected in `[services].standalone`")
            && e.contains("remove worker --purge"),
        "{e}"
    );
    // A bad field is caught by loading the edited registry from memory.
    let e = sb.refused(&[
        "registry",
        "library",
        "add",
        "x",
        "--prod",
        "type=pypi,versoin=1",
    ]);
    assert!(e.contains("versoin"), "{e}");
    let e = sb.refused(&["service", "add", "api", "--profile", "cloud"]);
    assert!(e.contains("profile"), "{e}");
    let e = sb.refused(&["library", "mode", "nope", "dev"]);
    assert!(e.contains("unknown library `nope`"), "{e}");
    let e = sb.refused(&[
        "registry",
        "library",
        "implies",
        "add",
        "utils",
        "library_group:vector-client",
        "--select",
        "nope",
    ]);
    assert!(e.contains("nope"), "{e}");
    sb.refused(&["init"]);
}

// ------------------------------------------ Cargo.toml + directory registry

const CARGO_TOML: &str = r#"# The workspace.
[workspace]
members = ["crates/*"]   # every crate
resolver = "2"

# hsm lives here, beside cargo's own settings.
[workspace.metadata.hsm.project]
name = "meta"

[workspace.metadata.hsm.registry]
path = "reg"   # a shared registry

[workspace.metadata.hsm.services]
standalone = ["db"]

[profile.release]
lto = true   # keep
"#;

const SVC_DB: &str =
    "# the database\n[sources.prod]\ntype = \"docker-image\"\nimage = \"postgres:16\"\n";
const GRP: &str = "# vector clients\nstrategy = \"1-of-N\"\noptions = [\n  \"qdrant-adapter\",   # default\n  \"milvus-adapter\",\n]\n";
const LIB: &str = "[sources.prod]\ntype = \"pypi\"\n";

fn cargo() -> Sandbox {
    Sandbox::new(&[
        ("Cargo.toml", CARGO_TOML),
        (
            "crates/a/Cargo.toml",
            "[package]\nname = \"a\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
        ("crates/a/src/lib.rs", ""),
        ("reg/services/db.toml", SVC_DB),
        (
            "reg/services/web.toml",
            "[sources.prod]\ntype = \"docker-image\"\nimage = \"nginx\"\n",
        ),
        ("reg/libraries/qdrant-adapter.toml", LIB),
        ("reg/libraries/milvus-adapter.toml", LIB),
        ("reg/library_groups/vector-client.toml", GRP),
    ])
}

#[test]
fn cargo_toml_metadata_edits_touch_only_the_hsm_tables() {
    let sb = cargo();
    assert_data_eq!(
        sb.edit_diff("Cargo.toml", &["service", "add", "web"]),
        str![[r#"
@@ 14
-standalone = ["db"]
+standalone = ["db", "web"]

"#]]
    );
    assert_data_eq!(
        sb.edit_diff(
            "Cargo.toml",
            &[
                "group",
                "add",
                "vector-client",
                "--option",
                "qdrant-adapter"
            ]
        ),
        str![[r#"
@@ 16
+[workspace.metadata.hsm.libraries]
+groups.vector-client = { strategy = "1-of-N", selection = "qdrant-adapter" }
+

"#]]
    );
    assert_data_eq!(
        sb.edit_diff("Cargo.toml", &["service", "mode", "db", "dev"]),
        str![[r#"
@@ 14
-standalone = ["db", "web"]
+standalone = [{ name = "db", mode = "dev" }, "web"]

"#]]
    );
}

#[test]
fn directory_registry_entries_are_files() {
    let sb = cargo();
    sb.ok(&[
        "registry",
        "library",
        "add",
        "tok",
        "--description",
        "Tokenizer",
        "--prod",
        "type=pypi,package=tokenizers,version=>=0.20",
        "--dev",
        "type=local,path=../tok,editable=true",
    ]);
    assert_data_eq!(
        sb.read("reg/libraries/tok.toml"),
        str![[r#"
description = "Tokenizer"

[sources.prod]
type = "pypi"
package = "tokenizers"
version = ">=0.20"

[sources.dev]
type = "local"
path = "../tok"
editable = true

"#]]
    );
    sb.ok(&[
        "registry",
        "group",
        "add",
        "infra",
        "--kind",
        "service",
        "--strategy",
        "M-of-N",
        "--option",
        "db",
        "--option",
        "web",
        "--comment",
        "Infrastructure",
    ]);
    assert_data_eq!(
        sb.read("reg/service_groups/infra.toml"),
        str![[r#"
strategy = "M-of-N"
comment = "Infrastructure"
options = ["db", "web"]

"#]]
    );
    // Implications of a group option; the option's comment stays.
    assert_data_eq!(
        sb.edit_diff(
            "reg/library_groups/vector-client.toml",
            &[
                "registry",
                "group",
                "implies",
                "add",
                "vector-client",
                "--option",
                "milvus-adapter",
                "library:tok"
            ]
        ),
        str![[r#"
@@ 5
-  "milvus-adapter",
+  { name = "milvus-adapter", implies = { "library:tok" = true } },

"#]]
    );
    let e = sb.refused(&[
        "registry",
        "library",
        "add",
        "tok",
        "--description",
        "Other",
    ]);
    assert!(
        e.contains("already registered, with a different definition") && e.contains("tok.toml"),
        "{e}"
    );
    // Removing a library is refused while a group option implies it.
    let e = sb.refused(&["registry", "library", "remove", "tok"]);
    assert!(
        e.contains("cannot remove the library `tok`")
            && e.contains(
                "the option `milvus-adapter` of the library group `vector-client` implies it"
            )
            && e.contains("vector-client.toml"),
        "{e}"
    );
    assert_data_eq!(
        sb.edit_diff(
            "reg/library_groups/vector-client.toml",
            &[
                "registry",
                "group",
                "implies",
                "remove",
                "vector-client",
                "--option",
                "milvus-adapter",
                "library:tok"
            ]
        ),
        str![[r#"
@@ 5
-  { name = "milvus-adapter", implies = { "library:tok" = true } },
+  { name = "milvus-adapter"},

"#]]
    );
    sb.ok(&["registry", "library", "remove", "tok"]);
    assert!(!sb.path("reg/libraries/tok.toml").exists());
}

#[test]
fn registry_list_show_search() {
    let sb = cargo();
    let out = sb.ok(&["registry", "list"]).stdout;
    assert_data_eq!(
        out,
        str![[r#"
library        milvus-adapter       `reg/libraries/milvus-adapter.toml`
library        qdrant-adapter       `reg/libraries/qdrant-adapter.toml`
service        db                   `reg/services/db.toml`
service        web                  `reg/services/web.toml`
library group  vector-client        `reg/library_groups/vector-client.toml`

"#]]
    );
    let out = sb.ok(&["registry", "show", "db"]).stdout;
    assert_data_eq!(
        out,
        str![[r#"
# service `db`, defined in `reg/services/db.toml`
# the database
[sources.prod]
type = "docker-image"
image = "postgres:16"

"#]]
    );
    let out = sb.ok(&["registry", "search", "adapter"]).stdout;
    assert!(
        out.contains("milvus-adapter") && out.contains("qdrant-adapter") && !out.contains("db"),
        "{out}"
    );
    let sb = hsm();
    let out = sb.ok(&["registry", "show", "utils"]).stdout;
    assert_data_eq!(
        out,
        str![[r#"
# library `utils`, defined in `hsm.toml` at `registry.libraries.utils`
description = "Helpers"
sources.prod = { type = "pypi", version = ">=1" }

"#]]
    );
}

#[test]
fn package_metadata_with_inline_registry() {
    let cargo = r#"[package]
name = "single"   # one crate
version = "0.1.0"
edition = "2021"

[package.metadata.hsm.services]
standalone = []   # nothing yet

[package.metadata.hsm.registry.services.db]
sources.prod = { type = "docker-image", image = "postgres:16" }

[dependencies]
# none
"#;
    let sb = Sandbox::new(&[("Cargo.toml", cargo)]);
    assert_data_eq!(
        sb.edit_diff(
            "Cargo.toml",
            &["service", "add", "db", "--profile", "default"]
        ),
        str![[r#"
@@ 7
-standalone = []   # nothing yet
+standalone = [{ name = "db", profile = "default" }]   # nothing yet

"#]]
    );
    assert_data_eq!(
        sb.edit_diff(
            "Cargo.toml",
            &[
                "registry",
                "service",
                "add",
                "cache",
                "--prod",
                "type=docker-image,image=redis:7"
            ]
        ),
        str![[r#"
@@ 12
+[package.metadata.hsm.registry.services.cache]
+
+[package.metadata.hsm.registry.services.cache.sources.prod]
+type = "docker-image"
+image = "redis:7"
+

"#]]
    );
    let e = sb.refused(&["service", "add", "nope"]);
    assert!(e.contains("unknown service `nope`"), "{e}");
}

/// `-v` shows what an edit changed as a unified diff of each file it
/// updated (coloured as git does on a terminal, here `--color always`);
/// without `-v`, only the `Updated` line.
#[test]
fn verbose_edits_show_their_diff() {
    let sb = hsm();
    let quiet = sb.ok(&["service", "add", "cache"]);
    assert!(!quiet.stderr.contains("+++"), "{}", quiet.stderr);
    let r = sb.ok(&["-v", "service", "remove", "cache"]);
    assert!(
        r.stderr
            .contains("Updated `hsm.toml`\n--- hsm.toml (before)\n+++ hsm.toml (after)\n@@ -"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("\n-  \"cache\",\n"), "{}", r.stderr);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-hsm"))
        .args(["-v", "--color", "always", "service", "add", "cache"])
        .arg("--manifest-path")
        .arg(sb.path("Cargo.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("\x1b[32m+  \"cache\",\x1b[0m\n"), "{err:?}");
}
