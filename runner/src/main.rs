//! The `kiln` binary: a thin shell over [`kiln::cli`].

fn main() -> std::process::ExitCode {
    kiln::cli::main()
}
