//! The tensor-level entry points of the training kernels: conv2d and its two
//! gradients ([super::conv2d_train]), batch norm for training and inference
//! ([super::batch_norm_train]).
//!
//! Added to burn-flex by mixsweep (see PATCH.md). Each function makes its
//! inputs contiguous, runs the kernel in f64 for f64 tensors and in f32 for
//! every other float type (f16 and bf16 widened, the result narrowed back),
//! and wraps the result in a contiguous tensor of the input's dtype.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use burn_backend::ops::{BatchNormTrain, BatchNormTrainBackward, ConvOptions};
use burn_backend::{DType, Element};
use burn_std::{Bytes, Shape, bf16, f16};

use super::batch_norm_train::{self as bn, NormShape};
use super::conv2d_train::{self as conv, Conv2dShape};
use super::float_storage_as_f32;
use crate::ops::module::cast_from_f32;
use crate::{Flex, FlexTensor, Layout};

/// A contiguous tensor holding `data`.
fn tensor<E: Element + bytemuck::Pod>(data: Vec<E>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        E::dtype(),
    )
}

/// A tensor of `dtype` from values computed in f32.
fn from_f32(data: Vec<f32>, shape: Shape, dtype: DType) -> FlexTensor {
    let values = tensor(data, shape);
    match dtype {
        DType::F16 => cast_from_f32(values, f16::from_f32),
        DType::BF16 => cast_from_f32(values, bf16::from_f32),
        _ => values,
    }
}

/// A tensor's values in f32, for every float dtype but f64.
fn f32_values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    float_storage_as_f32(tensor)
}

/// The kernels' view of a conv2d: input, weight and options, with the output
/// size given (the backward passes read it off the output gradient) or
/// computed.
fn conv_shape(
    x: &Shape,
    w: &Shape,
    options: &ConvOptions<2>,
    out: Option<[usize; 2]>,
) -> Conv2dShape {
    assert_eq!(
        x.num_dims(),
        4,
        "conv2d: input must be [batch, channels, height, width]"
    );
    assert_eq!(
        w.num_dims(),
        4,
        "conv2d: weight must be [out, in / groups, k_h, k_w]"
    );
    assert_eq!(
        x[1],
        w[1] * options.groups,
        "conv2d: input channels differ from the weight's"
    );
    let out = out.unwrap_or_else(|| {
        [0, 1].map(|i| {
            let (before, after) = options.padding[i];
            let reach = options.dilation[i] * (w[2 + i] - 1) + 1;
            (x[2 + i] + before + after)
                .checked_sub(reach)
                .expect("conv2d: the kernel is larger than the padded input")
                / options.stride[i]
                + 1
        })
    });
    Conv2dShape {
        batch: x[0],
        c_in: x[1],
        in_h: x[2],
        in_w: x[3],
        c_out: w[0],
        k_h: w[2],
        k_w: w[3],
        stride: options.stride,
        padding: options.padding_begin(),
        dilation: options.dilation,
        groups: options.groups,
        out_h: out[0],
        out_w: out[1],
    }
}

/// Forward 2-D convolution.
pub(crate) fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, weight) = (x.into_contiguous(), weight.into_contiguous());
    let bias = bias.map(FlexTensor::into_contiguous);
    let s = conv_shape(x.layout().shape(), weight.layout().shape(), options, None);
    let shape = Shape::new([s.batch, s.c_out, s.out_h, s.out_w]);
    match x.dtype() {
        DType::F64 => tensor(
            conv::conv2d_forward(
                &s,
                x.storage::<f64>(),
                weight.storage(),
                bias.as_ref().map(|b| b.storage()),
            ),
            shape,
        ),
        dtype => {
            let bias = bias.as_ref().map(f32_values);
            from_f32(
                conv::conv2d_forward(&s, &f32_values(&x), &f32_values(&weight), bias.as_deref()),
                shape,
                dtype,
            )
        }
    }
}

/// The output gradient's spatial size.
fn out_size(output_grad: &FlexTensor) -> [usize; 2] {
    let shape = output_grad.layout().shape();
    [shape[2], shape[3]]
}

/// Gradient of a 2-D convolution with respect to its input.
pub(crate) fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (weight, output_grad) = (weight.into_contiguous(), output_grad.into_contiguous());
    let x_shape = x.layout().shape().clone();
    let s = conv_shape(
        &x_shape,
        weight.layout().shape(),
        options,
        Some(out_size(&output_grad)),
    );
    match output_grad.dtype() {
        DType::F64 => tensor(
            conv::conv2d_x_grad(&s, weight.storage::<f64>(), output_grad.storage()),
            x_shape,
        ),
        dtype => from_f32(
            conv::conv2d_x_grad(&s, &f32_values(&weight), &f32_values(&output_grad)),
            x_shape,
            dtype,
        ),
    }
}

