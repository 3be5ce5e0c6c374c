//! Running the pending runs of an experiment, each in a child process (`mixsweep exec`), so a
//! crash, a panic or a NaN stays inside its run. Sequential for now: one run at a time, on all
//! the CPU threads given.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::spec::Experiment;
use crate::train::device::DeviceChoice;
use crate::store::records::{Failure, FailureClass, State};
use crate::store::{self, PlannedRun, RunState, Store, StoreError};

/// Exit code of `mixsweep exec` when another live process holds the run's claim.
pub const EXIT_CLAIMED_ELSEWHERE: i32 = 3;
/// Exit code of `mixsweep exec` and `sweep` when stopped by Ctrl-C or SIGTERM (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Options of a sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Threads each run may use; `None` = all cores.
    pub threads: Option<usize>,
    /// Take failed runs again.
    pub rerun_failed: bool,
    /// Each run checkpoints after every this many epochs.
    pub checkpoint_every: usize,
    /// The device every run computes on.
    pub device: DeviceChoice,
}

/// A run that failed, with where to read why.
#[derive(Debug, Clone)]
pub struct FailedRun {
    pub slug: String,
    pub dir: PathBuf,
    pub failure: Failure,
    pub log: Option<PathBuf>,
}

/// What a sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepSummary {
    pub total: usize,
    pub already_done: usize,
    pub ran: usize,
    pub done_now: usize,
    pub running_elsewhere: usize,
    /// Trained runs that lacked the experiment's evaluation and were evaluated now.
    pub evaluated: usize,
    pub failed: Vec<FailedRun>,
    /// Stopped by Ctrl-C or SIGTERM: the run in progress checkpointed, the rest did not start.
    pub stopped: bool,
}

