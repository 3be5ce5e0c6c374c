//! Layers with PyTorch's default initialisation, drawn from our own seeded stream so that a
//! model starts the same on every backend: weights and biases of `nn.Linear` and `nn.Conv2d`
//! ~ U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5); BatchNorm γ = 1, β = 0, or
//! γ ~ U(0, 1) as PyTorch ≤ 1.1 (the official code's PyTorch 1.0.0) when the spec asks.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::prelude::*;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::spec::types::BnGamma;

fn uniform(n: usize, bound: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n)
        .map(|_| rng.random_range(-bound..bound) as f32)
        .collect()
}

/// `nn.Linear(d_in, d_out)`. Weight layout `[d_in, d_out]`.
pub fn linear(d_in: usize, d_out: usize, rng: &mut ChaCha8Rng, device: &Device) -> Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    let weight = Tensor::<2>::from_data(
        TensorData::new(uniform(d_in * d_out, bound, rng), [d_in, d_out]),
        device,
    );
    let bias = Tensor::<1>::from_data(TensorData::new(uniform(d_out, bound, rng), [d_out]), device);
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

/// The shape of a square convolution: `nn.Conv2d(c_in, c_out, k, stride, padding, bias)`.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub bias: bool,
}

impl ConvShape {
    /// A k×k conv with "same" padding (k / 2).
    pub fn new(c_in: usize, c_out: usize, k: usize, stride: usize, bias: bool) -> ConvShape {
        ConvShape {
            c_in,
            c_out,
            k,
            stride,
            bias,
        }
    }
}

/// `nn.Conv2d` of `shape`, padding k / 2. Weight layout `[c_out, c_in, k, k]`.
pub fn conv(shape: ConvShape, rng: &mut ChaCha8Rng, device: &Device) -> Conv2d {
    let ConvShape {
        c_in,
        c_out,
        k,
        stride,
        bias,
    } = shape;
    let padding = k / 2;
    let mut layer = Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(bias)
        .init(device);
    let bound = 1.0 / ((c_in * k * k) as f64).sqrt();
    let weight = Tensor::<4>::from_data(
        TensorData::new(
            uniform(c_out * c_in * k * k, bound, rng),
            [c_out, c_in, k, k],
        ),
        device,
    );
    layer.weight = Param::from_tensor(weight);
    if bias {
        let b =
            Tensor::<1>::from_data(TensorData::new(uniform(c_out, bound, rng), [c_out]), device);
        layer.bias = Some(Param::from_tensor(b));
    }
    layer
}

/// `nn.BatchNorm2d(n)`: momentum 0.1, eps 1e-5, γ = 1, β = 0.
pub fn batch_norm(n: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(n)
        .with_momentum(0.1)
        .with_epsilon(1e-5)
        .init(device)
}

/// Sets every BatchNorm's γ as `gamma` says: left at 1, or drawn from U(0, 1) per channel,
/// layer after layer in the order given, from `rng` once the rest of the model is drawn (so a
/// model with γ = 1 draws exactly what it drew before this setting existed).
pub fn init_gamma(norms: Vec<&mut BatchNorm>, gamma: BnGamma, rng: &mut ChaCha8Rng) {
    if gamma == BnGamma::One {
        return;
    }
    for bn in norms {
        let [n] = bn.gamma.dims();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..1.0f32)).collect();
        let device = bn.gamma.device();
        bn.gamma = Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(values, [n]),
            &device,
        ));
    }
}

/// Global average pooling `[b, c, h, w]` → `[b, c]`. On the final 4×4 (PreActResNet, 32×32
/// input) or 8×8 (WRN) maps this is the official `avg_pool2d(out, 4)` / `(out, 8)`; on other
/// input sizes it is the natural generalisation.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([b, c])
}
