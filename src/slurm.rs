//! `mixsweep slurm <exp.yaml>`: the experiment's remaining runs as one Slurm job array. It
//! writes `runs/<exp>/slurm/array.sbatch` — one array task per run still to do (pending,
//! interrupted, failed with `--rerun failed`, or trained but not yet evaluated), the run
//! directories listed in the script itself so that a later submission never changes what a
//! queued task runs — and submits it with `sbatch`. Each task runs `mixsweep exec` on its run
//! directory, which claims the run (so a run is never executed twice, whoever else works on
//! the store) and resumes it from its checkpoint. Tasks get SIGTERM before their time limit
//! (`--signal`) and are requeued when preempted (`--requeue`); either way the run stops at a
//! checkpoint, and `mixsweep slurm` again submits what is left. `status` and `report` read the
//! same store.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::spec::Experiment;
use crate::store::{self, Next, Store, StoreError, atomic};

/// How the array is asked for.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Per task, in Slurm's format (`04:00:00`, `90` minutes).
    pub time: Option<String>,
    pub gpus_per_task: usize,
    pub cpus_per_task: usize,
    pub mem: Option<String>,
    /// At most this many tasks at once (`--array=…%N`).
    pub max_parallel: usize,
    /// Seconds before the time limit at which a task is sent SIGTERM to checkpoint.
    pub signal_grace: u32,
    pub checkpoint_every: usize,
    /// Also take failed runs again.
    pub rerun_failed: bool,
    /// Extra `#SBATCH` lines, verbatim (`--account=abc`, `--qos=high`).
    pub extra: Vec<String>,
}

/// Why the array could not be written or submitted.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "sbatch could not be run ({reason}); is this a Slurm login node? The script is {script}: submit it with `sbatch {script}`"
    )]
    NoSbatch { reason: String, script: String },
    #[error("sbatch refused {script}: {stderr}")]
    Refused { script: String, stderr: String },
}

/// The script written, with the run directories it covers.
#[derive(Debug, Clone)]
pub struct Array {
    pub script: PathBuf,
    pub runs: Vec<PathBuf>,
}

/// Plans `exp` into `store` and writes the array script over the runs still to do; `None`
/// when nothing is left.
pub fn write_array(
    exp: &Experiment,
    store: &Store,
    opts: &SlurmOptions,
    binary: &Path,
) -> Result<Option<Array>, SlurmError> {
    let planned = store.write_plan(exp)?;
    let mut runs = Vec::new();
    for run in &planned {
        if store::view(&run.dir, &exp.evaluate, opts.rerun_failed)?.next != Next::Nothing {
            runs.push(absolute(&run.dir));
        }
    }
    if runs.is_empty() {
        return Ok(None);
    }
    // Longest first, as the local pool takes them (plan order among equals).
    let cost = |dir: &PathBuf| {
        planned
            .iter()
            .find(|r| absolute(&r.dir) == *dir)
            .map(|r| crate::schedule::estimate::cost(&r.spec))
            .unwrap_or(0.0)
    };
    runs.sort_by(|a, b| cost(b).total_cmp(&cost(a)));
    let dir = absolute(&store.experiment_dir(&exp.name)).join("slurm");
    std::fs::create_dir_all(&dir).map_err(|source| SlurmError::Io {
        path: dir.clone(),
        source,
    })?;
    let script = dir.join("array.sbatch");
    let text = script_text(
        exp,
        &runs,
        opts,
        &absolute(binary),
        &absolute(&store.root),
        &dir,
    );
    atomic::write(&script, text.as_bytes()).map_err(|source| SlurmError::Io {
        path: script.clone(),
        source,
    })?;
    Ok(Some(Array { script, runs }))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Single-quotes a string for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The batch script.
pub fn script_text(
    exp: &Experiment,
    runs: &[PathBuf],
    opts: &SlurmOptions,
    binary: &Path,
    store_root: &Path,
    dir: &Path,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# Written by `mixsweep slurm` for experiment {} ({}): one array task per run",
        exp.name,
        exp.file.display()
    );
    let _ = writeln!(
        s,
        "# still to do. Each task claims its run and resumes it from its checkpoint."
    );
    let _ = writeln!(s, "#SBATCH --job-name=mixsweep-{}", exp.name);
    let _ = writeln!(
        s,
        "#SBATCH --array=0-{}%{}",
        runs.len() - 1,
        opts.max_parallel.max(1)
    );
    let _ = writeln!(s, "#SBATCH --output={}/%A_%a.out", dir.display());
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", opts.cpus_per_task.max(1));
    if let Some(t) = &opts.time {
        let _ = writeln!(s, "#SBATCH --time={t}");
    }
    if let Some(p) = &opts.partition {
        let _ = writeln!(s, "#SBATCH --partition={p}");
    }
    if opts.gpus_per_task > 0 {
        let _ = writeln!(s, "#SBATCH --gres=gpu:{}", opts.gpus_per_task);
    }
    if let Some(m) = &opts.mem {
        let _ = writeln!(s, "#SBATCH --mem={m}");
    }
    let _ = writeln!(s, "#SBATCH --signal=B:TERM@{}", opts.signal_grace);
    let _ = writeln!(s, "#SBATCH --requeue");
    for line in &opts.extra {
        let _ = writeln!(s, "#SBATCH {line}");
    }
    let _ = writeln!(s, "set -u");
    let _ = writeln!(s, "RUNS=(");
    for r in runs {
        let _ = writeln!(s, "  {}", quote(&r.display().to_string()));
    }
    let _ = writeln!(s, ")");
    let _ = writeln!(s, "RUN=\"${{RUNS[$SLURM_ARRAY_TASK_ID]}}\"");
    let _ = writeln!(
        s,
        "export {}=\"slurm:${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}\"",
        crate::schedule::SLOT_ENV
    );
    let _ = writeln!(
        s,
        "n=1; while [ -e \"$RUN/attempt-$n.log\" ]; do n=$((n + 1)); done"
    );
    let _ = writeln!(
        s,
        "echo \"task ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} on $(hostname): $RUN (log $RUN/attempt-$n.log)\""
    );
    let device = if opts.gpus_per_task > 0 {
        "cuda:0"
    } else {
        "cpu"
    };
    let _ = writeln!(
        s,
        "exec {} --store {} exec \"$RUN\" --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" --checkpoint-every {} --device {device} > \"$RUN/attempt-$n.log\" 2>&1",
        quote(&binary.display().to_string()),
        quote(&store_root.display().to_string()),
        opts.checkpoint_every
    );
    s
}

/// Submits the script; returns Slurm's job id.
pub fn submit(script: &Path) -> Result<String, SlurmError> {
    let shown = script.display().to_string();
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| SlurmError::NoSbatch {
            reason: e.to_string(),
            script: shown.clone(),
        })?;
    if !out.status.success() {
        return Err(SlurmError::Refused {
            script: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let log = script.with_file_name("submissions.jsonl");
    let line = serde_json::json!({ "job": id, "script": shown, "submitted": crate::store::records::now() });
    let mut previous = std::fs::read_to_string(&log).unwrap_or_default();
    previous.push_str(&format!("{line}\n"));
    atomic::write(&log, previous.as_bytes()).map_err(|source| SlurmError::Io {
        path: log.clone(),
        source,
    })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
