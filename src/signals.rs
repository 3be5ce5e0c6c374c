//! Ctrl-C and SIGTERM as a stop request: the one place that installs the handlers, shared by a
//! sweep (which stops its children at their checkpoints) and a run's own process (which
//! checkpoints at the next minibatch). Neither layer owns it, so neither imports the other.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A flag that SIGINT and SIGTERM set. A second signal, with the flag already set, ends the
/// process at once (exit code 130): the usual double Ctrl-C.
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}
