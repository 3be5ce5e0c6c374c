//! The paper's 2-D spiral network: a fully connected net whose middle layer is a 2-D
//! bottleneck (Figure 1; "nine layers" in the ICLR 2019 version = input, 3 hidden,
//! bottleneck, 3 hidden, output with the default depth 3).
//!
//! Mix point 0 is the input; mix point k ≥ 1 is the output of hidden layer k after its
//! activation; the bottleneck is mix point `depth + 1`. Weights start as PyTorch's `nn.Linear`
//! default, U(−1/√fan_in, 1/√fan_in) for weights and biases, drawn from our own seeded stream
//! so that initialisation does not depend on the backend. With `batch_norm`, every hidden
//! layer normalises its pre-activations (BatchNorm, γ = 1, β = 0 at the start, as PyTorch).

use burn::nn::{BatchNorm, BatchNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation;
use rand_chacha::ChaCha8Rng;

use super::MixHook;
use super::layers::linear;
use crate::spec::types::Activation;

/// 2 → depth×width → bottleneck → depth×width → classes.
#[derive(Module, Debug)]
pub struct SpiralMlp {
    /// Linear maps in order; all but the last are followed by the activation.
    pub layers: Vec<Linear>,
    /// One per hidden layer with `batch_norm`, else none.
    pub norms: Vec<BatchNorm>,
    #[module(skip)]
    pub activation: Activation,
}

impl SpiralMlp {
    /// inputs → depth×width → bottleneck → depth×width → classes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        inputs: usize,
        width: usize,
        depth: usize,
        bottleneck: usize,
        activation: Activation,
        batch_norm: bool,
        classes: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> SpiralMlp {
        let mut sizes = vec![inputs];
        sizes.extend(std::iter::repeat_n(width, depth));
        sizes.push(bottleneck);
        sizes.extend(std::iter::repeat_n(width, depth));
        sizes.push(classes);
        let layers = sizes
            .windows(2)
            .map(|w| linear(w[0], w[1], rng, device))
            .collect();
        let hidden = &sizes[1..sizes.len() - 1];
        let norms = if batch_norm {
            hidden
                .iter()
                .map(|&n| BatchNormConfig::new(n).init(device))
                .collect()
        } else {
            Vec::new()
        };
        SpiralMlp {
            layers,
            norms,
            activation,
        }
    }

    /// Logits `[batch, classes]` for inputs `[batch, features]`, with `hook` applied at every
    /// mix point.
    pub fn forward<H: MixHook>(&self, x: Tensor<2>, hook: &H) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut h = hook.at(0, x);
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if i < last {
                if let Some(norm) = self.norms.get(i) {
                    h = norm.forward(h);
                }
                h = hook.at(i + 1, self.activate(h));
            }
        }
        h
    }

    fn activate(&self, h: Tensor<2>) -> Tensor<2> {
        match self.activation {
            Activation::Relu => activation::relu(h),
            Activation::LeakyRelu => activation::leaky_relu(h, 0.01),
            Activation::Tanh => activation::tanh(h),
        }
    }
}
