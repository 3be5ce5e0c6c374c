//! One trained model under one set of evaluation settings: the clean test set with its
//! calibration, then on the evaluation subset FGSM and PGD, the deformations, Gaussian noise,
//! the flattening measure, and for 2-D models the input and hidden planes.
//!
//! The model runs in evaluation mode throughout: `valid()` on the inference device for plain
//! predictions, and frozen (no parameter gradients, BatchNorm on its running statistics) on the
//! autodiff device for the attacks, which need input gradients only. Every random draw comes
//! from a stream named for it and seeded by `settings.seed`, the same for every run.

use std::path::Path;

use burn::prelude::*;
use rand::RngExt;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

use super::attacks::{Attack, InputSpace, attack};
use super::calibration::expected_calibration_error;
use super::deform::{self, Deformation};
use super::flattening::flattening;
use super::model::{BATCH, Model};
use super::plane;
use crate::data::{Dataset, Inputs};
use crate::models::NoMix;
use crate::spec::RunSpec;
use crate::spec::evaluate::{DeformFill, EvalSettings};
use crate::store::records::{
    AttackScore, CleanScore, FlatteningScore, PerturbedScore, PlaneScore, Score,
};
use crate::train::error_and_nll;
use crate::train::host::floats;

/// What one evaluation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub clean: CleanScore,
    pub subset: Score,
    pub attacks: Vec<AttackScore>,
    pub perturbations: Vec<PerturbedScore>,
    pub flattening: Vec<FlatteningScore>,
    pub plane: Option<PlaneScore>,
}

/// Error and NLL of `logits` against `labels`, with each prediction's (confidence, correct).
pub fn score(logits: &[f32], labels: &[usize], classes: usize) -> (Score, Vec<(f64, bool)>) {
    let (mut wrong, mut nll) = (0usize, 0.0);
    let mut predictions = Vec::with_capacity(labels.len());
    for (z, &label) in logits.chunks(classes).zip(labels) {
        let (miss, n) = error_and_nll(z, label);
        wrong += miss as usize;
        nll += n;
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = z.iter().map(|&v| (v as f64 - max).exp()).sum();
        predictions.push((1.0 / sum, !miss));
    }
    let n = labels.len().max(1) as f64;
    (
        Score {
            examples: labels.len(),
            error: wrong as f64 / n,
            nll: nll / n,
        },
        predictions,
    )
}

/// The test rows the robustness and representation measures use: all of them in order, or the
/// first `settings.examples` of a permutation drawn from "evaluate/subset", sorted.
pub fn subset(n: usize, settings: &EvalSettings) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if settings.examples > 0 && settings.examples < n {
        idx.shuffle(&mut crate::rng::stream(settings.seed, "evaluate/subset"));
        idx.truncate(settings.examples);
        idx.sort_unstable();
    }
    idx
}

