//! `cargo hsm export kubernetes` and `cargo hsm image build`: the Plan for
//! a cluster ([`crate::deploy::kubernetes`], [`crate::deploy::image`]).

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, Subcommand};

use super::shell::{MessageFormat, Shell, Verbosity};
use crate::deploy::image::{self, Origin};
use crate::deploy::kubernetes::{self, ExportOptions};
use crate::error::{Error, Result, EXIT_OK};
use crate::fs::FileTxn;
use crate::plan::{Plan, PlannedService};

#[derive(Debug, Subcommand)]
pub enum ExportCmd {
    /// Kubernetes manifests of the selection: Deployments, Services, ConfigMaps, PersistentVolumeClaims
    Kubernetes(KubernetesArgs),
}

#[derive(Debug, Args)]
pub struct KubernetesArgs {
    /// The directory of the files, relative to the workspace root
    #[arg(long, value_name = "DIR", default_value = kubernetes::DEFAULT_OUT)]
    pub out: Utf8PathBuf,
    /// `metadata.namespace` of every object, and the namespace of the services' DNS names (default: `default`)
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Write nothing; exit 1 if the files on disk differ from what would be written
    #[arg(long)]
    pub check: bool,
    /// For `podman kube play`, which ignores Services: publish every port as a `hostPort`, reach services through the host gateway, and write `_play.yaml` (every object, dependencies first) to play
    #[arg(long)]
    pub host_ports: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Build the images of environment services (a generated Dockerfile) and of container services built from source
    Build(ImageBuildArgs),
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// The services to build (default: every selected service that has no published image)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Push each image to its profile's `image-repository`, through the engine's own login
    #[arg(long)]
    pub push: bool,
    /// Also tag each image as `<repository>/<service>:T` (the tag computed from the locks is always set)
    #[arg(long, value_name = "T")]
    pub tag: Option<String>,
}

/// The image of every managed service the export covers.
fn images(plan: &Plan) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in kubernetes::exported(plan)
        .into_iter()
        .filter(|s| s.runtime().is_some())
    {
        out.insert(
            s.name.clone(),
            image::origin(plan, s)?.reference().to_string(),
        );
    }
    Ok(out)
}

pub fn run_export(shell: &Shell, root: &Utf8Path, cmd: &ExportCmd) -> Result<i32> {
    let ExportCmd::Kubernetes(args) = cmd;
    let (_, plan) = crate::plan(root)?;
    for w in &plan.warnings {
        shell.warn(w);
    }
    if args.out.is_absolute() || args.out.components().any(|c| c.as_str() == "..") {
        return Err(Error::config(format!(
            "`--out {}` is not a directory inside the workspace",
            args.out
        ))
        .with_help("give a relative path such as `deploy/kubernetes`"));
    }
    let opts = ExportOptions {
        namespace: args.namespace.clone(),
        host_ports: args.host_ports,
    };
    let files = kubernetes::render(&plan, &images(&plan)?, &opts)?;
    let dir = root.join(&args.out);
    let shown = &args.out;
    if args.check {
        let problems = kubernetes::check(&dir, shown, &files)?;
        if shell.format == MessageFormat::Json {
            shell.document(
                "export-kubernetes-check",
                &serde_json::json!({
                    "dir": shown,
                    "files": files.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                    "fresh": problems.is_empty(),
                    "problems": problems,
                }),
            );
        }
        if problems.is_empty() {
            shell.status("Fresh", format!("`{shown}` ({} files)", files.len()));
            return Ok(EXIT_OK);
        }
        return Err(Error::failed(format!(
            "`{shown}` differs from what the manifest generates ({} of {} files)",
            problems.len(),
            files.len()
        ))
        .with_detail(
            problems
                .iter()
                .map(|p| p.describe(shown))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .with_help(
            "run `cargo hsm export kubernetes` (with the same options) to bring it up to date",
        ));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::failed(format!("cannot create `{shown}`: {e}")))?;
    let mut txn = FileTxn::new();
    let written = match kubernetes::write(&dir, shown, &files, &mut txn) {
        Ok(w) => w,
        Err(e) => {
            txn.rollback();
            return Err(e);
        }
    };
    txn.commit();
    if shell.format == MessageFormat::Json {
        shell.document(
            "export-kubernetes",
            &serde_json::json!({ "dir": shown, "result": written }),
        );
    }
    for f in &written.written {
        shell.status("Writing", format!("`{}`", shown.join(f)));
    }
    for f in &written.removed {
        shell.status(
            "Removing",
            format!("`{}` (no longer generated)", shown.join(f)),
        );
    }
    if written.written.is_empty() && written.removed.is_empty() {
        shell.status("Fresh", format!("`{shown}` ({} files)", files.len()));
    }
    Ok(EXIT_OK)
}

pub fn run_image(shell: &Shell, root: &Utf8Path, cmd: &ImageCmd) -> Result<i32> {
    let ImageCmd::Build(args) = cmd;
    let (_, plan) = crate::plan(root)?;
    for w in &plan.warnings {
        shell.warn(w);
    }
    let chosen: Vec<&PlannedService> = if args.services.is_empty() {
        plan.services
            .iter()
            .filter(|s| s.runtime().is_some())
            .collect()
    } else {
        args.services
            .iter()
            .map(|n| {
                plan.service(n).ok_or_else(|| {
                    Error::config(format!("service `{n}` is not selected"))
                        .with_help("`cargo hsm list` shows the selected services")
                })
            })
            .collect::<Result<_>>()?
    };
    if let Some(t) = &args.tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(Error::config(format!("`--tag {t}` is not an image tag"))
                .with_help("a tag is letters, digits, `_`, `.` and `-`, at most 128, not starting with `.` or `-`"));
        }
    }
    let mut recipes = Vec::new();
    for s in chosen {
        match image::origin(&plan, s)? {
            Origin::Published(r) => {
                if !args.services.is_empty() {
                    return Err(Error::config(format!(
                        "service `{}` runs the published image `{r}`: there is nothing to build",
                        s.name
                    )));
                }
            }
            Origin::Built(r) => {
                if args.push && s.image_repository.is_none() {
                    return Err(Error::config(format!(
                        "service `{}` has no `image-repository` to push its image to",
                        s.name
                    ))
                    .with_help(format!(
                        "set `image-repository = \"registry.example.org/team\"` in the profile `{}` of service `{}`, or build without `--push`",
                        s.profile, s.name
                    )));
                }
                recipes.push((s, r))
            }
        }
    }
    if recipes.is_empty() {
        shell.status("Skipping", "no selected service has an image to build");
        return Ok(EXIT_OK);
    }
    let verbose = shell.verbosity == Verbosity::Verbose;
    let mut built = Vec::new();
    for (s, r) in recipes {
        shell.status("Building", format!("`{}` ({})", r.reference, s.name));
        let opts = image::BuildOptions {
            tags: args
                .tag
                .iter()
                .map(|t| format!("{}/{}:{t}", image::repository(&plan, s), s.name))
                .collect(),
            push: args.push,
        };
        let b = image::build(&plan, &r, &opts, verbose)?;
        if b.pushed {
            shell.status("Pushed", format!("`{}`", b.reference));
        }
        built.push(b);
    }
    if shell.format == MessageFormat::Json {
        shell.document("image-build", &serde_json::json!({ "images": built }));
    }
    shell.status(
        "Finished",
        format!(
            "{} image{}",
            built.len(),
            if built.len() == 1 { "" } else { "s" }
        ),
    );
    Ok(EXIT_OK)
}
