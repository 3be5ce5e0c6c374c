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

impl MixDraw {
    /// ỹ = λ·y + (1−λ)·y[perm] for one-hot targets `y` (`[batch, classes]`, row-major) on the
    /// host, before they are uploaded: a hundred rows of a few classes, not worth a device
    /// operation. λ and 1−λ are rounded to f32 as `Mixer`'s matrix rounds them.
    pub fn mix_targets(&self, y: &[f32], classes: usize) -> Vec<f32> {
        let (keep, take) = (self.lambda as f32, (1.0 - self.lambda) as f32);
        let mut out = Vec::with_capacity(y.len());
        for (row, &p) in y.chunks_exact(classes).zip(&self.partner) {
            let partner = &y[p * classes..(p + 1) * classes];
            out.extend(row.iter().zip(partner).map(|(&a, &b)| keep * a + take * b));
        }
        out
    }
}

/// `λ·t + (1−λ)·t[perm]` along the batch dimension: the definition, written as the paper does.
/// The training step mixes through `Mixer`, which uses it for hidden states that fit in cache.
pub fn mix<const D: usize>(t: Tensor<D>, lambda: f64, partner: &Tensor<1, Int>) -> Tensor<D> {
    let shuffled = t.clone().select(0, partner.clone());
    t.mul_scalar(lambda) + shuffled.mul_scalar(1.0 - lambda)
}

/// A minibatch's mix, ready to be applied inside a forward pass.
///
/// A hidden state that fits in a core's cache is mixed as the definition writes it (`mix`: a
/// gather, two scalings and an add). A larger one is mixed by one product with the constant
/// matrix M = λ·I + (1−λ)·P (P the partner permutation, row i has a 1 at column perm[i]):
/// (M·h)_i = λ·h_i + (1−λ)·h_perm[i]. Out of cache the product's one pass over h (and one
/// backward) costs less than the definition's several; in cache the definition's few small
/// operations cost less than a product whose inner dimension is the whole batch. The two agree
/// to rounding (tests/mixing.rs); reports/bench.md measures the cost.
pub struct Mixer {
    pub layer: usize,
    pub lambda: f64,
    /// Row i is mixed with row `partner[i]`.
    pub partner: Vec<usize>,
    device: Device,
    /// M, `[batch, batch]`, with no gradient; built on first use.
    matrix: std::sync::OnceLock<Tensor<2>>,
}

/// Hidden states of at most this many elements (1 MiB of f32) are mixed by the definition. On
/// the spiral MLP's bench (a 100×2 bottleneck) the mixing took 0.67% of a step as a product and
/// 0.27% as the definition; the conv nets' mixed states (0.3–1.6 Mi floats at batch 100) stay
/// products, as measured before.
const IN_CACHE: usize = 1 << 18;

impl Mixer {
    pub fn new(draw: &MixDraw, device: &Device) -> Mixer {
        Mixer {
            layer: draw.layer,
            lambda: draw.lambda,
            partner: draw.partner.clone(),
            device: device.clone(),
            matrix: std::sync::OnceLock::new(),
        }
    }

    /// M = λ·I + (1−λ)·P.
    fn matrix(&self) -> Tensor<2> {
        let build = || {
            let n = self.partner.len();
            let mut m = vec![0f32; n * n];
            for (i, &p) in self.partner.iter().enumerate() {
                m[i * n + i] += self.lambda as f32;
                m[i * n + p] += (1.0 - self.lambda) as f32;
            }
            Tensor::<2>::from_data(TensorData::new(m, [n, n]), &self.device)
        };
        self.matrix.get_or_init(build).clone()
    }

    /// The partner permutation as an index tensor (for `mix`, the definition).
    pub fn partner_tensor(&self, device: &Device) -> Tensor<1, Int> {
        let idx: Vec<i64> = self.partner.iter().map(|&i| i as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(idx, [self.partner.len()]), device)
    }

    /// λ·t + (1−λ)·t[perm] for any `[batch, ...]` tensor: by the definition in cache, as M·t
    /// out of it.
    pub fn apply<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        let dims = t.dims();
        if dims.iter().product::<usize>() <= IN_CACHE {
            let partner = self.partner_tensor(&t.device());
            return mix(t, self.lambda, &partner);
        }
        self.apply_product(t)
    }

    /// λ·t + (1−λ)·t[perm] as M·t, whatever the size.
    pub fn apply_product<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        let dims = t.dims();
        let rows = dims[0];
        let rest = dims.iter().skip(1).product::<usize>();
        self.matrix().matmul(t.reshape([rows, rest])).reshape(dims)
    }
}

impl MixHook for Mixer {
    fn at<const D: usize>(&self, k: usize, h: Tensor<D>) -> Tensor<D> {
        if k == self.layer { self.apply(h) } else { h }
    }
}
