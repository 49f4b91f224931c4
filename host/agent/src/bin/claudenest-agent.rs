//! The `claudenest-agent` binary: the machine agent alone (`claudenest agent` runs the same code).

fn main() -> std::process::ExitCode {
    claudenest_agent::cli::main()
}
