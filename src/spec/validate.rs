//! Raw run specs to validated ones. Every check that can be made before training is made here,
//! so a bad value stops the whole sweep before anything is written or run.

use super::error::Issue;
use super::raw::{
    DataName, DataRaw, EvalRaw, ModelRaw, RunRaw, TrainRaw, default_n_test, default_n_train,
    default_noise, default_turns,
};
use super::types::{
    Alpha, Augment, DataSpec, EvalSpec, ImageData, ImageSet, LayerSet, Method, ModelSpec,
    OptimizerKind, PREACT_DEPTHS, RunSpec, ScheduleKind, TrainSpec,
};

/// Checks a raw run; all problems found are returned, each with its key path.
pub fn validate(raw: &RunRaw) -> Result<RunSpec, Vec<Issue>> {
    let mut issues = Vec::new();
    let model = model(&raw.model, &mut issues);
    let data = data(&raw.data, &mut issues);
    if let (Some(m), Some(d)) = (&model, &data)
        && m.needs_images()
        && d.input_shape().len() != 3
    {
        issues.push(Issue::new(
            "model.name",
            m.name(),
            format!(
                "a convolutional network needs image data, and data `{}` is points of shape {:?}",
                d.name(),
                d.input_shape()
            ),
            "model spiral_mlp for 2-D points, or an image data set",
        ));
    }
    let train = train(&raw.train, &mut issues);
    let eval = eval(&raw.eval, &mut issues);
    let seed = match u64::try_from(raw.seed) {
        Ok(s) => s,
        Err(_) => {
            issues.push(Issue::new(
                "seed",
                raw.seed.to_string(),
                "a seed cannot be negative",
                "integers ≥ 0 in `seeds:`",
            ));
            0
        }
    };
    if let (Some(d), Some(t)) = (&data, &train)
        && t.batch_size > d.train_examples()
    {
        // An error, not a silent clamp: a batch larger than the training set would train
        // full-batch while the spec, the run id and the report said otherwise.
        issues.push(Issue::new(
            "train.batch_size",
            t.batch_size.to_string(),
            format!(
                "larger than the {} training examples of data `{}` (after the subset and the validation split)",
                d.train_examples(),
                d.name()
            ),
            format!("at most {}, or more training examples", d.train_examples()),
        ));
    }
    let (alpha, layers) = mixing(raw, model.as_ref(), &mut issues);
    let cutout = cutout(raw, data.as_ref(), &mut issues);
    let runner = super::runner::validate(raw.runner.as_ref(), &mut issues);
    match (model, data, train, eval) {
        (Some(model), Some(data), Some(train), Some(eval)) if issues.is_empty() => {
            let spec = RunSpec {
                method: raw.method,
                alpha,
                layers,
                cutout,
                seed,
                model,
                data,
                train,
                eval,
                runner,
            };
            let placeholders = match (&spec.runner, serde_json::to_value(&spec)) {
                (Some(ext), Ok(json)) => super::runner::check_placeholders(ext, &json),
                _ => Vec::new(),
            };
            if placeholders.is_empty() {
                Ok(spec)
            } else {
                Err(placeholders)
            }
        }
        _ => Err(issues),
    }
}

