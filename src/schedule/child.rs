//! One run's attempt as the pool sees it (`Attempt`, started by a `Launcher`), and the real
//! one: a child process started as `mixsweep exec <dir>` on a slot, with its output in the
//! run's next attempt log; killed with the scheduler (PDEATHSIG); and, when it has ended, its
//! outcome read back from the run directory and classified. The pool's tests put a fake
//! behind the same traits.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::devices::Slot;
use crate::store::records::{self, Failure, FailureClass};
use crate::store::{self, PlannedRun, RunState, StoreError, claim};

/// Exit code of `mixsweep exec` when another live process holds the run's claim.
pub const EXIT_CLAIMED_ELSEWHERE: i32 = 3;
/// Exit code of `mixsweep exec` and `sweep` when stopped by Ctrl-C or SIGTERM (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// What the child is asked to do beyond the run directory.
#[derive(Debug, Clone, Default)]
pub struct ChildArgs {
    pub checkpoint_every: usize,
    pub simulate: Option<f64>,
    /// The store root, passed on so the child sees the same store.
    pub store: Option<PathBuf>,
}

/// A started attempt of one run.
pub trait Attempt {
    /// How it ended, once it has; `None` while it runs.
    fn poll(&mut self) -> Result<Option<Ended>, StoreError>;
    /// Asks it to checkpoint and stop, saying why (the outcome is classified by it).
    fn terminate(&mut self, why: Terminated);
}

/// Starts attempts on slots.
pub trait Launcher {
    /// Starts `run` on `slot`; `evaluate_only` when it is trained and only lacks its evaluation.
    fn launch(
        &mut self,
        run: &PlannedRun,
        slot: &Slot,
        evaluate_only: bool,
    ) -> Result<Box<dyn Attempt>, StoreError>;
}

/// Launches `mixsweep exec` child processes.
pub struct Processes {
    pub args: ChildArgs,
}

impl Launcher for Processes {
    fn launch(
        &mut self,
        run: &PlannedRun,
        slot: &Slot,
        evaluate_only: bool,
    ) -> Result<Box<dyn Attempt>, StoreError> {
        let attempts_before = attempts(&run.dir)?;
        let child = spawn(&run.dir, slot, &self.args)?;
        Ok(Box::new(Process {
            child,
            dir: run.dir.clone(),
            evaluate_only,
            attempts_before,
            terminated: None,
        }))
    }
}

/// A `mixsweep exec` child.
struct Process {
    child: Child,
    dir: PathBuf,
    evaluate_only: bool,
    /// The run's attempts when the child started: a child that ends with the run done but
    /// the count unchanged found it done by another scheduler.
    attempts_before: u32,
    terminated: Option<Terminated>,
}

impl Attempt for Process {
    fn poll(&mut self) -> Result<Option<Ended>, StoreError> {
        let exited = self.child.try_wait().map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let Some(exit) = exited else { return Ok(None) };
        let mut ended = settle(&self.dir, exit, self.terminated)?;
        if ended == Ended::Done
            && !self.evaluate_only
            && attempts(&self.dir)? == self.attempts_before
        {
            ended = Ended::ClaimedElsewhere;
        }
        Ok(Some(ended))
    }

    fn terminate(&mut self, why: Terminated) {
        // The first reason sticks: a run stopped at its time limit stays a timeout.
        self.terminated.get_or_insert(why);
        terminate(&self.child);
    }
}

/// How many times a process has started the run.
fn attempts(dir: &Path) -> Result<u32, StoreError> {
    Ok(store::read_status(dir)?.map(|s| s.attempts).unwrap_or(0))
}

/// Starts `mixsweep exec <dir>` on `slot`.
fn spawn(dir: &Path, slot: &Slot, args: &ChildArgs) -> Result<Child, StoreError> {
    let io = |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let attempt = store::attempt_logs(dir).len() + 1;
    let log = File::create(dir.join(format!("attempt-{attempt}.log"))).map_err(io)?;
    let mut cmd = Command::new(own_executable().map_err(io)?);
    if let Some(root) = &args.store {
        cmd.arg("--store").arg(root);
    }
    cmd.arg("exec")
        .arg(dir)
        .arg("--threads")
        .arg(slot.threads.to_string())
        .arg("--checkpoint-every")
        .arg(args.checkpoint_every.to_string())
        .arg("--device")
        .arg(slot.child_device.to_string());
    if let Some(s) = args.simulate {
        cmd.arg("--simulate").arg(s.to_string());
    }
    cmd.envs(slot.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.env(super::SLOT_ENV, &slot.label);
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log);
    die_with_parent(&mut cmd);
    cmd.spawn().map_err(io)
}

