//! Running an experiment's runs, each in a child process (`mixsweep exec`) so that a crash, a
//! panic or a NaN stays inside its run, fanned out over a pool of device slots (design §6).
//! The sweep plans, decides what is left to do (train, or only evaluate), orders it longest
//! first, and hands it to the pool.

pub mod bench;
pub mod child;
pub mod cost;
pub mod devices;
pub mod estimate;
pub mod pool;
pub mod progress;

use std::path::PathBuf;
use std::time::Duration;

pub use child::{EXIT_CLAIMED_ELSEWHERE, EXIT_INTERRUPTED};
use devices::Slot;
use estimate::Durations;
use pool::{Job, PoolOptions, RetryPolicy};

use crate::spec::Experiment;
use crate::store::records::Failure;
use crate::store::{self, Next, PlannedRun, RunState, Store, StoreError};

/// The environment variable through which a sweep (or a Slurm task) tells a run its slot
/// (`cuda:1/0`).
pub const SLOT_ENV: &str = "MIXSWEEP_SLOT";

/// Options of a sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Take failed runs again.
    pub rerun_failed: bool,
    /// Each run checkpoints after every this many epochs.
    pub checkpoint_every: usize,
    /// Where runs compute.
    pub slots: Vec<Slot>,
    pub retry: RetryPolicy,
    pub run_timeout: Option<Duration>,
    /// Scheduler test double: runs sleep this many seconds per epoch instead of training.
    pub simulate: Option<f64>,
}

/// A run that failed, with where to read why.
#[derive(Debug, Clone)]
pub struct FailedRun {
    pub slug: String,
    pub dir: PathBuf,
    pub failure: Failure,
    pub log: Option<PathBuf>,
}

/// What a sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepSummary {
    pub total: usize,
    pub already_done: usize,
    pub ran: usize,
    pub done_now: usize,
    pub running_elsewhere: usize,
    /// Trained runs that lacked the experiment's evaluation and were evaluated now.
    pub evaluated: usize,
    /// Failures that were retried (each retry counted).
    pub retried: usize,
    pub failed: Vec<FailedRun>,
    /// Stopped by Ctrl-C or SIGTERM: the runs in progress checkpointed, the rest did not start.
    pub stopped: bool,
}

/// Plans `exp` into `store` and runs every run that is pending or interrupted (and failed,
/// with `rerun_failed`), and evaluates every trained run that lacks the experiment's
/// evaluation (without retraining it).
pub fn sweep(
    exp: &Experiment,
    store: &Store,
    opts: &SweepOptions,
) -> Result<SweepSummary, StoreError> {
    // The handlers come first: a Ctrl-C at any moment from here on stops the sweep cleanly.
    let stop = crate::signals::stop_flag().map_err(|source| StoreError::Io {
        path: store.root.clone(),
        source,
    })?;
    let runs = store.write_plan(exp)?;
    let mut summary = SweepSummary {
        total: runs.len(),
        ..Default::default()
    };
    let mut durations = Durations::default();
    let mut todo: Vec<Job> = Vec::new();
    for run in &runs {
        let view = store::view(&run.dir, &exp.evaluate, opts.rerun_failed)?;
        if let Some(r) = &view.result {
            durations.record(&run.spec, r.provenance.wall_time);
        }
        match (view.next, view.state) {
            (Next::Train, _) => todo.push(Job::new(run.clone(), false)),
            (Next::Evaluate, _) => {
                summary.already_done += 1;
                todo.push(Job::new(run.clone(), true));
            }
            (Next::Nothing, RunState::Running(_)) => summary.running_elsewhere += 1,
            (Next::Nothing, RunState::Failed(f)) => summary.failed.push(failed_run(run, f)),
            (Next::Nothing, _) => summary.already_done += 1,
        }
    }
    if todo.is_empty() {
        println!(
            "{}: all {} runs already done; nothing to run{}.",
            exp.name,
            summary.already_done,
            remainder(&summary)
        );
        return Ok(summary);
    }
    // Longest expected first; runs only to evaluate last; plan order among equals.
    let cost = |j: &Job| {
        if j.evaluate_only {
            0.0
        } else {
            durations
                .seconds(&j.run.spec)
                .unwrap_or_else(|| estimate::cost(&j.run.spec))
        }
    };
    todo.sort_by(|a, b| cost(b).total_cmp(&cost(a)));
    let to_evaluate = todo.iter().filter(|j| j.evaluate_only).count();
    let to_train = todo.len() - to_evaluate;
    let evaluations = if to_evaluate > 0 {
        format!(
            ", {to_evaluate} to evaluate under settings {}",
            exp.evaluate.id()?
        )
    } else {
        String::new()
    };
    let devices: Vec<&str> = {
        let mut d: Vec<&str> = opts.slots.iter().map(|s| s.device.as_str()).collect();
        d.dedup();
        d
    };
    println!(
        "{}: {} runs planned, {} done; {to_train} to train{evaluations}{}; {} slots on {}.",
        exp.name,
        summary.total,
        summary.already_done,
        remainder(&summary),
        opts.slots.len(),
        devices.join(", ")
    );

    let mut progress = progress::Progress::new(&opts.slots, todo.len());
    let pool_opts = PoolOptions {
        retry: opts.retry.clone(),
        run_timeout: opts.run_timeout,
        ..PoolOptions::default()
    };
    let mut launcher = child::Processes {
        args: child::ChildArgs {
            checkpoint_every: opts.checkpoint_every,
            simulate: opts.simulate,
            store: Some(store.root.clone()),
        },
    };
    let events = store.experiment_dir(&exp.name).join("schedule.jsonl");
    let jobs = todo.len();
    let report = pool::run(
        todo,
        &opts.slots,
        &pool_opts,
        &mut launcher,
        &mut durations,
        &stop,
        &mut progress,
        &events,
    );
    progress.finish();
    let report = report?;
    record_throughput(store, &report.done);
    summary.ran = jobs;
    summary.done_now = report.done.len();
    summary.evaluated = report.evaluated;
    summary.running_elsewhere += report.running_elsewhere;
    summary.retried = report.retried;
    summary.stopped = report.stopped;
    summary.failed.extend(
        report
            .failed
            .into_iter()
            .map(|(run, f)| failed_run(&run, f)),
    );
    Ok(summary)
}

/// Adds the training rates of the runs this sweep finished to runs/throughput.json (the
/// median per device kind, thread count and model family), so that `plan` estimates any
/// experiment's cost from them. A failure to write it costs only estimates: it is reported,
/// and the sweep's outcome stands.
fn record_throughput(store: &Store, done: &[PlannedRun]) {
    let measured: Vec<_> = done
        .iter()
        .filter_map(|run| {
            let result = store::read_result(&run.dir).ok()??;
            cost::measured(run, &result)
        })
        .collect();
    if measured.is_empty() {
        return;
    }
    if let Err(e) = store::throughput::update(store, &cost::medians(&measured)) {
        eprintln!("warning: the runs' training rates were not recorded for plan's estimates: {e}");
    }
}

fn remainder(s: &SweepSummary) -> String {
    let mut parts = Vec::new();
    if s.running_elsewhere > 0 {
        parts.push(format!("{} running elsewhere", s.running_elsewhere));
    }
    if !s.failed.is_empty() {
        parts.push(format!(
            "{} failed (rerun with --rerun failed)",
            s.failed.len()
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}

fn failed_run(run: &PlannedRun, failure: Failure) -> FailedRun {
    FailedRun {
        slug: run.slug.clone(),
        dir: run.dir.clone(),
        failure,
        log: store::attempt_logs(&run.dir).pop(),
    }
}
