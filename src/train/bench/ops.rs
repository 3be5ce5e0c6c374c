//! Where a PreActResNet18 training step spends its time, operation by operation: each conv
//! shape of the network timed alone (forward, input gradient, weight gradient), batch norm in
//! training mode (forward, backward) and ReLU (forward, backward) at each stage's size, each
//! multiplied by how often one step does it, at a given thread count. What this does not
//! cover of a whole step (measured the same way) is "the rest": the optimiser, the loss,
//! additions, reshapes and autodiff's own bookkeeping.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::{batch_norm_train, conv2d, conv2d_weight_backward};
use burn::tensor::ops::ConvOptions;

/// One convolution of the network: channels in and out, input side, stride, kernel, and how
/// many times a forward pass does it.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub c_in: usize,
    pub c_out: usize,
    pub side: usize,
    pub stride: usize,
    pub kernel: usize,
    pub count: usize,
}

/// The distinct convolutions of PreActResNet18 at `width` on 32×32 inputs with 3 channels
/// (official `preresnet.py`: a 3×3 stem, four stages of two basic blocks, 1×1 stride-2
/// shortcuts where the stage changes).
pub fn preact18_convs(width: usize) -> Vec<ConvShape> {
    let w = width;
    let c = |c_in, c_out, side, stride, kernel, count| ConvShape {
        c_in,
        c_out,
        side,
        stride,
        kernel,
        count,
    };
    vec![
        c(3, w, 32, 1, 3, 1),
        c(w, w, 32, 1, 3, 4),
        c(w, 2 * w, 32, 2, 3, 1),
        c(w, 2 * w, 32, 2, 1, 1),
        c(2 * w, 2 * w, 16, 1, 3, 3),
        c(2 * w, 4 * w, 16, 2, 3, 1),
        c(2 * w, 4 * w, 16, 2, 1, 1),
        c(4 * w, 4 * w, 8, 1, 3, 3),
        c(4 * w, 8 * w, 8, 2, 3, 1),
        c(4 * w, 8 * w, 8, 2, 1, 1),
        c(8 * w, 8 * w, 4, 1, 3, 3),
    ]
}

/// The batch norms (and the ReLUs after them) of PreActResNet18: (channels, side, count). Each
/// block normalises its input and its middle (the first block of a stage its input at the
/// previous stage's size); as in the official code, none precedes the head: 5 + 4 + 4 + 3.
pub fn preact18_norms(width: usize) -> Vec<(usize, usize, usize)> {
    let w = width;
    vec![(w, 32, 5), (2 * w, 16, 4), (4 * w, 8, 4), (8 * w, 4, 3)]
}

/// Seconds per step spent in each kind of operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Breakdown {
    pub conv_forward: f64,
    pub conv_input_grad: f64,
    pub conv_weight_grad: f64,
    pub norm_forward: f64,
    pub norm_backward: f64,
    pub relu_forward: f64,
    pub relu_backward: f64,
}

impl Breakdown {
    pub fn total(&self) -> f64 {
        self.conv_forward
            + self.conv_input_grad
            + self.conv_weight_grad
            + self.norm_forward
            + self.norm_backward
            + self.relu_forward
            + self.relu_backward
    }
}

fn random(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + salt) * 2_654_435_761) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn tensor<const D: usize>(dims: [usize; D], salt: usize, device: &Device) -> Tensor<D> {
    let n = dims.iter().product();
    Tensor::<D>::from_data(TensorData::new(random(n, salt), dims), device)
}

/// The median of `reps` timings of `f` (after one warm-up), in seconds.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Times one conv shape: forward, the input gradient (autodiff with only the input tracked,
/// less the forward), and the weight gradient (`conv2d_weight_backward` alone).
pub fn conv(s: &ConvShape, batch: usize, reps: usize, device: &Device) -> [f64; 3] {
    let ad = device.clone().autodiff();
    let pad = s.kernel / 2;
    let options = ConvOptions::new([s.stride; 2], [pad; 2], [1, 1], 1);
    let x = tensor([batch, s.c_in, s.side, s.side], 1, device);
    let w = tensor([s.c_out, s.c_in, s.kernel, s.kernel], 2, device);
    let forward = time(reps, || {
        let _ = conv2d(x.clone(), w.clone(), None, options.clone()).into_data();
    });
    let x_ad = tensor([batch, s.c_in, s.side, s.side], 1, &ad).require_grad();
    let w_ad = tensor([s.c_out, s.c_in, s.kernel, s.kernel], 2, &ad);
    let with_input_grad = time(reps, || {
        let y = conv2d(x_ad.clone(), w_ad.clone(), None, options.clone());
        let grads = y.sum().backward();
        let _ = x_ad.grad(&grads).map(|g| g.into_data());
    });
    let out = s.side.div_ceil(s.stride);
    let dy = tensor([batch, s.c_out, out, out], 3, device);
    let weight_grad = time(reps, || {
        let _ =
            conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), options.clone()).into_data();
    });
    [forward, (with_input_grad - forward).max(0.0), weight_grad]
}

