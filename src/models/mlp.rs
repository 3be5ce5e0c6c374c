//! The paper's 2-D spiral network: a fully connected net whose middle layer is a 2-D
//! bottleneck (Figure 1; "nine layers" in the ICLR 2019 version = input, 3 hidden,
//! bottleneck, 3 hidden, output with the default depth 3).
//!
//! Mix point 0 is the input; mix point k ≥ 1 is the output of hidden layer k after its
//! activation; the bottleneck is mix point `depth + 1`. Weights start as PyTorch's `nn.Linear`
//! default, U(−1/√fan_in, 1/√fan_in) for weights and biases, drawn from our own seeded stream
//! so that initialisation does not depend on the backend.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::MixHook;
use crate::spec::types::{Activation, ModelSpec};

/// 2 → depth×width → bottleneck → depth×width → classes.
#[derive(Module, Debug)]
pub struct SpiralMlp {
    /// Linear maps in order; all but the last are followed by the activation.
    pub layers: Vec<Linear>,
    #[module(skip)]
    pub activation: Activation,
}

impl SpiralMlp {
    /// Builds the network of `spec` for `inputs` features and `classes` outputs.
    pub fn new(spec: &ModelSpec, inputs: usize, classes: usize, rng: &mut ChaCha8Rng, device: &Device) -> SpiralMlp {
        let ModelSpec::SpiralMlp { width, depth, bottleneck, activation } = *spec;
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

/// A `Linear` with PyTorch's default initialisation from `rng`. Weight layout `[d_in, d_out]`.
fn linear(d_in: usize, d_out: usize, rng: &mut ChaCha8Rng, device: &Device) -> Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    let mut uniform = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect() };
    let weight = Tensor::<2>::from_data(TensorData::new(uniform(d_in * d_out), [d_in, d_out]), device);
    let bias = Tensor::<1>::from_data(TensorData::new(uniform(d_out), [d_out]), device);
    Linear { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)) }
}