/// Sends SIGTERM to a child: it checkpoints at the next minibatch and exits 130.
fn terminate(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// The scheduler's own binary. On Linux `/proc/self/exe`, which stays this very binary even
/// when a rebuild replaces the file mid-sweep, so every run of a sweep uses the same code.
fn own_executable() -> std::io::Result<PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() {
        Ok(proc_exe.to_path_buf())
    } else {
        std::env::current_exe()
    }
}

/// On Linux the child is killed if the scheduler dies, so a killed sweep leaves no orphan
/// training on; its claim is freed and the next sweep re-runs it. `exec` does the same for an
/// external training program (src/external.rs).
#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut Command) {}

/// Why the scheduler sent a child SIGTERM, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminated {
    /// The sweep is stopping (Ctrl-C, SIGTERM).
    Stop,
    /// The run passed the sweep's per-run time limit.
    Timeout,
}

/// How a child's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Done,
    /// Stopped on the sweep's request; resumes at the next sweep.
    Stopped,
    ClaimedElsewhere,
    Failed(Failure),
}

/// Reads the outcome of the run in `dir` after its child exited with `exit`, classifies it, and
/// records a failure the child could not record itself (a signal, a panic, an abort) — under
/// the run's claim, so that the status of a run another live process holds is never
/// overwritten (`ClaimedElsewhere` then).
pub fn settle(
    dir: &Path,
    exit: ExitStatus,
    terminated: Option<Terminated>,
) -> Result<Ended, StoreError> {
    use std::os::unix::process::ExitStatusExt;
    if exit.code() == Some(EXIT_CLAIMED_ELSEWHERE) {
        return Ok(Ended::ClaimedElsewhere);
    }
    let stop_signal = matches!(exit.signal(), Some(libc::SIGINT | libc::SIGTERM));
    let state = store::run_state(dir)?;
    let failure = match (state, exit.code(), terminated) {
        (RunState::Done, Some(0), _) => return Ok(Ended::Done),
        (RunState::Done, _, _) => Failure {
            class: FailureClass::Evaluation,
            reason: "trained, but the evaluation of the trained model failed; the next sweep tries again".into(),
        },
        (RunState::Running(_), _, _) => return Ok(Ended::ClaimedElsewhere),
        (RunState::Failed(f), _, _)
            if f.class == FailureClass::Crashed && ran_out_of_memory(dir) =>
        {
            Failure {
                class: FailureClass::Oom,
                reason: f.reason,
            }
        }
        (RunState::Failed(f), _, _) => return Ok(Ended::Failed(f)),
        (_, Some(EXIT_INTERRUPTED), Some(Terminated::Stop)) => return Ok(Ended::Stopped),
        // A child killed by the stop's own SIGINT or SIGTERM (before it could install its
        // handlers) was stopped too: what it wrote is intact.
        (_, None, Some(Terminated::Stop)) if stop_signal => return Ok(Ended::Stopped),
        (_, Some(EXIT_INTERRUPTED), Some(Terminated::Timeout)) => Failure {
            class: FailureClass::Timeout,
            reason: "stopped at the sweep's per-run time limit after a checkpoint".into(),
        },
        (_, Some(EXIT_INTERRUPTED), None) => Failure {
            class: FailureClass::Interrupted,
            reason: "stopped by a SIGTERM or SIGINT from outside the sweep, after a checkpoint"
                .into(),
        },
        _ if ran_out_of_memory(dir) => Failure {
            class: FailureClass::Oom,
            reason: format!("out of memory: the run process ended with {exit}"),
        },
        _ => Failure {
            class: FailureClass::Crashed,
            reason: format!(
                "the run process ended with {exit} without recording an outcome{}",
                signal_hint(exit)
            ),
        },
    };
    if failure.class != FailureClass::Evaluation {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let Some(held) = claim::acquire(dir).map_err(io)? else {
            return Ok(Ended::ClaimedElsewhere);
        };
        store::record_failure(dir, &failure)?;
        held.release();
    }
    Ok(Ended::Failed(failure))
}

