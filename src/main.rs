//! The `mixsweep` binary: everything is in the library; see `cli`.
fn main() -> std::process::ExitCode {
    // Output piped into `head` ends quietly, as with other command-line tools.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Freed tensors stay in the heap instead of going back to the kernel (train::allocator).
    mixsweep::train::allocator::keep_freed_memory();
    mixsweep::cli::main()
}
