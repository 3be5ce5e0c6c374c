//! One report table: the done runs' values grouped by the table's row (and column) keys with
//! polars — mean, sample std and n per metric — rendered as markdown (best in bold, the
//! paper's value beside ours where it has one) and as CSV. Groups keep plan order.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use polars::prelude::*;

use super::metrics::{Better, Metric};
use super::paper::{PaperValue, Reference, differs};
use super::{ReportError, Row};
use crate::spec::TableSpec;
use crate::store::RunState;

/// A metric's statistics over the seeds of one group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stat {
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub n: u32,
}

/// A table's groups in plan order, with runs planned and failed, and statistics per metric.
pub struct Grouped {
    pub keys: Vec<String>,
    pub order: Vec<Vec<String>>,
    pub planned: BTreeMap<Vec<String>, usize>,
    pub failed: BTreeMap<Vec<String>, usize>,
    pub stats: BTreeMap<Vec<String>, Vec<Stat>>,
    /// The flattened spec of the group's first run, for matching the paper's entries.
    pub spec_of: BTreeMap<Vec<String>, BTreeMap<String, String>>,
}

/// Groups `rows` by `keys` and aggregates each metric's `values` (one map per row).
pub fn group(
    keys: &[String],
    rows: &[Row],
    values: &[BTreeMap<String, f64>],
    metrics: &[&Metric],
) -> Result<Grouped, ReportError> {
    let group_of = |r: &Row| -> Vec<String> {
        keys.iter()
            .map(|k| r.keys.get(k).cloned().unwrap_or_else(|| "—".into()))
            .collect()
    };
    let mut g = Grouped {
        keys: keys.to_vec(),
        order: Vec::new(),
        planned: BTreeMap::new(),
        failed: BTreeMap::new(),
        stats: BTreeMap::new(),
        spec_of: BTreeMap::new(),
    };
    for r in rows {
        let k = group_of(r);
        if !g.planned.contains_key(&k) {
            g.order.push(k.clone());
            g.spec_of.insert(k.clone(), r.keys.clone());
        }
        *g.planned.entry(k.clone()).or_default() += 1;
        if matches!(r.state, RunState::Failed(_)) {
            *g.failed.entry(k).or_default() += 1;
        }
    }
    let done: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].state == RunState::Done && !values[i].is_empty())
        .collect();
    if done.is_empty() {
        return Ok(g);
    }
    let mut columns: Vec<Column> = Vec::new();
    for (j, _) in keys.iter().enumerate() {
        let v: Vec<String> = done
            .iter()
            .map(|&i| group_of(&rows[i])[j].clone())
            .collect();
        columns.push(Column::new(format!("g{j}").into(), v));
    }
    for (j, m) in metrics.iter().enumerate() {
        let v: Vec<Option<f64>> = done
            .iter()
            .map(|&i| values[i].get(&m.key).copied())
            .collect();
        columns.push(Column::new(format!("m{j}").into(), v));
    }
    let df = DataFrame::new(columns)?;
    let by: Vec<Expr> = (0..keys.len()).map(|j| col(format!("g{j}"))).collect();
    let mut aggs = Vec::new();
    for j in 0..metrics.len() {
        let c = format!("m{j}");
        aggs.push(col(c.as_str()).mean().alias(format!("{c}_mean")));
        aggs.push(col(c.as_str()).std(1).alias(format!("{c}_std")));
        aggs.push(
            col(c.as_str())
                .count()
                .cast(DataType::UInt32)
                .alias(format!("{c}_n")),
        );
    }
    let out = if by.is_empty() {
        df.lazy().select(aggs).collect()?
    } else {
        df.lazy().group_by_stable(by).agg(aggs).collect()?
    };
    for row in 0..out.height() {
        let mut k = Vec::new();
        for j in 0..keys.len() {
            k.push(
                out.column(&format!("g{j}"))?
                    .str()?
                    .get(row)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        let mut per = Vec::new();
        for j in 0..metrics.len() {
            let c = format!("m{j}");
            per.push(Stat {
                mean: out.column(&format!("{c}_mean"))?.f64()?.get(row),
                std: out.column(&format!("{c}_std"))?.f64()?.get(row),
                n: out.column(&format!("{c}_n"))?.u32()?.get(row).unwrap_or(0),
            });
        }
        g.stats.insert(k, per);
    }
    Ok(g)
}

fn header_of(key: &str) -> String {
    match key {
        "alpha" => "α".into(),
        "layers" => "S".into(),
        other => other.to_string(),
    }
}

/// The best mean of metric `j` over groups (none for metrics without a direction).
fn best(g: &Grouped, j: usize, m: &Metric) -> Option<f64> {
    let means = g
        .stats
        .values()
        .filter_map(|v| v[j].mean)
        .filter(|x| x.is_finite());
    match m.better {
        Better::Lower => means.min_by(f64::total_cmp),
        Better::Higher => means.max_by(f64::total_cmp),
        Better::Neither => None,
    }
}

fn cell(s: Stat, m: &Metric, bold: bool, mark: &str) -> String {
    let Some(mean) = s.mean else {
        return "—".into();
    };
    let text = match s.std {
        Some(sd) if s.n > 1 => format!(
            "{:.*} ± {:.*}",
            m.decimals,
            mean * m.scale,
            m.decimals,
            sd * m.scale
        ),
        _ => format!("{:.*}", m.decimals, mean * m.scale),
    };
    if bold {
        format!("**{text}**{mark}")
    } else {
        format!("{text}{mark}")
    }
}

/// What the paper column needs to know about one group and metric.
fn paper_of(
    g: &Grouped,
    k: &[String],
    m: &Metric,
    reference: Option<&Reference>,
) -> Option<PaperValue> {
    reference?.value(g.spec_of.get(k)?, &m.key)
}

/// Whether our mean differs from the paper's beyond our seeds' spread: " †".
fn mark(s: Stat, m: &Metric, paper: Option<&PaperValue>) -> &'static str {
    match (s.mean, s.std, paper) {
        (Some(mean), Some(sd), Some(p))
            if differs(mean * m.scale, sd * m.scale, s.n, p) == Some(true) =>
        {
            " †"
        }
        _ => "",
    }
}

