//! The paper's flattening measure (§3.2, App. G): per class, the singular values of the matrix
//! of that class's hidden representations (one row per example); we report, averaged over
//! classes, the largest singular value and the sum of the others, and the same two numbers for
//! all classes together (where the paper found no difference between methods).

use nalgebra::DMatrix;

/// The measure at one mix point.
#[derive(Debug, Clone, PartialEq)]
pub struct Flattening {
    /// Mean over classes of the largest singular value.
    pub largest: f64,
    /// Mean over classes of the sum of the other singular values.
    pub rest: f64,
    /// Largest singular value of all representations together.
    pub all_largest: f64,
    /// Sum of the other singular values of all representations together.
    pub all_rest: f64,
    /// Mean over classes of the k-th largest singular value, k < `SPECTRUM`.
    pub spectrum: Vec<f64>,
}

/// How many of the largest singular values the mean spectrum keeps.
pub const SPECTRUM: usize = 32;

/// Singular values, largest first, of a row-major `[rows, cols]` matrix.
pub fn singular_values(data: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    let mut s: Vec<f64> = DMatrix::from_row_slice(rows, cols, data)
        .singular_values()
        .iter()
        .copied()
        .collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

fn largest_and_rest(s: &[f64]) -> (f64, f64) {
    (s.first().copied().unwrap_or(0.0), s.iter().skip(1).sum())
}

/// The measure for hidden representations `h` (`[n, dim]`, row-major) with `labels`; classes
/// with no example are left out of the class average.
pub fn flattening(h: &[f32], dim: usize, labels: &[usize], classes: usize) -> Flattening {
    let mut per_class = Vec::new();
    for c in 0..classes {
        let rows: Vec<f64> = labels
            .iter()
            .enumerate()
            .filter(|&(_, &l)| l == c)
            .flat_map(|(i, _)| h[i * dim..(i + 1) * dim].iter().map(|&v| v as f64))
            .collect();
        if !rows.is_empty() {
            per_class.push(singular_values(&rows, rows.len() / dim, dim));
        }
    }
    let k = per_class.len().max(1) as f64;
    let all: Vec<f64> = h.iter().map(|&v| v as f64).collect();
    let (all_largest, all_rest) = largest_and_rest(&singular_values(&all, labels.len(), dim));
    let mut spectrum = vec![
        0.0;
        per_class
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .min(SPECTRUM)
    ];
    for s in &per_class {
        for (acc, v) in spectrum.iter_mut().zip(s) {
            *acc += v / k;
        }
    }
    let pairs: Vec<(f64, f64)> = per_class.iter().map(|s| largest_and_rest(s)).collect();
    Flattening {
        largest: pairs.iter().map(|p| p.0).sum::<f64>() / k,
        rest: pairs.iter().map(|p| p.1).sum::<f64>() / k,
        all_largest,
        all_rest,
        spectrum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// U·diag(σ)·Vᵀ with orthonormal columns: U from a rotation of the plane embedded in 4
    /// rows, V a 3×3 rotation, so the singular values are exactly σ.
    fn known(sigma: [f64; 2]) -> Vec<f64> {
        let (a, b) = (0.3f64, 1.1f64);
        let u = [
            [a.cos(), -a.sin()],
            [a.sin(), a.cos()],
            [0.0, 0.0],
            [0.0, 0.0],
        ];
        let v = [
            [b.cos(), -b.sin(), 0.0],
            [b.sin(), b.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        let mut m = vec![0.0; 12];
        for i in 0..4 {
            for j in 0..3 {
                m[i * 3 + j] = (0..2).map(|k| u[i][k] * sigma[k] * v[j][k]).sum();
            }
        }
        m
    }

    #[test]
    fn singular_values_of_a_constructed_matrix() {
        let s = singular_values(&known([5.0, 2.0]), 4, 3);
        assert!(
            (s[0] - 5.0).abs() < 1e-10 && (s[1] - 2.0).abs() < 1e-10 && s[2].abs() < 1e-10,
            "{s:?}"
        );
    }

    #[test]
    fn the_measure_averages_per_class_and_pools_for_all() {
        // Class 0: singular values (5, 2); class 1: (3, 1). Per class: largest (5 + 3)/2 = 4,
        // rest (2 + 1)/2 = 1.5.
        let mut h: Vec<f32> = known([5.0, 2.0]).iter().map(|&v| v as f32).collect();
        h.extend(known([3.0, 1.0]).iter().map(|&v| v as f32));
        let labels = [0, 0, 0, 0, 1, 1, 1, 1];
        let f = flattening(&h, 3, &labels, 3);
        assert!(
            (f.largest - 4.0).abs() < 1e-5 && (f.rest - 1.5).abs() < 1e-5,
            "{f:?}"
        );
        // Mean spectrum: ((5 + 3)/2, (2 + 1)/2, 0).
        assert!(
            (f.spectrum[0] - 4.0).abs() < 1e-5
                && (f.spectrum[1] - 1.5).abs() < 1e-5
                && f.spectrum[2].abs() < 1e-5,
            "{f:?}"
        );
        // Pooled: the same row space, so σ = sqrt(5² + 3²) and sqrt(2² + 1²).
        assert!(
            (f.all_largest - 34f64.sqrt()).abs() < 1e-5 && (f.all_rest - 5f64.sqrt()).abs() < 1e-5,
            "{f:?}"
        );
    }
}
