//! The `mixsweep` binary: everything is in the library; see `cli`.
fn main() -> std::process::ExitCode {
    // Output piped into `head` ends quietly, as with other command-line tools.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    mixsweep::cli::main()
}
