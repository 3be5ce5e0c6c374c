//! The forward pass and input gradient of a 2-D convolution on small feature
//! maps with the output channels in the vector lanes, f32, on x86-64 with
//! AVX-512 or AVX2 + FMA.
//!
//! Added to burn-flex by mixsweep (see PATCH.md); the weight gradient's
//! counterpart is [conv2d_wgrad](super::conv2d_wgrad), whose channel-blocked
//! layout this reuses. On 8×8 and 4×4 maps the direct kernel's padded grid
//! wastes a fifth to a third of its work and im2col + GEMM copies every input
//! nine times. Here the batch is laid out once (`[c_in / CI, rows, cols,
//! CI]` per image, zero-padded), and a register block of `NC` vectors of
//! output channels × `NP` output pixels accumulates, per input channel and
//! tap, `NC` weight vectors times `NP` input values broadcast from memory.
//! Output pixels run across the rows and images of a task, so no pixel of a
//! block is wasted on a narrow map.
//!
//! **Determinism.** Every output is one chain of fused multiply-adds over
//! (block of `CI` input channels, tap, channel of the block) in that order,
//! computed by one thread: the same bits on any number of threads. `CI` is 8
//! with AVX-512 and 4 with AVX2, so the last bits depend on the instruction
//! set, which a machine always picks the same way.

use alloc::vec::Vec;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

use super::conv2d_direct::Isa;
use super::conv2d_train::{Conv2dShape, flipped_transposed, overwritten};
use super::conv2d_wgrad::{Layout, ci_block, lanes};

/// Output pixels a task covers at least, in whole images.
const TASK_PIXELS: usize = 192;

/// Whether this kernel beats the others on `s` for `pass`: 3×3 or larger,
/// outputs 8 px wide or less, at stride 1 with at most 256·256 channels, at
/// stride 2 (the forward pass only) with at most 64·128. Measured like
/// `conv2d_wgrad::prefers_lanes` (PreActResNet18, batch 100, 2 threads, ms
/// forward and input gradient, this kernel against the one used before):
/// 64→64 at 8×8 1.91, 2.07 against 1.99, 2.93; 128→128 at 4×4 1.87, 2.23
/// against 2.71, 2.43; 256→256 at 8×8 23.6, 24.1 against 24.2, 32.0. Not
/// 512→512 at 4×4 (forward 26.6 against 24.4, the GEMM's), nor at 16×16
/// (32→32: 2.02, 3.05 against 1.53, 2.57, the direct kernel's). Stride 2,
/// forward: 32→64 at 16×16 in 1.19, 1.22 against 1.64, 1.59 (im2col + GEMM).
fn prefers_lanes(s: &Conv2dShape, pass: Pass) -> bool {
    let channels = s.c_in * s.c_out;
    s.k_h * s.k_w >= 3
        && s.out_w <= 8
        && match s.stride {
            [1, 1] => channels <= 256 * 256,
            [2, 2] => pass == Pass::Forward && channels <= 64 * 128,
            _ => false,
        }
}

/// The passes this kernel can serve.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Forward,
    InputGrad,
}

/// The forward convolution without bias, or `None` where this kernel does
/// not apply (grouped or dilated, another kernel the faster, or no AVX2 +
/// FMA).
pub fn forward(s: &Conv2dShape, x: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    if s.groups != 1 || s.dilation != [1, 1] || !prefers_lanes(s, Pass::Forward) {
        return None;
    }
    let isa = Isa::detect()?;
    Some(run(isa, s, x, w))
}

/// The input gradient, as the forward convolution of `dy` by the kernel
/// flipped in both dimensions with input and output channels exchanged,
/// padded by `k − 1 − padding` before; `None` where that padding would be
/// negative or [forward] would not apply.
pub fn x_grad(s: &Conv2dShape, w: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    if s.groups != 1 || s.dilation != [1, 1] || !prefers_lanes(s, Pass::InputGrad) {
        return None;
    }
    let isa = Isa::detect()?;
    let t = s.input_grad_as_forward()?;
    Some(run(isa, &t, dy, &flipped_transposed(s, w)))
}

