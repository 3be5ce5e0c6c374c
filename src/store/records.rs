//! The files a run leaves in its directory: status.json, metrics.jsonl, result.json.

use serde::{Deserialize, Serialize};

use crate::spec::evaluate::EvalSettings;

/// Where a run stands, as recorded in status.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Running,
    /// Stopped cleanly on request (Ctrl-C, SIGTERM) after writing a checkpoint.
    Interrupted,
    Done,
    Failed,
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The loss became NaN or infinite.
    Diverged,
    /// The process ended with an error, a panic or a signal.
    Crashed,
    /// The spec in the run directory could not be read or is invalid.
    BadSpec,
    /// The device it was given is not built in or not present.
    NoDevice,
    /// Its data files are missing or damaged.
    BadData,
    /// Trained, but the evaluation of the trained model failed (the training result is kept).
    Evaluation,
    /// The device ran out of memory.
    Oom,
    /// Stopped at the sweep's per-run time limit (a checkpoint was written).
    Timeout,
    /// Stopped from outside (SIGTERM not sent by its sweep: a cluster's preemption, a kill).
    Interrupted,
}

impl FailureClass {
    /// Every class, in the order the README lists them.
    pub const ALL: [FailureClass; 9] = [
        FailureClass::Oom,
        FailureClass::Crashed,
        FailureClass::Timeout,
        FailureClass::Interrupted,
        FailureClass::Diverged,
        FailureClass::Evaluation,
        FailureClass::NoDevice,
        FailureClass::BadData,
        FailureClass::BadSpec,
    ];

    /// The name in status.json and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Diverged => "diverged",
            FailureClass::Crashed => "crashed",
            FailureClass::BadSpec => "bad_spec",
            FailureClass::NoDevice => "no_device",
            FailureClass::BadData => "bad_data",
            FailureClass::Evaluation => "evaluation",
            FailureClass::Oom => "oom",
            FailureClass::Timeout => "timeout",
            FailureClass::Interrupted => "interrupted",
        }
    }
}

/// The first line of `text` that says memory ran out — the host's allocator ("memory
/// allocation of … failed") or a device's (CUDA's `CUDA_ERROR_OUT_OF_MEMORY`, burn's wgpu
/// runtime's "can't allocate buffer of size …" and "out of device memory …"): what makes a
/// failure an `oom`. Case is ignored.
pub fn out_of_memory_line(text: &str) -> Option<&str> {
    const SIGNS: [&str; 7] = [
        "out of memory",
        "outofmemory",
        "out_of_memory",
        "out-of-memory",
        "out of device memory",
        "can't allocate buffer",
        "memory allocation of",
    ];
    text.lines().map(str::trim).find(|line| {
        let line = line.to_lowercase();
        SIGNS.iter().any(|s| line.contains(s))
    })
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FailureClass {
    type Err = String;
    fn from_str(s: &str) -> Result<FailureClass, String> {
        FailureClass::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FailureClass::ALL.iter().map(|c| c.name()).collect();
                format!("`{s}` is not a failure class; one of {}", names.join(", "))
            })
    }
}

/// A failure's class and a one-line reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub class: FailureClass,
    pub reason: String,
}

/// status.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    /// How many times a process has started this run.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Where the current or last attempt ran (the sweep's slot, e.g. `cuda:1/0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Epochs trained of how many, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Unix seconds of the last change.
    pub updated: u64,
}

/// Epochs trained so far and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
}

impl Status {
    pub fn pending() -> Status {
        Status {
            state: State::Pending,
            attempts: 0,
            failure: None,
            host: None,
            pid: None,
            slot: None,
            progress: None,
            updated: now(),
        }
    }
}

/// One line of metrics.jsonl: an evaluated epoch (1-based: the number of epochs trained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    /// Mean training loss over the epoch's minibatches, against the mixed targets.
    pub train_loss: f64,
    /// Fraction of test examples misclassified, in [0, 1].
    pub test_error: f64,
    /// Mean cross-entropy of the test labels under the model (nats).
    pub test_nll: f64,
    /// The same on the held-out validation split, when the spec has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_error: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_nll: Option<f64>,
    /// Seconds since training started.
    pub elapsed: f64,
}

/// How and where a run was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub mixsweep_version: String,
    pub git_commit: String,
    pub burn_version: String,
    pub device: String,
    pub threads: usize,
    pub host: String,
    /// Seconds of training and evaluation.
    pub wall_time: f64,
    /// Training examples processed per second (forward + backward + step).
    pub train_examples_per_sec: f64,
    /// Share of training time the step spent waiting for the data thread's next batch.
    /// (Absent from results written before it was recorded: read as 0.)
    #[serde(default)]
    pub data_wait_fraction: f64,
    /// The epoch the last attempt resumed from (0: trained in one go from scratch).
    #[serde(default)]
    pub resumed_from_epoch: usize,
}

/// result.json: written when the run is done; each evaluation of the trained model is then
/// added to it (rewritten atomically under the run's claim).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub id: String,
    pub slug: String,
    /// The metrics after the last epoch (selection rule: final epoch).
    pub final_metrics: EpochMetrics,
    /// The evaluated epoch with the lowest test error. This is the paper's selection (best test
    /// error over training, per the maintainers in issue #10); it is optimistic and labelled so.
    pub best_on_test: EpochMetrics,
    /// The evaluated epoch with the lowest validation error: honest model selection. Present
    /// when the spec holds out a validation split (`data.val_split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_on_validation: Option<EpochMetrics>,
    pub provenance: Provenance,
    /// A scheduler test double (`--simulate`): no training happened; reports leave it out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// The external program that trained the run (its command), when not our trainer: there
    /// is no model of ours to evaluate, so evaluation measures are absent for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// Evaluations of the trained model, one per (settings, model), in the order made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluations: Vec<Evaluation>,
}

