//! Direct 2-D convolution for stride 1 and no dilation, f32, on x86-64 with
//! AVX-512 or AVX2 + FMA: the forward pass, the input gradient as the forward
//! pass of the flipped, transposed kernel, and the weight gradient.
//!
//! Added to burn-flex by mixsweep (see PATCH.md). The im2col + GEMM path of
//! [conv2d_train](super::conv2d_train) copies every input value k_h·k_w times
//! into a column matrix that the GEMM then packs once more; with the few
//! output channels of a small network (16 at PreActResNet18 width 16) those
//! copies cost more than the multiplications. Here no column matrix exists:
//!
//! - Each image is copied once into a zero-padded buffer whose rows are
//!   `pw = out_w + k_w − 1` wide. Output pixel `q = oy·pw + ox` of that
//!   padded grid needs input `q + ky·pw + kx` for kernel tap (ky, kx), so a run
//!   of consecutive `q` reads a run of consecutive inputs for every tap, across
//!   row ends too. The `k_w − 1` pixels a row computes beyond `out_w` are
//!   thrown away (6% of the work at 32 px, 20% at 8 px). Where that waste
//!   or many channels make im2col + GEMM the faster, it keeps the shape
//!   (see [prefers_direct]).
//! - A register block of [Isa::block] output channels × `V` consecutive
//!   pixels is accumulated over input channels and taps: per tap, `V / lanes`
//!   vector loads of the input, one broadcast weight per channel, and one FMA
//!   per channel and vector. Weights are packed so a block's are contiguous.
//!
//! **Determinism.** Every output value of the forward pass and the input
//! gradient is one chain of fused multiply-adds over (input channel, ky, kx)
//! in that order, computed by one thread; the vector width only decides how
//! many pixels run side by side. So they are the same bits on any number of
//! threads and with AVX-512 or AVX2. The weight gradient is the same bits on
//! any number of threads (see [weight_grad]).

use alloc::vec;
use alloc::vec::Vec;
use core::mem::MaybeUninit;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

use super::conv2d_train::{
    Conv2dShape, add_partials, flipped_transposed, partial_layout, partial_sums,
};

/// The instruction set the kernel runs on, detected once at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// 16-lane registers: blocks of 8 channels × 48 pixels (24 accumulators:
    /// 11 loads per 24 fused multiply-adds, against 10 per 16 with 32 pixels,
    /// which mixsweep measured 7–8% slower on 64→64 at 32×32 and 128→128 at
    /// 16×16, batch 100, 2 threads: forward 22.3, 22.2 → 20.7, 20.5 ms).
    Avx512,
    /// 8-lane registers: blocks of 4 channels × 16 pixels (8 accumulators).
    Avx2,
}

impl Isa {
    /// The best the CPU offers, or `None`: not x86-64, neither feature, or
    /// the environment variable `BURN_FLEX_DIRECT_CONV=0` (which lets a
    /// benchmark time the im2col + GEMM path in the same build).
    /// `BURN_FLEX_DIRECT_CONV=avx2` takes AVX2 + FMA over AVX-512, so the
    /// tests can check both kernels on one CPU. Read once.
    pub(super) fn detect() -> Option<Self> {
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        {
            static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
            *ISA.get_or_init(|| {
                let choice = std::env::var("BURN_FLEX_DIRECT_CONV").unwrap_or_default();
                if choice == "0" {
                    return None;
                }
                if choice != "avx2" && std::arch::is_x86_feature_detected!("avx512f") {
                    return Some(Self::Avx512);
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    return Some(Self::Avx2);
                }
                None
            })
        }
        #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
        None
    }

    /// Output channels per register block.
    fn block(self) -> usize {
        match self {
            Self::Avx512 => 8,
            Self::Avx2 => 4,
        }
    }

    /// Pixels per register block.
    fn pixels(self) -> usize {
        match self {
            Self::Avx512 => 48,
            Self::Avx2 => 16,
        }
    }
}