/// Times batch norm in training mode and ReLU at one size: [norm forward, norm backward,
/// relu forward, relu backward].
pub fn norm_relu(
    channels: usize,
    side: usize,
    batch: usize,
    reps: usize,
    device: &Device,
) -> [f64; 4] {
    let ad = device.clone().autodiff();
    let dims = [batch, channels, side, side];
    let x = tensor(dims, 4, device);
    let gamma = Tensor::<1>::ones([channels], device);
    let beta = Tensor::<1>::zeros([channels], device);
    let norm_forward = time(reps, || {
        let _ = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
            .output
            .into_data();
    });
    let x_ad = tensor(dims, 4, &ad).require_grad();
    let (g_ad, b_ad) = (
        Tensor::<1>::ones([channels], &ad).require_grad(),
        Tensor::<1>::zeros([channels], &ad).require_grad(),
    );
    let norm_both = time(reps, || {
        let y = batch_norm_train(x_ad.clone(), g_ad.clone(), b_ad.clone(), 1e-5).output;
        let grads = y.sum().backward();
        let _ = x_ad.grad(&grads).map(|g| g.into_data());
    });
    let relu_forward = time(reps, || {
        let _ = relu(x.clone()).into_data();
    });
    let relu_both = time(reps, || {
        let grads = relu(x_ad.clone()).sum().backward();
        let _ = x_ad.grad(&grads).map(|g| g.into_data());
    });
    [
        norm_forward,
        (norm_both - norm_forward).max(0.0),
        relu_forward,
        (relu_both - relu_forward).max(0.0),
    ]
}

/// The whole step's operations for PreActResNet18 at `width`, batch `batch`.
pub fn preact18(
    width: usize,
    batch: usize,
    reps: usize,
    device: &Device,
) -> (Breakdown, Vec<(ConvShape, [f64; 3])>) {
    let mut b = Breakdown::default();
    let mut per_shape = Vec::new();
    for s in preact18_convs(width) {
        let t = conv(&s, batch, reps, device);
        let n = s.count as f64;
        b.conv_forward += n * t[0];
        b.conv_input_grad += n * t[1];
        b.conv_weight_grad += n * t[2];
        per_shape.push((s, t));
    }
    for (channels, side, count) in preact18_norms(width) {
        let t = norm_relu(channels, side, batch, reps, device);
        let n = count as f64;
        b.norm_forward += n * t[0];
        b.norm_backward += n * t[1];
        b.relu_forward += n * t[2];
        b.relu_backward += n * t[3];
    }
    (b, per_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_add_up_to_preact18() {
        // 17 convolutions on the main path (stem + 16 in blocks) and 3 shortcuts; 16 batch
        // norms (two per block; src/models/preact_resnet.rs has none before the head).
        let convs = preact18_convs(16);
        assert_eq!(convs.iter().map(|c| c.count).sum::<usize>(), 20);
        assert_eq!(convs.iter().filter(|c| c.kernel == 1).count(), 3);
        assert_eq!(preact18_norms(16).iter().map(|n| n.2).sum::<usize>(), 16);
    }

    #[test]
    fn every_operation_is_timed() {
        let device = Device::flex();
        let s = ConvShape {
            c_in: 2,
            c_out: 3,
            side: 6,
            stride: 2,
            kernel: 3,
            count: 1,
        };
        let t = conv(&s, 2, 3, &device);
        assert!(t[0] > 0.0 && t[2] > 0.0, "{t:?}");
        let n = norm_relu(3, 4, 2, 3, &device);
        assert!(n[0] > 0.0 && n[2] > 0.0, "{n:?}");
    }
}
