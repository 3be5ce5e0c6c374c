//! The paper beside us: `experiments/reference/paper.yaml` holds every number of the paper's
//! tables, each entry naming the runs it describes by spec keys and giving values per metric
//! ("4.83 ± 0.066", or "accuracy 97.23" for the tables that report accuracy). A report table
//! shows the paper's value next to ours where an entry matches a row, and marks our mean when
//! it differs from the paper's beyond the spread of our seeds: Welch's t-test against the
//! paper's mean and std over its 5 runs where the paper gives a std, else a one-sample t-test
//! of our seeds against the paper's mean; two-sided, at the 5% level.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Repetitions behind the paper's standard deviations ("Standard deviations are over 5
/// repetitions", App. C).
pub const PAPER_RUNS: f64 = 5.0;

/// The reference file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub source: String,
    pub entries: Vec<Entry>,
}

/// One row of one of the paper's tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub table: String,
    /// Spec keys (dotted, as in the experiment file) and the values the runs must have.
    #[serde(rename = "match")]
    pub keys: BTreeMap<String, serde_json::Value>,
    /// Metric name → the paper's value as written.
    pub values: BTreeMap<String, String>,
}

/// A value of the paper, in the units our table shows (error %, NLL in nats).
#[derive(Debug, Clone, PartialEq)]
pub struct PaperValue {
    pub mean: f64,
    pub std: Option<f64>,
    /// As the paper wrote it.
    pub text: String,
    pub table: String,
}

/// Reads the reference file; `Ok(None)` if there is none.
pub fn load(path: &Path) -> Result<Option<Reference>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    serde_saphyr::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// "4.83 ± 0.066" → (4.83, Some(0.066)); "accuracy 97.23" → error 2.77 (the std of an
/// accuracy is that of the error).
pub fn parse_value(text: &str) -> Option<(f64, Option<f64>)> {
    let (accuracy, rest) = match text.trim().strip_prefix("accuracy") {
        Some(r) => (true, r.trim()),
        None => (false, text.trim()),
    };
    let (mean, std) = match rest.split_once('±') {
        Some((m, s)) => (
            m.trim().parse::<f64>().ok()?,
            Some(s.trim().parse::<f64>().ok()?),
        ),
        None => (rest.parse::<f64>().ok()?, None),
    };
    Some((if accuracy { 100.0 - mean } else { mean }, std))
}

/// Whether a run's flattened spec value (`keys`) equals the value an entry wants.
/// `null` wants the key absent (a setting left at its default, which the spec omits).
fn same(have: Option<&String>, want: &serde_json::Value) -> bool {
    let Some(have) = have else {
        return want.is_null();
    };
    match want {
        serde_json::Value::Number(n) => have
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(a, b)| a == b),
        serde_json::Value::String(s) => have == s,
        serde_json::Value::Array(items) => match serde_json::from_str::<serde_json::Value>(have) {
            Ok(serde_json::Value::Array(got)) => {
                got.len() == items.len()
                    && got.iter().zip(items).all(|(g, w)| {
                        g.as_f64().zip(w.as_f64()).is_some_and(|(a, b)| a == b) || g == w
                    })
            }
            _ => false,
        },
        other => have == &other.to_string(),
    }
}

impl Reference {
    /// The paper's value of `metric` for runs with flattened spec `keys`, if an entry matches.
    pub fn value(&self, keys: &BTreeMap<String, String>, metric: &str) -> Option<PaperValue> {
        self.entries
            .iter()
            .filter(|e| e.keys.iter().all(|(k, v)| same(keys.get(k), v)))
            .find_map(|e| {
                let text = e.values.get(metric)?;
                let (mean, std) = parse_value(text)?;
                Some(PaperValue {
                    mean,
                    std,
                    text: text.clone(),
                    table: e.table.clone(),
                })
            })
    }
}