/// An undilated, ungrouped convolution with the same stride in both
/// dimensions, laid out for the direct kernel: padding before each dimension
/// (the padding after is implied by the output size) and the padded grid's
/// sizes.
///
/// With stride `s > 1` (mixsweep patch), each channel of the padded input is
/// stored as `s²` phases: phase `(a, b)` holds the padded pixels at rows
/// `s·i + a` and columns `s·j + b`, in rows of `pw` floats. Tap `(ky, kx)` of
/// output pixel `q = oy·pw + ox` then reads phase `(ky mod s, kx mod s)` at
/// `q + (ky div s)·pw + kx div s`: consecutive outputs still read consecutive
/// inputs, and the stride-1 kernels run unchanged on these offsets.
#[derive(Clone, Copy, Debug)]
struct Direct {
    isa: Isa,
    stride: usize,
    c_in: usize,
    c_out: usize,
    in_h: usize,
    in_w: usize,
    k_h: usize,
    k_w: usize,
    pad_top: usize,
    pad_left: usize,
    out_h: usize,
    out_w: usize,
}

impl Direct {
    /// Width of a padded row (of one phase when the stride is above 1).
    fn pw(&self) -> usize {
        self.out_w + (self.k_w - 1) / self.stride
    }

    /// Padded-grid pixels computed per output channel: `out_h` rows of `pw`,
    /// rounded up to whole register blocks.
    fn q_len(&self) -> usize {
        (self.out_h * self.pw()).next_multiple_of(self.isa.pixels())
    }

    /// Floats per phase of a channel of the padded input: every row the
    /// kernel reads, including the last block's overhang.
    fn phase_len(&self) -> usize {
        self.q_len() + (self.k_h - 1) / self.stride * self.pw() + (self.k_w - 1) / self.stride
    }

    /// Floats per channel of the padded input: `stride²` phases.
    fn plane(&self) -> usize {
        self.stride * self.stride * self.phase_len()
    }

    /// Output channels rounded up to whole register blocks.
    fn c_out_blocks(&self) -> usize {
        self.c_out.div_ceil(self.isa.block())
    }

    /// Offsets of the kernel taps in a channel of the padded input, in
    /// (ky, kx) order.
    fn tap_offsets(&self) -> Vec<usize> {
        let (s, pw, phase_len) = (self.stride, self.pw(), self.phase_len());
        (0..self.k_h)
            .flat_map(|ky| {
                (0..self.k_w)
                    .map(move |kx| ((ky % s) * s + kx % s) * phase_len + ky / s * pw + kx / s)
            })
            .collect()
    }

    /// Copies image `x` (`[c_in, in_h, in_w]`) into `xp` (`c_in · plane`
    /// floats, zero). Input rows and columns that no output reads are left out.
    fn pad(&self, x: &[f32], xp: &mut [f32]) {
        if self.stride > 1 {
            return self.pad_phases(x, xp);
        }
        let (pw, plane) = (self.pw(), self.plane());
        let rows = self.out_h + self.k_h - 1;
        let cols = self.in_w.min(pw.saturating_sub(self.pad_left));
        for ci in 0..self.c_in {
            for r in 0..self.in_h.min(rows.saturating_sub(self.pad_top)) {
                let src = &x[(ci * self.in_h + r) * self.in_w..][..cols];
                let dst = ci * plane + (r + self.pad_top) * pw + self.pad_left;
                xp[dst..dst + cols].copy_from_slice(src);
            }
        }
    }

    /// [Direct::pad] for a stride above 1: each input pixel goes to its
    /// phase (see [Direct]).
    fn pad_phases(&self, x: &[f32], xp: &mut [f32]) {
        let (s, pw, phase_len, plane) = (self.stride, self.pw(), self.phase_len(), self.plane());
        // The padded rows and columns any output reads.
        let rows = (self.out_h - 1) * s + self.k_h;
        let cols = (self.out_w - 1) * s + self.k_w;
        let r_end = self.in_h.min(rows.saturating_sub(self.pad_top));
        let c_end = self.in_w.min(cols.saturating_sub(self.pad_left));
        for ci in 0..self.c_in {
            for r in 0..r_end {
                let src = &x[(ci * self.in_h + r) * self.in_w..][..c_end];
                let pr = r + self.pad_top;
                let row = ci * plane + (pr % s) * s * phase_len + pr / s * pw;
                for b in 0..s {
                    // Input columns c with (c + pad_left) mod s = b, from the first.
                    let first = (b + s - self.pad_left % s) % s;
                    let dst = &mut xp[row + b * phase_len..][..pw];
                    let j0 = (first + self.pad_left) / s;
                    for (d, &v) in dst[j0..].iter_mut().zip(src.iter().skip(first).step_by(s)) {
                        *d = v;
                    }
                }
            }
        }
    }

