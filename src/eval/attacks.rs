//! White-box attacks in pixel space: FGSM (Goodfellow et al. 2015), x' = clip₍₀,₁₎(x +
//! ε·sign(∇ₓ L)), and PGD (Madry et al. 2018), repeated signed-gradient steps each projected
//! onto the L∞ ε-ball around x and the pixel range; L is the cross-entropy of the true labels.
//! Networks see normalised inputs z = (x − μ)/σ; since σ > 0, sign(∇ₓ L) = sign(∇_z L), so a
//! step of s pixel units is s/σ in normalised units, and [0, 1] becomes [(0 − μ)/σ, (1 − μ)/σ].
//! The network is given as a forward function so that the caller decides its mode (evaluation
//! mode: BatchNorm running statistics, weights frozen).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Per-feature scale (normalised units per pixel unit) and valid range of a `[c, h, w]` (or
/// flat) input, in normalised units.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpace {
    pub scale: Vec<f32>,
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
}

impl InputSpace {
    /// Pixels in [0, 1] normalised per channel by `mean` and `std`, `plane` features a channel.
    pub fn pixels(mean: &[f32], std: &[f32], plane: usize) -> InputSpace {
        let per = |f: &dyn Fn(usize) -> f32| {
            (0..mean.len())
                .flat_map(|c| std::iter::repeat_n(f(c), plane))
                .collect::<Vec<f32>>()
        };
        InputSpace {
            scale: per(&|c| 1.0 / std[c]),
            lo: per(&|c| (0.0 - mean[c]) / std[c]),
            hi: per(&|c| (1.0 - mean[c]) / std[c]),
        }
    }

    /// Real-valued inputs without bounds (the spirals): one input unit per unit.
    pub fn unbounded(features: usize) -> InputSpace {
        InputSpace {
            scale: vec![1.0; features],
            lo: vec![f32::MIN; features],
            hi: vec![f32::MAX; features],
        }
    }
}

/// An L∞ attack: `steps` steps of `step_size`, within `eps` of the clean input (pixel units).
#[derive(Debug, Clone, PartialEq)]
pub struct Attack {
    pub eps: f64,
    pub step_size: f64,
    pub steps: usize,
}

impl Attack {
    /// FGSM: one step of ε.
    pub fn fgsm(eps: f64) -> Attack {
        Attack {
            eps,
            step_size: eps,
            steps: 1,
        }
    }
}

