//! `cargo hsm`: one declarative manifest for a Rust monorepo's Python
//! libraries, isolated service environments and container services.
//!
//! The pipeline, one module per stage:
//! [`manifest`] (load) → [`resolve`] (→ [`plan::Plan`]) → [`materialize`]
//! (driver + one file per step) → [`lock`] + [`inspect`].
//!
//! Shared modules, used by the stages and never using them: [`python`]
//! (PEP 503 names, requirements), [`git`] (checkouts), [`envfile`]
//! (a service's resolved env), [`fs`] (atomic writes and the file
//! transaction), [`paths`], [`names`], [`error`].

pub mod build;
#[cfg(feature = "cli")]
pub mod cli;
pub mod compose;
pub mod edit;
pub mod envfile;
pub mod error;
pub mod fs;
pub mod git;
pub mod init;
pub mod inspect;
pub mod lock;
pub mod manifest;
pub mod materialize;
pub mod names;
pub mod paths;
pub mod plan;
pub mod python;
pub mod resolve;

pub use error::{Error, Result};
pub use manifest::{load, Loaded};
pub use plan::Plan;
pub use resolve::resolve;

/// Loads the manifest of the workspace at `workspace_root` and resolves it.
pub fn plan(workspace_root: &camino::Utf8Path) -> Result<(Loaded, Plan)> {
    let loaded = load(workspace_root)?;
    let plan = resolve(&loaded)?;
    Ok((loaded, plan))
}
