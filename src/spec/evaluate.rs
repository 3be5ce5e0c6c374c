//! `evaluate:` in an experiment file: what is measured on each trained model beyond the clean
//! test error that training records — calibration, attacks, deformations, noise, the flattening
//! measure and, for 2-D inputs, the input and hidden planes (issue 5).
//!
//! These settings are not part of any run's identity: changing them never retrains. They are
//! hashed on their own (`settings_id`), and each evaluation is recorded in result.json with its
//! settings, so one run can carry evaluations under several settings side by side.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{Issue, SpecError};
use super::node::{Node, Origin};
use super::types::{DataSpec, LossKind, ModelSpec, RunSpec};
use super::{Override, from_tree};

/// The evaluation settings, as written (unknown keys rejected) and as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSettings {
    /// Test examples for the robustness and representation measures: the first `examples` of a
    /// permutation of the test set drawn from `seed` (0 = the whole test set, in order). Clean
    /// error, NLL and calibration always use the whole test set.
    #[serde(default)]
    pub examples: usize,
    /// Seeds every draw of the evaluation (the subset, rotation and shear angles, noise, PGD's
    /// random start), the same for every run so that methods meet the same perturbed images.
    #[serde(default)]
    pub seed: u64,
    /// Equal-width confidence bins of the expected calibration error.
    #[serde(default = "default_bins")]
    pub calibration_bins: usize,
    /// White-box FGSM at each ε, in pixel units ([0, 1] before normalisation).
    #[serde(default)]
    pub fgsm: Vec<f64>,
    /// The loss the attacks climb: `soft_ce` (cross-entropy, the usual) or `bce_softmax`
    /// (`nn.BCELoss` on softmax, what the official code's old `attacks.py` used).
    #[serde(default)]
    pub attack_loss: LossKind,
    /// Projected gradient descent attacks (Madry et al.), each with its own settings.
    #[serde(default)]
    pub pgd: Vec<PgdSettings>,
    /// Rotation by an angle drawn per image from U(−r, r), for each r in degrees.
    #[serde(default)]
    pub rotate: Vec<f64>,
    /// Shear by an angle drawn per image from U(−s, s), for each s in degrees.
    #[serde(default)]
    pub shear: Vec<f64>,
    /// Zoom in k%: the centred box of k% of the side, scaled up to full size (0 < k < 100).
    #[serde(default)]
    pub zoom_in: Vec<f64>,
    /// Zoom out k%: a centred box of k% of the side (fill outside the image), scaled down
    /// (k > 100).
    #[serde(default)]
    pub zoom_out: Vec<f64>,
    /// What the rotations, shears and zooms put where the source lies outside the image.
    #[serde(default)]
    pub deform_fill: DeformFill,
    /// Gaussian noise of each σ added to every input value (pixel units for images, clamped to
    /// [0, 1]; input units for points).
    #[serde(default)]
    pub noise: Vec<f64>,
    /// Mix points at which to measure the flattening (singular values of each class's hidden
    /// representations, §3.2 of the paper).
    #[serde(default)]
    pub flattening: Vec<usize>,
    /// For 2-D inputs and a 2-D bottleneck: predictions over the input plane and the hidden
    /// plane, saved for plots like the paper's Figure 1, and their mean predictive entropy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<PlaneSettings>,
}

/// The constant a deformation puts outside the source image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeformFill {
    /// 0 after normalisation, i.e. each channel's training-set mean colour: what the official
    /// code's transforms do (they run on normalised images with `cval = 0`).
    #[default]
    Mean,
    /// Pixel 0 before normalisation.
    Black,
}

/// One PGD attack: `steps` signed-gradient steps of `step_size`, each projected onto the
/// ε-ball around the clean image (L∞, pixel units) and the valid pixel range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgdSettings {
    pub eps: f64,
    pub steps: usize,
    pub step_size: f64,
    /// Start from a point drawn uniformly from the ε-ball (Madry et al.), else from the image.
    #[serde(default = "default_true")]
    pub random_start: bool,
}

/// The input and hidden planes of a 2-D model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaneSettings {
    /// Grid points per side over each plane, for the probability maps.
    #[serde(default = "default_grid")]
    pub grid: usize,
    /// Points drawn uniformly over each plane, for the mean predictive entropy.
    #[serde(default = "default_points")]
    pub points: usize,
}

fn default_bins() -> usize {
    15
}
fn default_true() -> bool {
    true
}
fn default_grid() -> usize {
    100
}
fn default_points() -> usize {
    2000
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            examples: 0,
            seed: 0,
            calibration_bins: default_bins(),
            fgsm: Vec::new(),
            attack_loss: LossKind::default(),
            pgd: Vec::new(),
            rotate: Vec::new(),
            shear: Vec::new(),
            zoom_in: Vec::new(),
            zoom_out: Vec::new(),
            deform_fill: DeformFill::default(),
            noise: Vec::new(),
            flattening: Vec::new(),
            plane: None,
        }
    }
}