/// The markdown of a table without pivot: one row per group, a column per metric (and the
/// paper's value after each metric the paper has), then n.
pub fn markdown(g: &Grouped, metrics: &[&Metric], reference: Option<&Reference>) -> (String, bool) {
    let mut out = String::new();
    let with_paper: Vec<bool> = metrics
        .iter()
        .map(|m| {
            g.order
                .iter()
                .any(|k| paper_of(g, k, m, reference).is_some())
        })
        .collect();
    let mut header: Vec<String> = g.keys.iter().map(|k| header_of(k)).collect();
    for (m, &p) in metrics.iter().zip(&with_paper) {
        header.push(m.header.clone());
        if p {
            header.push("paper".into());
        }
    }
    header.push("n".into());
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    let bests: Vec<Option<f64>> = metrics
        .iter()
        .enumerate()
        .map(|(j, m)| best(g, j, m))
        .collect();
    let mut any_mark = false;
    for k in &g.order {
        let mut cells = k.clone();
        let per = g.stats.get(k);
        let mut n_done = 0;
        for (j, m) in metrics.iter().enumerate() {
            let s = per.map(|p| p[j]).unwrap_or_default();
            n_done = n_done.max(s.n);
            let paper = paper_of(g, k, m, reference);
            let mk = mark(s, m, paper.as_ref());
            any_mark |= !mk.is_empty();
            cells.push(cell(
                s,
                m,
                s.mean.is_some() && bests[j] == s.mean && g.stats.len() > 1,
                mk,
            ));
            if with_paper[j] {
                cells.push(paper.map(|p| p.text).unwrap_or_else(|| "—".into()));
            }
        }
        let fails = g.failed.get(k).copied().unwrap_or(0);
        cells.push(format!(
            "{n_done}/{}{}",
            g.planned.get(k).copied().unwrap_or(0),
            if fails > 0 {
                format!(" ({fails} failed)")
            } else {
                String::new()
            }
        ));
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    (out, with_paper.iter().any(|&p| p) || any_mark)
}

/// The markdown of a pivot: rows by the row keys, one column per value of the column keys,
/// the one metric in each cell (n in brackets when not every seed is in).
pub fn pivot(
    g: &Grouped,
    row_keys: usize,
    m: &Metric,
    reference: Option<&Reference>,
) -> (String, bool) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut cols: Vec<Vec<String>> = Vec::new();
    for k in &g.order {
        let (r, c) = k.split_at(row_keys);
        if !rows.iter().any(|x| x == r) {
            rows.push(r.to_vec());
        }
        if !cols.iter().any(|x| x == c) {
            cols.push(c.to_vec());
        }
    }
    let col_names: Vec<String> = cols
        .iter()
        .map(|c| {
            c.iter()
                .zip(&g.keys[row_keys..])
                .map(|(v, k)| format!("{} = {v}", header_of(k)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let mut out = String::new();
    let mut header: Vec<String> = g.keys[..row_keys].iter().map(|k| header_of(k)).collect();
    header.extend(col_names);
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    let top = best(g, 0, m);
    let mut any_paper = false;
    for r in &rows {
        let mut cells = r.clone();
        for c in &cols {
            let k: Vec<String> = r.iter().chain(c).cloned().collect();
            let Some(&planned) = g.planned.get(&k) else {
                cells.push(String::new());
                continue;
            };
            let s = g.stats.get(&k).map(|per| per[0]).unwrap_or_default();
            let paper = paper_of(g, &k, m, reference);
            any_paper |= paper.is_some();
            let mut text = cell(
                s,
                m,
                s.mean.is_some() && top == s.mean && g.stats.len() > 1,
                mark(s, m, paper.as_ref()),
            );
            if (s.n as usize) < planned {
                text.push_str(&format!(" ({}/{planned})", s.n));
            }
            if let Some(p) = paper {
                text.push_str(&format!(" [paper {}]", p.text));
            }
            cells.push(text);
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    (out, any_paper)
}

/// The table as CSV (long form): the group keys, then per metric its mean, std and n in the
/// units of the markdown (error in %), the runs planned, and the paper's value.
pub fn csv(g: &Grouped, metrics: &[&Metric], reference: Option<&Reference>) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let mut header: Vec<String> = g.keys.iter().map(|k| quote(k)).collect();
    header.extend(
        [
            "metric",
            "mean",
            "std",
            "n",
            "planned",
            "failed",
            "paper_mean",
            "paper_std",
            "differs_from_paper",
        ]
        .map(String::from),
    );
    let _ = writeln!(out, "{}", header.join(","));
    for k in &g.order {
        for (j, m) in metrics.iter().enumerate() {
            let s = g.stats.get(k).map(|p| p[j]).unwrap_or_default();
            let paper = paper_of(g, k, m, reference);
            let num = |v: Option<f64>| {
                v.map(|x| format!("{:.*}", m.decimals + 2, x * m.scale))
                    .unwrap_or_default()
            };
            let differ = match (s.mean, s.std, &paper) {
                (Some(mean), Some(sd), Some(p)) => differs(mean * m.scale, sd * m.scale, s.n, p)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let mut cells: Vec<String> = k.iter().map(|v| quote(v)).collect();
            cells.extend([
                quote(&m.key),
                num(s.mean),
                num(s.std.filter(|_| s.n > 1)),
                s.n.to_string(),
                g.planned.get(k).copied().unwrap_or(0).to_string(),
                g.failed.get(k).copied().unwrap_or(0).to_string(),
                paper
                    .as_ref()
                    .map(|p| p.mean.to_string())
                    .unwrap_or_default(),
                paper
                    .as_ref()
                    .and_then(|p| p.std)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                differ,
            ]);
            let _ = writeln!(out, "{}", cells.join(","));
        }
    }
    out
}

/// Checks a table's keys against the runs, naming the experiment file on a typo.
pub fn check_keys(file: &str, table: &TableSpec, rows: &[Row]) -> Result<(), ReportError> {
    let known: Vec<&String> = rows
        .first()
        .map(|r| r.keys.keys().collect())
        .unwrap_or_default();
    for k in table.rows.iter().chain(&table.columns) {
        if !rows.is_empty() && !rows.iter().any(|r| r.keys.contains_key(k)) {
            return Err(ReportError::UnknownKey {
                file: file.to_string(),
                table: table.title.clone(),
                what: "row or column key",
                name: k.clone(),
                allowed: known
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}
