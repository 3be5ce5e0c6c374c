//! The pool against a fake launcher: scripted attempts that end after a set time with a set
//! outcome, or when terminated. Retries, OOM-exclusive retries, stops and timeouts run in
//! milliseconds; tests/schedule.rs keeps a few real child processes.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use super::*;
use crate::schedule::devices::{PoolDevice, slots};
use crate::store::Store;

/// One scripted attempt: it ends `after` its start with `ended`, unless terminated first.
#[derive(Clone)]
struct Script {
    after: Duration,
    ended: Ended,
}

fn done(ms: u64) -> Script {
    Script {
        after: Duration::from_millis(ms),
        ended: Ended::Done,
    }
}

fn fails(ms: u64, class: FailureClass) -> Script {
    Script {
        after: Duration::from_millis(ms),
        ended: Ended::Failed(Failure {
            class,
            reason: "scripted".into(),
        }),
    }
}

/// What ran: run slug, slot, device group, start, end and outcome.
#[derive(Debug, Clone)]
struct Interval {
    slug: String,
    group: usize,
    start: Instant,
    end: Option<Instant>,
    outcome: Option<Ended>,
}

#[derive(Default)]
struct Fake {
    scripts: HashMap<String, VecDeque<Script>>,
    log: Rc<RefCell<Vec<Interval>>>,
    /// Raise this stop flag once this many attempts have started (a Ctrl-C mid-sweep).
    stop_after: Option<(usize, Arc<AtomicBool>)>,
}

struct FakeAttempt {
    script: Script,
    started: Instant,
    terminated: Option<Terminated>,
    index: usize,
    log: Rc<RefCell<Vec<Interval>>>,
}

impl Launcher for Fake {
    fn launch(
        &mut self,
        run: &PlannedRun,
        slot: &Slot,
        _evaluate_only: bool,
    ) -> Result<Box<dyn Attempt>, StoreError> {
        let script = self
            .scripts
            .get_mut(&run.slug)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| done(0));
        let mut log = self.log.borrow_mut();
        log.push(Interval {
            slug: run.slug.clone(),
            group: slot.group,
            start: Instant::now(),
            end: None,
            outcome: None,
        });
        if let Some((n, stop)) = &self.stop_after
            && log.len() == *n
        {
            stop.store(true, Ordering::Relaxed);
        }
        Ok(Box::new(FakeAttempt {
            script,
            started: Instant::now(),
            terminated: None,
            index: log.len() - 1,
            log: Rc::clone(&self.log),
        }))
    }
}

impl Attempt for FakeAttempt {
    fn poll(&mut self) -> Result<Option<Ended>, StoreError> {
        let ended = match self.terminated {
            Some(Terminated::Stop) => Ended::Stopped,
            Some(Terminated::Timeout) => Ended::Failed(Failure {
                class: FailureClass::Timeout,
                reason: "stopped at the time limit".into(),
            }),
            None if self.started.elapsed() >= self.script.after => self.script.ended.clone(),
            None => return Ok(None),
        };
        let mut log = self.log.borrow_mut();
        log[self.index].end = Some(Instant::now());
        log[self.index].outcome = Some(ended.clone());
        Ok(Some(ended))
    }

    fn terminate(&mut self, why: Terminated) {
        self.terminated.get_or_insert(why);
    }
}

/// `n` planned runs (seeds 0..n of one ERM point), in a store under `dir`.
fn runs(dir: &Path, n: usize) -> Vec<PlannedRun> {
    let seeds: Vec<String> = (0..n).map(|s| s.to_string()).collect();
    let yaml = format!(
        "name: fake\nbase:\n  method: erm\n  data: {{ name: spirals, n_train: 8, n_test: 8 }}\n  model: {{ name: spiral_mlp, width: 2, depth: 1 }}\n  train: {{ epochs: 1, batch_size: 4 }}\nseeds: [{}]\n",
        seeds.join(", ")
    );
    let exp = crate::spec::parse(&yaml, Path::new("fake.yaml"), &[]).unwrap();
    Store::new(dir).write_plan(&exp).unwrap()
}

/// Runs the pool over `runs` on `devices` (2 slots per fake GPU) with the fake.
fn pool(
    dir: &Path,
    runs: &[PlannedRun],
    devices: &[PoolDevice],
    fake: &mut Fake,
    opts: PoolOptions,
    stop: &AtomicBool,
) -> PoolReport {
    let slots = slots(devices, 2, 4);
    let jobs = runs.iter().map(|r| Job::new(r.clone(), false)).collect();
    let mut progress = Progress::new(&slots, runs.len());
    let mut durations = Durations::default();
    let events = dir.join("schedule.jsonl");
    run(
        jobs,
        &slots,
        &opts,
        fake,
        &mut durations,
        stop,
        &mut progress,
        &events,
    )
    .unwrap()
}

fn fast() -> PoolOptions {
    PoolOptions {
        tick: Duration::from_millis(1),
        ..PoolOptions::default()
    }
}