fn signal_hint(exit: ExitStatus) -> &'static str {
    use std::os::unix::process::ExitStatusExt;
    match exit.signal() {
        Some(9) => {
            " (SIGKILL: killed by hand, by a cluster, or by the kernel's out-of-memory killer)"
        }
        Some(6) => " (SIGABRT: an abort, e.g. a failed allocation)",
        Some(11) => " (SIGSEGV)",
        _ => "",
    }
}

/// Whether the run's last attempt log says it ran out of memory (host or device).
fn ran_out_of_memory(dir: &Path) -> bool {
    let Some(log) = store::attempt_logs(dir).pop() else {
        return false;
    };
    let Ok(mut file) = File::open(&log) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    records::out_of_memory_line(&String::from_utf8_lossy(&bytes)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// A run directory whose status says `running` (`attempts` of them).
    fn running(dir: &Path, attempts: u32) -> store::records::Status {
        let status = store::records::Status {
            state: store::records::State::Running,
            attempts,
            ..store::records::Status::pending()
        };
        store::write_status(dir, &status).unwrap();
        status
    }

    #[test]
    fn a_crash_whose_log_says_out_of_memory_is_an_oom_and_sigkill_is_explained() {
        let tmp = crate::testing::TempDir::new().unwrap();
        let dir = tmp.path();
        running(dir, 0);
        std::fs::write(
            dir.join("attempt-1.log"),
            "epoch 3\nthread 'main' panicked: CUDA_ERROR_OUT_OF_MEMORY while allocating\n",
        )
        .unwrap();
        // Exit code 101: a Rust panic.
        let ended = settle(dir, ExitStatus::from_raw(101 << 8), None).unwrap();
        assert!(
            matches!(&ended, Ended::Failed(f) if f.class == FailureClass::Oom),
            "{ended:?}"
        );
        running(dir, 0);
        std::fs::write(dir.join("attempt-2.log"), "epoch 3\n").unwrap();
        let ended = settle(dir, ExitStatus::from_raw(9), None).unwrap();
        assert!(
            matches!(&ended, Ended::Failed(f) if f.class == FailureClass::Crashed && f.reason.contains("SIGKILL")),
            "{ended:?}"
        );
        assert_eq!(
            store::read_status(dir).unwrap().unwrap().state,
            store::records::State::Failed
        );
    }

    #[test]
    fn a_child_killed_by_the_stops_own_signal_was_stopped_not_crashed() {
        // Ctrl-C reaches the child with the scheduler; before the child installs its handlers
        // SIGINT kills it outright. During a requested stop that is a stop: the run must stay
        // resumable, not become `failed: crashed` (which the next sweep would skip).
        let tmp = crate::testing::TempDir::new().unwrap();
        let dir = tmp.path();
        running(dir, 1);
        for signal in [libc::SIGINT, libc::SIGTERM] {
            let ended = settle(dir, ExitStatus::from_raw(signal), Some(Terminated::Stop)).unwrap();
            assert_eq!(ended, Ended::Stopped);
            assert_eq!(
                store::run_state(dir).unwrap(),
                RunState::Interrupted,
                "the next sweep resumes it"
            );
        }
        // Without a stop, the same death is a crash.
        let ended = settle(dir, ExitStatus::from_raw(libc::SIGINT), None).unwrap();
        assert!(matches!(ended, Ended::Failed(f) if f.class == FailureClass::Crashed));
    }

    #[test]
    fn settle_never_overwrites_the_status_of_a_run_another_process_holds() {
        // Another live process (here: this test, through a second claim) holds the run: a
        // scheduler settling its own dead child must leave that process's status alone.
        let tmp = crate::testing::TempDir::new().unwrap();
        let dir = tmp.path();
        let running = running(dir, 2);
        let held = claim::acquire(dir).unwrap().expect("claim");
        let ended = settle(dir, ExitStatus::from_raw(9), None).unwrap();
        assert_eq!(ended, Ended::ClaimedElsewhere);
        assert_eq!(store::read_status(dir).unwrap().unwrap(), running);
        held.release();
    }
}