/// Gradient of a 2-D convolution with respect to its weight.
pub(crate) fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, output_grad) = (x.into_contiguous(), output_grad.into_contiguous());
    let w_shape = weight.layout().shape().clone();
    let s = conv_shape(
        x.layout().shape(),
        &w_shape,
        options,
        Some(out_size(&output_grad)),
    );
    match x.dtype() {
        DType::F64 => tensor(
            conv::conv2d_weight_grad(&s, x.storage::<f64>(), output_grad.storage()),
            w_shape,
        ),
        dtype => from_f32(
            conv::conv2d_weight_grad(&s, &f32_values(&x), &f32_values(&output_grad)),
            w_shape,
            dtype,
        ),
    }
}

/// `[batch, channels, plane]` of a batch-norm input.
fn norm_shape(x: &FlexTensor) -> NormShape {
    let shape = x.layout().shape();
    assert!(
        shape.num_dims() >= 2,
        "batch_norm: input must be [batch, channels, ...]"
    );
    NormShape {
        batch: shape[0],
        channels: shape[1],
        plane: (2..shape.num_dims()).map(|d| shape[d]).product(),
    }
}

/// Batch norm with the batch's own statistics.
pub(crate) fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> BatchNormTrain<Flex> {
    let (x, gamma, beta) = (
        x.into_contiguous(),
        gamma.into_contiguous(),
        beta.into_contiguous(),
    );
    let s = norm_shape(&x);
    let (shape, channels) = (x.layout().shape().clone(), Shape::new([s.channels]));
    let dtype = x.dtype();
    if dtype == DType::F64 {
        let out = bn::batch_norm_train(
            &s,
            x.storage::<f64>(),
            gamma.storage(),
            beta.storage(),
            epsilon,
        );
        return BatchNormTrain::new(
            tensor(out.output, shape),
            tensor(out.mean, channels.clone()),
            tensor(out.variance, channels),
        );
    }
    let out = bn::batch_norm_train(
        &s,
        &f32_values(&x),
        &f32_values(&gamma),
        &f32_values(&beta),
        epsilon,
    );
    BatchNormTrain::new(
        from_f32(out.output, shape, dtype),
        from_f32(out.mean, channels.clone(), dtype),
        from_f32(out.variance, channels, dtype),
    )
}

/// Gradients of [batch_norm_train].
pub(crate) fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> BatchNormTrainBackward<Flex> {
    let [x, gamma, mean, variance, output_grad] =
        [x, gamma, mean, variance, output_grad].map(FlexTensor::into_contiguous);
    let s = norm_shape(&x);
    let (shape, channels) = (x.layout().shape().clone(), Shape::new([s.channels]));
    let dtype = x.dtype();
    if dtype == DType::F64 {
        let out = bn::batch_norm_train_backward(
            &s,
            x.storage::<f64>(),
            gamma.storage(),
            mean.storage(),
            variance.storage(),
            epsilon,
            output_grad.storage(),
        );
        return BatchNormTrainBackward::new(
            tensor(out.x_grad, shape),
            tensor(out.gamma_grad, channels.clone()),
            tensor(out.beta_grad, channels),
        );
    }
    let out = bn::batch_norm_train_backward(
        &s,
        &f32_values(&x),
        &f32_values(&gamma),
        &f32_values(&mean),
        &f32_values(&variance),
        epsilon,
        &f32_values(&output_grad),
    );
    BatchNormTrainBackward::new(
        from_f32(out.x_grad, shape, dtype),
        from_f32(out.gamma_grad, channels.clone(), dtype),
        from_f32(out.beta_grad, channels, dtype),
    )
}

/// Batch norm with given statistics (inference).
pub(crate) fn batch_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let [x, gamma, beta, mean, variance] =
        [x, gamma, beta, mean, variance].map(FlexTensor::into_contiguous);
    let s = norm_shape(&x);
    let shape = x.layout().shape().clone();
    match x.dtype() {
        DType::F64 => tensor(
            bn::batch_norm(
                &s,
                x.storage::<f64>(),
                gamma.storage(),
                beta.storage(),
                mean.storage(),
                variance.storage(),
                epsilon,
            ),
            shape,
        ),
        dtype => from_f32(
            bn::batch_norm(
                &s,
                &f32_values(&x),
                &f32_values(&gamma),
                &f32_values(&beta),
                &f32_values(&mean),
                &f32_values(&variance),
                epsilon,
            ),
            shape,
            dtype,
        ),
    }
}

