//! The CPU training kernels of our patched burn-flex (vendor/burn-flex, PATCH.md): conv2d
//! forward, its input and weight gradients, and batch norm in training mode, checked against
//! computations that do not go through them.
//!
//! - Conv forward against Flex's own, unpatched conv3d with a depth of 1.
//! - Input gradient against burn-backend's generic formula (a transposed convolution of the
//!   output gradient, which Flex's unpatched conv_transpose2d computes).
//! - Weight gradient against burn-backend's generic formula (a convolution of the input by the
//!   output gradient with batch and channels swapped and stride and dilation exchanged), run
//!   through the unpatched conv3d.
//! - Batch norm against its textbook formula written with tensor ops, differentiated by
//!   autodiff op by op (what burn-backend's defaults do).
//! - Finite differences in f64 on small shapes, for both.
//! - The same bits whatever the number of threads.
//! - mask_where and mask_fill (blends instead of branches) against their definition, to the bit.
//!
//! Tolerance: f32 results must agree to 2e-5 of the largest magnitude of the reference. Both
//! sides sum the same products (at most a few hundred here) in different orders; the
//! difference is a few ulps of the partial sums, about 1e-6 relative, so 2e-5 has margin
//! while any wrong index (a missed or doubled term) shows up as an error of order 1e-2 or more.

use burn::prelude::*;
use burn::tensor::module::{batch_norm_train, conv_transpose2d, conv2d, conv3d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

/// One convolution to check.
#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

const fn case(
    batch: usize,
    c_in: usize,
    c_out: usize,
    hw: [usize; 2],
    k: usize,
    stride: usize,
    pad: usize,
) -> Case {
    Case {
        batch,
        c_in,
        c_out,
        h: hw[0],
        w: hw[1],
        k,
        stride,
        pad,
    }
}

/// Stride 1 and 2, 1×1 shortcuts, with and without padding, odd and non-square sizes, batch
/// 1, 1 and 3 input channels, and batches large enough that several images share one GEMM
/// (4×4 outputs: 16 images per chunk). The stride-1 cases with a kernel larger than 1×1 and
/// output rows of 16 pixels or more go through the direct kernel (conv2d_direct.rs) in all
/// three passes on a CPU with AVX2 or AVX-512 (rows of 8 in the forward pass only); the last
/// six are there for it: 5×5 and 2×2 kernels, no padding, output channels that fill no whole
/// register block (20 = 2·8 + 4), rows whose padded grid ends mid-block (33 px), and padding
/// larger than the kernel less one, where the input gradient falls back to GEMM + col2im.
/// The last two have many channels (weight gradients of 266 Ki floats, in few partial sums):
/// several images per GEMM, and one image in row tiles.
const CASES: [Case; 23] = [
    case(2, 3, 4, [7, 5], 3, 1, 1),
    case(1, 1, 2, [6, 6], 3, 2, 1),
    case(3, 4, 3, [5, 5], 1, 1, 0),
    case(5, 4, 6, [8, 8], 1, 2, 0),
    case(2, 3, 2, [9, 8], 3, 2, 0),
    case(1, 3, 5, [11, 9], 3, 2, 1),
    case(40, 2, 3, [4, 4], 3, 1, 1),
    case(37, 8, 16, [8, 8], 3, 2, 1),
    case(3, 16, 8, [32, 32], 3, 1, 1),
    case(2, 3, 5, [9, 17], 5, 1, 2),
    case(2, 2, 3, [5, 17], 2, 1, 0),
    case(1, 1, 3, [6, 18], 3, 1, 0),
    case(4, 17, 20, [16, 16], 3, 1, 1),
    case(1, 8, 9, [33, 33], 3, 1, 1),
    case(2, 2, 2, [5, 14], 3, 1, 3),
    case(18, 176, 168, [4, 4], 3, 1, 1),
    case(1, 176, 168, [16, 16], 3, 2, 1),
    // Stride 2 through the direct kernels' phases (outputs 16 or more wide):
    // odd sizes, no padding, a 5×5 kernel.
    case(3, 5, 7, [33, 32], 3, 2, 1),
    case(2, 6, 9, [32, 34], 3, 2, 0),
    case(2, 3, 4, [35, 36], 5, 2, 2),
    // Stride 2 on a 16×16 output with 64·80 channels: the channels-in-lanes weight gradient
    // cut by images.
    case(2, 64, 80, [32, 32], 3, 2, 1),
    // A 16×16 output with 128·128 channels: the channels-in-lanes weight gradient cut by
    // images.
    case(2, 128, 128, [16, 16], 3, 1, 1),
    // Padding wider than the kernel on a map 8 wide or less: the channels-in-lanes input
    // gradient's layout pads nothing before, and every output's first row reads only padding.
    case(3, 5, 6, [3, 4], 3, 1, 3),
];

impl Case {
    fn out(&self) -> [usize; 2] {
        [self.h, self.w].map(|i| (i + 2 * self.pad - self.k) / self.stride + 1)
    }
    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.pad; 2], [1, 1], 1)
    }
    fn x_dims(&self) -> [usize; 4] {
        [self.batch, self.c_in, self.h, self.w]
    }
    fn w_dims(&self) -> [usize; 4] {
        [self.c_out, self.c_in, self.k, self.k]
    }
    fn y_dims(&self) -> [usize; 4] {
        let [oh, ow] = self.out();
        [self.batch, self.c_out, oh, ow]
    }
}

