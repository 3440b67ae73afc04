//! The steps of a sync, in the order [`super::driver`] runs them: one file
//! each, every one an `impl` block on the driver's `Syncer`.

pub(super) mod cargo_lock;
pub(super) mod clones;
pub(super) mod compose;
pub(super) mod envs;
pub(super) mod git;
pub(super) mod libraries;
pub(super) mod lock;
pub(super) mod root;
