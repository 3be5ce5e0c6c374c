//! `mixsweep exec <run-dir>`: one run from start to finish in this process. Claims the run,
//! marks it running, trains, writes metrics.jsonl after each evaluation and result.json at the
//! end, marks it done or failed, and lets go of the claim. Everything it writes is atomic.

use std::path::Path;

use crate::spec::RunSpec;
use crate::store::records::{Failure, FailureClass, Provenance, RunResult, State, Status, hostname, now};
use crate::store::{self, RunFiles, atomic, claim};
use crate::train::{self, TrainError};

/// How `exec` ended; the process exit code follows from it.
#[derive(Debug, PartialEq)]
pub enum ExecOutcome {
    /// Done now, or already done before.
    Done,
    /// Failed and recorded as such in status.json.
    Failed(Failure),
    /// Another live process holds the claim.
    ClaimedElsewhere,
}

/// The version of burn we build against (pinned exactly in Cargo.toml).
pub const BURN_VERSION: &str = "0.22.1";

/// Runs the run in `run_dir`; `threads` is the CPU thread pool size in use.
pub fn exec(run_dir: &Path, threads: usize) -> Result<ExecOutcome, store::StoreError> {
    let io = |source| store::StoreError::Io { path: run_dir.to_path_buf(), source };
    if store::read_result(run_dir)?.is_some() {
        return Ok(ExecOutcome::Done);
    }
    let Some(held) = claim::acquire(run_dir).map_err(io)? else {
        return Ok(ExecOutcome::ClaimedElsewhere);
    };
    let mut status = store::read_status(run_dir)?.unwrap_or_else(Status::pending);
    status.state = State::Running;
    status.attempts += 1;
    status.failure = None;
    status.host = Some(hostname());
    status.pid = Some(std::process::id());
    status.updated = now();
    store::write_status(run_dir, &status)?;

    let outcome = run_claimed(run_dir, threads);
    let outcome = match outcome {
        Ok(result) => {
            atomic::write_json(&run_dir.join(RunFiles::RESULT), &result).map_err(io)?;
            status.state = State::Done;
            ExecOutcome::Done
        }
        Err(failure) => {
            eprintln!("run failed ({}): {}", failure.class, failure.reason);
            status.state = State::Failed;
            status.failure = Some(failure.clone());
            ExecOutcome::Failed(failure)
        }
    };
    status.updated = now();
    store::write_status(run_dir, &status)?;
    held.release();
    Ok(outcome)
}

fn run_claimed(run_dir: &Path, threads: usize) -> Result<RunResult, Failure> {
    let spec_path = run_dir.join(RunFiles::SPEC);
    let bad_spec = |reason: String| Failure { class: FailureClass::BadSpec, reason };
    let text = std::fs::read_to_string(&spec_path).map_err(|e| bad_spec(format!("{}: {e}", spec_path.display())))?;
    let spec = RunSpec::from_yaml(&text, &spec_path.display().to_string()).map_err(|e| bad_spec(e.to_string()))?;
    let id = store::run_id(&spec);
    let dir_name = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !dir_name.ends_with(&id[..12]) {
        return Err(bad_spec(format!("spec.yaml hashes to {} but the directory is {dir_name}: it was edited by hand", &id[..12])));
    }
    eprintln!("run {} ({})\n{}", spec.slug(), &id[..12], spec.to_yaml());
    let metrics_path = run_dir.join(RunFiles::METRICS);
    let mut write_metrics = |history: &[crate::store::records::EpochMetrics]| -> std::io::Result<()> {
        let mut text = String::new();
        for m in history {
            text.push_str(&serde_json::to_string(m).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        if let Some(m) = history.last() {
            eprintln!("epoch {:>5}  lr {:.2e}  train loss {:.4}  test error {:.2}%  test NLL {:.4}", m.epoch, m.lr, m.train_loss, 100.0 * m.test_error, m.test_nll);
        }
        atomic::write(&metrics_path, text.as_bytes())
    };
    let outcome = train::train(&spec, &mut write_metrics).map_err(|e| match e {
        TrainError::Diverged { .. } => Failure { class: FailureClass::Diverged, reason: e.to_string() },
        TrainError::Io(_) => Failure { class: FailureClass::Crashed, reason: e.to_string() },
    })?;
    let (Some(final_metrics), Some(best)) = (outcome.history.last().cloned(), outcome.history.iter().min_by(|a, b| a.test_error.total_cmp(&b.test_error)).cloned()) else {
        return Err(Failure { class: FailureClass::Crashed, reason: "training ended without an evaluation".into() });
    };
    Ok(RunResult {
        id: id.clone(),
        slug: spec.slug(),
        final_metrics,
        best_on_test: best,
        provenance: Provenance {
            mixsweep_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: env!("MIXSWEEP_GIT_COMMIT").to_string(),
            burn_version: BURN_VERSION.to_string(),
            device: outcome.device,
            threads,
            host: hostname(),
            wall_time: outcome.wall_time,
            train_examples_per_sec: outcome.train_examples_per_sec,
        },
    })
}