/// Values in [-1, 1) from a seeded generator (splitmix64).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(dims: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    Tensor::from_data(
        TensorData::new(values(dims.iter().product(), seed), dims),
        device,
    )
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 data")
}

/// Fails unless `got` is within `tolerance` × (largest |want|) of `want`, element by element.
fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: sizes differ");
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tolerance * scale,
        "{what}: largest difference {worst:e} against a scale of {scale:e}"
    );
}

/// Flex's own conv3d on a depth-1 volume: the convolution computed by code we did not touch.
fn reference_conv(
    x: Tensor<4>,
    w: Tensor<4>,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Tensor<4> {
    let options = ConvOptions::new(
        [1, stride, stride],
        [0, pad, pad],
        [1, dilation, dilation],
        1,
    );
    conv3d(x.unsqueeze_dim(2), w.unsqueeze_dim(2), None, options).squeeze_dim(2)
}

/// The forward pass and both gradients (autodiff of Σ conv(x, w) ⊙ dy) for one case.
fn ours(c: &Case, device: &Device) -> [Vec<f32>; 3] {
    let ad = device.clone().autodiff();
    let x = tensor(c.x_dims(), 1, &ad).require_grad();
    let w = tensor(c.w_dims(), 2, &ad).require_grad();
    let dy = tensor(c.y_dims(), 3, &ad);
    let y = conv2d(x.clone(), w.clone(), None, c.options());
    let grads = (y.clone() * dy).sum().backward();
    [
        floats(y),
        floats(x.grad(&grads).expect("input gradient")),
        floats(w.grad(&grads).expect("weight gradient")),
    ]
}

#[test]
fn conv2d_and_its_gradients_match_the_unpatched_ops() {
    let device = Device::flex();
    for c in &CASES {
        let [y, dx, dw] = ours(c, &device);
        let (x, w, dy) = (
            tensor(c.x_dims(), 1, &device),
            tensor(c.w_dims(), 2, &device),
            tensor(c.y_dims(), 3, &device),
        );
        let want_y = reference_conv(x.clone(), w.clone(), c.stride, c.pad, 1);
        assert_close(&y, &floats(want_y), 2e-5, &format!("{c:?} forward"));

        // burn-backend's conv2d_x_backward: a transposed convolution whose output padding
        // restores the input size.
        let [oh, ow] = c.out();
        let padding_out =
            [(c.h, oh), (c.w, ow)].map(|(i, o)| i + 2 * c.pad - ((o - 1) * c.stride + c.k));
        let options = ConvTransposeOptions::new([c.stride; 2], [c.pad; 2], padding_out, [1, 1], 1);
        let want_dx = conv_transpose2d(dy.clone(), w.clone(), None, options);
        assert_close(
            &dx,
            &floats(want_dx),
            2e-5,
            &format!("{c:?} input gradient"),
        );

        // burn-backend's conv2d_weight_backward: x with batch and channels swapped,
        // convolved by the swapped output gradient, stride and dilation exchanged.
        let swapped = reference_conv(x.swap_dims(0, 1), dy.swap_dims(0, 1), 1, c.pad, c.stride);
        let want_dw = swapped
            .swap_dims(0, 1)
            .slice([0..c.c_out, 0..c.c_in, 0..c.k, 0..c.k]);
        assert_close(
            &dw,
            &floats(want_dw),
            2e-5,
            &format!("{c:?} weight gradient"),
        );
    }
}

/// On a CPU with AVX-512 the tests above run the AVX-512 kernels only; this runs the
/// comparison with the unpatched ops again in a child process with `BURN_FLEX_DIRECT_CONV=avx2`,
/// so the AVX2 + FMA kernels (other register blocks, other tails) are checked here too. Where
/// the CPU lacks AVX-512 the tests above ran them already; where it lacks AVX2 + FMA too there
/// is nothing more to run.
#[test]
fn the_avx2_kernels_match_the_unpatched_ops_too() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::env::var("BURN_FLEX_DIRECT_CONV").is_err()
    {
        let me = std::env::current_exe().expect("the test binary's path");
        let out = std::process::Command::new(me)
            .args([
                "--exact",
                "conv2d_and_its_gradients_match_the_unpatched_ops",
            ])
            .env("BURN_FLEX_DIRECT_CONV", "avx2")
            .output()
            .expect("the test binary runs again");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "with AVX2:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
    }
}

