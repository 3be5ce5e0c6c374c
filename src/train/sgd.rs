//! SGD with momentum, Nesterov and coupled weight decay, as `torch.optim.SGD` and burn's `Sgd`
//! compute it, with the update of each parameter fused into one pass on the CPU.
//!
//! burn's `Sgd` spends nine tensor operations per parameter (decay, momentum, Nesterov, step),
//! each a full pass that allocates its result; on the spiral MLP that was 16% of a training
//! step. On the Flex (CPU) device this optimiser reads the parameter, its gradient and its
//! velocity once and writes the new parameter and velocity once. The arithmetic is burn's, in
//! burn's order and precision (f32, no fused multiply-add), so the result is the same to the
//! bit (`tests` below), and the state is recorded under burn's names (`momentum.velocity`), so
//! checkpoints written by either optimiser resume with the other. On other devices, and for
//! other dtypes, the update is burn's sequence of tensor operations.

use burn::optim::{LearningRate, Optimizer, RecordState, StateSink, StateSource, join_path};
use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// The optimiser: coupled weight decay, then momentum (optionally Nesterov), then the step.
#[derive(Debug, Clone)]
pub struct Sgd {
    /// λ of the decay term λ·θ added to the gradient.
    pub weight_decay: Option<f32>,
    pub momentum: Option<Momentum>,
}

/// Momentum μ, dampening τ and Nesterov, as PyTorch's (and burn's `MomentumConfig`).
#[derive(Debug, Clone, Copy)]
pub struct Momentum {
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
}

/// The state of one parameter: its velocity, once a step has been taken with momentum.
#[derive(Clone)]
pub struct SgdState<const D: usize> {
    velocity: Option<Tensor<D>>,
}

/// The scalars of the update, rounded to f32 as burn's scalar operations round them.
#[derive(Clone, Copy)]
struct Scalars {
    /// λ (0 when there is no decay: the kernels then skip the term).
    decay: f32,
    /// μ and 1 − τ.
    mu: f32,
    keep: f32,
    lr: f32,
}

// The update of one element, in the order and precision of burn's `Sgd`, `WeightDecay` and
// `Momentum`: g ← θ·λ + g; v ← g·(1−τ) + v·μ (v ← g on the first step); u ← v·μ + g
// (Nesterov) or v; θ ← θ − u·lr. Each choice is a const parameter, so every loop below is
// branch-free and vectorises.

/// Without momentum: θ ← θ − (θ·λ + g)·lr.
fn plain<const DECAY: bool>(s: Scalars, theta: &mut [f32], grad: &[f32]) {
    for (t, &g) in theta.iter_mut().zip(grad) {
        let g = if DECAY { *t * s.decay + g } else { g };
        *t -= g * s.lr;
    }
}

/// With momentum; `PRIOR`: the parameter has a velocity from an earlier step.
fn momentum<const DECAY: bool, const NESTEROV: bool, const PRIOR: bool>(
    s: Scalars,
    theta: &mut [f32],
    grad: &[f32],
    velocity: &mut [f32],
) {
    for ((t, &g), v) in theta.iter_mut().zip(grad).zip(velocity.iter_mut()) {
        let g = if DECAY { *t * s.decay + g } else { g };
        *v = if PRIOR { g * s.keep + *v * s.mu } else { g };
        let u = if NESTEROV { *v * s.mu + g } else { *v };
        *t -= u * s.lr;
    }
}

/// Elements per rayon task of the fused update: below twice this a parameter is updated on
/// one thread (a thread hand-off costs more than the pass).
const CHUNK: usize = 1 << 15;

