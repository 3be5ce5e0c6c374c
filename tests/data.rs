//! Real data in its real formats. Fashion-MNIST comes from Debian's `dataset-fashion-mnist`
//! (`make data` fetches it; CI installs it), so these tests read the genuine files; CIFAR's
//! binary layout is checked on files written here byte for byte in that layout.

use std::fs;
use std::path::Path;
use std::process::Command;

use mixsweep::data::{self, Inputs};
use mixsweep::spec::types::{Augment, DataSpec, ImageData};

mod common;
use common::*;

fn fashion(train_subset: usize, val_split: usize) -> DataSpec {
    DataSpec::FashionMnist(ImageData {
        dir: None,
        train_subset,
        val_split,
        seed: 0,
        augment: vec![],
    })
}

fn fashion_dir() -> std::path::PathBuf {
    let Some((set, opts)) = fashion(0, 0).image().map(|(s, o)| (s, o.clone())) else {
        unreachable!()
    };
    data::locate(set, &opts)
}

#[test]
fn fashion_mnist_files_match_their_published_checksums() {
    // MD5 of the uncompressed files, as published by Zalando Research (and listed in
    // shared/reference/datasets.md).
    let dir = fashion_dir();
    for (file, md5) in [
        (
            "train-images-idx3-ubyte.gz",
            "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "9018921c3c673c538a1fc5bad174d6f9",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "8181f5470baa50b63fa0f6fddb340f0a",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "15d484375f8d13e6eb1aabb0c3f46965",
        ),
    ] {
        let path = dir.join(file);
        assert!(
            path.exists(),
            "{} is missing: run `make data`",
            path.display()
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -dc '{}' | md5sum", path.display()))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next(),
            Some(md5),
            "{file}"
        );
    }
}