/// The evaluation settings could not be written as JSON, so they have no id.
#[derive(Debug, thiserror::Error)]
#[error(
    "the evaluation settings cannot be written as JSON ({0}), so they have no id; this is a bug in mixsweep, please report it"
)]
pub struct SettingsIdError(pub String);

impl EvalSettings {
    /// The settings' identity: the first 12 hex digits of SHA-256 of their JSON (fields in
    /// declaration order, defaults written out).
    /// A failed serialisation is an error, never the hash of an empty string.
    pub fn id(&self) -> Result<String, SettingsIdError> {
        let json = serde_json::to_string(self).map_err(|e| SettingsIdError(e.to_string()))?;
        Ok(Sha256::digest(json.as_bytes())
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Whether any measure needs images (deformations).
    pub fn deforms(&self) -> bool {
        !(self.rotate.is_empty()
            && self.shear.is_empty()
            && self.zoom_in.is_empty()
            && self.zoom_out.is_empty())
    }

    /// Checks values that need no run; each issue names its key under `evaluate`.
    pub fn check(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        let mut each = |key: &str, values: &[f64], ok: &dyn Fn(f64) -> bool, allowed: &str| {
            for (i, &v) in values.iter().enumerate() {
                if !(v.is_finite() && ok(v)) {
                    issues.push(Issue::new(
                        format!("evaluate.{key}[{i}]"),
                        format!("{v}"),
                        "out of range",
                        allowed,
                    ));
                }
            }
        };
        each(
            "fgsm",
            &self.fgsm,
            &|v| v > 0.0 && v <= 1.0,
            "an ε in pixel units, 0 < ε ≤ 1, e.g. fgsm: [0.01, 0.03, 0.1] (8/255 ≈ 0.0314)",
        );
        each(
            "rotate",
            &self.rotate,
            &|v| v > 0.0 && v <= 180.0,
            "a bound r in degrees, 0 < r ≤ 180; angles are drawn from U(−r, r), e.g. rotate: [20, 40]",
        );
        each(
            "shear",
            &self.shear,
            &|v| v > 0.0 && v < 180.0,
            "a bound s in degrees, 0 < s < 180, e.g. shear: [28.6, 57.3] (0.5 and 1 radian)",
        );
        each(
            "zoom_in",
            &self.zoom_in,
            &|v| v > 0.0 && v < 100.0,
            "a percentage 0 < k < 100: the centred k% box scaled up, e.g. zoom_in: [60, 80]",
        );
        each(
            "zoom_out",
            &self.zoom_out,
            &|v| v > 100.0,
            "a percentage k > 100: a k% box scaled down, e.g. zoom_out: [120, 140]",
        );
        each(
            "noise",
            &self.noise,
            &|v| v > 0.0,
            "a standard deviation σ > 0 (pixel units for images), e.g. noise: [0.1, 0.2]",
        );
        for (i, p) in self.pgd.iter().enumerate() {
            let key = format!("evaluate.pgd[{i}]");
            if !(p.eps.is_finite() && p.eps > 0.0 && p.eps <= 1.0) {
                issues.push(Issue::new(
                    format!("{key}.eps"),
                    format!("{}", p.eps),
                    "out of range",
                    "0 < ε ≤ 1 in pixel units (1 = unbounded, as the paper's App. D check)",
                ));
            }
            if !(p.step_size.is_finite() && p.step_size > 0.0) {
                issues.push(Issue::new(
                    format!("{key}.step_size"),
                    format!("{}", p.step_size),
                    "must be > 0",
                    "a step in pixel units, e.g. 0.01 or 2/255 ≈ 0.0078",
                ));
            }
            if p.steps == 0 {
                issues.push(Issue::new(
                    format!("{key}.steps"),
                    "0",
                    "PGD takes at least one step",
                    "e.g. steps: 7 (Madry et al.) or 200 (the paper's App. D)",
                ));
            }
        }
        if self.calibration_bins == 0 {
            issues.push(Issue::new(
                "evaluate.calibration_bins",
                "0",
                "ECE needs at least one bin",
                "e.g. 15 (Guo et al. 2017)",
            ));
        }
        if let Some(p) = &self.plane
            && (p.grid < 2 || p.points == 0)
        {
            issues.push(Issue::new(
                "evaluate.plane",
                format!("grid {}, points {}", p.grid, p.points),
                "a plane needs a grid of at least 2 per side and at least one point",
                "plane: { grid: 100, points: 2000 }",
            ));
        }
        issues
    }

    /// Checks the settings against one run's model and data (mix points exist; images for
    /// deformations; a 2-D bottleneck for the planes).
    pub fn check_run(&self, spec: &RunSpec) -> Vec<Issue> {
        let mut issues = Vec::new();
        let points = spec.model.mix_points();
        for (i, &k) in self.flattening.iter().enumerate() {
            if k >= points {
                issues.push(Issue::new(
                    format!("evaluate.flattening[{i}]"),
                    k.to_string(),
                    format!(
                        "model {} has mix points 0..={} only",
                        spec.model.name(),
                        points - 1
                    ),
                    format!("a mix point 0..={}", points - 1),
                ));
            }
        }
        let images = spec.data.input_shape().len() == 3;
        if self.deforms() && !images {
            issues.push(Issue::new(
                "evaluate",
                "rotate/shear/zoom",
                format!(
                    "deformations apply to images, and data `{}` is points",
                    spec.data.name()
                ),
                "remove rotate, shear, zoom_in and zoom_out, or use an image data set",
            ));
        }
        if self.plane.is_some() && plane_layer(spec).is_none() {
            issues.push(Issue::new(
                "evaluate.plane",
                "",
                format!("the planes need 2-D inputs and a 2-D bottleneck; this run has data `{}` and model {}", spec.data.name(), spec.model.name()),
                "data spirals with model spiral_mlp (bottleneck: 2), or remove `plane`",
            ));
        }
        issues
    }
}

/// Evaluation settings from a YAML file holding the mapping that `evaluate:` takes.
pub fn load(path: &std::path::Path) -> Result<EvalSettings, SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        file: file.clone(),
        source,
    })?;
    let tree = Node::parse(&text).map_err(|e| SpecError::from_yaml(&file, &e))?;
    settle(&tree, &file)
}

