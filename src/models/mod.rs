//! Networks with numbered mix points. A model knows where its mix points are and calls the
//! hook at each one; it knows nothing about methods (ERM is a hook that never mixes).

pub mod mlp;

use burn::prelude::*;

/// Called by a model's forward pass at every mix point k (0 = the input).
pub trait MixHook {
    /// Returns the (possibly mixed) hidden state at mix point `k`. Shape is kept.
    fn at<const D: usize>(&self, k: usize, h: Tensor<D>) -> Tensor<D>;
}

/// The hook that leaves every hidden state as it is (evaluation, ERM).
pub struct NoMix;

impl MixHook for NoMix {
    fn at<const D: usize>(&self, _k: usize, h: Tensor<D>) -> Tensor<D> {
        h
    }
}