    /// Copies the output gradient of one image (`[c_out, out_h, out_w]`) onto
    /// the padded grid, `dyp` (`c_out_blocks · block · q_len` floats, zero):
    /// the pixels past `out_w` in each row stay 0, so they add nothing.
    fn lay_out(&self, dy: &[f32], dyp: &mut [f32]) {
        let (pw, q_len) = (self.pw(), self.q_len());
        for co in 0..self.c_out {
            for oy in 0..self.out_h {
                dyp[co * q_len + oy * pw..][..self.out_w]
                    .copy_from_slice(&dy[(co * self.out_h + oy) * self.out_w..][..self.out_w]);
            }
        }
    }

    /// Floats of one image's padded output grid, whole register blocks of
    /// channels.
    fn grid_len(&self) -> usize {
        self.c_out_blocks() * self.isa.block() * self.q_len()
    }

    /// `w` (`[c_out, c_in, k_h, k_w]`) as `[c_out block, c_in, tap, channel
    /// of the block]`, zero for the channels past `c_out` in the last block.
    fn pack_weights(&self, w: &[f32]) -> Vec<f32> {
        let (cb, taps) = (self.isa.block(), self.k_h * self.k_w);
        let mut packed = vec![0.0; self.c_out_blocks() * self.c_in * taps * cb];
        for co in 0..self.c_out {
            for ci in 0..self.c_in {
                for t in 0..taps {
                    packed[((co / cb * self.c_in + ci) * taps + t) * cb + co % cb] =
                        w[(co * self.c_in + ci) * taps + t];
                }
            }
        }
        packed
    }

    /// Convolves one padded image into `y` (`[c_out, out_h, out_w]`), using
    /// `yp` as the padded-grid output; `offsets` are [Direct::tap_offsets].
    fn image(
        &self,
        xp: &[f32],
        packed: &[f32],
        offsets: &[usize],
        yp: &mut Vec<f32>,
        y: &mut [MaybeUninit<f32>],
    ) {
        let q_len = self.q_len();
        // The kernels store every float of the grid: no need to zero it again.
        if yp.len() != self.grid_len() {
            yp.clear();
            yp.resize(self.grid_len(), 0.0);
        }
        assert!(xp.len() >= self.c_in * self.plane(), "direct conv: input");
        assert!(
            offsets.len() == self.k_h * self.k_w
                && offsets.iter().all(|&o| o + q_len <= self.plane()),
            "direct conv: tap offsets"
        );
        assert!(packed.len() >= self.c_out_blocks() * self.c_in * offsets.len() * self.isa.block());
        // SAFETY: the kernels read `xp` at `ci · plane + q + offset + i` for
        // `q + i < q_len` and `offset + q_len ≤ plane` (asserted above), below
        // `c_in · plane`; `packed` within the length
        // asserted above; and write `yp` within `c_out_blocks · block · q_len`.
        // The instruction set was detected on this CPU.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            match self.isa {
                Isa::Avx512 => x86::image_avx512(self, xp, packed, offsets, yp),
                Isa::Avx2 => x86::image_avx2(self, xp, packed, offsets, yp),
            }
        }
        // Every float of `y` is written here, once: c_out · out_h rows of out_w.
        assert_eq!(
            y.len(),
            self.c_out * self.out_h * self.out_w,
            "direct conv: output"
        );
        let pw = self.pw();
        for co in 0..self.c_out {
            for oy in 0..self.out_h {
                let row = &mut y[(co * self.out_h + oy) * self.out_w..][..self.out_w];
                for (o, &v) in row
                    .iter_mut()
                    .zip(&yp[co * q_len + oy * pw..][..self.out_w])
                {
                    o.write(v);
                }
            }
        }
    }

    /// The whole batch: `x` `[batch, c_in, in_h, in_w]` → `[batch, c_out,
    /// out_h, out_w]`, images in parallel when rayon is on.
    fn run(&self, batch: usize, x: &[f32], w: &[f32]) -> Vec<f32> {
        let packed = self.pack_weights(w);
        let offsets = self.tap_offsets();
        let per_in = self.c_in * self.in_h * self.in_w;
        let per_out = self.c_out * self.out_h * self.out_w;
        // Written once, image by image, not zeroed first (mixsweep patch).
        let mut y = Vec::with_capacity(batch * per_out);
        if per_out == 0 {
            return y;
        }
        let work = |buffers: &mut (Vec<f32>, Vec<f32>),
                    (b, y_image): (usize, &mut [MaybeUninit<f32>])| {
            let (xp, yp) = buffers;
            let xp = padding_kept(xp, self.c_in * self.plane());
            self.pad(&x[b * per_in..(b + 1) * per_in], xp);
            self.image(xp, &packed, &offsets, yp, y_image);
        };
        let slots = &mut y.spare_capacity_mut()[..batch * per_out];
        #[cfg(feature = "rayon")]
        slots
            .par_chunks_mut(per_out)
            .enumerate()
            .for_each_init(|| (Vec::new(), Vec::new()), work);
        #[cfg(not(feature = "rayon"))]
        {
            let mut buffers = (Vec::new(), Vec::new());
            slots
                .chunks_mut(per_out)
                .enumerate()
                .for_each(|item| work(&mut buffers, item));
        }
        // SAFETY: the `batch` chunks of `per_out` slots were each written in
        // full by `image` (which asserts the size and writes every slot).
        unsafe { y.set_len(batch * per_out) };
        y
    }
}

