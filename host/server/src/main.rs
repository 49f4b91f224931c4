//! The `claudenest` binary: parse the command line and hand over to [`claudenest::cli`].

fn main() -> std::process::ExitCode {
    claudenest::cli::main()
}
