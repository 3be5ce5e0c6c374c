//! CIFAR-10 and CIFAR-100, binary version: fixed-size records of label byte(s) and 3,072 pixel
//! bytes (the red, green and blue 32×32 planes, row-major). CIFAR-10: `data_batch_1..5.bin`
//! and `test_batch.bin`, 10,000 records each, one label byte. CIFAR-100: `train.bin` (50,000)
//! and `test.bin` (10,000), two label bytes (coarse, fine); we use the fine label.

use std::path::Path;

use super::DataError;

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar {
    Ten,
    Hundred,
}

impl Cifar {
    fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::Hundred => 2,
        }
    }
    fn files(self, train: bool) -> Vec<(&'static str, usize)> {
        match (self, train) {
            (Cifar::Ten, true) => vec![
                ("data_batch_1.bin", 10_000),
                ("data_batch_2.bin", 10_000),
                ("data_batch_3.bin", 10_000),
                ("data_batch_4.bin", 10_000),
                ("data_batch_5.bin", 10_000),
            ],
            (Cifar::Ten, false) => vec![("test_batch.bin", 10_000)],
            (Cifar::Hundred, true) => vec![("train.bin", 50_000)],
            (Cifar::Hundred, false) => vec![("test.bin", 10_000)],
        }
    }
    pub fn classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }
    fn hint(self) -> &'static str {
        match self {
            Cifar::Ten => {
                "the binary version, cifar-10-binary.tar.gz (about 163 MB) from https://www.cs.toronto.edu/~kriz/cifar.html, unpacked: its folder cifar-10-batches-bin/ holds these files"
            }
            Cifar::Hundred => {
                "the binary version, cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, unpacked: its folder cifar-100-binary/ holds these files"
            }
        }
    }
}

/// Pixels (`[n, 3, 32, 32]` bytes) and labels of the train or test split in `dir`.
pub fn read(dir: &Path, which: Cifar, train: bool) -> Result<(Vec<u8>, Vec<usize>), DataError> {
    let record = which.label_bytes() + PIXELS;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (name, records) in which.files(train) {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|_| DataError::Missing {
            file: path.display().to_string(),
            also: None,
            hint: which.hint().to_string(),
        })?;
        let bad = |problem: String| DataError::Bad {
            file: path.display().to_string(),
            problem,
            hint: which.hint().to_string(),
        };
        if bytes.len() != records * record {
            return Err(bad(format!(
                "{} bytes; expected {records} records of {record} bytes = {} (truncated, or not the binary version)",
                bytes.len(),
                records * record
            )));
        }
        let (p, l) = parse_records(&bytes, which).map_err(bad)?;
        pixels.extend(p);
        labels.extend(l);
    }
    Ok((pixels, labels))
}

/// Pixels and labels of a buffer of whole records (the fine label for CIFAR-100).
pub fn parse_records(bytes: &[u8], which: Cifar) -> Result<(Vec<u8>, Vec<usize>), String> {
    let record = which.label_bytes() + PIXELS;
    if !bytes.len().is_multiple_of(record) {
        return Err(format!(
            "{} bytes is not a whole number of {record}-byte records",
            bytes.len()
        ));
    }
    let mut pixels = Vec::with_capacity(bytes.len() / record * PIXELS);
    let mut labels = Vec::with_capacity(bytes.len() / record);
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[which.label_bytes() - 1] as usize;
        if label >= which.classes() {
            return Err(format!(
                "record {i} has label {label}; labels are 0..{}",
                which.classes() - 1
            ));
        }
        labels.push(label);
        pixels.extend_from_slice(&r[which.label_bytes()..]);
    }
    Ok((pixels, labels))
}
