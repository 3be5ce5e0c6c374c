//! White-box FGSM (Goodfellow et al. 2015) in pixel space: x' = clip₍₀,₁₎(x + ε·sign(∇ₓ L)),
//! with L the cross-entropy of the true labels. Networks see normalised inputs z = (x − μ)/σ;
//! since σ > 0, sign(∇ₓ L) = sign(∇_z L), so the step in normalised units is ε/σ per channel
//! and the clip to [0, 1] becomes [(0 − μ)/σ, (1 − μ)/σ]. The network is given as a forward
//! function so that the caller decides its mode (evaluation mode: BatchNorm running stats).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Per-feature step and bounds in normalised units for a `[c, h, w]` (or flat) input.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelBox {
    pub step: Vec<f32>,
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
}

impl PixelBox {
    /// For an ε in [0, 1] pixel units, per-channel mean and std, `plane` features per channel.
    pub fn new(eps: f64, mean: &[f32], std: &[f32], plane: usize) -> PixelBox {
        let per = |f: &dyn Fn(usize) -> f32| (0..mean.len()).flat_map(|c| std::iter::repeat_n(f(c), plane)).collect::<Vec<f32>>();
        PixelBox {
            step: per(&|c| eps as f32 / std[c]),
            lo: per(&|c| (0.0 - mean[c]) / std[c]),
            hi: per(&|c| (1.0 - mean[c]) / std[c]),
        }
    }
}

/// The FGSM images `[n, features]` for normalised inputs `x` and their labels; `None` when
/// `x` is not on an autodiff device (no input gradient to follow).
pub fn fgsm(forward: impl Fn(Tensor<2>) -> Tensor<2>, x: Tensor<2>, labels: &[usize], bounds: &PixelBox) -> Option<Tensor<2>> {
    let device = x.device();
    let [n, f] = x.dims();
    let x = x.detach().require_grad();
    let logits = forward(x.clone());
    let [_, classes] = logits.dims();
    let mut onehot = vec![0f32; n * classes];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * classes + l] = 1.0;
    }
    let y = Tensor::<2>::from_data(TensorData::new(onehot, [n, classes]), &device);
    // Summed cross-entropy: the sign of the gradient is that of the mean's.
    let loss = (y * log_softmax(logits, 1)).sum().neg();
    let grads = loss.backward();
    let row = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [f]), &device).reshape([1, f]).repeat_dim(0, n);
    let g = x.grad(&grads)?;
    let adv = x.detach() + g.sign() * row(&bounds.step);
    Some(adv.max_pair(row(&bounds.lo)).min_pair(row(&bounds.hi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fgsm_on_a_linear_model_is_the_closed_form() {
        // logits = x·W + b, W 3×2. For cross-entropy, ∇ₓ L = W·(softmax(z) − y), so
        // x' = clip(x + ε·sign(W·(p − y))), computed here by hand in f64.
        let device = Device::flex().autodiff();
        let w = [[0.5f64, -1.0], [2.0, 0.3], [-0.7, 0.4]];
        let b = [0.1f64, -0.2];
        let xs = [[0.2f64, 0.9, 0.5], [0.95, 0.1, 0.02]];
        let labels = [0usize, 1];
        let eps = 0.1;
        let wt = Tensor::<2>::from_data(TensorData::new(w.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(), [3, 2]), &device);
        let bt = Tensor::<2>::from_data(TensorData::new(b.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, 2]), &device);
        let x = Tensor::<2>::from_data(TensorData::new(xs.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(), [2, 3]), &device);
        // Identity normalisation (μ = 0, σ = 1): bounds are the pixel range itself.
        let bounds = PixelBox::new(eps, &[0.0], &[1.0], 3);
        let adv: Vec<f32> = fgsm(|x| x.matmul(wt.clone()) + bt.clone().repeat_dim(0, 2), x, &labels, &bounds).expect("autodiff device").into_data().try_to_vec().unwrap();
        for (i, xi) in xs.iter().enumerate() {
            let z: Vec<f64> = (0..2).map(|k| (0..3).map(|j| xi[j] * w[j][k]).sum::<f64>() + b[k]).collect();
            let m = z.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let p: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
            for j in 0..3 {
                let g: f64 = (0..2).map(|k| w[j][k] * (p[k] - if k == labels[i] { 1.0 } else { 0.0 })).sum();
                let want = (xi[j] + eps * g.signum()).clamp(0.0, 1.0);
                assert!((adv[i * 3 + j] as f64 - want).abs() < 1e-6, "x[{i}][{j}]: {} vs {want}", adv[i * 3 + j]);
            }
        }
    }

    #[test]
    fn pixel_bounds_follow_the_normalisation() {
        // CIFAR-like: μ = 0.5, σ = 0.25 → step ε/σ, bounds (0 − 0.5)/0.25 = −2 and 2.
        let b = PixelBox::new(8.0 / 255.0, &[0.5], &[0.25], 2);
        assert!((b.step[1] - 32.0 / 255.0).abs() < 1e-7);
        assert_eq!((b.lo[0], b.hi[0]), (-2.0, 2.0));
    }
}
