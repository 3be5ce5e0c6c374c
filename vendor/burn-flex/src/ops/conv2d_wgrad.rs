//! The weight gradient of a 2-D convolution with the output channels in the
//! vector lanes, f32, on x86-64 with AVX-512 or AVX2 + FMA.
//!
//! Added to burn-flex by mixsweep (see PATCH.md). `dW[co, ci, ky, kx] =
//! Σ_images Σ_(oy, ox) dy[co, oy, ox] · x[ci, oy·s + ky − pad, ox·s + kx − pad]`.
//! The other kernels put pixels in the lanes, so they throw away work on small
//! feature maps (the padded grid's extra columns: a third of it at 4×4) and
//! end every register block with sums across lanes; im2col + GEMM copies each
//! input nine times first. Here each image is laid out once in blocks of
//! channels, channels last within a block (oneDNN's "nChw16c"): the input
//! zero-padded as `[c_in / CI, rows, cols, CI]` and the output gradient as
//! `[c_out / LANES, pixel, LANES]`. A register block holds `CI` input channels × 3 taps,
//! each a vector of `LANES` output channels; per output pixel it loads one
//! vector of the output gradient and does `3·CI` fused multiply-adds, each
//! with one input value broadcast from memory. Every output pixel is real
//! work, whatever the stride, padding or size.
//!
//! **Determinism.** Each lane is one weight's chain of fused multiply-adds
//! over (image, oy, ox) in order, then added into a partial sum; partial sums
//! are fixed by the shapes (not by the vector width) and added in order. So
//! the bits depend on neither the number of threads nor the instruction set.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

use super::conv2d_direct::{Isa, in_threes};
use super::conv2d_train::{Conv2dShape, overwritten, partial_layout, partial_sums};

/// Tasks to aim for in [by_output_channels]: vectors of 16 output channels
/// × partials of the batch.
const TASKS: usize = 8;

/// A group of images holds at least this many output pixels: a register
/// block's work over them should outweigh adding its sums into the partial.
const MIN_GROUP_PIXELS: usize = 256;

/// A convolution's channels-last layout for one instruction set.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    isa: Isa,
    /// Input channels rounded up to whole register blocks ([ci_block]).
    pub(super) c_in: usize,
    /// Output channels rounded up to whole vectors ([lanes]).
    pub(super) c_out: usize,
    /// Rows and columns of the padded input that some output reads.
    pub(super) rows: usize,
    pub(super) cols: usize,
}

impl Layout {
    pub(super) fn new(isa: Isa, s: &Conv2dShape) -> Self {
        let lanes = lanes(isa);
        Self {
            isa,
            c_in: s.c_in.next_multiple_of(ci_block(isa)),
            c_out: s.c_out.next_multiple_of(lanes),
            rows: (s.out_h - 1) * s.stride[0] + s.k_h,
            cols: (s.out_w - 1) * s.stride[1] + s.k_w,
        }
    }

    /// Floats of one laid-out input image.
    pub(super) fn x_len(&self) -> usize {
        self.rows * self.cols * self.c_in
    }

    /// Floats of one laid-out output-gradient image.
    fn dy_len(&self, s: &Conv2dShape) -> usize {
        s.out_h * s.out_w * self.c_out
    }

    /// Offsets of the kernel taps, in (ky, kx) order, in a block of
    /// [ci_block] input channels of a laid-out image.
    fn tap_offsets(&self, s: &Conv2dShape) -> Vec<usize> {
        let cb = ci_block(self.isa);
        (0..s.k_h)
            .flat_map(|ky| (0..s.k_w).map(move |kx| (ky * self.cols + kx) * cb))
            .collect()
    }

    /// Floats of one block of [ci_block] input channels of a laid-out image.
    pub(super) fn x_block(&self) -> usize {
        self.rows * self.cols * ci_block(self.isa)
    }

    /// Copies image `x` (`[c_in, in_h, in_w]`) into `xl` (`[c_in / CI, rows,
    /// cols, CI]`, CI = [ci_block]; zero where padding). Only positions inside
    /// the image are written, the same ones for every image, so the padding
    /// stays zero.
    fn lay_out_x(&self, s: &Conv2dShape, x: &[f32], xl: &mut [f32]) {
        match self.isa {
            Isa::Avx512 => self.lay_out_x_in::<8>(s, x, xl),
            Isa::Avx2 => self.lay_out_x_in::<4>(s, x, xl),
        }
    }