#[test]
fn a_crash_is_retried_once_by_default_and_not_at_all_with_crashed_0() {
    let tmp = crate::testing::TempDir::new().unwrap();
    let runs = runs(tmp.path(), 3);
    let flaky = runs[1].slug.clone();
    for (policy, expect_failed) in [("", 0), ("crashed=0", 1)] {
        let mut fake = Fake::default();
        fake.scripts.insert(
            flaky.clone(),
            VecDeque::from([fails(2, FailureClass::Crashed), done(2)]),
        );
        let opts = PoolOptions {
            retry: policy.parse().unwrap(),
            ..fast()
        };
        let report = pool(
            tmp.path(),
            &runs,
            &[PoolDevice::Fake(0)],
            &mut fake,
            opts,
            &AtomicBool::new(false),
        );
        assert_eq!(report.failed.len(), expect_failed, "policy `{policy}`");
        assert_eq!(report.done.len(), 3 - expect_failed);
        assert_eq!(report.retried, 1 - expect_failed);
        let launches = fake.log.borrow().iter().filter(|i| i.slug == flaky).count();
        assert_eq!(launches, 2 - expect_failed);
    }
}

#[test]
fn a_diverged_run_is_never_retried() {
    let tmp = crate::testing::TempDir::new().unwrap();
    let runs = runs(tmp.path(), 1);
    let mut fake = Fake::default();
    fake.scripts.insert(
        runs[0].slug.clone(),
        VecDeque::from([fails(1, FailureClass::Diverged)]),
    );
    let report = pool(
        tmp.path(),
        &runs,
        &[PoolDevice::Fake(0)],
        &mut fake,
        fast(),
        &AtomicBool::new(false),
    );
    assert_eq!(report.failed[0].1.class, FailureClass::Diverged);
    assert_eq!((report.retried, fake.log.borrow().len()), (0, 1));
}

#[test]
fn an_oom_retry_has_a_device_to_itself() {
    // Two fake GPUs with two slots each; run 0 runs out of memory at once, the others take
    // 40 ms. Its retry must not share its device with any other run while it lasts.
    let tmp = crate::testing::TempDir::new().unwrap();
    let runs = runs(tmp.path(), 7);
    let mut fake = Fake::default();
    for r in &runs[1..] {
        fake.scripts
            .insert(r.slug.clone(), VecDeque::from([done(40)]));
    }
    let oom = runs[0].slug.clone();
    fake.scripts.insert(
        oom.clone(),
        VecDeque::from([fails(1, FailureClass::Oom), done(20)]),
    );
    let report = pool(
        tmp.path(),
        &runs,
        &[PoolDevice::Fake(0), PoolDevice::Fake(1)],
        &mut fake,
        fast(),
        &AtomicBool::new(false),
    );
    assert_eq!((report.done.len(), report.retried), (7, 1));
    let log = fake.log.borrow();
    let retry = log
        .iter()
        .filter(|i| i.slug == oom)
        .nth(1)
        .expect("a retry");
    let (start, end) = (retry.start, retry.end.unwrap());
    for other in log
        .iter()
        .filter(|i| i.slug != oom && i.group == retry.group)
    {
        let overlaps = other.start < end && other.end.unwrap() > start;
        assert!(
            !overlaps,
            "{other:?} shared the device with the OOM retry {retry:?}"
        );
    }
}

#[test]
fn a_stop_terminates_every_attempt_and_starts_nothing_more() {
    let tmp = crate::testing::TempDir::new().unwrap();
    let runs = runs(tmp.path(), 10);
    let mut fake = Fake::default();
    for r in &runs {
        fake.scripts
            .insert(r.slug.clone(), VecDeque::from([done(10_000)]));
    }
    // The stop comes once every slot has an attempt (at any moment of the machine's load).
    let stop = Arc::new(AtomicBool::new(false));
    fake.stop_after = Some((4, Arc::clone(&stop)));
    let t = Instant::now();
    let report = pool(
        tmp.path(),
        &runs,
        &[PoolDevice::Fake(0), PoolDevice::Fake(1)],
        &mut fake,
        fast(),
        &stop,
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the pool waited for its attempts"
    );
    assert!(report.stopped && report.done.is_empty() && report.failed.is_empty());
    let log = fake.log.borrow();
    assert_eq!(log.len(), 4, "one attempt per slot, none after the stop");
    assert!(log.iter().all(|i| i.outcome == Some(Ended::Stopped)));
}

#[test]
fn a_run_past_the_time_limit_fails_as_timeout_after_its_retry() {
    let tmp = crate::testing::TempDir::new().unwrap();
    let runs = runs(tmp.path(), 2);
    let mut fake = Fake::default();
    let slow = runs[0].slug.clone();
    fake.scripts
        .insert(slow.clone(), VecDeque::from([done(10_000), done(10_000)]));
    let opts = PoolOptions {
        run_timeout: Some(Duration::from_millis(20)),
        ..fast()
    };
    let report = pool(
        tmp.path(),
        &runs,
        &[PoolDevice::Fake(0)],
        &mut fake,
        opts,
        &AtomicBool::new(false),
    );
    assert_eq!(report.done.len(), 1);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].1.class, FailureClass::Timeout);
    // The default policy retries a timeout once.
    let launches = fake.log.borrow().iter().filter(|i| i.slug == slow).count();
    assert_eq!((launches, report.retried), (2, 1));
}

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
