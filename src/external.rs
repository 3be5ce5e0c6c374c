//! A run trained by an external program (`runner: { command: … }`), under `exec`'s claim.
//!
//! The protocol (README, "Any training program as a run"):
//! - in: the command with its placeholders filled from the resolved spec, started in the
//!   runner's `cwd`, with `MIXSWEEP_RUN_DIR`, `MIXSWEEP_SPEC` (the resolved spec as JSON),
//!   `MIXSWEEP_CHECKPOINT_DIR`, `MIXSWEEP_METRICS`, `MIXSWEEP_THREADS` (also as
//!   `OMP_NUM_THREADS` and `MKL_NUM_THREADS`), the runner's `env`, and the slot's
//!   `CUDA_VISIBLE_DEVICES`;
//! - out: one JSON object per evaluated epoch, a line each, in `MIXSWEEP_METRICS`:
//!   `epoch`, `test_error` (a fraction), `test_nll`, optionally `lr`, `train_loss`,
//!   `val_error`, `val_nll`, `elapsed`, and anything else (kept in the file, not read);
//! - resume: a program started again finds what it left in `MIXSWEEP_CHECKPOINT_DIR`; a
//!   metrics line for an epoch already written replaces the earlier one;
//! - stop: SIGTERM is forwarded to it when the run is asked to stop;
//! - failure: a non-zero exit is `crashed` (an out-of-memory message in its output becomes
//!   `oom` in the scheduler's log classifier), a non-finite metric `diverged`, no metrics at
//!   all `crashed`; each with the last lines of its output in the reason.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::spec::RunSpec;
use crate::spec::runner::{self, External};
use crate::store::records::{EpochMetrics, Failure, FailureClass};

/// The file the program writes its metrics to, in the run directory.
pub const METRICS_FILE: &str = "program-metrics.jsonl";

/// Lines of the program's output kept for a failure's reason.
const TAIL_LINES: usize = 15;

/// How the program's attempt ended, short of a failure.
#[derive(Debug)]
pub enum Ended {
    /// It exited 0 having written these epochs' metrics (in epoch order).
    Finished {
        history: Vec<EpochMetrics>,
        wall_time: f64,
        /// The command as run, for the result's provenance.
        command: String,
    },
    /// It was asked to stop (SIGTERM) and exited; the last epoch it recorded.
    Stopped { epoch: usize },
}

fn failure(class: FailureClass, reason: impl Into<String>) -> Failure {
    Failure {
        class,
        reason: reason.into(),
    }
}

/// Runs the program of `ext` for the run in `run_dir` (absolute or relative to here).
pub fn run(
    spec: &RunSpec,
    ext: &External,
    run_dir: &Path,
    threads: usize,
    stop: &AtomicBool,
    on_epoch: &dyn Fn(usize),
) -> Result<Ended, Failure> {
    let now = runner::file_hashes(ext).map_err(|e| {
        failure(
            FailureClass::BadSpec,
            format!("a file of the command cannot be read: {e}"),
        )
    })?;
    if now != ext.files {
        return Err(failure(
            FailureClass::BadSpec,
            format!(
                "the files of the command changed after this run was planned (planned {:?}, now {:?}): the edited program makes new runs; sweep again",
                ext.files, now
            ),
        ));
    }
    let json = serde_json::to_value(spec)
        .map_err(|e| failure(FailureClass::BadSpec, format!("spec as JSON: {e}")))?;
    let values = runner::values(&json);
    let args: Vec<String> = ext
        .command
        .iter()
        .map(|a| runner::substitute(a, &values))
        .collect::<Result<_, _>>()
        .map_err(|key| {
            failure(
                FailureClass::BadSpec,
                format!("placeholder {{{key}}} names no key of the spec"),
            )
        })?;
    let run_dir = std::path::absolute(run_dir)
        .map_err(|e| failure(FailureClass::Crashed, format!("run directory: {e}")))?;
    let checkpoints = run_dir.join(crate::store::RunFiles::CHECKPOINT);
    std::fs::create_dir_all(&checkpoints).map_err(|e| {
        failure(
            FailureClass::Crashed,
            format!("{}: {e}", checkpoints.display()),
        )
    })?;
    let metrics = run_dir.join(METRICS_FILE);
    let command = args.join(" ");
    eprintln!("runner: {command} (in {})", runner::workdir(ext).display());
    let started = Instant::now();
    let mut cmd = Command::new(&args[0]);
    // Killed with its `exec` (a sweep killed hard leaves no program writing into the run).
    crate::schedule::child::die_with_parent(&mut cmd);
    let mut child = cmd
        .args(&args[1..])
        .current_dir(runner::workdir(ext))
        .envs(&ext.env)
        .env("MIXSWEEP_RUN_DIR", &run_dir)
        .env("MIXSWEEP_SPEC", json.to_string())
        .env("MIXSWEEP_CHECKPOINT_DIR", &checkpoints)
        .env("MIXSWEEP_METRICS", &metrics)
        .env("MIXSWEEP_THREADS", threads.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("MKL_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            failure(
                FailureClass::Crashed,
                format!("could not start `{}`: {e}", args[0]),
            )
        })?;
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let copiers = [
        child.stdout.take().map(|o| echo(o, Arc::clone(&tail))),
        child.stderr.take().map(|e| echo(e, Arc::clone(&tail))),
    ];
    let (status, stopped) = wait(&mut child, stop, &metrics, on_epoch);
    for c in copiers.into_iter().flatten() {
        let _ = c.join();
    }
    let last_lines = || {
        let lines = tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>());
        let lines = lines.unwrap_or_default();
        if lines.is_empty() {
            "(it printed nothing)".to_string()
        } else {
            format!("its last lines:\n{}", lines.join("\n"))
        }
    };
    let status =
        status.map_err(|e| failure(FailureClass::Crashed, format!("waiting for it: {e}")))?;
    let history = read_metrics(&metrics)?;
    if stopped {
        return Ok(Ended::Stopped {
            epoch: history.last().map(|m| m.epoch).unwrap_or(0),
        });
    }
    if !status.success() {
        return Err(failure(
            FailureClass::Crashed,
            format!("`{command}` exited with {status}; {}", last_lines()),
        ));
    }
    if history.is_empty() {
        return Err(failure(
            FailureClass::Crashed,
            format!(
                "`{command}` exited 0 but wrote no metrics to MIXSWEEP_METRICS ({}); {}",
                metrics.display(),
                last_lines()
            ),
        ));
    }
    Ok(Ended::Finished {
        history,
        wall_time: started.elapsed().as_secs_f64(),
        command,
    })
}