/// `settings` with `-o key=value` overrides applied (`-o fgsm=[0.05]`, `-o examples=500`).
pub fn with_overrides(
    settings: &EvalSettings,
    overrides: &[Override],
) -> Result<EvalSettings, SpecError> {
    if overrides.is_empty() {
        return Ok(settings.clone());
    }
    let json = serde_json::to_string(settings).unwrap_or_default();
    let mut tree =
        Node::parse(&json).map_err(|e| SpecError::from_yaml("evaluation settings", &e))?;
    for o in overrides {
        tree.set(&o.path, o.value.clone()).map_err(|problem| {
            SpecError::invalid(
                "command line",
                Issue::new(
                    o.arg.clone(),
                    o.value.show(),
                    problem,
                    "-o <evaluation key>=<value>, e.g. -o fgsm=[0.05] or -o examples=500",
                )
                .at(Origin::CommandLine(o.arg.clone())),
            )
        })?;
    }
    settle(&tree, "command line")
}

/// A settings tree to checked settings.
fn settle(tree: &Node, file: &str) -> Result<EvalSettings, SpecError> {
    let settings: EvalSettings = from_tree(tree).map_err(|(path, message)| {
        let key = if path.is_empty() {
            "evaluate".to_string()
        } else {
            format!("evaluate.{path}")
        };
        SpecError::invalid(
            file,
            Issue::new(
                key,
                "",
                message,
                "see the README's reference for `evaluate:`",
            )
            .at(tree.locate(&super::node::parse_path(&path))),
        )
    })?;
    let issues = settings.check();
    if issues.is_empty() {
        Ok(settings)
    } else {
        Err(SpecError::Invalid {
            file: file.to_string(),
            issues,
        })
    }
}

/// The mix point of a 2-D bottleneck, for runs on 2-D points through one.
pub fn plane_layer(spec: &RunSpec) -> Option<usize> {
    match (&spec.model, &spec.data) {
        (
            ModelSpec::SpiralMlp {
                depth,
                bottleneck: 2,
                ..
            },
            DataSpec::Spirals { .. },
        ) => Some(depth + 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_follows_the_settings_only() {
        let a = EvalSettings::default();
        let b = EvalSettings {
            fgsm: vec![0.03],
            ..EvalSettings::default()
        };
        assert_eq!(a.id().unwrap(), EvalSettings::default().id().unwrap());
        assert_ne!(a.id().unwrap(), b.id().unwrap());
        assert_eq!(a.id().unwrap().len(), 12);
    }

    #[test]
    fn out_of_range_values_are_named() {
        let s = EvalSettings {
            fgsm: vec![0.0, 0.1],
            zoom_in: vec![120.0],
            calibration_bins: 0,
            ..EvalSettings::default()
        };
        let keys: Vec<String> = s.check().into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "evaluate.fgsm[0]",
                "evaluate.zoom_in[0]",
                "evaluate.calibration_bins"
            ]
        );
    }
}
