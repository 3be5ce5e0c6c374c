//! The scheduler without GPUs: pretend devices (`--devices fake:N`: children get a GPU's
//! CUDA_VISIBLE_DEVICES but compute on the CPU) and simulated runs of known durations
//! (`--simulate S`: a run sleeps S seconds per epoch instead of training, and its result is
//! marked simulated). What is checked is read back from the store and from schedule.jsonl,
//! the log of every start and end the schedulers wrote.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

// Runs of 0.1 s per epoch: 16 runs from 0.5 to 3 s, 25 s in all (shared with `make bench`).
use mixsweep::schedule::bench::TIMED_EXPERIMENT as TIMED;

#[derive(Debug, Clone)]
struct Event {
    t: f64,
    event: String,
    run: String,
    device: String,
    outcome: Option<String>,
}

fn events(store: &Path, exp: &str) -> Vec<Event> {
    fs::read_to_string(store.join(exp).join("schedule.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Event {
                t: v["t"].as_f64().unwrap(),
                event: v["event"].as_str().unwrap().to_string(),
                run: v["run"].as_str().unwrap().to_string(),
                device: v["device"].as_str().unwrap().to_string(),
                outcome: v["outcome"].as_str().map(str::to_string),
            }
        })
        .collect()
}

fn done_events(ev: &[Event]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for e in ev.iter().filter(|e| e.outcome.as_deref() == Some("done")) {
        *n.entry(e.run.clone()).or_default() += 1;
    }
    n
}

