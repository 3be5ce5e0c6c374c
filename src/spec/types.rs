//! Validated run specs: types that cannot hold an invalid value. They are built only by
//! `spec::validate`, and their serialised form (keys sorted, defaults filled in, settings that
//! do not apply left out) is the canonical text whose hash is the run id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The training method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Empirical risk minimisation: no mixing (S = {}).
    Erm,
    /// Zhang et al. 2018: mixing at the input only (S = {0}).
    InputMixup,
    /// Verma et al. 2019: mixing at a layer drawn from S each minibatch.
    ManifoldMixup,
    /// DeVries & Taylor 2017: one square hole per training image, no mixing (a baseline).
    Cutout,
}

impl Method {
    pub fn mixes(self) -> bool {
        matches!(self, Method::InputMixup | Method::ManifoldMixup)
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Erm => "erm",
            Method::InputMixup => "input_mixup",
            Method::ManifoldMixup => "manifold_mixup",
            Method::Cutout => "cutout",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compute device: `cpu`, `cuda:N`, `vulkan:N` (SPIR-V shaders on the N-th Vulkan adapter)
/// or `wgpu:N` (WGSL shaders on the N-th adapter of the API wgpu settles on). Adapters count
/// in the order `mixsweep devices` lists them, whatever their type. Not part of a run's
/// identity: where a run computes is the scheduler's choice (the experiment file's `device:`
/// or `--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda(usize),
    Vulkan(usize),
    Wgpu(usize),
}

impl DeviceChoice {
    /// The device kind, as throughput records name it: `cpu`, `cuda`, `vulkan`, `wgpu`.
    pub fn kind(self) -> &'static str {
        self.feature().unwrap_or("cpu")
    }

    /// The cargo feature that builds this device's backend in (`None` for the CPU).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            DeviceChoice::Cpu => None,
            DeviceChoice::Cuda(_) => Some("cuda"),
            DeviceChoice::Vulkan(_) => Some("vulkan"),
            DeviceChoice::Wgpu(_) => Some("wgpu"),
        }
    }
}

/// What a graphics adapter is, as its driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterType {
    DiscreteGpu,
    IntegratedGpu,
    VirtualGpu,
    /// A software implementation on the CPU (Mesa's lavapipe, SwiftShader).
    Cpu,
    Other,
}

impl AdapterType {
    /// A real GPU: what `--devices auto` uses.
    pub fn is_gpu(self) -> bool {
        matches!(
            self,
            AdapterType::DiscreteGpu | AdapterType::IntegratedGpu | AdapterType::VirtualGpu
        )
    }
}

impl fmt::Display for AdapterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdapterType::DiscreteGpu => "discrete GPU",
            AdapterType::IntegratedGpu => "integrated GPU",
            AdapterType::VirtualGpu => "virtual GPU",
            AdapterType::Cpu => "CPU (software)",
            AdapterType::Other => "other",
        })
    }
}

/// One graphics adapter a GPU backend of this binary can use: plain data, so that the
/// scheduler can pick devices without touching burn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adapter {
    /// The device that selects it: `wgpu:0`, `vulkan:1`.
    pub device: DeviceChoice,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AdapterType,
    /// The graphics API: `vulkan`, `metal`, `dx12`, `gl`.
    pub api: String,
    /// Driver name and version, as the driver reports them.
    pub driver: String,
    /// Device-local memory in bytes, where the API reports it.
    pub memory_bytes: Option<u64>,
    /// The largest buffer the adapter allows, in bytes (a tensor must fit in one).
    pub max_buffer_bytes: u64,
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Vulkan(i) => write!(f, "vulkan:{i}"),
            DeviceChoice::Wgpu(i) => write!(f, "wgpu:{i}"),
        }
    }
}

