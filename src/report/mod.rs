//! Reports (design §7): every run of an experiment — its spec, state, result.json and
//! metrics.jsonl — into tables grouped by every varying spec key except the seed (mean, sample
//! std and n per metric, with polars), the paper's numbers beside ours, written as
//! `reports/<name>.md` with, in `reports/<name>/`, one CSV per table, the runs as one Parquet
//! file, and PNG figures (learning curves; the planes of 2-D models; singular values).
//!
//! Output is stable: groups keep plan order, numbers have fixed formats and nothing depends on
//! the time, so regenerating a report with no new runs changes no byte.

mod figures;
mod frame;
mod metrics;
mod paper;
pub mod scorecard;
mod table;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use metrics::Metric;
use polars::prelude::PolarsError;

use crate::spec::evaluate::DeformFill;
use crate::spec::types::LossKind;
use crate::spec::{Experiment, Selection, TableSpec};
use crate::store::records::{EpochMetrics, RunResult};
use crate::store::{self, RunFiles, RunState, Store, StoreError};

/// Errors while building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: report table \"{table}\": unknown {what} `{name}`\n  allowed: {allowed}")]
    UnknownKey {
        file: String,
        table: String,
        what: &'static str,
        name: String,
        allowed: String,
    },
    #[error("{file}: report table \"{table}\": {problem}")]
    BadTable {
        file: String,
        table: String,
        problem: String,
    },
    #[error("the paper's reference file: {0}")]
    Reference(String),
    #[error(transparent)]
    Figure(#[from] figures::FigureError),
}

/// One planned run.
pub struct Row {
    /// Flattened spec values (as text), without the seed, plus `dir`.
    keys: BTreeMap<String, String>,
    seed: u64,
    state: RunState,
    dir: PathBuf,
    /// result.json of a done run (simulated results left out).
    result: Option<RunResult>,
    /// metrics.jsonl of a done run.
    history: Vec<EpochMetrics>,
}

/// Where the paper's numbers are: `reference/paper.yaml` in the directory of experiment files
/// that holds `exp` (the nearest `experiments/` above it), else `experiments/reference/`.
fn reference_path(exp: &Experiment) -> PathBuf {
    let mut dir = exp.file.parent();
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "experiments") {
            return d.join("reference/paper.yaml");
        }
        dir = d.parent();
    }
    PathBuf::from("experiments/reference/paper.yaml")
}

/// The paper's claims for the scorecard: `claims.yaml` beside the paper's numbers.
fn claims_path(exp: &Experiment) -> PathBuf {
    reference_path(exp).with_file_name("claims.yaml")
}

/// Builds the report of `exp` into `<reports>/<name>.md` and `<reports>/<name>/`; returns
/// the markdown's path.
pub fn write_report(
    exp: &Experiment,
    store: &Store,
    reports: &Path,
) -> Result<PathBuf, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    let rows = collect(exp, store)?;
    let reference = paper::load(&reference_path(exp)).map_err(ReportError::Reference)?;
    let assets = reports.join(&exp.name);
    std::fs::create_dir_all(&assets).map_err(io(&assets))?;
    let (mut text, files) = render(exp, &rows, reference.as_ref(), &assets)?;
    for (name, bytes) in files {
        let path = assets.join(name);
        store::atomic::write(&path, &bytes).map_err(io(&path))?;
    }
    // The claims this report's runs test, read back from the runs.parquet just written.
    let claims = claims_path(exp);
    if claims.is_file()
        && let Some(section) = scorecard::section_for(&claims, reports, &exp.name)?
    {
        text.push('\n');
        text.push_str(&section);
    }
    let path = reports.join(format!("{}.md", exp.name));
    store::atomic::write(&path, text.as_bytes()).map_err(io(&path))?;
    Ok(path)
}

/// Regenerates `<reports>/scorecard.md` from the claims file beside the paper's numbers
/// (`reference/claims.yaml`), when there is one; returns its path.
pub fn write_scorecard(exp: &Experiment, reports: &Path) -> Result<Option<PathBuf>, ReportError> {
    let claims = claims_path(exp);
    if !claims.is_file() {
        return Ok(None);
    }
    scorecard::write(&claims, reports).map(Some)
}

