//! Batch normalisation over `[batch, channels, ...]` tensors in a few passes:
//! training forward (statistics + output), its backward, and inference with
//! given statistics.
//!
//! Added to burn-flex by mixsweep (see PATCH.md). burn-backend's defaults
//! build these out of about twenty full-tensor element-wise ops and
//! reductions; here the forward reads the input three times (mean, variance,
//! output) and the backward twice (two sums, the input gradient), one
//! channel at a time: a channel's values (a few hundred KiB at batch 100)
//! are read from memory once and re-read from the core's cache, which halved
//! the time of both against whole-tensor passes.
//!
//! Sums are accumulated in f64 over eight fixed lanes, channel by channel,
//! each channel on one thread: the result does not depend on the number of
//! threads. The variance is the biased one, computed from the centred values
//! (two passes), as burn-backend's default does.
//!
//! The loops are plain Rust, compiled a second and third time for AVX-512 and
//! AVX2 and chosen at run time ([vectorised]): built for baseline x86-64, the
//! f64 lanes ran as SSE2 scalars and pairs, and batch norm took a fifth of a
//! PreActResNet18 step. Vectorising does not reorder a single addition (each
//! lane is its own chain, and Rust never fuses a multiply and an add), so the
//! bits are the same on every instruction set.

use alloc::vec::Vec;
use core::mem::MaybeUninit;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

/// The float types the kernels run on.
pub trait NormFloat: Copy + Send + Sync + 'static {
    /// Widens to f64.
    fn to_f64(self) -> f64;
    /// Narrows from f64.
    fn from_f64(value: f64) -> Self;
}

impl NormFloat for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl NormFloat for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
}

/// The layout of a `[batch, channels, plane...]` tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormShape {
    /// Size of dimension 0.
    pub batch: usize,
    /// Size of dimension 1.
    pub channels: usize,
    /// Product of the remaining dimensions.
    pub plane: usize,
}

impl NormShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Values per channel.
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }
}

/// Batch statistics and the normalised output.
pub struct NormForward<T> {
    /// The output, laid out as the input.
    pub output: Vec<T>,
    /// Mean per channel.
    pub mean: Vec<T>,
    /// Biased variance per channel.
    pub variance: Vec<T>,
}

/// Gradients of the training forward pass.
pub struct NormBackward<T> {
    /// Gradient of the input.
    pub x_grad: Vec<T>,
    /// Gradient of the scale γ.
    pub gamma_grad: Vec<T>,
    /// Gradient of the shift β.
    pub beta_grad: Vec<T>,
}

/// A loop that [vectorised] compiles for AVX-512 and AVX2.
trait Kernel {
    type Output;
    /// The loop. Implementations are `#[inline(always)]`, so that they are
    /// compiled inside the `#[target_feature]` functions of [vectorised] (a
    /// closure passed there stayed out of line, compiled for baseline x86-64,
    /// and ran no faster).
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for AVX-512 or AVX2 where the CPU has it (for
/// baseline x86-64 otherwise), so that its loops vectorise.
#[inline(always)]
fn vectorised<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { x86::avx512(kernel) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { x86::avx2(kernel) };
        }
    }
    kernel.run()
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
mod x86 {
    use super::Kernel;

    /// `kernel.run()`, compiled with AVX-512F. Safety: the CPU must have it.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512<K: Kernel>(kernel: K) -> K::Output {
        kernel.run()
    }

    /// `kernel.run()`, compiled with AVX2. Safety: the CPU must have it.
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2<K: Kernel>(kernel: K) -> K::Output {
        kernel.run()
    }
}

/// The training forward pass of channel `c`: its mean and biased variance,
/// then its planes of the output, `x·scale + shift`. The output's planes are
/// written while the channel's input is still in cache from the statistics.
struct ForwardChannel<'a, T> {
    s: &'a NormShape,
    c: usize,
    x: &'a [T],
    gamma: T,
    beta: T,
    epsilon: f64,
    /// The output's planes of channel `c`, image by image.
    out: Vec<&'a mut [MaybeUninit<T>]>,
}

impl<T: NormFloat> Kernel for ForwardChannel<'_, T> {
    /// Mean and biased variance.
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let Self { s, c, x, .. } = self;
        let mean = channel_sum(s, c, x, |v, _| v.to_f64()) / s.count();
        let variance = channel_sum(s, c, x, |v, _| (v.to_f64() - mean).powi(2)) / s.count();
        let (gamma, beta) = (self.gamma.to_f64(), self.beta.to_f64());
        ScaleShift::new(
            s,
            c,
            x,
            [gamma, beta, mean, variance],
            self.epsilon,
            self.out,
        )
        .run();
        (mean, variance)
    }
}

