//! PreActResNet 18/34 (basic blocks) and 50/101/152 (bottleneck blocks), as the official
//! code's `supervised/models/preresnet.py` (kuangliu/pytorch-cifar style): a bare 3×3 stem
//! conv (no BN/ReLU), four stages of pre-activation blocks with widths w, 2w, 4w, 8w and
//! strides 1, 2, 2, 2, no final BN+ReLU, global average pooling, a linear head.
//!
//! Mix points: 0 = the input, k = 1..4 the output of residual stage k (the paper's S for
//! PreActResNets is {0, 1, 2}; the official code also has k = 3).

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand_chacha::ChaCha8Rng;

use super::MixHook;
use super::layers::{ConvShape, batch_norm, conv, global_avg_pool, linear};

/// Blocks per stage and whether they are bottlenecks, for a depth (one table, shared with
/// the cost model).
pub use crate::spec::cost::preact_stages as stages;

/// One pre-activation block, basic (two 3×3 convs) or bottleneck (1×1, 3×3, 1×1 ×4).
#[derive(Module, Debug)]
pub struct Block {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    bn3: Option<BatchNorm>,
    conv3: Option<Conv2d>,
    /// 1×1 projection of the pre-activated input when the shape changes.
    shortcut: Option<Conv2d>,
}

impl Block {
    fn new(
        c_in: usize,
        planes: usize,
        stride: usize,
        bottleneck: bool,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> (Block, usize) {
        let expansion = if bottleneck { 4 } else { 1 };
        let c_out = planes * expansion;
        let shortcut = (stride != 1 || c_in != c_out)
            .then(|| conv(ConvShape::new(c_in, c_out, 1, stride, false), rng, device));
        let block = if bottleneck {
            Block {
                bn1: batch_norm(c_in, device),
                conv1: conv(ConvShape::new(c_in, planes, 1, 1, false), rng, device),
                bn2: batch_norm(planes, device),
                conv2: conv(
                    ConvShape::new(planes, planes, 3, stride, false),
                    rng,
                    device,
                ),
                bn3: Some(batch_norm(planes, device)),
                conv3: Some(conv(
                    ConvShape::new(planes, c_out, 1, 1, false),
                    rng,
                    device,
                )),
                shortcut,
            }
        } else {
            Block {
                bn1: batch_norm(c_in, device),
                conv1: conv(ConvShape::new(c_in, planes, 3, stride, false), rng, device),
                bn2: batch_norm(planes, device),
                conv2: conv(ConvShape::new(planes, planes, 3, 1, false), rng, device),
                bn3: None,
                conv3: None,
                shortcut,
            }
        };
        (block, c_out)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(x.clone()));
        let shortcut = match &self.shortcut {
            Some(proj) => proj.forward(out.clone()),
            None => x,
        };
        let mut out = self.conv1.forward(out);
        out = self.conv2.forward(relu(self.bn2.forward(out)));
        if let (Some(bn3), Some(conv3)) = (&self.bn3, &self.conv3) {
            out = conv3.forward(relu(bn3.forward(out)));
        }
        out + shortcut
    }
}

/// The network. Input rows are flat `[batch, c·h·w]` and reshaped to `[batch, c, h, w]`.
#[derive(Module, Debug)]
pub struct PreActResNet {
    stem: Conv2d,
    stages: Vec<Vec<Block>>,
    head: Linear,
    #[module(skip)]
    input: [usize; 3],
}

impl PreActResNet {
    /// `depth` ∈ {18, 34, 50, 101, 152} (checked by the spec); `width` is the first stage's
    /// channels (64 in the paper); `stem_stride` 1 for 32×32 inputs, 2 for Tiny-ImageNet.
    pub fn new(
        depth: usize,
        width: usize,
        stem_stride: usize,
        input: [usize; 3],
        classes: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> PreActResNet {
        let (blocks, bottleneck) = stages(depth).unwrap_or(([2, 2, 2, 2], false));
        let stem = conv(
            ConvShape::new(input[0], width, 3, stem_stride, false),
            rng,
            device,
        );
        let mut c = width;
        let mut all = Vec::new();
        for (s, &n) in blocks.iter().enumerate() {
            let planes = width << s;
            let mut stage = Vec::new();
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let (block, c_out) = Block::new(c, planes, stride, bottleneck, rng, device);
                stage.push(block);
                c = c_out;
            }
            all.push(stage);
        }
        let head = linear(c, classes, rng, device);
        PreActResNet {
            stem,
            stages: all,
            head,
            input,
        }
    }

    /// Every BatchNorm, block by block (bn1, bn2, bn3), stage by stage.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        self.stages
            .iter_mut()
            .flatten()
            .flat_map(|b| [Some(&mut b.bn1), Some(&mut b.bn2), b.bn3.as_mut()])
            .flatten()
            .collect()
    }

    /// Logits `[batch, classes]`, with `hook` applied at mix points 0..=4.
    pub fn forward<H: MixHook>(&self, x: Tensor<2>, hook: &H) -> Tensor<2> {
        let [b, _] = x.dims();
        let [c, h, w] = self.input;
        let mut out = hook.at(0, x.reshape([b, c, h, w]));
        out = self.stem.forward(out);
        for (s, stage) in self.stages.iter().enumerate() {
            for block in stage {
                out = block.forward(out);
            }
            out = hook.at(s + 1, out);
        }
        self.head.forward(global_avg_pool(out))
    }
}
