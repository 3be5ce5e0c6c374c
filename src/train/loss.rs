//! Training losses against soft (mixed) targets.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

use crate::spec::types::LossKind;

/// Mean loss of `logits [batch, classes]` against `targets [batch, classes]` (rows sum to 1).
pub fn loss(kind: LossKind, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    match kind {
        // −Σ_c y_c·log softmax(z)_c, averaged over the batch.
        LossKind::SoftCe => (targets * log_softmax(logits, 1)).sum_dim(1).mean().neg(),
        // nn.BCELoss()(softmax(z), y): −[y·log p + (1−y)·log(1−p)] averaged over batch × classes.
        // PyTorch clamps each log at −100; so do we.
        LossKind::BceSoftmax => {
            let p = softmax(logits, 1);
            let log_p = p.clone().log().clamp_min(-100.0);
            let log_q = p.neg().add_scalar(1.0).log().clamp_min(-100.0);
            let ones = targets.ones_like();
            (targets.clone() * log_p + (ones - targets) * log_q)
                .mean()
                .neg()
        }
    }
}
