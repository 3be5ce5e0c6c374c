//! The input plane and the hidden plane of a model on 2-D points with a 2-D bottleneck, for
//! plots like the paper's Figure 1 and for its "broad low-confidence region": predicted
//! probabilities on a grid over each plane, the bottleneck states of the training points and of
//! points drawn uniformly over the input plane, and the mean predictive entropy of points drawn
//! uniformly over each plane.
//!
//! Each plane is the bounding box of its points (the training and test inputs; the training
//! points' bottleneck states) widened by 10% on every side. Draws: "evaluate/plane/input" and
//! "evaluate/plane/hidden".

use std::path::Path;

use rand::RngExt;

use super::model::{Model, mean_entropy};
use crate::data::{Dataset, Inputs};
use crate::models::NoMix;
use crate::spec::evaluate::PlaneSettings;
use crate::store::atomic;
use crate::store::records::{PlaneMaps, PlaneScore};
use crate::train::host::DeviceRead;

/// Measures the planes and writes `plane.json` into `out_dir`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    p: &PlaneSettings,
    seed: u64,
    layer: usize,
    model: &Model,
    train: &Dataset,
    test: &Dataset,
    run_dir: &Path,
    out_dir: &Path,
) -> std::io::Result<PlaneScore> {
    let points = |set: &Dataset| match &set.inputs {
        Inputs::Float(x) => x.clone(),
        Inputs::Pixels { .. } => Vec::new(),
    };
    let train_points = points(train);
    let both: Vec<f32> = train_points
        .iter()
        .chain(points(test).iter())
        .copied()
        .collect();
    let input_box = bounding_box(&both);
    let input_probs = probabilities(&model.logits_of(&grid(input_box, p.grid))?, train.classes);

    let mut rng = crate::rng::stream(seed, "evaluate/plane/input");
    let uniform_points = uniform(input_box, p.points, &mut rng);
    let entropy_input = mean_entropy(&model.logits_of(&uniform_points)?, train.classes);
    let (uniform_hidden, _) = model.hidden_of(&uniform_points, layer)?;
    let (train_hidden, _) = model.hidden_of(&train_points, layer)?;

    let hidden_box = bounding_box(&train_hidden);
    let hidden_probs = probabilities(
        &model.logits_from_hidden(&grid(hidden_box, p.grid), layer)?,
        train.classes,
    );
    let mut rng = crate::rng::stream(seed, "evaluate/plane/hidden");
    let entropy_hidden = mean_entropy(
        &model.logits_from_hidden(&uniform(hidden_box, p.points, &mut rng), layer)?,
        train.classes,
    );

    let maps = PlaneMaps {
        layer,
        classes: train.classes,
        grid: p.grid,
        input_box,
        hidden_box,
        input_probs,
        hidden_probs,
        train_points,
        train_labels: train.labels.clone(),
        train_hidden,
        uniform_points,
        uniform_hidden,
        entropy_input,
        entropy_hidden,
    };
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join("plane.json");
    atomic::write_json(&path, &maps)?;
    let file = path
        .strip_prefix(run_dir)
        .unwrap_or(&path)
        .display()
        .to_string();
    Ok(PlaneScore {
        layer,
        entropy_input,
        entropy_hidden,
        file,
    })
}

impl Model {
    fn logits_of(&self, x: &[f32]) -> Result<Vec<f32>, DeviceRead> {
        self.logits(x, 2, &NoMix)
    }
    fn hidden_of(&self, x: &[f32], layer: usize) -> Result<(Vec<f32>, usize), DeviceRead> {
        self.hidden(x, 2, layer)
    }
    fn logits_from_hidden(&self, h: &[f32], layer: usize) -> Result<Vec<f32>, DeviceRead> {
        self.logits_from(h, 2, layer, 2)
    }
}

/// [x_min, x_max, y_min, y_max] of 2-D points, widened by 10% of each side's extent.
pub fn bounding_box(xy: &[f32]) -> [f64; 4] {
    let (mut b, mut any) = ([f64::MAX, f64::MIN, f64::MAX, f64::MIN], false);
    for p in xy.chunks(2) {
        let (x, y) = (p[0] as f64, p[1] as f64);
        b = [b[0].min(x), b[1].max(x), b[2].min(y), b[3].max(y)];
        any = true;
    }
    if !any {
        return [-1.0, 1.0, -1.0, 1.0];
    }
    let (px, py) = (0.1 * (b[1] - b[0]).max(1e-6), 0.1 * (b[3] - b[2]).max(1e-6));
    [b[0] - px, b[1] + px, b[2] - py, b[3] + py]
}

/// `n × n` points spanning the box, x varying fastest (`[n², 2]`).
pub fn grid(b: [f64; 4], n: usize) -> Vec<f32> {
    let at =
        |lo: f64, hi: f64, i: usize| (lo + (hi - lo) * i as f64 / (n - 1).max(1) as f64) as f32;
    (0..n)
        .flat_map(|j| (0..n).flat_map(move |i| [at(b[0], b[1], i), at(b[2], b[3], j)]))
        .collect()
}

fn uniform(b: [f64; 4], n: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
    (0..n)
        .flat_map(|_| {
            [
                rng.random_range(b[0]..=b[1]) as f32,
                rng.random_range(b[2]..=b[3]) as f32,
            ]
        })
        .collect()
}

/// Softmax of each row of logits.
fn probabilities(logits: &[f32], classes: usize) -> Vec<f32> {
    logits
        .chunks(classes)
        .flat_map(|z| {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = z.iter().map(|&v| (v - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / sum)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_spans_the_box_with_x_fastest() {
        let g = grid([0.0, 2.0, -1.0, 1.0], 3);
        assert_eq!(g.len(), 18);
        assert_eq!(&g[..6], &[0.0, -1.0, 1.0, -1.0, 2.0, -1.0]);
        assert_eq!(&g[16..], &[2.0, 1.0]);
    }

    #[test]
    fn the_box_is_widened_by_a_tenth() {
        assert_eq!(
            bounding_box(&[0.0, 0.0, 10.0, 20.0]),
            [-1.0, 11.0, -2.0, 22.0]
        );
    }
}
