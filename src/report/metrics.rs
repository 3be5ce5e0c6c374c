//! The metrics a report table can show, by name: training's final-epoch metrics, and those of
//! the evaluation of the final model under the experiment's `evaluate:` settings —
//! `clean_error`, `ece`, `fgsm@0.03`, `pgd@0.03`, `rotate@20`, `shear@28.6`, `zoom_in@60`,
//! `zoom_out@140`, `noise@0.1`, `flat_largest@4`, `flat_rest@4`, `entropy_input`, ...

use std::collections::BTreeMap;

use crate::spec::Selection;
use crate::spec::evaluate::EvalSettings;
use crate::store::records::{EvaluatedModel, RunResult};

/// How a metric is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub header: String,
    pub scale: f64,
    pub decimals: usize,
    /// Whether a larger value is better (bold goes to the largest mean), smaller is
    /// (bold to the smallest), or neither (no bold).
    pub better: Better,
}

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    Neither,
}

fn metric(key: String, header: String, scale: f64, decimals: usize, better: Better) -> Metric {
    Metric {
        key,
        header,
        scale,
        decimals,
        better,
    }
}

fn error(key: String, what: String) -> Metric {
    metric(key, format!("{what} error % ↓"), 100.0, 2, Better::Lower)
}

/// Every metric available under `settings`, in a reading order.
pub fn available(settings: &EvalSettings) -> Vec<Metric> {
    let mut out = vec![
        error("test_error".into(), "test".into()),
        metric(
            "test_nll".into(),
            "test NLL ↓".into(),
            1.0,
            4,
            Better::Lower,
        ),
        metric(
            "train_loss".into(),
            "train loss ↓".into(),
            1.0,
            4,
            Better::Lower,
        ),
        error("clean_error".into(), "clean".into()),
        metric(
            "clean_nll".into(),
            "clean NLL ↓".into(),
            1.0,
            4,
            Better::Lower,
        ),
        metric(
            "ece".into(),
            format!("ECE ({} bins) ↓", settings.calibration_bins),
            1.0,
            4,
            Better::Lower,
        ),
    ];
    out.extend(
        settings
            .fgsm
            .iter()
            .map(|e| error(format!("fgsm@{e}"), format!("FGSM ε={e}"))),
    );
    out.extend(settings.pgd.iter().map(|p| {
        error(
            format!("pgd@{}", p.eps),
            format!("PGD-{} ε={}", p.steps, p.eps),
        )
    }));
    out.extend(
        settings
            .rotate
            .iter()
            .map(|r| error(format!("rotate@{r}"), format!("rotation ±{r}°"))),
    );
    out.extend(
        settings
            .shear
            .iter()
            .map(|s| error(format!("shear@{s}"), format!("shear ±{s}°"))),
    );
    out.extend(
        settings
            .zoom_in
            .iter()
            .map(|k| error(format!("zoom_in@{k}"), format!("zoom in {k}%"))),
    );
    out.extend(
        settings
            .zoom_out
            .iter()
            .map(|k| error(format!("zoom_out@{k}"), format!("zoom out {k}%"))),
    );
    out.extend(
        settings
            .noise
            .iter()
            .map(|s| error(format!("noise@{s}"), format!("noise σ={s}"))),
    );
    for k in &settings.flattening {
        out.push(metric(
            format!("flat_largest@{k}"),
            format!("largest σ₁ at {k} ↓"),
            1.0,
            2,
            Better::Lower,
        ));
        out.push(metric(
            format!("flat_rest@{k}"),
            format!("sum of other σ at {k} ↓"),
            1.0,
            2,
            Better::Lower,
        ));
        out.push(metric(
            format!("flat_all_largest@{k}"),
            format!("all classes σ₁ at {k}"),
            1.0,
            2,
            Better::Neither,
        ));
        out.push(metric(
            format!("flat_all_rest@{k}"),
            format!("all classes other σ at {k}"),
            1.0,
            2,
            Better::Neither,
        ));
    }
    if settings.plane.is_some() {
        out.push(metric(
            "entropy_input".into(),
            "entropy, input plane (nats) ↑".into(),
            1.0,
            4,
            Better::Higher,
        ));
        out.push(metric(
            "entropy_hidden".into(),
            "entropy, hidden plane (nats) ↑".into(),
            1.0,
            4,
            Better::Higher,
        ));
    }
    out
}

/// A metric name as written in a table (`rotate@20.0`) in the form `available` uses
/// (`rotate@20`).
pub fn normalise(name: &str) -> String {
    match name.split_once('@') {
        Some((kind, p)) => match p.trim().parse::<f64>() {
            Ok(v) => format!("{kind}@{v}"),
            Err(_) => name.to_string(),
        },
        None => name.to_string(),
    }
}

/// The values of a finished run under a selection rule: the selected epoch's test metrics,
/// and those of the evaluation (under `settings`) of the model that rule keeps — the final
/// model, or the one selected on validation; none for best-on-test, whose model is not kept.
pub fn values(
    result: &RunResult,
    settings_id: &str,
    selection: Selection,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let (m, model) = match selection {
        Selection::Final => (Some(&result.final_metrics), Some(EvaluatedModel::Final)),
        Selection::BestOnValidation => (
            result.best_on_validation.as_ref(),
            Some(EvaluatedModel::BestOnValidation),
        ),
        Selection::BestOnTest => (Some(&result.best_on_test), None),
    };
    if let Some(m) = m {
        out.insert("test_error".into(), m.test_error);
        out.insert("test_nll".into(), m.test_nll);
        out.insert("train_loss".into(), m.train_loss);
    }
    let Some(e) = model.and_then(|model| result.evaluation(settings_id, model)) else {
        return out;
    };
    out.insert("clean_error".into(), e.clean.score.error);
    out.insert("clean_nll".into(), e.clean.score.nll);
    out.insert("ece".into(), e.clean.ece);
    for a in &e.attacks {
        out.entry(format!("{}@{}", a.attack, a.eps))
            .or_insert(a.score.error);
    }
    for p in &e.perturbations {
        out.insert(format!("{}@{}", p.perturbation, p.amount), p.score.error);
    }
    for f in &e.flattening {
        out.insert(format!("flat_largest@{}", f.layer), f.largest);
        out.insert(format!("flat_rest@{}", f.layer), f.rest);
        out.insert(format!("flat_all_largest@{}", f.layer), f.all_largest);
        out.insert(format!("flat_all_rest@{}", f.layer), f.all_rest);
    }
    if let Some(p) = &e.plane {
        out.insert("entropy_input".into(), p.entropy_input);
        out.insert("entropy_hidden".into(), p.entropy_hidden);
    }
    out
}

/// Whether a metric comes from the evaluation rather than from training's own test metrics.
pub fn from_evaluation(key: &str) -> bool {
    !["test_error", "test_nll", "train_loss"].contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_to_the_generated_form() {
        assert_eq!(normalise("rotate@20.0"), "rotate@20");
        assert_eq!(normalise("fgsm@0.030"), "fgsm@0.03");
        assert_eq!(normalise("ece"), "ece");
        let s = EvalSettings {
            rotate: vec![20.0],
            fgsm: vec![0.03],
            ..EvalSettings::default()
        };
        let keys: Vec<String> = available(&s).into_iter().map(|m| m.key).collect();
        assert!(keys.contains(&"rotate@20".to_string()) && keys.contains(&"fgsm@0.03".to_string()));
    }
}
