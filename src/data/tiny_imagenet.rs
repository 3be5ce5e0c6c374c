//! Tiny-ImageNet (`tiny-imagenet-200/`): 200 classes named by WordNet ids in `wnids.txt`;
//! training images `train/<wnid>/images/*.JPEG`; the labelled validation images
//! `val/images/*.JPEG` with `val/val_annotations.txt` (file, wnid, box), used as the test set as
//! in the official code. Class k is the k-th wnid in sorted order (torchvision ImageFolder's
//! order). Images are 64×64 JPEGs, some grey: all are read as RGB. Decoding runs in parallel.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{DataError, Split};

const HINT: &str = "tiny-imagenet-200.zip (about 237 MB) from http://cs231n.stanford.edu/tiny-imagenet-200.zip, unzipped into data/tiny-imagenet-200/ (or data.dir)";
pub const CLASSES: usize = 200;

fn missing(path: &Path) -> DataError {
    DataError::Missing {
        file: path.display().to_string(),
        also: None,
        hint: HINT.to_string(),
    }
}

fn bad(path: &Path, problem: String) -> DataError {
    DataError::Bad {
        file: path.display().to_string(),
        problem,
        hint: HINT.to_string(),
    }
}

/// ((train pixels `[n, 3, 64, 64]`, labels), (val pixels, labels)).
pub fn read(dir: &Path) -> Result<Split, DataError> {
    let (train_files, val_files) = list(dir)?;
    Ok((decode_all(&train_files)?, decode_all(&val_files)?))
}

/// Checks the tree — class ids, a non-empty image folder per class, the validation annotations
/// and that every annotated image exists — without decoding any image.
pub fn check(dir: &Path) -> Result<(), DataError> {
    let (_, val_files) = list(dir)?;
    match val_files.iter().find(|(path, _)| !path.is_file()) {
        Some((path, _)) => Err(missing(path)),
        None => Ok(()),
    }
}

/// The training and validation image files with their labels.
type Files = Vec<(PathBuf, usize)>;

fn list(dir: &Path) -> Result<(Files, Files), DataError> {
    let wnids_path = dir.join("wnids.txt");
    let text = std::fs::read_to_string(&wnids_path).map_err(|_| missing(&wnids_path))?;
    let mut wnids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    wnids.sort();
    if wnids.len() != CLASSES {
        return Err(bad(
            &wnids_path,
            format!("{} class ids; Tiny-ImageNet has {CLASSES}", wnids.len()),
        ));
    }
    let mut train_files: Files = Vec::new();
    for (label, wnid) in wnids.iter().enumerate() {
        let folder = dir.join("train").join(wnid).join("images");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(|_| missing(&folder))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_jpeg(p))
            .collect();
        if files.is_empty() {
            return Err(bad(&folder, "no .JPEG images".into()));
        }
        files.sort();
        train_files.extend(files.into_iter().map(|f| (f, label)));
    }
    let ann_path = dir.join("val").join("val_annotations.txt");
    let ann = std::fs::read_to_string(&ann_path).map_err(|_| missing(&ann_path))?;
    let mut val_files = Vec::new();
    for (i, line) in ann.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let mut fields = line.split('\t');
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return Err(bad(
                &ann_path,
                format!("line {}: expected `file<TAB>wnid<TAB>box`", i + 1),
            ));
        };
        let Ok(label) = wnids.binary_search_by(|w| w.as_str().cmp(wnid)) else {
            return Err(bad(
                &ann_path,
                format!("line {}: class id {wnid} is not in wnids.txt", i + 1),
            ));
        };
        val_files.push((dir.join("val").join("images").join(file), label));
    }
    Ok((train_files, val_files))
}

fn is_jpeg(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jpeg") || e.eq_ignore_ascii_case("jpg"))
}

fn decode_all(files: &[(PathBuf, usize)]) -> Result<(Vec<u8>, Vec<usize>), DataError> {
    let images: Vec<Vec<u8>> = files
        .par_iter()
        .map(|(path, _)| decode(path))
        .collect::<Result<_, _>>()?;
    Ok((images.concat(), files.iter().map(|(_, l)| *l).collect()))
}

/// One 64×64 image as RGB planes.
fn decode(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|_| missing(path))?;
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .map_err(|e| bad(path, format!("not a readable JPEG ({e})")))?
        .to_rgb8();
    if img.dimensions() != (64, 64) {
        return Err(bad(
            path,
            format!(
                "{}×{} pixels; Tiny-ImageNet images are 64×64",
                img.width(),
                img.height()
            ),
        ));
    }
    let mut planes = vec![0u8; 3 * 64 * 64];
    for (i, px) in img.pixels().enumerate() {
        for ch in 0..3 {
            planes[ch * 4096 + i] = px.0[ch];
        }
    }
    Ok(planes)
}