/// Written as its name (`wgpu:0`), as the command line takes it.
impl Serialize for DeviceChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown device `{s}`: use cpu, cuda:N, vulkan:N or wgpu:N (e.g. cuda:0; `mixsweep devices` lists them)"
            )
        };
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => (k, i.parse::<usize>().map_err(|_| bad())?),
            None => (s, 0),
        };
        match kind {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(index)),
            "vulkan" => Ok(DeviceChoice::Vulkan(index)),
            "wgpu" => Ok(DeviceChoice::Wgpu(index)),
            _ => Err(bad()),
        }
    }
}

/// Hidden-layer non-linearity of the MLPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    /// Slope 0.01 for negative inputs, as PyTorch's default. No unit can die, which is what
    /// keeps a 2-D bottleneck trainable (see the README's spirals section).
    #[default]
    LeakyRelu,
    Tanh,
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with momentum (dampening 0, as PyTorch), optional Nesterov, coupled weight decay.
    #[default]
    Sgd,
    /// Adam with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, coupled weight decay.
    Adam,
}

/// How the learning rate changes over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// lr × gamma^(number of milestones ≤ epoch), set at the start of each epoch (official code).
    #[default]
    Multistep,
    /// lr × (1 + cos(π·epoch/epochs)) / 2, set at the start of each epoch.
    Cosine,
}

/// The training loss against (mixed) soft targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Cross-entropy with soft targets: −Σ_c y_c log softmax(z)_c, mean over the batch.
    #[default]
    SoftCe,
    /// What the official code trains every method with: `nn.BCELoss()` on softmax(z) against
    /// the soft one-hot target, mean over N×C elements.
    BceSoftmax,
}

/// The mixing coefficient's Beta(α, α) parameter: finite and > 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "f64", try_from = "f64")]
pub struct Alpha(f64);

