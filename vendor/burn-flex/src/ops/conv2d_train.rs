//! T 2-D convolution for training on NCHW tensors: the forward pass and both
//! gradients, as im2col + GEMM over chunks of images.
//!
//! Added to burn-flex by mixsweep (see PATCH.md). Before, Flex had no
//! `conv2d_x_backward` or `conv2d_weight_backward`, so autodiff fell back to
//! burn-backend's generic versions: the input gradient as a transposed
//! convolution with a scalar col2im, the weight gradient as a convolution with
//! batch and channels swapped (GEMMs a few columns wide). Here all three are
//! one GEMM per chunk of images against an im2col matrix:
//!
//! - forward: `y[co, p] = Σ_k W[co, k] · col[k, p]`;
//! - input gradient: `dcol = Wᵀ · dy`, then col2im (the adjoint of im2col);
//! - weight gradient: `dW = Σ_chunks dy · colᵀ`.
//!
//! Chunks are images processed together so that a GEMM has at least
//! [MIN_COLUMNS] columns even when the feature map is 4×4. Threads take
//! whole chunks (rayon) and each GEMM runs on one thread.
//!
//! **Determinism.** Every output element is computed by one thread in an order
//! fixed by the shapes alone. The weight gradient sums the batch in a fixed
//! number of partial sums (chosen from the shapes, never from the thread
//! count), each over a fixed range of images, and adds the partials in order.
//! So results are bit-identical whatever the number of threads.
//!
//! Stride-1 f32 convolutions go first to the direct kernels of
//! [conv2d_direct](super::conv2d_direct) (`ConvFloat::direct_*`), which need
//! no column matrix; this im2col path serves what they decline.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

/// A chunk's GEMM gets at least this many columns (output pixels × images).
const MIN_COLUMNS: usize = 256;

/// Upper bound, in floats, on the memory the weight gradient's partial sums
/// may take together (16 Mi floats = 64 MiB).
const PARTIAL_BUDGET: usize = 16 << 20;

/// At most this many partial sums of the weight gradient: enough to keep many
/// cores busy, few enough that adding them up costs little.
const MAX_PARTIALS: usize = 64;

/// The float types the kernels run on; `gemm` dispatches on them.
pub trait ConvFloat:
    Copy + Send + Sync + 'static + core::ops::Add<Output = Self> + core::ops::AddAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;

    /// The forward pass by [conv2d_direct](super::conv2d_direct), or `None`
    /// where it does not apply (then im2col + GEMM).
    fn direct_forward(_s: &Conv2dShape, _x: &[Self], _w: &[Self]) -> Option<Vec<Self>> {
        None
    }

    /// The input gradient by [conv2d_direct](super::conv2d_direct), or `None`
    /// where it does not apply (then GEMM + col2im).
    fn direct_x_grad(_s: &Conv2dShape, _w: &[Self], _dy: &[Self]) -> Option<Vec<Self>> {
        None
    }

    /// The weight gradient by [conv2d_direct](super::conv2d_direct), or
    /// `None` where it does not apply (then im2col + GEMM).
    fn direct_weight_grad(_s: &Conv2dShape, _x: &[Self], _dy: &[Self]) -> Option<Vec<Self>> {
        None
    }
}

impl ConvFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;

    fn direct_forward(s: &Conv2dShape, x: &[Self], w: &[Self]) -> Option<Vec<Self>> {
        super::conv2d_lanes::forward(s, x, w).or_else(|| super::conv2d_direct::forward(s, x, w))
    }

    fn direct_x_grad(s: &Conv2dShape, w: &[Self], dy: &[Self]) -> Option<Vec<Self>> {
        super::conv2d_lanes::x_grad(s, w, dy).or_else(|| super::conv2d_direct::x_grad(s, w, dy))
    }

    fn direct_weight_grad(s: &Conv2dShape, x: &[Self], dy: &[Self]) -> Option<Vec<Self>> {
        super::conv2d_wgrad::weight_grad(s, x, dy)
            .or_else(|| super::conv2d_direct::weight_grad(s, x, dy))
    }
}

