//! The commands that compute: `sweep`, `slurm`, `exec`, `eval` and `bench`. Each resolves its
//! arguments into settings first (the experiment, the device pool, the data checked) and runs
//! only when they are all valid.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{CliError, Overrides, Rerun, init_threads, load, parse_overrides};
use crate::exec::{ExecOptions, ExecOutcome};
use crate::schedule::devices::{Devices, PoolDevice, Slot};
use crate::schedule::pool::RetryPolicy;
use crate::schedule::{self, EXIT_CLAIMED_ELSEWHERE, EXIT_INTERRUPTED, SweepOptions};
use crate::spec::evaluate::EvalSettings;
use crate::spec::types::DeviceChoice;
use crate::spec::{self, Experiment};
use crate::store::{self, Store};
use crate::train::device;

#[derive(Debug, Args)]
pub struct SweepArgs {
    experiment: PathBuf,
    #[command(flatten)]
    overrides: Overrides,
    /// Where runs compute: auto (the visible GPUs, else the CPU), cpu, cpu:N (the cores in
    /// N slots), wgpu:N, vulkan:N, or a list such as cuda:0,cuda:2 or wgpu:0,cpu (default: --device, else the experiment
    /// file's `device:`, else cpu).
    #[arg(long)]
    devices: Option<Devices>,
    /// Runs packed onto each GPU at once.
    #[arg(long, default_value_t = 1, value_name = "N")]
    slots_per_device: usize,
    /// One device for every run: cpu, cuda:N, vulkan:N or wgpu:N (shorthand for --devices).
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
}

#[derive(Debug, Args)]
pub struct SlurmArgs {
    experiment: PathBuf,
    #[command(flatten)]
    overrides: Overrides,
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
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    run_dir: PathBuf,
    #[arg(long)]
    threads: Option<usize>,
    /// Write a checkpoint after every N epochs (and when stopped).
    #[arg(long, default_value_t = 10, value_name = "N")]
    checkpoint_every: usize,
    /// Where to compute: cpu, cuda:N, vulkan:N or wgpu:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Scheduler test double: sleep S seconds per epoch instead of training.
    #[arg(long, value_name = "S", hide = true)]
    simulate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
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
    /// Where to compute: cpu, cuda:N, vulkan:N or wgpu:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
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
    /// Minibatch size of every network (default: 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    batch: Option<u32>,
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
}

