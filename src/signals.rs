//! Ctrl-C and SIGTERM as a stop request: the one place that installs the handlers, shared by a
//! sweep (which stops its children at their checkpoints) and a run's own process (which
//! checkpoints at the next minibatch). Neither layer owns it, so neither imports the other.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A flag that SIGINT and SIGTERM set. A second SIGINT, with the flag already set, ends the
/// process at once (exit code 130): the usual double Ctrl-C. A SIGTERM never does: after a
/// Ctrl-C has reached a whole process group, the sweep passes its stop on to its children as
/// SIGTERM, and that must not read as the user's second Ctrl-C (the child would then exit
/// without its checkpoint).
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        Arc::clone(&stop),
    )?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}