/// The backward pass of channel `c`: [gradient_sums], then its planes of
/// the input gradient, `a·dy + b·x + k` (coefficients from the sums), while
/// the channel's `dy` and `x` are still in cache.
struct BackwardChannel<'a, T> {
    s: &'a NormShape,
    c: usize,
    dy: &'a [T],
    x: &'a [T],
    mean: f64,
    variance: f64,
    gamma: f64,
    epsilon: f64,
    /// The input gradient's planes of channel `c`, image by image.
    out: Vec<&'a mut [MaybeUninit<T>]>,
}

impl<T: NormFloat> Kernel for BackwardChannel<'_, T> {
    /// `(Σ dy, Σ dy·(x − mean))`.
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let Self {
            s, c, dy, x, mean, ..
        } = self;
        let (sum_dy, sum_dy_centred) = gradient_sums(s, c, dy, x, mean);
        let m = s.count();
        let inv_std = 1.0 / (self.variance + self.epsilon).sqrt();
        let a = self.gamma * inv_std;
        let b = -a * inv_std * inv_std * sum_dy_centred / m;
        let k = -a * sum_dy / m - b * mean;
        let [a, b, k] = [a, b, k].map(|v| T::from_f64(v).to_f64());
        write_planes(s, c, self.out, dy, x, |g, v| {
            T::from_f64(a * g.to_f64() + b * v.to_f64() + k)
        });
        (sum_dy, sum_dy_centred)
    }
}

/// `out[i] = f(x[i], y[i])` over channel `c`'s planes (`out` holds them
/// image by image): writes every element of `out`.
#[inline(always)]
fn write_planes<T: NormFloat>(
    s: &NormShape,
    c: usize,
    out: Vec<&mut [MaybeUninit<T>]>,
    x: &[T],
    y: &[T],
    f: impl Fn(T, T) -> T,
) {
    assert_eq!(out.len(), s.batch, "batch norm: planes per channel");
    for (b, plane) in out.into_iter().enumerate() {
        let start = (b * s.channels + c) * s.plane;
        let (x, y) = (&x[start..start + s.plane], &y[start..start + s.plane]);
        assert_eq!(plane.len(), s.plane, "batch norm: plane size");
        for ((o, &a), &b) in plane.iter_mut().zip(x).zip(y) {
            o.write(f(a, b));
        }
    }
}

/// `y = x · scale + shift` over channel `c`'s planes: the output of the
/// training forward pass (with the batch's statistics) and of inference
/// (with the running ones).
struct ScaleShift<'a, T> {
    s: &'a NormShape,
    c: usize,
    x: &'a [T],
    scale: f64,
    shift: f64,
    out: Vec<&'a mut [MaybeUninit<T>]>,
}

impl<'a, T: NormFloat> ScaleShift<'a, T> {
    /// `scale = γ / √(variance + ε)` and `shift = β − mean · scale`, each
    /// rounded to `T` as the output's other values are.
    fn new(
        s: &'a NormShape,
        c: usize,
        x: &'a [T],
        [gamma, beta, mean, variance]: [f64; 4],
        epsilon: f64,
        out: Vec<&'a mut [MaybeUninit<T>]>,
    ) -> Self {
        let scale = gamma / (variance + epsilon).sqrt();
        let shift = beta - mean * scale;
        ScaleShift {
            s,
            c,
            x,
            scale: T::from_f64(scale).to_f64(),
            shift: T::from_f64(shift).to_f64(),
            out,
        }
    }
}

impl<T: NormFloat> Kernel for ScaleShift<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let (scale, shift) = (self.scale, self.shift);
        write_planes(self.s, self.c, self.out, self.x, self.x, |v, _| {
            T::from_f64(v.to_f64() * scale + shift)
        });
    }
}

/// `Σ f(i)` over a channel's values, in f64 over eight lanes in a fixed order.
#[inline(always)]
fn channel_sum<T: NormFloat>(
    s: &NormShape,
    c: usize,
    data: &[T],
    f: impl Fn(T, usize) -> f64,
) -> f64 {
    let mut lanes = [0.0f64; 8];
    for b in 0..s.batch {
        let start = (b * s.channels + c) * s.plane;
        let block = &data[start..start + s.plane];
        let mut chunks = block.chunks_exact(8);
        let mut offset = start;
        for chunk in &mut chunks {
            for (lane, (i, v)) in lanes.iter_mut().zip(chunk.iter().enumerate()) {
                *lane += f(*v, offset + i);
            }
            offset += 8;
        }
        for (lane, (i, v)) in lanes.iter_mut().zip(chunks.remainder().iter().enumerate()) {
            *lane += f(*v, offset + i);
        }
    }
    lanes.iter().sum()
}