/// α and S. ERM ignores both (they do not change what it trains, so they are left out of the
/// resolved spec and of the run id); input mixup is S = {0}; Manifold Mixup needs S.
fn mixing(
    raw: &RunRaw,
    model: Option<&ModelSpec>,
    issues: &mut Vec<Issue>,
) -> (Option<Alpha>, Option<LayerSet>) {
    if !raw.method.mixes() {
        return (None, None);
    }
    let alpha = match raw.alpha {
        None => {
            issues.push(Issue::new(
                "alpha",
                "",
                format!("{} mixes, so it needs α (λ ~ Beta(α, α))", raw.method),
                "a number > 0; the paper uses 1.0 for input mixup and 2.0 for Manifold Mixup on CIFAR",
            ));
            None
        }
        Some(a) => {
            let alpha = Alpha::new(a);
            if alpha.is_none() {
                issues.push(Issue::new(
                    "alpha",
                    format!("{a}"),
                    format!(
                        "α must be a finite number > 0 where a method mixes ({})",
                        raw.method
                    ),
                    "a number > 0, e.g. 0.2, 1.0 or 2.0",
                ));
            }
            alpha
        }
    };
    let points = model.map(ModelSpec::mix_points);
    let layers = match (raw.method, &raw.layers) {
        (Method::InputMixup, None) => Some(LayerSet::new(vec![0])),
        (Method::InputMixup, Some(l)) if l.as_slice() == [0] => Some(LayerSet::new(vec![0])),
        (Method::InputMixup, Some(l)) => {
            issues.push(Issue::new(
                "layers",
                show_ints(l),
                "input_mixup mixes at the input only",
                "leave `layers` out (or [0]) for input_mixup; use method manifold_mixup for other layer sets",
            ));
            None
        }
        (Method::ManifoldMixup, None) => {
            issues.push(Issue::new(
                "layers",
                "",
                "manifold_mixup needs its eligible layer set S",
                format!(
                    "a list of mix points, e.g. layers: [[0, 1, 2]] in a grid block{}",
                    points
                        .map(|p| format!("; this model has mix points 0..={}", p - 1))
                        .unwrap_or_default()
                ),
            ));
            None
        }
        (Method::ManifoldMixup, Some(l)) => layer_set(l, points, issues),
        (Method::Erm | Method::Cutout, _) => None,
    };
    (alpha, layers)
}

/// The Cutout hole (16 pixels by default, as the official code's `--cutout 16`); only for
/// method cutout and image data. Other methods drop it.
fn cutout(raw: &RunRaw, data: Option<&DataSpec>, issues: &mut Vec<Issue>) -> Option<usize> {
    if raw.method != Method::Cutout {
        return None;
    }
    let size = raw.cutout.unwrap_or(16);
    let side = data.and_then(|d| d.image()).map(|(set, _)| set.shape()[1]);
    match side {
        None if data.is_some() => {
            issues.push(Issue::new("method", "cutout", "Cutout cuts holes in images, and this data is not images", "an image data set (mnist, fashion_mnist, cifar10, cifar100, svhn, tiny_imagenet, digits), or another method"));
            None
        }
        Some(side) if size < 1 || size as usize > side => {
            issues.push(Issue::new(
                "cutout",
                size.to_string(),
                format!("the hole must fit the {side}×{side} image"),
                format!("a side in pixels, 1..={side}; the official code uses 16 on CIFAR"),
            ));
            None
        }
        _ => Some(size.max(1) as usize),
    }
}

fn layer_set(layers: &[i64], points: Option<usize>, issues: &mut Vec<Issue>) -> Option<LayerSet> {
    if layers.is_empty() {
        issues.push(Issue::new(
            "layers",
            "[]",
            "an empty eligible set means no mixing",
            "method erm for no mixing, or a non-empty list of mix points",
        ));
        return None;
    }
    let points = points?;
    let mut ok = Vec::new();
    for (i, &k) in layers.iter().enumerate() {
        match usize::try_from(k) {
            Ok(k) if k < points => ok.push(k),
            _ => issues.push(Issue::new(
                format!("layers[{i}]"),
                k.to_string(),
                format!("the model has no mix point {k}"),
                format!(
                    "mix points 0..={} (0 is the input, k the output of hidden layer / stage k)",
                    points - 1
                ),
            )),
        }
    }
    (ok.len() == layers.len()).then(|| LayerSet::new(ok))
}

fn show_ints(v: &[i64]) -> String {
    format!(
        "[{}]",
        v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
    )
}

/// A count that must be ≥ `min`.
fn count(key: &str, v: i64, min: i64, allowed: &str, issues: &mut Vec<Issue>) -> usize {
    if v < min {
        issues.push(Issue::new(
            key,
            v.to_string(),
            format!("must be ≥ {min}"),
            allowed,
        ));
        return 0;
    }
    usize::try_from(v).unwrap_or(0)
}

fn positive(key: &str, v: f64, allowed: &str, issues: &mut Vec<Issue>) {
    if !(v.is_finite() && v > 0.0) {
        issues.push(Issue::new(
            key,
            format!("{v}"),
            "must be a finite number > 0",
            allowed,
        ));
    }
}

