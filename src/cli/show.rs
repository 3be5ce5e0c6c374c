//! The commands that only read the store: `plan`, `status` and `report`. Neither `plan` nor
//! `status` writes anything; `report` writes only under the reports directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{CliError, Overrides, load};
use crate::report;
use crate::spec::Experiment;
use crate::spec::types::DataSpec;
use crate::store::{self, Next, PlannedRun, RunState, RunView, Store};

/// Each planned run with its view, reading the store without writing to it.
pub(super) fn views(
    exp: &Experiment,
    store: &Store,
) -> Result<Vec<(PlannedRun, RunView)>, CliError> {
    store
        .planned(exp)?
        .into_iter()
        .map(|run| {
            let view = store::view(&run.dir, &exp.evaluate, false)?;
            Ok((run, view))
        })
        .collect()
}

fn totals(views: &[(PlannedRun, RunView)]) -> String {
    let mut parts = Vec::new();
    for kind in ["done", "running", "pending", "interrupted", "failed"] {
        let n = views.iter().filter(|(_, v)| v.state.kind() == kind).count();
        if n > 0 {
            parts.push(format!("{n} {kind}"));
        }
    }
    format!("{} runs: {}", views.len(), parts.join(", "))
}

/// The distinct image data sets the experiment's runs read (the spirals need no files).
pub fn distinct_image_data(exp: &Experiment) -> Vec<&DataSpec> {
    let mut seen = HashSet::new();
    exp.runs
        .iter()
        .map(|r| &r.data)
        .filter(|d| d.image().is_some())
        .filter(|d| seen.insert(format!("{d:?}")))
        .collect()
}

/// `plan`: every run with its id, training FLOPs, expected CPU time and state; the totals and
/// the expected makespan (cli/cost.rs); and a warning for each data set that is missing or
/// damaged here (`sweep` would refuse to start). Writes nothing.
pub fn plan(exp: &Experiment, store: &Store, json: bool) -> Result<(), CliError> {
    let views = views(exp, store)?;
    if json {
        for (run, view) in &views {
            let flops = crate::spec::cost::training_flops(&run.spec);
            let line = serde_json::json!({ "id": run.id, "slug": run.slug, "dir": run.dir, "status": view.state.kind(), "training_flops": flops, "spec": run.spec });
            println!("{line}");
        }
    } else {
        let records = super::cost::records(store, &views)?;
        let cores = super::cores();
        let split = super::cost::cpu_split(&records, &views, cores);
        let threads = split.map_or(cores, |s| s.1);
        println!(
            "{:<14} {:<40} {:>12} {:>10}  status",
            "id", "run", "training", "CPU time"
        );
        for (run, view) in &views {
            let time = super::cost::seconds(&records, &run.spec, "cpu", threads)
                .map_or("?".to_string(), |t| {
                    crate::schedule::cost::human_duration(t.0)
                });
            println!(
                "{:<14} {:<40} {:>12} {:>10}  {}",
                &run.id[..12],
                run.slug,
                crate::spec::cost::human_flops(crate::spec::cost::training_flops(&run.spec)),
                time,
                view.state.label()
            );
        }
        let dup = if exp.duplicates > 0 {
            format!(" ({} duplicate grid points dropped)", exp.duplicates)
        } else {
            String::new()
        };
        println!(
            "{}: {}{dup}; store {}",
            exp.name,
            totals(&views),
            store.experiment_dir(&exp.name).display()
        );
        for line in super::cost::summary(&records, &views, cores, split) {
            println!("  {line}");
        }
    }
    for data in distinct_image_data(exp) {
        if let Err(e) = crate::data::check(data) {
            eprintln!(
                "warning: data `{}` is not usable here, so `sweep` would refuse to start:\n  {e}",
                data.name()
            );
        }
    }
    Ok(())
}

/// `status`: totals, trained runs that lack the experiment's evaluation, and every run that
/// is not done with its slot, epoch, attempts and log.
pub fn status(exp: &Experiment, store: &Store) -> Result<(), CliError> {
    let views = views(exp, store)?;
    println!("{}: {}", exp.name, totals(&views));
    let unevaluated = views
        .iter()
        .filter(|(_, v)| v.next == Next::Evaluate)
        .count();
    if unevaluated > 0 {
        println!(
            "  {unevaluated} trained runs lack the evaluation under the experiment's `evaluate:` settings {} (`mixsweep sweep` or `mixsweep eval` makes it, without retraining)",
            exp.evaluate.id().map_err(store::StoreError::from)?
        );
    }
    for (run, view) in &views {
        if view.state != RunState::Done {
            println!("  {}", status_line(run, &view.state));
        }
    }
    Ok(())
}

/// One run that is not done: its directory, state, slot and epoch, attempts and last log.
fn status_line(run: &PlannedRun, state: &RunState) -> String {
    let log = store::attempt_logs(&run.dir)
        .pop()
        .map(|p| format!("  log {}", p.display()))
        .unwrap_or_default();
    // Courtesy details: an unreadable status.json leaves them out, it does not fail `status`.
    let status = store::read_status(&run.dir).ok().flatten();
    let place = match (state, &status) {
        (RunState::Running(_), Some(s)) => {
            let slot = s
                .slot
                .as_ref()
                .map(|l| format!(" on {l}"))
                .unwrap_or_default();
            let epoch = s
                .progress
                .map(|p| format!(", epoch {}/{}", p.epoch, p.epochs))
                .unwrap_or_default();
            format!("{slot}{epoch}")
        }
        _ => String::new(),
    };
    let attempts = status
        .map(|s| s.attempts)
        .filter(|&a| a > 1)
        .map(|a| format!(" ({a} attempts)"))
        .unwrap_or_default();
    let name = run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.slug.clone());
    format!("{name:<44} {}{place}{attempts}{log}", state.label())
}

/// `report`: reports/<name>.md for each experiment.
pub fn report(
    experiments: &[PathBuf],
    overrides: &Overrides,
    store: &Store,
    reports: &Path,
) -> Result<(), CliError> {
    for path in experiments {
        let exp = load(path, overrides)?;
        let written = report::write_report(&exp, store, reports)?;
        println!("wrote {}", written.display());
        if let Some(card) = report::write_scorecard(&exp, reports)? {
            println!("wrote {}", card.display());
        }
    }
    Ok(())
}