/// Measures `model` (of run `spec`, trained on `train`) on `test` under `settings`. Files it
/// writes (the planes) go under `out_dir`, named relative to `run_dir`.
pub fn measure(
    spec: &RunSpec,
    settings: &EvalSettings,
    model: &Model,
    train: &Dataset,
    test: &Dataset,
    run_dir: &Path,
    out_dir: &Path,
) -> std::io::Result<Measured> {
    let (f, classes) = (test.features(), test.classes);
    let all: Vec<usize> = (0..test.len()).collect();
    let (clean, predictions) = score(
        &model.logits(&test.gather(&all), f, &NoMix)?,
        &test.labels,
        classes,
    );
    let clean = CleanScore {
        score: clean,
        ece: expected_calibration_error(&predictions, settings.calibration_bins),
    };

    let rows = subset(test.len(), settings);
    let labels: Vec<usize> = rows.iter().map(|&i| test.labels[i]).collect();
    let x = test.gather(&rows);
    let (subset_score, _) = score(&model.logits(&x, f, &NoMix)?, &labels, classes);

    let mut attacks = Vec::new();
    let space = match (&test.inputs, test.shape.as_slice()) {
        (Inputs::Pixels { mean, std, .. }, [_, h, w]) => InputSpace::pixels(mean, std, h * w),
        _ => InputSpace::unbounded(f),
    };
    let runs = settings
        .fgsm
        .iter()
        .map(|&eps| {
            let fgsm = Attack {
                loss: settings.attack_loss,
                ..Attack::fgsm(eps)
            };
            ("fgsm", fgsm, false)
        })
        .chain(settings.pgd.iter().map(|p| {
            (
                "pgd",
                Attack {
                    eps: p.eps,
                    step_size: p.step_size,
                    steps: p.steps,
                    loss: settings.attack_loss,
                },
                p.random_start,
            )
        }));
    for (i, (name, a, random_start)) in runs.enumerate() {
        let mut start_rng = crate::rng::stream(settings.seed, &format!("evaluate/attack/{i}"));
        let mut logits = Vec::new();
        for (chunk, chunk_labels) in x.chunks(BATCH * f).zip(labels.chunks(BATCH)) {
            let n = chunk_labels.len();
            let t = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [n, f]), &model.ad);
            let start = random_start.then(|| {
                (0..n * f)
                    .map(|_| start_rng.random_range(-a.eps..=a.eps) as f32)
                    .collect()
            });
            let forward = |x: Tensor<2>| model.frozen.forward(x, &NoMix);
            let adv = attack(forward, t, chunk_labels, classes, &space, &a, start)
                .ok_or_else(|| std::io::Error::other("the attack found no input gradient"))?;
            logits.extend(floats(model.frozen.forward(adv, &NoMix))?);
        }
        let (score, _) = score(&logits, &labels, classes);
        attacks.push(AttackScore {
            attack: name.to_string(),
            eps: a.eps,
            steps: a.steps,
            step_size: a.step_size,
            random_start,
            score,
        });
    }

    let mut perturbations = Vec::new();
    let deformations = [
        ("rotate", &settings.rotate),
        ("shear", &settings.shear),
        ("zoom_in", &settings.zoom_in),
        ("zoom_out", &settings.zoom_out),
    ];
    for (name, amounts) in deformations {
        for &amount in amounts {
            let mut rng = crate::rng::stream(settings.seed, &format!("evaluate/{name}/{amount}"));
            let deformed = deform_rows(test, &rows, settings.deform_fill, || match name {
                "rotate" => Deformation::Rotate(rng.random_range(-amount..=amount)),
                "shear" => Deformation::Shear(rng.random_range(-amount..=amount)),
                _ => Deformation::Zoom(amount / 100.0),
            });
            let (score, _) = score(&model.logits(&deformed, f, &NoMix)?, &labels, classes);
            perturbations.push(PerturbedScore {
                perturbation: name.to_string(),
                amount,
                score,
            });
        }
    }
    for &sigma in &settings.noise {
        let noisy = noise_rows(
            test,
            &rows,
            sigma,
            &mut crate::rng::stream(settings.seed, &format!("evaluate/noise/{sigma}")),
        );
        let (score, _) = score(&model.logits(&noisy, f, &NoMix)?, &labels, classes);
        perturbations.push(PerturbedScore {
            perturbation: "noise".into(),
            amount: sigma,
            score,
        });
    }

    let mut flat = Vec::new();
    for &layer in &settings.flattening {
        let (h, dim) = model.hidden(&x, f, layer)?;
        let m = flattening(&h, dim, &labels, classes);
        flat.push(FlatteningScore {
            layer,
            largest: m.largest,
            rest: m.rest,
            all_largest: m.all_largest,
            all_rest: m.all_rest,
            spectrum: m.spectrum,
        });
    }

    let plane = match (&settings.plane, crate::spec::evaluate::plane_layer(spec)) {
        (Some(p), Some(layer)) => Some(plane::measure(
            p,
            settings.seed,
            layer,
            model,
            train,
            test,
            run_dir,
            out_dir,
        )?),
        _ => None,
    };
    Ok(Measured {
        clean,
        subset: subset_score,
        attacks,
        perturbations,
        flattening: flat,
        plane,
    })
}

/// The rows `rows` of an image set, each deformed by the deformation `draw` gives it, and
/// normalised (`[rows, features]`). Outside the image is `fill`: the mean colour (0 after
/// normalisation: the image is normalised, then deformed) or black (pixel 0: deformed, then
/// normalised). Nearest-neighbour sampling copies values, so both orders agree inside.
fn deform_rows(
    set: &Dataset,
    rows: &[usize],
    fill: DeformFill,
    mut draw: impl FnMut() -> Deformation,
) -> Vec<f32> {
    let (Inputs::Pixels { data, .. }, &[c, h, w]) = (&set.inputs, set.shape.as_slice()) else {
        return set.gather(rows);
    };
    let f = set.features();
    let mut out = Vec::with_capacity(rows.len() * f);
    for &i in rows {
        let (d, image) = (draw(), &data[i * f..(i + 1) * f]);
        out.extend(match fill {
            DeformFill::Mean => deform::apply(&set.normalise(image), [c, h, w], d, 0.0),
            DeformFill::Black => set.normalise(&deform::apply(image, [c, h, w], d, 0u8)),
        });
    }
    out
}

