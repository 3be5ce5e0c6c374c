//! What a run computes, counted from its spec before it runs: floating-point operations of the
//! model's forward pass on one example, and of the whole training.
//!
//! Counted: convolutions and linear maps, 2 FLOPs per multiply-add. Left out: batch norm,
//! activations, pooling, the loss and the optimiser, which are linear in the activations or
//! the parameters and together under 3% of a conv net's count. Training counts 3 forward
//! passes per example seen (forward, input gradient, weight gradient: each the same
//! multiply-adds); evaluation is left out (one forward pass over the test set per evaluated
//! epoch, a few percent of training).
//!
//! The architectures follow src/models (which the orchestration layer may not import): the
//! block layouts are repeated here as arithmetic; the tests check the totals against published
//! figures and hand counts.

use super::types::{ModelSpec, RunSpec};

/// FLOPs of a `k`×`k` convolution, `c_in` → `c_out`, padding `k / 2`, on a `side`×`side` input;
/// returns them with the output side.
fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, side: usize) -> (f64, usize) {
    let out = side.div_ceil(stride);
    (2.0 * (c_in * c_out * k * k * out * out) as f64, out)
}

/// Blocks per stage and whether they are bottlenecks, for a PreActResNet depth (the models
/// use this table too).
pub fn preact_stages(depth: usize) -> Option<([usize; 4], bool)> {
    match depth {
        18 => Some(([2, 2, 2, 2], false)),
        34 => Some(([3, 4, 6, 3], false)),
        50 => Some(([3, 4, 6, 3], true)),
        101 => Some(([3, 4, 23, 3], true)),
        152 => Some(([3, 8, 36, 3], true)),
        _ => None,
    }
}

/// FLOPs of one forward pass on one example of shape `input` (`[features]` or `[c, h, w]`).
pub fn forward_flops(model: &ModelSpec, input: &[usize], classes: usize) -> f64 {
    let linear = |a: usize, b: usize| 2.0 * (a * b) as f64;
    match *model {
        ModelSpec::SpiralMlp {
            width,
            depth,
            bottleneck,
            ..
        } => {
            let mut sizes = vec![input.iter().product::<usize>()];
            sizes.extend(std::iter::repeat_n(width, depth));
            sizes.push(bottleneck);
            sizes.extend(std::iter::repeat_n(width, depth));
            sizes.push(classes);
            sizes.windows(2).map(|w| linear(w[0], w[1])).sum()
        }
        ModelSpec::PreactResnet {
            depth,
            width,
            stem_stride,
            ..
        } => {
            let (c0, side) = image(input);
            let (blocks, bottleneck) = preact_stages(depth).unwrap_or(([2, 2, 2, 2], false));
            let (mut total, mut side) = conv(c0, width, 3, stem_stride, side);
            let mut c = width;
            for (s, &n) in blocks.iter().enumerate() {
                let planes = width << s;
                let c_out = if bottleneck { 4 * planes } else { planes };
                for b in 0..n {
                    let stride = if s > 0 && b == 0 { 2 } else { 1 };
                    let out = side.div_ceil(stride);
                    let flops = if bottleneck {
                        conv(c, planes, 1, 1, side).0
                            + conv(planes, planes, 3, stride, side).0
                            + conv(planes, c_out, 1, 1, out).0
                    } else {
                        conv(c, planes, 3, stride, side).0 + conv(planes, planes, 3, 1, out).0
                    };
                    let shortcut = if stride != 1 || c != c_out {
                        conv(c, c_out, 1, stride, side).0
                    } else {
                        0.0
                    };
                    total += flops + shortcut;
                    (c, side) = (c_out, out);
                }
            }
            total + linear(c, classes)
        }
        ModelSpec::WideResnet {
            depth,
            widen,
            stem_stride,
            ..
        } => {
            let (c0, side) = image(input);
            let n = (depth.saturating_sub(4) / 6).max(1);
            let (mut total, mut side) = conv(c0, 16, 3, stem_stride, side);
            let mut c = 16;
            for (s, width) in [16 * widen, 32 * widen, 64 * widen].into_iter().enumerate() {
                for b in 0..n {
                    let stride = if s > 0 && b == 0 { 2 } else { 1 };
                    // conv1 at the block's input size, conv2 strided (models/wide_resnet.rs).
                    let (first, _) = conv(c, width, 3, 1, side);
                    let (second, out) = conv(width, width, 3, stride, side);
                    let shortcut = if stride != 1 || c != width {
                        conv(c, width, 1, stride, side).0
                    } else {
                        0.0
                    };
                    total += first + second + shortcut;
                    (c, side) = (width, out);
                }
            }
            total + linear(c, classes)
        }
    }
}

/// Channels and side of an image input (`[c, h, w]`, square as every image set here).
fn image(input: &[usize]) -> (usize, usize) {
    match input {
        [c, h, _] => (*c, *h),
        _ => (1, input.iter().product()),
    }
}

/// FLOPs of training `model` on one example of `input`'s shape: the forward pass and the
/// backward pass, which costs about two forward passes (input and weight gradients).
pub fn trained_example_flops(model: &ModelSpec, input: &[usize], classes: usize) -> f64 {
    3.0 * forward_flops(model, input, classes)
}

/// FLOPs of training `spec`'s model on one of its examples.
pub fn example_training_flops(spec: &RunSpec) -> f64 {
    let classes = spec.data.image().map(|(set, _)| set.classes()).unwrap_or(2);
    trained_example_flops(&spec.model, &spec.data.input_shape(), classes)
}

/// FLOPs of training `spec`: every example, every epoch.
pub fn training_flops(spec: &RunSpec) -> f64 {
    example_training_flops(spec) * (spec.data.train_examples() * spec.train.epochs) as f64
}

/// `1.23 TFLOP`-style text.
pub fn human_flops(flops: f64) -> String {
    let units = [
        (1e18, "EFLOP"),
        (1e15, "PFLOP"),
        (1e12, "TFLOP"),
        (1e9, "GFLOP"),
        (1e6, "MFLOP"),
    ];
    for (scale, unit) in units {
        if flops >= scale {
            return format!("{:.3} {unit}", flops / scale);
        }
    }
    format!("{flops:.0} FLOP")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::Activation;

    #[test]
    fn preact_resnet18_at_width_64_costs_what_the_literature_says() {
        // ResNet-18 on CIFAR (3×3 stem, 32×32): 0.56 G multiply-adds per image, the figure
        // quoted with the CIFAR ResNet-18 of kuangliu/pytorch-cifar that the official code
        // copies; our count: 2 × 0.556 G.
        let model = ModelSpec::PreactResnet {
            depth: 18,
            width: 64,
            stem_stride: 1,
            bn_gamma: Default::default(),
        };
        let flops = forward_flops(&model, &[3, 32, 32], 10);
        assert!((flops / 2.0 / 1e9 - 0.556).abs() < 0.005, "{flops}");
    }

    #[test]
    fn the_spiral_mlp_is_the_sum_of_its_layers() {
        // 2·(2·128 + 128·128·2 + 128·2 + 2·128 + 128·128·2 + 128·2): by hand.
        let model = ModelSpec::SpiralMlp {
            width: 128,
            depth: 3,
            bottleneck: 2,
            activation: Activation::Relu,
            dropout: 0.0,
            batch_norm: false,
        };
        let want = 2.0 * (256 + 4 * 16384 + 256 + 256 + 256) as f64;
        assert_eq!(forward_flops(&model, &[2], 2), want);
    }
}