impl Alpha {
    pub fn new(value: f64) -> Option<Alpha> {
        (value.is_finite() && value > 0.0).then_some(Alpha(value))
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

impl From<Alpha> for f64 {
    fn from(a: Alpha) -> f64 {
        a.0
    }
}

impl TryFrom<f64> for Alpha {
    type Error = String;
    fn try_from(v: f64) -> Result<Alpha, String> {
        Alpha::new(v).ok_or_else(|| format!("alpha must be > 0, got {v}"))
    }
}

/// The eligible set S of mix points: sorted, without repeats, each one the model has.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerSet(Vec<usize>);

impl LayerSet {
    /// Sorts and de-duplicates; the caller has checked each index against the model.
    pub fn new(mut layers: Vec<usize>) -> LayerSet {
        layers.sort_unstable();
        layers.dedup();
        LayerSet(layers)
    }
    pub fn indices(&self) -> &[usize] {
        &self.0
    }
    /// `012` for {0, 1, 2}; `0_1_12` when an index has two digits.
    pub fn compact(&self) -> String {
        let sep = if self.0.iter().any(|&k| k >= 10) {
            "_"
        } else {
            ""
        };
        self.0
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// The network. Mix points are numbered 0 (the input) to `mix_points() - 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum ModelSpec {
    /// 2 → `depth`×`width` → `bottleneck` → `depth`×`width` → classes. With depth 3 this is the
    /// paper's "fully connected network with nine layers whose middle layer is a 2-D bottleneck"
    /// (input, 3 hidden, bottleneck, 3 hidden, output). Mix point k is the output of the k-th
    /// hidden layer after its activation; the bottleneck is mix point `depth + 1`.
    /// `dropout`: the drop probability on every hidden layer but the bottleneck, in training;
    /// `batch_norm`: batch normalisation before every hidden activation (the paper's Figure 2
    /// regularisers). Both are left out of the spec when off, so older run ids stay valid.
    SpiralMlp {
        width: usize,
        depth: usize,
        bottleneck: usize,
        activation: Activation,
        #[serde(default, skip_serializing_if = "is_zero")]
        dropout: f64,
        #[serde(default, skip_serializing_if = "is_false")]
        batch_norm: bool,
    },
    /// PreActResNet of `depth` 18, 34 (basic blocks), 50, 101, 152 (bottlenecks); `width` is the
    /// first stage's channels (64 in the paper); `stem_stride` 2 for 64×64 inputs. Mix points:
    /// 0 = input, k = output of residual stage k (1..=4).
    PreactResnet {
        depth: usize,
        width: usize,
        stem_stride: usize,
        #[serde(default, skip_serializing_if = "BnGamma::is_one")]
        bn_gamma: BnGamma,
    },
    /// WRN-`depth`-`widen` (WRN-28-10 in the paper), no dropout. Mix points 0..=3.
    WideResnet {
        depth: usize,
        widen: usize,
        stem_stride: usize,
        #[serde(default, skip_serializing_if = "BnGamma::is_one")]
        bn_gamma: BnGamma,
    },
}

/// How every BatchNorm's scale γ starts. Left out of the spec when `one`, so older run ids
/// stay valid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BnGamma {
    /// γ = 1 (PyTorch ≥ 1.2, and burn).
    #[default]
    One,
    /// γ ~ U(0, 1), as `nn.BatchNorm2d` initialised it up to PyTorch 1.1: what the official
    /// code, which pins PyTorch 1.0.0, trained with.
    Uniform,
}

impl BnGamma {
    fn is_one(&self) -> bool {
        *self == BnGamma::One
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// The depths a PreActResNet comes in.
pub const PREACT_DEPTHS: [usize; 5] = [18, 34, 50, 101, 152];

impl ModelSpec {
    pub fn name(&self) -> &'static str {
        match self {
            ModelSpec::SpiralMlp { .. } => "spiral_mlp",
            ModelSpec::PreactResnet { .. } => "preact_resnet",
            ModelSpec::WideResnet { .. } => "wide_resnet",
        }
    }

    /// How many mix points the model has (0 = the input included).
    pub fn mix_points(&self) -> usize {
        match self {
            ModelSpec::SpiralMlp { depth, .. } => 2 * depth + 2,
            ModelSpec::PreactResnet { .. } => 5,
            ModelSpec::WideResnet { .. } => 4,
        }
    }

    /// Dropout in training, and the mix point it spares (the bottleneck); `None` without.
    pub fn dropout(&self) -> Option<(f64, usize)> {
        match *self {
            ModelSpec::SpiralMlp { dropout, depth, .. } if dropout > 0.0 => {
                Some((dropout, depth + 1))
            }
            _ => None,
        }
    }

    /// Whether the network takes images `[c, h, w]` (else flat feature vectors).
    pub fn needs_images(&self) -> bool {
        !matches!(self, ModelSpec::SpiralMlp { .. })
    }
}

/// A training-time image transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Augment {
    /// Random crop of the original size from the image zero-padded by this many pixels.
    Crop(usize),
    /// Horizontal flip with probability 1/2.
    Flip,
}

impl From<Augment> for String {
    fn from(a: Augment) -> String {
        match a {
            Augment::Crop(p) => format!("crop{p}"),
            Augment::Flip => "flip".into(),
        }
    }
}

impl TryFrom<String> for Augment {
    type Error = String;
    fn try_from(s: String) -> Result<Augment, String> {
        match s.as_str() {
            "flip" => Ok(Augment::Flip),
            _ => s
                .strip_prefix("crop")
                .and_then(|p| p.parse().ok())
                .map(Augment::Crop)
                .ok_or_else(|| format!("unknown augmentation `{s}`")),
        }
    }
}

/// The settings every image data set shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageData {
    /// Where the files are; when absent, found at run time (see `data::locate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Train on a seeded subset of this many examples (0 = all).
    pub train_subset: usize,
    /// Training examples held out (seeded) as a validation set.
    pub val_split: usize,
    /// Seed of the subset and validation draws.
    pub seed: u64,
    pub augment: Vec<Augment>,
}

/// Which image set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSet {
    Mnist,
    FashionMnist,
    Cifar10,
    Cifar100,
    Svhn,
    TinyImagenet,
    Digits,
}

