//! `mixsweep exec <run-dir>`: one run from start to finish in this process. Claims the run,
//! marks it running, trains, writes metrics.jsonl after each evaluation and result.json at the
//! end, marks it done or failed, and lets go of the claim. Everything it writes is atomic.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::spec::RunSpec;
use crate::spec::evaluate::EvalSettings;
use crate::store::records::{
    Failure, FailureClass, Progress, Provenance, RunResult, State, Status, hostname, now,
};
use crate::store::{self, RunFiles, atomic, claim};
use crate::train::device::DeviceChoice;
use crate::train::{self, Control, Ended, TrainError};

/// How `exec` ended; the process exit code follows from it.
#[derive(Debug, PartialEq)]
pub enum ExecOutcome {
    /// Done now, or already done before.
    Done,
    /// Failed and recorded as such in status.json.
    Failed(Failure),
    /// Stopped on request after a checkpoint; the next `exec` resumes it.
    Interrupted { epoch: usize, step: usize },
    /// Another live process holds the claim.
    ClaimedElsewhere,
    /// Trained (result.json is written), but the evaluation failed; the next sweep tries again.
    EvaluationFailed(String),
}

/// Options of one run's process.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The CPU thread pool size in use.
    pub threads: usize,
    /// Checkpoint after every this many epochs (0 = only at a stop and at the end).
    pub checkpoint_every: usize,
    /// Where to compute.
    pub device: DeviceChoice,
    /// What to measure on the trained model (`evaluate:` of the experiment); `None` = nothing
    /// beyond training's own test metrics.
    pub evaluate: Option<EvalSettings>,
    /// Scheduler test double: sleep this many seconds per epoch instead of training, and write
    /// a result marked `simulated` (reports leave it out). `None` = train.
    pub simulate: Option<f64>,
}

/// Runs (or resumes) the run in `run_dir`, then evaluates the trained model under
/// `opts.evaluate`; a run already trained is only evaluated (where it lacks the evaluation).
/// SIGINT and SIGTERM make training checkpoint at the next minibatch boundary and stop.
pub fn exec(run_dir: &Path, opts: &ExecOptions) -> Result<ExecOutcome, store::StoreError> {
    let io = |source| store::StoreError::Io {
        path: run_dir.to_path_buf(),
        source,
    };
    // The handlers come before anything is written: from here on a Ctrl-C is a stop request,
    // never a death that the scheduler would have to read as a crash.
    let stop = crate::signals::stop_flag().map_err(io)?;
    let Some(held) = claim::acquire(run_dir).map_err(io)? else {
        return Ok(ExecOutcome::ClaimedElsewhere);
    };
    // Holding the claim, every temporary left here by another process is stale.
    for dir in [run_dir.to_path_buf(), run_dir.join(RunFiles::CHECKPOINT)] {
        atomic::remove_stale(&dir).map_err(io)?;
    }
    if let Some(result) = store::read_result(run_dir)? {
        let outcome = if result.simulated {
            ExecOutcome::Done
        } else {
            evaluate(run_dir, opts)
        };
        held.release();
        return Ok(outcome);
    }
    if stop.load(Ordering::Relaxed) {
        // Stopped before the attempt began: nothing was changed, nothing is lost.
        held.release();
        return Ok(ExecOutcome::Interrupted { epoch: 0, step: 0 });
    }
    let status = store::begin_attempt(run_dir, std::env::var(crate::schedule::SLOT_ENV).ok())?;
    let outcome = match run_claimed(run_dir, opts, &stop, &status) {
        Ok(Claimed::Done(result)) => {
            atomic::write_json(&run_dir.join(RunFiles::RESULT), &result).map_err(io)?;
            store::end_attempt(run_dir, &status, State::Done, None)?;
            if result.simulated {
                ExecOutcome::Done
            } else {
                evaluate(run_dir, opts)
            }
        }
        Ok(Claimed::Stopped { epoch, step }) => {
            eprintln!(
                "stopped on request at epoch {epoch}, minibatch {step}; checkpoint written, the next sweep resumes it"
            );
            store::end_attempt(run_dir, &status, State::Interrupted, None)?;
            ExecOutcome::Interrupted { epoch, step }
        }
        Err(failure) => {
            eprintln!("run failed ({}): {}", failure.class, failure.reason);
            store::end_attempt(run_dir, &status, State::Failed, Some(failure.clone()))?;
            ExecOutcome::Failed(failure)
        }
    };
    held.release();
    Ok(outcome)
}