fn model(raw: &ModelRaw, issues: &mut Vec<Issue>) -> Option<ModelSpec> {
    let before = issues.len();
    let spec = match *raw {
        ModelRaw::SpiralMlp {
            width,
            depth,
            bottleneck,
            activation,
            dropout,
            batch_norm,
        } => {
            if !(dropout.is_finite() && (0.0..1.0).contains(&dropout)) {
                issues.push(Issue::new(
                    "model.dropout",
                    format!("{dropout}"),
                    "a drop probability is in [0, 1)",
                    "e.g. dropout: 0.5 (the paper's Figure 2), 0 for none",
                ));
            }
            ModelSpec::SpiralMlp {
                width: count(
                    "model.width",
                    width,
                    1,
                    "units per hidden layer, e.g. 128",
                    issues,
                ),
                depth: count(
                    "model.depth",
                    depth,
                    1,
                    "hidden layers on each side of the bottleneck, e.g. 3",
                    issues,
                ),
                bottleneck: count(
                    "model.bottleneck",
                    bottleneck,
                    1,
                    "units in the bottleneck layer, e.g. 2",
                    issues,
                ),
                activation,
                dropout,
                batch_norm,
            }
        }
        ModelRaw::PreactResnet {
            depth,
            width,
            stem_stride,
            bn_gamma,
        } => {
            if preact_resnet_depth(depth).is_none() {
                issues.push(Issue::new("model.depth", depth.to_string(), "PreActResNet comes in depths 18, 34 (basic blocks) and 50, 101, 152 (bottlenecks)", "one of 18, 34, 50, 101, 152"));
            }
            ModelSpec::PreactResnet {
                depth: depth.max(0) as usize,
                width: count(
                    "model.width",
                    width,
                    1,
                    "channels of the first stage: 64 in the paper, e.g. 16 for a narrow CPU variant",
                    issues,
                ),
                stem_stride: stride(stem_stride, issues),
                bn_gamma,
            }
        }
        ModelRaw::WideResnet {
            depth,
            widen,
            stem_stride,
            bn_gamma,
        } => {
            if depth < 10 || (depth - 4) % 6 != 0 {
                issues.push(Issue::new(
                    "model.depth",
                    depth.to_string(),
                    "a Wide ResNet has depth 6n + 4 with n ≥ 1",
                    "e.g. 28 (the paper's WRN-28-10), 16, 10",
                ));
            }
            ModelSpec::WideResnet {
                depth: depth.max(0) as usize,
                widen: count(
                    "model.widen",
                    widen,
                    1,
                    "the width factor k, e.g. 10",
                    issues,
                ),
                stem_stride: stride(stem_stride, issues),
                bn_gamma,
            }
        }
    };
    (issues.len() == before).then_some(spec)
}

fn preact_resnet_depth(depth: i64) -> Option<usize> {
    usize::try_from(depth)
        .ok()
        .filter(|d| PREACT_DEPTHS.contains(d))
}

fn stride(v: i64, issues: &mut Vec<Issue>) -> usize {
    if !(1..=2).contains(&v) {
        issues.push(Issue::new(
            "model.stem_stride",
            v.to_string(),
            "the stem conv's stride is 1 or 2",
            "1 for 32×32 inputs (CIFAR, SVHN), 2 for 64×64 (Tiny-ImageNet)",
        ));
        return 1;
    }
    v as usize
}