#[test]
fn fake_devices_keep_their_slot_limits_and_are_all_used() {
    let sb = Sandbox::new();
    sb.write("timed.yaml", TIMED);
    let out = sb.run(&[
        "sweep",
        "timed.yaml",
        "--devices",
        "fake:2",
        "--slots-per-device",
        "2",
        "--simulate",
        "0.1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let ev = events(&sb.store(), "timed");
    assert_eq!(done_events(&ev).len(), 16);
    // Intervals per run, from its start and end events.
    let mut start: HashMap<String, (f64, String)> = HashMap::new();
    let mut spans = Vec::new();
    for e in &ev {
        match e.event.as_str() {
            "start" => {
                start.insert(e.run.clone(), (e.t, e.device.clone()));
            }
            _ => {
                let (t0, device) = start.remove(&e.run).unwrap();
                spans.push((t0, e.t, device));
            }
        }
    }
    // No device ever holds more than its 2 slots; both devices are used.
    for device in ["fake:0", "fake:1"] {
        let mine: Vec<&(f64, f64, String)> = spans.iter().filter(|s| s.2 == device).collect();
        assert!(!mine.is_empty(), "{device} was never used");
        for s in &mine {
            let at = s.0 + 1e-6;
            let concurrent = mine.iter().filter(|o| o.0 <= at && at < o.1).count();
            assert!(concurrent <= 2, "{concurrent} runs at once on {device}");
        }
    }
    // How close the makespan comes to its lower bound is a timing, measured by `make bench`
    // (reports/bench.md), not asserted here.
    // Each child was told its device: its slot, and the pretend GPU's CUDA_VISIBLE_DEVICES.
    for d in sb.run_dirs("timed") {
        let slot = status(&d)["slot"].as_str().unwrap().to_string();
        assert!(slot.starts_with("fake:"));
        let gpu = &slot[5..6];
        let log = fs::read_to_string(d.join("attempt-1.log")).unwrap();
        let header = log.lines().next().unwrap();
        assert!(
            header.contains(&format!("on slot {slot}: device cpu,"))
                && header.ends_with(&format!("CUDA_VISIBLE_DEVICES={gpu}")),
            "{header}"
        );
        assert_eq!(result(&d)["simulated"], true);
    }
}

/// `sweep timed.yaml --simulate 0.1` on `devices`, in a process group of its own, as a
/// terminal runs it (Ctrl-C reaches the whole group).
fn sweep_in_own_group(sb: &Sandbox, devices: &str) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    sb.cmd(&[
        "sweep",
        "timed.yaml",
        "--devices",
        devices,
        "--simulate",
        "0.1",
    ])
    .process_group(0)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

fn spawn_sweep(sb: &Sandbox, args: &[&str]) -> std::process::Child {
    sb.cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_child_killed_with_sigkill_is_classified_as_crashed_and_retried() {
    let sb = Sandbox::new();
    sb.write(
        "one.yaml",
        &TIMED
            .replace("[30, 25, 20, 15, 12, 10, 6, 5]", "[40]")
            .replace("seeds: [0, 1]", "seeds: [0]")
            .replace("name: timed", "name: one"),
    );
    let mut sweep = spawn_sweep(&sb, &["sweep", "one.yaml", "--simulate", "0.05"]);
    wait_for("the run to start", || {
        sb.store().join("one").exists()
            && sb.run_dirs("one").first().is_some_and(|d| {
                fs::read_to_string(d.join("status.json")).is_ok_and(|s| s.contains("running"))
            })
    });
    let dir = sb.run_dirs("one")[0].clone();
    let pid = status(&dir)["pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let code = sweep.wait().unwrap();
    assert!(code.success(), "the retry should have finished the run");
    assert_eq!(status(&dir)["attempts"], 2);
    let outcomes: Vec<String> = events(&sb.store(), "one")
        .into_iter()
        .filter_map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, ["failed:crashed", "done"]);
    assert!(fs::read_to_string(dir.join("attempt-1.log")).is_ok());
}

#[test]
fn killing_the_scheduler_at_random_moments_loses_nothing_and_runs_nothing_twice() {
    let sb = Sandbox::new();
    sb.write(
        "timed.yaml",
        &TIMED.replace("[30, 25, 20, 15, 12, 10, 6, 5]", "[12, 10, 8, 6, 4, 3]"),
    );
    // Kill moments drawn once from a fixed sequence (seconds after the start).
    for wait in [0.35, 0.9, 0.15, 1.3] {
        let mut sweep = spawn_sweep(
            &sb,
            &[
                "sweep",
                "timed.yaml",
                "--devices",
                "cpu:3",
                "--simulate",
                "0.1",
            ],
        );
        std::thread::sleep(Duration::from_secs_f64(wait));
        sweep.kill().unwrap();
        sweep.wait().unwrap();
        wait_until_nothing_runs(&sb, "timed.yaml");
    }
    let out = sb.run(&[
        "sweep",
        "timed.yaml",
        "--devices",
        "cpu:3",
        "--simulate",
        "0.1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let dirs = sb.run_dirs("timed");
    assert_eq!(dirs.len(), 12);
    for d in &dirs {
        // Every result file is whole, and a run finished once: a finished run is never started
        // again, so its result was written by exactly one attempt.
        let r = result(d);
        assert_eq!(r["simulated"], true);
        assert_eq!(status(d)["state"], "done");
    }
    let done = done_events(&events(&sb.store(), "timed"));
    assert_eq!(done.len(), 12);
    assert!(done.values().all(|&n| n == 1), "{done:?}");
}

#[test]
fn two_schedulers_racing_on_one_store_never_run_a_spec_twice() {
    let sb = Sandbox::new();
    sb.write(
        "timed.yaml",
        &TIMED.replace("[30, 25, 20, 15, 12, 10, 6, 5]", "[6, 5, 4, 3, 2, 1]"),
    );
    let a = spawn_sweep(
        &sb,
        &[
            "sweep",
            "timed.yaml",
            "--devices",
            "cpu:2",
            "--simulate",
            "0.1",
        ],
    );
    let b = spawn_sweep(
        &sb,
        &[
            "sweep",
            "timed.yaml",
            "--devices",
            "cpu:2",
            "--simulate",
            "0.1",
        ],
    );
    for mut s in [a, b] {
        s.wait().unwrap();
    }
    let out = sb.run(&["sweep", "timed.yaml", "--simulate", "0.1"]);
    assert!(text(&out).contains("nothing to run"), "{}", text(&out));
    for d in sb.run_dirs("timed") {
        assert_eq!(status(&d)["attempts"], 1, "{}", d.display());
    }
    let done = done_events(&events(&sb.store(), "timed"));
    assert_eq!(done.len(), 12);
    assert!(done.values().all(|&n| n == 1), "{done:?}");
}

#[test]
fn a_run_past_its_time_limit_stops_at_a_checkpoint_and_fails_as_timeout() {
    let sb = Sandbox::new();
    sb.write(
        "one.yaml",
        &TIMED
            .replace("[30, 25, 20, 15, 12, 10, 6, 5]", "[100]")
            .replace("seeds: [0, 1]", "seeds: [0]")
            .replace("name: timed", "name: one"),
    );
    let out = sb.run(&[
        "sweep",
        "one.yaml",
        "--simulate",
        "0.05",
        "--run-timeout",
        "0.5",
        "--retry",
        "timeout=1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let dir = sb.run_dirs("one")[0].clone();
    let s = status(&dir);
    assert_eq!(s["failure"]["class"], "timeout");
    assert_eq!(s["attempts"], 2, "one retry");
    assert!(
        text(&out).contains("retry 1 of 1") && text(&out).contains("FAILED (timeout)"),
        "{}",
        text(&out)
    );
}

#[test]
fn bad_device_lists_and_retry_policies_exit_2_saying_what_is_allowed() {
    let sb = Sandbox::new();
    sb.write("timed.yaml", TIMED);
    let out = sb.run(&["sweep", "timed.yaml", "--devices", "gpu:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("cuda:I"), "{}", text(&out));
    let out = sb.run(&["sweep", "timed.yaml", "--retry", "oops=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not a failure class"), "{}", text(&out));
}

#[test]
fn ctrl_c_stops_every_child_at_a_checkpoint_and_the_next_sweep_resumes_them() {
    // Ctrl-C on a terminal sends SIGINT to the whole process group: the scheduler and all its
    // children. Every run in progress must end `interrupted` (resumable), none `failed`.
    let sb = Sandbox::new();
    sb.write("timed.yaml", TIMED);
    let mut sweep = sweep_in_own_group(&sb, "cpu:3");
    wait_for("three runs to start", || {
        sb.store().join("timed").exists()
            && sb
                .run_dirs("timed")
                .iter()
                .filter(|d| {
                    fs::read_to_string(d.join("status.json")).is_ok_and(|s| s.contains("running"))
                })
                .count()
                == 3
    });
    Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{}", sweep.id())])
        .status()
        .unwrap();
    let code = sweep.wait().unwrap();
    assert_eq!(code.code(), Some(130));
    let states: Vec<String> = sb
        .run_dirs("timed")
        .iter()
        .map(|d| status(d)["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        states.iter().filter(|s| *s == "interrupted").count(),
        3,
        "{states:?}"
    );
    assert!(!states.iter().any(|s| s == "failed"), "{states:?}");
    let out = sb.run(&[
        "sweep",
        "timed.yaml",
        "--devices",
        "cpu:3",
        "--simulate",
        "0.1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        sb.run_dirs("timed")
            .iter()
            .all(|d| status(d)["state"] == "done")
    );
}

#[test]
fn ctrl_c_at_any_moment_of_a_runs_start_leaves_it_resumable() {
    // A Ctrl-C that reaches a child before it has installed its handlers kills it outright.
    // Before, the child had already written `running`, and the scheduler then recorded the
    // death as `failed: crashed`, which the next sweep skipped. Now the handlers come first,
    // and a death by the stop's own signal is a stop. Ctrl-C at many moments of the start.
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        let sb = Sandbox::new();
        sb.write("timed.yaml", TIMED);
        let sweep = sweep_in_own_group(&sb, "cpu:4");
        // Once the plan is written the children are being started.
        wait_for("the plan", || {
            sb.store().join("timed").join("plan.jsonl").exists()
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        Command::new("kill")
            .args(["-s", "INT", "--", &format!("-{}", sweep.id())])
            .status()
            .unwrap();
        let out = sweep.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "after {delay_ms} ms");
        let failed: Vec<String> = sb
            .run_dirs("timed")
            .iter()
            .filter(|d| status(d)["state"] == "failed")
            .map(|d| format!("{}: {}", d.display(), status(d)["failure"]))
            .collect();
        assert!(failed.is_empty(), "Ctrl-C after {delay_ms} ms: {failed:?}");
    }
}

/// `runs/throughput.json` with spiral-MLP rates at 1 thread and at every core, the latter
/// `gain` times the former.
fn measured_throughput(sb: &Sandbox, cores: usize, gain: f64) {
    let record = |threads: usize, rate: f64| {
        serde_json::json!({"device": "cpu", "threads": threads, "model": "spiral_mlp",
                           "flops_per_sec": rate, "source": "bench"})
    };
    let mut records = vec![record(1, 1e9)];
    if cores > 1 {
        records.push(record(cores, 1e9 * gain));
    }
    fs::create_dir_all(sb.store()).unwrap();
    fs::write(
        sb.store().join("throughput.json"),
        serde_json::to_string(&records).unwrap(),
    )
    .unwrap();
}

#[test]
fn the_default_cpu_pool_splits_the_cores_by_the_measured_throughput() {
    let cores = std::thread::available_parallelism().unwrap().get();
    // One ERM run per core.
    let seeds: Vec<String> = (0..cores).map(|s| s.to_string()).collect();
    let tiny = TINY
        .replace("seeds: [0, 1]", &format!("seeds: [{}]", seeds.join(", ")))
        .replace(
            "  - { method: [input_mixup], alpha: [1.0] }\n  - { method: [manifold_mixup], alpha: [2.0], layers: [[4], [0, 4]] }\n",
            "",
        );
    let sb = Sandbox::new();
    sb.write("tiny.yaml", &tiny);

    // Nothing measured: plan says so, and the sweep would use one slot with every core.
    let out = sb.run(&["plan", "tiny.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no throughput measured yet"),
        "{}",
        text(&out)
    );

    // More threads buy nothing: one slot per core finishes the runs in one round.
    measured_throughput(&sb, cores, 1.0);
    let want = format!("{cores} slot(s) × 1 thread(s)");
    let out = sb.run(&["plan", "tiny.yaml"]);
    assert!(text(&out).contains(&want), "plan: {}", text(&out));
    let out = sb.run(&["sweep", "tiny.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("cpu: {want}")),
        "sweep: {}",
        text(&out)
    );
    let slots: std::collections::HashSet<String> =
        fs::read_to_string(sb.store().join("tiny/schedule.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["slot"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
    assert_eq!(slots.len(), cores, "every slot ran a run: {slots:?}");

    // Perfect scaling and a single run left to do: one slot with every core.
    let sb = Sandbox::new();
    sb.write("tiny.yaml", &TINY.replace("seeds: [0, 1]", "seeds: [0]").replace(
        "  - { method: [input_mixup], alpha: [1.0] }\n  - { method: [manifold_mixup], alpha: [2.0], layers: [[4], [0, 4]] }\n",
        "",
    ));
    measured_throughput(&sb, cores, cores as f64);
    let out = sb.run(&["plan", "tiny.yaml"]);
    assert!(
        text(&out).contains(&format!("1 slot(s) × {cores} thread(s)")),
        "{}",
        text(&out)
    );
}
