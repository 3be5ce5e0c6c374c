//! The optimiser of a spec, as burn's optimisers configured like PyTorch's.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};

use crate::spec::types::{OptimizerKind, TrainSpec};

/// SGD: momentum with dampening 0 (PyTorch's; burn's default is 0.1), optional Nesterov,
/// weight decay added to the gradient (coupled, as `torch.optim.SGD`).
/// Adam: betas (0.9, 0.999) and eps 1e-8 (PyTorch's; burn's default eps is 1e-5).
pub fn optimizer(train: &TrainSpec) -> ModuleOptimizer {
    let decay =
        (train.weight_decay > 0.0).then(|| WeightDecayConfig::new(train.weight_decay as f32));
    match train.optimizer {
        OptimizerKind::Sgd => {
            let momentum = train.momentum.unwrap_or(0.0);
            let config = SgdConfig::new().with_weight_decay(decay);
            let config = if momentum > 0.0 {
                config.with_momentum(Some(MomentumConfig {
                    momentum,
                    dampening: 0.0,
                    nesterov: train.nesterov.unwrap_or(false),
                }))
            } else {
                config
            };
            config.init()
        }
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(decay)
            .init(),
    }
}