/// Plans `exp` into `store` and runs every run that is pending or interrupted (and failed,
/// with `rerun_failed`), and evaluates every trained run that lacks the experiment's
/// evaluation (without retraining it).
pub fn sweep(exp: &Experiment, store: &Store, opts: &SweepOptions) -> Result<SweepSummary, StoreError> {
    let runs = store.write_plan(exp)?;
    let mut summary = SweepSummary { total: runs.len(), ..Default::default() };
    let mut todo: Vec<&PlannedRun> = Vec::new();
    let mut to_evaluate = 0;
    for run in &runs {
        match store::run_state(&run.dir)? {
            RunState::Done if unevaluated(run, exp)? => {
                summary.already_done += 1;
                to_evaluate += 1;
                todo.push(run);
            }
            RunState::Done => summary.already_done += 1,
            RunState::Running(_) => summary.running_elsewhere += 1,
            RunState::Failed(f) if !opts.rerun_failed => summary.failed.push(failed_run(run, f)),
            _ => todo.push(run),
        }
    }
    if todo.is_empty() {
        println!("{}: all {} runs already done; nothing to run{}.", exp.name, summary.already_done, remainder(&summary));
        return Ok(summary);
    }
    let evaluations = if to_evaluate > 0 { format!(" ({to_evaluate} of them trained, to evaluate under settings {})", exp.evaluate.id()) } else { String::new() };
    println!("{}: {} runs planned, {} done, {} to run{evaluations}{}.", exp.name, summary.total, summary.already_done, todo.len(), remainder(&summary));
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let io = |source| StoreError::Io { path: store.root.clone(), source };
    let stop = crate::exec::stop_flag().map_err(io)?;
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {elapsed} elapsed, ~{eta} left  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    for (i, run) in todo.iter().enumerate() {
        let name = run.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| run.slug.clone());
        bar.set_message(name.clone());
        let started = Instant::now();
        let trained_before = store::read_result(&run.dir)?.is_some();
        let status = run_child(&run.dir, threads, opts, &stop)?;
        summary.ran += 1;
        let state = settle(&run.dir, status)?;
        let seconds = started.elapsed().as_secs_f64();
        let line = match &state {
            RunState::Done if unevaluated(run, exp)? => {
                summary.done_now += !trained_before as usize;
                let failure = Failure { class: FailureClass::Evaluation, reason: "the evaluation of the trained model failed; the next sweep tries again".into() };
                summary.failed.push(failed_run(run, failure));
                format!("{} but its evaluation FAILED (see the log)", if trained_before { "trained before" } else { "trained" })
            }
            RunState::Done if trained_before => {
                summary.evaluated += 1;
                format!("evaluated in {seconds:.1} s")
            }
            RunState::Done => {
                summary.done_now += 1;
                match store::read_result(&run.dir)? {
                    Some(r) => format!("done in {seconds:.1} s: test error {:.2}%, test NLL {:.4}", 100.0 * r.final_metrics.test_error, r.final_metrics.test_nll),
                    None => format!("done in {seconds:.1} s"),
                }
            }
            RunState::Running(owner) => {
                summary.running_elsewhere += 1;
                format!("taken by another scheduler ({}:{})", owner.host, owner.pid)
            }
            RunState::Failed(f) => {
                summary.failed.push(failed_run(run, f.clone()));
                format!("FAILED ({}): {}", f.class, f.reason)
            }
            RunState::Interrupted => {
                summary.stopped = true;
                "stopped; its checkpoint is kept and the next sweep resumes it".to_string()
            }
            other => format!("ended as {}", other.label()),
        };
        let line = format!("[{}/{}] {name}  {line}", i + 1, todo.len());
        // A hidden bar (output not a terminal) prints nothing, so print the line ourselves.
        if bar.is_hidden() { println!("{line}") } else { bar.println(line) }
        bar.inc(1);
        if stop.load(Ordering::Relaxed) {
            summary.stopped = true;
            break;
        }
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// Whether a trained run lacks an evaluation under the experiment's settings.
fn unevaluated(run: &PlannedRun, exp: &Experiment) -> Result<bool, StoreError> {
    Ok(store::read_result(&run.dir)?.is_some_and(|r| !crate::eval::missing(&run.dir, &r, &exp.evaluate).is_empty()))
}

fn remainder(s: &SweepSummary) -> String {
    let mut parts = Vec::new();
    if s.running_elsewhere > 0 {
        parts.push(format!("{} running elsewhere", s.running_elsewhere));
    }
    if !s.failed.is_empty() {
        parts.push(format!("{} failed (rerun with --rerun failed)", s.failed.len()));
    }
    if parts.is_empty() { String::new() } else { format!("; {}", parts.join(", ")) }
}

fn failed_run(run: &PlannedRun, failure: Failure) -> FailedRun {
    FailedRun { slug: run.slug.clone(), dir: run.dir.clone(), failure, log: store::attempt_logs(&run.dir).pop() }
}

/// Starts `mixsweep exec <dir>` with its output in the next attempt log, and waits for it.
/// When `stop` is set (Ctrl-C reaches the child by itself; SIGTERM does not), the child is
/// sent SIGTERM so that it checkpoints and stops.
fn run_child(dir: &Path, threads: usize, opts: &SweepOptions, stop: &AtomicBool) -> Result<ExitStatus, StoreError> {
    let io = |source| StoreError::Io { path: dir.to_path_buf(), source };
    let attempt = store::attempt_logs(dir).len() + 1;
    let log = File::create(dir.join(format!("attempt-{attempt}.log"))).map_err(io)?;
    let mut cmd = Command::new(own_executable().map_err(io)?);
    cmd.arg("exec").arg(dir).arg("--threads").arg(threads.to_string()).arg("--checkpoint-every").arg(opts.checkpoint_every.to_string()).arg("--device").arg(opts.device.to_string());
    cmd.env("RAYON_NUM_THREADS", threads.to_string());
    cmd.stdin(Stdio::null()).stdout(log.try_clone().map_err(io)?).stderr(log);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(io)?;
    let mut forwarded = false;
    loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            return Ok(status);
        }
        if stop.load(Ordering::Relaxed) && !forwarded {
            forwarded = true;
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The scheduler's own binary. On Linux `/proc/self/exe`, which stays this very binary even
/// when a rebuild replaces the file mid-sweep, so every run of a sweep uses the same code.
fn own_executable() -> std::io::Result<PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if proc_exe.exists() { Ok(proc_exe.to_path_buf()) } else { std::env::current_exe() }
}

/// On Linux the child is killed if the scheduler dies, so a killed sweep leaves no orphan
/// training on; its claim is freed and the next sweep re-runs it.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
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
fn die_with_parent(_cmd: &mut Command) {}

/// The run's state after its child ended. A child that died without recording an outcome
/// (a signal, a panic, an abort) is recorded here as crashed.
fn settle(dir: &Path, exit: ExitStatus) -> Result<RunState, StoreError> {
    let state = store::run_state(dir)?;
    if exit.code() == Some(EXIT_CLAIMED_ELSEWHERE) || exit.code() == Some(EXIT_INTERRUPTED) {
        return Ok(state);
    }
    if let RunState::Interrupted | RunState::Pending = state {
        let mut status = store::read_status(dir)?.unwrap_or_else(store::records::Status::pending);
        status.state = State::Failed;
        let failure = Failure { class: FailureClass::Crashed, reason: format!("the run process ended with {exit} without recording an outcome") };
        status.failure = Some(failure.clone());
        status.updated = store::records::now();
        store::write_status(dir, &status)?;
        return Ok(RunState::Failed(failure));
    }
    Ok(state)
}
