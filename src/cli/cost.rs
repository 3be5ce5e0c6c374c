//! What an experiment will cost before it runs: each run's training FLOPs, the time they take
//! on this machine's CPU (split into the slots × threads that finish soonest) and on any GPU
//! kind `bench` has measured, and the makespan of the remaining runs. `plan` prints it; the
//! sweep's default CPU pool uses the same split.

use crate::schedule::cost::{self, Basis, Throughput};
use crate::spec::RunSpec;
use crate::spec::cost::{human_flops, training_flops};
use crate::store::{self, PlannedRun, RunState, RunView, Store};

use super::CliError;

/// The throughput records to estimate from: what `bench` measured and what the experiment's
/// finished runs report.
pub fn records(
    store: &Store,
    views: &[(PlannedRun, RunView)],
) -> Result<Vec<Throughput>, CliError> {
    let mut all = store::throughput::read(store)?;
    all.extend(
        views
            .iter()
            .filter_map(|(run, view)| cost::measured(run, view.result.as_ref()?)),
    );
    Ok(all)
}

/// (model family, training FLOPs) of each run.
fn jobs<'a>(specs: impl Iterator<Item = &'a RunSpec>) -> Vec<(String, f64)> {
    specs
        .map(|s| (s.model.name().to_string(), training_flops(s)))
        .collect()
}

/// The slots × threads of the CPU pool that finish the not-yet-done runs soonest, if any CPU
/// throughput was measured.
pub fn cpu_split(
    records: &[Throughput],
    views: &[(PlannedRun, RunView)],
    cores: usize,
) -> Option<(usize, usize, f64)> {
    let remaining = jobs(
        views
            .iter()
            .filter(|(_, v)| v.state != RunState::Done)
            .map(|(r, _)| &r.spec),
    );
    if remaining.is_empty() {
        return None;
    }
    cost::best_cpu_split(records, &remaining, cores)
}

/// The estimated seconds of `spec` on `device` with `threads`, and the estimate's basis.
pub fn seconds(
    records: &[Throughput],
    spec: &RunSpec,
    device: &str,
    threads: usize,
) -> Option<(f64, Basis)> {
    cost::rate(records, device, threads, spec.model.name())
        .map(|(rate, basis)| (training_flops(spec) / rate, basis))
}

/// The lines `plan` prints under its table; `split` is [cpu_split]'s answer.
pub fn summary(
    records: &[Throughput],
    views: &[(PlannedRun, RunView)],
    cores: usize,
    split: Option<(usize, usize, f64)>,
) -> Vec<String> {
    let all = jobs(views.iter().map(|(r, _)| &r.spec));
    let total: f64 = all.iter().map(|(_, f)| f).sum();
    let remaining: Vec<&RunSpec> = views
        .iter()
        .filter(|(_, v)| v.state != RunState::Done)
        .map(|(r, _)| &r.spec)
        .collect();
    let left: f64 = remaining.iter().map(|s| training_flops(s)).sum();
    let mut lines = vec![format!(
        "compute: {} of training in all, {} in the {} runs not done (convolutions and linear maps, 3 passes per example; spec/cost.rs)",
        human_flops(total),
        human_flops(left),
        remaining.len()
    )];
    if remaining.is_empty() {
        return lines;
    }
    match split {
        Some((slots, threads, span)) => {
            let estimates: Vec<(f64, Basis)> = remaining
                .iter()
                .filter_map(|s| seconds(records, s, "cpu", threads))
                .collect();
            let serial: f64 = estimates.iter().map(|t| t.0).sum();
            let borrowed = estimates.iter().any(|t| t.1 == Basis::OtherModel);
            lines.push(format!(
                "this CPU ({cores} cores): {} of compute; makespan {} on {slots} slot(s) × {threads} thread(s), the split `sweep` uses by default{}",
                cost::human_duration(serial),
                cost::human_duration(span),
                if borrowed {
                    " (some model families never measured here: estimated from others' FLOP rate)"
                } else {
                    ""
                }
            ));
        }
        None => lines.push(
            "this CPU: no throughput measured yet; `make bench` (or any finished run) measures it"
                .into(),
        ),
    }
    let mut kinds: Vec<&str> = records
        .iter()
        .map(|r| r.device.as_str())
        .filter(|d| *d != "cpu")
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in &kinds {
        let threads = records
            .iter()
            .filter(|r| r.device == *kind)
            .map(|r| r.threads)
            .max()
            .unwrap_or(1);
        let hours: f64 = remaining
            .iter()
            .filter_map(|s| seconds(records, s, kind, threads).map(|t| t.0))
            .sum::<f64>()
            / 3600.0;
        lines.push(format!(
            "{kind}: {hours:.1} device-hours (one run per device)"
        ));
    }
    if kinds.is_empty() {
        lines.push(
            "GPUs: not measured yet; `mixsweep bench --device cuda:0` on a GPU machine records it"
                .into(),
        );
    }
    lines
}