    /// [Layout::lay_out_x] with `CB` = [ci_block]: a whole block of channels
    /// at a time, so each pixel's `CB` values are stored together (mixsweep
    /// measured one channel at a time, one scattered store per value, at 4%
    /// of a width-16 step).
    fn lay_out_x_in<const CB: usize>(&self, s: &Conv2dShape, x: &[f32], xl: &mut [f32]) {
        let [pad_top, pad_left] = s.padding;
        let r_end = s.in_h.min(self.rows.saturating_sub(pad_top));
        let c_end = s.in_w.min(self.cols.saturating_sub(pad_left));
        let plane = s.in_h * s.in_w;
        for first in (0..s.c_in).step_by(CB) {
            let block = &mut xl[first / CB * self.x_block()..][..self.x_block()];
            let channels = CB.min(s.c_in - first);
            for r in 0..r_end {
                let row = ((r + pad_top) * self.cols + pad_left) * CB;
                let dst = &mut block[row..row + c_end * CB];
                let src = &x[first * plane + r * s.in_w..];
                if channels == CB {
                    let rows: [&[f32]; CB] = core::array::from_fn(|k| &src[k * plane..][..c_end]);
                    for (c, pixel) in dst.chunks_exact_mut(CB).enumerate() {
                        for (k, v) in pixel.iter_mut().enumerate() {
                            *v = rows[k][c];
                        }
                    }
                } else {
                    for (c, pixel) in dst.chunks_exact_mut(CB).enumerate() {
                        for (k, v) in pixel[..channels].iter_mut().enumerate() {
                            *v = src[k * plane + c];
                        }
                    }
                }
            }
        }
    }

    /// Every image of `x` (`[batch, c_in, in_h, in_w]`) laid out by
    /// [Layout::lay_out_x], in parallel.
    pub(super) fn lay_out_all_x(&self, s: &Conv2dShape, x: &[f32]) -> Vec<f32> {
        let per_in = s.c_in * s.in_pixels();
        laid_out(s.batch, self.x_len(), |b, xl| {
            self.lay_out_x(s, &x[b * per_in..(b + 1) * per_in], xl)
        })
    }

    /// Copies the output gradient of one image (`[c_out, out_h, out_w]`)
    /// into `dyl` (`[c_out / LANES, pixel, LANES]`; the channels past `c_out`
    /// stay zero).
    fn lay_out_dy(&self, s: &Conv2dShape, dy: &[f32], dyl: &mut [f32]) {
        let (pixels, lanes) = (s.out_h * s.out_w, lanes(self.isa));
        for co in 0..s.c_out {
            let block = &mut dyl[co / lanes * pixels * lanes + co % lanes..];
            for (p, &v) in dy[co * pixels..][..pixels].iter().enumerate() {
                block[p * lanes] = v;
            }
        }
    }
}

/// Output channels per vector.
pub(super) fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
    }
}

/// Input channels per register block (× 3 taps: 24 or 12 accumulators).
pub(super) fn ci_block(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 8,
        Isa::Avx2 => 4,
    }
}

/// Whether this kernel beats the others on `s` (the direct kernel of
/// `conv2d_direct`, im2col + GEMM). Measured by mixsweep's per-shape timings
/// of PreActResNet18 at batch 100 on an AVX-512 Xeon, 2 threads, ms this
/// kernel against the one used before:
///
/// - stride 1, outputs 16 px wide or less: 64→64 at 8×8 1.98 against 3.27,
///   128→128 at 4×4 1.84 against 3.06, 256→256 at 8×8 23.0 against 29.4,
///   512→512 at 4×4 24.3 against 27.9, 128→128 at 16×16 22.3 against 23.5;
/// - stride 1, wider outputs, with 64·64 channels or more: 64→64 at 32×32
///   24.2 against 34.0; with fewer the direct kernel is as fast or faster
///   (16→16: 2.46 against 2.44; 3→16: the 3 channels padded to 8);
/// - stride 2 with outputs 8 px wide or less and few channels (32→64: 1.71
///   against 2.01; 64→128: 1.39 against 1.61), not many (256→512 at 8×8 in:
///   16.2 against 13.9); 16 px wide with 64·64 to 64·128 channels (64→128:
///   13.1 against 17.6; with fewer the direct kernel's phases win, 16→32:
///   2.11 against 2.39);
/// - never 1×1: two of its three taps per register block would be padding.
fn prefers_lanes(s: &Conv2dShape) -> bool {
    let channels = s.c_in * s.c_out;
    s.k_h * s.k_w >= 3
        && match s.stride {
            [1, 1] => s.out_w <= 16 || channels >= 64 * 64,
            [2, 2] => {
                (s.out_w <= 8 && channels <= 64 * 128)
                    || (s.out_w <= 16 && channels > 64 * 64 && channels <= 64 * 128)
            }
            _ => false,
        }
}

