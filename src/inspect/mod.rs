//! Stage four: inspect what sync made — HSM's EnvironmentInspector, as a
//! check that fails on drift instead of printing warnings.

pub mod env;
