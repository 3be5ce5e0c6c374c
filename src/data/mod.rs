//! Data sets as plain arrays: inputs row-major `[n, features]` in f32 and class labels.

pub mod spirals;

use rand::seq::SliceRandom;

use crate::spec::types::DataSpec;

/// A labelled set held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major `[len, features]`.
    pub inputs: Vec<f32>,
    pub labels: Vec<usize>,
    pub features: usize,
    /// The shape of one input: `[features]` or `[channels, height, width]`.
    pub shape: Vec<usize>,
    pub classes: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Rows `indices`, in that order, as a row-major buffer.
    pub fn gather(&self, indices: &[usize]) -> Vec<f32> {
        let f = self.features;
        indices.iter().flat_map(|&i| self.inputs[i * f..(i + 1) * f].iter().copied()).collect()
    }
}

/// The sets a run uses.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Dataset,
    /// Held out from the training data when the spec asks (`val_split`), else `None`.
    pub val: Option<Dataset>,
    pub test: Dataset,
}

/// The train, validation and test sets of a spec.
pub fn load(spec: &DataSpec) -> Splits {
    let (train, test, seed) = match spec {
        DataSpec::Spirals { n_train, n_test, noise, turns, seed, .. } => (
            spirals::generate(*n_train, *noise, *turns, *seed, "data/train"),
            spirals::generate(*n_test, *noise, *turns, *seed, "data/test"),
            *seed,
        ),
    };
    let (train, val) = hold_out(train, spec.val_split(), seed);
    Splits { train, val, test }
}

/// Moves `n` training examples, chosen by the data seed's "data/val" stream, to a validation
/// set. The rest keep their order.
fn hold_out(set: Dataset, n: usize, seed: u64) -> (Dataset, Option<Dataset>) {
    if n == 0 {
        return (set, None);
    }
    let mut idx: Vec<usize> = (0..set.len()).collect();
    idx.shuffle(&mut crate::rng::stream(seed, "data/val"));
    let mut val_idx = idx[..n].to_vec();
    let mut train_idx = idx[n..].to_vec();
    val_idx.sort_unstable();
    train_idx.sort_unstable();
    let pick = |rows: &[usize]| Dataset { inputs: set.gather(rows), labels: rows.iter().map(|&i| set.labels[i]).collect(), features: set.features, shape: set.shape.clone(), classes: set.classes };
    (pick(&train_idx), Some(pick(&val_idx)))
}
