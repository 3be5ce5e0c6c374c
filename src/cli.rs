//! The command line: clap's derive tree and the dispatch to library calls. Exit codes: 0 ok,
//! 1 some run failed (or an I/O error), 2 bad input (experiment file, override, store layout).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::exec::{ExecOptions, ExecOutcome, exec};
use crate::report;
use crate::schedule::devices::{Devices, PoolDevice};
use crate::schedule::pool::RetryPolicy;
use crate::schedule::{self, EXIT_CLAIMED_ELSEWHERE, EXIT_INTERRUPTED, SweepOptions};
use crate::spec::{self, Experiment, Override, SpecError};
use crate::store::{self, RunState, Store, StoreError};
use crate::train::device::{DeviceChoice, DeviceError};

/// Declarative Manifold Mixup experiment sweeps: plan, run, resume and report.
#[derive(Debug, Parser)]
#[command(name = "mixsweep", version, about)]
pub struct Cli {
    /// Root of the run store.
    #[arg(long, global = true, default_value = "runs")]
    pub store: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry run: every run of the experiment with its id, directory and status. Writes nothing.
    Plan {
        experiment: PathBuf,
        /// Override a key of every run (`-o train.epochs=5`) or the seeds (`-o seeds=[0,1]`).
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// One JSON object per run instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run every pending or interrupted run of the experiment, one child process each, fanned
    /// out over the device slots; evaluate trained runs that lack the experiment's evaluation.
    Sweep {
        experiment: PathBuf,
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Where runs compute: auto (the visible GPUs, else the CPU), cpu, cpu:N (the cores in
        /// N slots), or a list such as cuda:0,cuda:2 (default: --device, else the experiment
        /// file's `device:`, else cpu).
        #[arg(long)]
        devices: Option<Devices>,
        /// Runs packed onto each GPU at once.
        #[arg(long, default_value_t = 1, value_name = "N")]
        slots_per_device: usize,
        /// One device for every run: cpu, cuda:N or vulkan:N (shorthand for --devices).
        #[arg(long)]
        device: Option<DeviceChoice>,
        /// CPU threads per run (default: the cores shared among the slots).
        #[arg(long)]
        threads: Option<usize>,
        /// Also take runs in these states again.
        #[arg(long, value_enum)]
        rerun: Vec<Rerun>,
        /// Retries per failure class on top of the defaults (oom=1, crashed=1, timeout=1,
        /// interrupted=2, evaluation=1; none for diverged, bad_data, bad_spec, no_device),
        /// e.g. --retry oom=2,crashed=0.
        #[arg(long, default_value = "", value_name = "CLASS=N,...")]
        retry: RetryPolicy,
        /// Stop a run at a checkpoint after this many seconds; it fails as `timeout` (and is
        /// retried, resuming from the checkpoint, as --retry says).
        #[arg(long, value_name = "SECONDS")]
        run_timeout: Option<f64>,
        /// Each run writes a checkpoint after every N epochs (and when stopped).
        #[arg(long, default_value_t = 10, value_name = "N")]
        checkpoint_every: usize,
        /// Scheduler test double: runs sleep S seconds per epoch instead of training.
        #[arg(long, value_name = "S", hide = true)]
        simulate: Option<f64>,
    },
    /// Submit the experiment's remaining runs to Slurm as one job array: writes
    /// runs/<name>/slurm/array.sbatch and runs sbatch on it. Run it again after tasks were
    /// cancelled, preempted or timed out: it submits what is left, which resumes from its
    /// checkpoints.
    Slurm {
        experiment: PathBuf,
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Slurm partition.
        #[arg(long)]
        partition: Option<String>,
        /// Time limit per task, as Slurm takes it (04:00:00, 90).
        #[arg(long)]
        time: Option<String>,
        /// GPUs per task (--gres=gpu:N); 0 = train on the CPU.
        #[arg(long, default_value_t = 0, value_name = "N")]
        gpus_per_task: usize,
        #[arg(long, default_value_t = 1, value_name = "N")]
        cpus_per_task: usize,
        /// Memory per task, as Slurm takes it (16G).
        #[arg(long)]
        mem: Option<String>,
        /// At most this many tasks at once.
        #[arg(long, default_value_t = 8, value_name = "N")]
        max_parallel: usize,
        /// Seconds before the time limit at which a task checkpoints and stops.
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        signal_grace: u32,
        #[arg(long, default_value_t = 10, value_name = "N")]
        checkpoint_every: usize,
        /// Also take runs in these states again.
        #[arg(long, value_enum)]
        rerun: Vec<Rerun>,
        /// An extra #SBATCH option, verbatim (repeatable): --sbatch=--account=abc
        #[arg(long, value_name = "OPTION")]
        sbatch: Vec<String>,
        /// Write the script but do not submit it.
        #[arg(long)]
        no_submit: bool,
    },
    /// Run one run directory in this process (what `sweep` starts for each run).
    Exec {
        run_dir: PathBuf,
        #[arg(long)]
        threads: Option<usize>,
        /// Write a checkpoint after every N epochs (and when stopped).
        #[arg(long, default_value_t = 10, value_name = "N")]
        checkpoint_every: usize,
        /// Where to compute: cpu, cuda:N or vulkan:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
        /// Scheduler test double: sleep S seconds per epoch instead of training.
        #[arg(long, value_name = "S", hide = true)]
        simulate: Option<f64>,
    },
    /// Evaluate trained runs without retraining: under the experiment's `evaluate:` settings,
    /// or new ones (`--settings FILE`, `-o key=value`). Each evaluation is added to the run's
    /// result.json beside those made under other settings.
    Eval {
        /// Experiment files (every trained run of each) or run directories.
        #[arg(required = true)]
        targets: Vec<PathBuf>,
        /// Take the settings from this YAML file (the mapping `evaluate:` takes).
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
        /// Change one evaluation setting: `-o fgsm=[0.05]`, `-o examples=500`.
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Evaluate again even where an evaluation under these settings exists.
        #[arg(long)]
        again: bool,
        /// Where to compute: cpu, cuda:N or vulkan:N.
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Totals by state, and every run that is not done, from the store as it is now.
    Status {
        experiment: PathBuf,
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Measure training throughput (ERM vs Manifold Mixup) and the cost of mixing; write
    /// reports/bench.md.
    Bench {
        /// Where the markdown goes.
        #[arg(long, default_value = "reports/bench.md")]
        out: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
        /// CPU threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// A quarter of the steps: a rough figure in a quarter of the time.
        #[arg(long)]
        quick: bool,
        /// Only the networks whose name contains this text (e.g. "MLP", "width 16"), or
        /// "scheduler" for the scheduler's own cost alone.
        #[arg(long)]
        only: Option<String>,
        /// Runs that do nothing in the scheduler-overhead sweep.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        scheduler_runs: usize,
        /// Grid points in the plan-expansion measurement.
        #[arg(long, default_value_t = 100_000, value_name = "N")]
        grid_points: usize,
    },
    /// Write reports/<name>.md for each experiment from the runs in the store.
    Report {
        #[arg(required = true)]
        experiments: Vec<PathBuf>,
        #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Where the markdown goes.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
}

/// Run states that `sweep --rerun` can take again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rerun {
    Failed,
}

/// An error at the application edge, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Slurm(#[from] crate::slurm::SlurmError),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Spec(_)
            | CliError::Device(_)
            | CliError::Data(_)
            | CliError::Store(StoreError::Corrupt { .. } | StoreError::Mismatch { .. }) => 2,
            CliError::Report(
                report::ReportError::UnknownKey { .. }
                | report::ReportError::BadTable { .. }
                | report::ReportError::Reference(_),
            ) => 2,
            _ => 1,
        }
    }
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn load(path: &Path, overrides: &[String]) -> Result<Experiment, CliError> {
    let overrides = overrides
        .iter()
        .map(|o| Override::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    let exp = spec::load(path, &overrides)?;
    for w in &exp.warnings {
        eprintln!("warning: {w}");
    }
    Ok(exp)
}

fn run(cli: Cli) -> Result<u8, CliError> {
    let store = Store::new(&cli.store);
    match cli.command {
        Command::Plan {
            experiment,
            overrides,
            json,
        } => {
            let exp = load(&experiment, &overrides)?;
            plan(&exp, &store, json)?;
            Ok(0)
        }
        Command::Sweep {
            experiment,
            overrides,
            devices,
            slots_per_device,
            device,
            threads,
            rerun,
            retry,
            run_timeout,
            checkpoint_every,
            simulate,
        } => {
            let exp = load(&experiment, &overrides)?;
            let pool = match (devices, device.or(exp.device)) {
                (Some(Devices::Auto), _) => schedule::devices::auto(),
                (Some(Devices::List(list)), _) => list,
                (None, Some(DeviceChoice::Cuda(i))) => vec![PoolDevice::Cuda(i)],
                (None, Some(DeviceChoice::Vulkan(i))) => vec![PoolDevice::Vulkan(i)],
                (None, _) => vec![PoolDevice::Cpu(1)],
            };
            // A backend that is not built in fails every run: say so once, before any runs.
            for d in &pool {
                match *d {
                    PoolDevice::Cuda(i) => {
                        crate::train::device::check_built(DeviceChoice::Cuda(i))?
                    }
                    PoolDevice::Vulkan(i) => {
                        crate::train::device::check_built(DeviceChoice::Vulkan(i))?
                    }
                    _ => {}
                }
            }
            if simulate.is_none() {
                check_data(&exp)?;
            }
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            let mut slots = schedule::devices::slots(&pool, slots_per_device, cores);
            if let Some(t) = threads {
                for slot in &mut slots {
                    slot.threads = t;
                    slot.env.retain(|(k, _)| k != "RAYON_NUM_THREADS");
                    slot.env.push(("RAYON_NUM_THREADS".into(), t.to_string()));
                }
            }
            let run_timeout = run_timeout.map(std::time::Duration::from_secs_f64);
            let opts = SweepOptions {
                rerun_failed: rerun.contains(&Rerun::Failed),
                checkpoint_every,
                slots,
                retry,
                run_timeout,
                simulate,
            };
            let summary = schedule::sweep(&exp, &store, &opts)?;
            if summary.ran > 0 {
                let evaluated = if summary.evaluated > 0 {
                    format!(", {} trained before and evaluated now", summary.evaluated)
                } else {
                    String::new()
                };
                let retried = if summary.retried > 0 {
                    format!(" ({} retries)", summary.retried)
                } else {
                    String::new()
                };
                println!(
                    "{}: {} of {} runs done ({} just now{evaluated}), {} failed{retried}.",
                    exp.name,
                    summary.already_done + summary.done_now,
                    summary.total,
                    summary.done_now,
                    summary.failed.len()
                );
            }
            for f in &summary.failed {
                println!(
                    "  failed: {} ({}: {}); log: {}",
                    f.slug,
                    f.failure.class,
                    f.failure.reason,
                    f.log
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| f.dir.display().to_string())
                );
            }
            if summary.stopped {
                println!(
                    "{}: stopped on request; `mixsweep sweep` again resumes from the checkpoints.",
                    exp.name
                );
                return Ok(EXIT_INTERRUPTED as u8);
            }
            Ok(if summary.failed.is_empty() { 0 } else { 1 })
        }
        Command::Exec {
            run_dir,
            threads,
            checkpoint_every,
            device,
            simulate,
        } => {
            let threads = init_threads(threads)?;
            let evaluate = crate::eval::settings_beside(&run_dir)?;
            match exec(
                &run_dir,
                &ExecOptions {
                    threads,
                    checkpoint_every,
                    device,
                    evaluate,
                    simulate,
                },
            )? {
                ExecOutcome::Done => Ok(0),
                ExecOutcome::Failed(_) | ExecOutcome::EvaluationFailed(_) => Ok(1),
                ExecOutcome::Interrupted { .. } => Ok(EXIT_INTERRUPTED as u8),
                ExecOutcome::ClaimedElsewhere => {
                    eprintln!(
                        "{}: claimed by another live process; not run",
                        run_dir.display()
                    );
                    Ok(EXIT_CLAIMED_ELSEWHERE as u8)
                }
            }
        }
        Command::Bench {
            out,
            device,
            threads,
            quick,
            only,
            scheduler_runs,
            grid_points,
        } => {
            let threads = init_threads(threads)?;
            let dev = crate::train::device::open(device)?;
            let scheduler_only = only.as_deref() == Some("scheduler");
            let cases: Vec<_> = crate::train::bench::default_cases(quick)
                .into_iter()
                .filter(|c| {
                    !scheduler_only && only.as_ref().is_none_or(|o| c.name.contains(o.as_str()))
                })
                .collect();
            let mut text = crate::train::bench::run(&cases, &dev, device, threads);
            if only.is_none() || scheduler_only {
                eprintln!("bench: the scheduler's own cost ...");
                let tmp = crate::testing::TempDir::new()
                    .map_err(|e| CliError::Other(format!("a temporary directory: {e}")))?;
                text.push('\n');
                text.push_str(&schedule::bench::section(
                    tmp.path(),
                    scheduler_runs,
                    grid_points,
                ));
            }
            if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
            }
            store::atomic::write(&out, text.as_bytes())
                .map_err(|e| CliError::Other(format!("{}: {e}", out.display())))?;
            print!("{text}");
            println!("wrote {}", out.display());
            Ok(0)
        }
        Command::Eval {
            targets,
            settings,
            overrides,
            again,
            device,
            threads,
        } => {
            let threads = init_threads(threads)?;
            crate::train::device::check_built(device)?;
            let overrides = overrides
                .iter()
                .map(|o| Override::parse(o))
                .collect::<Result<Vec<_>, _>>()?;
            let from_file = settings.as_deref().map(spec::evaluate::load).transpose()?;
            let dev = crate::train::device::open(device)?;
            let name = crate::exec::device_name(device, threads);
            let mut failed = 0;
            for target in &targets {
                let (base, dirs) = eval_targets(target, &store)?;
                let chosen = spec::evaluate::with_overrides(
                    from_file.as_ref().unwrap_or(&base),
                    &overrides,
                )?;
                println!("{}: evaluation settings {}", target.display(), chosen.id());
                for dir in dirs {
                    failed += !eval_one(&dir, &chosen, &dev, &name, again) as usize;
                }
            }
            Ok(if failed == 0 { 0 } else { 1 })
        }
        Command::Slurm {
            experiment,
            overrides,
            partition,
            time,
            gpus_per_task,
            cpus_per_task,
            mem,
            max_parallel,
            signal_grace,
            checkpoint_every,
            rerun,
            sbatch,
            no_submit,
        } => {
            let exp = load(&experiment, &overrides)?;
            if gpus_per_task > 0 {
                crate::train::device::check_built(DeviceChoice::Cuda(0))?;
            }
            check_data(&exp)?;
            let opts = crate::slurm::SlurmOptions {
                partition,
                time,
                gpus_per_task,
                cpus_per_task,
                mem,
                max_parallel,
                signal_grace,
                checkpoint_every,
                rerun_failed: rerun.contains(&Rerun::Failed),
                extra: sbatch,
            };
            let binary = std::env::current_exe()
                .map_err(|e| CliError::Other(format!("cannot find this binary: {e}")))?;
            let Some(array) = crate::slurm::write_array(&exp, &store, &opts, &binary)? else {
                println!("{}: nothing left to run.", exp.name);
                return Ok(0);
            };
            println!(
                "{}: wrote {} ({} tasks)",
                exp.name,
                array.script.display(),
                array.runs.len()
            );
            if !no_submit {
                let job = crate::slurm::submit(&array.script)?;
                println!(
                    "{}: submitted job array {job}; `mixsweep status {}` follows it.",
                    exp.name,
                    experiment.display()
                );
            }
            Ok(0)
        }
        Command::Status {
            experiment,
            overrides,
        } => {
            let exp = load(&experiment, &overrides)?;
            status(&exp, &store)?;
            Ok(0)
        }
        Command::Report {
            experiments,
            overrides,
            reports,
        } => {
            for path in &experiments {
                let exp = load(path, &overrides)?;
                let written = report::write_report(&exp, &store, &reports)?;
                println!("wrote {}", written.display());
            }
            Ok(0)
        }
    }
}

/// The settings a target names (an experiment's `evaluate:`, or those stored beside a run
/// directory) and the trained run directories it covers.
fn eval_targets(
    target: &Path,
    store: &Store,
) -> Result<(spec::evaluate::EvalSettings, Vec<PathBuf>), CliError> {
    if target.is_dir() {
        if store::read_result(target)?.is_none() {
            return Err(CliError::Other(format!(
                "{}: not a trained run directory (no result.json)",
                target.display()
            )));
        }
        return Ok((
            crate::eval::settings_beside(target)?.unwrap_or_default(),
            vec![target.to_path_buf()],
        ));
    }
    let exp = load(target, &[])?;
    let mut dirs = Vec::new();
    for (run, state) in states(&exp, store)? {
        if state == RunState::Done {
            dirs.push(run.dir);
        } else {
            println!("  {}: {}, not evaluated", run.slug, state.label());
        }
    }
    Ok((exp.evaluate, dirs))
}

/// Evaluates one trained run under its claim; prints what happened; false if it failed.
fn eval_one(
    dir: &Path,
    settings: &spec::evaluate::EvalSettings,
    device: &burn::prelude::Device,
    name: &str,
    again: bool,
) -> bool {
    let held = match store::claim::acquire(dir) {
        Ok(Some(held)) => held,
        Ok(None) => {
            println!(
                "  {}: claimed by another live process; skipped",
                dir.display()
            );
            return true;
        }
        Err(e) => {
            println!("  {}: {e}", dir.display());
            return false;
        }
    };
    let made = crate::eval::evaluate_run(dir, settings, device, name, again);
    held.release();
    match made {
        Ok(0) => println!(
            "  {}: already evaluated under these settings (--again to redo)",
            dir.display()
        ),
        Ok(n) => println!(
            "  {}: {n} evaluation{} recorded in result.json",
            dir.display(),
            if n == 1 { "" } else { "s" }
        ),
        Err(e) => {
            println!("  {}: evaluation failed: {e}", dir.display());
            return false;
        }
    }
    true
}

/// Checks every distinct data set of the experiment once, so that a missing or damaged file
/// stops the sweep before anything is written (the runs would all fail on it).
fn check_data(exp: &Experiment) -> Result<(), CliError> {
    let mut seen = std::collections::HashSet::new();
    for run in &exp.runs {
        if run.data.image().is_some()
            && seen.insert(serde_json::to_string(&run.data).unwrap_or_default())
        {
            crate::data::check(&run.data)?;
        }
    }
    Ok(())
}

/// Sizes the CPU thread pool (all cores by default) and returns its size.
fn init_threads(threads: Option<usize>) -> Result<usize, CliError> {
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| CliError::Other(format!("cannot size the thread pool: {e}")))?;
    Ok(threads)
}

