//! The collected runs as one polars DataFrame — one row per planned run, one column per spec
//! key (as text, as the tables show them), the seed, the state, and one column per metric of
//! the final model (training's test metrics and everything the evaluation measured) — written
//! as Parquet for people who go on in pandas or polars.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::{ReportError, Row, metrics};
use crate::spec::Selection;
use crate::spec::evaluate::EvalSettings;

/// The runs as a DataFrame (columns in a fixed order: dir, seed, state, spec keys sorted, then
/// metrics sorted).
pub fn frame(rows: &[Row], settings: &EvalSettings) -> Result<DataFrame, ReportError> {
    let settings_id = settings.id().map_err(crate::store::StoreError::from)?;
    let values: Vec<BTreeMap<String, f64>> = rows
        .iter()
        .map(|r| {
            r.result
                .as_ref()
                .map(|res| metrics::values(res, &settings_id, Selection::Final))
                .unwrap_or_default()
        })
        .collect();
    let mut keys: Vec<&String> = rows
        .iter()
        .flat_map(|r| r.keys.keys())
        .filter(|k| k.as_str() != "dir")
        .collect();
    keys.sort();
    keys.dedup();
    let mut names: Vec<&String> = values.iter().flat_map(|v| v.keys()).collect();
    names.sort();
    names.dedup();
    let mut columns = vec![
        Column::new(
            "dir".into(),
            rows.iter()
                .map(|r| r.keys.get("dir").cloned().unwrap_or_default())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "seed".into(),
            rows.iter().map(|r| r.seed).collect::<Vec<_>>(),
        ),
        Column::new(
            "state".into(),
            rows.iter()
                .map(|r| r.state.kind().to_string())
                .collect::<Vec<_>>(),
        ),
    ];
    for k in keys {
        columns.push(Column::new(
            k.as_str().into(),
            rows.iter()
                .map(|r| r.keys.get(k).cloned())
                .collect::<Vec<_>>(),
        ));
    }
    for m in names {
        columns.push(Column::new(
            m.as_str().into(),
            values.iter().map(|v| v.get(m).copied()).collect::<Vec<_>>(),
        ));
    }
    Ok(DataFrame::new(columns)?)
}

/// The runs as Parquet bytes.
pub fn parquet(rows: &[Row], settings: &EvalSettings) -> Result<Vec<u8>, ReportError> {
    let mut df = frame(rows, settings)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut df)?;
    Ok(bytes)
}
