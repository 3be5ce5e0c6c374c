//! The paper's 2-D spiral network: a fully connected net whose middle layer is a 2-D
//! bottleneck (Figure 1; "nine layers" in the ICLR 2019 version = input, 3 hidden,
//! bottleneck, 3 hidden, output with the default depth 3).
//!
//! Mix point 0 is the input; mix point k ≥ 1 is the output of hidden layer k after its
//! activation; the bottleneck is mix point `depth + 1`. Weights start as PyTorch's `nn.Linear`
//! default, U(−1/√fan_in, 1/√fan_in) for weights and biases, drawn from our own seeded stream
//! so that initialisation does not depend on the backend.

use burn::nn::Linear;
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
    #[module(skip)]
    pub activation: Activation,
}

impl SpiralMlp {
    /// inputs → depth×width → bottleneck → depth×width → classes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(inputs: usize, width: usize, depth: usize, bottleneck: usize, activation: Activation, classes: usize, rng: &mut ChaCha8Rng, device: &Device) -> SpiralMlp {
        let mut sizes = vec![inputs];
        sizes.extend(std::iter::repeat_n(width, depth));
        sizes.push(bottleneck);
        sizes.extend(std::iter::repeat_n(width, depth));
        sizes.push(classes);
        let layers = sizes.windows(2).map(|w| linear(w[0], w[1], rng, device)).collect();
        SpiralMlp { layers, activation }
    }

    /// Logits `[batch, classes]` for inputs `[batch, features]`, with `hook` applied at every
    /// mix point.
    pub fn forward<H: MixHook>(&self, x: Tensor<2>, hook: &H) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut h = hook.at(0, x);
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if i < last {
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
