//! The pool: slots take the next queued run the moment they are free (no batch barrier), the
//! longest expected runs first; failed runs are retried by class as configured (an OOM retry
//! waits for a device of its own); Ctrl-C stops every attempt at a checkpoint; a run past the
//! per-run time limit is stopped as a timeout. Every start and end is appended to
//! `schedule.jsonl` beside the runs, so what ran where and when can be read back.
//!
//! Attempts are started through a `Launcher` (child processes in a sweep, a fake in the tests
//! below), so every path of the pool is tested in milliseconds.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::child::{Attempt, Ended, Launcher, Terminated};
use super::devices::Slot;
use super::estimate::Durations;
use super::progress::{Progress, Tally};
use crate::store::records::{Failure, FailureClass};
use crate::store::{self, PlannedRun, StoreError};

/// How many times a failure of each class is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy(HashMap<FailureClass, u32>);

impl Default for RetryPolicy {
    /// Transient failures are retried once (an interrupted run twice, it resumes from its
    /// checkpoint); a diverged run, bad data or a bad spec fails the same way again, so never.
    fn default() -> Self {
        RetryPolicy(HashMap::from([
            (FailureClass::Oom, 1),
            (FailureClass::Crashed, 1),
            (FailureClass::Timeout, 1),
            (FailureClass::Interrupted, 2),
            (FailureClass::Evaluation, 1),
        ]))
    }
}

impl RetryPolicy {
    pub fn retries(&self, class: FailureClass) -> u32 {
        self.0.get(&class).copied().unwrap_or(0)
    }
}

impl FromStr for RetryPolicy {
    type Err = String;
    /// `oom=2,crashed=0` on top of the defaults.
    fn from_str(s: &str) -> Result<RetryPolicy, String> {
        let mut policy = RetryPolicy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (class, n) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: write class=N, e.g. oom=2"))?;
            let class: FailureClass = class.parse()?;
            let n = n
                .parse::<u32>()
                .map_err(|_| format!("`{part}`: `{n}` is not a whole number ≥ 0"))?;
            policy.0.insert(class, n);
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
    pub retried: HashMap<FailureClass, u32>,
    /// Needs every slot of one device (retrying after an OOM).
    pub exclusive: bool,
}

impl Job {
    pub fn new(run: PlannedRun, evaluate_only: bool) -> Job {
        Job {
            run,
            evaluate_only,
            retried: HashMap::new(),
            exclusive: false,
        }
    }
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
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub retry: RetryPolicy,
    /// Stop a run (at a checkpoint) after this long; it fails as `timeout`.
    pub run_timeout: Option<Duration>,
    /// How often the pool looks at its attempts.
    pub tick: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            retry: RetryPolicy::default(),
            run_timeout: None,
            tick: Duration::from_millis(50),
        }
    }
}

/// An attempt in progress on some slots.
struct Running {
    job: Job,
    attempt: Box<dyn Attempt>,
    slots: Vec<usize>,
    started: Instant,
    timed_out: bool,
}

/// The pool's state while it runs.
struct Pool<'a> {
    slots: &'a [Slot],
    opts: &'a PoolOptions,
    events: &'a Path,
    queue: Vec<Job>,
    busy: Vec<bool>,
    running: Vec<Running>,
    stopping: bool,
    report: PoolReport,
}

/// Runs `jobs` (already in the order to take them) on `slots` through `launcher` until all
/// have ended or a stop is requested, appending events to `events` (schedule.jsonl).
#[allow(clippy::too_many_arguments)]
pub fn run(
    jobs: Vec<Job>,
    slots: &[Slot],
    opts: &PoolOptions,
    launcher: &mut dyn Launcher,
    durations: &mut Durations,
    stop: &AtomicBool,
    progress: &mut Progress,
    events: &Path,
) -> Result<PoolReport, StoreError> {
    let mut pool = Pool {
        slots,
        opts,
        events,
        queue: jobs,
        busy: vec![false; slots.len()],
        running: Vec::new(),
        stopping: false,
        report: PoolReport::default(),
    };
    loop {
        // Ctrl-C reaches the children with the scheduler: the stop is seen before their ends
        // are, so that a child that ended on it counts as stopped, not as failed.
        if stop.load(Ordering::Relaxed) && !pool.stopping {
            pool.stop_all();
        }
        pool.reap(durations, progress)?;
        pool.fill(launcher, progress)?;
        pool.tick(durations, progress);
        if pool.running.is_empty() && (pool.queue.is_empty() || pool.stopping) {
            return Ok(pool.report);
        }
        std::thread::sleep(opts.tick);
    }
}

