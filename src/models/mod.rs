//! Networks with numbered mix points. A model knows where its mix points are and calls the
//! hook at each one; it knows nothing about methods (ERM is a hook that never mixes).

pub mod layers;
pub mod mlp;
pub mod preact_resnet;
pub mod wide_resnet;

use burn::prelude::*;
use rand_chacha::ChaCha8Rng;

use crate::spec::types::ModelSpec;
use mlp::SpiralMlp;
use preact_resnet::PreActResNet;
use wide_resnet::WideResNet;

/// Any network of a run spec. Inputs are flat rows `[batch, features]`; image networks reshape
/// them to `[batch, c, h, w]` themselves, so mixing at the input is the same operation for all.
// One network per run: the size difference between variants does not matter, and burn's
// Module is not implemented for Box.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    Mlp(SpiralMlp),
    PreAct(PreActResNet),
    Wide(WideResNet),
}

impl Network {
    /// Builds the network of `spec` for inputs of `shape` (`[features]` or `[c, h, w]`; the
    /// spec checked that they fit) and `classes` outputs, initialised from `rng`.
    pub fn new(
        spec: &ModelSpec,
        shape: &[usize],
        classes: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Network {
        let image = match *shape {
            [c, h, w] => [c, h, w],
            _ => [shape.iter().product(), 1, 1],
        };
        match *spec {
            ModelSpec::SpiralMlp {
                width,
                depth,
                bottleneck,
                activation,
                batch_norm,
                ..
            } => Network::Mlp(SpiralMlp::new(
                shape.iter().product(),
                width,
                depth,
                bottleneck,
                activation,
                batch_norm,
                classes,
                rng,
                device,
            )),
            ModelSpec::PreactResnet {
                depth,
                width,
                stem_stride,
            } => Network::PreAct(PreActResNet::new(
                depth,
                width,
                stem_stride,
                image,
                classes,
                rng,
                device,
            )),
            ModelSpec::WideResnet {
                depth,
                widen,
                stem_stride,
            } => Network::Wide(WideResNet::new(
                depth,
                widen,
                stem_stride,
                image,
                classes,
                rng,
                device,
            )),
        }
    }

    /// Logits `[batch, classes]` with `hook` applied at every mix point.
    pub fn forward<H: MixHook>(&self, x: Tensor<2>, hook: &H) -> Tensor<2> {
        match self {
            Network::Mlp(m) => m.forward(x, hook),
            Network::PreAct(m) => m.forward(x, hook),
            Network::Wide(m) => m.forward(x, hook),
        }
    }
}

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