fn data(raw: &DataRaw, issues: &mut Vec<Issue>) -> Option<DataSpec> {
    let before = issues.len();
    let set = match raw.name {
        DataName::Spirals => None,
        DataName::Mnist => Some(ImageSet::Mnist),
        DataName::FashionMnist => Some(ImageSet::FashionMnist),
        DataName::Cifar10 => Some(ImageSet::Cifar10),
        DataName::Cifar100 => Some(ImageSet::Cifar100),
        DataName::Svhn => Some(ImageSet::Svhn),
        DataName::TinyImagenet => Some(ImageSet::TinyImagenet),
        DataName::Digits => Some(ImageSet::Digits),
    };
    let not_for = |key: &str, given: bool, what: &str, issues: &mut Vec<Issue>| {
        if given {
            issues.push(Issue::new(
                format!("data.{key}"),
                "",
                format!("`{key}` applies to {what} only"),
                "remove it; see the README's data keys",
            ));
        }
    };
    let spec = match set {
        Some(set) => {
            for (key, given) in [
                ("n_train", raw.n_train.is_some()),
                ("n_test", raw.n_test.is_some()),
                ("noise", raw.noise.is_some()),
                ("turns", raw.turns.is_some()),
            ] {
                not_for(key, given, "the spirals", issues);
            }
            let image = image_data(
                set,
                &raw.dir,
                raw.train_subset.unwrap_or(0),
                raw.val_split,
                raw.seed,
                raw.augment.as_deref(),
                issues,
            );
            match set {
                ImageSet::Mnist => DataSpec::Mnist(image),
                ImageSet::FashionMnist => DataSpec::FashionMnist(image),
                ImageSet::Cifar10 => DataSpec::Cifar10(image),
                ImageSet::Cifar100 => DataSpec::Cifar100(image),
                ImageSet::Svhn => DataSpec::Svhn(image),
                ImageSet::TinyImagenet => DataSpec::TinyImagenet(image),
                ImageSet::Digits => DataSpec::Digits(image),
            }
        }
        None => {
            for (key, given) in [
                ("dir", raw.dir.is_some()),
                ("train_subset", raw.train_subset.is_some()),
                ("augment", raw.augment.is_some()),
            ] {
                not_for(key, given, "image data sets", issues);
            }
            let n_train = raw.n_train.unwrap_or_else(default_n_train);
            let noise = raw.noise.unwrap_or_else(default_noise);
            let turns = raw.turns.unwrap_or_else(default_turns);
            if !(noise.is_finite() && noise >= 0.0) {
                issues.push(Issue::new(
                    "data.noise",
                    format!("{noise}"),
                    "must be a finite number ≥ 0",
                    "the std of Gaussian noise added to each point, e.g. 0.02",
                ));
            }
            positive(
                "data.turns",
                turns,
                "how many turns each arm makes, e.g. 1.5",
                issues,
            );
            DataSpec::Spirals {
                n_train: count(
                    "data.n_train",
                    n_train,
                    2,
                    "training points, e.g. 1000",
                    issues,
                ),
                n_test: count(
                    "data.n_test",
                    raw.n_test.unwrap_or_else(default_n_test),
                    1,
                    "test points, e.g. 1000",
                    issues,
                ),
                noise,
                turns,
                seed: count("data.seed", raw.seed, 0, "an integer ≥ 0", issues) as u64,
                val_split: held_out(n_train, raw.val_split, issues),
            }
        }
    };
    (issues.len() == before).then_some(spec)
}

fn image_data(
    set: ImageSet,
    dir: &Option<String>,
    train_subset: i64,
    val_split: i64,
    seed: i64,
    augment: Option<&[String]>,
    issues: &mut Vec<Issue>,
) -> ImageData {
    let total = set.n_train() as i64;
    let val_split = held_out(total, val_split, issues);
    if train_subset < 0 || train_subset > total - val_split as i64 {
        issues.push(Issue::new(
            "data.train_subset",
            train_subset.to_string(),
            format!(
                "must be in 0..={} (the training examples left after the validation split)",
                total - val_split as i64
            ),
            "how many training examples to train on, e.g. 10000; 0 for all",
        ));
    }
    let augment = match augment {
        None => set.default_augment(),
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match Augment::try_from(a.clone()) {
                Ok(aug) => Some(aug),
                Err(problem) => {
                    issues.push(Issue::new(format!("data.augment[{i}]"), a.clone(), problem, "flip, or cropN (random crop after zero-padding by N pixels), e.g. [flip, crop2]; [] for none"));
                    None
                }
            })
            .collect(),
    };
    if let Some(d) = dir
        && d.trim().is_empty()
    {
        issues.push(Issue::new(
            "data.dir",
            "\"\"",
            "an empty directory name",
            "leave data.dir out to use $MIXSWEEP_DATA or data/, or give a path",
        ));
    }
    ImageData {
        dir: dir.clone(),
        train_subset: train_subset.max(0) as usize,
        val_split,
        seed: count("data.seed", seed, 0, "an integer ≥ 0", issues) as u64,
        augment,
    }
}

/// A validation split must leave at least one training example... and be ≥ 0.
fn held_out(n_train: i64, val_split: i64, issues: &mut Vec<Issue>) -> usize {
    if val_split < 0 || (n_train > 0 && val_split >= n_train) {
        issues.push(Issue::new(
            "data.val_split",
            val_split.to_string(),
            format!("must be in 0..{n_train} (the training examples)"),
            "how many training examples to hold out for validation, e.g. 100; 0 for none",
        ));
        return 0;
    }
    val_split as usize
}

