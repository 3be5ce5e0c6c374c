//! The UCI optical-recognition digits (scikit-learn's `load_digits`): `digits.csv.gz`, 1,797
//! rows of 65 integers — 64 pixels 0..16 of an 8×8 image, row-major, then the label 0..9.
//! There is no standard split; we fix one: 360 test images drawn once by the stream
//! "data/digits-test" of seed 0, the same for every run.

use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;

use super::{DataError, Split};

const HINT: &str = "run `make data` (it takes digits.csv.gz from Debian's python3-sklearn package into data/digits/), or copy sklearn/datasets/data/digits.csv.gz from any scikit-learn install into data/digits/ (or data.dir)";
/// Rows in the file.
pub const ROWS: usize = 1797;
/// Images in the fixed test split.
pub const TEST: usize = 360;

/// The train and test splits; pixels 0..16, `[n, 1, 8, 8]`.
pub fn read(dir: &Path) -> Result<Split, DataError> {
    let path = dir.join("digits.csv.gz");
    let bytes = std::fs::read(&path).map_err(|_| DataError::Missing {
        file: path.display().to_string(),
        also: None,
        hint: HINT.to_string(),
    })?;
    let bad = |problem: String| DataError::Bad {
        file: path.display().to_string(),
        problem,
        hint: HINT.to_string(),
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("gzip data is damaged ({e})")))?;
    let (pixels, labels) = parse(&text).map_err(bad)?;
    let mut idx: Vec<usize> = (0..labels.len()).collect();
    idx.shuffle(&mut crate::rng::stream(0, "data/digits-test"));
    let (mut test, mut train) = (idx[..TEST].to_vec(), idx[TEST..].to_vec());
    test.sort_unstable();
    train.sort_unstable();
    let pick = |rows: &[usize]| {
        (
            rows.iter()
                .flat_map(|&i| pixels[i * 64..(i + 1) * 64].iter().copied())
                .collect(),
            rows.iter().map(|&i| labels[i]).collect(),
        )
    };
    Ok((pick(&train), pick(&test)))
}

/// Parses the CSV: every row 64 pixels in 0..=16 and a label in 0..=9; exactly 1,797 rows.
pub fn parse(text: &str) -> Result<(Vec<u8>, Vec<usize>), String> {
    let mut pixels = Vec::with_capacity(ROWS * 64);
    let mut labels = Vec::with_capacity(ROWS);
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let values: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("row {}: {e}", i + 1))?;
        if values.len() != 65 {
            return Err(format!(
                "row {} has {} values; expected 65 (64 pixels and the label)",
                i + 1,
                values.len()
            ));
        }
        if let Some(v) = values[..64]
            .iter()
            .find(|v| !(0.0..=16.0).contains(*v) || v.fract() != 0.0)
        {
            return Err(format!(
                "row {} has pixel value {v}; pixels are integers 0..16",
                i + 1
            ));
        }
        let label = values[64];
        if !(0.0..=9.0).contains(&label) || label.fract() != 0.0 {
            return Err(format!("row {} has label {label}; labels are 0..9", i + 1));
        }
        pixels.extend(values[..64].iter().map(|&v| v as u8));
        labels.push(label as usize);
    }
    if labels.len() != ROWS {
        return Err(format!(
            "{} rows; expected {ROWS} (truncated?)",
            labels.len()
        ));
    }
    Ok((pixels, labels))
}
