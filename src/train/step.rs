//! One training step, the only one: the training loop, `mixsweep bench` and the tests all call
//! `step`. Input noise, the upload, the forward pass with mixing at the drawn mix point (behind
//! dropout when the model has it), the configured loss against the (mixed) targets, the
//! divergence check, backward, and the optimiser's update.

use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::mixing::{MixStreams, Mixer};
use super::{TrainError, loss, regularise};
use crate::models::{MixHook, Network, NoMix};
use crate::spec::types::{Alpha, LayerSet, LossKind, RunSpec};

/// What a step does besides the network and the optimiser.
#[derive(Debug, Clone)]
pub struct StepConfig {
    /// The run's seed: input noise and dropout draw from streams named for (seed, epoch, step).
    pub seed: u64,
    pub loss: LossKind,
    /// σ of Gaussian noise added to the inputs (0 = none).
    pub input_noise: f64,
    /// Dropout probability and the mix point it spares (`ModelSpec::dropout`).
    pub dropout: Option<(f64, usize)>,
    /// α and the eligible set S; `None` for ERM.
    pub mixing: Option<(Alpha, LayerSet)>,
}

impl StepConfig {
    /// The step a run's spec asks for.
    pub fn of(spec: &RunSpec) -> StepConfig {
        StepConfig {
            seed: spec.seed,
            loss: spec.train.loss,
            input_noise: spec.train.input_noise,
            dropout: spec.model.dropout(),
            mixing: spec.alpha.zip(spec.layers.clone()),
        }
    }
}

/// One minibatch on the host.
pub struct Batch {
    /// `[n, features]`, row-major.
    pub inputs: Vec<f32>,
    pub features: usize,
    /// One-hot targets `[n, classes]`.
    pub targets: Vec<f32>,
    pub classes: usize,
    /// 0-based epoch and minibatch (they name the noise and dropout streams).
    pub epoch: usize,
    pub step: usize,
}

/// Seconds a step spent in each phase. Phases after the loss are not synchronised with the
/// device, so on a GPU they are launch times; the whole step's time is the caller's to take.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepTimes {
    pub upload: f64,
    /// Forward pass and loss, up to the loss value on the host.
    pub forward: f64,
    pub backward: f64,
    pub optimiser: f64,
}

/// The network after the step, the step's loss and where its time went.
pub struct Stepped {
    pub model: Network,
    pub loss: f64,
    pub times: StepTimes,
}

/// One-hot rows `[n, classes]` for `labels`.
pub fn one_hot(labels: impl ExactSizeIterator<Item = usize>, classes: usize) -> Vec<f32> {
    let mut y = vec![0f32; labels.len() * classes];
    for (row, label) in labels.enumerate() {
        y[row * classes + label] = 1.0;
    }
    y
}

/// Trains `model` on `batch` for one step at learning rate `lr` on the autodiff device `ad`,
/// drawing the mix (layer, λ, partner) from `mix`. A loss that is not finite is `Diverged`.
pub fn step(
    model: Network,
    optimizer: &mut ModuleOptimizer,
    mut batch: Batch,
    cfg: &StepConfig,
    mix: &mut MixStreams,
    lr: f64,
    ad: &Device,
) -> Result<Stepped, TrainError> {
    let t0 = Instant::now();
    let n = batch.targets.len() / batch.classes.max(1);
    if cfg.input_noise > 0.0 {
        regularise::add_input_noise(
            &mut batch.inputs,
            cfg.input_noise,
            &mut regularise::stream(cfg.seed, "input_noise", batch.epoch, batch.step),
        );
    }
    // The mix is drawn before the upload: the targets are mixed on the host.
    let draw = cfg
        .mixing
        .as_ref()
        .map(|(alpha, layers)| mix.draw(*alpha, layers, n));
    let targets = match &draw {
        Some(draw) => draw.mix_targets(&batch.targets, batch.classes),
        None => batch.targets,
    };
    let x = Tensor::<2>::from_data(TensorData::new(batch.inputs, [n, batch.features]), ad);
    let targets = Tensor::<2>::from_data(TensorData::new(targets, [n, batch.classes]), ad);
    let t1 = Instant::now();
    let logits = match &draw {
        Some(draw) => forward(
            &model,
            x,
            &Mixer::new(draw, ad),
            cfg,
            batch.epoch,
            batch.step,
        ),
        None => forward(&model, x, &NoMix, cfg, batch.epoch, batch.step),
    };
    let loss = loss::loss(cfg.loss, logits, targets);
    let value = f64::from(super::host::scalar(loss.clone())?);
    if !value.is_finite() {
        return Err(TrainError::Diverged {
            epoch: batch.epoch + 1,
            step: batch.step + 1,
            loss: value,
        });
    }
    let t2 = Instant::now();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let t3 = Instant::now();
    let model = optimizer.step(lr, model, grads);
    let t4 = Instant::now();
    let secs = |a: Instant, b: Instant| (b - a).as_secs_f64();
    Ok(Stepped {
        model,
        loss: value,
        times: StepTimes {
            upload: secs(t0, t1),
            forward: secs(t1, t2),
            backward: secs(t2, t3),
            optimiser: secs(t3, t4),
        },
    })
}