fn train(raw: &TrainRaw, issues: &mut Vec<Issue>) -> Option<TrainSpec> {
    let before = issues.len();
    let epochs = count(
        "train.epochs",
        raw.epochs,
        1,
        "a whole number of epochs ≥ 1",
        issues,
    );
    let batch_size = count(
        "train.batch_size",
        raw.batch_size,
        1,
        "examples per minibatch ≥ 1, e.g. 100",
        issues,
    );
    positive(
        "train.lr",
        raw.lr,
        "a learning rate > 0, e.g. 0.1 for SGD or 1e-3 for Adam",
        issues,
    );
    if !(raw.weight_decay.is_finite() && raw.weight_decay >= 0.0) {
        issues.push(Issue::new(
            "train.weight_decay",
            format!("{}", raw.weight_decay),
            "must be a finite number ≥ 0",
            "e.g. 1e-4 (the paper), or 0",
        ));
    }
    positive(
        "train.gamma",
        raw.gamma,
        "the lr factor at each milestone, e.g. 0.1",
        issues,
    );
    if !(raw.input_noise.is_finite() && raw.input_noise >= 0.0) {
        issues.push(Issue::new(
            "train.input_noise",
            format!("{}", raw.input_noise),
            "must be a finite σ ≥ 0",
            "e.g. 0.1 (Gaussian noise on the training inputs), or 0 for none",
        ));
    }
    let mut milestones = Vec::new();
    for (i, &m) in raw.milestones.iter().enumerate() {
        let key = format!("train.milestones[{i}]");
        if m < 1 || (epochs > 0 && m as usize >= epochs) {
            issues.push(Issue::new(
                key,
                m.to_string(),
                format!("a milestone must lie inside the run (1..{epochs})"),
                "epochs at which the lr drops, increasing and < train.epochs",
            ));
        } else if milestones.last().is_some_and(|&last| m as usize <= last) {
            issues.push(Issue::new(
                key,
                m.to_string(),
                "milestones must increase",
                "a strictly increasing list, e.g. [400, 800]",
            ));
        } else {
            milestones.push(m as usize);
        }
    }
    let (momentum, nesterov) = match raw.optimizer {
        OptimizerKind::Sgd => {
            if !(raw.momentum.is_finite() && (0.0..1.0).contains(&raw.momentum)) {
                issues.push(Issue::new(
                    "train.momentum",
                    format!("{}", raw.momentum),
                    "must be in [0, 1)",
                    "e.g. 0.9 (the paper), or 0 for plain SGD",
                ));
            }
            if raw.nesterov && raw.momentum == 0.0 {
                issues.push(Issue::new(
                    "train.nesterov",
                    "true",
                    "Nesterov needs momentum > 0",
                    "set train.momentum > 0, or train.nesterov: false",
                ));
            }
            (Some(raw.momentum), Some(raw.nesterov))
        }
        // Adam has no momentum or Nesterov setting: they are left out of its resolved spec.
        OptimizerKind::Adam => (None, None),
    };
    if raw.schedule == ScheduleKind::Cosine && !raw.milestones.is_empty() {
        issues.push(Issue::new(
            "train.milestones",
            format!("{:?}", raw.milestones),
            "milestones belong to the multistep schedule",
            "remove them, or set train.schedule: multistep",
        ));
    }
    let spec = TrainSpec {
        epochs,
        batch_size,
        optimizer: raw.optimizer,
        lr: raw.lr,
        momentum,
        nesterov,
        weight_decay: raw.weight_decay,
        schedule: raw.schedule,
        milestones,
        gamma: raw.gamma,
        loss: raw.loss,
        input_noise: raw.input_noise,
    };
    (issues.len() == before).then_some(spec)
}

fn eval(raw: &EvalRaw, issues: &mut Vec<Issue>) -> Option<EvalSpec> {
    let before = issues.len();
    let every = count(
        "eval.every",
        raw.every,
        1,
        "evaluate every N epochs, N ≥ 1",
        issues,
    );
    (issues.len() == before).then_some(EvalSpec { every })
}