impl RunResult {
    /// The evaluation of `model` under the settings with id `settings_id`, if made.
    pub fn evaluation(&self, settings_id: &str, model: EvaluatedModel) -> Option<&Evaluation> {
        self.evaluations
            .iter()
            .find(|e| e.settings_id == settings_id && e.model == model)
    }
}

/// Which trained model an evaluation measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluatedModel {
    /// The model after the last epoch.
    Final,
    /// The model of the epoch with the lowest validation error (`data.val_split`).
    BestOnValidation,
}

impl std::fmt::Display for EvaluatedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvaluatedModel::Final => "final",
            EvaluatedModel::BestOnValidation => "best_on_validation",
        })
    }
}

/// One evaluation of one trained model under `settings` (see `spec::evaluate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub settings_id: String,
    pub settings: EvalSettings,
    pub model: EvaluatedModel,
    /// The epoch (1-based) the model was trained to.
    pub epoch: usize,
    /// The whole test set.
    pub clean: CleanScore,
    /// The clean score on the examples the measures below use (`settings.examples`).
    pub subset: Score,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attacks: Vec<AttackScore>,
    /// Deformations and noise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perturbations: Vec<PerturbedScore>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flattening: Vec<FlatteningScore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<PlaneScore>,
    pub git_commit: String,
    pub device: String,
    /// Seconds the evaluation took.
    pub wall_time: f64,
}

/// Error (fraction) and NLL (mean cross-entropy, nats) over some examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub examples: usize,
    pub error: f64,
    pub nll: f64,
}

/// The clean test set: error, NLL and expected calibration error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CleanScore {
    #[serde(flatten)]
    pub score: Score,
    /// Expected calibration error over `settings.calibration_bins` bins.
    pub ece: f64,
}

/// An attack and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackScore {
    /// `fgsm` or `pgd`.
    pub attack: String,
    pub eps: f64,
    pub steps: usize,
    pub step_size: f64,
    pub random_start: bool,
    #[serde(flatten)]
    pub score: Score,
}

/// A deformation or noise of one amount and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbedScore {
    /// `rotate`, `shear`, `zoom_in`, `zoom_out` or `noise`.
    pub perturbation: String,
    /// Degrees, percent or σ, as in the settings.
    pub amount: f64,
    #[serde(flatten)]
    pub score: Score,
}

/// The flattening measure at one mix point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatteningScore {
    pub layer: usize,
    /// Mean over classes of each class's largest singular value.
    pub largest: f64,
    /// Mean over classes of the sum of each class's other singular values.
    pub rest: f64,
    /// The same two over all classes' representations together.
    pub all_largest: f64,
    pub all_rest: f64,
    /// Mean over classes of the k-th largest singular value (at most the first 32).
    pub spectrum: Vec<f64>,
}

/// The planes of a 2-D model: mean predictive entropy (nats) of points drawn uniformly over the
/// input plane and over the hidden plane, and the file with the maps for plotting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneScore {
    pub layer: usize,
    pub entropy_input: f64,
    pub entropy_hidden: f64,
    /// Relative to the run directory.
    pub file: String,
}

/// The maps of a 2-D model's planes, written beside the run (`plane.json`) by evaluation and
/// read by the report's figures.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlaneMaps {
    /// The bottleneck's mix point.
    pub layer: usize,
    pub classes: usize,
    /// Grid points per side; grids are row-major with x varying fastest.
    pub grid: usize,
    /// [x_min, x_max, y_min, y_max] of the input plane and of the hidden plane.
    pub input_box: [f64; 4],
    pub hidden_box: [f64; 4],
    /// Class probabilities at each input-grid point, `[grid², classes]` row-major.
    pub input_probs: Vec<f32>,
    /// The same over the hidden grid, the network run from the bottleneck on.
    pub hidden_probs: Vec<f32>,
    /// Training points `[n, 2]`, their labels, and their bottleneck states `[n, 2]`.
    pub train_points: Vec<f32>,
    pub train_labels: Vec<usize>,
    pub train_hidden: Vec<f32>,
    /// Points drawn uniformly over the input plane `[m, 2]` and their bottleneck states.
    pub uniform_points: Vec<f32>,
    pub uniform_hidden: Vec<f32>,
    pub entropy_input: f64,
    pub entropy_hidden: f64,
}

/// Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_written_before_newer_provenance_fields_still_read() {
        // A result.json as the first version wrote it, without data_wait_fraction and
        // resumed_from_epoch: it must stay readable (a store outlives the binary).
        let m = r#"{"epoch": 3, "lr": 0.1, "train_loss": 0.5, "test_error": 0.25, "test_nll": 0.6, "elapsed": 1.0}"#;
        let old = format!(
            r#"{{"id": "ab", "slug": "erm-s0", "final_metrics": {m}, "best_on_test": {m},
               "provenance": {{"mixsweep_version": "0.1.0", "git_commit": "x", "burn_version": "0.22.1",
               "device": "cpu", "threads": 2, "host": "h", "wall_time": 1.0, "train_examples_per_sec": 10.0}}}}"#
        );
        let r: RunResult = serde_json::from_str(&old).unwrap();
        assert_eq!(
            (
                r.provenance.data_wait_fraction,
                r.provenance.resumed_from_epoch
            ),
            (0.0, 0)
        );
        assert_eq!(r.best_on_validation, None);
    }
}
