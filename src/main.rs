fn main() {
    std::process::exit(cargo_hsm::cli::main());
}
