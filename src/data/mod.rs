//! Data sets as plain arrays: inputs row-major `[n, features]` in f32 and class labels.

pub mod spirals;

use crate::spec::types::DataSpec;

/// A labelled set held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major `[len, features]`.
    pub inputs: Vec<f32>,
    pub labels: Vec<usize>,
    pub features: usize,
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

/// The train and test sets of a spec.
pub fn load(spec: &DataSpec) -> (Dataset, Dataset) {
    match spec {
        DataSpec::Spirals { n_train, n_test, noise, turns, seed } => (
            spirals::generate(*n_train, *noise, *turns, *seed, "data/train"),
            spirals::generate(*n_test, *noise, *turns, *seed, "data/test"),
        ),
    }
}