/// `(Σ dy, Σ dy·(x − mean))` over channel `c`, in one pass over both: each
/// sum in f64 over eight lanes in the order [channel_sum] uses, so the same
/// bits as two calls of it.
#[inline(always)]
fn gradient_sums<T: NormFloat>(
    s: &NormShape,
    c: usize,
    dy: &[T],
    x: &[T],
    mean: f64,
) -> (f64, f64) {
    let (mut sum_dy, mut sum_centred) = ([0.0f64; 8], [0.0f64; 8]);
    let mut add = |lane: usize, g: T, v: T| {
        let g = g.to_f64();
        sum_dy[lane] += g;
        sum_centred[lane] += g * (v.to_f64() - mean);
    };
    for b in 0..s.batch {
        let start = (b * s.channels + c) * s.plane;
        let (g, v) = (&dy[start..start + s.plane], &x[start..start + s.plane]);
        let (mut g8, mut v8) = (g.chunks_exact(8), v.chunks_exact(8));
        for (gc, vc) in (&mut g8).zip(&mut v8) {
            for lane in 0..8 {
                add(lane, gc[lane], vc[lane]);
            }
        }
        for (lane, (&gv, &vv)) in g8.remainder().iter().zip(v8.remainder()).enumerate() {
            add(lane, gv, vv);
        }
    }
    (sum_dy.iter().sum(), sum_centred.iter().sum())
}

/// A new `[batch, channels, plane]` buffer, filled channel by channel:
/// `fill(c, planes)` must write all of channel `c`'s planes (given image by
/// image) and returns the channel's result. Channels run in parallel when
/// rayon is on; each is one thread's, so the results do not depend on the
/// number of threads.
fn by_channel<T: NormFloat, R: Send>(
    s: &NormShape,
    fill: impl Fn(usize, Vec<&mut [MaybeUninit<T>]>) -> R + Send + Sync,
) -> (Vec<T>, Vec<R>) {
    // Written once, not zeroed first: the output is a full pass over memory.
    let mut out = Vec::with_capacity(s.len());
    let mut planes: Vec<Vec<&mut [MaybeUninit<T>]>> = (0..s.channels)
        .map(|_| Vec::with_capacity(s.batch))
        .collect();
    if s.plane > 0 {
        let slots = &mut out.spare_capacity_mut()[..s.len()];
        for (p, plane) in slots.chunks_mut(s.plane).enumerate() {
            planes[p % s.channels].push(plane);
        }
    }
    #[cfg(feature = "rayon")]
    let results: Vec<R> = planes
        .into_par_iter()
        .enumerate()
        .map(|(c, p)| fill(c, p))
        .collect();
    #[cfg(not(feature = "rayon"))]
    let results: Vec<R> = planes
        .into_iter()
        .enumerate()
        .map(|(c, p)| fill(c, p))
        .collect();
    // SAFETY: the first `s.len()` slots, cut into whole planes (`s.len()` is a
    // multiple of `s.plane`), were handed out channel by channel, and `fill`
    // writes every slot of every plane it is given (`write_planes` asserts
    // their count and sizes and writes each element); with `s.plane == 0`,
    // `s.len()` is 0.
    unsafe { out.set_len(s.len()) };
    (out, results)
}

/// Training forward: normalises each channel with the batch's mean and biased
/// variance, then applies `gamma` and `beta`.
pub fn batch_norm_train<T: NormFloat>(
    s: &NormShape,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    epsilon: f64,
) -> NormForward<T> {
    assert_eq!(x.len(), s.len(), "batch_norm_train: input size");
    assert_eq!(gamma.len(), s.channels, "batch_norm_train: gamma size");
    assert_eq!(beta.len(), s.channels, "batch_norm_train: beta size");
    let (output, stats) = by_channel(s, |c, out| {
        vectorised(ForwardChannel {
            s,
            c,
            x,
            gamma: gamma[c],
            beta: beta[c],
            epsilon,
            out,
        })
    });
    NormForward {
        output,
        mean: stats.iter().map(|(m, _)| T::from_f64(*m)).collect(),
        variance: stats.iter().map(|(_, v)| T::from_f64(*v)).collect(),
    }
}