/// The three passes of a convolution, which prefer the direct kernel on
/// different shapes (see [prefers_direct]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

/// Whether the direct kernel beats im2col + GEMM (the `gemm` crate with its
/// AVX-512 kernels, burn-flex's `x86-v4` feature) for `pass` on `s`.
/// Measured by `mixsweep bench` on an AVX-512 Xeon, PreActResNet18 at batch
/// 100, ms direct against GEMM on 1 thread (2 threads alike):
///
/// - Rows of 32 and 16 px: direct wins, except the weight gradient with many
///   channels (128→128 at 16×16: 71.9 against 67.1).
/// - Rows of 8 px: GEMM wins with many channels (256→256: forward 73.7
///   against 52.5, input gradient 77.2 against 61.0, weight gradient 114.5
///   against 68.2); with 64 channels only the forward is still faster
///   direct (4.75 against 5.94; gradients 5.84 against 5.38, 7.98 against
///   7.23).
/// - Rows of 4 px: the padded grid wastes a third of the work and GEMM wins
///   (512→512 forward: 97.8 direct against 87.7 with the gemm crate's AVX2
///   kernels, 56.6 with its AVX-512 ones).
///
/// CPUs with AVX2 but not AVX-512 take the same rule, not measured there.
fn prefers_direct(pass: Pass, s: &Conv2dShape) -> bool {
    let many_channels = s.c_in * s.c_out >= 128 * 128;
    if s.stride[0] > 1 {
        return pass != Pass::InputGrad && s.out_w >= 16 && s.c_in * s.c_out <= 64 * 64;
    }
    match pass {
        Pass::Forward => s.out_w >= 16 || (s.out_w >= 8 && s.c_in * s.c_out <= 64 * 64),
        Pass::InputGrad => s.out_w >= 16,
        Pass::WeightGrad => s.out_w >= 32 || (s.out_w >= 16 && !many_channels),
    }
}

/// The direct layout of `s` for `pass`, when the direct kernel applies:
/// stride 1, no dilation, one group, a kernel larger than 1×1 (a 1×1
/// convolution is a plain GEMM already), a shape where it is the faster
/// ([prefers_direct]), and a CPU with AVX-512 or AVX2 + FMA.
fn direct(pass: Pass, s: &Conv2dShape) -> Option<Direct> {
    let applies = s.groups == 1
        && s.stride[0] == s.stride[1]
        && (1..=2).contains(&s.stride[0])
        && (s.stride[0] == 1 || pass != Pass::InputGrad)
        && s.dilation == [1, 1]
        && s.k_h * s.k_w > 1
        && s.out_h > 0
        && s.c_in > 0
        && prefers_direct(pass, s);
    if !applies {
        return None;
    }
    Some(Direct {
        isa: Isa::detect()?,
        stride: s.stride[0],
        c_in: s.c_in,
        c_out: s.c_out,
        in_h: s.in_h,
        in_w: s.in_w,
        k_h: s.k_h,
        k_w: s.k_w,
        pad_top: s.padding[0],
        pad_left: s.padding[1],
        out_h: s.out_h,
        out_w: s.out_w,
    })
}