/// The weight gradient of an ungrouped, undilated convolution, or `None`
/// where this kernel does not apply (grouped or dilated, a shape where
/// another kernel is the faster ([prefers_lanes]), or no AVX2 + FMA).
///
/// The sums are `[tap, c_in, LANES]` per vector of output channels. On maps
/// of 16×16 or more whose sums are small together ([SMALL_SUMS]) the batch
/// is cut by images ([by_images]), else by output channels
/// ([by_output_channels]); either way the cut is fixed by the shapes and the
/// partial sums of each weight are added in order.
pub fn weight_grad(s: &Conv2dShape, x: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    if s.groups != 1 || s.dilation != [1, 1] || !prefers_lanes(s) {
        return None;
    }
    let isa = Isa::detect()?;
    if s.batch == 0 || s.w_len() == 0 || s.out_h == 0 || s.out_w == 0 {
        return Some(vec![0.0; s.w_len()]);
    }
    let l = Layout::new(isa, s);
    let taps = s.k_h * s.k_w;
    let tap_groups = TapGroup::all(s, &l);
    let k = Kernel {
        isa,
        s,
        l: &l,
        tap_groups: &tap_groups,
        taps,
    };
    Some(if s.out_pixels() >= 256 && s.w_len() <= SMALL_SUMS {
        by_images(&k, x, dy)
    } else {
        by_output_channels(&k, x, dy)
    })
}

/// Weights (unpadded, so the choice is the same whatever the vector width)
/// up to which [weight_grad] cuts by images.
const SMALL_SUMS: usize = 1 << 18;

/// Bytes of laid-out images a group of [by_images] may take, so that its
/// register blocks sweep it from a core's L2 cache.
const GROUP_BYTES: usize = 512 << 10;

/// At most this many partial sums in [by_images].
const MAX_PARTIALS: usize = 16;

/// Three taps of the kernel, one register block: the first's index and the
/// offsets of all three in a block of a laid-out image (the last group
/// filled up with the first tap, whose sums the kernel drops), and the output
/// rows where some of them read inside the input. In the other rows they
/// read only zero padding, whose products would add nothing (not a bit):
/// the kernel skips them, a sixth of the work on 4×4 maps.
#[derive(Clone, Debug)]
struct TapGroup {
    first: usize,
    offsets: [usize; 3],
    rows: Range<usize>,
}

impl TapGroup {
    /// The taps of `s` in threes along the rows of the kernel.
    fn all(s: &Conv2dShape, l: &Layout) -> Vec<Self> {
        let taps = s.k_h * s.k_w;
        in_threes(&l.tap_offsets(s))
            .into_iter()
            .enumerate()
            .map(|(g, offsets)| {
                let first = 3 * g;
                let last = (first + 2).min(taps - 1);
                let ky = first / s.k_w..last / s.k_w + 1;
                let reads_inside = |oy: &usize| {
                    let inside = s.taps_inside(0, *oy);
                    inside.start < ky.end && ky.start < inside.end
                };
                // One run of rows: as `oy` grows, the kernel rows that read
                // inside slide down the kernel without gaps.
                let lo = (0..s.out_h).find(reads_inside).unwrap_or(s.out_h);
                let hi = (lo..s.out_h).rfind(reads_inside).map_or(lo, |oy| oy + 1);
                Self {
                    first,
                    offsets,
                    rows: lo..hi,
                }
            })
            .collect()
    }
}