/// The adversarial inputs `[n, features]` for normalised inputs `x` and their labels (of
/// `classes` classes). `start`,
/// if given, is a random start: offsets in pixel units, `[n, features]` row-major, added to `x`
/// (and projected) before the first step. `None` when `x` is not on an autodiff device.
pub fn attack(
    forward: impl Fn(Tensor<2>) -> Tensor<2>,
    x: Tensor<2>,
    labels: &[usize],
    classes: usize,
    space: &InputSpace,
    a: &Attack,
    start: Option<Vec<f32>>,
) -> Option<Tensor<2>> {
    let device = x.device();
    let [n, f] = x.dims();
    let row = |v: &[f32]| {
        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [f]), &device)
            .reshape([1, f])
            .repeat_dim(0, n)
    };
    let clean = x.detach();
    let scale = row(&space.scale);
    let radius = scale.clone() * a.eps;
    let lo = row(&space.lo).max_pair(clean.clone() - radius.clone());
    let hi = row(&space.hi).min_pair(clean.clone() + radius);
    let mut onehot = vec![0f32; n * classes];
    for (i, &l) in labels.iter().enumerate() {
        *onehot.get_mut(i * classes + l)? = 1.0;
    }
    let y = Tensor::<2>::from_data(TensorData::new(onehot, [n, classes]), &device);
    let mut adv = clean.clone();
    if let Some(offsets) = start {
        let offsets = Tensor::<2>::from_data(TensorData::new(offsets, [n, f]), &device);
        adv = (adv + offsets * scale.clone())
            .max_pair(lo.clone())
            .min_pair(hi.clone());
    }
    for _ in 0..a.steps {
        let point = adv.detach().require_grad();
        // Summed cross-entropy: the sign of the gradient is that of the mean's.
        let loss = (y.clone() * log_softmax(forward(point.clone()), 1))
            .sum()
            .neg();
        let grads = loss.backward();
        let g = point.grad(&grads)?;
        adv = (point.detach() + g.sign() * scale.clone() * a.step_size)
            .max_pair(lo.clone())
            .min_pair(hi.clone());
    }
    Some(adv.detach())
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
        let wt = Tensor::<2>::from_data(
            TensorData::new(
                w.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(),
                [3, 2],
            ),
            &device,
        );
        let bt = Tensor::<2>::from_data(
            TensorData::new(b.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, 2]),
            &device,
        );
        let x = Tensor::<2>::from_data(
            TensorData::new(
                xs.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(),
                [2, 3],
            ),
            &device,
        );
        // Identity normalisation (μ = 0, σ = 1): bounds are the pixel range itself.
        let space = InputSpace::pixels(&[0.0], &[1.0], 3);
        let adv: Vec<f32> = attack(
            |x| {
                let n = x.dims()[0];
                x.matmul(wt.clone()) + bt.clone().repeat_dim(0, n)
            },
            x,
            &labels,
            2,
            &space,
            &Attack::fgsm(eps),
            None,
        )
        .expect("autodiff device")
        .into_data()
        .try_to_vec()
        .unwrap();
        for (i, xi) in xs.iter().enumerate() {
            let z: Vec<f64> = (0..2)
                .map(|k| (0..3).map(|j| xi[j] * w[j][k]).sum::<f64>() + b[k])
                .collect();
            let m = z.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let p: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
            for j in 0..3 {
                let g: f64 = (0..2)
                    .map(|k| w[j][k] * (p[k] - if k == labels[i] { 1.0 } else { 0.0 }))
                    .sum();
                let want = (xi[j] + eps * g.signum()).clamp(0.0, 1.0);
                assert!(
                    (adv[i * 3 + j] as f64 - want).abs() < 1e-6,
                    "x[{i}][{j}]: {} vs {want}",
                    adv[i * 3 + j]
                );
            }
        }
    }

    #[test]
    fn pixel_bounds_follow_the_normalisation() {
        // CIFAR-like: μ = 0.5, σ = 0.25 → 4 normalised units a pixel unit, bounds (0 − 0.5)/0.25
        // = −2 and 2.
        let b = InputSpace::pixels(&[0.5], &[0.25], 2);
        assert_eq!(b.scale, [4.0, 4.0]);
        assert_eq!((b.lo[0], b.hi[0]), (-2.0, 2.0));
    }

    #[test]
    fn pgd_stays_in_the_eps_ball_and_the_pixel_range() {
        // A linear model pushes every feature one way; 10 steps of 0.05 would move 0.5, but the
        // ε-ball (0.1) and [0, 1] stop them: x' = clip(x ± 0.1, 0, 1) exactly.
        let device = Device::flex().autodiff();
        let w = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, -1.0, -1.0, 1.0, 2.0, -2.0], [3, 2]),
            &device,
        );
        let xs = vec![0.5f32, 0.95, 0.02];
        let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [1, 3]), &device);
        let space = InputSpace::pixels(&[0.0], &[1.0], 3);
        let a = Attack {
            eps: 0.1,
            step_size: 0.05,
            steps: 10,
        };
        let adv: Vec<f32> = attack(|x| x.matmul(w.clone()), x, &[0], 2, &space, &a, None)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        // Label 0: the loss grows by lowering logit 0 − logit 1 = 2x₀ − 2x₁ + 4x₂, so x₀ and
        // x₂ go down and x₁ goes up.
        let want = [0.4f32, 1.0, 0.0];
        for j in 0..3 {
            assert!(
                (adv[j] - want[j]).abs() < 1e-6,
                "feature {j}: {} vs {}",
                adv[j],
                want[j]
            );
        }
    }
}
