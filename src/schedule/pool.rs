//! The pool: slots take the next queued run the moment they are free (no batch barrier), the
//! longest expected runs first; failed runs are retried by class as configured (an OOM retry
//! waits for a device of its own); Ctrl-C stops every child at a checkpoint. Every start and
//! end is appended to `schedule.jsonl` beside the runs, so what ran where and when can be read
//! back (the tests check slot limits and makespans from it).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use std::process::Child;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::child::{self, ChildArgs, Ended, Terminated};
use super::devices::Slot;
use super::estimate::Durations;
use super::progress::{Progress, Tally};
use crate::store::records::{Failure, FailureClass};
use crate::store::{self, PlannedRun, StoreError};

/// How many times a failure of each class is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy(HashMap<String, u32>);

impl Default for RetryPolicy {
    /// Transient failures are retried once (an interrupted run twice, it resumes from its
    /// checkpoint); a diverged run, bad data or a bad spec fails the same way again, so never.
    fn default() -> Self {
        RetryPolicy(HashMap::from([
            ("oom".into(), 1),
            ("crashed".into(), 1),
            ("timeout".into(), 1),
            ("interrupted".into(), 2),
            ("evaluation".into(), 1),
        ]))
    }
}

impl RetryPolicy {
    pub fn retries(&self, class: FailureClass) -> u32 {
        self.0.get(&class.to_string()).copied().unwrap_or(0)
    }
}

impl FromStr for RetryPolicy {
    type Err = String;
    /// `oom=2,crashed=0` on top of the defaults.
    fn from_str(s: &str) -> Result<RetryPolicy, String> {
        let known = [
            "oom",
            "crashed",
            "timeout",
            "interrupted",
            "diverged",
            "evaluation",
            "no_device",
            "bad_data",
            "bad_spec",
        ];
        let mut policy = RetryPolicy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (class, n) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: write class=N, e.g. oom=2"))?;
            if !known.contains(&class) {
                return Err(format!(
                    "`{class}` is not a failure class; one of {}",
                    known.join(", ")
                ));
            }
            let n = n
                .parse::<u32>()
                .map_err(|_| format!("`{part}`: `{n}` is not a whole number ≥ 0"))?;
            policy.0.insert(class.to_string(), n);
        }
        Ok(policy)
    }
}

/// A run waiting for a slot.
#[derive(Debug, Clone)]
pub struct Job {
    pub run: PlannedRun,
    /// Trained before: only its evaluation is missing.
    pub evaluate_only: bool,
    /// Retries used so far, by failure class.
    pub retried: HashMap<String, u32>,
    /// Needs every slot of one device (retrying after an OOM).
    pub exclusive: bool,
}

/// What the pool did with the jobs it was given.
#[derive(Debug, Clone, Default)]
pub struct PoolReport {
    pub done: Vec<PlannedRun>,
    pub evaluated: usize,
    pub running_elsewhere: usize,
    pub failed: Vec<(PlannedRun, Failure)>,
    pub retried: usize,
    pub stopped: bool,
}

/// Settings of the pool.
#[derive(Debug, Clone, Default)]
pub struct PoolOptions {
    pub child: ChildArgs,
    pub retry: RetryPolicy,
    /// Stop a run (at a checkpoint) after this long; it fails as `timeout`.
    pub run_timeout: Option<Duration>,
}

struct Running {
    job: Job,
    /// The run's attempts when its child started: a child that ends with the run done but
    /// the count unchanged found it done by another scheduler.
    attempts_before: u32,
    child: Child,
    slots: Vec<usize>,
    started: Instant,
    terminated: Option<Terminated>,
}

