//! Training and evaluating one run on one device. Knows nothing of sweeps: it takes a spec and
//! reports each evaluated epoch to a callback.

pub mod bench;
pub mod checkpoint;
pub mod device;
pub mod loss;
pub mod mixing;
pub mod optim;
pub mod regularise;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;
use rand::seq::SliceRandom;

use crate::data::{self, Dataset, prefetch};
use crate::models::Network;
use crate::models::NoMix;
use crate::spec::types::RunSpec;
use crate::store::records::EpochMetrics;
use checkpoint::LoopState;
use mixing::{MixStreams, Mixer};

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("diverged: the training loss became {loss} at epoch {epoch}, minibatch {step}")]
    Diverged {
        epoch: usize,
        step: usize,
        loss: f64,
    },
    #[error("writing metrics or a checkpoint: {0}")]
    Io(#[from] std::io::Error),
    #[error("the checkpoint cannot be restored: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

/// What a finished training run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub history: Vec<EpochMetrics>,
    pub device: String,
    pub wall_time: f64,
    pub train_examples_per_sec: f64,
    /// Share of training time the step spent waiting for a batch from the data thread.
    pub data_wait_fraction: f64,
    /// The epoch training resumed from (0 for a fresh start).
    pub resumed_from_epoch: usize,
}

/// How training ended without an error.
#[derive(Debug, Clone)]
pub enum Ended {
    Finished(Outcome),
    /// A stop was requested; a checkpoint at (epoch, minibatch) was written.
    Stopped {
        epoch: usize,
        step: usize,
    },
}

/// How the loop is driven from outside: checkpoints and stop requests.
pub struct Control<'a> {
    /// Where to compute (opened and checked by `device::open`).
    pub device: &'a Device,
    /// How the device is named in provenance.
    pub device_name: String,
    /// Where checkpoints live; `None` = none are written or read.
    pub checkpoint_dir: Option<&'a Path>,
    /// Write a checkpoint after every this many epochs (0 = only at a stop and at the end).
    pub checkpoint_every: usize,
    /// Set (e.g. by a signal handler) to checkpoint at the next minibatch boundary and stop.
    pub stop: &'a AtomicBool,
    /// Told the number of epochs done after each epoch.
    pub on_epoch: &'a dyn Fn(usize),
}