/// f64 tensors of `values`.
fn tensor64<const D: usize>(dims: [usize; D], values: &[f64], device: &Device) -> Tensor<D> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), dims),
        (device, burn::tensor::DType::F64),
    )
}

fn values64(n: usize, seed: u64) -> Vec<f64> {
    values(n, seed).into_iter().map(f64::from).collect()
}

fn to_f64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    let data = t.into_data();
    assert_eq!(
        data.dtype(),
        burn::tensor::DType::F64,
        "the kernels must run in f64 here"
    );
    data.try_to_vec().expect("f64 data")
}

/// Central differences of a scalar function of one input, at a few coordinates.
fn finite_differences(
    base: &[f64],
    probes: &[usize],
    step: f64,
    loss: impl Fn(&[f64]) -> f64,
) -> Vec<f64> {
    probes
        .iter()
        .map(|&i| {
            let (mut up, mut down) = (base.to_vec(), base.to_vec());
            up[i] += step;
            down[i] -= step;
            (loss(&up) - loss(&down)) / (2.0 * step)
        })
        .collect()
}

#[test]
fn conv2d_gradients_match_finite_differences_in_f64() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    for c in &[
        case(2, 3, 4, [5, 6], 3, 2, 1),
        case(3, 2, 3, [4, 4], 1, 1, 0),
    ] {
        let n = |d: [usize; 4]| d.iter().product::<usize>();
        let (x0, w0, r) = (
            values64(n(c.x_dims()), 11),
            values64(n(c.w_dims()), 12),
            values64(n(c.y_dims()), 13),
        );
        // L(x, w) = Σ conv(x, w) ⊙ r
        let loss = |x: &[f64], w: &[f64]| -> f64 {
            let y = conv2d(
                tensor64(c.x_dims(), x, &device),
                tensor64(c.w_dims(), w, &device),
                None,
                c.options(),
            );
            to_f64(y).iter().zip(&r).map(|(a, b)| a * b).sum()
        };
        let x = tensor64(c.x_dims(), &x0, &ad).require_grad();
        let w = tensor64(c.w_dims(), &w0, &ad).require_grad();
        let y = conv2d(x.clone(), w.clone(), None, c.options());
        let grads = (y * tensor64(c.y_dims(), &r, &ad)).sum().backward();
        let dx = to_f64(x.grad(&grads).expect("dx"));
        let dw = to_f64(w.grad(&grads).expect("dw"));
        let probes: Vec<usize> = (0..8).map(|i| i * 37 % x0.len()).collect();
        let fd = finite_differences(&x0, &probes, 1e-3, |x| loss(x, &w0));
        for (&i, want) in probes.iter().zip(fd) {
            assert!(
                (dx[i] - want).abs() < 1e-8,
                "{c:?} dx[{i}]: {} vs {want}",
                dx[i]
            );
        }
        let probes: Vec<usize> = (0..8).map(|i| i * 13 % w0.len()).collect();
        let fd = finite_differences(&w0, &probes, 1e-3, |w| loss(&x0, w));
        for (&i, want) in probes.iter().zip(fd) {
            assert!(
                (dw[i] - want).abs() < 1e-8,
                "{c:?} dw[{i}]: {} vs {want}",
                dw[i]
            );
        }
    }
}