#[test]
fn fashion_mnist_loads_whole_balanced_and_normalised() {
    let splits = data::load(&fashion(0, 0)).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (60_000, 10_000));
    assert_eq!(splits.train.shape, vec![1, 28, 28]);
    // 6,000 training and 1,000 test images per class (the published split).
    for c in 0..10 {
        assert_eq!(
            splits.train.labels.iter().filter(|&&l| l == c).count(),
            6_000
        );
        assert_eq!(
            splits.test.labels.iter().filter(|&&l| l == c).count(),
            1_000
        );
    }
    // The first labels as `gzip -dc train-labels-idx1-ubyte.gz | od -An -tu1 -j8 -N10` prints.
    assert_eq!(&splits.train.labels[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert_eq!(&splits.test.labels[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    // Normalised with the training set's mean 0.2860 and std 0.3530: mean ≈ 0, std ≈ 1.
    let rows: Vec<usize> = (0..60_000).step_by(7).collect();
    let x = splits.train.gather(&rows);
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
    assert!(
        mean.abs() < 0.01 && (var.sqrt() - 1.0).abs() < 0.01,
        "mean {mean}, std {}",
        var.sqrt()
    );
}

#[test]
fn subsets_and_validation_splits_are_seeded_and_disjoint() {
    let a = data::load(&fashion(1000, 500)).unwrap();
    let b = data::load(&fashion(1000, 500)).unwrap();
    assert_eq!(a.train.len(), 1000);
    assert_eq!(a.val.as_ref().map(|v| v.len()), Some(500));
    assert_eq!(a.train, b.train);
    let (Inputs::Pixels { data: t, .. }, Some(Inputs::Pixels { data: v, .. })) =
        (&a.train.inputs, a.val.as_ref().map(|v| &v.inputs))
    else {
        panic!("pixels expected")
    };
    // No training image is also a validation image (compare whole images).
    let train: std::collections::HashSet<&[u8]> = t.chunks(784).collect();
    assert!(v.chunks(784).all(|img| !train.contains(img)));
    let other = data::load(&DataSpec::FashionMnist(ImageData {
        dir: None,
        train_subset: 1000,
        val_split: 500,
        seed: 1,
        augment: vec![Augment::Flip],
    }))
    .unwrap();
    assert_ne!(
        a.train, other.train,
        "another data seed draws another subset"
    );
}

/// Writes the CIFAR-10 binary files: record i of file f has label (f + i) % 10 and pixels
/// p = (i + channel + row) % 256 so that the plane order can be checked.
fn write_cifar10(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for (f, name) in files.iter().enumerate() {
        let mut bytes = Vec::with_capacity(10_000 * 3073);
        for i in 0..10_000 {
            bytes.push(((f + i) % 10) as u8);
            for ch in 0..3 {
                for row in 0..32 {
                    bytes.extend(std::iter::repeat_n(((i + ch * 50 + row) % 256) as u8, 32));
                }
            }
        }
        fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn cifar10_binary_records_load_and_bad_files_are_named() {
    let tmp = mixsweep::testing::TempDir::new().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    write_cifar10(&dir);
    let spec = DataSpec::Cifar10(ImageData {
        dir: Some(dir.display().to_string()),
        train_subset: 0,
        val_split: 0,
        seed: 0,
        augment: vec![],
    });
    let s = data::load(&spec).unwrap();
    assert_eq!(
        (s.train.len(), s.test.len(), s.train.shape.clone()),
        (50_000, 10_000, vec![3, 32, 32])
    );
    assert_eq!(
        s.train.labels[10_000 + 3],
        4,
        "file 2, record 3: (1 + 3) % 10"
    );
    let Inputs::Pixels { data: px, .. } = &s.train.inputs else {
        panic!()
    };
    // Record 7 of file 1: the green plane (channel 1), row 2 holds (7 + 50 + 2) % 256.
    assert_eq!(px[7 * 3072 + 1024 + 2 * 32 + 5], 59);

    // A truncated batch: the error names the file, the size found and the size expected.
    let bytes = fs::read(dir.join("data_batch_3.bin")).unwrap();
    fs::write(dir.join("data_batch_3.bin"), &bytes[..bytes.len() - 100]).unwrap();
    let err = data::load(&spec).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_3.bin")
            && err.contains("30729900 bytes")
            && err.contains("30730000")
            && err.contains("binary version"),
        "{err}"
    );
    fs::remove_file(dir.join("test_batch.bin")).unwrap();
    fs::write(dir.join("data_batch_3.bin"), &bytes).unwrap();
    let err = data::load(&spec).unwrap_err().to_string();
    assert!(
        err.contains("test_batch.bin: not found") && err.contains("cifar-10-binary.tar.gz"),
        "{err}"
    );
}

#[test]
fn a_truncated_or_missing_idx_file_is_named_with_the_fix() {
    let tmp = mixsweep::testing::TempDir::new().unwrap();
    let dir = tmp.path().join("fm");
    fs::create_dir_all(&dir).unwrap();
    let src = fashion_dir();
    for f in [
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let spec = DataSpec::FashionMnist(ImageData {
        dir: Some(dir.display().to_string()),
        train_subset: 0,
        val_split: 0,
        seed: 0,
        augment: vec![],
    });
    let err = data::load(&spec).unwrap_err().to_string();
    assert!(
        err.contains("train-images-idx3-ubyte: not found") && err.contains("make data"),
        "{err}"
    );
    let gz = fs::read(src.join("train-images-idx3-ubyte.gz")).unwrap();
    fs::write(dir.join("train-images-idx3-ubyte.gz"), &gz[..gz.len() / 2]).unwrap();
    let err = data::load(&spec).unwrap_err().to_string();
    assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
}

#[test]
fn conv_nets_train_on_fashion_mnist_with_every_method_end_to_end() {
    let sb = Sandbox::new();
    sb.write(
        "f.yaml",
        r#"name: fm
base:
  data: { name: fashion_mnist, train_subset: 256, val_split: 64, augment: [crop2, flip] }
  model: { name: preact_resnet, depth: 18, width: 4 }
  train: { optimizer: sgd, lr: 0.05, epochs: 1, batch_size: 64 }
evaluate:
  examples: 50
  fgsm: [0.03]
  rotate: [20]
  shear: [28.6]
  zoom_in: [60]
  zoom_out: [140]
  noise: [0.1]
  flattening: [4]
seeds: [0]
grid:
  - { method: [erm] }
  - { method: [input_mixup], alpha: [1.0] }
  - { method: [manifold_mixup], alpha: [2.0], layers: [[0, 1, 2]] }
  - { method: [cutout], cutout: [8] }
"#,
    );
    let out = sb.run(&["sweep", "f.yaml", "--threads", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let dirs = sb.run_dirs("fm");
    assert_eq!(dirs.len(), 4);
    for d in &dirs {
        let r = result(d);
        assert!(
            r["final_metrics"]["test_error"].as_f64().unwrap() < 0.9,
            "{r}"
        );
        assert!(r["best_on_validation"]["val_error"].as_f64().is_some());
        // Evaluated twice: the final model and the model the validation rule selected, each
        // with every deformation on the same 50 test images.
        let evals = r["evaluations"].as_array().unwrap();
        assert_eq!(
            evals
                .iter()
                .map(|e| e["model"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["final", "best_on_validation"]
        );
        assert_eq!(evals[1]["epoch"], r["best_on_validation"]["epoch"]);
        for e in evals {
            let kinds: Vec<&str> = e["perturbations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["perturbation"].as_str().unwrap())
                .collect();
            assert_eq!(kinds, ["rotate", "shear", "zoom_in", "zoom_out", "noise"]);
            for p in e["perturbations"]
                .as_array()
                .unwrap()
                .iter()
                .chain(e["attacks"].as_array().unwrap())
            {
                assert_eq!(p["examples"], 50);
                assert!((0.0..=1.0).contains(&p["error"].as_f64().unwrap()), "{p}");
            }
            assert!(e["flattening"][0]["largest"].as_f64().unwrap() > 0.0);
        }
    }
    assert!(dirs.iter().any(|d| {
        d.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("cutout-c8-s0")
    }));
}

#[test]
fn real_cifar_pixels_repacked_from_foolbox_load_with_the_right_labels() {
    // tests/fixtures/cifar{10,100}-test20.bin: the first 20 test images of each set, real
    // pixels from the PNGs PyPI's foolbox 3.3.4 wheel ships, repacked into the binary record
    // layout by scripts/make-cifar-fixture.py. Expected labels: CIFAR-10's first 20 test labels
    // as published (3 8 8 0 6 6 1 6 3 1 …), CIFAR-100's fine labels as foolbox names them.
    use mixsweep::data::cifar::{Cifar, parse_records};
    let c10 = fs::read("tests/fixtures/cifar10-test20.bin").unwrap();
    let (px, labels) = parse_records(&c10, Cifar::Ten).unwrap();
    assert_eq!(
        labels,
        vec![3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    );
    assert_eq!(px.len(), 20 * 3072);
    // Real photographs: every image has many distinct values and is not flat.
    for img in px.chunks(3072) {
        let distinct: std::collections::HashSet<u8> = img.iter().copied().collect();
        assert!(distinct.len() > 40, "{} distinct values", distinct.len());
    }
    let c100 = fs::read("tests/fixtures/cifar100-test20.bin").unwrap();
    let (_, labels) = parse_records(&c100, Cifar::Hundred).unwrap();
    assert_eq!(
        labels,
        vec![
            49, 33, 72, 51, 71, 92, 15, 14, 23, 0, 71, 75, 81, 69, 40, 43, 92, 97, 70, 53
        ]
    );
    // A record cut short is named.
    assert!(
        parse_records(&c10[..c10.len() - 1], Cifar::Ten)
            .unwrap_err()
            .contains("whole number")
    );
}

#[test]
fn svhn_mat_files_load_in_the_right_axis_order_with_digit_zero_as_ten() {
    // tests/fixtures/svhn-mini*.mat were written by scipy.io.savemat in SVHN's format
    // (scripts/make-svhn-fixture.py): X[r, c, ch, n] = (7n + 3r + 5c + 50ch) % 256 and
    // y = [1, 10, 3, 10, 9, 5]; one file plain, one with zlib-compressed elements.
    for file in [
        "tests/fixtures/svhn-mini.mat",
        "tests/fixtures/svhn-mini-z.mat",
    ] {
        let (px, labels) = mixsweep::data::svhn::parse(&fs::read(file).unwrap()).unwrap();
        assert_eq!(labels, vec![1, 0, 3, 0, 9, 5], "{file}");
        for (n, ch, r, c) in [(0, 0, 0, 0), (5, 2, 31, 7), (3, 1, 4, 30)] {
            assert_eq!(
                px[((n * 3 + ch) * 32 + r) * 32 + c] as usize,
                (7 * n + 3 * r + 5 * c + 50 * ch) % 256,
                "{file} n{n} ch{ch} r{r} c{c}"
            );
        }
    }
    let err = mixsweep::data::svhn::parse(b"MATLAB 5.0 MAT-file, not really").unwrap_err();
    assert!(err.contains("MATLAB v5"), "{err}");
}

#[test]
fn uci_digits_load_with_a_fixed_split() {
    let spec = DataSpec::Digits(ImageData {
        dir: None,
        train_subset: 0,
        val_split: 0,
        seed: 0,
        augment: vec![],
    });
    let s = data::load(&spec).unwrap_or_else(|e| panic!("{e}\nrun `make data`"));
    assert_eq!(
        (s.train.len(), s.test.len(), s.train.shape.clone()),
        (1437, 360, vec![1, 8, 8])
    );
    // The split does not depend on the run's data seed.
    let other = data::load(&DataSpec::Digits(ImageData {
        dir: None,
        train_subset: 0,
        val_split: 0,
        seed: 9,
        augment: vec![],
    }))
    .unwrap();
    assert_eq!(s.test, other.test);
    // Normalised with the mean 0.3053 and std 0.3760 of all 1,797 images (pixel / 16).
    let all: Vec<f32> = s
        .train
        .gather(&(0..1437).collect::<Vec<_>>())
        .into_iter()
        .chain(s.test.gather(&(0..360).collect::<Vec<_>>()))
        .collect();
    let mean = all.iter().map(|&v| v as f64).sum::<f64>() / all.len() as f64;
    assert!(mean.abs() < 0.001, "{mean}");
    // Every class is there, about 180 images each (the set has 174 to 183 per class).
    for c in 0..10 {
        let n = s
            .train
            .labels
            .iter()
            .chain(&s.test.labels)
            .filter(|&&l| l == c)
            .count();
        assert!((174..=183).contains(&n), "class {c}: {n}");
    }
}

/// A Tiny-ImageNet tree: 200 classes with two 64×64 training JPEGs each (class k is grey
/// level k), and three validation images.
fn write_tiny(dir: &Path) {
    let wnids: Vec<String> = (0..200).map(|k| format!("n{:08}", 1000 - k)).collect();
    fs::create_dir_all(dir.join("val/images")).unwrap();
    fs::write(dir.join("wnids.txt"), wnids.join("\n")).unwrap();
    let jpeg = |level: u8| {
        let img = image::RgbImage::from_pixel(64, 64, image::Rgb([level, level, 255 - level]));
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        bytes
    };
    for w in &wnids {
        let folder = dir.join("train").join(w).join("images");
        fs::create_dir_all(&folder).unwrap();
        let k = 1000 - w[1..].parse::<usize>().unwrap();
        for i in 0..2 {
            fs::write(folder.join(format!("{w}_{i}.JPEG")), jpeg(k as u8)).unwrap();
        }
    }
    let mut ann = String::new();
    for (i, w) in [&wnids[5], &wnids[0], &wnids[199]].iter().enumerate() {
        fs::write(dir.join(format!("val/images/val_{i}.JPEG")), jpeg(7)).unwrap();
        ann.push_str(&format!("val_{i}.JPEG\t{w}\t0\t0\t63\t63\n"));
    }
    fs::write(dir.join("val/val_annotations.txt"), ann).unwrap();
}

#[test]
fn tiny_imagenet_trees_load_with_imagefolder_class_order() {
    let tmp = mixsweep::testing::TempDir::new().unwrap();
    let dir = tmp.path().join("tiny-imagenet-200");
    write_tiny(&dir);
    let spec = DataSpec::TinyImagenet(ImageData {
        dir: Some(dir.display().to_string()),
        train_subset: 0,
        val_split: 0,
        seed: 0,
        augment: vec![],
    });
    let s = data::load(&spec).unwrap();
    assert_eq!(
        (s.train.len(), s.test.len(), s.train.shape.clone()),
        (400, 3, vec![3, 64, 64])
    );
    // Classes are the sorted wnids: n00000801 (written as class 199) is class 0.
    assert_eq!(&s.train.labels[..4], &[0, 0, 1, 1]);
    // Validation labels: wnids[5] = n00000995 sorts to 194; wnids[0] → 199; wnids[199] → 0.
    assert_eq!(s.test.labels, vec![194, 199, 0]);
    let Inputs::Pixels { data: px, .. } = &s.train.inputs else {
        panic!()
    };
    // Class 0's images are grey level 199 in R and G, 56 in B (JPEG rounding allowed).
    assert!(
        (px[0] as i32 - 199).abs() <= 2 && (px[2 * 4096] as i32 - 56).abs() <= 2,
        "{} {}",
        px[0],
        px[2 * 4096]
    );

    // The pre-sweep check lists the tree without decoding; a missing annotated image fails it.
    assert!(data::check(&spec).is_ok());
    fs::rename(
        dir.join("val/images/val_2.JPEG"),
        dir.join("val/images/moved.JPEG"),
    )
    .unwrap();
    let err = data::check(&spec).unwrap_err().to_string();
    assert!(err.contains("val_2.JPEG: not found"), "{err}");
    fs::rename(
        dir.join("val/images/moved.JPEG"),
        dir.join("val/images/val_2.JPEG"),
    )
    .unwrap();

    let small = image::RgbImage::from_pixel(32, 32, image::Rgb([1, 2, 3]));
    small
        .save_with_format(dir.join("val/images/val_1.JPEG"), image::ImageFormat::Jpeg)
        .unwrap();
    let err = data::load(&spec).unwrap_err().to_string();
    assert!(
        err.contains("val_1.JPEG") && err.contains("32×32") && err.contains("64×64"),
        "{err}"
    );
}
