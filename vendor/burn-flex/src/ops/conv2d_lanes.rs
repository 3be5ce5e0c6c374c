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
//! block is wasted on a narrow map, and are cut into classes that read the
//! same taps, so no tap that reads only zero padding is summed ([Class]).
//! The input gradient is the same kernel on the output gradient
//! ([Axis::input_grad]).
//!
//! **Determinism.** Every output is one chain of fused multiply-adds over
//! (block of `CI` input channels, tap in its class's order, channel of the
//! block), computed by one thread: the same bits on any number of threads.
//! `CI` is 8 with AVX-512 and 4 with AVX2, so the last bits depend on the
//! instruction set, which a machine always picks the same way.

use alloc::vec;
use alloc::vec::Vec;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

use super::conv2d_direct::Isa;
use super::conv2d_train::{Conv2dShape, overwritten};
use super::conv2d_wgrad::{Layout, ci_block, lanes};

/// Output pixels a task covers at least, in whole images.
const TASK_PIXELS: usize = 192;

/// Whether this kernel beats the others on `s` for `pass`: 3×3 or larger,
/// outputs 8 px wide or less at stride 1 and 16 or less at stride 2 (the
/// forward pass); the input gradient on outputs 8 px wide or less at stride
/// 1, and at stride 2 with at most 64·128 channels. Measured by mixsweep's
/// per-shape timings (PreActResNet18, batch 100, 2 threads, ms forward and
/// input gradient, this kernel, skipping the taps on padding ([Class]),
/// against the one used before): 64→64 at 8×8 1.53, 1.80 against 1.67,
/// 2.06; 128→128 at 4×4 1.42, 1.58 against 1.65, 1.95; 256→256 at 8×8 21.0,
/// 21.4 against 22.7, 24.6; 512→512 at 4×4 19.6, 23.3 against 24.1, 29.0
/// (im2col + GEMM). At 16×16 the direct kernel is the faster (128→128:
/// forward 22.7 against 21.6; input gradient 34.1 against 28.3, both timed
/// after the direct forward pass; 32→32: 2.74 against 2.46). Stride 2,
/// forward: 64→128 at 32×32 in 13.3 against 15.3, 128→256 at 16×16 in 12.3
/// against 12.5, 256→512 at 8×8 in 12.0 against 12.0, 16→32 at 32×32 in 1.49
/// against 1.50 (the direct kernel's phases). Stride
/// 2, input gradient, where a class reads 1, 2 or 4 of the 9 taps: 32→64 at
/// 16×16 in 2.02 against 2.14, 64→128 at 8×8 in 1.32 against 1.65 (im2col +
/// GEMM), but 64→128 at 32×32 in 27.3 against 20.2, 128→256 at 16×16 in
/// 17.0 against 16.5, 256→512 at 8×8 in 15.9 against 14.9.
fn prefers_lanes(s: &Conv2dShape, pass: Pass) -> bool {
    let channels = s.c_in * s.c_out;
    s.k_h * s.k_w >= 3
        && match (s.stride, pass) {
            ([1, 1], _) if s.out_w <= 8 => true,
            ([2, 2], Pass::Forward) => s.out_w <= 16,
            ([2, 2], Pass::InputGrad) => s.out_w <= 8 && channels <= 64 * 128,
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
    let plan = Plan {
        input: *s,
        c_out: s.c_out,
        rows: Axis::forward(s, 0),
        cols: Axis::forward(s, 1),
    };
    let taps = s.k_h * s.k_w;
    Some(run(isa, &plan, x, &|co, ci, t| {
        w[(co * s.c_in + ci) * taps + t]
    }))
}

/// The input gradient: `dx[ci, y, x] = Σ w[co, ci, ky, kx] · dy[co, oy, ox]`
/// over the taps and output positions with `oy · stride + ky = y + padding`
/// (and the same for columns), as a convolution of `dy` whose taps depend on
/// the parity of `y + padding` at stride 2 ([Axis::input_grad]); `None` where
/// this kernel does not apply.
pub fn x_grad(s: &Conv2dShape, w: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    if s.groups != 1 || s.dilation != [1, 1] || !prefers_lanes(s, Pass::InputGrad) {
        return None;
    }
    let isa = Isa::detect()?;
    let (rows, cols) = (Axis::input_grad(s, 0), Axis::input_grad(s, 1));
    // `dy` laid out as the input of a stride-1 convolution whose kernel
    // spans every tap's reach (`coord`), padded so that the first base is 0.
    let reach = |a: &Axis| a.coord.iter().max().map_or(1, |c| c + 1);
    let input = Conv2dShape {
        c_in: s.c_out,
        c_out: s.c_in,
        in_h: s.out_h,
        in_w: s.out_w,
        k_h: reach(&rows),
        k_w: reach(&cols),
        stride: [1, 1],
        padding: [rows.padding, cols.padding],
        out_h: rows.base.last().map_or(0, |b| b + 1),
        out_w: cols.base.last().map_or(0, |b| b + 1),
        ..*s
    };
    let plan = Plan {
        input,
        c_out: s.c_in,
        rows,
        cols,
    };
    let taps = s.k_h * s.k_w;
    // Input and output channels exchanged.
    Some(run(isa, &plan, dy, &|co, ci, t| {
        w[(ci * s.c_in + co) * taps + t]
    }))
}

/// One axis (rows or columns) of a convolution as this kernel runs it:
/// output position `o` reads, for tap `k`, the laid-out input at `base[o] +
/// coord[k]`.
struct Axis {
    base: Vec<usize>,
    coord: Vec<usize>,
    /// The taps output position `o` sums, in order: every one that reads
    /// the laid-out input (`all`), or only those that read inside the input,
    /// not its zero padding (`inside`).
    all: Vec<Vec<usize>>,
    inside: Vec<Vec<usize>>,
    /// Zero padding of the laid-out input before its first row or column.
    padding: usize,
}

impl Axis {
    /// Axis `axis` (0: rows, 1: columns) of the forward convolution `s`.
    fn forward(s: &Conv2dShape, axis: usize) -> Self {
        let (out, k) = match axis {
            0 => (s.out_h, s.k_h),
            _ => (s.out_w, s.k_w),
        };
        Self {
            base: (0..out).map(|o| o * s.stride[axis]).collect(),
            coord: (0..k).collect(),
            all: vec![(0..k).collect(); out],
            inside: (0..out).map(|o| s.taps_inside(axis, o).collect()).collect(),
            padding: s.padding[axis],
        }
    }

    /// Axis `axis` of the input gradient of `s`: input position `o` takes
    /// tap `k` from output position `(o + padding − k) / stride` where that
    /// divides, that is the taps `k ≡ o + padding (mod stride)`, from the
    /// last: at stride 1 the forward convolution of `dy` by the flipped
    /// kernel, tap by tap. Output position `(o + padding) / stride − k /
    /// stride` sits at `base[o] + coord[k]` in a layout padded so that the
    /// smallest base is 0.
    fn input_grad(s: &Conv2dShape, axis: usize) -> Self {
        let (size, out, k) = match axis {
            0 => (s.in_h, s.out_h, s.k_h),
            _ => (s.in_w, s.out_w, s.k_w),
        };
        let (stride, pad) = (s.stride[axis], s.padding[axis]);
        let reach = k.div_ceil(stride);
        let padding = (reach - 1).saturating_sub(pad / stride);
        let all: Vec<Vec<usize>> = (0..size)
            .map(|o| {
                (0..k)
                    .rev()
                    .filter(|t| t % stride == (o + pad) % stride)
                    .collect()
            })
            .collect();
        let inside = all
            .iter()
            .enumerate()
            .map(|(o, taps)| {
                let at = (o + pad) / stride;
                let reads = |t: &usize| at >= t / stride && at - t / stride < out;
                taps.iter().copied().filter(reads).collect()
            })
            .collect();
        Self {
            base: (0..size)
                .map(|o| (o + pad) / stride + padding - (reach - 1))
                .collect(),
            coord: (0..k).map(|t| reach - 1 - t / stride).collect(),
            all,
            inside,
            padding,
        }
    }
}

/// A convolution as this kernel runs it: its input laid out as that of
/// `input` (whose [Layout] holds every read), `c_out` output channels on the
/// grid of `rows` × `cols`.
struct Plan {
    input: Conv2dShape,
    c_out: usize,
    rows: Axis,
    cols: Axis,
}

impl Plan {
    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.rows.base.len() * self.cols.base.len()
    }

    /// Taps per pair of channels in the weights.
    fn taps(&self) -> usize {
        self.rows.coord.len() * self.cols.coord.len()
    }
}

