//! The regularisers the paper's Figure 2 sets beside mixing on the spirals, applied in training
//! only: Gaussian noise on the inputs (`train.input_noise`) and dropout on every hidden layer
//! but the bottleneck (`model.dropout`; batch norm and weight decay live in the model and the
//! optimiser). Each minibatch draws from a stream named for it and its (epoch, minibatch), so a
//! resumed run draws the same noise and masks.

use std::cell::RefCell;

use burn::prelude::*;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::models::MixHook;

/// The stream of one kind of training noise for one minibatch.
pub fn stream(seed: u64, what: &str, epoch: usize, step: usize) -> ChaCha8Rng {
    crate::rng::stream(seed, &format!("{what}/{epoch}/{step}"))
}

/// Adds N(0, σ²) to every input value.
pub fn add_input_noise(x: &mut [f32], sigma: f64, rng: &mut ChaCha8Rng) {
    for v in x {
        *v += (sigma * Distribution::<f64>::sample(&StandardNormal, rng)) as f32;
    }
}

/// A hook that applies inverted dropout (keep with probability 1 − p, scale kept units by
/// 1/(1 − p)) at every hidden mix point except `spare` (the bottleneck) and the input, then
/// hands the state to `inner` (the mixing, or none).
pub struct Dropout<'a, H: MixHook> {
    pub inner: &'a H,
    pub p: f64,
    pub spare: usize,
    pub rng: RefCell<ChaCha8Rng>,
}

impl<H: MixHook> MixHook for Dropout<'_, H> {
    fn at<const D: usize>(&self, k: usize, h: Tensor<D>) -> Tensor<D> {
        if k == 0 || k == self.spare || self.p <= 0.0 {
            return self.inner.at(k, h);
        }
        let dims = h.dims();
        let n: usize = dims.iter().product();
        let keep = 1.0 - self.p;
        let mut rng = self.rng.borrow_mut();
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if rng.random::<f64>() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::<1>::from_data(TensorData::new(mask, [n]), &h.device()).reshape(dims);
        self.inner.at(k, h * mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::NoMix;

    #[test]
    fn dropout_zeroes_about_p_and_keeps_the_mean() {
        // 20,000 ones at p = 0.5: about half survive, each scaled to 2, so the mean stays ≈ 1;
        // the input (k = 0) and the spared layer pass through untouched.
        let device = Device::flex();
        let hook = Dropout {
            inner: &NoMix,
            p: 0.5,
            spare: 4,
            rng: RefCell::new(crate::rng::stream(0, "test")),
        };
        let ones = || Tensor::<2>::ones([100, 200], &device);
        let v: Vec<f32> = hook.at(1, ones()).into_data().try_to_vec().unwrap();
        let zeros = v.iter().filter(|&&x| x == 0.0).count() as f64 / v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!(
            (zeros - 0.5).abs() < 0.02 && (mean - 1.0).abs() < 0.04,
            "zeros {zeros}, mean {mean}"
        );
        assert!(v.iter().all(|&x| x == 0.0 || x == 2.0));
        for k in [0, 4] {
            let same: Vec<f32> = hook.at(k, ones()).into_data().try_to_vec().unwrap();
            assert!(same.iter().all(|&x| x == 1.0));
        }
    }
}