/// Runs `jobs` (already in the order to take them) on `slots` until all have ended or a stop
/// is requested, appending events to `<experiment dir>/schedule.jsonl`.
pub fn run(
    mut queue: Vec<Job>,
    slots: &[Slot],
    opts: &PoolOptions,
    durations: &mut Durations,
    stop: &AtomicBool,
    progress: &mut Progress,
    events: &Path,
) -> Result<PoolReport, StoreError> {
    let mut report = PoolReport::default();
    let mut busy = vec![false; slots.len()];
    let mut running: Vec<Running> = Vec::new();
    let mut stopping = false;
    loop {
        // Reap the children that ended.
        let mut i = 0;
        while i < running.len() {
            let exited = running[i]
                .child
                .try_wait()
                .map_err(|source| StoreError::Io {
                    path: running[i].job.run.dir.clone(),
                    source,
                })?;
            let Some(exit) = exited else {
                let r = &mut running[i];
                if r.terminated.is_none()
                    && let Some(limit) = opts.run_timeout
                    && r.started.elapsed() > limit
                {
                    r.terminated = Some(Terminated::Timeout);
                    child::terminate(&r.child);
                }
                i += 1;
                continue;
            };
            let r = running.swap_remove(i);
            for &s in &r.slots {
                busy[s] = false;
            }
            let seconds = r.started.elapsed().as_secs_f64();
            // Ctrl-C reaches the children with the scheduler: a child that ended on it before
            // the loop saw the stop flag was stopped, not interrupted from outside.
            let terminated = r
                .terminated
                .or(stop.load(Ordering::Relaxed).then_some(Terminated::Stop));
            let mut ended = child::settle(&r.job.run.dir, exit, terminated)?;
            if ended == Ended::Done
                && !r.job.evaluate_only
                && attempts(&r.job.run.dir)? == r.attempts_before
            {
                ended = Ended::ClaimedElsewhere;
            }
            log_event(
                events,
                &r.job.run,
                &slots[r.slots[0]],
                "end",
                Some(&outcome_label(&ended)),
            );
            match ended {
                Ended::Done => {
                    if r.job.evaluate_only {
                        report.evaluated += 1;
                        progress.finished(
                            &r.job.run,
                            Tally::Done,
                            &format!("evaluated in {seconds:.1} s"),
                        );
                    } else {
                        if let Some(result) = store::read_result(&r.job.run.dir)? {
                            durations.record(&r.job.run.spec, result.provenance.wall_time);
                        }
                        progress.finished(
                            &r.job.run,
                            Tally::Done,
                            &done_line(&r.job.run.dir, seconds)?,
                        );
                        report.done.push(r.job.run.clone());
                    }
                }
                Ended::ClaimedElsewhere => {
                    report.running_elsewhere += 1;
                    progress.finished(&r.job.run, Tally::Neither, "taken by another scheduler");
                }

                Ended::Stopped => {
                    report.stopped = true;
                    progress.finished(
                        &r.job.run,
                        Tally::Neither,
                        "stopped; its checkpoint is kept and the next sweep resumes it",
                    );
                }
                Ended::Failed(f) => {
                    let class = f.class.to_string();
                    let used = r.job.retried.get(&class).copied().unwrap_or(0);
                    if !stopping && used < opts.retry.retries(f.class) {
                        let mut job = r.job.clone();
                        job.retried.insert(class.clone(), used + 1);
                        job.exclusive |= f.class == FailureClass::Oom;
                        report.retried += 1;
                        progress.finished(
                            &r.job.run,
                            Tally::Neither,
                            &format!(
                                "failed ({class}): {}; retry {} of {}",
                                f.reason,
                                used + 1,
                                opts.retry.retries(f.class)
                            ),
                        );
                        queue.insert(0, job);
                    } else {
                        progress.finished(
                            &r.job.run,
                            Tally::Failed,
                            &format!("FAILED ({class}): {}", f.reason),
                        );
                        report.failed.push((r.job.run.clone(), f));
                    }
                }
            }
        }

        if stop.load(Ordering::Relaxed) && !stopping {
            stopping = true;
            report.stopped = true;
            for r in &mut running {
                r.terminated = Some(Terminated::Stop);
                child::terminate(&r.child);
            }
        }

        // Fill free slots.
        while !stopping && !queue.is_empty() {
            let Some(taken) = take_slots(&queue[0], slots, &busy) else {
                break;
            };
            let job = queue.remove(0);
            // Another scheduler may have finished it since the plan.
            if !job.evaluate_only && store::read_result(&job.run.dir)?.is_some() {
                report.running_elsewhere += 1;
                progress.finished(&job.run, Tally::Done, "done by another scheduler");
                continue;
            }
            let attempts_before = attempts(&job.run.dir)?;
            for &s in &taken {
                busy[s] = true;
            }
            let slot = &slots[taken[0]];
            let child = child::spawn(&job.run.dir, slot, &opts.child)?;
            log_event(events, &job.run, slot, "start", None);
            progress.started(&job.run, &slot.label, job.evaluate_only);
            running.push(Running {
                job,
                attempts_before,
                child,
                slots: taken,
                started: Instant::now(),
                terminated: None,
            });
        }

        // Estimated only when the progress lines are redrawn (at most twice a second).
        let eta = || {
            let remaining: f64 = queue
                .iter()
                .map(|j| durations.seconds(&j.run.spec).unwrap_or(0.0))
                .sum::<f64>()
                + running
                    .iter()
                    .map(|r| {
                        (durations.seconds(&r.job.run.spec).unwrap_or(0.0)
                            - r.started.elapsed().as_secs_f64())
                        .max(0.0)
                    })
                    .sum::<f64>();
            durations
                .known()
                .then(|| remaining / slots.len().max(1) as f64)
        };
        progress.tick(queue.len(), running.len(), eta, |label| {
            running
                .iter()
                .find(|r| slots[r.slots[0]].label == label)
                .map(|r| r.job.run.dir.clone())
        });

        if running.is_empty() && (queue.is_empty() || stopping) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(report)
}

/// The slots a job can take now: any free one, or for an exclusive job every slot of a device
/// none of whose slots is busy.
fn take_slots(job: &Job, slots: &[Slot], busy: &[bool]) -> Option<Vec<usize>> {
    if !job.exclusive {
        return busy.iter().position(|b| !b).map(|s| vec![s]);
    }
    let groups: Vec<usize> = {
        let mut g: Vec<usize> = slots.iter().map(|s| s.group).collect();
        g.dedup();
        g
    };
    groups.into_iter().find_map(|g| {
        let members: Vec<usize> = (0..slots.len()).filter(|&s| slots[s].group == g).collect();
        members.iter().all(|&s| !busy[s]).then_some(members)
    })
}

/// How many times a process has started the run.
fn attempts(dir: &Path) -> Result<u32, StoreError> {
    Ok(store::read_status(dir)?.map(|s| s.attempts).unwrap_or(0))
}

fn outcome_label(e: &Ended) -> String {
    match e {
        Ended::Done => "done".into(),
        Ended::Stopped => "stopped".into(),
        Ended::ClaimedElsewhere => "claimed_elsewhere".into(),
        Ended::Failed(f) => format!("failed:{}", f.class),
    }
}

fn done_line(dir: &Path, seconds: f64) -> Result<String, StoreError> {
    Ok(match store::read_result(dir)? {
        Some(r) if r.simulated => format!("done in {seconds:.1} s (simulated)"),
        Some(r) => format!(
            "done in {seconds:.1} s: test error {:.2}%, test NLL {:.4}",
            100.0 * r.final_metrics.test_error,
            r.final_metrics.test_nll
        ),
        None => format!("done in {seconds:.1} s"),
    })
}

/// Appends one event line to schedule.jsonl (a short O_APPEND write: lines of concurrent
/// schedulers do not interleave).
fn log_event(path: &Path, run: &PlannedRun, slot: &Slot, event: &str, outcome: Option<&str>) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let dir = run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let line = serde_json::json!({ "t": t, "event": event, "run": dir, "slot": slot.label, "device": slot.device, "outcome": outcome, "scheduler": std::process::id() });
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policies_override_the_defaults_by_class() {
        let p: RetryPolicy = "oom=3,crashed=0".parse().unwrap();
        assert_eq!(
            (
                p.retries(FailureClass::Oom),
                p.retries(FailureClass::Crashed),
                p.retries(FailureClass::Timeout),
                p.retries(FailureClass::Diverged)
            ),
            (3, 0, 1, 0)
        );
        assert!(
            "oom"
                .parse::<RetryPolicy>()
                .unwrap_err()
                .contains("class=N")
        );
        assert!(
            "nan=1"
                .parse::<RetryPolicy>()
                .unwrap_err()
                .contains("not a failure class")
        );
    }
}