impl Sgd {
    /// One pass over a parameter's values, on every thread when the parameter is large.
    fn pass(
        &self,
        s: Scalars,
        theta: &mut [f32],
        grad: &[f32],
        velocity: Option<(&mut [f32], bool)>,
    ) {
        let decay = self.weight_decay.is_some();
        let chunks = |len: usize| len >= 2 * CHUNK;
        match (self.momentum, velocity) {
            (Some(m), Some((velocity, prior))) => {
                let kernel = match (decay, m.nesterov, prior) {
                    (false, false, false) => momentum::<false, false, false>,
                    (false, false, true) => momentum::<false, false, true>,
                    (false, true, false) => momentum::<false, true, false>,
                    (false, true, true) => momentum::<false, true, true>,
                    (true, false, false) => momentum::<true, false, false>,
                    (true, false, true) => momentum::<true, false, true>,
                    (true, true, false) => momentum::<true, true, false>,
                    (true, true, true) => momentum::<true, true, true>,
                };
                if chunks(theta.len()) {
                    theta
                        .par_chunks_mut(CHUNK)
                        .zip(grad.par_chunks(CHUNK).zip(velocity.par_chunks_mut(CHUNK)))
                        .for_each(|(t, (g, v))| kernel(s, t, g, v));
                } else {
                    kernel(s, theta, grad, velocity);
                }
            }
            _ => {
                let kernel = if decay { plain::<true> } else { plain::<false> };
                if chunks(theta.len()) {
                    theta
                        .par_chunks_mut(CHUNK)
                        .zip(grad.par_chunks(CHUNK))
                        .for_each(|(t, g)| kernel(s, t, g));
                } else {
                    kernel(s, theta, grad);
                }
            }
        }
    }

    /// The fused update on host memory. Data that turns out not to be f32 goes through the
    /// tensor operations instead.
    fn fused<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        velocity: Option<Tensor<D>>,
    ) -> (Tensor<D>, Option<Tensor<D>>) {
        let device = tensor.device();
        let shape = tensor.shape();
        let s = Scalars {
            decay: self.weight_decay.unwrap_or(0.0),
            mu: self.momentum.map_or(0.0, |m| m.momentum as f32),
            keep: self.momentum.map_or(1.0, |m| (1.0 - m.dampening) as f32),
            lr: lr as f32,
        };
        let mut theta = tensor.into_data();
        let grad = grad.into_data();
        let prior = velocity.is_some();
        // The velocity buffer: the last one, a new one on the first step with momentum.
        let mut velocity = match velocity {
            Some(v) => Some(v.into_data()),
            None => self
                .momentum
                .map(|_| TensorData::new(vec![0f32; shape.num_elements()], shape.clone())),
        };
        let slices = (
            theta.as_mut_slice::<f32>(),
            grad.as_slice::<f32>(),
            velocity
                .as_mut()
                .map(|v| v.as_mut_slice::<f32>())
                .transpose(),
        );
        if let (Ok(theta_s), Ok(grad_s), Ok(vel_s)) = slices {
            self.pass(s, theta_s, grad_s, vel_s.map(|v| (v, prior)));
            let velocity = velocity.map(|v| Tensor::from_data(v, &device));
            return (Tensor::from_data(theta, &device), velocity);
        }
        let velocity = velocity
            .filter(|_| prior)
            .map(|v| Tensor::from_data(v, &device));
        self.composed(
            lr,
            Tensor::from_data(theta, &device),
            Tensor::from_data(grad, &device),
            velocity,
        )
    }

    /// The update as burn's `Sgd` writes it, one tensor operation at a time.
    fn composed<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        velocity: Option<Tensor<D>>,
    ) -> (Tensor<D>, Option<Tensor<D>>) {
        let grad = match self.weight_decay {
            Some(decay) => tensor.clone().mul_scalar(decay).add(grad),
            None => grad,
        };
        let (grad, velocity) = match self.momentum {
            Some(m) => {
                let mu = m.momentum as f32;
                let v = match velocity {
                    Some(v) => grad
                        .clone()
                        .mul_scalar(1.0 - m.dampening)
                        .add(v.mul_scalar(mu)),
                    None => grad.clone(),
                };
                let u = if m.nesterov {
                    v.clone().mul_scalar(mu).add(grad)
                } else {
                    v.clone()
                };
                (u, Some(v))
            }
            None => (grad, None),
        };
        (tensor - grad.mul_scalar(lr), velocity)
    }
}