/// What the register-blocked kernel needs besides the images and the sums.
struct Kernel<'a> {
    isa: Isa,
    s: &'a Conv2dShape,
    l: &'a Layout,
    tap_groups: &'a [TapGroup],
    taps: usize,
}

impl Kernel<'_> {
    /// Adds the gradient of output channels `[co, co + LANES)` over `images`
    /// laid-out images (`xl`, `dyl`) into `sum` (`[tap, c_in, LANES]`).
    fn run(&self, xl: &[f32], dyl: &[f32], images: usize, co: usize, sum: &mut [f32]) {
        let (s, l) = (self.s, self.l);
        assert!(xl.len() >= images * l.x_len() && dyl.len() >= images * l.dy_len(s));
        assert!(co < l.c_out && sum.len() >= self.taps * l.c_in * lanes(self.isa));
        // SAFETY: `xl` and `dyl` hold `images` laid-out images of `x_len` and
        // `dy_len` floats (asserted); the kernel reads a block of CI channels
        // of `xl` at pixel `(oy·s_h)·cols + ox·s_w` plus a tap's offset, times
        // CI, plus a channel below CI: inside the block's `rows · cols · CI`
        // floats, since `rows` and `cols` cover every tap of every output;
        // and one vector of the block of `dyl` that holds `co`, at `pixel ·
        // LANES`. It writes `sum` (asserted `taps · c_in · LANES` floats) at
        // taps below `taps`. The instruction set was detected on this CPU.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            match self.isa {
                Isa::Avx512 => {
                    x86::group_avx512(s, l, xl, dyl, images, co, self.tap_groups, self.taps, sum)
                }
                Isa::Avx2 => {
                    x86::group_avx2(s, l, xl, dyl, images, co, self.tap_groups, self.taps, sum)
                }
            }
        }
    }

    /// Floats of the sums of one vector of output channels.
    fn sum_len(&self) -> usize {
        self.taps * self.l.c_in * lanes(self.isa)
    }

    /// `dW` as `[c_out, c_in, tap]`, from the partial sums `parts(co)` of
    /// output channel `co`, in order, each a `[tap, c_in, LANES]` block from
    /// the offset given.
    fn weights<'s>(&self, parts: impl Fn(usize) -> (&'s [Vec<f32>], usize) + Sync) -> Vec<f32> {
        let (s, taps, lanes) = (self.s, self.taps, lanes(self.isa));
        let mut dw = Vec::new();
        overwritten(&mut dw, s.w_len());
        let weights = |(co, dw_co): (usize, &mut [f32])| {
            let (parts, offset) = parts(co);
            let Some((first, rest)) = parts.split_first() else {
                return dw_co.fill(0.0);
            };
            for ci in 0..s.c_in {
                for t in 0..taps {
                    let at = offset + (t * self.l.c_in + ci) * lanes + co % lanes;
                    let mut total = first[at];
                    for part in rest {
                        total += part[at];
                    }
                    dw_co[ci * taps + t] = total;
                }
            }
        };
        #[cfg(feature = "rayon")]
        dw.par_chunks_mut(s.c_in * taps)
            .enumerate()
            .for_each(weights);
        #[cfg(not(feature = "rayon"))]
        dw.chunks_mut(s.c_in * taps).enumerate().for_each(weights);
        dw
    }
}

