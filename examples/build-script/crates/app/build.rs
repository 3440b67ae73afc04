//! Materializes the workspace's Python services before `app` compiles.
//!
//! `sync()` writes outside `OUT_DIR` (the services' `.venv`s, lock files):
//! this crate opts in. `cargo_hsm::build::check()` writes nothing and fails
//! the build, with the command to run, when the environments are stale.
//! `CARGO_HSM_BUILD=off|check|sync` overrides the choice made here (CI sets
//! `check` after its own `cargo hsm sync --locked` step).
fn main() {
    cargo_hsm::build::sync().run();
}
