//! Reports: every run of an experiment into a polars DataFrame, grouped by every varying spec
//! key except the seed, mean ± sample std and n per metric, as markdown tables.
//!
//! Output is stable: groups keep plan order and numbers have fixed formats, so regenerating a
//! report with no new runs changes no byte.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::*;

mod metrics;
use metrics::{Better, Metric};

use crate::spec::{Experiment, TableSpec};
use crate::store::{self, RunState, Store, StoreError};

/// Errors while building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{file}: report table \"{table}\": unknown {what} `{name}`\n  allowed: {allowed}")]
    UnknownKey { file: String, table: String, what: &'static str, name: String, allowed: String },
}

/// A metric's statistics over the seeds of one group.
#[derive(Debug, Clone, Copy)]
struct Stat {
    mean: Option<f64>,
    std: Option<f64>,
    n: u32,
}

/// One run as a row: flattened spec values (as text) and final-epoch metrics.
struct Row {
    keys: BTreeMap<String, String>,
    seed: u64,
    state: RunState,
    metrics: BTreeMap<String, f64>,
}

/// Builds the report of `exp` and writes it to `<reports>/<name>.md`; returns its path.
pub fn write_report(exp: &Experiment, store: &Store, reports: &Path) -> Result<PathBuf, ReportError> {
    let text = render(exp, store)?;
    std::fs::create_dir_all(reports).map_err(|source| ReportError::Io { path: reports.to_path_buf(), source })?;
    let path = reports.join(format!("{}.md", exp.name));
    store::atomic::write(&path, text.as_bytes()).map_err(|source| ReportError::Io { path: path.clone(), source })?;
    Ok(path)
}

/// The markdown report of `exp` from what `store` holds.
pub fn render(exp: &Experiment, store: &Store) -> Result<String, ReportError> {
    let rows = collect(exp, store)?;
    let varying = varying_keys(&rows);
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", exp.name);
    if let Some(d) = &exp.description {
        let _ = writeln!(out, "{}\n", d.trim());
    }
    let done = rows.iter().filter(|r| r.state == RunState::Done).count();
    let failed: Vec<&Row> = rows.iter().filter(|r| matches!(r.state, RunState::Failed(_))).collect();
    let _ = writeln!(out, "Experiment file `{}`: {} runs planned, {} done, {} failed, {} not run yet.\n", exp.file.display(), rows.len(), done, failed.len(), rows.len() - done - failed.len());
    let default_table = TableSpec { title: "Test error and NLL".into(), rows: Vec::new(), metrics: vec!["test_error".into(), "test_nll".into()] };
    let tables = if exp.report.tables.is_empty() { vec![default_table] } else { exp.report.tables.clone() };
    for table in &tables {
        out.push_str(&render_table(exp, table, &rows, &varying)?);
    }
    if !failed.is_empty() {
        let _ = writeln!(out, "## Failed runs (not averaged in)\n");
        for r in failed {
            if let RunState::Failed(f) = &r.state {
                let _ = writeln!(out, "- `{}` seed {}: {} — {}", r.keys.get("dir").map(String::as_str).unwrap_or("?"), r.seed, f.class, f.reason);
            }
        }
        out.push('\n');
    }
    Ok(out)
}

fn collect(exp: &Experiment, store: &Store) -> Result<Vec<Row>, ReportError> {
    let mut rows = Vec::new();
    for run in store.planned(exp) {
        let mut keys = BTreeMap::new();
        if let Ok(json) = serde_json::to_value(&run.spec) {
            flatten("", &json, &mut keys);
        }
        keys.remove("seed");
        keys.insert("dir".into(), run.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let state = if run.dir.exists() { store::run_state(&run.dir)? } else { RunState::Pending };
        let mut metrics = BTreeMap::new();
        if state == RunState::Done
            && let Some(result) = store::read_result(&run.dir)?
        {
            // A scheduler test double trained nothing: it has no metrics to show.
            if !result.simulated {
                metrics = metrics::values(&result, &exp.evaluate);
            }
        }
        rows.push(Row { keys, seed: run.spec.seed, state, metrics });
    }
    Ok(rows)
}

/// `{"train": {"lr": 0.1}}` → `train.lr = 0.1`; lists render as `[0, 1]`.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
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
    let rank = |k: &str| ["method", "alpha", "layers"].iter().position(|p| *p == k).unwrap_or(3);
    varying.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    varying
}