/// The convolution of `x` by `w` (`[c_out, c_in, k_h, k_w]`).
fn run(isa: Isa, s: &Conv2dShape, x: &[f32], w: &[f32]) -> Vec<f32> {
    let l = Layout::new(isa, s);
    let (taps, lanes, cb) = (s.k_h * s.k_w, lanes(isa), ci_block(isa));
    let (p, x_len) = (s.out_pixels(), l.x_len());
    let mut y = Vec::new();
    overwritten(&mut y, s.y_len());
    if y.is_empty() {
        return y;
    }
    let xl = l.lay_out_all_x(s, x);
    // The weights as `[c_out / LANES, c_in (padded), tap, LANES]`, zero
    // where padded, written in order, a block of output channels per task.
    let w_stride = l.c_in * taps * lanes;
    let mut packed = Vec::new();
    overwritten(&mut packed, l.c_out / lanes * w_stride);
    let pack = |(block, packed): (usize, &mut [f32])| {
        let mut at = packed.iter_mut();
        for ci in 0..l.c_in {
            for t in 0..taps {
                for co in block * lanes..(block + 1) * lanes {
                    if let Some(v) = at.next() {
                        *v = if ci < s.c_in && co < s.c_out {
                            w[(co * s.c_in + ci) * taps + t]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    packed.par_chunks_mut(w_stride).enumerate().for_each(pack);
    #[cfg(not(feature = "rayon"))]
    packed.chunks_mut(w_stride).enumerate().for_each(pack);
    let tap_offsets = l.tap_offsets(s);
    // Where output pixel `q` of an image reads tap 0 of its first channel.
    let pixel_offsets: Vec<usize> = (0..p)
        .map(|q| ((q / s.out_w * s.stride[0]) * l.cols + q % s.out_w * s.stride[1]) * cb)
        .collect();
    let images = TASK_PIXELS.div_ceil(p).clamp(1, s.batch);
    let per_out = s.c_out * p;
    let task = |(index, y_task): (usize, &mut [f32])| {
        let first = index * images;
        let n = y_task.len() / per_out;
        let xl = &xl[first * x_len..(first + n) * x_len];
        // SAFETY: `xl` holds the task's `n` laid-out images; the kernel
        // reads them at an image's start plus a pixel's offset plus a tap's
        // offset plus a block of CI channels plus a channel below CI, inside
        // the image since its `rows` and `cols` cover every tap of every
        // output; `packed` within `c_out / LANES · w_stride` floats; and it
        // writes `y_task` (`n · c_out · p` floats) at channels below `c_out`.
        // The instruction set was detected on this CPU.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            match isa {
                Isa::Avx512 => {
                    x86::task_avx512(s, &l, xl, &packed, &tap_offsets, &pixel_offsets, y_task)
                }
                Isa::Avx2 => {
                    x86::task_avx2(s, &l, xl, &packed, &tap_offsets, &pixel_offsets, y_task)
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    y.par_chunks_mut(images * per_out)
        .enumerate()
        .for_each(task);
    #[cfg(not(feature = "rayon"))]
    y.chunks_mut(images * per_out).enumerate().for_each(task);
    y
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The register-blocked kernel, generic over the vector registers and
    //! compiled once per instruction set.

    use super::super::conv2d_direct::x86::{Avx2, Avx512, Simd};
    use super::{Conv2dShape, Layout};

    /// One register block: `NC` vectors of output channels × the `NP`
    /// pixels whose first inputs are at `x[j]`, summed over every input
    /// channel and tap into `acc`.
    #[inline(always)]
    unsafe fn block<S: Simd, const CI: usize, const NC: usize, const NP: usize>(
        l: &Layout,
        x: [*const f32; NP],
        w: *const f32,
        w_stride: usize,
        tap_offsets: &[usize],
        acc: &mut [[S::V; NP]; NC],
    ) {
        let taps = tap_offsets.len();
        unsafe {
            *acc = [[S::zero(); NP]; NC];
            for block in 0..l.c_in / CI {
                for (t, &offset) in tap_offsets.iter().enumerate() {
                    for c in 0..CI {
                        let d = block * l.x_block() + offset + c;
                        let w_c = w.add(((block * CI + c) * taps + t) * S::LANES);
                        let wv: [S::V; NC] =
                            core::array::from_fn(|n| S::load(w_c.add(n * w_stride)));
                        for (j, &xj) in x.iter().enumerate() {
                            let xv = S::splat(xj.add(d));
                            for n in 0..NC {
                                acc[n][j] = S::fma(wv[n], xv, acc[n][j]);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every output of a task's images (`y`: `[image, c_out, pixel]`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn task<S: Simd, const CI: usize, const NC: usize, const NP: usize>(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        tap_offsets: &[usize],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        let p = pixel_offsets.len();
        let pixels = y.len() / s.c_out;
        let (x_len, w_stride) = (l.x_len(), l.c_in * tap_offsets.len() * S::LANES);
        let mut tile = [[0.0f32; 64]; NP];
        let mut acc = unsafe { [[S::zero(); NP]; NC] };
        for co in (0..l.c_out).step_by(NC * S::LANES) {
            let groups = (l.c_out - co).div_ceil(S::LANES).min(NC);
            for first in (0..pixels).step_by(NP) {
                let x: [*const f32; NP] = core::array::from_fn(|j| {
                    let g = (first + j).min(pixels - 1);
                    // SAFETY: an image of the task plus a pixel's offset.
                    unsafe { xl.as_ptr().add(g / p * x_len + pixel_offsets[g % p]) }
                });
                // SAFETY: see `run` in the parent module; the weights of
                // vectors past `c_out` are read only when `groups == NC`.
                unsafe {
                    if groups == NC {
                        block::<S, CI, NC, NP>(
                            l,
                            x,
                            packed.as_ptr().add(co / S::LANES * w_stride),
                            w_stride,
                            tap_offsets,
                            &mut acc,
                        );
                    } else {
                        let mut one = [[S::zero(); NP]; 1];
                        for (n, acc_n) in acc.iter_mut().enumerate().take(groups) {
                            block::<S, CI, 1, NP>(
                                l,
                                x,
                                packed.as_ptr().add((co / S::LANES + n) * w_stride),
                                w_stride,
                                tap_offsets,
                                &mut one,
                            );
                            *acc_n = one[0];
                        }
                    }
                    for (n, acc_n) in acc.iter().enumerate().take(groups) {
                        for (tile_j, &a) in tile.iter_mut().zip(acc_n) {
                            S::store(tile_j.as_mut_ptr().add(n * S::LANES), a);
                        }
                    }
                }
                for (j, tile_j) in tile.iter().enumerate().take(pixels - first) {
                    let g = first + j;
                    let out = &mut y[g / p * s.c_out * p + g % p..];
                    for (k, &v) in tile_j[..groups * S::LANES].iter().enumerate() {
                        if co + k < s.c_out {
                            out[(co + k) * p] = v;
                        }
                    }
                }
            }
        }
    }

    /// [task] with AVX-512: 2 vectors of 16 output channels × 12 pixels.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn task_avx512(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        tap_offsets: &[usize],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        unsafe { task::<Avx512, 8, 2, 12>(s, l, xl, packed, tap_offsets, pixel_offsets, y) }
    }

    /// [task] with AVX2 + FMA: 2 vectors of 8 output channels × 6 pixels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn task_avx2(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        tap_offsets: &[usize],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        unsafe { task::<Avx2, 4, 2, 6>(s, l, xl, packed, tap_offsets, pixel_offsets, y) }
    }
}