/// Evaluates the trained run in `run_dir` under `opts.evaluate` where it lacks the evaluation.
/// The caller holds the claim.
fn evaluate(run_dir: &Path, opts: &ExecOptions) -> ExecOutcome {
    let Some(settings) = &opts.evaluate else {
        return ExecOutcome::Done;
    };
    let made = train::device::open(opts.device)
        .map_err(|e| e.to_string())
        .and_then(|device| {
            crate::eval::evaluate_run(
                run_dir,
                settings,
                &device,
                &device_name(opts.device, opts.threads),
                false,
            )
            .map_err(|e| e.to_string())
        });
    match made {
        Ok(_) => ExecOutcome::Done,
        Err(reason) => {
            eprintln!("evaluation failed: {reason}");
            ExecOutcome::EvaluationFailed(reason)
        }
    }
}

/// How a device is named in provenance.
pub fn device_name(device: DeviceChoice, threads: usize) -> String {
    match device {
        DeviceChoice::Cpu => format!("cpu (burn flex, {threads} threads)"),
        other => crate::train::device::describe(other),
    }
}

/// How training of a claimed run ended, short of a failure.
enum Claimed {
    Done(Box<RunResult>),
    /// Stopped on request after a checkpoint at (epoch 1-based, minibatch).
    Stopped {
        epoch: usize,
        step: usize,
    },
}

/// Writes the epochs done into status.json, at most once a second (and always the last).
fn progress_writer<'a>(
    run_dir: &'a Path,
    status: &'a Status,
    epochs: usize,
) -> impl Fn(usize) + 'a {
    let last = std::cell::Cell::new(None::<std::time::Instant>);
    move |epoch| {
        if epoch < epochs && last.get().is_some_and(|t| t.elapsed().as_secs_f64() < 1.0) {
            return;
        }
        last.set(Some(std::time::Instant::now()));
        let mut s = status.clone();
        s.progress = Some(Progress { epoch, epochs });
        s.updated = now();
        // Progress is a courtesy to `status`: a failed write must not fail the run.
        let _ = store::write_status(run_dir, &s);
    }
}

/// Sleeps through the run's epochs as `--simulate` asks, reporting progress, and returns a
/// result marked simulated.
fn simulate(
    spec: &RunSpec,
    (id, slug): (&str, &str),
    seconds_per_epoch: f64,
    stop: &AtomicBool,
    on_epoch: &dyn Fn(usize),
) -> Result<Claimed, Failure> {
    let started = std::time::Instant::now();
    for epoch in 1..=spec.train.epochs {
        let until = started + std::time::Duration::from_secs_f64(seconds_per_epoch * epoch as f64);
        while std::time::Instant::now() < until {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(Claimed::Stopped { epoch, step: 0 });
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(std::time::Instant::now())
                    .min(std::time::Duration::from_millis(20)),
            );
        }
        on_epoch(epoch);
    }
    let m = crate::store::records::EpochMetrics {
        epoch: spec.train.epochs,
        lr: 0.0,
        train_loss: 0.0,
        test_error: 0.0,
        test_nll: 0.0,
        val_error: None,
        val_nll: None,
        elapsed: started.elapsed().as_secs_f64(),
    };
    Ok(Claimed::Done(Box::new(RunResult {
        id: id.to_string(),
        slug: slug.to_string(),
        final_metrics: m.clone(),
        best_on_test: m,
        best_on_validation: None,
        provenance: provenance(
            "simulated".into(),
            0,
            started.elapsed().as_secs_f64(),
            0.0,
            0.0,
            0,
        ),
        simulated: true,
        runner: None,
        evaluations: Vec::new(),
    })))
}

