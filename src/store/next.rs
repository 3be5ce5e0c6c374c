//! What a run needs next — train, evaluate, or nothing — decided from its files alone. This is
//! the one answer that `sweep`, `slurm`, `status` and `report` share, with the status
//! transitions a run's process and the scheduler record (design §5's state machine).
//!
//! Transitions of status.json: pending → running (an attempt starts) → done | failed(class) |
//! interrupted (stopped at a checkpoint). A `running` status without a live claim reads as
//! interrupted: its process died.

use std::path::Path;

use super::records::{EvaluatedModel, Failure, RunResult, State, Status, hostname, now};
use super::{RunFiles, RunState, StoreError, read_json, read_result, read_status, run_state};
use crate::spec::evaluate::EvalSettings;

/// The experiment's evaluation settings, kept beside its run directories by `sweep`, so that
/// `exec` and `eval` of a single run directory know them.
pub const SETTINGS_FILE: &str = "evaluate.json";

/// What a run needs next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Never trained, stopped, or its process died: train (resuming from its checkpoint).
    Train,
    /// Trained, but without an evaluation under the experiment's settings.
    Evaluate,
    /// Nothing now: done, running in another live process, or failed (and not to be rerun).
    Nothing,
}

/// A run as its files show it: its state, its result when trained, and what it needs next.
#[derive(Debug, Clone)]
pub struct RunView {
    pub state: RunState,
    /// result.json of a trained run (`None` for a scheduler test double's, which trained
    /// nothing).
    pub result: Option<RunResult>,
    pub next: Next,
}

/// Reads the run in `run_dir` (absent = pending) and decides what it needs next under the
/// experiment's evaluation `settings`; failed runs are trained again only with `rerun_failed`.
pub fn view(
    run_dir: &Path,
    settings: &EvalSettings,
    rerun_failed: bool,
) -> Result<RunView, StoreError> {
    let state = if run_dir.exists() {
        run_state(run_dir)?
    } else {
        RunState::Pending
    };
    let result = match state {
        RunState::Done => read_result(run_dir)?.filter(|r| !r.simulated),
        _ => None,
    };
    let next = match &state {
        RunState::Done => match &result {
            Some(r) if needs_evaluation(run_dir, r, settings)? => Next::Evaluate,
            _ => Next::Nothing,
        },
        RunState::Running(_) => Next::Nothing,
        RunState::Failed(_) if !rerun_failed => Next::Nothing,
        RunState::Pending | RunState::Interrupted | RunState::Failed(_) => Next::Train,
    };
    Ok(RunView {
        state,
        result,
        next,
    })
}

/// The settings stored beside `run_dir` (in its experiment directory), if any.
pub fn settings_beside(run_dir: &Path) -> Result<Option<EvalSettings>, StoreError> {
    match run_dir.parent() {
        Some(dir) => read_json(&dir.join(SETTINGS_FILE)),
        None => Ok(None),
    }
}

/// The trained models of a run that can be evaluated: the final model, and the model the
/// validation rule selected when the run kept one.
pub fn evaluated_models(run_dir: &Path, result: &RunResult) -> Vec<EvaluatedModel> {
    if result.runner.is_some() {
        // Trained by an external program: no model of ours exists.
        return Vec::new();
    }
    let mut out = vec![EvaluatedModel::Final];
    if result.best_on_validation.is_some()
        && run_dir
            .join(RunFiles::CHECKPOINT)
            .join(RunFiles::BEST_ON_VALIDATION)
            .exists()
    {
        out.push(EvaluatedModel::BestOnValidation);
    }
    out
}

/// The models of a trained run that have no evaluation under `settings` yet.
pub fn missing_evaluations(
    run_dir: &Path,
    result: &RunResult,
    settings: &EvalSettings,
) -> Result<Vec<EvaluatedModel>, StoreError> {
    let id = settings.id()?;
    Ok(evaluated_models(run_dir, result)
        .into_iter()
        .filter(|&m| result.evaluation(&id, m).is_none())
        .collect())
}

/// Whether a trained run still lacks an evaluation under `settings` (a simulated run has no
/// model to evaluate).
pub fn needs_evaluation(
    run_dir: &Path,
    result: &RunResult,
    settings: &EvalSettings,
) -> Result<bool, StoreError> {
    Ok(!result.simulated && !missing_evaluations(run_dir, result, settings)?.is_empty())
}