/// Batch norm (training mode) written with tensor ops: batch mean, biased variance,
/// normalise, scale and shift.
fn textbook_norm(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, eps: f64) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let per_channel = |t: Tensor<4>| t.swap_dims(0, 1).reshape([c, n * h * w]).mean_dim(1);
    let mean = per_channel(x.clone()).reshape([1, c, 1, 1]);
    let centred = x - mean;
    let var = per_channel(centred.clone().powi_scalar(2)).reshape([1, c, 1, 1]);
    centred / (var + eps).sqrt() * gamma.reshape([1, c, 1, 1]) + beta.reshape([1, c, 1, 1])
}

#[test]
fn batch_norm_matches_the_textbook_formula_and_its_autodiff() {
    let device = Device::flex().autodiff();
    for dims in [[4, 3, 5, 5], [1, 2, 3, 1], [100, 16, 8, 8]] {
        let c = dims[1];
        let x = tensor(dims, 21, &device).require_grad();
        let gamma = tensor([c], 22, &device).require_grad();
        let beta = tensor([c], 23, &device).require_grad();
        let r = tensor(dims, 24, &device);
        let ours = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        let grads = (ours.output.clone() * r.clone()).sum().backward();
        let got = [
            floats(ours.output),
            floats(x.grad(&grads).expect("dx")),
            floats(gamma.grad(&grads).expect("dgamma")),
            floats(beta.grad(&grads).expect("dbeta")),
        ];
        let want_y = textbook_norm(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        let grads = (want_y.clone() * r).sum().backward();
        let want = [
            floats(want_y),
            floats(x.grad(&grads).expect("dx")),
            floats(gamma.grad(&grads).expect("dgamma")),
            floats(beta.grad(&grads).expect("dbeta")),
        ];
        // The normalised values go through 1/σ, and the gradients through sums over the
        // batch of up to 6,400 terms: 1e-4 of the largest magnitude.
        for (i, what) in ["output", "dx", "dgamma", "dbeta"].iter().enumerate() {
            assert_close(&got[i], &want[i], 1e-4, &format!("{dims:?} {what}"));
        }
    }
}

#[test]
fn batch_norm_gradients_match_finite_differences_in_f64() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let dims = [3, 2, 2, 3];
    let (x0, g0, b0, r) = (
        values64(36, 31),
        values64(2, 32),
        values64(2, 33),
        values64(36, 34),
    );
    let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
        let y = batch_norm_train(
            tensor64(dims, x, &device),
            tensor64([2], g, &device),
            tensor64([2], b, &device),
            1e-5,
        )
        .output;
        to_f64(y).iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let x = tensor64(dims, &x0, &ad).require_grad();
    let g = tensor64([2], &g0, &ad).require_grad();
    let b = tensor64([2], &b0, &ad).require_grad();
    let y = batch_norm_train(x.clone(), g.clone(), b.clone(), 1e-5).output;
    let grads = (y * tensor64(dims, &r, &ad)).sum().backward();
    let dx = to_f64(x.grad(&grads).expect("dx"));
    let dg = to_f64(g.grad(&grads).expect("dgamma"));
    let db = to_f64(b.grad(&grads).expect("dbeta"));
    let all: Vec<usize> = (0..36).collect();
    let checks: [(&str, &[f64], Vec<f64>); 3] = [
        (
            "dx",
            &dx,
            finite_differences(&x0, &all, 1e-6, |x| loss(x, &g0, &b0)),
        ),
        (
            "dgamma",
            &dg,
            finite_differences(&g0, &[0, 1], 1e-6, |g| loss(&x0, g, &b0)),
        ),
        (
            "dbeta",
            &db,
            finite_differences(&b0, &[0, 1], 1e-6, |b| loss(&x0, &g0, b)),
        ),
    ];
    for (name, got, want) in checks {
        for (i, want) in want.into_iter().enumerate() {
            assert!(
                (got[i] - want).abs() < 1e-6,
                "{name}[{i}]: {} vs {want}",
                got[i]
            );
        }
    }
}

