//! The 2-D spirals: two interleaved arms, the data set of the paper's Figure 1.
//!
//! The paper does not give its generator (reference §"2-D spirals"). Ours: point i belongs to
//! class c = i mod 2 (balanced); t ~ U(0, 1); the point is
//! t·(cos θ, sin θ) + noise·N(0, I) with θ = 2π·turns·t + π·c, so the arms are rotations of each
//! other by half a turn and fill the disc of radius 1.

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

use super::{Dataset, Inputs};
use crate::rng::stream;

/// `n` points from the stream `stream_name` of `seed`.
pub fn generate(n: usize, noise: f64, turns: f64, seed: u64, stream_name: &str) -> Dataset {
    let mut rng = stream(seed, stream_name);
    let mut inputs = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        let t: f64 = rng.random();
        let theta = 2.0 * std::f64::consts::PI * turns * t + std::f64::consts::PI * class as f64;
        let nx: f64 = StandardNormal.sample(&mut rng);
        let ny: f64 = StandardNormal.sample(&mut rng);
        inputs.push((t * theta.cos() + noise * nx) as f32);
        inputs.push((t * theta.sin() + noise * ny) as f32);
        labels.push(class);
    }
    Dataset {
        inputs: Inputs::Float(inputs),
        labels,
        shape: vec![2],
        classes: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_are_balanced_reproducible_and_mirror_images() {
        let a = generate(1000, 0.0, 1.5, 3, "data/train");
        assert_eq!(a, generate(1000, 0.0, 1.5, 3, "data/train"));
        assert_eq!(a.labels.iter().filter(|&&c| c == 1).count(), 500);
        // Without noise every point lies on its arm: radius t and angle 2π·1.5·t + π·c.
        for (i, &c) in a.labels.iter().enumerate() {
            let row = a.gather(&[i]);
            let (x, y) = (row[0] as f64, row[1] as f64);
            let r = (x * x + y * y).sqrt();
            let theta = 2.0 * std::f64::consts::PI * 1.5 * r + std::f64::consts::PI * c as f64;
            assert!((x - r * theta.cos()).abs() < 1e-4 && (y - r * theta.sin()).abs() < 1e-4);
        }
        assert_ne!(a.inputs, generate(1000, 0.0, 1.5, 3, "data/test").inputs);
        assert_eq!(a.features(), 2);
    }
}
