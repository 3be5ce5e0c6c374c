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

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

use super::conv2d_direct::Isa;
use super::conv2d_train::{Conv2dShape, overwritten};
use super::conv2d_wgrad::{Layout, ci_block, lanes};

/// Output pixels a task covers at least, in whole images.
const TASK_PIXELS: usize = 192;

/// Whether this kernel beats the others on `s` for `pass`: 3×3 or larger,
/// outputs 8 px wide or less at stride 1 or 2 (the forward pass only at
/// stride 2), and the input gradient on 16 px wide maps with 128·128 channels
/// or more. Measured by mixsweep's per-shape timings (PreActResNet18, batch
/// 100, 2 threads, ms forward and input gradient, this kernel, skipping the
/// taps on padding ([Class]), against the one used before): 64→64 at 8×8 1.53,
/// 1.80 against 1.67, 2.06; 128→128 at 4×4 1.42, 1.58 against 1.65, 1.95;
/// 256→256 at 8×8 21.0, 21.4 against 22.7, 24.6; 512→512 at 4×4 19.6, 23.3
/// against 24.1, 29.0 (im2col + GEMM). At 16×16 the direct kernel is the
/// faster forward (128→128: 22.7 against 21.6) and, with fewer channels, the
/// faster input gradient (32→32: 2.74 against 2.46), but not with 128→128
/// (25.9 against 30.0). Stride 2, forward: 128→256 at 16×16 in 12.3 against
/// 12.5, 256→512 at 8×8 in 12.0 against 12.0.
fn prefers_lanes(s: &Conv2dShape, pass: Pass) -> bool {
    s.k_h * s.k_w >= 3
        && match (s.stride, pass) {
            ([1, 1], _) if s.out_w <= 8 => true,
            ([1, 1], Pass::InputGrad) => s.out_w <= 16 && s.c_in * s.c_out >= 128 * 128,
            ([2, 2], Pass::Forward) => s.out_w <= 8,
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
    let taps = s.k_h * s.k_w;
    Some(run(isa, s, x, &|co, ci, t| {
        w[(co * s.c_in + ci) * taps + t]
    }))
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
    let taps = s.k_h * s.k_w;
    // The kernel flipped in both dimensions (tap `t` becomes `taps − 1 −
    // t`), input and output channels exchanged.
    let flipped = |co, ci, t| w[(ci * s.c_in + co) * taps + (taps - 1 - t)];
    Some(run(isa, &t, dy, &flipped))
}

/// Vectors of output channels in a register block: `NC` in [x86]'s kernels.
const NC: usize = 2;

/// The convolution of `x` by the weights `w(co, ci, tap)`.
fn run(
    isa: Isa,
    s: &Conv2dShape,
    x: &[f32],
    w: &(dyn Fn(usize, usize, usize) -> f32 + Sync),
) -> Vec<f32> {
    let l = Layout::new(isa, s);
    let (taps, lanes, cb) = (s.k_h * s.k_w, lanes(isa), ci_block(isa));
    let (p, x_len) = (s.out_pixels(), l.x_len());
    let mut y = Vec::new();
    overwritten(&mut y, s.y_len());
    if y.is_empty() {
        return y;
    }
    let xl = l.lay_out_all_x(s, x);
    // The weights as `[c_out / (NC · LANES), c_in (padded), tap, NC ·
    // LANES]`, zero where padded, written in order, a register block's
    // output channels per task: its `NC` weight vectors of an input channel
    // and tap side by side, in one stream.
    let width = NC * lanes;
    let w_stride = l.c_in * taps * width;
    let mut packed = Vec::new();
    overwritten(&mut packed, l.c_out.div_ceil(width) * w_stride);
    let pack = |(block, packed): (usize, &mut [f32])| {
        let mut at = packed.iter_mut();
        for ci in 0..l.c_in {
            for t in 0..taps {
                for co in block * width..(block + 1) * width {
                    if let Some(v) = at.next() {
                        *v = if ci < s.c_in && co < s.c_out {
                            w(co, ci, t)
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
    // Where output pixel `q` of an image reads tap 0 of its first channel.
    let pixel_offsets: Vec<usize> = (0..p)
        .map(|q| ((q / s.out_w * s.stride[0]) * l.cols + q % s.out_w * s.stride[1]) * cb)
        .collect();
    let images = TASK_PIXELS.div_ceil(p).clamp(1, s.batch);
    let classes = classes(s, &l.tap_offsets(s), pixels_per_block(isa), images);
    let per_out = s.c_out * p;
    let task = |(index, y_task): (usize, &mut [f32])| {
        let first = index * images;
        let n = y_task.len() / per_out;
        let xl = &xl[first * x_len..(first + n) * x_len];
        // SAFETY: `xl` holds the task's `n` laid-out images; the kernel
        // reads them at an image's start plus a pixel's offset plus a tap's
        // offset plus a block of CI channels plus a channel below CI, inside
        // the image since its `rows` and `cols` cover every tap of every
        // output; `packed` within its `c_out / (NC · LANES)` blocks (rounded up)
        // of `w_stride` floats; and it
        // writes `y_task` (`n · c_out · p` floats) at channels below `c_out`.
        // The instruction set was detected on this CPU.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            match isa {
                Isa::Avx512 => {
                    x86::task_avx512(s, &l, xl, &packed, &classes, &pixel_offsets, y_task)
                }
                Isa::Avx2 => x86::task_avx2(s, &l, xl, &packed, &classes, &pixel_offsets, y_task),
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

/// Output pixels of a register block: `NP` in [x86]'s kernels.
fn pixels_per_block(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 12,
        Isa::Avx2 => 6,
    }
}

/// Output pixels that read the same kernel taps inside the input: `pixels`
/// of each image (in order), and their taps (index, offset in a block of a
/// laid-out image) in (ky, kx) order, less those that would read only zero
/// padding. Skipping those leaves every sum's bits as they were (an FMA that
/// adds `w · 0` changes nothing), and saves work where the map is small:
/// 31% of the taps at 4×4 with 3×3 kernels, 16% at 8×8.
struct Class {
    taps: Vec<(usize, usize)>,
    pixels: Vec<usize>,
}

/// The output pixels of `s` in [Class]es, cut the way that does the least
/// work in register blocks of `np` pixels over a task of `images` images,
/// among: one class (every tap), by the kernel rows that read inside the
/// input, by rows and then, in the rows that read all of them, by columns,
/// and by rows and columns. (Each class's last block pays for `np` pixels
/// however few remain, so on 8×8 maps, 3 images a task, the nine classes of
/// rows and columns would do more work than one: 4 corners of 3 pixels.)
fn classes(s: &Conv2dShape, tap_offsets: &[usize], np: usize, images: usize) -> Vec<Class> {
    type Key = (Range<usize>, Range<usize>);
    let rows: Vec<Range<usize>> = (0..s.out_h).map(|oy| s.taps_inside(0, oy)).collect();
    let cols: Vec<Range<usize>> = (0..s.out_w).map(|ox| s.taps_inside(1, ox)).collect();
    let (all_rows, all_cols) = (0..s.k_h, 0..s.k_w);
    let keys: [&dyn Fn(usize, usize) -> Key; 4] = [
        &|_, _| (all_rows.clone(), all_cols.clone()),
        &|oy, _| (rows[oy].clone(), all_cols.clone()),
        &|oy, ox| match rows[oy] == all_rows {
            true => (all_rows.clone(), cols[ox].clone()),
            false => (rows[oy].clone(), all_cols.clone()),
        },
        &|oy, ox| (rows[oy].clone(), cols[ox].clone()),
    ];
    let grouped = keys.iter().map(|key| {
        let mut groups: Vec<(Key, Vec<usize>)> = Vec::new();
        for q in 0..s.out_pixels() {
            let k = key(q / s.out_w, q % s.out_w);
            match groups.iter_mut().find(|(g, _)| *g == k) {
                Some((_, pixels)) => pixels.push(q),
                None => groups.push((k, vec![q])),
            }
        }
        let work: usize = groups
            .iter()
            .map(|((ky, kx), pixels)| {
                (pixels.len() * images).next_multiple_of(np) * ky.len() * kx.len()
            })
            .sum();
        (work, groups)
    });
    // The first of the least work: fewer classes on a tie.
    let (_, groups) = grouped
        .reduce(|best, next| if next.0 < best.0 { next } else { best })
        .unwrap_or_default();
    groups
        .into_iter()
        .map(|((ky, kx), pixels)| Class {
            taps: ky
                .flat_map(|ky| kx.clone().map(move |kx| ky * s.k_w + kx))
                .map(|t| (t, tap_offsets[t]))
                .collect(),
            pixels,
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The register-blocked kernel, generic over the vector registers and
    //! compiled once per instruction set.

    use super::super::conv2d_direct::x86::{Avx2, Avx512, Simd};
    use super::{Class, Conv2dShape, Layout, NC};

    /// One register block: `NC` vectors of output channels × the `NP`
    /// pixels whose first inputs are at `x[j]`, summed over every input
    /// channel and each tap of `taps` (index, offset) into `acc`. The
    /// weights hold `all_taps` taps per input channel, `w_step` floats each,
    /// the `NC` vectors first.
    #[inline(always)]
    unsafe fn block<S: Simd, const CI: usize, const NC: usize, const NP: usize>(
        l: &Layout,
        x: [*const f32; NP],
        w: *const f32,
        w_step: usize,
        taps: &[(usize, usize)],
        all_taps: usize,
        acc: &mut [[S::V; NP]; NC],
    ) {
        unsafe {
            *acc = [[S::zero(); NP]; NC];
            for block in 0..l.c_in / CI {
                for &(t, offset) in taps {
                    for c in 0..CI {
                        let d = block * l.x_block() + offset + c;
                        let w_c = w.add(((block * CI + c) * all_taps + t) * w_step);
                        let wv: [S::V; NC] =
                            core::array::from_fn(|n| S::load(w_c.add(n * S::LANES)));
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

    /// Every output of a task's images (`y`: `[image, c_out, pixel]`), class
    /// by class.
    #[inline(always)]
    unsafe fn task<S: Simd, const CI: usize, const NC: usize, const NP: usize>(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        classes: &[Class],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        let images = y.len() / (s.c_out * pixel_offsets.len());
        for co in (0..l.c_out).step_by(NC * S::LANES) {
            let groups = (l.c_out - co).div_ceil(S::LANES).min(NC);
            for class in classes {
                // SAFETY: as for `task`.
                unsafe {
                    task_class::<S, CI, NC, NP>(
                        s,
                        l,
                        xl,
                        packed,
                        class,
                        pixel_offsets,
                        y,
                        co,
                        groups,
                        images,
                    );
                }
            }
        }
    }

    /// The outputs of one class of pixels of a task's images, output
    /// channels `[co, co + groups · LANES)`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn task_class<S: Simd, const CI: usize, const NC: usize, const NP: usize>(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        class: &Class,
        pixel_offsets: &[usize],
        y: &mut [f32],
        co: usize,
        groups: usize,
        images: usize,
    ) {
        let p = pixel_offsets.len();
        let all_taps = s.k_h * s.k_w;
        let (x_len, w_step) = (l.x_len(), NC * S::LANES);
        // This register block's output channels' weights.
        let w = packed[co / w_step * l.c_in * all_taps * w_step..].as_ptr();
        let m = class.pixels.len();
        let pixels = m * images;
        // Pixel `k` of the class in the task, as `image · p + q`.
        let at = |k: usize| (k / m) * p + class.pixels[k % m];
        let mut tile = [[0.0f32; 64]; NP];
        let mut acc = unsafe { [[S::zero(); NP]; NC] };
        for first in (0..pixels).step_by(NP) {
            let x: [*const f32; NP] = core::array::from_fn(|j| {
                let g = at((first + j).min(pixels - 1));
                // SAFETY: an image of the task plus a pixel's offset.
                unsafe { xl.as_ptr().add(g / p * x_len + pixel_offsets[g % p]) }
            });
            // SAFETY: see `run` in the parent module; the weights of
            // vectors past `c_out` are read only when `groups == NC`.
            unsafe {
                if groups == NC {
                    block::<S, CI, NC, NP>(l, x, w, w_step, &class.taps, all_taps, &mut acc);
                } else {
                    let mut one = [[S::zero(); NP]; 1];
                    for (n, acc_n) in acc.iter_mut().enumerate().take(groups) {
                        block::<S, CI, 1, NP>(
                            l,
                            x,
                            w.add(n * S::LANES),
                            w_step,
                            &class.taps,
                            all_taps,
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
                let g = at(first + j);
                let out = &mut y[g / p * s.c_out * p + g % p..];
                for (k, &v) in tile_j[..groups * S::LANES].iter().enumerate() {
                    if co + k < s.c_out {
                        out[(co + k) * p] = v;
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
        classes: &[Class],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        unsafe { task::<Avx512, 8, NC, 12>(s, l, xl, packed, classes, pixel_offsets, y) }
    }

    /// [task] with AVX2 + FMA: 2 vectors of 8 output channels × 6 pixels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn task_avx2(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        classes: &[Class],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        unsafe { task::<Avx2, 4, NC, 6>(s, l, xl, packed, classes, pixel_offsets, y) }
    }
}