impl Pool<'_> {
    /// Stops the attempts past the time limit, and takes in those that ended.
    fn reap(
        &mut self,
        durations: &mut Durations,
        progress: &mut Progress,
    ) -> Result<(), StoreError> {
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            let Some(ended) = r.attempt.poll()? else {
                if !r.timed_out
                    && let Some(limit) = self.opts.run_timeout
                    && r.started.elapsed() > limit
                {
                    r.timed_out = true;
                    r.attempt.terminate(Terminated::Timeout);
                }
                i += 1;
                continue;
            };
            let r = self.running.swap_remove(i);
            for &s in &r.slots {
                self.busy[s] = false;
            }
            log_event(
                self.events,
                &r.job.run,
                &self.slots[r.slots[0]],
                "end",
                Some(&outcome_label(&ended)),
            );
            self.ended(r, ended, durations, progress)?;
        }
        Ok(())
    }

    /// Books one ended attempt: done, taken elsewhere, stopped, retried or failed.
    fn ended(
        &mut self,
        r: Running,
        ended: Ended,
        durations: &mut Durations,
        progress: &mut Progress,
    ) -> Result<(), StoreError> {
        let seconds = r.started.elapsed().as_secs_f64();
        let run = &r.job.run;
        match ended {
            Ended::Done if r.job.evaluate_only => {
                self.report.evaluated += 1;
                progress.finished(run, Tally::Done, &format!("evaluated in {seconds:.1} s"));
            }
            Ended::Done => {
                let result = store::read_result(&run.dir)?;
                if let Some(result) = &result {
                    durations.record(&run.spec, result.provenance.wall_time);
                }
                progress.finished(run, Tally::Done, &done_line(result.as_ref(), seconds));
                self.report.done.push(run.clone());
            }
            Ended::ClaimedElsewhere => {
                self.report.running_elsewhere += 1;
                progress.finished(run, Tally::Neither, "taken by another scheduler");
            }
            Ended::Stopped => {
                self.report.stopped = true;
                progress.finished(
                    run,
                    Tally::Neither,
                    "stopped; its checkpoint is kept and the next sweep resumes it",
                );
            }
            Ended::Failed(f) => self.failed(r.job, f, progress),
        }
        Ok(())
    }

    /// A failed attempt goes back to the front of the queue while its class has retries left
    /// (after an OOM, on a device of its own); otherwise the run has failed.
    fn failed(&mut self, mut job: Job, f: Failure, progress: &mut Progress) {
        let used = job.retried.get(&f.class).copied().unwrap_or(0);
        let allowed = self.opts.retry.retries(f.class);
        if !self.stopping && used < allowed {
            job.retried.insert(f.class, used + 1);
            job.exclusive |= f.class == FailureClass::Oom;
            self.report.retried += 1;
            progress.finished(
                &job.run,
                Tally::Neither,
                &format!(
                    "failed ({}): {}; retry {} of {allowed}",
                    f.class,
                    f.reason,
                    used + 1
                ),
            );
            self.queue.insert(0, job);
        } else {
            progress.finished(
                &job.run,
                Tally::Failed,
                &format!("FAILED ({}): {}", f.class, f.reason),
            );
            self.report.failed.push((job.run, f));
        }
    }

    /// A stop was requested: every attempt checkpoints and stops; nothing new starts.
    fn stop_all(&mut self) {
        self.stopping = true;
        self.report.stopped = true;
        for r in &mut self.running {
            r.attempt.terminate(Terminated::Stop);
        }
    }

    /// Starts queued jobs on free slots.
    fn fill(
        &mut self,
        launcher: &mut dyn Launcher,
        progress: &mut Progress,
    ) -> Result<(), StoreError> {
        while !self.stopping && !self.queue.is_empty() {
            let Some(taken) = take_slots(&self.queue[0], self.slots, &self.busy) else {
                break;
            };
            let job = self.queue.remove(0);
            // Another scheduler may have finished it since the plan.
            if !job.evaluate_only && store::read_result(&job.run.dir)?.is_some() {
                self.report.running_elsewhere += 1;
                progress.finished(&job.run, Tally::Done, "done by another scheduler");
                continue;
            }
            for &s in &taken {
                self.busy[s] = true;
            }
            let slot = &self.slots[taken[0]];
            let attempt = launcher.launch(&job.run, slot, job.evaluate_only)?;
            log_event(self.events, &job.run, slot, "start", None);
            progress.started(&job.run, &slot.label, job.evaluate_only);
            self.running.push(Running {
                job,
                attempt,
                slots: taken,
                started: Instant::now(),
                timed_out: false,
            });
        }
        Ok(())
    }

    /// Redraws the progress lines; the ETA is estimated only when they are redrawn.
    fn tick(&self, durations: &Durations, progress: &mut Progress) {
        let eta = || {
            let queued: f64 = self
                .queue
                .iter()
                .map(|j| durations.seconds(&j.run.spec).unwrap_or(0.0))
                .sum();
            let running: f64 = self
                .running
                .iter()
                .map(|r| {
                    let expected = durations.seconds(&r.job.run.spec).unwrap_or(0.0);
                    (expected - r.started.elapsed().as_secs_f64()).max(0.0)
                })
                .sum();
            durations
                .known()
                .then(|| (queued + running) / self.slots.len().max(1) as f64)
        };
        progress.tick(self.queue.len(), self.running.len(), eta, |label| {
            self.running
                .iter()
                .find(|r| self.slots[r.slots[0]].label == label)
                .map(|r| r.job.run.dir.clone())
        });
    }
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

fn outcome_label(e: &Ended) -> String {
    match e {
        Ended::Done => "done".into(),
        Ended::Stopped => "stopped".into(),
        Ended::ClaimedElsewhere => "claimed_elsewhere".into(),
        Ended::Failed(f) => format!("failed:{}", f.class),
    }
}

fn done_line(result: Option<&store::records::RunResult>, seconds: f64) -> String {
    match result {
        Some(r) if r.simulated => format!("done in {seconds:.1} s (simulated)"),
        Some(r) => format!(
            "done in {seconds:.1} s: test error {:.2}%, test NLL {:.4}",
            100.0 * r.final_metrics.test_error,
            r.final_metrics.test_nll
        ),
        None => format!("done in {seconds:.1} s"),
    }
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
    // The log is for reading back what ran where; a failed append must not stop the sweep.
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

#[cfg(test)]
mod tests;