/// Backward of [batch_norm_train], given the statistics it returned:
/// with `x̂ = (x − mean)·σ⁻¹`, `dβ = Σ dy`, `dγ = Σ dy·x̂` and
/// `dx = γσ⁻¹ (dy − dβ/m − x̂·dγ/m)`, `m` values per channel.
pub fn batch_norm_train_backward<T: NormFloat>(
    s: &NormShape,
    x: &[T],
    gamma: &[T],
    mean: &[T],
    variance: &[T],
    epsilon: f64,
    output_grad: &[T],
) -> NormBackward<T> {
    assert_eq!(x.len(), s.len(), "batch_norm_train_backward: input size");
    assert_eq!(
        output_grad.len(),
        s.len(),
        "batch_norm_train_backward: gradient size"
    );
    let (x_grad, sums) = by_channel(s, |c, out| {
        vectorised(BackwardChannel {
            s,
            c,
            dy: output_grad,
            x,
            mean: mean[c].to_f64(),
            variance: variance[c].to_f64(),
            gamma: gamma[c].to_f64(),
            epsilon,
            out,
        })
    });
    NormBackward {
        x_grad,
        gamma_grad: (0..s.channels)
            .map(|c| T::from_f64(sums[c].1 / (variance[c].to_f64() + epsilon).sqrt()))
            .collect(),
        beta_grad: sums.iter().map(|(d, _)| T::from_f64(*d)).collect(),
    }
}

/// Inference: normalises with the given statistics.
pub fn batch_norm<T: NormFloat>(
    s: &NormShape,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    variance: &[T],
    epsilon: f64,
) -> Vec<T> {
    assert_eq!(x.len(), s.len(), "batch_norm: input size");
    let (out, _) = by_channel(s, |c, out| {
        let statistics = [gamma[c], beta[c], mean[c], variance[c]].map(T::to_f64);
        vectorised(ScaleShift::new(s, c, x, statistics, epsilon, out))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 1.0
            })
            .collect()
    }

    /// The loss `L = Σ output · w` as a function of x, γ, β.
    fn loss(s: &NormShape, x: &[f64], gamma: &[f64], beta: &[f64], w: &[f64]) -> f64 {
        let y = batch_norm_train(s, x, gamma, beta, 1e-5).output;
        y.iter().zip(w).map(|(a, b)| a * b).sum()
    }

    /// The gradients against central finite differences of the forward pass
    /// (f64, step 1e-6), and the forward against the textbook formula.
    #[test]
    fn gradients_match_finite_differences() {
        let s = NormShape {
            batch: 3,
            channels: 2,
            plane: 5,
        };
        let x = values(30, 1);
        let gamma = vec![0.7, -1.3];
        let beta = vec![0.2, 0.5];
        let w = values(30, 2);
        let forward = batch_norm_train(&s, &x, &gamma, &beta, 1e-5);
        // Channel 1 by hand.
        let ch: Vec<f64> = (0..3)
            .flat_map(|b| x[(b * 2 + 1) * 5..(b * 2 + 2) * 5].to_vec())
            .collect();
        let mean = ch.iter().sum::<f64>() / 15.0;
        let var = ch.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 15.0;
        assert!(
            (forward.mean[1] - mean).abs() < 1e-12 && (forward.variance[1] - var).abs() < 1e-12
        );
        let want = (x[5] - mean) / (var + 1e-5).sqrt() * -1.3 + 0.5;
        assert!((forward.output[5] - want).abs() < 1e-12);

        let back =
            batch_norm_train_backward(&s, &x, &gamma, &forward.mean, &forward.variance, 1e-5, &w);
        let h = 1e-6;
        for i in 0..30 {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let fd =
                (loss(&s, &up, &gamma, &beta, &w) - loss(&s, &down, &gamma, &beta, &w)) / (2.0 * h);
            assert!(
                (back.x_grad[i] - fd).abs() < 1e-6,
                "dx[{i}]: {} vs {fd}",
                back.x_grad[i]
            );
        }
        for c in 0..2 {
            let (mut up, mut down) = (gamma.clone(), gamma.clone());
            up[c] += h;
            down[c] -= h;
            let fd = (loss(&s, &x, &up, &beta, &w) - loss(&s, &x, &down, &beta, &w)) / (2.0 * h);
            assert!((back.gamma_grad[c] - fd).abs() < 1e-6, "dgamma[{c}]");
            let (mut up, mut down) = (beta.clone(), beta.clone());
            up[c] += h;
            down[c] -= h;
            let fd = (loss(&s, &x, &gamma, &up, &w) - loss(&s, &x, &gamma, &down, &w)) / (2.0 * h);
            assert!((back.beta_grad[c] - fd).abs() < 1e-6, "dbeta[{c}]");
        }
    }
}
