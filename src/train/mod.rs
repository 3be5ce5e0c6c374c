//! Training and evaluating one run on one device. Knows nothing of sweeps: it takes a spec and
//! reports each evaluated epoch to a callback.

pub mod allocator;
pub mod bench;
pub mod checkpoint;
pub mod device;
pub mod host;
pub mod loss;
pub mod mixing;
pub mod optim;
pub mod regularise;
pub mod sgd;
pub mod step;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::tensor::Bytes;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::{self, Dataset, prefetch};
use crate::models::{Network, NoMix};
use crate::spec::types::RunSpec;
use crate::store::records::EpochMetrics;
use checkpoint::LoopState;
use host::{DeviceRead, floats};
use mixing::MixStreams;
use step::{Batch, StepConfig, one_hot, step};

/// The version of burn we build against (pinned exactly in Cargo.toml).
pub const BURN_VERSION: &str = "0.22.1";

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
    #[error(transparent)]
    DeviceRead(#[from] DeviceRead),
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

/// What an epoch needs that does not change during the run.
struct Setup<'a> {
    spec: &'a RunSpec,
    control: &'a Control<'a>,
    splits: &'a data::Splits,
    transform: data::TrainTransform,
    step: StepConfig,
    /// The autodiff device.
    ad: Device,
}

/// What changes from step to step: the network, the optimiser, the random streams and the
/// loop's counters (all of which a checkpoint saves).
struct Progress {
    model: Network,
    optimizer: ModuleOptimizer,
    order_rng: ChaCha8Rng,
    mix_rng: MixStreams,
    st: LoopState,
}

/// Trains `spec`, continuing from the checkpoint in `control.checkpoint_dir` if there is one,
/// and calls `on_eval` with the whole metric history after each evaluation.
pub fn train(
    spec: &RunSpec,
    control: &Control,
    on_eval: &mut dyn FnMut(&[EpochMetrics]) -> std::io::Result<()>,
) -> Result<Ended, TrainError> {
    let splits = data::load(&spec.data)?;
    let setup = Setup {
        spec,
        control,
        splits: &splits,
        transform: data::TrainTransform {
            augment: splits.augment.clone(),
            cutout: spec.cutout,
        },
        step: StepConfig::of(spec),
        ad: control.device.clone().autodiff(),
    };
    let mut p = start(&setup)?;
    let resumed_from_epoch = p.st.epoch;
    let elapsed_before = p.st.elapsed;
    let started = Instant::now();
    let elapsed = || elapsed_before + started.elapsed().as_secs_f64();
    while p.st.epoch < spec.train.epochs {
        let epoch_start = Instant::now();
        let (stopped, waited);
        (p, stopped, waited) = train_epoch(&setup, p)?;
        p.st.data_wait += waited;
        p.st.train_time += epoch_start.elapsed().as_secs_f64();
        if stopped {
            save(&setup, &mut p, elapsed())?;
            return Ok(Ended::Stopped {
                epoch: p.st.epoch + 1,
                step: p.st.step,
            });
        }
        let done = p.st.epoch + 1;
        if done.is_multiple_of(spec.eval.every) || done == spec.train.epochs {
            evaluate_epoch(&setup, &mut p, done, elapsed())?;
            on_eval(&p.st.history)?;
        }
        (control.on_epoch)(done);
        p.st.epoch = done;
        p.st.step = 0;
        p.st.order_pos = p.order_rng.get_word_pos();
        p.st.loss_sum = 0.0;
        p.st.batches = 0;
        let periodic =
            control.checkpoint_every > 0 && done.is_multiple_of(control.checkpoint_every);
        if periodic || done == spec.train.epochs {
            save(&setup, &mut p, elapsed())?;
        }
    }
    Ok(Ended::Finished(Outcome {
        history: p.st.history,
        device: control.device_name.clone(),
        wall_time: elapsed(),
        train_examples_per_sec: p.st.examples as f64 / p.st.train_time.max(1e-9),
        data_wait_fraction: p.st.data_wait / p.st.train_time.max(1e-9),
        resumed_from_epoch,
    }))
}

/// A fresh network, optimiser and streams — or, when the run has a checkpoint, the ones it
/// saved.
fn start(setup: &Setup) -> Result<Progress, TrainError> {
    let spec = setup.spec;
    let train_set = &setup.splits.train;
    let model = Network::new(
        &spec.model,
        &train_set.shape,
        train_set.classes,
        &mut crate::rng::stream(spec.seed, "init"),
        &setup.ad,
    );
    let mut p = Progress {
        model,
        optimizer: optim::optimizer(&spec.train),
        order_rng: crate::rng::stream(spec.seed, "order"),
        mix_rng: MixStreams::new(spec.seed),
        st: LoopState::default(),
    };
    let Some(saved) = setup
        .control
        .checkpoint_dir
        .map(checkpoint::load)
        .transpose()?
        .flatten()
    else {
        return Ok(p);
    };
    let bad = |e: burn::store::RecordError| TrainError::Checkpoint(e.to_string());
    let record =
        burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(saved.model)).map_err(bad)?;
    p.model = p.model.try_load_record(record).map_err(bad)?;
    let record = burn::optim::OptimizerRecord::from_bytes(Bytes::from_bytes_vec(saved.optim))
        .map_err(bad)?;
    p.optimizer = p.optimizer.load_record(record);
    p.st = saved.state;
    p.mix_rng.layer.set_word_pos(p.st.layer_pos);
    p.mix_rng.lambda.set_word_pos(p.st.lambda_pos);
    p.mix_rng.partner.set_word_pos(p.st.partner_pos);
    eprintln!(
        "resuming from the checkpoint at epoch {}, minibatch {}",
        p.st.epoch + 1,
        p.st.step
    );
    Ok(p)
}

