// Only the binary picks the allocator: build scripts using the library keep theirs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cargo_hsm::cli::main());
}
