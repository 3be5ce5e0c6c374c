//! Expected calibration error (Guo et al. 2017): predictions binned by confidence (the top
//! class's probability) into equal-width bins over [0, 1]; ECE = Σ_b (|B_b| / n) ·
//! |accuracy(B_b) − mean confidence(B_b)|. A confidence of exactly 0 goes to the first bin, any
//! other c to bin ⌈c·bins⌉ − 1, so each bin is (lo, hi] as in the reference implementation.

/// ECE of predictions given as (confidence, correct) pairs, over `bins` bins.
pub fn expected_calibration_error(predictions: &[(f64, bool)], bins: usize) -> f64 {
    if predictions.is_empty() || bins == 0 {
        return 0.0;
    }
    let mut count = vec![0usize; bins];
    let mut conf = vec![0.0; bins];
    let mut hits = vec![0usize; bins];
    for &(c, correct) in predictions {
        let b = ((c * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[b] += 1;
        conf[b] += c;
        hits[b] += correct as usize;
    }
    let n = predictions.len() as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let k = count[b] as f64;
            (k / n) * (hits[b] as f64 / k - conf[b] / k).abs()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_by_hand() {
        // Perfect calibration: in the 0.8 bin, 4 of 5 right; in the 0.6 bin, 3 of 5 right.
        let mut p: Vec<(f64, bool)> = (0..5).map(|i| (0.8, i < 4)).collect();
        p.extend((0..5).map(|i| (0.6, i < 3)));
        assert!(expected_calibration_error(&p, 15) < 1e-12);
        // Over-confident: 10 predictions at 0.9, half right → ECE = |0.5 − 0.9| = 0.4.
        let q: Vec<(f64, bool)> = (0..10).map(|i| (0.9, i % 2 == 0)).collect();
        assert!((expected_calibration_error(&q, 15) - 0.4).abs() < 1e-12);
        // Two bins weighted by size: 3 at 1.0 all right (gap 0), 1 at 0.5 wrong (gap 0.5)
        // → ECE = ¼·0.5 = 0.125.
        let r = [(1.0, true), (1.0, true), (1.0, true), (0.5, false)];
        assert!((expected_calibration_error(&r, 15) - 0.125).abs() < 1e-12);
    }
}