/// The weight gradient's tap offsets in threes (one register block each),
/// the last three filled up with the first tap, whose sums the kernels drop.
pub(super) fn in_threes(taps: &[usize]) -> Vec<[usize; 3]> {
    taps.chunks(3)
        .map(|c| [0, 1, 2].map(|i| c.get(i).copied().unwrap_or(taps[0])))
        .collect()
}

/// The first `len` floats of `buffer`, grown with zeros if shorter. The
/// padding of a padded grid is zero this way without zeroing it for every
/// image: [Direct::pad] and [Direct::lay_out] write the same positions of
/// every image of a convolution, so those they never write stay the zeros
/// they got when the buffer grew.
fn padding_kept(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// The forward convolution without bias, or `None` where the direct kernel
/// does not apply (the caller then takes im2col + GEMM).
pub fn forward(s: &Conv2dShape, x: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    Some(direct(Pass::Forward, s)?.run(s.batch, x, w))
}

/// The input gradient, as the forward convolution of `dy` by the kernel
/// flipped in both dimensions with input and output channels exchanged,
/// padded by `k − 1 − padding` before; `None` where that padding would be
/// negative or the direct kernel does not apply.
pub fn x_grad(s: &Conv2dShape, w: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    let d = direct(Pass::InputGrad, s)?;
    let t = s.input_grad_as_forward()?;
    let transposed = Direct {
        c_in: t.c_in,
        c_out: t.c_out,
        in_h: t.in_h,
        in_w: t.in_w,
        pad_top: t.padding[0],
        pad_left: t.padding[1],
        out_h: t.out_h,
        out_w: t.out_w,
        ..d
    };
    Some(transposed.run(s.batch, dy, &flipped_transposed(s, w)))
}

/// A weight-gradient group holds at least this many padded-grid pixels
/// (images × `q_len`), so that the lane sums at the end of a register block
/// are few against its multiply-adds even on 4×4 feature maps.
const MIN_GROUP_PIXELS: usize = 512;

/// At most this many partial sums of the weight gradient (see [weight_grad]);
/// together they take at most conv2d_train's `PARTIAL_BUDGET` floats.
const MAX_PARTIALS: usize = 16;

/// The weight gradient, `dW[co, ci, ky, kx] = Σ_images Σ_q dy[co, q] ·
/// x[ci, q + ky·pw + kx]` on the padded grid, or `None` where the direct
/// kernel does not apply.
///
/// The batch is cut into groups of images (enough pixels per group for
/// [MIN_GROUP_PIXELS]) and the groups into a number of partial sums fixed by
/// the shapes alone; each partial is summed by one thread, group by group,
/// and the partials are added in order. Within a group, a register block of
/// output channels × 3 taps accumulates vectors over every pixel of every
/// image, then sums its lanes. So the bits do not depend on the number of
/// threads (they may on the vector width: AVX-512 and AVX2 sum 16 and 8
/// lanes).
pub fn weight_grad(s: &Conv2dShape, x: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    let d = direct(Pass::WeightGrad, s)?;
    let w_len = s.w_len();
    if s.batch == 0 || w_len == 0 {
        return Some(vec![0.0; w_len]);
    }
    let group = MIN_GROUP_PIXELS.div_ceil(d.q_len()).clamp(1, s.batch);
    let groups = s.batch.div_ceil(group);
    let (groups_per_partial, partials) = partial_layout(groups, MAX_PARTIALS, w_len);
    let (per_in, per_out) = (s.c_in * s.in_pixels(), s.c_out * s.out_pixels());
    let (x_len, dy_len) = (d.c_in * d.plane(), d.grid_len());
    let tap_groups = in_threes(&d.tap_offsets());
    let mut sums = partial_sums(partials, w_len, |sum, len| sum.resize(len, 0.0));
    let partial = |buffers: &mut (Vec<f32>, Vec<f32>), (index, sum): (usize, &mut Vec<f32>)| {
        let (xp, dyp) = buffers;
        let first_group = index * groups_per_partial;
        for g in first_group..((index + 1) * groups_per_partial).min(groups) {
            let first = g * group;
            let images = group.min(s.batch - first);
            let xp = padding_kept(xp, images * x_len);
            let dyp = padding_kept(dyp, images * dy_len);
            for i in 0..images {
                let b = first + i;
                d.pad(&x[b * per_in..(b + 1) * per_in], &mut xp[i * x_len..]);
                d.lay_out(&dy[b * per_out..(b + 1) * per_out], &mut dyp[i * dy_len..]);
            }
            // SAFETY: `xp` and `dyp` hold `images` padded images each, of
            // `x_len` and `dy_len` floats, which bound every read (see
            // `Direct::image`); `sum` has `w_len` floats and the kernels write
            // `(co · c_in + ci) · taps + t` for co < c_out, ci < c_in,
            // t < taps only. The instruction set was detected on this CPU.
            unsafe {
                #[cfg(target_arch = "x86_64")]
                match d.isa {
                    Isa::Avx512 => x86::weight_grad_avx512(&d, xp, dyp, images, &tap_groups, sum),
                    Isa::Avx2 => x86::weight_grad_avx2(&d, xp, dyp, images, &tap_groups, sum),
                }
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
    Some(add_partials(sums))
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    //! The register-blocked kernel, generic over the vector registers and
    //! compiled once per instruction set.

    use super::Direct;
    use core::arch::x86_64::*;

    /// The vector operations the kernel needs.
    pub(in crate::ops) trait Simd {
        type V: Copy;
        const LANES: usize;
        unsafe fn zero() -> Self::V;
        unsafe fn load(p: *const f32) -> Self::V;
        unsafe fn store(p: *mut f32, v: Self::V);
        unsafe fn splat(p: *const f32) -> Self::V;
        /// `a · b + c`, rounded once.
        unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
        /// The sum of the lanes, in an order fixed by the instruction set.
        unsafe fn sum(v: Self::V) -> f32;
    }

    pub(in crate::ops) struct Avx512;
    pub(in crate::ops) struct Avx2;

    impl Simd for Avx512 {
        type V = __m512;
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> __m512 {
            unsafe { _mm512_set1_ps(*p) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sum(v: __m512) -> f32 {
            unsafe { _mm512_reduce_add_ps(v) }
        }
    }

    impl Simd for Avx2 {
        type V = __m256;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> __m256 {
            unsafe { _mm256_set1_ps(*p) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sum(v: __m256) -> f32 {
            unsafe {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
            }
        }
    }

    /// One register block: `CB` output channels × `NV · LANES` pixels from
    /// `yp`, accumulated over every input channel and tap.
    #[inline(always)]
    unsafe fn block<S: Simd, const CB: usize, const NV: usize>(
        d: &Direct,
        xp: *const f32,
        packed: *const f32,
        offsets: &[usize],
        yp: *mut f32,
        q_len: usize,
    ) {
        let (plane, taps) = (d.plane(), offsets.len());
        unsafe {
            let mut acc = [[S::zero(); NV]; CB];
            for ci in 0..d.c_in {
                let x_c = xp.add(ci * plane);
                let w_c = packed.add(ci * taps * CB);
                for (t, &offset) in offsets.iter().enumerate() {
                    let mut xv = [S::zero(); NV];
                    for (j, v) in xv.iter_mut().enumerate() {
                        *v = S::load(x_c.add(offset + j * S::LANES));
                    }
                    for (c, acc_c) in acc.iter_mut().enumerate() {
                        let w = S::splat(w_c.add(t * CB + c));
                        for (a, &v) in acc_c.iter_mut().zip(&xv) {
                            *a = S::fma(v, w, *a);
                        }
                    }
                }
            }
            for (c, acc_c) in acc.iter().enumerate() {
                for (j, &a) in acc_c.iter().enumerate() {
                    S::store(yp.add(c * q_len + j * S::LANES), a);
                }
            }
        }
    }

    /// Every register block of one padded image.
    #[inline(always)]
    unsafe fn image<S: Simd, const CB: usize, const NV: usize>(
        d: &Direct,
        xp: &[f32],
        packed: &[f32],
        offsets: &[usize],
        yp: &mut [f32],
    ) {
        let (q_len, per_block) = (d.q_len(), d.c_in * offsets.len() * CB);
        for cb in 0..d.c_out_blocks() {
            for q in (0..q_len).step_by(NV * S::LANES) {
                // SAFETY: see `Direct::image`.
                unsafe {
                    block::<S, CB, NV>(
                        d,
                        xp.as_ptr().add(q),
                        packed.as_ptr().add(cb * per_block),
                        offsets,
                        yp.as_mut_ptr().add(cb * CB * q_len + q),
                        q_len,
                    );
                }
            }
        }
    }

    /// [image] with AVX-512: 8 channels × 3 registers of 16 pixels.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn image_avx512(
        d: &Direct,
        xp: &[f32],
        packed: &[f32],
        offsets: &[usize],
        yp: &mut [f32],
    ) {
        unsafe { image::<Avx512, 8, 3>(d, xp, packed, offsets, yp) }
    }

    /// [image] with AVX2 + FMA: 4 channels × 2 registers of 8 pixels.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn image_avx2(
        d: &Direct,
        xp: &[f32],
        packed: &[f32],
        offsets: &[usize],
        yp: &mut [f32],
    ) {
        unsafe { image::<Avx2, 4, 2>(d, xp, packed, offsets, yp) }
    }

    /// One weight-gradient register block: output channels `[co, co + CB)`
    /// (those below `c_out`) × input channel `ci` × three taps, summed over
    /// every pixel of `images` padded images and added into `sum`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn weight_block<S: Simd, const CB: usize>(
        d: &Direct,
        xp: *const f32,
        dyp: *const f32,
        images: usize,
        co: usize,
        ci: usize,
        taps: [usize; 3],
        first_tap: usize,
        sum: &mut [f32],
    ) {
        let (q_len, x_len, dy_len) = (d.q_len(), d.c_in * d.plane(), d.grid_len());
        let n_taps = d.k_h * d.k_w;
        unsafe {
            let mut acc = [[S::zero(); 3]; CB];
            for i in 0..images {
                let x = xp.add(i * x_len + ci * d.plane());
                let dy = dyp.add(i * dy_len + co * q_len);
                for q in (0..q_len).step_by(S::LANES) {
                    let xv = taps.map(|t| S::load(x.add(q + t)));
                    for (c, acc_c) in acc.iter_mut().enumerate() {
                        let g = S::load(dy.add(c * q_len + q));
                        for (a, &v) in acc_c.iter_mut().zip(&xv) {
                            *a = S::fma(g, v, *a);
                        }
                    }
                }
            }
            for (c, acc_c) in acc.iter().enumerate().take(d.c_out.saturating_sub(co)) {
                for (j, &a) in acc_c.iter().enumerate() {
                    let t = first_tap + j;
                    if t < n_taps {
                        sum[((co + c) * d.c_in + ci) * n_taps + t] += S::sum(a);
                    }
                }
            }
        }
    }

    /// Every weight-gradient block of one group of padded images.
    #[inline(always)]
    unsafe fn weight_grad<S: Simd, const CB: usize>(
        d: &Direct,
        xp: &[f32],
        dyp: &[f32],
        images: usize,
        tap_groups: &[[usize; 3]],
        sum: &mut [f32],
    ) {
        for cb in 0..d.c_out_blocks() {
            for ci in 0..d.c_in {
                for (g, &taps) in tap_groups.iter().enumerate() {
                    // SAFETY: see `weight_grad` in the parent module.
                    unsafe {
                        weight_block::<S, CB>(
                            d,
                            xp.as_ptr(),
                            dyp.as_ptr(),
                            images,
                            cb * CB,
                            ci,
                            taps,
                            3 * g,
                            sum,
                        );
                    }
                }
            }
        }
    }

    /// [weight_grad] with AVX-512: 8 channels × 3 taps of 16 lanes.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_grad_avx512(
        d: &Direct,
        xp: &[f32],
        dyp: &[f32],
        images: usize,
        tap_groups: &[[usize; 3]],
        sum: &mut [f32],
    ) {
        unsafe { weight_grad::<Avx512, 8>(d, xp, dyp, images, tap_groups, sum) }
    }

    /// [weight_grad] with AVX2 + FMA: 4 channels × 3 taps of 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_grad_avx2(
        d: &Direct,
        xp: &[f32],
        dyp: &[f32],
        images: usize,
        tap_groups: &[[usize; 3]],
        sum: &mut [f32],
    ) {
        unsafe { weight_grad::<Avx2, 4>(d, xp, dyp, images, tap_groups, sum) }
    }
}