/// Elements per rayon task of the element-wise maps below.
#[cfg(feature = "rayon")]
const MAP_CHUNK: usize = 64 * 1024;

/// The f32 elements of `tensor`, writable in place: when it owns its buffer alone and is
/// contiguous from the buffer's start (as a fresh result is), so that no one else sees the
/// write.
#[cfg(feature = "rayon")]
fn own_f32(tensor: &mut FlexTensor) -> Option<&mut [f32]> {
    let Some((0, end)) = tensor.layout().contiguous_offsets() else {
        return None;
    };
    Some(&mut tensor.try_storage_mut::<f32>()?[..end])
}

/// Whether [map_f32] and [zip_f32] take a tensor: f32, `PARALLEL_THRESHOLD` elements or more,
/// and rayon on.
fn parallel_f32(tensor: &FlexTensor) -> bool {
    cfg!(feature = "rayon")
        && tensor.dtype() == DType::F32
        && tensor.layout().num_elements() >= super::PARALLEL_THRESHOLD
}

/// `out[i] = f(out[i], src[i])` in chunks on the rayon pool.
#[cfg(feature = "rayon")]
fn zip_into(out: &mut [f32], src: &[f32], f: impl Fn(f32, f32) -> f32 + Send + Sync) {
    use rayon::prelude::*;
    out.par_chunks_mut(MAP_CHUNK)
        .zip(src.par_chunks(MAP_CHUNK))
        .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, s)| *o = f(*o, *s)));
}

/// `f` of every element of a large f32 tensor, on the rayon pool, written over the tensor's
/// own buffer where it may be ([own_f32]: no allocation) or into a new one. `Err(tensor)`,
/// untouched, for the caller's serial path: other dtypes, tensors under
/// `PARALLEL_THRESHOLD` elements, no rayon. Each element is computed alone, so the result
/// does not depend on the threads.
pub(crate) fn map_f32(
    mut tensor: FlexTensor,
    f: impl Fn(f32) -> f32 + Send + Sync,
) -> Result<FlexTensor, FlexTensor> {
    if !parallel_f32(&tensor) {
        return Err(tensor);
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        if let Some(values) = own_f32(&mut tensor) {
            values
                .par_chunks_mut(MAP_CHUNK)
                .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
            return Ok(tensor);
        }
        // Written once, not copied or zeroed first.
        let tensor = tensor.into_contiguous();
        let values = tensor.storage::<f32>();
        let mut out = Vec::with_capacity(values.len());
        out.spare_capacity_mut()[..values.len()]
            .par_chunks_mut(MAP_CHUNK)
            .zip(values.par_chunks(MAP_CHUNK))
            .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, x)| _ = o.write(f(*x))));
        // SAFETY: the first `values.len()` slots, cut into the same chunks as
        // `values` and zipped with them, were each written above.
        unsafe { out.set_len(values.len()) };
        Ok(self::tensor(out, tensor.layout().shape().clone()))
    }
    #[cfg(not(feature = "rayon"))]
    Err(tensor)
}

/// `f(a, b)` element by element for two large f32 tensors of one shape, on the rayon pool,
/// written over `b`'s or `a`'s own buffer where one may be ([own_f32]) or into a new one;
/// `Err((a, b))` otherwise (as [map_f32]): the inputs handed back by value, so the caller's
/// fallback needs no clone, hence the large `Err`.
#[allow(clippy::result_large_err)]
pub(crate) fn zip_f32(
    a: FlexTensor,
    mut b: FlexTensor,
    f: impl Fn(f32, f32) -> f32 + Send + Sync,
) -> Result<FlexTensor, (FlexTensor, FlexTensor)> {
    if !parallel_f32(&a) || b.dtype() != DType::F32 || a.layout().shape() != b.layout().shape() {
        return Err((a, b));
    }
    #[cfg(feature = "rayon")]
    {
        let mut a = a.into_contiguous();
        if let Some(values) = own_f32(&mut b) {
            zip_into(values, a.storage::<f32>(), |b, a| f(a, b));
            return Ok(b);
        }
        let b = b.into_contiguous();
        if let Some(values) = own_f32(&mut a) {
            zip_into(values, b.storage::<f32>(), &f);
            return Ok(a);
        }
        let mut out = a.storage::<f32>().to_vec();
        zip_into(&mut out, b.storage::<f32>(), &f);
        Ok(self::tensor(out, a.layout().shape().clone()))
    }
    #[cfg(not(feature = "rayon"))]
    Err((a, b))
}