/// Copies a stream of the program to our stderr (the run's log) line by line, keeping the
/// last [TAIL_LINES].
fn echo(
    stream: impl Read + Send + 'static,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    })
}

/// Waits for the program, forwarding a stop request as SIGTERM once and reporting progress
/// from its metrics file; returns its exit status and whether it was asked to stop.
fn wait(
    child: &mut Child,
    stop: &AtomicBool,
    metrics: &Path,
    on_epoch: &dyn Fn(usize),
) -> (std::io::Result<std::process::ExitStatus>, bool) {
    let mut signalled = false;
    let mut last_look = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Ok(status), signalled),
            Ok(None) => {}
            Err(e) => return (Err(e), signalled),
        }
        if !signalled && stop.load(Ordering::Relaxed) {
            signalled = true;
            terminate(child);
        }
        if last_look.elapsed() > Duration::from_secs(1) {
            last_look = Instant::now();
            if let Ok(h) = read_metrics(metrics)
                && let Some(m) = h.last()
            {
                on_epoch(m.epoch);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(unix)]
fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    let _ = child.kill();
}

/// The program's metrics file as our epochs (a later line for an epoch replaces an earlier
/// one, so a resumed program may append or rewrite); none when the file does not exist.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(failure(
                FailureClass::Crashed,
                format!("{}: {e}", path.display()),
            ));
        }
    };
    let mut by_epoch: BTreeMap<usize, EpochMetrics> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), i + 1);
        // Python's json writes NaN and Infinity, which are not JSON: a diverged run.
        if ["NaN", "Infinity"].iter().any(|t| line.contains(t)) {
            return Err(failure(
                FailureClass::Diverged,
                format!("{}: a metric is not finite: {line}", at()),
            ));
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            failure(
                FailureClass::Crashed,
                format!("{}: not a JSON object ({e}): {line}", at()),
            )
        })?;
        let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        let need = |k: &str| {
            num(k).ok_or_else(|| {
                failure(
                    FailureClass::Crashed,
                    format!("{}: `{k}` missing or not a number: {line}", at()),
                )
            })
        };
        let epoch = v
            .get("epoch")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                failure(
                    FailureClass::Crashed,
                    format!("{}: `epoch` missing or not a whole number: {line}", at()),
                )
            })? as usize;
        let m = EpochMetrics {
            epoch,
            lr: num("lr").unwrap_or(0.0),
            train_loss: num("train_loss").unwrap_or(0.0),
            test_error: need("test_error")?,
            test_nll: need("test_nll")?,
            val_error: num("val_error"),
            val_nll: num("val_nll"),
            elapsed: num("elapsed").unwrap_or(0.0),
        };
        let finite = [m.test_error, m.test_nll, m.train_loss]
            .iter()
            .chain(m.val_error.iter())
            .chain(m.val_nll.iter())
            .all(|x| x.is_finite());
        if !finite {
            return Err(failure(
                FailureClass::Diverged,
                format!("{}: a metric is not finite: {line}", at()),
            ));
        }
        by_epoch.insert(epoch, m);
    }
    Ok(by_epoch.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines_become_epochs_and_bad_ones_fail_by_class() {
        let dir = std::env::temp_dir().join(format!("mixsweep-external-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(METRICS_FILE);
        assert!(read_metrics(&p).unwrap().is_empty());
        std::fs::write(
            &p,
            "{\"epoch\": 1, \"test_error\": 0.5, \"test_nll\": 0.9, \"acc\": 3}\n\
             {\"epoch\": 2, \"test_error\": 0.4, \"test_nll\": 0.8}\n\
             {\"epoch\": 2, \"test_error\": 0.3, \"test_nll\": 0.7, \"lr\": 0.1}\n",
        )
        .unwrap();
        let h = read_metrics(&p).unwrap();
        assert_eq!(h.len(), 2);
        // The later line for epoch 2 wins (a resumed program).
        assert_eq!((h[1].epoch, h[1].test_error, h[1].lr), (2, 0.3, 0.1));
        std::fs::write(
            &p,
            "{\"epoch\": 1, \"test_error\": NaN, \"test_nll\": 0.9}\n",
        )
        .unwrap();
        assert_eq!(read_metrics(&p).unwrap_err().class, FailureClass::Diverged);
        std::fs::write(&p, "{\"epoch\": 1, \"test_nll\": 0.9}\n").unwrap();
        let e = read_metrics(&p).unwrap_err();
        assert_eq!(e.class, FailureClass::Crashed);
        assert!(e.reason.contains("`test_error` missing"), "{}", e.reason);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