/// Writes a checkpoint of `p` (when the run keeps checkpoints).
fn save(setup: &Setup, p: &mut Progress, elapsed: f64) -> Result<(), TrainError> {
    let Some(dir) = setup.control.checkpoint_dir else {
        return Ok(());
    };
    p.st.layer_pos = p.mix_rng.layer.get_word_pos();
    p.st.lambda_pos = p.mix_rng.lambda.get_word_pos();
    p.st.partner_pos = p.mix_rng.partner.get_word_pos();
    p.st.elapsed = elapsed;
    let bad = |e: burn::store::RecordError| TrainError::Checkpoint(e.to_string());
    let model_bytes = p.model.clone().into_record().into_bytes().map_err(bad)?;
    let optim_bytes = p.optimizer.to_record().into_bytes().map_err(bad)?;
    checkpoint::save(dir, &p.st, &model_bytes, &optim_bytes)?;
    Ok(())
}

/// Trains the rest of epoch `p.st.epoch` from minibatch `p.st.step`; returns the progress,
/// whether a stop was requested, and the seconds spent waiting for batches.
fn train_epoch(setup: &Setup, mut p: Progress) -> Result<(Progress, bool, f64), TrainError> {
    let (spec, train_set) = (setup.spec, &setup.splits.train);
    let epoch = p.st.epoch;
    let lr = spec.train.lr_at(epoch);
    // A fresh permutation each epoch, as PyTorch's RandomSampler, drawn from the stream
    // position recorded at the epoch's start (so a resumed epoch draws the same one).
    p.order_rng.set_word_pos(p.st.order_pos);
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    order.shuffle(&mut p.order_rng);
    // No drop_last, as PyTorch's DataLoader in the official code: the last batch may be short.
    let batches: Vec<(usize, Vec<usize>)> = order
        .chunks(spec.train.batch_size)
        .enumerate()
        .skip(p.st.step)
        .map(|(s, rows)| (s, rows.to_vec()))
        .collect();
    let mut augment_rng = crate::rng::stream(spec.seed, "augment");
    augment_rng.set_word_pos(p.st.augment_pos);
    // The progress moves into the consumer and comes back with the epoch's outcome.
    let (outcome, waited) = prefetch::run(
        train_set,
        batches,
        &setup.transform,
        augment_rng,
        |batches| -> Result<(Progress, bool), TrainError> {
            for batch in batches {
                let rows = batch.rows.len();
                let stepped = step(
                    p.model,
                    &mut p.optimizer,
                    Batch {
                        inputs: batch.inputs,
                        features: train_set.features(),
                        targets: one_hot(
                            batch.rows.iter().map(|&i| train_set.labels[i]),
                            train_set.classes,
                        ),
                        classes: train_set.classes,
                        epoch,
                        step: batch.step,
                    },
                    &setup.step,
                    &mut p.mix_rng,
                    lr,
                    &setup.ad,
                )?;
                p.model = stepped.model;
                p.st.loss_sum += stepped.loss;
                p.st.batches += 1;
                p.st.examples += rows;
                p.st.step = batch.step + 1;
                p.st.augment_pos = batch.augment_pos;
                if setup.control.stop.load(Ordering::Relaxed) {
                    return Ok((p, true));
                }
            }
            Ok((p, false))
        },
    );
    let (p, stopped) = outcome?;
    Ok((p, stopped, waited))
}

/// Evaluates the network after `done` epochs on the test set (and the validation split),
/// keeps the model the validation rule selects, and records the epoch's metrics.
fn evaluate_epoch(
    setup: &Setup,
    p: &mut Progress,
    done: usize,
    elapsed: f64,
) -> Result<(), TrainError> {
    let device = setup.control.device;
    let frozen = p.model.valid();
    let (test_error, test_nll) = evaluate(&frozen, &setup.splits.test, device)?;
    let val = match &setup.splits.val {
        Some(v) => Some(evaluate(&frozen, v, device)?),
        None => None,
    };
    // The model the validation rule selects (the first epoch with the lowest error) is kept
    // for evaluation.
    if let (Some(dir), Some((v, _))) = (setup.control.checkpoint_dir, val)
        && p.st
            .history
            .iter()
            .all(|m| m.val_error.is_none_or(|best| v < best))
    {
        let bytes = p
            .model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        checkpoint::save_best_on_validation(dir, &bytes)?;
    }
    p.st.history.push(EpochMetrics {
        epoch: done,
        lr: setup.spec.train.lr_at(done - 1),
        train_loss: p.st.loss_sum / p.st.batches.max(1) as f64,
        test_error,
        test_nll,
        val_error: val.map(|v| v.0),
        val_nll: val.map(|v| v.1),
        elapsed,
    });
    Ok(())
}

/// Test error (fraction) and NLL (mean cross-entropy, nats) of `model` on `set`, computed in
/// f64 from the logits, in batches of 1,000.
pub fn evaluate(model: &Network, set: &Dataset, device: &Device) -> Result<(f64, f64), DeviceRead> {
    let mut wrong = 0usize;
    let mut nll = 0.0;
    let all: Vec<usize> = (0..set.len()).collect();
    for idx in all.chunks(1000) {
        let x = Tensor::<2>::from_data(
            TensorData::new(set.gather(idx), [idx.len(), set.features()]),
            device,
        );
        let logits = floats(model.forward(x, &NoMix))?;
        for (row, &i) in idx.iter().enumerate() {
            let z = &logits[row * set.classes..(row + 1) * set.classes];
            let (e, n) = error_and_nll(z, set.labels[i]);
            wrong += e as usize;
            nll += n;
        }
    }
    Ok((wrong as f64 / set.len() as f64, nll / set.len() as f64))
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