/// Whether a tensor lives in host memory on the Flex backend, where the fused update runs.
fn on_flex<const D: usize>(tensor: &Tensor<D>) -> bool {
    tensor.device().without_autodiff() == Device::flex()
}

impl Optimizer for Sgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let velocity = state.and_then(|s| s.velocity);
        let f32_all = tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && velocity.as_ref().is_none_or(|v| v.dtype() == DType::F32);
        let (tensor, velocity) = if f32_all && on_flex(&tensor) {
            self.fused(lr, tensor, grad, velocity)
        } else {
            self.composed(lr, tensor, grad, velocity)
        };
        (tensor, Some(SgdState { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdState {
            velocity: state.velocity.map(|v| v.to_device(device)),
        }
    }
}

/// burn's `SgdState { momentum: Option<MomentumState { velocity } > }` records the velocity as
/// `<prefix>.momentum.velocity`; this state is recorded under the same name.
impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(velocity) = &self.velocity {
            let path = join_path(prefix, "momentum");
            out.push_tensor(&path, "velocity", velocity.clone().into_data());
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let path = join_path(prefix, "momentum");
        let velocity = if src.has_under(&path) {
            Some(Tensor::from_data(
                src.take_tensor(&path, "velocity")?,
                device,
            ))
        } else {
            None
        };
        Some(SgdState { velocity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{ModuleVisitor, Param};
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{GradientsParams, ModuleOptimizer, OptimizerRecord, SgdConfig};
    use burn::tensor::Bytes;

    use crate::models::{Network, NoMix};
    use crate::spec::types::{Activation, ModelSpec};

    fn net() -> Network {
        // Width 256: its 256×256 weight is split over rayon's threads (`CHUNK`).
        let spec = ModelSpec::SpiralMlp {
            width: 256,
            depth: 2,
            bottleneck: 2,
            activation: Activation::LeakyRelu,
            dropout: 0.0,
            batch_norm: true,
        };
        let ad = Device::flex().autodiff();
        Network::new(&spec, &[2], 3, &mut crate::rng::stream(7, "init"), &ad)
    }

    /// Steps `steps` of `optim` on a fixed batch, with a learning rate that changes as a
    /// schedule makes it.
    fn train(
        mut model: Network,
        optim: &mut ModuleOptimizer,
        steps: std::ops::Range<usize>,
    ) -> Network {
        let ad = Device::flex().autodiff();
        let x = Tensor::<2>::from_data(
            TensorData::new(
                (0..40)
                    .map(|i| ((i * 37 % 17) as f32 - 8.0) / 5.0)
                    .collect(),
                [20, 2],
            ),
            &ad,
        );
        for step in steps {
            let loss = model.forward(x.clone(), &NoMix).powf_scalar(2.0).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.1 / (1.0 + step as f64), model, grads);
        }
        model
    }

    /// Every parameter's bits, in the module's order (records also hold the random parameter
    /// ids, so their bytes differ between equal networks).
    fn bits(model: Network) -> Vec<u32> {
        struct Bits(Vec<u32>);
        impl ModuleVisitor for Bits {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let values = crate::train::host::floats(param.val()).unwrap();
                self.0.extend(values.iter().map(|v| v.to_bits()));
            }
        }
        let mut visitor = Bits(Vec::new());
        model.visit(&mut visitor);
        visitor.0
    }

    fn configs(
        decay: Option<f32>,
        momentum: Option<MomentumConfig>,
    ) -> (ModuleOptimizer, ModuleOptimizer) {
        let burn_sgd = SgdConfig::new()
            .with_weight_decay(decay.map(WeightDecayConfig::new))
            .with_momentum(momentum.clone())
            .init();
        let ours = ModuleOptimizer::from(Sgd {
            weight_decay: decay,
            momentum: momentum.map(|m| Momentum {
                momentum: m.momentum,
                dampening: m.dampening,
                nesterov: m.nesterov,
            }),
        });
        (burn_sgd, ours)
    }

    fn momentum(nesterov: bool, dampening: f64) -> Option<MomentumConfig> {
        Some(MomentumConfig {
            momentum: 0.9,
            dampening,
            nesterov,
        })
    }

    #[test]
    fn the_fused_update_is_burns_sgd_to_the_bit() {
        // The reference is burn 0.22.1's own `Sgd` on the same network and batches: every
        // configuration the specs can ask for (plain, decay, momentum with and without
        // Nesterov, dampening) must give identical parameter bits after five steps.
        for (what, decay, m) in [
            ("plain", None, None),
            ("decay", Some(5e-4), None),
            ("momentum", None, momentum(false, 0.0)),
            ("Nesterov + decay", Some(1e-4), momentum(true, 0.0)),
            ("dampening", Some(1e-4), momentum(false, 0.1)),
        ] {
            let (mut burn_sgd, mut ours) = configs(decay, m);
            let reference = bits(train(net(), &mut burn_sgd, 0..5));
            assert_eq!(reference, bits(train(net(), &mut ours, 0..5)), "{what}");
            assert_ne!(
                reference,
                bits(net()),
                "{what}: the steps must move something"
            );
        }
    }

    #[test]
    fn the_tensor_op_update_of_other_devices_is_the_fused_one() {
        // GPUs take `composed` (burn's operations); run here on the CPU, it must give the
        // fused update's bits, step after step, velocity included.
        let device = Device::flex();
        let values = |seed: usize| -> Vec<f32> {
            (0..300)
                .map(|i| (((i + seed) * 2_654_435_761) % 1000) as f32 / 250.0 - 2.0)
                .collect()
        };
        let tensor = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [20, 15]), &device);
        let bits = |t: &Tensor<2>| -> Vec<u32> {
            crate::train::host::floats(t.clone())
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        for (decay, nesterov, dampening) in [
            (None, false, 0.0),
            (Some(1e-2), true, 0.0),
            (Some(1e-2), false, 0.3),
        ] {
            let sgd = Sgd {
                weight_decay: decay,
                momentum: Some(Momentum {
                    momentum: 0.9,
                    dampening,
                    nesterov,
                }),
            };
            let (mut fused, mut composed) = ((tensor(values(0)), None), (tensor(values(0)), None));
            for step in 0..3 {
                let lr = 0.1 / (1.0 + step as f64);
                let grad = tensor(values(step + 1));
                fused = sgd.fused(lr, fused.0, grad.clone(), fused.1);
                composed = sgd.composed(lr, composed.0, grad, composed.1);
                assert_eq!(bits(&fused.0), bits(&composed.0), "parameters, step {step}");
                let velocity = |v: &Option<Tensor<2>>| v.as_ref().map(bits);
                assert_eq!(
                    velocity(&fused.1),
                    velocity(&composed.1),
                    "velocity, step {step}"
                );
            }
        }
    }

    #[test]
    fn checkpoints_of_burns_sgd_and_of_ours_resume_with_either() {
        // A run checkpointed by burn's Sgd (before this optimiser existed) must resume with
        // it, and the other way round, to the same bits as an uninterrupted run.
        let round_trip = |optim: &ModuleOptimizer| {
            let bytes = optim.to_record().into_bytes().unwrap();
            OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).unwrap()
        };
        let (mut burn_sgd, _) = configs(Some(1e-4), momentum(true, 0.0));
        let reference = bits(train(
            train(net(), &mut burn_sgd, 0..3),
            &mut burn_sgd,
            3..5,
        ));
        for from_burn in [true, false] {
            let (mut burn_sgd, mut ours) = configs(Some(1e-4), momentum(true, 0.0));
            let (first, second) = if from_burn {
                (&mut burn_sgd, ours)
            } else {
                let fresh = configs(Some(1e-4), momentum(true, 0.0)).0;
                (&mut ours, fresh)
            };
            let model = train(net(), first, 0..3);
            let mut resumed = second.load_record(round_trip(first));
            let resumed = bits(train(model, &mut resumed, 3..5));
            assert_eq!(
                reference, resumed,
                "checkpoint written by burn's Sgd: {from_burn}"
            );
        }
    }
}