/// The batch-norm forward pass gives exactly the bits of the order its source documents
/// (vendor/burn-flex/src/ops/batch_norm_train.rs): per channel, f64 sums over eight lanes
/// (lane = position in the plane mod 8, planes in batch order), the lanes added in order, then
/// `y = x·scale + shift` in f64 with scale and shift rounded to f32 first. The kernel's loops
/// are compiled for AVX-512 or AVX2 where the CPU has them; this shows that vectorising them
/// reordered nothing.
#[test]
fn batch_norm_forward_keeps_its_documented_order_to_the_bit() {
    let device = Device::flex();
    for dims in [[3, 2, 5, 7], [100, 16, 8, 8]] {
        let [batch, channels, h, w] = dims;
        let plane = h * w;
        let (x, gamma, beta) = (
            values(dims.iter().product(), 31),
            values(channels, 32),
            values(channels, 33),
        );
        // `tensor` holds the same `values` for the same seed.
        let got = floats(
            batch_norm_train(
                tensor(dims, 31, &device),
                tensor([channels], 32, &device),
                tensor([channels], 33, &device),
                1e-5,
            )
            .output,
        );
        let lane_sum = |c: usize, f: &dyn Fn(f32) -> f64| {
            let mut lanes = [0.0f64; 8];
            for b in 0..batch {
                for (i, v) in x[(b * channels + c) * plane..][..plane].iter().enumerate() {
                    lanes[i % 8] += f(*v);
                }
            }
            lanes.iter().sum::<f64>()
        };
        let count = (batch * plane) as f64;
        for c in 0..channels {
            let mean = lane_sum(c, &|v| v as f64) / count;
            let variance = lane_sum(c, &|v| (v as f64 - mean).powi(2)) / count;
            let scale = gamma[c] as f64 / (variance + 1e-5).sqrt();
            let shift = beta[c] as f64 - mean * scale;
            let (scale, shift) = (scale as f32 as f64, shift as f32 as f64);
            for b in 0..batch {
                let at = (b * channels + c) * plane;
                for i in at..at + plane {
                    let want = (x[i] as f64 * scale + shift) as f32;
                    assert_eq!(got[i].to_bits(), want.to_bits(), "{dims:?} element {i}");
                }
            }
        }
    }
}

/// ReLU and its backward on tensors large enough for the parallel path (256 Ki elements or
/// more), against their definitions: written over the input's buffer when nothing else holds
/// it, into a new one when something does, and then the input must be unchanged.
#[test]
fn relu_and_its_backward_write_in_place_only_what_no_one_else_holds() {
    use burn::tensor::activation::relu;
    let dims = [4, 16, 64, 80];
    let device = Device::flex();
    let x = tensor(dims, 51, &device);
    let before = floats(x.clone());
    let want: Vec<f32> = before.iter().map(|v| v.max(0.0)).collect();
    assert_eq!(floats(relu(x.clone())), want, "x held elsewhere");
    assert_eq!(floats(x.clone()), before, "the input was written over");
    assert_eq!(floats(relu(x)), want, "x held by relu alone");

    let ad = device.autodiff();
    let x = tensor(dims, 51, &ad).require_grad();
    let r = tensor(dims, 52, &ad);
    let grads = (relu(x.clone()) * r.clone()).sum().backward();
    let want: Vec<f32> = before
        .iter()
        .zip(floats(r))
        .map(|(x, r)| if *x > 0.0 { r } else { 0.0 })
        .collect();
    assert_eq!(floats(x.grad(&grads).expect("dx")), want);
}

