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
                bn_gamma,
            } => {
                let mut net =
                    PreActResNet::new(depth, width, stem_stride, image, classes, rng, device);
                layers::init_gamma(net.batch_norms_mut(), bn_gamma, rng);
                Network::PreAct(net)
            }
            ModelSpec::WideResnet {
                depth,
                widen,
                stem_stride,
                bn_gamma,
            } => {
                let mut net =
                    WideResNet::new(depth, widen, stem_stride, image, classes, rng, device);
                layers::init_gamma(net.batch_norms_mut(), bn_gamma, rng);
                Network::Wide(net)
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::BnGamma;

    /// Every BatchNorm's γ of a fresh network.
    fn init(spec: &ModelSpec) -> Vec<Vec<f32>> {
        let device = Device::flex();
        let mut rng = crate::rng::stream(3, "init");
        let mut net = Network::new(spec, &[3, 8, 8], 4, &mut rng, &device);
        let norms = match &mut net {
            Network::PreAct(m) => m.batch_norms_mut(),
            Network::Wide(m) => m.batch_norms_mut(),
            Network::Mlp(_) => Vec::new(),
        };
        norms
            .into_iter()
            .map(|bn| bn.gamma.val().into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn batch_norm_gamma_is_one_or_uniform_as_asked() {
        for (one, uniform) in [
            (
                ModelSpec::PreactResnet {
                    depth: 18,
                    width: 2,
                    stem_stride: 1,
                    bn_gamma: BnGamma::One,
                },
                ModelSpec::PreactResnet {
                    depth: 18,
                    width: 2,
                    stem_stride: 1,
                    bn_gamma: BnGamma::Uniform,
                },
            ),
            (
                ModelSpec::WideResnet {
                    depth: 10,
                    widen: 1,
                    stem_stride: 1,
                    bn_gamma: BnGamma::One,
                },
                ModelSpec::WideResnet {
                    depth: 10,
                    widen: 1,
                    stem_stride: 1,
                    bn_gamma: BnGamma::Uniform,
                },
            ),
        ] {
            let (g1, gu) = (init(&one), init(&uniform));
            // PreActResNet18: 8 blocks × 2 BN; WRN-10-1: 3 blocks × 2 BN + the head's.
            assert!(g1.len() == 16 || g1.len() == 7, "{} BN layers", g1.len());
            assert_eq!(g1.len(), gu.len());
            assert!(g1.iter().flatten().all(|&g| g == 1.0));
            let all: Vec<f32> = gu.iter().flatten().copied().collect();
            assert!(all.iter().all(|&g| (0.0..1.0).contains(&g)), "{all:?}");
            // U(0, 1) over dozens of channels: the mean is near 1/2, never all equal.
            let mean = all.iter().sum::<f32>() / all.len() as f32;
            assert!((0.3..0.7).contains(&mean), "mean γ {mean}");
        }
    }

    #[test]
    fn the_default_gamma_leaves_the_spec_and_its_run_id_as_they_were() {
        // `bn_gamma: one` is left out of the spec, so a run id from before the setting is kept.
        let spec = ModelSpec::PreactResnet {
            depth: 18,
            width: 2,
            stem_stride: 1,
            bn_gamma: BnGamma::One,
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"name":"preact_resnet","depth":18,"width":2,"stem_stride":1}"#
        );
        let uniform = ModelSpec::PreactResnet {
            depth: 18,
            width: 2,
            stem_stride: 1,
            bn_gamma: BnGamma::Uniform,
        };
        assert!(
            serde_json::to_string(&uniform)
                .unwrap()
                .contains(r#""bn_gamma":"uniform""#)
        );
    }
}
