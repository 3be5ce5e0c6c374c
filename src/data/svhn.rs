//! SVHN, cropped digits (`train_32x32.mat`, `test_32x32.mat`): MATLAB v5 files read with the
//! `matfile` crate. X is a 32×32×3×N uint8 array in MATLAB's column-major order (rows vary
//! fastest, then columns, channels, images); y is N×1 with labels 1..10, where 10 is the digit 0.
//! We return images as `[n, 3, 32, 32]` bytes (channel planes, row-major) and labels 0..9.

use std::path::Path;

use super::DataError;

const HINT: &str = "the cropped-digits files train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ (about 182 MB and 64 MB), in data/svhn/ (or data.dir)";

/// Pixels and labels of the train or test file in `dir`.
pub fn read(dir: &Path, train: bool) -> Result<(Vec<u8>, Vec<usize>), DataError> {
    let path = dir.join(if train {
        "train_32x32.mat"
    } else {
        "test_32x32.mat"
    });
    let bytes = std::fs::read(&path).map_err(|_| DataError::Missing {
        file: path.display().to_string(),
        also: None,
        hint: HINT.to_string(),
    })?;
    parse(&bytes).map_err(|problem| DataError::Bad {
        file: path.display().to_string(),
        problem,
        hint: HINT.to_string(),
    })
}

/// Parses a whole SVHN .mat file.
pub fn parse(bytes: &[u8]) -> Result<(Vec<u8>, Vec<usize>), String> {
    let mat = matfile::MatFile::parse(bytes)
        .map_err(|e| format!("not a readable MATLAB v5 file ({e})"))?;
    let x = mat
        .find_by_name("X")
        .ok_or("no variable `X` (the images)")?;
    let y = mat
        .find_by_name("y")
        .ok_or("no variable `y` (the labels)")?;
    let size = x.size();
    let n = match size.as_slice() {
        [32, 32, 3, n] => *n,
        [32, 32, 3] => 1,
        other => return Err(format!("X has size {other:?}; expected [32, 32, 3, N]")),
    };
    let matfile::NumericData::UInt8 { real: xs, .. } = x.data() else {
        return Err("X is not uint8".into());
    };
    let labels: Vec<f64> = match y.data() {
        matfile::NumericData::Double { real, .. } => real.clone(),
        matfile::NumericData::UInt8 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        _ => return Err("y is neither double nor uint8".into()),
    };
    if labels.len() != n {
        return Err(format!("{} labels for {n} images", labels.len()));
    }
    let mut out = vec![0u8; n * 3 * 32 * 32];
    for img in 0..n {
        for ch in 0..3 {
            for r in 0..32 {
                for c in 0..32 {
                    out[((img * 3 + ch) * 32 + r) * 32 + c] =
                        xs[r + 32 * c + 1024 * ch + 3072 * img];
                }
            }
        }
    }
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if (1.0..=10.0).contains(&l) && l.fract() == 0.0 {
                Ok(l as usize % 10)
            } else {
                Err(format!("label {i} is {l}; SVHN labels are 1..10"))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, labels))
}