fn header_of(key: &str) -> String {
    match key {
        "alpha" => "α".into(),
        "layers" => "S".into(),
        other => other.to_string(),
    }
}

fn render_table(exp: &Experiment, table: &TableSpec, rows: &[Row], varying: &[String]) -> Result<String, ReportError> {
    let file = exp.file.display().to_string();
    let group_keys: Vec<String> = if table.rows.is_empty() { varying.to_vec() } else { table.rows.clone() };
    let known: Vec<&String> = rows.first().map(|r| r.keys.keys().collect()).unwrap_or_default();
    for k in &group_keys {
        if !rows.is_empty() && !rows.iter().any(|r| r.keys.contains_key(k)) {
            return Err(ReportError::UnknownKey { file, table: table.title.clone(), what: "row key", name: k.clone(), allowed: known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") });
        }
    }
    let available = metrics::available(&exp.evaluate);
    let mut metrics: Vec<&Metric> = Vec::new();
    for m in &table.metrics {
        match available.iter().find(|x| x.key == metrics::normalise(m)) {
            Some(x) => metrics.push(x),
            None => return Err(ReportError::UnknownKey { file, table: table.title.clone(), what: "metric", name: m.clone(), allowed: available.iter().map(|x| x.key.as_str()).collect::<Vec<_>>().join(", ") }),
        }
    }
    let group_of = |r: &Row| -> Vec<String> { group_keys.iter().map(|k| r.keys.get(k).cloned().unwrap_or_else(|| "—".into())).collect() };

    // Plan order of groups, runs planned and failed per group.
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut planned: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut failed: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for r in rows {
        let g = group_of(r);
        if !planned.contains_key(&g) {
            order.push(g.clone());
        }
        *planned.entry(g.clone()).or_default() += 1;
        if matches!(r.state, RunState::Failed(_)) {
            *failed.entry(g).or_default() += 1;
        }
    }

    // Done runs into a DataFrame; mean, sample std and n per group with polars.
    let done: Vec<&Row> = rows.iter().filter(|r| r.state == RunState::Done).collect();
    let mut columns: Vec<Column> = Vec::new();
    for i in 0..group_keys.len() {
        let values: Vec<String> = done.iter().map(|r| group_of(r)[i].clone()).collect();
        columns.push(Column::new(format!("g{i}").into(), values));
    }
    for m in &metrics {
        let values: Vec<Option<f64>> = done.iter().map(|r| r.metrics.get(&m.key).copied()).collect();
        columns.push(Column::new(m.key.as_str().into(), values));
    }
    let mut stats: BTreeMap<Vec<String>, Vec<Stat>> = BTreeMap::new();
    if !done.is_empty() {
        let df = DataFrame::new(columns)?;
        let by: Vec<Expr> = (0..group_keys.len()).map(|i| col(format!("g{i}"))).collect();
        let mut aggs = Vec::new();
        for m in &metrics {
            aggs.push(col(m.key.as_str()).mean().alias(format!("{}_mean", m.key)));
            aggs.push(col(m.key.as_str()).std(1).alias(format!("{}_std", m.key)));
            aggs.push(col(m.key.as_str()).count().cast(DataType::UInt32).alias(format!("{}_n", m.key)));
        }
        let grouped = if by.is_empty() { df.lazy().select(aggs).collect()? } else { df.lazy().group_by_stable(by).agg(aggs).collect()? };
        for row in 0..grouped.height() {
            let mut g = Vec::new();
            for i in 0..group_keys.len() {
                g.push(grouped.column(&format!("g{i}"))?.str()?.get(row).unwrap_or("").to_string());
            }
            let mut per = Vec::new();
            for m in &metrics {
                let mean = grouped.column(&format!("{}_mean", m.key))?.f64()?.get(row);
                let std = grouped.column(&format!("{}_std", m.key))?.f64()?.get(row);
                let n = grouped.column(&format!("{}_n", m.key))?.u32()?.get(row).unwrap_or(0);
                per.push(Stat { mean, std, n });
            }
            stats.insert(g, per);
        }
    }

    // The best mean of each metric (lowest, or highest where higher is better) is set in bold.
    let best: Vec<Option<f64>> = metrics
        .iter()
        .enumerate()
        .map(|(j, m)| {
            let means = stats.values().filter_map(|v| v[j].mean).filter(|x| x.is_finite());
            match m.better {
                Better::Lower => means.min_by(f64::total_cmp),
                Better::Higher => means.max_by(f64::total_cmp),
                Better::Neither => None,
            }
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n", table.title);
    let mut header: Vec<String> = group_keys.iter().map(|k| header_of(k)).collect();
    header.extend(metrics.iter().map(|m| m.header.clone()));
    header.push("n".into());
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for g in &order {
        let mut cells: Vec<String> = g.clone();
        let per = stats.get(g);
        let mut n_done = 0;
        for (j, m) in metrics.iter().enumerate() {
            let cell = match per.map(|p| p[j]) {
                Some(Stat { mean: Some(mean), std, n }) => {
                    n_done = n_done.max(n);
                    let text = match std {
                        Some(s) if n > 1 => format!("{:.*} ± {:.*}", m.decimals, mean * m.scale, m.decimals, s * m.scale),
                        _ => format!("{:.*}", m.decimals, mean * m.scale),
                    };
                    if best[j] == Some(mean) && stats.len() > 1 { format!("**{text}**") } else { text }
                }
                _ => "—".into(),
            };
            cells.push(cell);
        }
        let fails = failed.get(g).copied().unwrap_or(0);
        let n = format!("{n_done}/{}{}", planned.get(g).copied().unwrap_or(0), if fails > 0 { format!(" ({fails} failed)") } else { String::new() });
        cells.push(n);
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\nMean ± sample standard deviation over seeds; n = runs done / runs planned. Selection: final epoch (no model selection on the test set). Budget: {}.", budget(rows, varying));
    let from_evaluation = metrics.iter().any(|m| !["test_error", "test_nll", "train_loss"].contains(&m.key.as_str()));
    if from_evaluation {
        let e = &exp.evaluate;
        let on = if e.examples > 0 { format!("the same seeded subset of {} test examples for every run", e.examples) } else { "the whole test set".into() };
        let images = exp.runs.first().is_some_and(|r| r.data.input_shape().len() == 3);
        let units = if images { "attack ε and noise σ in pixel units of [0, 1]; deformations with nearest-neighbour sampling and black fill" } else { "attack ε and noise σ in input units" };
        let _ = writeln!(out, "Evaluated on the final model under evaluation settings `{}`: robustness and representation measures on {on} (clean error, NLL and ECE on the whole test set); {units}; draws seeded by `evaluate.seed` = {}.", e.id(), e.seed);
    }
    out.push('\n');
    Ok(out)
}

/// The training budget behind a table, from the spec keys that do not vary.
fn budget(rows: &[Row], varying: &[String]) -> String {
    let Some(first) = rows.first() else { return "no runs".into() };
    let fixed = |k: &str| -> Option<String> { (!varying.iter().any(|v| v == k)).then(|| first.keys.get(k).cloned()).flatten() };
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
        parts.push(format!("{o}, lr {}", fixed("train.lr").unwrap_or_else(|| "varies".into())));
    }
    if parts.is_empty() { "see the experiment file".into() } else { parts.join(", ") }
}