impl ConvFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// The geometry of one 2-D convolution (`groups == 1`, NCHW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub k_h: usize,
    /// Kernel width.
    pub k_w: usize,
    /// Stride (height, width).
    pub stride: [usize; 2],
    /// Zero padding before each dimension (height, width). The padding after
    /// it, which may differ, is implied by `out_h` and `out_w`.
    pub padding: [usize; 2],
    /// Dilation (height, width).
    pub dilation: [usize; 2],
    /// Channel groups: group `g` convolves input channels
    /// `[g·c_in/groups, (g+1)·c_in/groups)` into the matching output channels.
    pub groups: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Conv2dShape {
    /// Rows of the im2col matrix of one group: one per (input channel of the
    /// group, kernel row, kernel column).
    pub fn col_rows(&self) -> usize {
        self.c_in / self.groups * self.k_h * self.k_w
    }

    /// The convolution of one group, as a convolution of its own.
    fn group(&self) -> Self {
        Self {
            c_in: self.c_in / self.groups,
            c_out: self.c_out / self.groups,
            groups: 1,
            ..*self
        }
    }

    /// The input gradient of this convolution (stride 1, undilated,
    /// ungrouped) as a forward convolution of the output gradient by
    /// [flipped_transposed] weights: channels and sizes exchanged, padded by
    /// `k − 1 − padding` before; `None` where that padding would be negative.
    pub fn input_grad_as_forward(&self) -> Option<Conv2dShape> {
        Some(Conv2dShape {
            c_in: self.c_out,
            c_out: self.c_in,
            in_h: self.out_h,
            in_w: self.out_w,
            padding: [
                (self.k_h - 1).checked_sub(self.padding[0])?,
                (self.k_w - 1).checked_sub(self.padding[1])?,
            ],
            out_h: self.in_h,
            out_w: self.in_w,
            ..*self
        })
    }

    /// The kernel rows (`axis` 0) or columns (`axis` 1) that read inside the
    /// input, not its zero padding, at output row or column `o` (undilated).
    pub fn taps_inside(&self, axis: usize, o: usize) -> Range<usize> {
        let (k, size) = match axis {
            0 => (self.k_h, self.in_h),
            _ => (self.k_w, self.in_w),
        };
        // Tap `j` reads padded position `o · stride + j`: inside from
        // `padding` to `padding + size`.
        let first = o * self.stride[axis];
        let lo = self.padding[axis].saturating_sub(first).min(k);
        let hi = (self.padding[axis] + size).saturating_sub(first).min(k);
        lo..hi.max(lo)
    }

    /// Pixels of one output feature map.
    pub fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Pixels of one input feature map.
    pub fn in_pixels(&self) -> usize {
        self.in_h * self.in_w
    }

    /// Elements of the input tensor.
    pub fn x_len(&self) -> usize {
        self.batch * self.c_in * self.in_pixels()
    }

    /// Elements of the weight tensor.
    pub fn w_len(&self) -> usize {
        self.c_out * self.col_rows()
    }

    /// Elements of the output tensor.
    pub fn y_len(&self) -> usize {
        self.batch * self.c_out * self.out_pixels()
    }

    /// A 1×1 convolution with stride 1 and no padding: the im2col matrix of an
    /// image is the image itself.
    fn is_pointwise(&self) -> bool {
        self.k_h == 1 && self.k_w == 1 && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Images per chunk: enough for [MIN_COLUMNS] GEMM columns.
    fn images_per_chunk(&self) -> usize {
        MIN_COLUMNS
            .div_ceil(self.out_pixels().max(1))
            .clamp(1, self.batch.max(1))
    }
}

/// A strided matrix view for the GEMM wrapper: element (r, c) is at
/// `offset + r * row_stride + c * col_stride`.
#[derive(Clone, Copy)]
struct Strided {
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl Strided {
    fn row_major(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// One past the largest index the view touches.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`, on one thread.
fn gemm<T: ConvFloat>(
    dst: &mut [T],
    dst_view: Strided,
    accumulate: bool,
    lhs: &[T],
    lhs_view: Strided,
    rhs: &[T],
    rhs_view: Strided,
) {
    let (m, k, n) = (lhs_view.rows, lhs_view.cols, rhs_view.cols);
    assert_eq!(rhs_view.rows, k, "gemm: inner dimensions differ");
    assert_eq!(
        (dst_view.rows, dst_view.cols),
        (m, n),
        "gemm: bad output shape"
    );
    assert!(dst_view.extent() <= dst.len(), "gemm: output out of bounds");
    assert!(lhs_view.extent() <= lhs.len(), "gemm: lhs out of bounds");
    assert!(rhs_view.extent() <= rhs.len(), "gemm: rhs out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[r * dst_view.row_stride + c * dst_view.col_stride] = T::ZERO;
                }
            }
        }
        return;
    }
    // SAFETY: the asserts above keep every index the GEMM touches inside the
    // slices, and `dst` is borrowed mutably, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_view.col_stride as isize,
            dst_view.row_stride as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_view.col_stride as isize,
            lhs_view.row_stride as isize,
            rhs.as_ptr(),
            rhs_view.col_stride as isize,
            rhs_view.row_stride as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// mixsweep patch (PATCH.md): `buffer.resize(len, 0)` without writing the
/// new elements, for the scratch buffers whose every element the caller
/// writes before reading any (im2col columns, GEMM outputs with `read_dst`
/// false, gathered output gradients). Zero-filling them was a full extra pass
/// over every buffer a rayon task allocated.
pub(super) fn overwritten<T: ConvFloat>(buffer: &mut Vec<T>, len: usize) {
    buffer.reserve(len.saturating_sub(buffer.len()));
    // SAFETY: the capacity is at least `len` (reserved just above), and `T`
    // is f32 or f64, for which every bit pattern is a value; the callers
    // write each of the `len` elements before they read it.
    #[allow(clippy::uninit_vec)]
    unsafe {
        buffer.set_len(len)
    };
}

/// Writes output rows `rows` of image `x` (`[c_in, in_h, in_w]`) into columns
/// `[col_offset, col_offset + rows.len() · out_w)` of `col` (`[col_rows, columns]`).
fn im2col<T: ConvFloat>(
    s: &Conv2dShape,
    x: &[T],
    col: &mut [T],
    columns: usize,
    col_offset: usize,
    rows: Range<usize>,
) {
    let out_w = s.out_w;
    for ci in 0..s.c_in {
        let plane = &x[ci * s.in_pixels()..(ci + 1) * s.in_pixels()];
        for ky in 0..s.k_h {
            for kx in 0..s.k_w {
                let row = (ci * s.k_h + ky) * s.k_w + kx;
                let dst = &mut col[row * columns + col_offset..][..rows.len() * out_w];
                let x_shift = (kx * s.dilation[1]) as isize - s.padding[1] as isize;
                let (ox_lo, ox_hi) = valid_range(x_shift, s.stride[1], s.in_w, out_w);
                for oy in rows.clone() {
                    let iy =
                        (oy * s.stride[0] + ky * s.dilation[0]) as isize - s.padding[0] as isize;
                    let out_row = &mut dst[(oy - rows.start) * out_w..][..out_w];
                    if iy < 0 || iy as usize >= s.in_h {
                        out_row.fill(T::ZERO);
                        continue;
                    }
                    let in_row = &plane[iy as usize * s.in_w..(iy as usize + 1) * s.in_w];
                    // Loops rather than fill / copy_from_slice: rows are short (a few
                    // dozen values, the padding one or two), where a call to memset or
                    // memcpy costs more than the copy.
                    for v in &mut out_row[..ox_lo] {
                        *v = T::ZERO;
                    }
                    for v in &mut out_row[ox_hi..] {
                        *v = T::ZERO;
                    }
                    if s.stride[1] == 1 {
                        let start = (ox_lo as isize + x_shift) as usize;
                        for (d, v) in out_row[ox_lo..ox_hi]
                            .iter_mut()
                            .zip(&in_row[start..start + ox_hi - ox_lo])
                        {
                            *d = *v;
                        }
                    } else {
                        for (ox, v) in out_row[ox_lo..ox_hi].iter_mut().enumerate() {
                            let ix = ((ox + ox_lo) * s.stride[1]) as isize + x_shift;
                            *v = in_row[ix as usize];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [im2col]: adds the columns of output rows `rows` (from
/// `col_offset` in `col`) into image `dx` (`[c_in, in_h, in_w]`).
fn col2im<T: ConvFloat>(
    s: &Conv2dShape,
    col: &[T],
    columns: usize,
    col_offset: usize,
    rows: Range<usize>,
    dx: &mut [T],
) {
    let out_w = s.out_w;
    for ci in 0..s.c_in {
        let plane = &mut dx[ci * s.in_pixels()..(ci + 1) * s.in_pixels()];
        for ky in 0..s.k_h {
            for kx in 0..s.k_w {
                let row = (ci * s.k_h + ky) * s.k_w + kx;
                let src = &col[row * columns + col_offset..][..rows.len() * out_w];
                let x_shift = (kx * s.dilation[1]) as isize - s.padding[1] as isize;
                let (ox_lo, ox_hi) = valid_range(x_shift, s.stride[1], s.in_w, out_w);
                for oy in rows.clone() {
                    let iy =
                        (oy * s.stride[0] + ky * s.dilation[0]) as isize - s.padding[0] as isize;
                    if iy < 0 || iy as usize >= s.in_h {
                        continue;
                    }
                    let in_row = &mut plane[iy as usize * s.in_w..(iy as usize + 1) * s.in_w];
                    let src_row = &src[(oy - rows.start) * out_w..][..out_w];
                    if s.stride[1] == 1 {
                        let start = (ox_lo as isize + x_shift) as usize;
                        for (d, v) in in_row[start..start + ox_hi - ox_lo]
                            .iter_mut()
                            .zip(&src_row[ox_lo..ox_hi])
                        {
                            *d += *v;
                        }
                    } else {
                        for (ox, &v) in src_row.iter().enumerate().take(ox_hi).skip(ox_lo) {
                            let ix = (ox * s.stride[1]) as isize + x_shift;
                            in_row[ix as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Output rows in tiles of about [MIN_COLUMNS] pixels: one image's im2col
/// matrix is built and consumed a tile at a time, so it stays in cache.
fn row_tiles(s: &Conv2dShape) -> impl Iterator<Item = Range<usize>> {
    let rows = (MIN_COLUMNS / s.out_w.max(1)).max(1);
    (0..s.out_h.div_ceil(rows)).map(move |t| t * rows..((t + 1) * rows).min(s.out_h))
}

/// Output rows `rows` of a `[channels, out_h, out_w]` plane stack, as a matrix
/// `[channels, rows · out_w]` starting at `rows.start · out_w`.
fn row_block(s: &Conv2dShape, channels: usize, rows: &Range<usize>) -> (usize, Strided) {
    let view = Strided {
        rows: channels,
        cols: rows.len() * s.out_w,
        row_stride: s.out_pixels(),
        col_stride: 1,
    };
    (rows.start * s.out_w, view)
}

/// The output columns `[lo, hi)` whose input column `ox * stride + shift` lies
/// inside `[0, in_w)`.
fn valid_range(shift: isize, stride: usize, in_w: usize, out_w: usize) -> (usize, usize) {
    let stride = stride as isize;
    // Smallest ox with ox * stride + shift >= 0.
    let lo = if shift >= 0 {
        0
    } else {
        (-shift + stride - 1) / stride
    };
    // Largest ox with ox * stride + shift <= in_w - 1, plus one.
    let last = in_w as isize - 1 - shift;
    let hi = if last < 0 { 0 } else { last / stride + 1 };
    let lo = (lo as usize).min(out_w);
    let hi = (hi as usize).clamp(lo, out_w);
    (lo, hi)
}

/// Copies the `[c_out, out_pixels]` planes of `images` consecutive images of
/// `dy` (starting at the chunk's first image) into `[c_out, images * out_pixels]`.
fn gather_chunk<T: ConvFloat>(s: &Conv2dShape, dy_chunk: &[T], images: usize, dst: &mut [T]) {
    let p = s.out_pixels();
    let columns = images * p;
    for g in 0..images {
        for co in 0..s.c_out {
            dst[co * columns + g * p..co * columns + (g + 1) * p]
                .copy_from_slice(&dy_chunk[(g * s.c_out + co) * p..(g * s.c_out + co + 1) * p]);
        }
    }
}

/// The weights of group `g`: output channels `[g·c_out/groups, (g+1)·c_out/groups)`.
fn weight_block<'a, T>(s: &Conv2dShape, w: &'a [T], g: usize) -> &'a [T] {
    let len = s.w_len() / s.groups;
    &w[g * len..(g + 1) * len]
}

/// Channels `[g·channels/groups, (g+1)·channels/groups)` of every image, as a
/// contiguous `[batch, channels/groups, plane]` tensor.
fn channel_block<T: Copy>(
    data: &[T],
    batch: usize,
    channels: usize,
    plane: usize,
    groups: usize,
    g: usize,
) -> Vec<T> {
    let block = channels / groups * plane;
    (0..batch)
        .flat_map(|b| {
            let start = b * channels * plane + g * block;
            data[start..start + block].iter().copied()
        })
        .collect()
}

/// Writes what [channel_block] took back into its place.
fn put_channel_block<T: Copy>(
    data: &mut [T],
    part: &[T],
    batch: usize,
    channels: usize,
    plane: usize,
    groups: usize,
    g: usize,
) {
    let block = channels / groups * plane;
    for b in 0..batch {
        let start = b * channels * plane + g * block;
        data[start..start + block].copy_from_slice(&part[b * block..(b + 1) * block]);
    }
}

/// Runs `work(chunk_index, first_image, images, out_chunk, buffers)` for every
/// chunk of images, where `out_chunk` is that chunk's part of `out`
/// (`per_image` elements per image), in parallel when rayon is on.
fn for_each_chunk<T: ConvFloat, F>(s: &Conv2dShape, out: &mut [T], per_image: usize, work: F)
where
    F: Fn(usize, usize, &mut [T], &mut (Vec<T>, Vec<T>)) + Send + Sync,
{
    let chunk = s.images_per_chunk();
    if per_image == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    out.par_chunks_mut(chunk * per_image)
        .enumerate()
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |buffers, (i, out_chunk)| {
                work(i * chunk, out_chunk.len() / per_image, out_chunk, buffers)
            },
        );
    #[cfg(not(feature = "rayon"))]
    {
        let mut buffers = (Vec::new(), Vec::new());
        for (i, out_chunk) in out.chunks_mut(chunk * per_image).enumerate() {
            work(
                i * chunk,
                out_chunk.len() / per_image,
                out_chunk,
                &mut buffers,
            );
        }
    }
}

/// Forward convolution: `x` `[batch, c_in, in_h, in_w]`, `w`
/// `[c_out, c_in, k_h, k_w]`, optional `bias` `[c_out]`; returns
/// `[batch, c_out, out_h, out_w]`.
pub fn conv2d_forward<T: ConvFloat>(
    s: &Conv2dShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    assert_eq!(x.len(), s.x_len(), "conv2d: input size");
    assert_eq!(w.len(), s.w_len(), "conv2d: weight size");
    if s.groups > 1 {
        let g_shape = s.group();
        let mut y = vec![T::ZERO; s.y_len()];
        for g in 0..s.groups {
            let x_g = channel_block(x, s.batch, s.c_in, s.in_pixels(), s.groups, g);
            let bias_g = bias.map(|b| &b[g * g_shape.c_out..(g + 1) * g_shape.c_out]);
            let y_g = conv2d_forward(&g_shape, &x_g, weight_block(s, w, g), bias_g);
            put_channel_block(&mut y, &y_g, s.batch, s.c_out, s.out_pixels(), s.groups, g);
        }
        return y;
    }
    if let Some(mut y) = T::direct_forward(s, x, w) {
        add_bias(s, bias, &mut y);
        return y;
    }
    let (k, p) = (s.col_rows(), s.out_pixels());
    let per_image_in = s.c_in * s.in_pixels();
    let per_image_out = s.c_out * p;
    // Not zeroed (mixsweep patch): every chunk's GEMM or copy below writes
    // all of its outputs; zeroing them first was a serial pass over `y`.
    let mut y = Vec::new();
    overwritten(&mut y, s.y_len());
    let weight = Strided::row_major(s.c_out, k);
    for_each_chunk(
        s,
        &mut y,
        per_image_out,
        |first, images, y_chunk, (col, tmp)| {
            let columns = images * p;
            let x_chunk = &x[first * per_image_in..(first + images) * per_image_in];
            if images == 1 && !s.is_pointwise() {
                for rows in row_tiles(s) {
                    let (offset, view) = row_block(s, s.c_out, &rows);
                    overwritten(col, k * view.cols);
                    im2col(s, x_chunk, col, view.cols, 0, rows);
                    gemm(
                        &mut y_chunk[offset..],
                        view,
                        false,
                        w,
                        weight,
                        col,
                        Strided::row_major(k, view.cols),
                    );
                }
                add_bias(s, bias, y_chunk);
                return;
            }
            let rhs: &[T] = if s.is_pointwise() && images == 1 {
                x_chunk
            } else {
                overwritten(col, k * columns);
                for g in 0..images {
                    im2col(
                        s,
                        &x_chunk[g * per_image_in..(g + 1) * per_image_in],
                        col,
                        columns,
                        g * p,
                        0..s.out_h,
                    );
                }
                col
            };
            if images == 1 {
                gemm(
                    y_chunk,
                    Strided::row_major(s.c_out, p),
                    false,
                    w,
                    weight,
                    rhs,
                    Strided::row_major(k, p),
                );
            } else {
                overwritten(tmp, s.c_out * columns);
                gemm(
                    tmp,
                    Strided::row_major(s.c_out, columns),
                    false,
                    w,
                    weight,
                    rhs,
                    Strided::row_major(k, columns),
                );
                for g in 0..images {
                    for co in 0..s.c_out {
                        y_chunk[(g * s.c_out + co) * p..(g * s.c_out + co + 1) * p]
                            .copy_from_slice(
                                &tmp[co * columns + g * p..co * columns + (g + 1) * p],
                            );
                    }
                }
            }
            add_bias(s, bias, y_chunk);
        },
    );
    y
}

/// Adds `bias[c]` to every output plane of channel `c` in `y_chunk`.
fn add_bias<T: ConvFloat>(s: &Conv2dShape, bias: Option<&[T]>, y_chunk: &mut [T]) {
    let (Some(bias), p) = (bias, s.out_pixels()) else {
        return;
    };
    for (plane, values) in y_chunk.chunks_mut(p.max(1)).enumerate() {
        let b = bias[plane % s.c_out];
        values.iter_mut().for_each(|v| *v += b);
    }
}

/// Gradient of the loss with respect to the input, given the weight and the
/// output gradient `dy` `[batch, c_out, out_h, out_w]`.
pub fn conv2d_x_grad<T: ConvFloat>(s: &Conv2dShape, w: &[T], dy: &[T]) -> Vec<T> {
    assert_eq!(w.len(), s.w_len(), "conv2d_x_grad: weight size");
    assert_eq!(dy.len(), s.y_len(), "conv2d_x_grad: output-gradient size");
    if s.groups > 1 {
        let g_shape = s.group();
        let mut dx = vec![T::ZERO; s.x_len()];
        for g in 0..s.groups {
            let dy_g = channel_block(dy, s.batch, s.c_out, s.out_pixels(), s.groups, g);
            let dx_g = conv2d_x_grad(&g_shape, weight_block(s, w, g), &dy_g);
            put_channel_block(&mut dx, &dx_g, s.batch, s.c_in, s.in_pixels(), s.groups, g);
        }
        return dx;
    }
    if let Some(dx) = T::direct_x_grad(s, w, dy) {
        return dx;
    }
    let (k, p) = (s.col_rows(), s.out_pixels());
    let per_image_in = s.c_in * s.in_pixels();
    let per_image_out = s.c_out * p;
    let weight_t = Strided::row_major(s.c_out, k).transposed();
    // Zeroed chunk by chunk on the pool just before col2im adds into it
    // (mixsweep patch): `vec![0; x_len]` was a serial pass over 26 MB for a
    // 64-channel 32×32 input, and half of a strided 1×1 input gradient.
    let mut dx = Vec::new();
    overwritten(&mut dx, s.x_len());
    for_each_chunk(
        s,
        &mut dx,
        per_image_in,
        |first, images, dx_chunk, (dcol, dyc)| {
            let columns = images * p;
            let dy_chunk = &dy[first * per_image_out..(first + images) * per_image_out];
            if s.is_pointwise() && images == 1 {
                gemm(
                    dx_chunk,
                    Strided::row_major(k, p),
                    false,
                    w,
                    weight_t,
                    dy_chunk,
                    Strided::row_major(s.c_out, p),
                );
                return;
            }
            // The paths below add into `dx_chunk` (col2im); the one above overwrote it.
            dx_chunk.fill(T::ZERO);
            if images == 1 {
                for rows in row_tiles(s) {
                    let (offset, view) = row_block(s, s.c_out, &rows);
                    overwritten(dcol, k * view.cols);
                    gemm(
                        dcol,
                        Strided::row_major(k, view.cols),
                        false,
                        w,
                        weight_t,
                        &dy_chunk[offset..],
                        view,
                    );
                    col2im(s, dcol, view.cols, 0, rows, dx_chunk);
                }
                return;
            }
            // Several images (one returned above): their output gradients gathered side by side.
            overwritten(dyc, s.c_out * columns);
            gather_chunk(s, dy_chunk, images, dyc);
            overwritten(dcol, k * columns);
            gemm(
                dcol,
                Strided::row_major(k, columns),
                false,
                w,
                weight_t,
                dyc,
                Strided::row_major(s.c_out, columns),
            );
            for g in 0..images {
                col2im(
                    s,
                    dcol,
                    columns,
                    g * p,
                    0..s.out_h,
                    &mut dx_chunk[g * per_image_in..(g + 1) * per_image_in],
                );
            }
        },
    );
    dx
}

/// Gradient of the loss with respect to the weight, given the input and the
/// output gradient; `[c_out, c_in, k_h, k_w]`.
pub fn conv2d_weight_grad<T: ConvFloat>(s: &Conv2dShape, x: &[T], dy: &[T]) -> Vec<T> {
    assert_eq!(x.len(), s.x_len(), "conv2d_weight_grad: input size");
    assert_eq!(
        dy.len(),
        s.y_len(),
        "conv2d_weight_grad: output-gradient size"
    );
    if s.groups > 1 {
        let g_shape = s.group();
        let mut dw = Vec::with_capacity(s.w_len());
        for g in 0..s.groups {
            let x_g = channel_block(x, s.batch, s.c_in, s.in_pixels(), s.groups, g);
            let dy_g = channel_block(dy, s.batch, s.c_out, s.out_pixels(), s.groups, g);
            dw.extend(conv2d_weight_grad(&g_shape, &x_g, &dy_g));
        }
        return dw;
    }
    if let Some(dw) = T::direct_weight_grad(s, x, dy) {
        return dw;
    }
    let (k, p) = (s.col_rows(), s.out_pixels());
    let w_len = s.w_len();
    if s.batch == 0 || w_len == 0 {
        return vec![T::ZERO; w_len];
    }
    let chunk = s.images_per_chunk();
    let chunks = s.batch.div_ceil(chunk);
    let (chunks_per_partial, partials) = partial_layout(chunks, MAX_PARTIALS, w_len);
    // Not zeroed: each partial's first GEMM writes it whole (`accumulate` is
    // false for a partial's first chunk and first row tile).
    let mut sums = partial_sums(partials, w_len, overwritten);
    let per_image_in = s.c_in * s.in_pixels();
    let per_image_out = s.c_out * p;
    let accumulate_partial = |index: usize, dw: &mut Vec<T>, (col, dyc): &mut (Vec<T>, Vec<T>)| {
        let first_chunk = index * chunks_per_partial;
        let last_chunk = ((index + 1) * chunks_per_partial).min(chunks);
        for (n, c) in (first_chunk..last_chunk).enumerate() {
            let first = c * chunk;
            let images = chunk.min(s.batch - first);
            let columns = images * p;
            let x_chunk = &x[first * per_image_in..(first + images) * per_image_in];
            let dy_chunk = &dy[first * per_image_out..(first + images) * per_image_out];
            if images == 1 && !s.is_pointwise() {
                for (t, rows) in row_tiles(s).enumerate() {
                    let (offset, view) = row_block(s, s.c_out, &rows);
                    overwritten(col, k * view.cols);
                    im2col(s, x_chunk, col, view.cols, 0, rows);
                    let col_t = Strided::row_major(k, view.cols).transposed();
                    gemm(
                        dw,
                        Strided::row_major(s.c_out, k),
                        n > 0 || t > 0,
                        &dy_chunk[offset..],
                        view,
                        col,
                        col_t,
                    );
                }
                continue;
            }
            let cols: &[T] = if s.is_pointwise() && images == 1 {
                x_chunk
            } else {
                overwritten(col, k * columns);
                for g in 0..images {
                    im2col(
                        s,
                        &x_chunk[g * per_image_in..(g + 1) * per_image_in],
                        col,
                        columns,
                        g * p,
                        0..s.out_h,
                    );
                }
                col
            };
            let lhs: &[T] = if images == 1 {
                dy_chunk
            } else {
                overwritten(dyc, s.c_out * columns);
                gather_chunk(s, dy_chunk, images, dyc);
                dyc
            };
            // dW[co, k] (+)= Σ_j dy[co, j] · col[k, j]
            gemm(
                dw,
                Strided::row_major(s.c_out, k),
                n > 0,
                lhs,
                Strided::row_major(s.c_out, columns),
                cols,
                Strided::row_major(k, columns).transposed(),
            );
        }
    };
    #[cfg(feature = "rayon")]
    sums.par_iter_mut().enumerate().for_each_init(
        || (Vec::new(), Vec::new()),
        |buffers, (i, dw)| accumulate_partial(i, dw, buffers),
    );
    #[cfg(not(feature = "rayon"))]
    {
        let mut buffers = (Vec::new(), Vec::new());
        for (i, dw) in sums.iter_mut().enumerate() {
            accumulate_partial(i, dw, &mut buffers);
        }
    }
    add_partials(sums)
}

/// The weights `w` (`[c_out, c_in, k_h, k_w]`) of `s` flipped in both
/// dimensions with input and output channels exchanged: those of
/// [Conv2dShape::input_grad_as_forward].
pub(super) fn flipped_transposed(s: &Conv2dShape, w: &[f32]) -> Vec<f32> {
    let taps = s.k_h * s.k_w;
    let mut flipped = vec![0.0; w.len()];
    for co in 0..s.c_out {
        for ci in 0..s.c_in {
            for t in 0..taps {
                flipped[(ci * s.c_out + co) * taps + (taps - 1 - t)] =
                    w[(co * s.c_in + ci) * taps + t];
            }
        }
    }
    flipped
}

/// `partials` buffers of `w_len` floats each, made ready by `fill` (zeroed or
/// [overwritten]). mixsweep patch: one buffer per partial rather than one of
/// `partials · w_len` floats. A single buffer of 59 MB (25 partials of a
/// 256→256 3×3 gradient) is above glibc's largest mmap threshold, so every
/// step mapped it afresh and the kernel zeroed its pages on first touch
/// (page faults and `clear_page` were 8% of a width-64 step); buffers of a
/// few MB come from the heap and are reused.
pub(super) fn partial_sums<T: ConvFloat>(
    partials: usize,
    w_len: usize,
    fill: impl Fn(&mut Vec<T>, usize),
) -> Vec<Vec<T>> {
    (0..partials)
        .map(|_| {
            let mut sum = Vec::new();
            fill(&mut sum, w_len);
            sum
        })
        .collect()
}

/// How `units` (chunks or groups of images, in order) are split among a
/// weight gradient's partial sums of `w_len` floats each: `(units per
/// partial, partials)`, at most `most` partials and [PARTIAL_BUDGET] floats
/// together. Fixed by the shapes alone, so the same partial sums over the
/// same images on any number of threads.
pub(super) fn partial_layout(units: usize, most: usize, w_len: usize) -> (usize, usize) {
    let most = units.min(most).min((PARTIAL_BUDGET / w_len).max(1));
    let per_partial = units.div_ceil(most);
    (per_partial, units.div_ceil(per_partial))
}

/// Floats of the weight gradient each task of [add_partials] sums.
const SEGMENT: usize = 1 << 14;

/// The sum of the partial sums in `sums` (of equal lengths), added in their
/// order: the same rounding on any thread count. Segments of the gradient are
/// summed in parallel (mixsweep patch: a serial sum of 25 partials of a
/// 256→256 3×3 gradient had kept the second thread idle).
pub(super) fn add_partials<T: ConvFloat>(sums: Vec<Vec<T>>) -> Vec<T> {
    let mut sums = sums.into_iter();
    let Some(mut first) = sums.next() else {
        return Vec::new();
    };
    let rest: Vec<Vec<T>> = sums.collect();
    let add = |(index, segment): (usize, &mut [T])| {
        let start = index * SEGMENT;
        for partial in &rest {
            let partial = &partial[start..start + segment.len()];
            for (a, b) in segment.iter_mut().zip(partial) {
                *a += *b;
            }
        }
    };
    #[cfg(feature = "rayon")]
    first.par_chunks_mut(SEGMENT).enumerate().for_each(add);
    #[cfg(not(feature = "rayon"))]
    first.chunks_mut(SEGMENT).enumerate().for_each(add);
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one multiply-add at a time, in f64.
    fn naive_forward(s: &Conv2dShape, x: &[f32], w: &[f32]) -> Vec<f64> {
        let mut y = vec![0.0f64; s.y_len()];
        for b in 0..s.batch {
            for co in 0..s.c_out {
                for oy in 0..s.out_h {
                    for ox in 0..s.out_w {
                        let mut acc = 0.0f64;
                        for ci in 0..s.c_in {
                            for ky in 0..s.k_h {
                                for kx in 0..s.k_w {
                                    let g = co / (s.c_out / s.groups);
                                    if ci / (s.c_in / s.groups) != g {
                                        continue;
                                    }
                                    let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize
                                        - s.padding[0] as isize;
                                    let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize
                                        - s.padding[1] as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy as usize >= s.in_h
                                        || ix as usize >= s.in_w
                                    {
                                        continue;
                                    }
                                    let xv = x[((b * s.c_in + ci) * s.in_h + iy as usize) * s.in_w
                                        + ix as usize];
                                    let ci_g = ci % (s.c_in / s.groups);
                                    let wv = w[((co * (s.c_in / s.groups) + ci_g) * s.k_h + ky)
                                        * s.k_w
                                        + kx];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((b * s.c_out + co) * s.out_h + oy) * s.out_w + ox] = acc;
                    }
                }
            }
        }
        y
    }

    fn shape(
        batch: usize,
        c_in: usize,
        hw: [usize; 2],
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Conv2dShape {
        let out = |i: usize| (i + 2 * pad - k) / stride + 1;
        Conv2dShape {
            batch,
            c_in,
            in_h: hw[0],
            in_w: hw[1],
            c_out,
            k_h: k,
            k_w: k,
            stride: [stride; 2],
            padding: [pad; 2],
            dilation: [1, 1],
            groups: 1,
            out_h: out(hw[0]),
            out_w: out(hw[1]),
        }
    }

    /// A deterministic pseudo-random sequence in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn shapes() -> Vec<Conv2dShape> {
        vec![
            shape(2, 3, [7, 5], 4, 3, 1, 1),
            shape(3, 1, [6, 6], 2, 3, 2, 1),
            shape(1, 4, [5, 5], 3, 1, 1, 0),
            shape(5, 4, [4, 4], 6, 1, 2, 0),
            shape(40, 2, [4, 4], 3, 3, 1, 1),
            shape(2, 3, [9, 8], 2, 3, 2, 0),
            // Two groups, dilation 2.
            Conv2dShape {
                groups: 2,
                dilation: [2, 2],
                out_h: 5,
                out_w: 5,
                ..shape(2, 4, [7, 7], 6, 3, 1, 1)
            },
            // Asymmetric padding: 1 before, 2 after each dimension (out = 6 + 3 - 3 + 1).
            Conv2dShape {
                out_h: 7,
                out_w: 7,
                ..shape(2, 2, [6, 6], 3, 3, 1, 1)
            },
        ]
    }

    /// The forward pass against the definition; the two gradients against the
    /// adjoint identities ⟨conv(x), dy⟩ = ⟨x, dx⟩ = ⟨w, dw⟩, which the
    /// definition fixes (all in f64).
    #[test]
    fn forward_and_gradients_match_the_definition() {
        for (i, s) in shapes().iter().enumerate() {
            let x = values(s.x_len(), 3 * i as u64);
            let w = values(s.w_len(), 3 * i as u64 + 1);
            let dy = values(s.y_len(), 3 * i as u64 + 2);
            let y = conv2d_forward(s, &x, &w, None);
            for (a, b) in y.iter().zip(naive_forward(s, &x, &w)) {
                assert!((*a as f64 - b).abs() < 1e-5, "{s:?}: {a} vs {b}");
            }
            let dot = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>()
            };
            let dx = conv2d_x_grad(s, &w, &dy);
            let dw = conv2d_weight_grad(s, &x, &dy);
            // Each coordinate of dx: ⟨conv(e_i), dy⟩ through the definition.
            let y_dot = dot(&y, &dy);
            assert!(
                (dot(&x, &dx) - y_dot).abs() < 1e-4 * (1.0 + y_dot.abs()),
                "{s:?} dx"
            );
            assert!(
                (dot(&w, &dw) - y_dot).abs() < 1e-4 * (1.0 + y_dot.abs()),
                "{s:?} dw"
            );
            for probe in 0..5usize {
                let j = probe * 7919 % s.x_len();
                let mut e = vec![0.0f32; s.x_len()];
                e[j] = 1.0;
                let want: f64 = naive_forward(s, &e, &w)
                    .iter()
                    .zip(&dy)
                    .map(|(a, b)| a * *b as f64)
                    .sum();
                assert!((dx[j] as f64 - want).abs() < 1e-5, "{s:?} dx[{j}]");
                let j = probe * 104729 % s.w_len();
                let mut e = vec![0.0f32; s.w_len()];
                e[j] = 1.0;
                let want: f64 = naive_forward(s, &x, &e)
                    .iter()
                    .zip(&dy)
                    .map(|(a, b)| a * *b as f64)
                    .sum();
                assert!((dw[j] as f64 - want).abs() < 1e-4, "{s:?} dw[{j}]");
            }
        }
    }
}
