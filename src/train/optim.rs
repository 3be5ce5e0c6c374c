//! The optimiser of a spec: SGD as `torch.optim.SGD` (our fused `sgd::Sgd`, burn's arithmetic)
//! and burn's Adam, both configured like PyTorch's.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, ModuleOptimizer};

use super::sgd::{Momentum, Sgd};

use crate::spec::types::{OptimizerKind, TrainSpec};

/// SGD: momentum with dampening 0 (PyTorch's; burn's default is 0.1), optional Nesterov,
/// weight decay added to the gradient (coupled, as `torch.optim.SGD`), the update of each
/// parameter fused into one pass on the CPU (`sgd`).
/// Adam: betas (0.9, 0.999) and eps 1e-8 (PyTorch's; burn's default eps is 1e-5).
pub fn optimizer(train: &TrainSpec) -> ModuleOptimizer {
    let decay = (train.weight_decay > 0.0).then_some(train.weight_decay as f32);
    match train.optimizer {
        OptimizerKind::Sgd => {
            let momentum = train.momentum.unwrap_or(0.0);
            ModuleOptimizer::from(Sgd {
                weight_decay: decay,
                momentum: (momentum > 0.0).then(|| Momentum {
                    momentum,
                    dampening: 0.0,
                    nesterov: train.nesterov.unwrap_or(false),
                }),
            })
        }
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(decay.map(WeightDecayConfig::new))
            .init(),
    }
}