/// Each planned run's state, reading the store without writing to it.
fn states(exp: &Experiment, store: &Store) -> Result<Vec<(store::PlannedRun, RunState)>, CliError> {
    store
        .planned(exp)
        .into_iter()
        .map(|run| {
            let state = if run.dir.exists() {
                store::run_state(&run.dir)?
            } else {
                RunState::Pending
            };
            Ok((run, state))
        })
        .collect()
}

fn totals(states: &[(store::PlannedRun, RunState)]) -> String {
    let mut parts = Vec::new();
    for kind in ["done", "running", "pending", "interrupted", "failed"] {
        let n = states.iter().filter(|(_, s)| s.kind() == kind).count();
        if n > 0 {
            parts.push(format!("{n} {kind}"));
        }
    }
    format!("{} runs: {}", states.len(), parts.join(", "))
}

fn plan(exp: &Experiment, store: &Store, json: bool) -> Result<(), CliError> {
    let states = states(exp, store)?;
    if json {
        for (run, state) in &states {
            let line = serde_json::json!({ "id": run.id, "slug": run.slug, "dir": run.dir, "status": state.kind(), "spec": run.spec });
            println!("{line}");
        }
        return Ok(());
    }
    println!("{:<14} {:<40} status", "id", "run");
    for (run, state) in &states {
        println!("{:<14} {:<40} {}", &run.id[..12], run.slug, state.label());
    }
    let dup = if exp.duplicates > 0 {
        format!(" ({} duplicate grid points dropped)", exp.duplicates)
    } else {
        String::new()
    };
    println!(
        "{}: {}{dup}; store {}",
        exp.name,
        totals(&states),
        store.experiment_dir(&exp.name).display()
    );
    Ok(())
}

fn status(exp: &Experiment, store: &Store) -> Result<(), CliError> {
    let states = states(exp, store)?;
    println!("{}: {}", exp.name, totals(&states));
    let mut unevaluated = 0;
    for (run, state) in &states {
        if *state == RunState::Done
            && let Some(r) = store::read_result(&run.dir)?
            && crate::eval::needed(&run.dir, &r, &exp.evaluate)
        {
            unevaluated += 1;
        }
    }
    if unevaluated > 0 {
        println!(
            "  {unevaluated} trained runs lack the evaluation under the experiment's `evaluate:` settings {} (`mixsweep sweep` or `mixsweep eval` makes it, without retraining)",
            exp.evaluate.id()
        );
    }
    for (run, state) in &states {
        if *state != RunState::Done {
            let log = store::attempt_logs(&run.dir)
                .pop()
                .map(|p| format!("  log {}", p.display()))
                .unwrap_or_default();
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
            println!("  {name:<44} {}{place}{attempts}{log}", state.label());
        }
    }
    Ok(())
}
