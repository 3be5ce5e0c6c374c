//! Training and evaluating one run on one device. Knows nothing of sweeps: it takes a spec and
//! reports each evaluated epoch to a callback.

pub mod loss;
pub mod mixing;
pub mod optim;

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::seq::SliceRandom;

use crate::data::{self, Dataset};
use crate::models::NoMix;
use crate::models::mlp::SpiralMlp;
use crate::spec::types::RunSpec;
use crate::store::records::EpochMetrics;
use mixing::{MixStreams, Mixer};

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("diverged: the training loss became {loss} at epoch {epoch}, minibatch {step}")]
    Diverged { epoch: usize, step: usize, loss: f64 },
    #[error("writing metrics: {0}")]
    Io(#[from] std::io::Error),
}

/// What a finished training run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub history: Vec<EpochMetrics>,
    pub device: String,
    pub wall_time: f64,
    pub train_examples_per_sec: f64,
}

/// The device a run computes on. For now the Flex CPU backend; `threads` sizes its pool.
pub fn cpu_device() -> Device {
    Device::flex()
}

/// Trains `spec` from scratch, calling `on_eval` with the whole history after each evaluation.
pub fn train(spec: &RunSpec, on_eval: &mut dyn FnMut(&[EpochMetrics]) -> std::io::Result<()>) -> Result<Outcome, TrainError> {
    let device = cpu_device();
    let ad = device.clone().autodiff();
    let (train_set, test_set) = data::load(&spec.data);
    let mut model = SpiralMlp::new(&spec.model, train_set.features, train_set.classes, &mut crate::rng::stream(spec.seed, "init"), &ad);
    let mut optimizer = optim::optimizer(&spec.train);
    let mut order_rng = crate::rng::stream(spec.seed, "order");
    let mut mix_rng = MixStreams::new(spec.seed);
    let mixing = spec.alpha.zip(spec.layers.clone());

    let started = Instant::now();
    let mut train_time = 0.0;
    let mut examples = 0usize;
    let mut history = Vec::new();
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    for epoch in 0..spec.train.epochs {
        let epoch_start = Instant::now();
        let lr = spec.train.lr_at(epoch);
        order.shuffle(&mut order_rng);
        let mut loss_sum = 0.0;
        let mut batches = 0usize;
        // No drop_last, as PyTorch's DataLoader in the official code: the last batch may be short.
        for (step, idx) in order.chunks(spec.train.batch_size).enumerate() {
            let x = Tensor::<2>::from_data(TensorData::new(train_set.gather(idx), [idx.len(), train_set.features]), &ad);
            let y = one_hot(&train_set, idx, &ad);
            let (logits, targets) = match &mixing {
                Some((alpha, layers)) => {
                    let mixer = Mixer::new(&mix_rng.draw(*alpha, layers, idx.len()), &ad);
                    (model.forward(x, &mixer), mixer.targets(y))
                }
                None => (model.forward(x, &NoMix), y),
            };
            let loss = loss::loss(spec.train.loss, logits, targets);
            let value = f64::from(loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch: epoch + 1, step: step + 1, loss: value });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            loss_sum += value;
            batches += 1;
            examples += idx.len();
        }
        train_time += epoch_start.elapsed().as_secs_f64();
        let done = epoch + 1;
        if done % spec.eval.every == 0 || done == spec.train.epochs {
            let (test_error, test_nll) = evaluate(&model.valid(), &test_set, &device);
            history.push(EpochMetrics {
                epoch: done,
                lr,
                train_loss: loss_sum / batches.max(1) as f64,
                test_error,
                test_nll,
                elapsed: started.elapsed().as_secs_f64(),
            });
            on_eval(&history)?;
        }
    }
    Ok(Outcome {
        history,
        device: "cpu (burn flex)".to_string(),
        wall_time: started.elapsed().as_secs_f64(),
        train_examples_per_sec: examples as f64 / train_time.max(1e-9),
    })
}

/// One-hot targets `[batch, classes]` for rows `idx`.
fn one_hot(set: &Dataset, idx: &[usize], device: &Device) -> Tensor<2> {
    let mut y = vec![0f32; idx.len() * set.classes];
    for (row, &i) in idx.iter().enumerate() {
        y[row * set.classes + set.labels[i]] = 1.0;
    }
    Tensor::<2>::from_data(TensorData::new(y, [idx.len(), set.classes]), device)
}

/// Test error (fraction) and NLL (mean cross-entropy, nats) of `model` on `set`, computed in
/// f64 from the logits, in batches of 1,000.
pub fn evaluate(model: &SpiralMlp, set: &Dataset, device: &Device) -> (f64, f64) {
    let mut wrong = 0usize;
    let mut nll = 0.0;
    let all: Vec<usize> = (0..set.len()).collect();
    for idx in all.chunks(1000) {
        let x = Tensor::<2>::from_data(TensorData::new(set.gather(idx), [idx.len(), set.features]), device);
        let logits: Vec<f32> = model.forward(x, &NoMix).into_data().try_to_vec().unwrap_or_default();
        for (row, &i) in idx.iter().enumerate() {
            let z = &logits[row * set.classes..(row + 1) * set.classes];
            let (e, n) = error_and_nll(z, set.labels[i]);
            wrong += e as usize;
            nll += n;
        }
    }
    (wrong as f64 / set.len() as f64, nll / set.len() as f64)
}

/// Whether the arg-max of `logits` misses `label` (ties count as a miss), and −log softmax.
pub fn error_and_nll(logits: &[f32], label: usize) -> (bool, f64) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_sum = logits.iter().map(|&z| (z as f64 - max).exp()).sum::<f64>().ln() + max;
    let correct = logits[label];
    let wrong = logits.iter().enumerate().any(|(c, &z)| c != label && z >= correct);
    (wrong, log_sum - correct as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_and_error_by_hand() {
        // Logits (0, ln 3): softmax = (1/4, 3/4). Label 1: −ln(3/4); label 0: −ln(1/4) and an error.
        let z = [0.0f32, 3f32.ln()];
        let (e1, n1) = error_and_nll(&z, 1);
        let (e0, n0) = error_and_nll(&z, 0);
        assert!(!e1 && e0);
        assert!((n1 - (4.0f64 / 3.0).ln()).abs() < 1e-6);
        assert!((n0 - 4f64.ln()).abs() < 1e-6);
    }
}