impl ImageSet {
    /// One image's shape `[c, h, w]`.
    pub fn shape(self) -> [usize; 3] {
        match self {
            ImageSet::Mnist | ImageSet::FashionMnist => [1, 28, 28],
            ImageSet::Cifar10 | ImageSet::Cifar100 | ImageSet::Svhn => [3, 32, 32],
            ImageSet::TinyImagenet => [3, 64, 64],
            ImageSet::Digits => [1, 8, 8],
        }
    }
    pub fn classes(self) -> usize {
        match self {
            ImageSet::Cifar100 => 100,
            ImageSet::TinyImagenet => 200,
            _ => 10,
        }
    }
    /// Training examples in the full set.
    pub fn n_train(self) -> usize {
        match self {
            ImageSet::Mnist | ImageSet::FashionMnist => 60_000,
            ImageSet::Cifar10 | ImageSet::Cifar100 => 50_000,
            ImageSet::Svhn => 73_257,
            ImageSet::TinyImagenet => 100_000,
            // 1,797 images less the fixed test split of 360.
            ImageSet::Digits => 1_437,
        }
    }
    /// The official code's training augmentation (reference §1.4): CIFAR flip then crop with
    /// padding 2; SVHN crop with padding 2, no flip; Tiny-ImageNet flip then crop with padding
    /// 4; none for the MNISTs and the digits, which the official code does not train on.
    pub fn default_augment(self) -> Vec<Augment> {
        match self {
            ImageSet::Cifar10 | ImageSet::Cifar100 => vec![Augment::Flip, Augment::Crop(2)],
            ImageSet::Svhn => vec![Augment::Crop(2)],
            ImageSet::TinyImagenet => vec![Augment::Flip, Augment::Crop(4)],
            ImageSet::Mnist | ImageSet::FashionMnist | ImageSet::Digits => vec![],
        }
    }
}

/// The data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum DataSpec {
    /// Two interleaved spiral arms; see `data::spirals`.
    Spirals {
        n_train: usize,
        n_test: usize,
        noise: f64,
        turns: f64,
        seed: u64,
        val_split: usize,
    },
    Mnist(ImageData),
    FashionMnist(ImageData),
    Cifar10(ImageData),
    Cifar100(ImageData),
    Svhn(ImageData),
    TinyImagenet(ImageData),
    Digits(ImageData),
}

impl DataSpec {
    pub fn name(&self) -> &'static str {
        match self {
            DataSpec::Spirals { .. } => "spirals",
            DataSpec::Mnist(_) => "mnist",
            DataSpec::FashionMnist(_) => "fashion_mnist",
            DataSpec::Cifar10(_) => "cifar10",
            DataSpec::Cifar100(_) => "cifar100",
            DataSpec::Svhn(_) => "svhn",
            DataSpec::TinyImagenet(_) => "tiny_imagenet",
            DataSpec::Digits(_) => "digits",
        }
    }
    /// The image set and its settings, for image data.
    pub fn image(&self) -> Option<(ImageSet, &ImageData)> {
        match self {
            DataSpec::Spirals { .. } => None,
            DataSpec::Mnist(d) => Some((ImageSet::Mnist, d)),
            DataSpec::FashionMnist(d) => Some((ImageSet::FashionMnist, d)),
            DataSpec::Cifar10(d) => Some((ImageSet::Cifar10, d)),
            DataSpec::Cifar100(d) => Some((ImageSet::Cifar100, d)),
            DataSpec::Svhn(d) => Some((ImageSet::Svhn, d)),
            DataSpec::TinyImagenet(d) => Some((ImageSet::TinyImagenet, d)),
            DataSpec::Digits(d) => Some((ImageSet::Digits, d)),
        }
    }
    /// The shape of one input: `[features]` or `[channels, height, width]`.
    pub fn input_shape(&self) -> Vec<usize> {
        match self.image() {
            Some((set, _)) => set.shape().to_vec(),
            None => vec![2],
        }
    }
    /// Training examples the run trains on: the set (or its seeded subset) less the held-out
    /// validation split.
    pub fn train_examples(&self) -> usize {
        match self {
            DataSpec::Spirals {
                n_train, val_split, ..
            } => n_train.saturating_sub(*val_split),
            _ => match self.image() {
                Some((_, d)) if d.train_subset > 0 => d.train_subset,
                Some((set, d)) => set.n_train().saturating_sub(d.val_split),
                None => 0,
            },
        }
    }

    /// Training examples held out for validation (0 = no validation set).
    pub fn val_split(&self) -> usize {
        match self {
            DataSpec::Spirals { val_split, .. } => *val_split,
            _ => self.image().map(|(_, d)| d.val_split).unwrap_or(0),
        }
    }
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// SGD only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// SGD only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    /// Multistep only: epochs (0-based) at whose start the lr is multiplied by `gamma`, as the
    /// official code.
    pub milestones: Vec<usize>,
    pub gamma: f64,
    pub loss: LossKind,
    /// σ of Gaussian noise added to every training input (normalised units); left out of the
    /// spec when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_noise: f64,
}

