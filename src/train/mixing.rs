//! Mixing as in the paper (§2, Algorithm): per minibatch, one layer k drawn uniformly from the
//! eligible set S, one λ ~ Beta(α, α), and one permutation of the batch as the partner;
//! h̃ = λ·h + (1−λ)·h[perm] at layer k and ỹ = λ·y + (1−λ)·y[perm] for the one-hot targets.
//! The draws are pure functions of named streams; applying them is the `MixHook` below.

use burn::prelude::*;
use rand::RngExt;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};

use crate::models::MixHook;
use crate::spec::types::{Alpha, LayerSet};

/// What one minibatch mixes: where, how much, with whom.
#[derive(Debug, Clone, PartialEq)]
pub struct MixDraw {
    /// The mix point k ∈ S.
    pub layer: usize,
    /// λ ∈ [0, 1].
    pub lambda: f64,
    /// Row i is mixed with row `partner[i]`.
    pub partner: Vec<usize>,
}

/// The random streams mixing draws from, one per kind of draw.
pub struct MixStreams {
    pub layer: ChaCha8Rng,
    pub lambda: ChaCha8Rng,
    pub partner: ChaCha8Rng,
}

impl MixStreams {
    pub fn new(seed: u64) -> MixStreams {
        MixStreams {
            layer: crate::rng::stream(seed, "mix/layer"),
            lambda: crate::rng::stream(seed, "mix/lambda"),
            partner: crate::rng::stream(seed, "mix/partner"),
        }
    }

    /// Draws k uniformly from S, λ ~ Beta(α, α) and a uniform permutation of `batch` rows.
    pub fn draw(&mut self, alpha: Alpha, layers: &LayerSet, batch: usize) -> MixDraw {
        let s = layers.indices();
        let layer = s[self.layer.random_range(0..s.len())];
        let lambda = match Beta::new(alpha.get(), alpha.get()) {
            Ok(beta) => beta.sample(&mut self.lambda),
            // Alpha is finite and > 0 by construction, so Beta::new cannot fail.
            Err(_) => 1.0,
        };
        let mut partner: Vec<usize> = (0..batch).collect();
        partner.shuffle(&mut self.partner);
        MixDraw {
            layer,
            lambda,
            partner,
        }
    }
}

/// `λ·t + (1−λ)·t[perm]` along the batch dimension: the definition, written as the paper does.
/// The training step computes the same thing with one matrix product (`Mixer`).
pub fn mix<const D: usize>(t: Tensor<D>, lambda: f64, partner: &Tensor<1, Int>) -> Tensor<D> {
    let shuffled = t.clone().select(0, partner.clone());
    t.mul_scalar(lambda) + shuffled.mul_scalar(1.0 - lambda)
}

/// A minibatch's mix, ready to be applied inside a forward pass.
///
/// It mixes by one product with the constant matrix M = λ·I + (1−λ)·P (P the partner
/// permutation, row i has a 1 at column perm[i]): (M·h)_i = λ·h_i + (1−λ)·h_perm[i]. One matmul
/// forward and one backward replace a gather, two scalings and an add with their gradients,
/// which on small networks costs measurably less (see reports/bench.md).
pub struct Mixer {
    pub layer: usize,
    pub lambda: f64,
    /// Row i is mixed with row `partner[i]`.
    pub partner: Vec<usize>,
    /// M, `[batch, batch]`, with no gradient.
    matrix: Tensor<2>,
}

impl Mixer {
    pub fn new(draw: &MixDraw, device: &Device) -> Mixer {
        let n = draw.partner.len();
        let mut m = vec![0f32; n * n];
        for (i, &p) in draw.partner.iter().enumerate() {
            m[i * n + i] += draw.lambda as f32;
            m[i * n + p] += (1.0 - draw.lambda) as f32;
        }
        let matrix = Tensor::<2>::from_data(TensorData::new(m, [n, n]), device);
        Mixer {
            layer: draw.layer,
            lambda: draw.lambda,
            partner: draw.partner.clone(),
            matrix,
        }
    }

    /// The partner permutation as an index tensor (for `mix`, the definition).
    pub fn partner_tensor(&self, device: &Device) -> Tensor<1, Int> {
        let idx: Vec<i64> = self.partner.iter().map(|&i| i as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(idx, [self.partner.len()]), device)
    }

    /// λ·t + (1−λ)·t[perm] for any `[batch, ...]` tensor, as M·t.
    pub fn apply<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        let dims = t.dims();
        let rows = dims[0];
        let rest = dims.iter().skip(1).product::<usize>();
        self.matrix
            .clone()
            .matmul(t.reshape([rows, rest]))
            .reshape(dims)
    }

    /// The targets mixed with the same λ and partner as the hidden state.
    pub fn targets(&self, y: Tensor<2>) -> Tensor<2> {
        self.apply(y)
    }
}

impl MixHook for Mixer {
    fn at<const D: usize>(&self, k: usize, h: Tensor<D>) -> Tensor<D> {
        if k == self.layer { self.apply(h) } else { h }
    }
}