/// The training forward pass: `hook` (the mixing) at the mix points, behind dropout when the
/// model has it.
fn forward<H: MixHook>(
    model: &Network,
    x: Tensor<2>,
    hook: &H,
    cfg: &StepConfig,
    epoch: usize,
    step: usize,
) -> Tensor<2> {
    match cfg.dropout {
        Some((p, spare)) => {
            let rng = std::cell::RefCell::new(regularise::stream(cfg.seed, "dropout", epoch, step));
            model.forward(
                x,
                &regularise::Dropout {
                    inner: hook,
                    p,
                    spare,
                    rng,
                },
            )
        }
        None => model.forward(x, hook),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::{Activation, ModelSpec, TrainSpec};

    fn net(ad: &Device, dropout: f64) -> Network {
        let spec = ModelSpec::SpiralMlp {
            width: 8,
            depth: 1,
            bottleneck: 2,
            activation: Activation::LeakyRelu,
            dropout,
            batch_norm: false,
        };
        Network::new(&spec, &[2], 3, &mut crate::rng::stream(0, "init"), ad)
    }

    fn batch(inputs: Vec<f32>) -> Batch {
        Batch {
            inputs,
            features: 2,
            // Three classes: with two, BCE on softmax equals cross-entropy.
            targets: one_hot([0, 1, 2, 1].into_iter(), 3),
            classes: 3,
            epoch: 0,
            step: 0,
        }
    }

    fn loss_of(dropout: f64, cfg: &StepConfig, inputs: Vec<f32>) -> Result<f64, TrainError> {
        let ad = Device::flex().autodiff();
        let train = TrainSpec {
            epochs: 1,
            batch_size: 4,
            optimizer: Default::default(),
            lr: 0.1,
            momentum: Some(0.9),
            nesterov: Some(true),
            weight_decay: 0.0,
            schedule: Default::default(),
            milestones: vec![],
            gamma: 0.1,
            loss: cfg.loss,
            input_noise: cfg.input_noise,
        };
        let mut optim = super::super::optim::optimizer(&train);
        let mut mix = MixStreams::new(0);
        step(
            net(&ad, dropout),
            &mut optim,
            batch(inputs),
            cfg,
            &mut mix,
            0.1,
            &ad,
        )
        .map(|s| s.loss)
    }

    #[test]
    fn the_step_applies_every_setting_and_stops_on_divergence() {
        // The bench's old copy of the step had no dropout, no input noise, always soft CE and
        // no divergence check. The one step must honour each.
        let x = vec![0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8];
        let plain = StepConfig {
            seed: 0,
            loss: LossKind::SoftCe,
            input_noise: 0.0,
            dropout: None,
            mixing: None,
        };
        let base = loss_of(0.0, &plain, x.clone()).unwrap();
        let dropout = StepConfig {
            dropout: Some((0.5, 2)),
            ..plain.clone()
        };
        let noise = StepConfig {
            input_noise: 0.5,
            ..plain.clone()
        };
        let bce = StepConfig {
            loss: LossKind::BceSoftmax,
            ..plain.clone()
        };
        let mixed = StepConfig {
            mixing: Some((Alpha::new(1.0).unwrap(), LayerSet::new(vec![1]))),
            ..plain.clone()
        };
        for (what, cfg, dropout_p) in [
            ("dropout", &dropout, 0.5),
            ("input noise", &noise, 0.0),
            ("BCE on softmax", &bce, 0.0),
            ("mixing", &mixed, 0.0),
        ] {
            let l = loss_of(dropout_p, cfg, x.clone()).unwrap();
            assert!(l.is_finite() && l != base, "{what}: {l} vs {base}");
        }
        let mut nan = x.clone();
        nan[3] = f32::NAN;
        match loss_of(0.0, &plain, nan) {
            Err(TrainError::Diverged {
                epoch: 1, step: 1, ..
            }) => {}
            other => panic!("a NaN loss must be Diverged at epoch 1, step 1: {other:?}"),
        }
    }
}