/// pending/interrupted/failed → running: an attempt starts in this process (on `slot`).
pub fn begin_attempt(run_dir: &Path, slot: Option<String>) -> Result<Status, StoreError> {
    let mut status = read_status(run_dir)?.unwrap_or_else(Status::pending);
    status.state = State::Running;
    status.attempts += 1;
    status.failure = None;
    status.host = Some(hostname());
    status.pid = Some(std::process::id());
    status.slot = slot;
    status.progress = None;
    status.updated = now();
    super::write_status(run_dir, &status)?;
    Ok(status)
}

/// running → done, interrupted or failed: how the attempt of `status` ended.
pub fn end_attempt(
    run_dir: &Path,
    status: &Status,
    state: State,
    failure: Option<Failure>,
) -> Result<(), StoreError> {
    let mut status = status.clone();
    status.state = state;
    status.failure = failure;
    status.progress = None;
    status.updated = now();
    super::write_status(run_dir, &status)
}

/// Records `failure` for a run whose process could not record it itself (it was killed, it
/// panicked). The caller holds the run's claim, so no live process is overwritten.
pub fn record_failure(run_dir: &Path, failure: &Failure) -> Result<(), StoreError> {
    let status = read_status(run_dir)?.unwrap_or_else(Status::pending);
    end_attempt(run_dir, &status, State::Failed, Some(failure.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::{FailureClass, Provenance};
    use crate::store::{atomic, claim};

    fn result(simulated: bool) -> RunResult {
        let m = crate::store::records::EpochMetrics {
            epoch: 1,
            lr: 0.1,
            train_loss: 0.5,
            test_error: 0.2,
            test_nll: 0.6,
            val_error: None,
            val_nll: None,
            elapsed: 1.0,
        };
        RunResult {
            id: "x".into(),
            slug: "erm-s0".into(),
            final_metrics: m.clone(),
            best_on_test: m,
            best_on_validation: None,
            provenance: Provenance {
                mixsweep_version: "0".into(),
                git_commit: "x".into(),
                burn_version: "0".into(),
                device: "cpu".into(),
                threads: 1,
                host: "h".into(),
                wall_time: 1.0,
                train_examples_per_sec: 1.0,
                data_wait_fraction: 0.0,
                resumed_from_epoch: 0,
            },
            simulated,
            runner: None,
            evaluations: Vec::new(),
        }
    }

    #[test]
    fn each_state_has_one_answer_to_what_the_run_needs_next() {
        let tmp = crate::testing::TempDir::new().unwrap();
        let dir = tmp.path().join("run");
        let settings = EvalSettings::default();
        let next = |rerun| view(&dir, &settings, rerun).unwrap().next;
        // No directory yet: pending, to train.
        assert_eq!(next(false), Next::Train);
        std::fs::create_dir_all(&dir).unwrap();
        let status = begin_attempt(&dir, Some("cpu/0".into())).unwrap();
        assert_eq!(status.attempts, 1);
        // Running in this process (its claim is held): nothing to do for anyone else.
        let held = claim::acquire(&dir).unwrap().unwrap();
        assert_eq!(next(false), Next::Nothing);
        held.release();
        // `running` with no live claim: its process died; train again (resume).
        assert_eq!(
            view(&dir, &settings, false).unwrap().state,
            RunState::Interrupted
        );
        assert_eq!(next(false), Next::Train);
        // Failed: nothing, unless failed runs are rerun.
        let failure = Failure {
            class: FailureClass::Crashed,
            reason: "test".into(),
        };
        end_attempt(&dir, &status, State::Failed, Some(failure)).unwrap();
        assert_eq!((next(false), next(true)), (Next::Nothing, Next::Train));
        // Trained without the experiment's evaluation: evaluate; a simulated run: nothing.
        atomic::write_json(&dir.join(RunFiles::RESULT), &result(false)).unwrap();
        assert_eq!(next(false), Next::Evaluate);
        atomic::write_json(&dir.join(RunFiles::RESULT), &result(true)).unwrap();
        assert_eq!(next(false), Next::Nothing);
        assert!(view(&dir, &settings, false).unwrap().result.is_none());
    }
}