/// The batch cut into groups of images (about [GROUP_BYTES] laid out) and
/// the groups into at most [MAX_PARTIALS] partial sums, each of every output
/// channel (`[c_out / LANES][tap, c_in, LANES]`): a thread lays out a group
/// in its own buffers, in cache, and sums it into its partial.
fn by_images(k: &Kernel, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (s, l) = (k.s, k.l);
    let lanes = lanes(k.isa);
    let (x_len, dy_len) = (l.x_len(), l.dy_len(s));
    let (per_in, per_out) = (s.c_in * s.in_pixels(), s.c_out * s.out_pixels());
    // From the unpadded sizes, so that the groups (and so the bits) are the
    // same whatever the vector width.
    let image_bytes = 4 * (l.rows * l.cols * s.c_in + s.out_pixels() * s.c_out);
    let group = (GROUP_BYTES / image_bytes).clamp(1, s.batch);
    let groups = s.batch.div_ceil(group);
    let block_len = k.sum_len();
    let (groups_per_partial, partials) = partial_layout(groups, MAX_PARTIALS, s.w_len());
    let mut sums = partial_sums(partials, l.c_out / lanes * block_len, |sum, len| {
        sum.resize(len, 0.0)
    });
    let partial = |buffers: &mut (Vec<f32>, Vec<f32>), (index, sum): (usize, &mut Vec<f32>)| {
        let (xl, dyl) = buffers;
        // Zeroed once: each image writes the same positions, so the padding
        // stays zero.
        if xl.len() < group * x_len {
            xl.resize(group * x_len, 0.0);
            dyl.resize(group * dy_len, 0.0);
        }
        let last = ((index + 1) * groups_per_partial).min(groups);
        for g in index * groups_per_partial..last {
            let first = g * group;
            let images = group.min(s.batch - first);
            for i in 0..images {
                let b = first + i;
                l.lay_out_x(
                    s,
                    &x[b * per_in..(b + 1) * per_in],
                    &mut xl[i * x_len..][..x_len],
                );
                l.lay_out_dy(
                    s,
                    &dy[b * per_out..(b + 1) * per_out],
                    &mut dyl[i * dy_len..][..dy_len],
                );
            }
            for (block, sum) in sum.chunks_mut(block_len).enumerate() {
                k.run(xl, dyl, images, block * lanes, sum);
            }
        }
    };
    #[cfg(feature = "rayon")]
    sums.par_iter_mut()
        .enumerate()
        .for_each_init(|| (Vec::new(), Vec::new()), partial);
    #[cfg(not(feature = "rayon"))]
    {
        let mut buffers = (Vec::new(), Vec::new());
        sums.iter_mut()
            .enumerate()
            .for_each(|item| partial(&mut buffers, item));
    }
    k.weights(|co| (&sums, co / lanes * block_len))
}

/// The batch laid out once (in parallel), then cut into tasks, one per
/// vector of output channels and partial of the batch: as many partials as
/// it takes to make [TASKS] tasks of 16 output channels. A task sums its
/// output channels over its images, in groups of at least
/// [MIN_GROUP_PIXELS] output pixels, into its own sums: none is larger than
/// one vector of output channels' (`[tap, c_in, LANES]`), however many
/// channels.
fn by_output_channels(k: &Kernel, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (s, l) = (k.s, k.l);
    let lanes = lanes(k.isa);
    let (x_len, dy_len) = (l.x_len(), l.dy_len(s));
    let per_partial = s
        .batch
        .div_ceil(TASKS.div_ceil(s.c_out.div_ceil(16)).min(s.batch));
    let partials = s.batch.div_ceil(per_partial);
    let group = MIN_GROUP_PIXELS
        .div_ceil(s.out_pixels())
        .clamp(1, per_partial);
    let (xl, dyl) = lay_out(s, l, x, dy);
    let mut sums = partial_sums(l.c_out / lanes * partials, k.sum_len(), |sum, len| {
        sum.resize(len, 0.0)
    });
    let task = |(index, sum): (usize, &mut Vec<f32>)| {
        let (co, partial) = (index / partials * lanes, index % partials);
        let end = ((partial + 1) * per_partial).min(s.batch);
        for first in (partial * per_partial..end).step_by(group) {
            let images = group.min(end - first);
            k.run(
                &xl[first * x_len..],
                &dyl[first * dy_len..],
                images,
                co,
                sum,
            );
        }
    };
    #[cfg(feature = "rayon")]
    sums.par_iter_mut().enumerate().for_each(task);
    #[cfg(not(feature = "rayon"))]
    sums.iter_mut().enumerate().for_each(task);
    k.weights(|co| (&sums[co / lanes * partials..][..partials], 0))
}

/// Every image of `x` and `dy` laid out ([Layout::lay_out_x],
/// [Layout::lay_out_dy]).
fn lay_out(s: &Conv2dShape, l: &Layout, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let per_out = s.c_out * s.out_pixels();
    let dyl = laid_out(s.batch, l.dy_len(s), |b, dyl| {
        l.lay_out_dy(s, &dy[b * per_out..(b + 1) * per_out], dyl)
    });
    (l.lay_out_all_x(s, x), dyl)
}