/// Whether our seeds (mean, sample std, n) differ from the paper's value at the 5% level;
/// `None` when it cannot be tested (fewer than 2 of our seeds).
pub fn differs(mean: f64, std: f64, n: u32, paper: &PaperValue) -> Option<bool> {
    if n < 2 {
        return None;
    }
    let n = n as f64;
    let mut parts = vec![(std * std / n, n)];
    if let Some(ps) = paper.std {
        parts.push((ps * ps / PAPER_RUNS, PAPER_RUNS));
    }
    welch(mean - paper.mean, &parts).map(|w| w.p < 0.05)
}

/// A t-test of a difference of means, Welch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// Standard error of the difference.
    pub se: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Student's t with the Welch–Satterthwaite degrees of freedom.
    pub dist: StudentsT,
}

/// Welch's test of `difference`, a difference of means whose parts are each mean's (variance
/// of the mean, number of values): one part is a one-sample test against a constant. With no
/// spread at all, p is 1 for no difference and 0 for any.
pub fn welch(difference: f64, parts: &[(f64, f64)]) -> Option<Welch> {
    let var: f64 = parts.iter().map(|(v, _)| v).sum();
    let df = if var > 0.0 {
        var * var / parts.iter().map(|(v, n)| v * v / (n - 1.0)).sum::<f64>()
    } else {
        parts.iter().map(|(_, n)| n - 1.0).sum()
    };
    let dist = StudentsT::new(0.0, 1.0, df.max(1.0)).ok()?;
    let se = var.sqrt();
    let p = if se > 0.0 {
        2.0 * (1.0 - dist.cdf(difference.abs() / se))
    } else if difference == 0.0 {
        1.0
    } else {
        0.0
    };
    Some(Welch { se, p, dist })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_written_in_the_paper() {
        assert_eq!(parse_value("4.83 ± 0.066"), Some((4.83, Some(0.066))));
        assert_eq!(parse_value("0.190"), Some((0.19, None)));
        let (e, s) = parse_value("accuracy 97.23").unwrap();
        assert!((e - 2.77).abs() < 1e-9 && s.is_none());
        assert_eq!(parse_value("n/a"), None);
    }

    #[test]
    fn the_tests_match_hand_computed_t_statistics() {
        let p = |std| PaperValue {
            mean: 4.83,
            std,
            text: String::new(),
            table: "1a".into(),
        };
        // One-sample: ours 5.00 ± 0.10 over 5 seeds: t = 0.17 / (0.1/√5) = 3.80 > t(0.975, 4)
        // = 2.776, so it differs; 4.90 ± 0.10: t = 1.57, it does not.
        assert_eq!(differs(5.00, 0.10, 5, &p(None)), Some(true));
        assert_eq!(differs(4.90, 0.10, 5, &p(None)), Some(false));
        // Welch with the paper's 0.066 over 5 runs: 4.95 ± 0.10: t = 0.12 / √(0.002 + 0.000871)
        // = 2.24 with df ≈ 6.9 (critical 2.37): not significant.
        assert_eq!(differs(4.95, 0.10, 5, &p(Some(0.066))), Some(false));
        assert_eq!(differs(4.95, 0.10, 1, &p(None)), None);
    }

    #[test]
    fn entries_match_runs_by_their_spec_values() {
        let r: Reference = serde_saphyr::from_str(
            "source: test\nentries:\n  - { table: '5', match: { data.name: cifar10, layers: [0, 1, 2], alpha: 2 }, values: { test_error: accuracy 97.23 } }\n",
        )
        .unwrap();
        let keys: BTreeMap<String, String> = [
            ("data.name", "cifar10"),
            ("layers", "[0, 1, 2]"),
            ("alpha", "2.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let v = r.value(&keys, "test_error").unwrap();
        assert!((v.mean - 2.77).abs() < 1e-9);
        let mut other = keys.clone();
        other.insert("layers".into(), "[0]".into());
        assert!(r.value(&other, "test_error").is_none());
        assert!(r.value(&keys, "test_nll").is_none());
    }
}
