//! The `kiln` command line for the end-to-end tests (see Cargo.toml).

fn main() -> std::process::ExitCode {
    kiln::cli::main()
}
