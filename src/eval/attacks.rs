//! White-box attacks in pixel space: FGSM (Goodfellow et al. 2015), x' = clip₍₀,₁₎(x +
//! ε·sign(∇ₓ L)), and PGD (Madry et al. 2018), repeated signed-gradient steps each projected
//! onto the L∞ ε-ball around x and the pixel range; L is the attack's loss against the true
//! labels: cross-entropy (the usual), or `nn.BCELoss` on softmax, as the official code's old
//! `attacks.py` did (the same loss as its training; see train::loss).
//! Networks see normalised inputs z = (x − μ)/σ; since σ > 0, sign(∇ₓ L) = sign(∇_z L), so a
//! step of s pixel units is s/σ in normalised units, and [0, 1] becomes [(0 − μ)/σ, (1 − μ)/σ].
//! The network is given as a forward function so that the caller decides its mode (evaluation
//! mode: BatchNorm running statistics, weights frozen).

use burn::prelude::*;

use crate::spec::types::LossKind;
use crate::train::loss::loss;

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

/// An L∞ attack: `steps` steps of `step_size`, within `eps` of the clean input (pixel units),
/// each up the gradient of `loss`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attack {
    pub eps: f64,
    pub step_size: f64,
    pub steps: usize,
    pub loss: LossKind,
}

impl Attack {
    /// FGSM: one step of ε, up the cross-entropy's gradient.
    pub fn fgsm(eps: f64) -> Attack {
        Attack {
            eps,
            step_size: eps,
            steps: 1,
            loss: LossKind::SoftCe,
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
        // The mean loss times the batch: the gradient's sign is the mean's, and no example's
        // gradient is scaled down towards underflow (a zero gradient would not move).
        let grads = (loss(a.loss, forward(point.clone()), y.clone()) * n as f32).backward();
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

    /// FGSM with `loss` on logits = x·W + b (W `[3][k]`) for two inputs, against the closed
    /// form x' = clip(x + ε·sign(W·∂L/∂z)) computed here by hand in f64, where `dz(p, label)`
    /// gives ∂L/∂z from the softmax p.
    fn check_linear_fgsm(loss: LossKind, w: &[Vec<f64>], dz: impl Fn(&[f64], usize) -> Vec<f64>) {
        let device = Device::flex().autodiff();
        let k = w[0].len();
        let b: Vec<f64> = (0..k).map(|c| 0.1 - 0.15 * c as f64).collect();
        let xs = [[0.2f64, 0.9, 0.5], [0.95, 0.1, 0.02]];
        let labels = [0usize, 1];
        let eps = 0.1;
        let tensor = |v: Vec<f64>, shape: [usize; 2]| {
            let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
            Tensor::<2>::from_data(TensorData::new(v, shape), &device)
        };
        let wt = tensor(w.iter().flatten().copied().collect(), [3, k]);
        let bt = tensor(b.clone(), [1, k]);
        let x = tensor(xs.iter().flatten().copied().collect(), [2, 3]);
        // Identity normalisation (μ = 0, σ = 1): bounds are the pixel range itself.
        let space = InputSpace::pixels(&[0.0], &[1.0], 3);
        let fgsm = Attack {
            loss,
            ..Attack::fgsm(eps)
        };
        let adv: Vec<f32> = attack(
            |x| {
                let n = x.dims()[0];
                x.matmul(wt.clone()) + bt.clone().repeat_dim(0, n)
            },
            x,
            &labels,
            k,
            &space,
            &fgsm,
            None,
        )
        .expect("autodiff device")
        .into_data()
        .try_to_vec()
        .unwrap();
        for (i, xi) in xs.iter().enumerate() {
            let z: Vec<f64> = (0..k)
                .map(|c| (0..3).map(|j| xi[j] * w[j][c]).sum::<f64>() + b[c])
                .collect();
            let m = z.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let p: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
            let dz = dz(&p, labels[i]);
            for j in 0..3 {
                let g: f64 = (0..k).map(|c| w[j][c] * dz[c]).sum();
                let want = (xi[j] + eps * g.signum()).clamp(0.0, 1.0);
                assert!(
                    (adv[i * 3 + j] as f64 - want).abs() < 1e-6,
                    "{loss:?} x[{i}][{j}]: {} vs {want}",
                    adv[i * 3 + j]
                );
            }
        }
    }

    #[test]
    fn fgsm_on_a_linear_model_is_the_closed_form() {
        // Cross-entropy: ∂L/∂z = p − y.
        let w = vec![vec![0.5, -1.0], vec![2.0, 0.3], vec![-0.7, 0.4]];
        check_linear_fgsm(LossKind::SoftCe, &w, |p, label| {
            (0..p.len())
                .map(|c| p[c] - if c == label { 1.0 } else { 0.0 })
                .collect()
        });
    }

    #[test]
    fn fgsm_climbs_bce_on_softmax_when_asked() {
        // nn.BCELoss on softmax over C classes: ∂L/∂p_c = −(y_c/p_c − (1 − y_c)/(1 − p_c))/C,
        // and ∂p_c/∂z_k = p_c·(δ_ck − p_k). Three classes, where its sign can differ from
        // cross-entropy's.
        let w = vec![
            vec![0.5, -1.0, 0.8],
            vec![2.0, 0.3, -1.2],
            vec![-0.7, 0.4, 1.5],
        ];
        check_linear_fgsm(LossKind::BceSoftmax, &w, |p, label| {
            let k = p.len();
            let dp: Vec<f64> = (0..k)
                .map(|c| {
                    let y = if c == label { 1.0 } else { 0.0 };
                    -(y / p[c] - (1.0 - y) / (1.0 - p[c])) / k as f64
                })
                .collect();
            (0..k)
                .map(|j| {
                    (0..k)
                        .map(|c| dp[c] * p[c] * (if c == j { 1.0 } else { 0.0 } - p[j]))
                        .sum()
                })
                .collect()
        });
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
            loss: LossKind::SoftCe,
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