impl TrainSpec {
    /// The learning rate in effect during `epoch` (0-based). Multistep: lr × gamma^(milestones
    /// ≤ epoch), the rule of `adjust_learning_rate` in the official `main.py`. Cosine: annealed
    /// from lr at epoch 0 towards 0, per epoch.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        match self.schedule {
            ScheduleKind::Multistep => {
                let drops = self.milestones.iter().filter(|&&m| m <= epoch).count();
                self.lr * self.gamma.powi(drops as i32)
            }
            ScheduleKind::Cosine => {
                let t = epoch as f64 / self.epochs.max(1) as f64;
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// When to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSpec {
    pub every: usize,
}

/// One fully resolved, validated run. Its canonical JSON (see `store::id`) is its identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub method: Method,
    /// Present exactly when the method mixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<Alpha>,
    /// The eligible set S; present exactly when the method mixes ({0} for input mixup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<LayerSet>,
    /// The Cutout hole's side in pixels; present exactly for method `cutout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutout: Option<usize>,
    pub seed: u64,
    pub model: ModelSpec,
    pub data: DataSpec,
    pub train: TrainSpec,
    pub eval: EvalSpec,
    /// An external program that trains the run instead of ours; absent for our trainer, so
    /// the ids of runs from before runners existed stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<super::runner::External>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_follows_the_official_multistep_rule() {
        // README of the official code: milestones 500/1000/1500, gamma 0.1 give
        // 0.1 -> 0.01 -> 0.001 -> 0.0001, the drop taking effect at the milestone epoch itself.
        let t = TrainSpec {
            epochs: 2000,
            batch_size: 100,
            optimizer: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: Some(0.9),
            nesterov: Some(true),
            weight_decay: 1e-4,
            schedule: ScheduleKind::Multistep,
            milestones: vec![500, 1000, 1500],
            gamma: 0.1,
            loss: LossKind::SoftCe,
            input_noise: 0.0,
        };
        assert!((t.lr_at(499) - 0.1).abs() < 1e-12);
        assert!((t.lr_at(500) - 0.01).abs() < 1e-12);
        assert!((t.lr_at(1000) - 0.001).abs() < 1e-12);
        assert!((t.lr_at(1999) - 0.0001).abs() < 1e-12);
        // Cosine, by hand: lr/2 at mid-run, lr·(1 + cos(π/4))/2 a quarter in.
        let c = TrainSpec {
            schedule: ScheduleKind::Cosine,
            milestones: vec![],
            ..t
        };
        assert!((c.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(1000) - 0.05).abs() < 1e-12);
        assert!((c.lr_at(500) - 0.1 * (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn layer_sets_are_sorted_and_compact() {
        assert_eq!(LayerSet::new(vec![2, 0, 1, 1]).compact(), "012");
        assert_eq!(LayerSet::new(vec![12, 1]).compact(), "1_12");
    }
}