/// The rows `rows` with Gaussian noise of `sigma` on every value: pixel units clamped to
/// [0, 1] for images, input units for points; normalised.
fn noise_rows(
    set: &Dataset,
    rows: &[usize],
    sigma: f64,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<f32> {
    let f = set.features();
    let mut z = || -> f64 { sigma * Distribution::<f64>::sample(&StandardNormal, rng) };
    match &set.inputs {
        Inputs::Float(x) => rows
            .iter()
            .flat_map(|&i| x[i * f..(i + 1) * f].to_vec())
            .map(|v| (v as f64 + z()) as f32)
            .collect(),
        Inputs::Pixels {
            data,
            max,
            mean,
            std,
        } => {
            let plane = f / mean.len();
            let mut out = Vec::with_capacity(rows.len() * f);
            for &i in rows {
                for (j, &p) in data[i * f..(i + 1) * f].iter().enumerate() {
                    let c = j / plane;
                    let v = (p as f64 / *max as f64 + z()).clamp(0.0, 1.0);
                    out.push(((v - mean[c] as f64) / std[c] as f64) as f32);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::ModelSpec;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    #[test]
    fn attacks_run_in_evaluation_mode_and_change_no_weight_or_statistic() {
        // A PreActResNet (BatchNorm everywhere) after a few training steps, so that its running
        // statistics differ from the batch statistics.
        let ad = Device::flex().autodiff();
        let spec = ModelSpec::PreactResnet {
            depth: 18,
            width: 2,
            stem_stride: 1,
            bn_gamma: Default::default(),
        };
        let mut net = crate::models::Network::new(
            &spec,
            &[1, 8, 8],
            3,
            &mut crate::rng::stream(0, "init"),
            &ad,
        );
        let mut optim = burn::optim::SgdConfig::new().init();
        let x: Vec<f32> = (0..16 * 64)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let labels: Vec<usize> = (0..16).map(|i| i % 3).collect();
        for _ in 0..3 {
            let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [16, 64]), &ad);
            let logits = net.forward(t, &NoMix);
            let loss = burn::tensor::activation::log_softmax(logits, 1)
                .mean()
                .neg();
            let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(0.1, net, grads);
        }
        let model = Model::new(net, &Device::flex(), &ad);
        let before = model.frozen.clone().into_record().into_bytes().unwrap();
        let clean = model.logits(&x, 64, &NoMix).unwrap();
        // The frozen network on the autodiff device predicts as the inference one: BatchNorm
        // uses its running statistics there too.
        let frozen = values(model.frozen.forward(
            Tensor::<2>::from_data(TensorData::new(x.clone(), [16, 64]), &ad),
            &NoMix,
        ));
        for (a, b) in clean.iter().zip(&frozen) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let space = InputSpace::pixels(&[0.5], &[0.25], 64);
        for a in [
            Attack::fgsm(0.1),
            Attack {
                eps: 0.1,
                step_size: 0.03,
                steps: 5,
                loss: crate::spec::types::LossKind::BceSoftmax,
            },
        ] {
            let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [16, 64]), &ad);
            attack(
                |x| model.frozen.forward(x, &NoMix),
                t,
                &labels,
                3,
                &space,
                &a,
                None,
            )
            .unwrap();
        }
        assert_eq!(
            model.frozen.clone().into_record().into_bytes().unwrap(),
            before,
            "the attacks changed the frozen network"
        );
        let after = values(model.frozen.forward(
            Tensor::<2>::from_data(TensorData::new(x.clone(), [16, 64]), &ad),
            &NoMix,
        ));
        assert_eq!(
            after, frozen,
            "the frozen network predicts differently after the attacks"
        );
    }

    #[test]
    fn entropy_and_confidence_by_hand() {
        // Equal logits over 4 classes: entropy ln 4, confidence 1/4 (and a tie counts as wrong).
        assert!((super::super::model::mean_entropy(&[0.0; 8], 4) - 4f64.ln()).abs() < 1e-12);
        let (s, p) = score(&[0.0, 0.0, 0.0, 0.0], &[1], 4);
        assert_eq!((s.error, p[0]), (1.0, (0.25, false)));
    }

    #[test]
    fn the_subset_is_seeded_sorted_and_the_whole_set_by_default() {
        let all = subset(10, &EvalSettings::default());
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let s = EvalSettings {
            examples: 4,
            ..EvalSettings::default()
        };
        let a = subset(10, &s);
        assert_eq!(a.len(), 4);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, subset(10, &s));
        assert_ne!(
            a,
            subset(
                10,
                &EvalSettings {
                    seed: 1,
                    ..s.clone()
                }
            )
        );
    }
}