/// `sweep`: resolve the experiment and the pool, check the data, then run.
pub fn sweep(args: SweepArgs, store: &Store) -> Result<u8, CliError> {
    let exp = load(&args.experiment, &args.overrides)?;
    let slots = sweep_slots(&args, &exp, store)?;
    if args.simulate.is_none() {
        check_data(&exp)?;
    }
    let opts = SweepOptions {
        rerun_failed: args.rerun.contains(&Rerun::Failed),
        checkpoint_every: args.checkpoint_every,
        slots,
        retry: args.retry,
        run_timeout: args.run_timeout.map(Duration::from_secs_f64),
        simulate: args.simulate,
    };
    let summary = schedule::sweep(&exp, store, &opts)?;
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
        let log = f.log.as_ref().unwrap_or(&f.dir);
        println!(
            "  failed: {} ({}: {}); log: {}",
            f.slug,
            f.failure.class,
            f.failure.reason,
            log.display()
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

/// The pool's slots: `--devices`, else `--device` or the file's `device:`, else the CPU; a
/// backend that is not built in fails every run, so it is refused before any run. When no
/// device is named, the CPU is split into the slots × threads that finish the remaining runs
/// soonest by the measured throughput (cli/cost.rs), or one slot with every core when nothing
/// was measured yet; `--devices cpu:N` or `--threads` choose by hand.
fn sweep_slots(args: &SweepArgs, exp: &Experiment, store: &Store) -> Result<Vec<Slot>, CliError> {
    let cpu = || -> Result<PoolDevice, CliError> {
        if args.threads.is_some() {
            return Ok(PoolDevice::Cpu(1));
        }
        let views = super::show::views(exp, store)?;
        let records = super::cost::records(store, &views)?;
        Ok(
            match super::cost::cpu_split(&records, &views, super::cores()) {
                Some((slots, threads, span)) => {
                    eprintln!(
                        "cpu: {slots} slot(s) × {threads} thread(s), the fastest split by the measured throughput (expected makespan {}; `--devices cpu:N` to choose)",
                        schedule::cost::human_duration(span)
                    );
                    PoolDevice::Cpu(slots)
                }
                None => PoolDevice::Cpu(1),
            },
        )
    };
    let pool = match (&args.devices, args.device.or(exp.device)) {
        (Some(Devices::Auto), _) => schedule::devices::auto(device::adapters()),
        (Some(Devices::List(list)), _) => list.clone(),
        (None, Some(DeviceChoice::Cuda(i))) => vec![PoolDevice::Cuda(i)],
        (None, Some(DeviceChoice::Vulkan(i))) => vec![PoolDevice::Vulkan(i)],
        (None, Some(DeviceChoice::Wgpu(i))) => vec![PoolDevice::Wgpu(i)],
        (None, _) => vec![cpu()?],
    };
    for d in &pool {
        device::check_built(d.choice())?;
    }
    let mut slots = schedule::devices::slots(&pool, args.slots_per_device, super::cores());
    if let Some(t) = args.threads {
        for slot in &mut slots {
            slot.threads = t;
            slot.env.retain(|(k, _)| k != "RAYON_NUM_THREADS");
            slot.env.push(("RAYON_NUM_THREADS".into(), t.to_string()));
        }
    }
    Ok(slots)
}

/// `slurm`: resolve the experiment and the array's options, check the data, write the script
/// and submit it.
pub fn slurm(args: SlurmArgs, store: &Store) -> Result<u8, CliError> {
    let exp = load(&args.experiment, &args.overrides)?;
    if args.gpus_per_task > 0 {
        device::check_built(DeviceChoice::Cuda(0))?;
    }
    check_data(&exp)?;
    let opts = crate::slurm::SlurmOptions {
        partition: args.partition,
        time: args.time,
        gpus_per_task: args.gpus_per_task,
        cpus_per_task: args.cpus_per_task,
        mem: args.mem,
        max_parallel: args.max_parallel,
        signal_grace: args.signal_grace,
        checkpoint_every: args.checkpoint_every,
        rerun_failed: args.rerun.contains(&Rerun::Failed),
        extra: args.sbatch,
    };
    let binary = std::env::current_exe()
        .map_err(|e| CliError::Other(format!("cannot find this binary: {e}")))?;
    let Some(array) = crate::slurm::write_array(&exp, store, &opts, &binary)? else {
        println!("{}: nothing left to run.", exp.name);
        return Ok(0);
    };
    println!(
        "{}: wrote {} ({} tasks)",
        exp.name,
        array.script.display(),
        array.runs.len()
    );
    if !args.no_submit {
        let job = crate::slurm::submit(&array.script)?;
        println!(
            "{}: submitted job array {job}; `mixsweep status {}` follows it.",
            exp.name,
            args.experiment.display()
        );
    }
    Ok(0)
}

/// `exec`: one run in this process.
pub fn exec(args: ExecArgs) -> Result<u8, CliError> {
    let threads = init_threads(args.threads)?;
    let opts = ExecOptions {
        threads,
        checkpoint_every: args.checkpoint_every,
        device: args.device,
        evaluate: store::settings_beside(&args.run_dir)?,
        simulate: args.simulate,
    };
    Ok(match crate::exec::exec(&args.run_dir, &opts)? {
        ExecOutcome::Done => 0,
        ExecOutcome::Failed(_) | ExecOutcome::EvaluationFailed(_) => 1,
        ExecOutcome::Interrupted { .. } => EXIT_INTERRUPTED as u8,
        ExecOutcome::ClaimedElsewhere => {
            eprintln!(
                "{}: claimed by another live process; not run",
                args.run_dir.display()
            );
            EXIT_CLAIMED_ELSEWHERE as u8
        }
    })
}

/// `eval`: resolve the settings of each target, then evaluate its trained runs.
pub fn eval(args: EvalArgs, store: &Store) -> Result<u8, CliError> {
    let threads = init_threads(args.threads)?;
    device::check_built(args.device)?;
    let overrides = parse_overrides(&args.overrides)?;
    let from_file = args
        .settings
        .as_deref()
        .map(spec::evaluate::load)
        .transpose()?;
    let dev = device::open(args.device)?;
    let name = crate::exec::device_name(args.device, threads);
    let mut failed = 0;
    for target in &args.targets {
        let (base, dirs) = eval_targets(target, store)?;
        let chosen =
            spec::evaluate::with_overrides(from_file.as_ref().unwrap_or(&base), &overrides)?;
        println!(
            "{}: evaluation settings {}",
            target.display(),
            chosen.id().map_err(store::StoreError::from)?
        );
        for dir in dirs {
            failed += !eval_one(&dir, &chosen, &dev, &name, args.again) as usize;
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

/// The settings a target names (an experiment's `evaluate:`, or those stored beside a run
/// directory) and the trained run directories it covers.
fn eval_targets(target: &Path, store: &Store) -> Result<(EvalSettings, Vec<PathBuf>), CliError> {
    if target.is_dir() {
        if store::read_result(target)?.is_none() {
            return Err(CliError::Other(format!(
                "{}: not a trained run directory (no result.json)",
                target.display()
            )));
        }
        return Ok((
            store::settings_beside(target)?.unwrap_or_default(),
            vec![target.to_path_buf()],
        ));
    }
    let exp = load(target, &Overrides::default())?;
    let mut dirs = Vec::new();
    for run in store.planned(&exp)? {
        let view = store::view(&run.dir, &exp.evaluate, false)?;
        if view.state == store::RunState::Done {
            dirs.push(run.dir);
        } else {
            println!("  {}: {}, not evaluated", run.slug, view.state.label());
        }
    }
    Ok((exp.evaluate, dirs))
}

/// Evaluates one trained run under its claim; prints what happened; false if it failed.
fn eval_one(
    dir: &Path,
    settings: &EvalSettings,
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

/// `bench`: the training step's throughput, then the scheduler's own cost.
pub fn bench(args: BenchArgs, store: &Store) -> Result<u8, CliError> {
    let threads = init_threads(args.threads)?;
    let dev = device::open(args.device)?;
    let only = args.only.as_deref();
    let scheduler_only = only == Some("scheduler");
    let cases: Vec<_> = crate::train::bench::default_cases(args.quick)
        .into_iter()
        .filter(|c| !scheduler_only && only.is_none_or(|o| c.name.contains(o)))
        .map(|mut c| {
            c.batch = args.batch.map_or(c.batch, |b| b as usize);
            c
        })
        .collect();
    let (mut text, measured) =
        crate::train::bench::run(&cases, &dev, args.device, threads, args.quick)?;
    // What `plan` and the CPU pool estimate durations from.
    store::throughput::update(store, &measured)?;
    if only.is_none() || scheduler_only {
        eprintln!("bench: the scheduler's own cost ...");
        let tmp = crate::testing::TempDir::new()
            .map_err(|e| CliError::Other(format!("a temporary directory: {e}")))?;
        text.push('\n');
        text.push_str(&schedule::bench::section(
            tmp.path(),
            args.scheduler_runs,
            args.grid_points,
        ));
    }
    let out = &args.out;
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
    }
    store::atomic::write(out, text.as_bytes())
        .map_err(|e| CliError::Other(format!("{}: {e}", out.display())))?;
    print!("{text}");
    println!(
        "wrote {} and the measured throughput to {}",
        out.display(),
        store::throughput::path(store).display()
    );
    Ok(0)
}

/// Checks every distinct data set of the experiment once, so that a missing or damaged file
/// stops the sweep before anything is written (the runs would all fail on it).
fn check_data(exp: &Experiment) -> Result<(), CliError> {
    for data in super::show::distinct_image_data(exp) {
        crate::data::check(data)?;
    }
    Ok(())
}