fn collect(exp: &Experiment, store: &Store) -> Result<Vec<Row>, ReportError> {
    let mut rows = Vec::new();
    for run in store.planned(exp)? {
        let mut keys = BTreeMap::new();
        if let Ok(json) = serde_json::to_value(&run.spec) {
            flatten("", &json, &mut keys);
        }
        keys.remove("seed");
        keys.insert(
            "dir".into(),
            run.dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        // A scheduler test double trained nothing: the view leaves its result out.
        let view = store::view(&run.dir, &exp.evaluate, false)?;
        let (state, result) = (view.state, view.result);
        let history = match result {
            Some(_) => read_history(&run.dir.join(RunFiles::METRICS)),
            None => Vec::new(),
        };
        rows.push(Row {
            keys,
            seed: run.spec.seed,
            state,
            dir: run.dir,
            result,
            history,
        });
    }
    Ok(rows)
}

fn read_history(path: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `{"train": {"lr": 0.1}}` → `train.lr = 0.1`; lists render as `[0, 1]`.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string().replace(',', ", "));
        }
    }
}

/// Spec keys whose value differs between runs (the seed excluded), in a reading order:
/// method, alpha, layers first, then the rest alphabetically.
fn varying_keys(rows: &[Row]) -> Vec<String> {
    let mut all: Vec<String> = rows.iter().flat_map(|r| r.keys.keys().cloned()).collect();
    all.sort();
    all.dedup();
    let mut varying: Vec<String> = all
        .into_iter()
        .filter(|k| k != "dir")
        .filter(|k| {
            let first = rows.first().and_then(|r| r.keys.get(k));
            rows.iter().any(|r| r.keys.get(k) != first)
        })
        .collect();
    let rank = |k: &str| {
        ["method", "alpha", "layers"]
            .iter()
            .position(|p| *p == k)
            .unwrap_or(3)
    };
    varying.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    varying
}

/// Files written beside the markdown: (name, bytes).
type Assets = Vec<(String, Vec<u8>)>;

/// The markdown of the report and the files beside it.
fn render(
    exp: &Experiment,
    rows: &[Row],
    reference: Option<&paper::Reference>,
    assets: &Path,
) -> Result<(String, Assets), ReportError> {
    let varying = varying_keys(rows);
    let dir_name = assets
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut files = Vec::new();
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", exp.name);
    if let Some(d) = &exp.description {
        let _ = writeln!(out, "{}\n", d.trim());
    }
    let done = rows.iter().filter(|r| r.state == RunState::Done).count();
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.state, RunState::Failed(_)))
        .collect();
    let _ = writeln!(
        out,
        "Experiment file `{}`: {} runs planned, {} done, {} failed, {} not run yet.\n",
        exp.file.display(),
        rows.len(),
        done,
        failed.len(),
        rows.len() - done - failed.len()
    );
    let default_table = TableSpec {
        title: "Test error and NLL".into(),
        rows: Vec::new(),
        columns: Vec::new(),
        metrics: vec!["test_error".into(), "test_nll".into()],
        selection: Selection::Final,
    };
    let tables = if exp.report.tables.is_empty() {
        vec![default_table]
    } else {
        exp.report.tables.clone()
    };
    for (i, t) in tables.iter().enumerate() {
        let (md, csv) = render_table(exp, t, rows, &varying, reference)?;
        let name = format!("table-{}.csv", i + 1);
        let _ = writeln!(out, "## {}\n", t.title);
        out.push_str(&md);
        let _ = writeln!(out, "CSV: [{dir_name}/{name}]({dir_name}/{name}).\n");
        files.push((name, csv.into_bytes()));
    }
    if !failed.is_empty() {
        let _ = writeln!(out, "## Failed runs (not averaged in)\n");
        for r in failed {
            if let RunState::Failed(f) = &r.state {
                let _ = writeln!(
                    out,
                    "- `{}` seed {}: {} — {}",
                    r.keys.get("dir").map(String::as_str).unwrap_or("?"),
                    r.seed,
                    f.class,
                    f.reason
                );
            }
        }
        out.push('\n');
    }
    let figure_keys: Vec<String> = tables
        .first()
        .filter(|t| !t.rows.is_empty())
        .map(|t| t.rows.iter().chain(&t.columns).cloned().collect())
        .unwrap_or_else(|| varying.clone());
    let figures = draw_figures(exp, rows, &figure_keys, assets)?;
    if !figures.is_empty() {
        let _ = writeln!(out, "## Figures\n");
        for (file, caption) in figures {
            let _ = writeln!(out, "{caption}\n\n![{caption}]({dir_name}/{file})\n");
        }
    }
    files.push(("runs.parquet".into(), frame::parquet(rows, &exp.evaluate)?));
    let _ = writeln!(
        out,
        "All runs, one row each with every spec key and metric: [{dir_name}/runs.parquet]({dir_name}/runs.parquet)."
    );
    Ok((out, files))
}

