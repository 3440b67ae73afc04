//! Renderers of the Plan for the engines that run it: [`compose`] (the
//! compose file sync writes), [`kubernetes`] (`cargo hsm export kubernetes`)
//! and [`image`] (`cargo hsm image build`, the OCI images of environment
//! services that a cluster runs). They share the discovery values
//! ([`crate::discovery`]) and the env handling of the Plan, and never reach
//! back up the pipeline.

pub mod compose;
pub mod yaml;
