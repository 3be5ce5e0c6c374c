//! Batches prepared on another thread: while the training step runs on one batch, a producer
//! gathers, augments and normalises the next ones (at most `DEPTH` ahead). The producer draws
//! from its own copy of the "augment" stream in batch order, and each batch carries the stream
//! position after it, so a checkpoint taken after any batch records exactly where the stream
//! stands — prefetching changes no number.

use std::sync::mpsc::sync_channel;
use std::time::Instant;

use rand_chacha::ChaCha8Rng;

use super::{Dataset, TrainTransform};

/// How many batches the producer may prepare ahead.
const DEPTH: usize = 2;

/// One training batch on the host.
pub struct HostBatch {
    /// Its index in the epoch.
    pub step: usize,
    /// The dataset rows it holds, in order.
    pub rows: Vec<usize>,
    /// Normalised (and augmented) inputs, `[rows, features]`.
    pub inputs: Vec<f32>,
    /// Word position of the augment stream after this batch.
    pub augment_pos: u128,
}

/// Feeds `consume` the batches `(step, rows)` in order, prepared on a second thread from
/// `rng` (the augment stream, at the right position). Returns what `consume` returned and the
/// seconds it spent waiting for a batch.
pub fn run<R>(
    set: &Dataset,
    batches: Vec<(usize, Vec<usize>)>,
    transform: &TrainTransform,
    mut rng: ChaCha8Rng,
    consume: impl FnOnce(&mut dyn Iterator<Item = HostBatch>) -> R,
) -> (R, f64) {
    let (tx, rx) = sync_channel::<HostBatch>(DEPTH);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (step, rows) in batches {
                let inputs = set.gather_train(&rows, transform, &mut rng);
                let batch = HostBatch {
                    step,
                    rows,
                    inputs,
                    augment_pos: rng.get_word_pos(),
                };
                if tx.send(batch).is_err() {
                    break; // the consumer stopped early
                }
            }
        });
        let mut waited = 0.0;
        let result = {
            let mut iter = std::iter::from_fn(|| {
                let t = Instant::now();
                let next = rx.recv().ok();
                waited += t.elapsed().as_secs_f64();
                next
            });
            consume(&mut iter)
        };
        // A consumer that stopped early leaves the producer blocked on a full channel: closing
        // our end makes its next send fail, so it ends and the scope can join it.
        drop(rx);
        (result, waited)
    })
}
