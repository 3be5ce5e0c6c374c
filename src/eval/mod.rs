//! Evaluation of trained models beyond the clean error that training records (issue 5):
//! calibration, FGSM and PGD, the paper's deformations, Gaussian noise, the flattening measure
//! and the planes of 2-D models. A run is evaluated from its checkpoint, never retrained, under
//! the experiment's `evaluate:` settings (`spec::evaluate`); each evaluation is recorded in the
//! run's result.json with its settings, beside evaluations made under other settings.

pub mod attacks;
pub mod calibration;
pub mod deform;
pub mod flattening;
pub mod hidden;
pub mod measure;
pub mod model;
pub mod plane;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Bytes;

use crate::models::Network;
use crate::spec::RunSpec;
use crate::spec::evaluate::EvalSettings;
use crate::store::records::{EvaluatedModel, Evaluation, RunResult};
use crate::store::{self, RunFiles, StoreError, atomic};
use crate::train::checkpoint;

/// Why an evaluation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(
        "{dir}: not trained yet (no result.json); run `mixsweep sweep` on its experiment first"
    )]
    NotDone { dir: PathBuf },
    #[error("{path}: {reason}")]
    Spec { path: PathBuf, reason: String },
    #[error(
        "{path}: the model cannot be restored ({reason}); delete the run directory to train it again"
    )]
    Checkpoint { path: PathBuf, reason: String },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Evaluates the finished run in `run_dir` under `settings` on `device` (an inference device),
/// for every model that lacks it (every model with `again`), and records each evaluation in
/// result.json as soon as it is made. The caller holds the run's claim. Returns how many were
/// made.
pub fn evaluate_run(
    run_dir: &Path,
    settings: &EvalSettings,
    device: &Device,
    device_name: &str,
    again: bool,
) -> Result<usize, EvalError> {
    let spec_path = run_dir.join(RunFiles::SPEC);
    let text = std::fs::read_to_string(&spec_path).map_err(|source| EvalError::Io {
        path: spec_path.clone(),
        source,
    })?;
    let spec = RunSpec::from_yaml(&text, &spec_path.display().to_string()).map_err(|e| {
        EvalError::Spec {
            path: spec_path.clone(),
            reason: e.to_string(),
        }
    })?;
    let problems: Vec<String> = settings
        .check()
        .into_iter()
        .chain(settings.check_run(&spec))
        .map(|i| {
            format!(
                "`{}` = {}: {}; allowed: {}",
                i.key, i.value, i.problem, i.allowed
            )
        })
        .collect();
    if !problems.is_empty() {
        return Err(EvalError::Spec {
            path: spec_path,
            reason: problems.join("\n  "),
        });
    }
    let Some(mut result) = store::read_result(run_dir)? else {
        return Err(EvalError::NotDone {
            dir: run_dir.to_path_buf(),
        });
    };
    let todo = if again {
        store::evaluated_models(run_dir, &result)
    } else {
        store::missing_evaluations(run_dir, &result, settings)?
    };
    if todo.is_empty() {
        return Ok(0);
    }
    let splits = crate::data::load(&spec.data)?;
    let ad = device.clone().autodiff();
    let id = settings.id().map_err(StoreError::from)?;
    for &which in &todo {
        let started = Instant::now();
        let (network, epoch) = load(&spec, run_dir, which, &result, &splits.train, &ad)?;
        let model = model::Model::new(network, device, &ad);
        let out_dir = run_dir.join("evaluate").join(format!("{id}-{which}"));
        let io = |source| EvalError::Io {
            path: out_dir.clone(),
            source,
        };
        let m = measure::measure(
            &spec,
            settings,
            &model,
            &splits.train,
            &splits.test,
            run_dir,
            &out_dir,
        )
        .map_err(io)?;
        let evaluation = Evaluation {
            settings_id: id.clone(),
            settings: settings.clone(),
            model: which,
            epoch,
            clean: m.clean,
            subset: m.subset,
            attacks: m.attacks,
            perturbations: m.perturbations,
            flattening: m.flattening,
            plane: m.plane,
            git_commit: env!("MIXSWEEP_GIT_COMMIT").to_string(),
            device: device_name.to_string(),
            wall_time: started.elapsed().as_secs_f64(),
        };
        eprintln!("{}", summary(&evaluation));
        result
            .evaluations
            .retain(|e| !(e.settings_id == id && e.model == which));
        result.evaluations.push(evaluation);
        let path = run_dir.join(RunFiles::RESULT);
        atomic::write_json(&path, &result).map_err(|source| EvalError::Io { path, source })?;
    }
    Ok(todo.len())
}