/// Trains `spec`, continuing from the checkpoint in `control.checkpoint_dir` if there is one,
/// and calls `on_eval` with the whole metric history after each evaluation.
pub fn train(
    spec: &RunSpec,
    control: &Control,
    on_eval: &mut dyn FnMut(&[EpochMetrics]) -> std::io::Result<()>,
) -> Result<Ended, TrainError> {
    let device = control.device.clone();
    let ad = device.clone().autodiff();
    let splits = data::load(&spec.data)?;
    let (train_set, test_set) = (&splits.train, &splits.test);
    let transform = data::TrainTransform {
        augment: splits.augment.clone(),
        cutout: spec.cutout,
    };
    let mut model = Network::new(
        &spec.model,
        &train_set.shape,
        train_set.classes,
        &mut crate::rng::stream(spec.seed, "init"),
        &ad,
    );
    let mut optimizer = optim::optimizer(&spec.train);
    let mut order_rng = crate::rng::stream(spec.seed, "order");
    let mut mix_rng = MixStreams::new(spec.seed);
    let mixing = spec.alpha.zip(spec.layers.clone());

    let mut st = LoopState {
        epoch: 0,
        step: 0,
        order_pos: 0,
        layer_pos: 0,
        lambda_pos: 0,
        partner_pos: 0,
        augment_pos: 0,
        data_wait: 0.0,
        loss_sum: 0.0,
        batches: 0,
        examples: 0,
        train_time: 0.0,
        elapsed: 0.0,
        history: Vec::new(),
    };
    if let Some(saved) = control
        .checkpoint_dir
        .map(checkpoint::load)
        .transpose()?
        .flatten()
    {
        let bad = |e: burn::store::RecordError| TrainError::Checkpoint(e.to_string());
        let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(saved.model))
            .map_err(bad)?;
        model = model.try_load_record(record).map_err(bad)?;
        let record = burn::optim::OptimizerRecord::from_bytes(Bytes::from_bytes_vec(saved.optim))
            .map_err(bad)?;
        optimizer = optimizer.load_record(record);
        st = saved.state;
        mix_rng.layer.set_word_pos(st.layer_pos);
        mix_rng.lambda.set_word_pos(st.lambda_pos);
        mix_rng.partner.set_word_pos(st.partner_pos);
        eprintln!(
            "resuming from the checkpoint at epoch {}, minibatch {}",
            st.epoch + 1,
            st.step
        );
    }
    let resumed_from_epoch = st.epoch;
    let elapsed_before = st.elapsed;
    let started = Instant::now();
    let save = |st: &mut LoopState,
                model: &Network,
                optimizer: &ModuleOptimizer,
                mix_rng: &MixStreams|
     -> Result<(), TrainError> {
        let Some(dir) = control.checkpoint_dir else {
            return Ok(());
        };
        st.layer_pos = mix_rng.layer.get_word_pos();
        st.lambda_pos = mix_rng.lambda.get_word_pos();
        st.partner_pos = mix_rng.partner.get_word_pos();
        st.elapsed = elapsed_before + started.elapsed().as_secs_f64();
        let bad = |e: burn::store::RecordError| TrainError::Checkpoint(e.to_string());
        let model_bytes = model.clone().into_record().into_bytes().map_err(bad)?;
        let optim_bytes = optimizer.to_record().into_bytes().map_err(bad)?;
        checkpoint::save(dir, st, &model_bytes, &optim_bytes)?;
        Ok(())
    };

    while st.epoch < spec.train.epochs {
        let epoch = st.epoch;
        let epoch_start = Instant::now();
        let lr = spec.train.lr_at(epoch);
        // A fresh permutation each epoch, as PyTorch's RandomSampler, drawn from the stream
        // position recorded at the epoch's start (so a resumed epoch draws the same one).
        order_rng.set_word_pos(st.order_pos);
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        order.shuffle(&mut order_rng);
        // No drop_last, as PyTorch's DataLoader in the official code: the last batch may be short.
        let batches: Vec<(usize, Vec<usize>)> = order
            .chunks(spec.train.batch_size)
            .enumerate()
            .skip(st.step)
            .map(|(s, rows)| (s, rows.to_vec()))
            .collect();
        let mut augment_rng = crate::rng::stream(spec.seed, "augment");
        augment_rng.set_word_pos(st.augment_pos);
        // The model and optimiser move into the consumer and come back with the epoch's outcome.
        let (outcome, waited) = prefetch::run(
            train_set,
            batches,
            &transform,
            augment_rng,
            |batches| -> Result<(Network, ModuleOptimizer, bool), TrainError> {
                let (mut model, mut optimizer) = (model, optimizer);
                for batch in batches {
                    let idx = &batch.rows;
                    let mut inputs = batch.inputs;
                    if spec.train.input_noise > 0.0 {
                        regularise::add_input_noise(
                            &mut inputs,
                            spec.train.input_noise,
                            &mut regularise::stream(spec.seed, "input_noise", epoch, batch.step),
                        );
                    }
                    let x = Tensor::<2>::from_data(
                        TensorData::new(inputs, [idx.len(), train_set.features()]),
                        &ad,
                    );
                    let y = one_hot(train_set, idx, &ad);
                    let (logits, targets) = match &mixing {
                        Some((alpha, layers)) => {
                            let mixer = Mixer::new(&mix_rng.draw(*alpha, layers, idx.len()), &ad);
                            (
                                forward_train(&model, x, &mixer, spec, epoch, batch.step),
                                mixer.targets(y),
                            )
                        }
                        None => (forward_train(&model, x, &NoMix, spec, epoch, batch.step), y),
                    };
                    let loss = loss::loss(spec.train.loss, logits, targets);
                    let value = f64::from(loss.clone().into_scalar::<f32>());
                    if !value.is_finite() {
                        return Err(TrainError::Diverged {
                            epoch: epoch + 1,
                            step: batch.step + 1,
                            loss: value,
                        });
                    }
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    model = optimizer.step(lr, model, grads);
                    st.loss_sum += value;
                    st.batches += 1;
                    st.examples += idx.len();
                    st.step = batch.step + 1;
                    st.augment_pos = batch.augment_pos;
                    if control.stop.load(Ordering::Relaxed) {
                        return Ok((model, optimizer, true));
                    }
                }
                Ok((model, optimizer, false))
            },
        );
        st.data_wait += waited;
        st.train_time += epoch_start.elapsed().as_secs_f64();
        let stopped;
        (model, optimizer, stopped) = outcome?;
        if stopped {
            save(&mut st, &model, &optimizer, &mix_rng)?;
            return Ok(Ended::Stopped {
                epoch: epoch + 1,
                step: st.step,
            });
        }
        let done = epoch + 1;
        if done.is_multiple_of(spec.eval.every) || done == spec.train.epochs {
            let frozen = model.valid();
            let (test_error, test_nll) = evaluate(&frozen, test_set, &device);
            let val = splits.val.as_ref().map(|v| evaluate(&frozen, v, &device));
            // The model the validation rule selects (the first epoch with the lowest error) is
            // kept for evaluation.
            if let (Some(dir), Some((v, _))) = (control.checkpoint_dir, val)
                && st
                    .history
                    .iter()
                    .all(|m| m.val_error.is_none_or(|best| v < best))
            {
                let bytes = model
                    .clone()
                    .into_record()
                    .into_bytes()
                    .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
                checkpoint::save_best_on_validation(dir, &bytes)?;
            }
            st.history.push(EpochMetrics {
                epoch: done,
                lr,
                train_loss: st.loss_sum / st.batches.max(1) as f64,
                test_error,
                test_nll,
                val_error: val.map(|v| v.0),
                val_nll: val.map(|v| v.1),
                elapsed: elapsed_before + started.elapsed().as_secs_f64(),
            });
            on_eval(&st.history)?;
        }
        (control.on_epoch)(done);
        st.epoch = done;
        st.step = 0;
        st.order_pos = order_rng.get_word_pos();
        st.loss_sum = 0.0;
        st.batches = 0;
        let periodic =
            control.checkpoint_every > 0 && done.is_multiple_of(control.checkpoint_every);
        if periodic || done == spec.train.epochs {
            save(&mut st, &model, &optimizer, &mix_rng)?;
        }
    }
    Ok(Ended::Finished(Outcome {
        history: st.history,
        device: control.device_name.clone(),
        wall_time: elapsed_before + started.elapsed().as_secs_f64(),
        train_examples_per_sec: st.examples as f64 / st.train_time.max(1e-9),
        data_wait_fraction: st.data_wait / st.train_time.max(1e-9),
        resumed_from_epoch,
    }))
}

/// The training forward pass: `hook` (the mixing) at the mix points, behind dropout when the
/// model has it.
fn forward_train<H: crate::models::MixHook>(
    model: &Network,
    x: Tensor<2>,
    hook: &H,
    spec: &RunSpec,
    epoch: usize,
    step: usize,
) -> Tensor<2> {
    match spec.model.dropout() {
        Some((p, spare)) => {
            let rng =
                std::cell::RefCell::new(regularise::stream(spec.seed, "dropout", epoch, step));
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
pub fn evaluate(model: &Network, set: &Dataset, device: &Device) -> (f64, f64) {
    let mut wrong = 0usize;
    let mut nll = 0.0;
    let all: Vec<usize> = (0..set.len()).collect();
    for idx in all.chunks(1000) {
        let x = Tensor::<2>::from_data(
            TensorData::new(set.gather(idx), [idx.len(), set.features()]),
            device,
        );
        let logits: Vec<f32> = model
            .forward(x, &NoMix)
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
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
    let log_sum = logits
        .iter()
        .map(|&z| (z as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    let correct = logits[label];
    let wrong = logits
        .iter()
        .enumerate()
        .any(|(c, &z)| c != label && z >= correct);
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