#[test]
fn mask_where_and_mask_fill_blend_the_same_bits_as_the_definition() {
    // The patched in-place paths (PATCH.md, `mask.rs`) blend bits instead of branching. The
    // definition, element by element: mask ? value : tensor. Signed zeros and NaNs among the
    // values check that bits, not float comparisons, are moved.
    let dims = [3, 5, 7];
    let n: usize = dims.iter().product();
    let device = Device::flex();
    let special = |mut v: Vec<f32>| {
        v[0] = -0.0;
        v[1] = f32::NAN;
        v[2] = f32::NEG_INFINITY;
        v
    };
    let (a, b) = (
        special(values(n, 61)),
        special(values(n, 62)).into_iter().rev().collect(),
    );
    let make = |v: &Vec<f32>| Tensor::<3>::from_data(TensorData::new(v.clone(), dims), &device);
    let mask = make(&values(n, 63)).lower_elem(0.0);
    let m: Vec<bool> = mask.clone().into_data().try_to_vec().expect("bool data");
    let bits = |t: Tensor<3>| -> Vec<u32> { floats(t).iter().map(|v| v.to_bits()).collect() };
    let pick = |x: &Vec<f32>, y: &Vec<f32>| -> Vec<u32> {
        (0..n)
            .map(|i| if m[i] { y[i] } else { x[i] }.to_bits())
            .collect()
    };
    // The tensor alone holds its buffer: written in place.
    assert_eq!(
        bits(make(&a).mask_where(mask.clone(), make(&b))),
        pick(&a, &b)
    );
    // The tensor is held elsewhere, the value is not: the value's buffer is written.
    let held = make(&a);
    assert_eq!(
        bits(held.clone().mask_where(mask.clone(), make(&b))),
        pick(&a, &b)
    );
    assert_eq!(
        bits(held),
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // mask_fill, in place.
    let fill = vec![-0.0f32; n];
    assert_eq!(bits(make(&a).mask_fill(mask, -0.0)), pick(&a, &fill));
}

/// Conv and batch norm, forward and backward, on `threads` threads.
fn all_kernels_on(threads: usize) -> Vec<Vec<f32>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    pool.install(|| {
        let device = Device::flex();
        let mut out = Vec::new();
        for c in [
            case(100, 16, 32, [16, 16], 3, 2, 1),
            case(100, 64, 64, [4, 4], 3, 1, 1),
            // The direct kernels (stride 1, rows of 16 pixels).
            case(100, 16, 24, [16, 16], 3, 1, 1),
        ] {
            out.extend(ours(&c, &device));
        }
        let ad = device.autodiff();
        let x = tensor([100, 16, 8, 8], 41, &ad).require_grad();
        let g = tensor([16], 42, &ad).require_grad();
        let b = tensor([16], 43, &ad).require_grad();
        let y = batch_norm_train(x.clone(), g.clone(), b.clone(), 1e-5).output;
        let grads = (y.clone() * tensor([100, 16, 8, 8], 44, &ad))
            .sum()
            .backward();
        out.push(floats(y));
        out.push(floats(x.grad(&grads).expect("dx")));
        out.push(floats(g.grad(&grads).expect("dgamma")));
        out
    })
}

#[test]
fn the_kernels_give_the_same_bits_on_any_number_of_threads() {
    let one = all_kernels_on(1);
    for threads in [2, 3] {
        let many = all_kernels_on(threads);
        for (i, (a, b)) in one.iter().zip(&many).enumerate() {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "result {i} differs between 1 and {threads} threads");
        }
    }
}

