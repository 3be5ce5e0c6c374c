//! Batch normalisation over `[batch, channels, ...]` tensors in a few passes:
//! training forward (statistics + output), its backward, and inference with
//! given statistics.
//!
//! Added to burn-flex by mixsweep (see PATCH.md). burn-backend's defaults
//! build these out of about twenty full-tensor element-wise ops and
//! reductions; here the forward reads the input three times (mean, variance,
//! output) and the backward three times (two sums, the input gradient).
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

/// Mean and biased variance of channel `c` of `x`.
struct Statistics<'a, T> {
    s: &'a NormShape,
    c: usize,
    x: &'a [T],
}

impl<T: NormFloat> Kernel for Statistics<'_, T> {
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let Self { s, c, x } = self;
        let mean = channel_sum(s, c, x, |v, _| v.to_f64()) / s.count();
        let variance = channel_sum(s, c, x, |v, _| (v.to_f64() - mean).powi(2)) / s.count();
        (mean, variance)
    }
}

/// [gradient_sums] of channel `c`.
struct GradientSums<'a, T> {
    s: &'a NormShape,
    c: usize,
    dy: &'a [T],
    x: &'a [T],
    mean: f64,
}

impl<T: NormFloat> Kernel for GradientSums<'_, T> {
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        gradient_sums(self.s, self.c, self.dy, self.x, self.mean)
    }
}

/// `out[i] = f(c, x[i], y[i])` over one plane of channel `c`: writes every
/// element of `out` (the three have one length, asserted).
struct Plane<'a, T, F> {
    out: &'a mut [MaybeUninit<T>],
    x: &'a [T],
    y: &'a [T],
    c: usize,
    f: &'a F,
}

impl<T: NormFloat, F: Fn(usize, T, T) -> T> Kernel for Plane<'_, T, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        assert!(
            self.x.len() == self.out.len() && self.y.len() == self.out.len(),
            "batch norm: plane sizes"
        );
        for ((o, &a), &b) in self.out.iter_mut().zip(self.x).zip(self.y) {
            o.write((self.f)(self.c, a, b));
        }
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

/// Computes `per_channel(c)` for every channel, in parallel when rayon is on.
fn per_channel<R: Send>(channels: usize, f: impl Fn(usize) -> R + Send + Sync) -> Vec<R> {
    #[cfg(feature = "rayon")]
    return (0..channels).into_par_iter().map(f).collect();
    #[cfg(not(feature = "rayon"))]
    return (0..channels).map(f).collect();
}

/// `out[i] = f(c, x[i], y[i])` for every element, `c` being its channel;
/// planes in parallel when rayon is on. Walking each plane's slices side by
/// side (rather than computing an index per element) lets the loop vectorise.
fn map_planes<T: NormFloat>(
    s: &NormShape,
    x: &[T],
    y: &[T],
    f: impl Fn(usize, T, T) -> T + Send + Sync,
) -> Vec<T> {
    assert!(
        x.len() >= s.len() && y.len() >= s.len(),
        "batch norm: input size"
    );
    // Written once, not zeroed first: the output is a full pass over memory.
    let mut out = Vec::with_capacity(s.len());
    if s.plane > 0 {
        let fill = |(p, plane): (usize, &mut [MaybeUninit<T>])| {
            let range = p * s.plane..(p + 1) * s.plane;
            vectorised(Plane {
                out: plane,
                x: &x[range.clone()],
                y: &y[range],
                c: p % s.channels,
                f: &f,
            })
        };
        let slots = &mut out.spare_capacity_mut()[..s.len()];
        #[cfg(feature = "rayon")]
        slots.par_chunks_mut(s.plane).enumerate().for_each(fill);
        #[cfg(not(feature = "rayon"))]
        slots.chunks_mut(s.plane).enumerate().for_each(fill);
    }
    // SAFETY: the first `s.len()` slots, cut into whole planes (`s.len()` is a
    // multiple of `s.plane`), were each written by `Plane::run`, which writes
    // every slot it is given; with `s.plane == 0`, `s.len()` is 0.
    unsafe { out.set_len(s.len()) };
    out
}

/// `y = x · scale[c] + shift[c]`.
fn scale_shift<T: NormFloat>(s: &NormShape, x: &[T], scale: &[f64], shift: &[f64]) -> Vec<T> {
    let scale: Vec<T> = scale.iter().map(|v| T::from_f64(*v)).collect();
    let shift: Vec<T> = shift.iter().map(|v| T::from_f64(*v)).collect();
    map_planes(s, x, x, |c, v, _| {
        T::from_f64(v.to_f64() * scale[c].to_f64() + shift[c].to_f64())
    })
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
    let stats = per_channel(s.channels, |c| vectorised(Statistics { s, c, x }));
    let scale: Vec<f64> = stats
        .iter()
        .zip(gamma)
        .map(|((_, var), g)| g.to_f64() / (var + epsilon).sqrt())
        .collect();
    let shift: Vec<f64> = stats
        .iter()
        .zip(&scale)
        .zip(beta)
        .map(|(((mean, _), scale), b)| b.to_f64() - mean * scale)
        .collect();
    NormForward {
        output: scale_shift(s, x, &scale, &shift),
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
    let sums = per_channel(s.channels, |c| {
        vectorised(GradientSums {
            s,
            c,
            dy: output_grad,
            x,
            mean: mean[c].to_f64(),
        })
    });
    let m = s.count();
    // dx = a·dy + b·x + c per channel.
    let coefficients: Vec<[f64; 3]> = (0..s.channels)
        .map(|c| {
            let inv_std = 1.0 / (variance[c].to_f64() + epsilon).sqrt();
            let (sum_dy, sum_dy_centred) = sums[c];
            let a = gamma[c].to_f64() * inv_std;
            let b = -a * inv_std * inv_std * sum_dy_centred / m;
            [a, b, -a * sum_dy / m - b * mean[c].to_f64()]
        })
        .collect();
    let coefficients_t: Vec<[T; 3]> = coefficients.iter().map(|k| k.map(T::from_f64)).collect();
    let x_grad = map_planes(s, output_grad, x, |c, g, v| {
        let [a, b, k] = coefficients_t[c];
        T::from_f64(a.to_f64() * g.to_f64() + b.to_f64() * v.to_f64() + k.to_f64())
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
    let scale: Vec<f64> = (0..s.channels)
        .map(|c| gamma[c].to_f64() / (variance[c].to_f64() + epsilon).sqrt())
        .collect();
    let shift: Vec<f64> = (0..s.channels)
        .map(|c| beta[c].to_f64() - mean[c].to_f64() * scale[c])
        .collect();
    scale_shift(s, x, &scale, &shift)
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