/// The trained network `which` of a run, on the autodiff device, and the epoch it was taken at.
fn load(
    spec: &RunSpec,
    run_dir: &Path,
    which: EvaluatedModel,
    result: &RunResult,
    train: &crate::data::Dataset,
    ad: &Device,
) -> Result<(Network, usize), EvalError> {
    let dir = run_dir.join(RunFiles::CHECKPOINT);
    let bad = |path: &Path, reason: String| EvalError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let (bytes, epoch) = match which {
        EvaluatedModel::Final => {
            let (state, bytes) = checkpoint::load_model(&dir)
                .map_err(|e| bad(&dir, e.to_string()))?
                .ok_or_else(|| bad(&dir, "no checkpoint".into()))?;
            if state.epoch != spec.train.epochs || state.step != 0 {
                return Err(bad(
                    &dir,
                    format!(
                        "the checkpoint is at epoch {} minibatch {}, not at the end of training ({} epochs)",
                        state.epoch, state.step, spec.train.epochs
                    ),
                ));
            }
            (bytes, state.epoch)
        }
        EvaluatedModel::BestOnValidation => {
            let path = dir.join(RunFiles::BEST_ON_VALIDATION);
            let bytes = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
            (
                bytes,
                result
                    .best_on_validation
                    .as_ref()
                    .map(|m| m.epoch)
                    .unwrap_or(0),
            )
        }
    };
    let fresh = Network::new(
        &spec.model,
        &train.shape,
        train.classes,
        &mut crate::rng::stream(spec.seed, "init"),
        ad,
    );
    let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| bad(&dir, e.to_string()))?;
    let network = fresh
        .try_load_record(record)
        .map_err(|e| bad(&dir, e.to_string()))?;
    Ok((network, epoch))
}

/// One line per measure, for the run's log.
pub fn summary(e: &Evaluation) -> String {
    let pct = |x: f64| format!("{:.2}%", 100.0 * x);
    let mut lines = vec![format!(
        "evaluation {} of the {} model (epoch {}): clean error {}, NLL {:.4}, ECE {:.4} on {} test examples; {} on the {}-example subset",
        e.settings_id,
        e.model,
        e.epoch,
        pct(e.clean.score.error),
        e.clean.score.nll,
        e.clean.ece,
        e.clean.score.examples,
        pct(e.subset.error),
        e.subset.examples
    )];
    for a in &e.attacks {
        lines.push(format!(
            "  {} ε={} ({} steps of {}): error {}",
            a.attack,
            a.eps,
            a.steps,
            a.step_size,
            pct(a.score.error)
        ));
    }
    for p in &e.perturbations {
        lines.push(format!(
            "  {} {}: error {}",
            p.perturbation,
            p.amount,
            pct(p.score.error)
        ));
    }
    for f in &e.flattening {
        lines.push(format!(
            "  flattening at mix point {}: largest {:.3}, rest {:.3} (all classes: {:.3}, {:.3})",
            f.layer, f.largest, f.rest, f.all_largest, f.all_rest
        ));
    }
    if let Some(p) = &e.plane {
        lines.push(format!("  planes: mean entropy {:.4} nats over the input plane, {:.4} over the hidden plane ({})", p.entropy_input, p.entropy_hidden, p.file));
    }
    lines.join("\n")
}