/// The cases above go through the vector kernels, not a silent fallback to im2col + GEMM,
/// wherever the CPU has AVX2 and FMA (or AVX-512) and `BURN_FLEX_DIRECT_CONV=0` does not turn
/// them off; elsewhere they must decline.
/// - The direct kernels (conv2d_direct.rs) take the forward pass and the input gradient at
///   stride 1 on output rows of 16 pixels or more (CASES[8] to [14] and [21]), the weight
///   gradient where those rows are wider than 16 (CASES[8], [9], [13], [14]: the 5×5 kernel
///   leaves its last group of three taps part empty), and at stride 2 there the weight
///   gradient (CASES[17] to [19]) and the forward pass on rows wider than 16 (CASES[19]).
/// - The channels-in-lanes weight gradient (conv2d_wgrad.rs) takes outputs of 16 pixels or
///   less at stride 1 (wider with 64·64 channels or more), 8 or less at stride 2 with few
///   channels (16 with 64·64 to 64·128): CASES[0], [1], [4] to [7], [10] to [12] (the 2×2
///   kernel of [10] leaves a group of three taps part empty), [15], [20] and [21] ([12], [20]
///   and [21] cut by images, the rest by output channels).
/// - The channels-in-lanes forward pass (conv2d_lanes.rs) takes outputs of 8 pixels or less
///   at stride 1 and of 16 or less at stride 2 (CASES[0], [1], [4] to [7], [15] to [18],
///   [20] and [22]); its input gradient those at stride 1, and at stride 2 outputs of 8 pixels
///   or less with at most 64·128 channels (CASES[0], [1], [4] to [7], [15] and [22]).
#[test]
fn the_vector_kernels_serve_the_shapes_they_win_on() {
    use burn_flex::ops::conv2d_train::Conv2dShape;
    use burn_flex::ops::{conv2d_direct, conv2d_lanes, conv2d_wgrad};
    let c = CASES[8];
    let [out_h, out_w] = c.out();
    let shape = Conv2dShape {
        batch: c.batch,
        c_in: c.c_in,
        c_out: c.c_out,
        in_h: c.h,
        in_w: c.w,
        k_h: c.k,
        k_w: c.k,
        stride: [1, 1],
        padding: [c.pad; 2],
        dilation: [1, 1],
        groups: 1,
        out_h,
        out_w,
    };
    #[cfg(target_arch = "x86_64")]
    let vector_cpu = std::arch::is_x86_feature_detected!("avx512f")
        || (std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"));
    #[cfg(not(target_arch = "x86_64"))]
    let vector_cpu = false;
    let turned_off = std::env::var("BURN_FLEX_DIRECT_CONV").is_ok_and(|v| v == "0");
    let served = |s: &Conv2dShape| {
        let (x, w, dy) = (
            values(s.x_len(), 1),
            values(s.w_len(), 2),
            values(s.y_len(), 3),
        );
        [
            conv2d_direct::forward(s, &x, &w).is_some(),
            conv2d_direct::x_grad(s, &w, &dy).is_some(),
            conv2d_direct::weight_grad(s, &x, &dy).is_some(),
            conv2d_lanes::forward(s, &x, &w).is_some(),
            conv2d_lanes::x_grad(s, &w, &dy).is_some(),
            conv2d_wgrad::weight_grad(s, &x, &dy).is_some(),
        ]
    };
    let e = vector_cpu && !turned_off;
    assert_eq!(served(&shape), [e, e, e, false, false, false]);
    // Where im2col + GEMM measured faster, it keeps the shape (conv2d_direct.rs,
    // prefers_direct): rows of 8 pixels only in the forward pass and with at most 64·64
    // channels, rows under 8 never, and the weight gradient at 16 pixels with 128·128 or more;
    // the weight gradient at 16 pixels or less, or wider with 64·64 channels or more, goes to
    // conv2d_wgrad.rs (prefers_lanes).
    let with = |out_w: usize, c_in: usize, c_out: usize| Conv2dShape {
        batch: 2,
        c_in,
        c_out,
        in_w: out_w,
        out_w,
        ..shape
    };
    // The channels-in-lanes forward pass and input gradient (conv2d_lanes.rs) take rows of 8
    // pixels or less.
    assert_eq!(served(&with(8, 64, 64)), [e, false, false, e, e, e]);
    assert_eq!(served(&with(8, 64, 65)), [false, false, false, e, e, e]);
    assert_eq!(served(&with(5, 16, 8)), [false, false, false, e, e, e]);
    assert_eq!(served(&with(4, 512, 512)), [false, false, false, e, e, e]);
    assert_eq!(served(&with(16, 128, 128)), [e, e, false, false, false, e]);
    assert_eq!(served(&with(16, 127, 128)), [e, e, e, false, false, e]);
    assert_eq!(served(&with(32, 128, 128)), [e, e, e, false, false, e]);
    assert_eq!(served(&with(32, 64, 63)), [e, e, e, false, false, false]);
    // Stride 2: the direct forward pass and weight gradient on rows of 16 pixels or more
    // with at most 64·64 channels (never the input gradient), the channels-in-lanes forward
    // pass on rows of 16 or less, its input gradient on rows of 8 or less with at most 64·128
    // channels, its weight gradient there and on rows of 16 with 64·64 to 64·128.
    let strided = |out_w: usize, c_in: usize, c_out: usize| Conv2dShape {
        batch: 2,
        c_in,
        c_out,
        stride: [2, 2],
        in_h: 2 * out_w,
        in_w: 2 * out_w,
        out_h: out_w,
        out_w,
        ..shape
    };
    assert_eq!(
        served(&strided(16, c.c_in, c.c_out)),
        [e, false, e, e, false, false]
    );
    assert_eq!(
        served(&strided(32, c.c_in, c.c_out)),
        [e, false, e, false, false, false]
    );
    assert_eq!(
        served(&strided(16, 64, 128)),
        [false, false, false, e, false, e]
    );
    assert_eq!(
        served(&strided(16, 64, 129)),
        [false, false, false, e, false, false]
    );
    assert_eq!(served(&strided(8, 64, 128)), [false, false, false, e, e, e]);
    assert_eq!(
        served(&strided(8, 128, 128)),
        [false, false, false, e, false, false]
    );
    // 1×1 convolutions are GEMMs already.
    let pointwise = Conv2dShape {
        k_h: 1,
        k_w: 1,
        padding: [0, 0],
        ..with(8, 64, 64)
    };
    assert_eq!(served(&pointwise), [false; 6]);
}