/// Vectors of output channels in a register block: `NC` in [x86]'s kernels.
const NC: usize = 2;

/// The convolution of `x` by the weights `w(co, ci, tap)` as `plan` says.
fn run(
    isa: Isa,
    plan: &Plan,
    x: &[f32],
    w: &(impl Fn(usize, usize, usize) -> f32 + Sync),
) -> Vec<f32> {
    let s = &plan.input;
    let l = Layout::new(isa, s);
    let (taps, lanes, cb) = (plan.taps(), lanes(isa), ci_block(isa));
    let (p, x_len) = (plan.pixels(), l.x_len());
    let mut y = Vec::new();
    overwritten(&mut y, s.batch * plan.c_out * p);
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
    // Written in the order (input channel, output channel, tap): the reads
    // of a few dozen rows of `w` at a time, or of one run of it (the input
    // gradient's), stay in cache.
    let pack = |(block, packed): (usize, &mut [f32])| {
        for ci in 0..l.c_in {
            let packed = &mut packed[ci * taps * width..][..taps * width];
            for j in 0..width {
                let co = block * width + j;
                let real = ci < s.c_in && co < plan.c_out;
                for t in 0..taps {
                    packed[t * width + j] = if real { w(co, ci, t) } else { 0.0 };
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    packed.par_chunks_mut(w_stride).enumerate().for_each(pack);
    #[cfg(not(feature = "rayon"))]
    packed.chunks_mut(w_stride).enumerate().for_each(pack);
    // Where output pixel `q` of an image reads tap 0 of its first channel.
    let out_w = plan.cols.base.len();
    let pixel_offsets: Vec<usize> = (0..p)
        .map(|q| (plan.rows.base[q / out_w] * l.cols + plan.cols.base[q % out_w]) * cb)
        .collect();
    let images = TASK_PIXELS.div_ceil(p).clamp(1, s.batch);
    let classes = classes(plan, l.cols * cb, cb, pixels_per_block(isa), images);
    let per_out = plan.c_out * p;
    let out = (plan.c_out, taps);
    let task = |(index, y_task): (usize, &mut [f32])| {
        let first = index * images;
        let n = y_task.len() / per_out;
        let xl = &xl[first * x_len..(first + n) * x_len];
        // SAFETY: `xl` holds the task's `n` laid-out images; the kernel
        // reads them at an image's start plus a pixel's offset plus a tap's
        // offset plus a block of CI channels plus a channel below CI, inside
        // the image since its `rows` and `cols` cover every tap of every
        // output (the plan's `input`); `packed` within its `c_out / (NC ·
        // LANES)` blocks (rounded up) of `w_stride` floats; and it writes
        // `y_task` (`n · c_out · p` floats) at channels below `c_out`. The
        // instruction set was detected on this CPU.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            match isa {
                Isa::Avx512 => {
                    x86::task_avx512(out, &l, xl, &packed, &classes, &pixel_offsets, y_task)
                }
                Isa::Avx2 => x86::task_avx2(out, &l, xl, &packed, &classes, &pixel_offsets, y_task),
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
/// laid-out image) in the order they are summed ([Axis]), less those that
/// would read only zero padding. Skipping those leaves every sum's bits as they were (an FMA that
/// adds `w · 0` changes nothing), and saves work where the map is small:
/// 31% of the taps at 4×4 with 3×3 kernels, 16% at 8×8.
struct Class {
    taps: Vec<(usize, usize)>,
    pixels: Vec<usize>,
}

/// The output pixels of `plan` in [Class]es, cut the way that does the
/// least work in register blocks of `np` pixels over a task of `images`
/// images, among: by the taps each position's row and column can read
/// ([Axis]'s `all`: one class at stride 1), by the kernel rows that read
/// inside the input, by rows and then, in the rows that read all of theirs,
/// by columns, and by rows and columns. (Each class's last block pays for
/// `np` pixels however few remain, so on 8×8 maps, 3 images a task, the nine
/// classes of rows and columns would do more work than one: 4 corners of 3
/// pixels.) A tap's offset is `coord` rows of `row_len` floats plus `coord`
/// columns of `cb`.
fn classes<'p>(plan: &'p Plan, row_len: usize, cb: usize, np: usize, images: usize) -> Vec<Class> {
    type Key<'a> = (&'a [usize], &'a [usize]);
    let (rows, cols) = (&plan.rows, &plan.cols);
    let keys: [&dyn Fn(usize, usize) -> Key<'p>; 4] = [
        &|oy, ox| (&rows.all[oy], &cols.all[ox]),
        &|oy, ox| (&rows.inside[oy], &cols.all[ox]),
        &|oy, ox| match rows.inside[oy] == rows.all[oy] {
            true => (&rows.all[oy], &cols.inside[ox]),
            false => (&rows.inside[oy], &cols.all[ox]),
        },
        &|oy, ox| (&rows.inside[oy], &cols.inside[ox]),
    ];
    let out_w = cols.base.len();
    let grouped = keys.iter().map(|key| {
        let mut groups: Vec<(Key<'p>, Vec<usize>)> = Vec::new();
        for q in 0..plan.pixels() {
            let k = key(q / out_w, q % out_w);
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
    let k_w = cols.coord.len();
    groups
        .into_iter()
        .map(|((ky, kx), pixels)| Class {
            taps: ky
                .iter()
                .flat_map(|&ky| {
                    kx.iter().map(move |&kx| {
                        let offset = rows.coord[ky] * row_len + cols.coord[kx] * cb;
                        (ky * k_w + kx, offset)
                    })
                })
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
    use super::{Class, Layout, NC};

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
                        // The same weights of the next block of channels, asked for
                        // ahead: without it a fifth of the samples waited on
                        // these loads. (A hint, never a fault: `wrapping_add`
                        // past the last block.)
                        let next = w_c.wrapping_add(CI * all_taps * w_step) as *const i8;
                        for line in 0..NC * S::LANES / 16 {
                            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                                next.wrapping_add(64 * line),
                            );
                        }
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
        out: (usize, usize),
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        classes: &[Class],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        let images = y.len() / (out.0 * pixel_offsets.len());
        for co in (0..l.c_out).step_by(NC * S::LANES) {
            let groups = (l.c_out - co).div_ceil(S::LANES).min(NC);
            for class in classes {
                // SAFETY: see `run` in the parent module.
                unsafe {
                    task_class::<S, CI, NC, NP>(
                        out,
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
        (c_out, all_taps): (usize, usize),
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
                let out = &mut y[g / p * c_out * p + g % p..];
                for (k, &v) in tile_j[..groups * S::LANES].iter().enumerate() {
                    if co + k < c_out {
                        out[(co + k) * p] = v;
                    }
                }
            }
        }
    }

    /// [task] with AVX-512: 2 vectors of 16 output channels × 12 pixels.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn task_avx512(
        out: (usize, usize),
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        classes: &[Class],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        unsafe { task::<Avx512, 8, NC, 12>(out, l, xl, packed, classes, pixel_offsets, y) }
    }

    /// [task] with AVX2 + FMA: 2 vectors of 8 output channels × 6 pixels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn task_avx2(
        out: (usize, usize),
        l: &Layout,
        xl: &[f32],
        packed: &[f32],
        classes: &[Class],
        pixel_offsets: &[usize],
        y: &mut [f32],
    ) {
        unsafe { task::<Avx2, 4, NC, 6>(out, l, xl, packed, classes, pixel_offsets, y) }
    }
}