/// The provenance of a result made by this binary on this host.
fn provenance(
    device: String,
    threads: usize,
    wall_time: f64,
    train_examples_per_sec: f64,
    data_wait_fraction: f64,
    resumed_from_epoch: usize,
) -> Provenance {
    Provenance {
        mixsweep_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: env!("MIXSWEEP_GIT_COMMIT").to_string(),
        burn_version: train::BURN_VERSION.to_string(),
        device,
        threads,
        host: hostname(),
        wall_time,
        train_examples_per_sec,
        data_wait_fraction,
        resumed_from_epoch,
    }
}

/// Trains the claimed run.
fn run_claimed(
    run_dir: &Path,
    opts: &ExecOptions,
    stop: &AtomicBool,
    status: &Status,
) -> Result<Claimed, Failure> {
    let spec_path = run_dir.join(RunFiles::SPEC);
    let bad_spec = |reason: String| Failure {
        class: FailureClass::BadSpec,
        reason,
    };
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| bad_spec(format!("{}: {e}", spec_path.display())))?;
    let spec = RunSpec::from_yaml(&text, &spec_path.display().to_string())
        .map_err(|e| bad_spec(e.to_string()))?;
    let id = store::run_id(&spec).map_err(|e| bad_spec(e.to_string()))?;
    let slug = store::slug_of(run_dir);
    let dir_name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !dir_name.ends_with(&id[..12]) {
        return Err(bad_spec(format!(
            "spec.yaml hashes to {} but the directory is {dir_name}: it was edited by hand",
            &id[..12]
        )));
    }
    let visible = std::env::var("CUDA_VISIBLE_DEVICES")
        .map(|v| format!(", CUDA_VISIBLE_DEVICES={v}"))
        .unwrap_or_default();
    let slot = status
        .slot
        .as_ref()
        .map(|s| format!(" on slot {s}"))
        .unwrap_or_default();
    eprintln!(
        "run {} ({}){slot}: device {}, {} threads{visible}\n{}",
        slug,
        &id[..12],
        opts.device,
        opts.threads,
        text
    );
    let on_epoch = progress_writer(run_dir, status, spec.train.epochs);
    if let Some(seconds) = opts.simulate {
        return simulate(&spec, (&id, &slug), seconds, stop, &on_epoch);
    }
    if let Some(ext) = &spec.runner {
        return run_external(&spec, ext, run_dir, opts, stop, &on_epoch, (id, slug));
    }
    let metrics_path = run_dir.join(RunFiles::METRICS);
    let mut write_metrics =
        |history: &[crate::store::records::EpochMetrics]| -> std::io::Result<()> {
            if let Some(m) = history.last() {
                eprintln!(
                    "epoch {:>5}  lr {:.2e}  train loss {:.4}  test error {:.2}%  test NLL {:.4}",
                    m.epoch,
                    m.lr,
                    m.train_loss,
                    100.0 * m.test_error,
                    m.test_nll
                );
            }
            write_history(&metrics_path, history)
        };
    let device = train::device::open(opts.device).map_err(|e| Failure {
        class: FailureClass::NoDevice,
        reason: e.to_string(),
    })?;
    let checkpoint_dir = run_dir.join(RunFiles::CHECKPOINT);
    let control = Control {
        device: &device,
        device_name: device_name(opts.device, opts.threads),
        checkpoint_dir: Some(&checkpoint_dir),
        checkpoint_every: opts.checkpoint_every,
        stop,
        on_epoch: &on_epoch,
    };
    let ended = train::train(&spec, &control, &mut write_metrics).map_err(|e| match e {
        TrainError::Diverged { .. } => Failure {
            class: FailureClass::Diverged,
            reason: e.to_string(),
        },
        TrainError::Data(_) => Failure {
            class: FailureClass::BadData,
            reason: e.to_string(),
        },
        TrainError::DeviceRead(ref read) if read.out_of_memory().is_some() => Failure {
            class: FailureClass::Oom,
            reason: format!(
                "the device ran out of memory: {}",
                read.out_of_memory().unwrap_or_default()
            ),
        },
        TrainError::Io(_) | TrainError::Checkpoint(_) | TrainError::DeviceRead(_) => Failure {
            class: FailureClass::Crashed,
            reason: e.to_string(),
        },
    })?;
    let outcome = match ended {
        Ended::Finished(outcome) => outcome,
        Ended::Stopped { epoch, step } => return Ok(Claimed::Stopped { epoch, step }),
    };
    let provenance = provenance(
        outcome.device,
        opts.threads,
        outcome.wall_time,
        outcome.train_examples_per_sec,
        outcome.data_wait_fraction,
        outcome.resumed_from_epoch,
    );
    result_of(&outcome.history, (id, slug), provenance, None)
}

