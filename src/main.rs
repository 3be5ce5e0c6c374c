//! The `mixsweep` binary: everything is in the library; see `cli`.
fn main() -> std::process::ExitCode {
    mixsweep::cli::main()
}
