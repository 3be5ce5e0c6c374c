//! Wide ResNet (Zagoruyko & Komodakis) as the official code's `supervised/models/wide_resnet.py`:
//! a 3×3 stem conv with bias, three stages of (depth − 4)/6 blocks with widths 16k, 32k, 64k
//! and strides 1, 2, 2, each block BN→ReLU→conv3×3 → BN→ReLU→conv3×3 (stride on the second
//! conv, biases on), a 1×1 conv with bias on the raw input as shortcut when the shape changes,
//! no dropout; head BN→ReLU→global average pooling→linear.
//!
//! One fix: the official head BN has `momentum=0.9`, which in PyTorch makes the running
//! statistics follow the last batch almost entirely (a TensorFlow-style 0.9 was surely meant);
//! we use PyTorch's default 0.1 like every other BN.
//!
//! Mix points: 0 = the input, k = 1..3 the output of stage k (the paper says {0, 1} for WRN,
//! the official code samples {0, 1, 2}: the experiment file says which).

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand_chacha::ChaCha8Rng;

use super::MixHook;
use super::layers::{ConvShape, batch_norm, conv, global_avg_pool, linear};

#[derive(Module, Debug)]
pub struct WideBlock {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl WideBlock {
    fn new(
        c_in: usize,
        c_out: usize,
        stride: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> WideBlock {
        WideBlock {
            bn1: batch_norm(c_in, device),
            conv1: conv(ConvShape::new(c_in, c_out, 3, 1, true), rng, device),
            bn2: batch_norm(c_out, device),
            conv2: conv(ConvShape::new(c_out, c_out, 3, stride, true), rng, device),
            shortcut: (stride != 1 || c_in != c_out)
                .then(|| conv(ConvShape::new(c_in, c_out, 1, stride, true), rng, device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self.conv1.forward(relu(self.bn1.forward(x.clone())));
        let out = self.conv2.forward(relu(self.bn2.forward(out)));
        let shortcut = match &self.shortcut {
            Some(proj) => proj.forward(x),
            None => x,
        };
        out + shortcut
    }
}

#[derive(Module, Debug)]
pub struct WideResNet {
    stem: Conv2d,
    stages: Vec<Vec<WideBlock>>,
    bn: BatchNorm,
    head: Linear,
    #[module(skip)]
    input: [usize; 3],
}

impl WideResNet {
    /// `depth` = 6n + 4 (28 in the paper), `widen` the width factor k (10 in the paper).
    pub fn new(
        depth: usize,
        widen: usize,
        stem_stride: usize,
        input: [usize; 3],
        classes: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> WideResNet {
        let n = (depth.saturating_sub(4) / 6).max(1);
        let widths = [16 * widen, 32 * widen, 64 * widen];
        let stem = conv(
            ConvShape::new(input[0], 16, 3, stem_stride, true),
            rng,
            device,
        );
        let mut c = 16;
        let mut stages = Vec::new();
        for (s, &width) in widths.iter().enumerate() {
            let mut stage = Vec::new();
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                stage.push(WideBlock::new(c, width, stride, rng, device));
                c = width;
            }
            stages.push(stage);
        }
        WideResNet {
            stem,
            stages,
            bn: batch_norm(c, device),
            head: linear(c, classes, rng, device),
            input,
        }
    }

    /// Every BatchNorm: block by block (bn1, bn2), stage by stage, then the head's.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut norms: Vec<&mut BatchNorm> = self
            .stages
            .iter_mut()
            .flatten()
            .flat_map(|b| [&mut b.bn1, &mut b.bn2])
            .collect();
        norms.push(&mut self.bn);
        norms
    }

    /// Logits `[batch, classes]`, with `hook` applied at mix points 0..=3.
    pub fn forward<H: MixHook>(&self, x: Tensor<2>, hook: &H) -> Tensor<2> {
        let [b, _] = x.dims();
        let [c, h, w] = self.input;
        let mut out = self.stem.forward(hook.at(0, x.reshape([b, c, h, w])));
        for (s, stage) in self.stages.iter().enumerate() {
            for block in stage {
                out = block.forward(out);
            }
            out = hook.at(s + 1, out);
        }
        self.head
            .forward(global_avg_pool(relu(self.bn.forward(out))))
    }
}
