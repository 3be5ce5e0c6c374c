//! The command line: clap's derive tree and the dispatch to library calls. Each command goes in
//! two phases: its parsed arguments are first resolved into settings (the experiment loaded,
//! the device pool built, every input checked), and only then does anything run or write.
//! Exit codes: 0 ok, 1 some run failed (or an I/O error), 2 bad input (experiment file,
//! override, store path, device, data).

mod cost;
mod devices;
mod run;
mod show;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report;
use crate::spec::{self, Experiment, Override, SpecError};
use crate::store::{Store, StoreError};
use crate::train::device::DeviceError;

/// Declarative Manifold Mixup experiment sweeps: plan, run, resume and report.
#[derive(Debug, Parser)]
#[command(name = "mixsweep", version, about)]
pub struct Cli {
    /// Root of the run store (a directory; created when missing).
    #[arg(long, global = true, default_value = "runs")]
    pub store: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// `-o key=value`, declared once for every command that loads an experiment.
#[derive(Debug, Clone, Default, Args)]
pub struct Overrides {
    /// Override a key of every run (`-o train.epochs=5`), the seeds (`-o seeds=[0,1]`) or the
    /// plan's size limit (`-o max_runs=200000`).
    #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry run: every run of the experiment with its id, directory, status and whether its
    /// data is here. Writes nothing.
    Plan {
        experiment: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
        /// One JSON object per run instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run every pending or interrupted run of the experiment, one child process each, fanned
    /// out over the device slots; evaluate trained runs that lack the experiment's evaluation.
    Sweep(run::SweepArgs),
    /// Submit the experiment's remaining runs to Slurm as one job array: writes
    /// runs/<name>/slurm/array.sbatch and runs sbatch on it. Run it again after tasks were
    /// cancelled, preempted or timed out: it submits what is left, which resumes from its
    /// checkpoints.
    Slurm(run::SlurmArgs),
    /// Run one run directory in this process (what `sweep` starts for each run).
    Exec(run::ExecArgs),
    /// Evaluate trained runs without retraining: under the experiment's `evaluate:` settings,
    /// or new ones (`--settings FILE`, `-o key=value`). Each evaluation is added to the run's
    /// result.json beside those made under other settings.
    Eval(run::EvalArgs),
    /// Totals by state, and every run that is not done, from the store as it is now.
    Status {
        experiment: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// What this binary can compute on: the CPU, each graphics adapter (name, type, API,
    /// driver, memory) as `wgpu:N` / `vulkan:N`, the NVIDIA GPUs, and what `--devices auto`
    /// would pick.
    Devices {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure training throughput (ERM vs Manifold Mixup) and the cost of mixing; write
    /// reports/bench.md.
    Bench(run::BenchArgs),
    /// Write reports/<name>.md for each experiment from the runs in the store.
    Report {
        #[arg(required = true)]
        experiments: Vec<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
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
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(
        "--store {path}: {problem}\n  fix: --store takes a directory (created when missing), e.g. --store runs"
    )]
    BadStore { path: PathBuf, problem: String },
    #[error("{0}")]
    Other(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Spec(_)
            | CliError::Device(_)
            | CliError::Data(_)
            | CliError::BadStore { .. }
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
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, CliError> {
    let store = Store::new(&cli.store);
    check_store(&store.root)?;
    match cli.command {
        Command::Plan {
            experiment,
            overrides,
            json,
        } => show::plan(&load(&experiment, &overrides)?, &store, json).map(|()| 0),
        Command::Status {
            experiment,
            overrides,
        } => show::status(&load(&experiment, &overrides)?, &store).map(|()| 0),
        Command::Report {
            experiments,
            overrides,
            reports,
        } => show::report(&experiments, &overrides, &store, &reports).map(|()| 0),
        Command::Sweep(args) => run::sweep(args, &store),
        Command::Slurm(args) => run::slurm(args, &store),
        Command::Exec(args) => run::exec(args),
        Command::Eval(args) => run::eval(args, &store),
        Command::Bench(args) => run::bench(args, &store),
        Command::Devices { json } => devices::devices(json).map(|()| 0),
    }
}

/// `--store` must be a directory or a path where one can be made: nothing on the way to it may
/// be a file.
fn check_store(root: &Path) -> Result<(), CliError> {
    for ancestor in root.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        if ancestor.exists() && !ancestor.is_dir() {
            let problem = if ancestor == root {
                "is a file, not a directory".to_string()
            } else {
                format!(
                    "{} is a file, so no directory can be made below it",
                    ancestor.display()
                )
            };
            return Err(CliError::BadStore {
                path: root.to_path_buf(),
                problem,
            });
        }
    }
    Ok(())
}

/// Loads an experiment with its overrides, printing its warnings.
fn load(path: &Path, overrides: &Overrides) -> Result<Experiment, CliError> {
    let overrides = parse_overrides(&overrides.overrides)?;
    let exp = spec::load(path, &overrides)?;
    for w in &exp.warnings {
        eprintln!("warning: {w}");
    }
    Ok(exp)
}

fn parse_overrides(args: &[String]) -> Result<Vec<Override>, CliError> {
    Ok(args
        .iter()
        .map(|o| Override::parse(o))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Sizes the CPU thread pool (all cores by default) and returns its size.
fn init_threads(threads: Option<usize>) -> Result<usize, CliError> {
    let threads = threads.unwrap_or_else(cores);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| CliError::Other(format!("cannot size the thread pool: {e}")))?;
    Ok(threads)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_path_through_a_file_is_bad_input() {
        let tmp = crate::testing::TempDir::new().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        for root in [file.clone(), file.join("runs")] {
            let e = check_store(&root).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("--store takes a directory"), "{e}");
        }
        assert!(check_store(&tmp.path().join("new/runs")).is_ok());
    }
}