/// The result of a run whose evaluated epochs were `history`: the final epoch, the best on
/// the test set and, with a validation split, the best on it.
fn result_of(
    history: &[crate::store::records::EpochMetrics],
    (id, slug): (String, String),
    provenance: Provenance,
    runner: Option<String>,
) -> Result<Claimed, Failure> {
    let (Some(final_metrics), Some(best)) = (
        history.last().cloned(),
        history
            .iter()
            .min_by(|a, b| a.test_error.total_cmp(&b.test_error))
            .cloned(),
    ) else {
        return Err(Failure {
            class: FailureClass::Crashed,
            reason: "training ended without an evaluation".into(),
        });
    };
    Ok(Claimed::Done(Box::new(RunResult {
        id,
        slug,
        final_metrics,
        best_on_test: best,
        best_on_validation: history
            .iter()
            .filter_map(|m| m.val_error.map(|v| (v, m)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, m)| m.clone()),
        provenance,
        simulated: false,
        runner,
        evaluations: Vec::new(),
    })))
}

/// Writes metrics.jsonl: one JSON line per evaluated epoch, atomically.
fn write_history(
    path: &Path,
    history: &[crate::store::records::EpochMetrics],
) -> std::io::Result<()> {
    let mut text = String::new();
    for m in history {
        text.push_str(&serde_json::to_string(m).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    atomic::write(path, text.as_bytes())
}

/// Trains the claimed run with its external program (src/external.rs); its metrics become
/// metrics.jsonl and result.json as ours do.
fn run_external(
    spec: &RunSpec,
    ext: &crate::spec::runner::External,
    run_dir: &Path,
    opts: &ExecOptions,
    stop: &AtomicBool,
    on_epoch: &dyn Fn(usize),
    names: (String, String),
) -> Result<Claimed, Failure> {
    let ended = crate::external::run(spec, ext, run_dir, opts.threads, stop, on_epoch)?;
    let (history, wall_time, command) = match ended {
        crate::external::Ended::Stopped { epoch } => {
            return Ok(Claimed::Stopped { epoch, step: 0 });
        }
        crate::external::Ended::Finished {
            history,
            wall_time,
            command,
        } => (history, wall_time, command),
    };
    let metrics = run_dir.join(RunFiles::METRICS);
    write_history(&metrics, &history).map_err(|e| Failure {
        class: FailureClass::Crashed,
        reason: format!("{}: {e}", metrics.display()),
    })?;
    let program = ext.command.first().cloned().unwrap_or_default();
    let provenance = provenance(
        format!("{} via {program}", opts.device),
        opts.threads,
        wall_time,
        0.0,
        0.0,
        0,
    );
    result_of(&history, names, provenance, Some(command))
}