/// One table's markdown (with its footer) and CSV.
fn render_table(
    exp: &Experiment,
    t: &TableSpec,
    rows: &[Row],
    varying: &[String],
    reference: Option<&paper::Reference>,
) -> Result<(String, String), ReportError> {
    let file = exp.file.display().to_string();
    table::check_keys(&file, t, rows)?;
    let available = metrics::available(&exp.evaluate);
    let mut chosen: Vec<&Metric> = Vec::new();
    for m in &t.metrics {
        match available.iter().find(|x| x.key == metrics::normalise(m)) {
            Some(x) => chosen.push(x),
            None => {
                return Err(ReportError::UnknownKey {
                    file,
                    table: t.title.clone(),
                    what: "metric",
                    name: m.clone(),
                    allowed: available
                        .iter()
                        .map(|x| x.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    if !t.columns.is_empty() && chosen.len() != 1 {
        return Err(ReportError::BadTable {
            file,
            table: t.title.clone(),
            problem: format!(
                "a table with `columns` shows one metric in its cells; it lists {}",
                chosen.len()
            ),
        });
    }
    let row_keys: Vec<String> = if t.rows.is_empty() {
        varying
            .iter()
            .filter(|k| !t.columns.contains(k))
            .cloned()
            .collect()
    } else {
        t.rows.clone()
    };
    let keys: Vec<String> = row_keys.iter().chain(&t.columns).cloned().collect();
    let settings_id = exp.evaluate.id().map_err(StoreError::from)?;
    let values: Vec<BTreeMap<String, f64>> = rows
        .iter()
        .map(|r| {
            r.result
                .as_ref()
                .map(|res| metrics::values(res, &settings_id, t.selection))
                .unwrap_or_default()
        })
        .collect();
    let g = table::group(&keys, rows, &values, &chosen)?;
    let (mut md, paper_shown) = if t.columns.is_empty() {
        table::markdown(&g, &chosen, reference)
    } else {
        table::pivot(&g, row_keys.len(), chosen[0], reference)
    };
    let _ = writeln!(
        md,
        "\nMean ± sample standard deviation over seeds; n = runs done / runs planned. Selection: {}. Budget: {}.",
        t.selection.describe(),
        budget(rows, varying)
    );
    if chosen.iter().any(|m| metrics::from_evaluation(&m.key)) {
        let e = &exp.evaluate;
        let on = if e.examples > 0 {
            format!(
                "the same seeded subset of {} test examples for every run",
                e.examples
            )
        } else {
            "the whole test set".into()
        };
        let images = exp
            .runs
            .first()
            .is_some_and(|r| r.data.input_shape().len() == 3);
        let fill = match e.deform_fill {
            DeformFill::Mean => "the mean colour",
            DeformFill::Black => "black",
        };
        let attacks = match e.attack_loss {
            LossKind::SoftCe => "attacks climb cross-entropy",
            LossKind::BceSoftmax => "attacks climb BCE on softmax",
        };
        let units = match (images, e.deforms()) {
            (true, true) => format!(
                "attack ε and noise σ in pixel units of [0, 1]; {attacks}; deformations as the official code's (nearest neighbour, about (h/2 + 0.5, w/2 + 0.5)) with {fill} outside the image"
            ),
            (true, false) => format!("attack ε and noise σ in pixel units of [0, 1]; {attacks}"),
            _ => format!("attack ε and noise σ in input units; {attacks}"),
        };
        let model = if t.selection == Selection::BestOnValidation {
            "model selected on validation"
        } else {
            "final model"
        };
        let _ = writeln!(
            md,
            "Evaluated on the {model} under evaluation settings `{}`: robustness and representation measures on {on} (clean error, NLL and ECE on the whole test set); {units}; draws seeded by `evaluate.seed` = {}.",
            settings_id, e.seed
        );
        let external = rows
            .iter()
            .filter(|r| r.result.as_ref().is_some_and(|res| res.runner.is_some()))
            .count();
        if external > 0 {
            let _ = writeln!(
                md,
                "{external} of these runs were trained by an external program (`runner:`): measures made on our own models (ECE, attacks, deformations, noise, flattening, planes) do not exist for them and are left out of the means, never counted as 0."
            );
        }
    }
    if paper_shown {
        let source = reference.map(|r| r.source.as_str()).unwrap_or_default();
        let _ = writeln!(
            md,
            "Paper: {source}, as transcribed in experiments/reference/paper.yaml (accuracies shown as error = 100 − accuracy). † = our mean differs from the paper's beyond the spread of our seeds: Welch's t-test against the paper's mean ± std over its 5 runs where the paper gives a std, else a one-sample t-test of our seeds against its mean; two-sided, p < 0.05."
        );
    }
    md.push('\n');
    Ok((md, table::csv(&g, &chosen, reference)))
}

/// The training budget behind a table, from the spec keys that do not vary.
fn budget(rows: &[Row], varying: &[String]) -> String {
    let Some(first) = rows.first() else {
        return "no runs".into();
    };
    let fixed = |k: &str| -> Option<String> {
        (!varying.iter().any(|v| v == k))
            .then(|| first.keys.get(k).cloned())
            .flatten()
    };
    let mut parts = Vec::new();
    if let Some(e) = fixed("train.epochs") {
        parts.push(format!("{e} epochs"));
    }
    if let Some(n) = fixed("data.n_train") {
        parts.push(format!("{n} training examples"));
    }
    if let Some(n) = fixed("data.train_subset").filter(|n| n != "0") {
        parts.push(format!("a seeded subset of {n} training examples"));
    }
    if let Some(d) = fixed("data.name") {
        parts.push(format!("data {d}"));
    }
    if let Some(m) = fixed("model.name") {
        parts.push(format!("model {m}"));
    }
    if let Some(o) = fixed("train.optimizer") {
        parts.push(format!(
            "{o}, lr {}",
            fixed("train.lr").unwrap_or_else(|| "varies".into())
        ));
    }
    if parts.is_empty() {
        "see the experiment file".into()
    } else {
        parts.join(", ")
    }
}

/// The label of a group in figures: the method, then its values of `keys` that differ from
/// those of `base` (the first group), e.g. "manifold_mixup α=2.0 S=[4]" or "erm dropout=0.5".
fn label(r: &Row, keys: &[String], base: &Row) -> String {
    let mut parts = vec![r.keys.get("method").cloned().unwrap_or_default()];
    for k in keys.iter().filter(|k| k.as_str() != "method") {
        let Some(v) = r.keys.get(k) else { continue };
        if base.keys.get(k) == Some(v) {
            continue;
        }
        parts.push(match k.as_str() {
            "alpha" => format!("α={v}"),
            "layers" => format!("S={v}"),
            other => format!("{}={v}", other.rsplit('.').next().unwrap_or(other)),
        });
    }
    parts.join(" ")
}

/// Draws the figures the runs have data for; returns (file, caption) of each.
fn draw_figures(
    exp: &Experiment,
    rows: &[Row],
    keys: &[String],
    assets: &Path,
) -> Result<Vec<(String, String)>, ReportError> {
    // Groups in plan order: label → the done rows with that label.
    let mut groups: Vec<(String, Vec<&Row>)> = Vec::new();
    let Some(base) = rows.first() else {
        return Ok(Vec::new());
    };
    for r in rows.iter().filter(|r| r.result.is_some()) {
        let l = label(r, keys, base);
        match groups.iter_mut().find(|g| g.0 == l) {
            Some(g) => g.1.push(r),
            None => groups.push((l, vec![r])),
        }
    }
    let mut out = Vec::new();
    let curves: Vec<figures::Curves> = groups
        .iter()
        .map(|(l, rs)| figures::Curves {
            label: l.clone(),
            seeds: rs
                .iter()
                .filter(|r| !r.history.is_empty())
                .map(|r| {
                    r.history
                        .iter()
                        .map(|m| (m.epoch as f64, 100.0 * m.test_error, m.test_nll))
                        .collect()
                })
                .collect(),
        })
        .filter(|c| !c.seeds.is_empty())
        .collect();
    if !curves.is_empty() {
        figures::learning_curves(
            &assets.join("curves.png"),
            &format!(
                "{}: test error and NLL over training (mean over seeds; band: their range)",
                exp.name
            ),
            &curves,
        )?;
        out.push(("curves.png".into(), "Learning curves: test error and NLL at each evaluated epoch, the mean over seeds, the band spanning the seeds.".into()));
    }
    let id = exp.evaluate.id().map_err(StoreError::from)?;
    let mut planes = Vec::new();
    for (l, rs) in &groups {
        // The first seed's maps of each group.
        let maps = rs.iter().find_map(|r| {
            let e = r
                .result
                .as_ref()?
                .evaluation(&id, crate::store::records::EvaluatedModel::Final)?;
            let text = std::fs::read_to_string(r.dir.join(&e.plane.as_ref()?.file)).ok()?;
            serde_json::from_str::<crate::store::records::PlaneMaps>(&text)
                .ok()
                .map(|m| (r.seed, m))
        });
        if let Some((seed, m)) = maps {
            planes.push((format!("{l}, seed {seed}"), m));
        }
    }
    if !planes.is_empty() {
        figures::planes(
            &assets.join("planes.png"),
            &format!(
                "{}: input plane (top) and bottleneck plane (bottom)",
                exp.name
            ),
            &planes,
        )?;
        out.push(("planes.png".into(), "The paper's Figures 1 and 2: for one seed of each group, the predicted class over the input plane with the training points (top), and over the 2-D bottleneck with the training points' hidden states and, in black, the hidden states of points drawn uniformly over the input plane (bottom). White is where the model is unsure; H is the mean predictive entropy of points drawn uniformly over the hidden plane.".into()));
    }
    let mut layers: Vec<figures::LayerSpectra> = exp
        .evaluate
        .flattening
        .iter()
        .map(|&k| (k, Vec::new()))
        .collect();
    for (l, rs) in &groups {
        for (k, per_group) in layers.iter_mut() {
            let spectra: Vec<&Vec<f64>> = rs
                .iter()
                .filter_map(|r| {
                    r.result
                        .as_ref()?
                        .evaluation(&id, crate::store::records::EvaluatedModel::Final)?
                        .flattening
                        .iter()
                        .find(|f| f.layer == *k)
                        .map(|f| &f.spectrum)
                })
                .collect();
            if let Some(len) = spectra.iter().map(|s| s.len()).min() {
                let mean: Vec<f64> = (0..len)
                    .map(|j| spectra.iter().map(|s| s[j]).sum::<f64>() / spectra.len() as f64)
                    .collect();
                per_group.push((l.clone(), mean));
            }
        }
    }
    layers.retain(|(_, g)| !g.is_empty());
    if !layers.is_empty() {
        figures::spectra(
            &assets.join("singular-values.png"),
            &format!("{}: mean class-conditional singular values", exp.name),
            &layers,
            12,
        )?;
        out.push(("singular-values.png".into(), "Flattening (§3.2): the largest singular values of each class's hidden states at each measured mix point, averaged over classes and seeds. Flatter class representations have a shorter tail.".into()));
    }
    Ok(out)
}
