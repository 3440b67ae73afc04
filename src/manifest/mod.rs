//! Stage one of the pipeline: find and read the manifest and the registry,
//! keeping every source text so later errors can point into it.

mod load;
pub mod model;

pub use load::{
    load, load_with, Entry, Loaded, ManifestLocation, Overlay, Registry, MANIFEST_FILE,
};
