//! The run spec as written: serde structs that reject unknown keys and fill in defaults. Values
//! here are not yet checked (an α may be negative); `validate` turns them into `types`.
//!
//! Defaults follow the official code (`supervised/main.py` argparse, see
//! shared/reference/manifold-mixup.md §1.2) except where noted.

use serde::Deserialize;

use super::types::{Activation, BnGamma, LossKind, Method, OptimizerKind, ScheduleKind};

/// One run after base, grid point, seed and `-o` overrides are merged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRaw {
    pub method: Method,
    #[serde(default)]
    pub alpha: Option<f64>,
    #[serde(default)]
    pub layers: Option<Vec<i64>>,
    /// Side of the Cutout hole, for method `cutout`.
    #[serde(default)]
    pub cutout: Option<i64>,
    pub seed: i64,
    pub model: ModelRaw,
    pub data: DataRaw,
    #[serde(default)]
    pub train: TrainRaw,
    #[serde(default)]
    pub eval: EvalRaw,
    /// What trains the run: our trainer (absent, `mixsweep`) or a program.
    #[serde(default)]
    pub runner: Option<super::runner::RunnerRaw>,
}

/// `model:`, chosen by `name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelRaw {
    /// The paper's 2-D spiral network: `depth` hidden layers of `width` units, a `bottleneck`
    /// layer, `depth` more hidden layers, then the classifier.
    SpiralMlp {
        #[serde(default = "default_width")]
        width: i64,
        #[serde(default = "default_depth")]
        depth: i64,
        #[serde(default = "default_bottleneck")]
        bottleneck: i64,
        #[serde(default)]
        activation: Activation,
        /// Drop probability on every hidden layer except the bottleneck, in training.
        #[serde(default)]
        dropout: f64,
        /// Batch normalisation before every hidden activation.
        #[serde(default)]
        batch_norm: bool,
    },
    /// PreActResNet-`depth` (18, 34, 50, 101, 152).
    PreactResnet {
        depth: i64,
        #[serde(default = "default_resnet_width")]
        width: i64,
        #[serde(default = "default_stem_stride")]
        stem_stride: i64,
        /// BatchNorm γ at initialisation: `one` or `uniform` (U(0, 1), PyTorch ≤ 1.1).
        #[serde(default)]
        bn_gamma: BnGamma,
    },
    /// WRN-`depth`-`widen`.
    WideResnet {
        #[serde(default = "default_wrn_depth")]
        depth: i64,
        #[serde(default = "default_widen")]
        widen: i64,
        #[serde(default = "default_stem_stride")]
        stem_stride: i64,
        /// BatchNorm γ at initialisation: `one` or `uniform` (U(0, 1), PyTorch ≤ 1.1).
        #[serde(default)]
        bn_gamma: BnGamma,
    },
}

fn default_resnet_width() -> i64 {
    64
}
fn default_stem_stride() -> i64 {
    1
}
fn default_wrn_depth() -> i64 {
    28
}
fn default_widen() -> i64 {
    10
}

fn default_width() -> i64 {
    128
}
fn default_depth() -> i64 {
    3
}
fn default_bottleneck() -> i64 {
    2
}

/// `data:`. Which keys apply depends on `name`; validation rejects the others by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRaw {
    pub name: DataName,
    // The spirals.
    #[serde(default)]
    pub n_train: Option<i64>,
    #[serde(default)]
    pub n_test: Option<i64>,
    #[serde(default)]
    pub noise: Option<f64>,
    #[serde(default)]
    pub turns: Option<f64>,
    // Image sets.
    #[serde(default)]
    pub dir: Option<String>,
    #[serde(default)]
    pub train_subset: Option<i64>,
    #[serde(default)]
    pub augment: Option<Vec<String>>,
    // Both.
    /// The data seed: generator of the spirals; subset and validation draws of image sets.
    #[serde(default)]
    pub seed: i64,
    /// Training examples held out (seeded) as a validation set for model selection.
    #[serde(default)]
    pub val_split: i64,
}

/// The data sets by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataName {
    Spirals,
    Mnist,
    FashionMnist,
    Cifar10,
    Cifar100,
    Svhn,
    TinyImagenet,
    Digits,
}

/// Spirals defaults: 1,000 training and 1,000 test points, noise 0.02, 1.5 turns per arm.
pub fn default_n_train() -> i64 {
    1000
}
pub fn default_n_test() -> i64 {
    1000
}
pub fn default_noise() -> f64 {
    0.02
}
pub fn default_turns() -> f64 {
    1.5
}

/// `train:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRaw {
    #[serde(default = "default_epochs")]
    pub epochs: i64,
    #[serde(default = "default_batch_size")]
    pub batch_size: i64,
    #[serde(default)]
    pub optimizer: OptimizerKind,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default = "default_true")]
    pub nesterov: bool,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default)]
    pub schedule: ScheduleKind,
    #[serde(default)]
    pub milestones: Vec<i64>,
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    #[serde(default)]
    pub loss: LossKind,
    /// σ of Gaussian noise on the training inputs (normalised units).
    #[serde(default)]
    pub input_noise: f64,
}

impl Default for TrainRaw {
    fn default() -> Self {
        TrainRaw {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            optimizer: OptimizerKind::default(),
            lr: default_lr(),
            momentum: default_momentum(),
            nesterov: true,
            weight_decay: default_weight_decay(),
            schedule: ScheduleKind::default(),
            milestones: Vec::new(),
            gamma: default_gamma(),
            loss: LossKind::default(),
            input_noise: 0.0,
        }
    }
}

fn default_epochs() -> i64 {
    300
}
fn default_batch_size() -> i64 {
    100
}
fn default_lr() -> f64 {
    0.1
}
fn default_momentum() -> f64 {
    0.9
}
fn default_true() -> bool {
    true
}
fn default_weight_decay() -> f64 {
    1e-4
}
fn default_gamma() -> f64 {
    0.1
}

/// `eval:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalRaw {
    /// Evaluate on the test set every this many epochs (and always after the last).
    #[serde(default = "default_every")]
    pub every: i64,
}

impl Default for EvalRaw {
    fn default() -> Self {
        EvalRaw {
            every: default_every(),
        }
    }
}

fn default_every() -> i64 {
    1
}
