//! Starts nothing by itself: it shows where the build script put the
//! service this crate talks to.
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("python/greeter/.venv/bin/python");
    println!("greeter's interpreter: {}", python.display());
}