/// `batch` images of `len` floats, each zeroed and then written by
/// `image(index, floats)`, in parallel.
fn laid_out(batch: usize, len: usize, image: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut all = Vec::new();
    overwritten(&mut all, batch * len);
    if len == 0 {
        return all;
    }
    let each = |(b, floats): (usize, &mut [f32])| {
        floats.fill(0.0);
        image(b, floats);
    };
    #[cfg(feature = "rayon")]
    all.par_chunks_mut(len).enumerate().for_each(each);
    #[cfg(not(feature = "rayon"))]
    all.chunks_mut(len).enumerate().for_each(each);
    all
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The register-blocked kernel, generic over the vector registers and
    //! compiled once per instruction set.

    use super::super::conv2d_direct::x86::{Avx2, Avx512, Simd};
    use super::{Conv2dShape, Layout, TapGroup};

    /// One register block: output channels `[co, co + LANES)` × input
    /// channels `[ci, ci + CI)` × three taps, over every output pixel of
    /// `images` laid-out images, added into `sum` (`[tap, c_in, LANES]`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<S: Simd, const CI: usize>(
        s: &Conv2dShape,
        l: &Layout,
        xl: *const f32,
        dyl: *const f32,
        images: usize,
        co: usize,
        ci: usize,
        tap_group: &TapGroup,
        taps: usize,
        sum: &mut [f32],
    ) {
        let (x_len, dy_len) = (l.x_len(), l.dy_len(s));
        let (row_step, col_step) = (s.stride[0] * l.cols * CI, s.stride[1] * CI);
        unsafe {
            let mut acc = [[S::zero(); 3]; CI];
            let rows = tap_group.rows.clone();
            for i in 0..images {
                let first_pixel = co * s.out_h * s.out_w + rows.start * s.out_w * S::LANES;
                let mut g = dyl.add(i * dy_len + first_pixel);
                let x_image = xl.add(i * x_len + ci / CI * l.x_block());
                for oy in rows.clone() {
                    let mut x = x_image.add(oy * row_step);
                    for _ in 0..s.out_w {
                        let gv = S::load(g);
                        for (t, &offset) in tap_group.offsets.iter().enumerate() {
                            for (c, acc_c) in acc.iter_mut().enumerate() {
                                acc_c[t] = S::fma(gv, S::splat(x.add(offset + c)), acc_c[t]);
                            }
                        }
                        g = g.add(S::LANES);
                        x = x.add(col_step);
                    }
                }
            }
            for (t, acc_t) in (tap_group.first..taps).zip(0..3) {
                for (c, acc_c) in acc.iter().enumerate() {
                    let at = sum.as_mut_ptr().add((t * l.c_in + ci + c) * S::LANES);
                    S::store(at, S::add(S::load(at), acc_c[acc_t]));
                }
            }
        }
    }

    /// Every register block of output channels `[co, co + LANES)` over one
    /// group of laid-out images.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn group<S: Simd, const CI: usize>(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        dyl: &[f32],
        images: usize,
        co: usize,
        tap_groups: &[TapGroup],
        taps: usize,
        sum: &mut [f32],
    ) {
        for ci in (0..l.c_in).step_by(CI) {
            for tap_group in tap_groups {
                // SAFETY: see `weight_grad` in the parent module.
                unsafe {
                    block::<S, CI>(
                        s,
                        l,
                        xl.as_ptr(),
                        dyl.as_ptr(),
                        images,
                        co,
                        ci,
                        tap_group,
                        taps,
                        sum,
                    );
                }
            }
        }
    }

    /// [group] with AVX-512: 16 output channels × 8 input channels × 3 taps.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn group_avx512(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        dyl: &[f32],
        images: usize,
        co: usize,
        tap_groups: &[TapGroup],
        taps: usize,
        sum: &mut [f32],
    ) {
        unsafe { group::<Avx512, 8>(s, l, xl, dyl, images, co, tap_groups, taps, sum) }
    }

    /// [group] with AVX2 + FMA: 8 output channels × 4 input channels × 3 taps.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn group_avx2(
        s: &Conv2dShape,
        l: &Layout,
        xl: &[f32],
        dyl: &[f32],
        images: usize,
        co: usize,
        tap_groups: &[TapGroup],
        taps: usize,
        sum: &mut [f32],
    ) {
        unsafe { group::<Avx2, 4>(s, l, xl, dyl, images, co, tap_groups, taps, sum) }
    }
}
