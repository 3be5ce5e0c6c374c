//! The command line end to end, as a user runs it: planning, bad input, sweeps, resume after a
//! kill, determinism and reports. Every experiment here is tiny (a few epochs on 64 points).

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;
use common::*;

fn plan_ids(sb: &Sandbox, file: &str) -> Vec<String> {
    let out = sb.run(&["plan", file, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn plan_counts_blocks_seeds_and_excludes_and_writes_nothing() {
    let sb = Sandbox::new();
    sb.write("e.yaml", TINY);
    // 2 seeds × (1 + 1 + 2) points.
    assert_eq!(plan_ids(&sb, "e.yaml").len(), 8);
    let out = sb.run(&["plan", "e.yaml", "-o", "seeds=[0, 1, 2]"]);
    assert!(text(&out).contains("12 runs: 12 pending"), "{}", text(&out));
    let with_exclude = format!(
        "{TINY}exclude:\n  - {{ method: manifold_mixup, layers: [0, 4] }}\n  - {{ method: erm, seed: 1 }}\n"
    );
    sb.write("x.yaml", &with_exclude);
    assert_eq!(plan_ids(&sb, "x.yaml").len(), 8 - 2 - 1);
    assert!(!sb.store().exists(), "plan wrote to the store");
}

#[test]
fn run_ids_ignore_formatting_and_defaults_but_not_values() {
    let sb = Sandbox::new();
    sb.write("a.yaml", TINY);
    // Same runs: keys reordered, flow style changed, a default written out (momentum is
    // dropped for Adam, eval.every: 1 is the default), alpha written as an int.
    let reordered = r#"grid:
  - method: [erm]
  - { alpha: [1], method: [input_mixup] }
  - { layers: [[4], [4, 0]], method: [manifold_mixup], alpha: [2] }
seeds: [0, 1]
name: tiny
base:
  eval: { every: 1 }
  train:
    batch_size: 32
    epochs: 3
    lr: 0.01
    momentum: 0.5
    weight_decay: 0
    optimizer: adam
  model: { depth: 3, width: 8, name: spiral_mlp }
  data: { noise: 0.02, n_test: 64, n_train: 64, name: spirals }
"#;
    sb.write("b.yaml", reordered);
    let a = plan_ids(&sb, "a.yaml");
    let mut b = plan_ids(&sb, "b.yaml");
    let mut a_sorted = a.clone();
    a_sorted.sort();
    b.sort();
    assert_eq!(a_sorted, b);
    // Any value that changes results changes the id.
    for o in [
        "train.lr=0.02",
        "data.noise=0.03",
        "model.width=9",
        "train.epochs=4",
    ] {
        let changed = sb.run(&["plan", "a.yaml", "--json", "-o", o]);
        let ids: Vec<String> = String::from_utf8_lossy(&changed.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert!(
            ids.iter().all(|id| !a.contains(id)),
            "{o} left an id unchanged"
        );
    }
}

/// Each bad input: exit code 2, a message with the file, line, key, value and what is allowed,
/// and nothing written to the store.
/// 1,000 distinct values (`base`, `base`·2, …) for a grid axis.
fn thousand(base: &str) -> String {
    let b: f64 = base.parse().unwrap();
    (1..=1000)
        .map(|i| format!("{}", b * i as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn bad_input_is_reported_precisely_and_writes_nothing() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "yaml syntax",
            TINY.replace("seeds: [0, 1]", "seeds: [0, 1"),
            vec!["e.yaml:", "YAML"],
        ),
        (
            "unknown key",
            TINY.replace("epochs: 3", "epoch: 3"),
            vec![
                "e.yaml:5:",
                "train.epoch",
                "unknown field `epoch`",
                "epochs",
            ],
        ),
        (
            "wrong type",
            TINY.replace("epochs: 3", "epochs: three"),
            vec!["e.yaml:5:", "train.epochs", "three"],
        ),
        (
            "missing alpha",
            TINY.replace("alpha: [2.0], ", ""),
            vec!["e.yaml:10:", "`alpha`", "needs α"],
        ),
        (
            "alpha <= 0",
            TINY.replace("alpha: [2.0]", "alpha: [-1.0]"),
            vec!["e.yaml:10:", "`alpha` = -1", "> 0"],
        ),
        (
            "missing layer",
            TINY.replace("[[4], [0, 4]]", "[[4], [0, 9]]"),
            vec!["e.yaml:10:", "layers[1]", "= 9", "no mix point 9", "0..=7"],
        ),
        (
            "flat layer set",
            TINY.replace("[[4], [0, 4]]", "[4]"),
            vec!["e.yaml:10:", "layers[0]", "layers: [[4]]"],
        ),
        (
            "unknown method",
            TINY.replace("[erm]", "[ermm]"),
            vec!["e.yaml:8:", "method", "ermm", "manifold_mixup"],
        ),
        (
            "unknown model",
            TINY.replace("spiral_mlp", "resnet9"),
            vec!["e.yaml:4:", "model", "resnet9", "spiral_mlp"],
        ),
        (
            "zero epochs",
            TINY.replace("epochs: 3", "epochs: 0"),
            vec!["e.yaml:5:", "train.epochs", "= 0", "≥ 1"],
        ),
        (
            "bad milestone",
            TINY.replace("epochs: 3", "epochs: 3, milestones: [5]"),
            vec!["e.yaml:5:", "train.milestones[0]", "= 5"],
        ),
        (
            "val split too big",
            TINY.replace("noise: 0.02", "noise: 0.02, val_split: 64"),
            vec!["e.yaml:3:", "data.val_split", "= 64", "0..64"],
        ),
        (
            "cosine with milestones",
            TINY.replace("epochs: 3", "epochs: 3, schedule: cosine, milestones: [2]"),
            vec!["e.yaml:5:", "train.milestones", "multistep"],
        ),
        (
            "cutout on points",
            TINY.replace("[erm]", "[cutout]"),
            vec!["e.yaml:8:", "`method` = cutout", "not images"],
        ),
        (
            "conv net on points",
            TINY.replace(
                "name: spiral_mlp, width: 8, depth: 3",
                "name: preact_resnet, depth: 18",
            ),
            vec!["e.yaml:4:", "model.name", "needs image data"],
        ),
        (
            "resnet depth",
            TINY.replace(
                "name: spiral_mlp, width: 8, depth: 3",
                "name: preact_resnet, depth: 20",
            )
            .replace(
                "name: spirals, n_train: 64, n_test: 64, noise: 0.02",
                "name: cifar10",
            ),
            vec!["e.yaml:4:", "model.depth", "= 20", "18, 34, 50, 101, 152"],
        ),
        (
            "bad augment",
            TINY.replace(
                "name: spiral_mlp, width: 8, depth: 3",
                "name: preact_resnet, depth: 18",
            )
            .replace(
                "name: spirals, n_train: 64, n_test: 64, noise: 0.02",
                "name: cifar10, augment: [crop, flip]",
            ),
            vec!["e.yaml:3:", "data.augment[0]", "crop", "cropN"],
        ),
        (
            "bad device",
            format!("device: tpu:1\n{TINY}"),
            vec![
                "e.yaml:1:",
                "`device` = tpu:1",
                "cpu, cuda:N, vulkan:N or wgpu:N",
            ],
        ),
        (
            "negative seed",
            TINY.replace("seeds: [0, 1]", "seeds: [0, -1]"),
            vec!["e.yaml:6:", "seeds[1]", "-1"],
        ),
        (
            "unknown top key",
            format!("{TINY}grids: []\n"),
            vec!["e.yaml:11:", "grids", "unknown top-level key"],
        ),
        (
            "no name",
            TINY.replace("name: tiny", "name: \"a b\""),
            vec!["e.yaml:1:", "`name`", "directory name"],
        ),
        (
            "empty grid",
            format!("{}grid: []\n", &TINY[..TINY.find("grid:").unwrap()]),
            vec!["e.yaml:7:", "`grid` = []", "plans no runs"],
        ),
        (
            "exclude with an unknown key",
            format!("{TINY}exclude: [{{ methd: erm }}]\n"),
            vec!["e.yaml:11:", "exclude[0].methd", "no run has this key"],
        ),
        (
            "zip with an unknown key",
            format!("{TINY}zip: [[alpah, lr]]\n"),
            vec!["zip[0][0]", "alpah", "no grid block sets this key"],
        ),
        (
            "a billion-point grid",
            format!(
                "{}grid:\n  - {{ method: [erm], train.lr: [{}], train.weight_decay: [{}], train.epochs: [{}] }}\n",
                &TINY[..TINY.find("grid:").unwrap()],
                thousand("0.001"),
                thousand("0.0001"),
                thousand("1")
            ),
            vec![
                "2000000000 runs",
                "2 seeds × 1000000000 grid points",
                "train.lr 1000 × train.weight_decay 1000 × train.epochs 1000",
                "max_runs = 100000",
            ],
        ),
        (
            "batch larger than the training set",
            TINY.replace("batch_size: 32", "batch_size: 100"),
            vec![
                "e.yaml:5:",
                "train.batch_size",
                "= 100",
                "64 training examples",
            ],
        ),
    ];
    for (what, yaml, needles) in cases {
        let sb = Sandbox::new();
        sb.write("e.yaml", &yaml);
        for cmd in ["plan", "sweep"] {
            let out = sb.run(&[cmd, "e.yaml"]);
            let msg = text(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{what}: exit code, output:\n{msg}"
            );
            for n in &needles {
                assert!(msg.contains(n), "{what}: `{n}` missing from:\n{msg}");
            }
            assert!(!sb.store().exists(), "{what}: {cmd} wrote to the store");
        }
    }
}

#[test]
fn bad_overrides_name_the_argument() {
    let sb = Sandbox::new();
    sb.write("e.yaml", TINY);
    let out = sb.run(&["plan", "e.yaml", "-o", "train.lr=-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("-o train.lr=-1"), "{}", text(&out));
    let out = sb.run(&["plan", "e.yaml", "-o", "model.widht=3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("`-o model.widht=3`") && text(&out).contains("unknown field `widht`"),
        "{}",
        text(&out)
    );
    let out = sb.run(&["plan", "e.yaml", "-o", "train.lr"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no `=`"), "{}", text(&out));
    let out = sb.run(&["plan", "missing.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("missing.yaml: cannot read"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_sweep_runs_everything_once_then_reports_and_a_second_sweep_runs_nothing() {
    let sb = Sandbox::new();
    sb.write("e.yaml", TINY);
    let out = sb.run(&["sweep", "e.yaml", "--threads", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let dirs = sb.run_dirs("tiny");
    assert_eq!(dirs.len(), 8);
    for d in &dirs {
        let r = result(d);
        let err = r["final_metrics"]["test_error"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&err));
        assert_eq!(status(d)["attempts"], 1);
        assert_eq!(status(d)["state"], "done");
        let lines = fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines, 3, "one metrics line per evaluated epoch");
        assert!(d.join("spec.yaml").exists() && d.join("attempt-1.log").exists());
        assert!(!d.join("claim").exists(), "claim left behind");
    }
    assert_eq!(
        fs::read_to_string(sb.store().join("tiny/plan.jsonl"))
            .unwrap()
            .lines()
            .count(),
        8
    );
    // The sweep recorded its runs' median training rate for plan's estimates of any
    // experiment: one record, the CPU at 1 thread, the spiral MLP.
    let rates: serde_json::Value =
        serde_json::from_slice(&fs::read(sb.store().join("throughput.json")).unwrap()).unwrap();
    let rates = rates.as_array().unwrap();
    assert_eq!(rates.len(), 1, "{rates:?}");
    assert_eq!(
        (
            &rates[0]["device"],
            &rates[0]["threads"],
            &rates[0]["model"]
        ),
        (&"cpu".into(), &1.into(), &"spiral_mlp".into())
    );
    assert!(rates[0]["flops_per_sec"].as_f64().unwrap() > 0.0);

    let again = sb.run(&["sweep", "e.yaml"]);
    assert!(again.status.success());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("all 8 runs already done; nothing to run"),
        "{stdout}"
    );

    let rep = sb.run(&["report", "e.yaml", "--reports", "reports"]);
    assert!(rep.status.success(), "{}", text(&rep));
    let md = fs::read_to_string(sb.path().join("reports/tiny.md")).unwrap();
    assert!(
        md.contains("| method | α | S | test error % ↓ | test NLL ↓ | n |"),
        "{md}"
    );
    assert!(md.contains("| erm | — | — |"), "{md}");
    assert!(md.contains("| manifold_mixup | 2.0 | [0, 4] |"), "{md}");
    assert!(md.contains(" | 2/2 |"), "{md}");
    // Stable output: a second report is byte for byte the same.
    sb.run(&["report", "e.yaml", "--reports", "reports"]);
    assert_eq!(
        md,
        fs::read_to_string(sb.path().join("reports/tiny.md")).unwrap()
    );
}

#[test]
fn runs_are_deterministic_on_the_cpu() {
    let sb = Sandbox::new();
    sb.write("e.yaml", &TINY.replace("seeds: [0, 1]", "seeds: [5]"));
    let other = Sandbox::new();
    other.write("e.yaml", &TINY.replace("seeds: [0, 1]", "seeds: [5]"));
    for s in [&sb, &other] {
        let out = s.run(&["sweep", "e.yaml", "--threads", "1", "-o", "train.epochs=4"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let (a, b) = (sb.run_dirs("tiny"), other.run_dirs("tiny"));
    assert_eq!(a.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.file_name(), y.file_name());
        assert_eq!(metrics(x), metrics(y), "{}", x.display());
    }
}

#[test]
fn a_killed_sweep_resumes_and_every_run_is_done_exactly_once() {
    let sb = Sandbox::new();
    // Longer runs, so the kill lands in the middle of one.
    sb.write(
        "e.yaml",
        &TINY
            .replace("epochs: 3", "epochs: 60")
            .replace("n_train: 64", "n_train: 512"),
    );
    let mut child = sb
        .cmd(&["sweep", "e.yaml", "--threads", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until two runs are done and a third is in the middle of training (its status says
    // running and it has evaluated an epoch), then kill the scheduler.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let dirs = if sb.store().join("tiny").exists() {
            sb.run_dirs("tiny")
        } else {
            Vec::new()
        };
        let done = dirs
            .iter()
            .filter(|d| d.join("result.json").exists())
            .count();
        let mid_run = dirs.iter().any(|d| {
            !d.join("result.json").exists()
                && d.join("metrics.jsonl").exists()
                && fs::read_to_string(d.join("status.json"))
                    .is_ok_and(|s| s.contains("\"running\""))
        });
        if done >= 2 && mid_run {
            break;
        }
        assert!(Instant::now() < deadline, "runs did not progress in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until_nothing_runs(&sb, "e.yaml");
    let dirs = sb.run_dirs("tiny");
    let done_before: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| d.join("result.json").exists())
        .cloned()
        .collect();
    assert!(
        done_before.len() < 8,
        "the kill came too late to test anything"
    );
    let results_before: Vec<String> = done_before
        .iter()
        .map(|d| fs::read_to_string(d.join("result.json")).unwrap())
        .collect();
    let st = sb.run(&["status", "e.yaml"]);
    assert!(
        text(&st).contains("interrupted") || text(&st).contains("pending"),
        "{}",
        text(&st)
    );

    let out = sb.run(&["sweep", "e.yaml", "--threads", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    for d in &sb.run_dirs("tiny") {
        assert!(d.join("result.json").exists(), "{} not done", d.display());
    }
    // Runs finished before the kill were not run again.
    for (d, before) in done_before.iter().zip(&results_before) {
        assert_eq!(status(d)["attempts"], 1, "{} ran twice", d.display());
        assert_eq!(&fs::read_to_string(d.join("result.json")).unwrap(), before);
    }
    // The run that was killed is recorded as a second attempt.
    let retried = sb
        .run_dirs("tiny")
        .iter()
        .filter(|d| status(d)["attempts"] == 2)
        .count();
    assert_eq!(retried, 1, "exactly the interrupted run is re-run");
}

#[test]
fn a_failed_run_does_not_stop_the_sweep() {
    let sb = Sandbox::new();
    let yaml = r#"name: div
base:
  data: { name: spirals, n_train: 64, n_test: 64 }
  model: { name: spiral_mlp, width: 8, depth: 2 }
  train: { optimizer: sgd, epochs: 3, batch_size: 32 }
grid:
  - { method: [erm], train.lr: [1.0e30, 0.01] }
"#;
    sb.write("e.yaml", yaml);
    let out = sb.run(&["sweep", "e.yaml", "--threads", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("FAILED (diverged)"), "{msg}");
    assert!(msg.contains("attempt-1.log"), "{msg}");
    let dirs = sb.run_dirs("div");
    assert_eq!(
        dirs.iter()
            .filter(|d| d.join("result.json").exists())
            .count(),
        1
    );
    let failed: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| status(d)["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(status(failed[0])["failure"]["class"], "diverged");
    // A failed run is not retried by a plain sweep, and the report lists it.
    let again = sb.run(&["sweep", "e.yaml"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("1 failed"), "{}", text(&again));
    let rep = sb.run(&["report", "e.yaml", "--reports", "reports"]);
    assert!(rep.status.success());
    let md = fs::read_to_string(sb.path().join("reports/div.md")).unwrap();
    assert!(
        md.contains("Failed runs") && md.contains("diverged"),
        "{md}"
    );
    assert!(md.contains("0/1 (1 failed)"), "{md}");
}

#[test]
fn a_validation_split_gives_validation_metrics_and_honest_selection() {
    let sb = Sandbox::new();
    sb.write("e.yaml", &TINY.replace("seeds: [0, 1]", "seeds: [0]"));
    let out = sb.run(&[
        "sweep",
        "e.yaml",
        "--threads",
        "1",
        "-o",
        "data.val_split=16",
        "-o",
        "method=erm",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let dirs = sb.run_dirs("tiny");
    assert_eq!(dirs.len(), 1);
    let r = result(&dirs[0]);
    let best = &r["best_on_validation"];
    assert!(best["val_error"].as_f64().is_some(), "{r}");
    // The selected epoch is one with the lowest validation error.
    let lines: Vec<serde_json::Value> = fs::read_to_string(dirs[0].join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let min = lines
        .iter()
        .map(|m| m["val_error"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best["val_error"].as_f64().unwrap(), min);
}

#[test]
fn a_gpu_this_binary_was_built_without_is_refused_before_any_run() {
    let sb = Sandbox::new();
    sb.write("e.yaml", &format!("device: cuda:0\n{TINY}"));
    let out = sb.run(&["sweep", "e.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("built without the `cuda` feature")
            && text(&out).contains("--features cuda"),
        "{}",
        text(&out)
    );
    assert!(!sb.store().exists());
    // --device overrides the file's device.
    let out = sb.run(&[
        "sweep",
        "e.yaml",
        "--device",
        "cpu",
        "-o",
        "seeds=[0]",
        "-o",
        "method=erm",
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn missing_data_stops_the_sweep_before_anything_is_written() {
    let sb = Sandbox::new();
    sb.write(
        "e.yaml",
        &TINY
            .replace(
                "name: spiral_mlp, width: 8, depth: 3",
                "name: preact_resnet, depth: 18, width: 4",
            )
            .replace(
                "name: spirals, n_train: 64, n_test: 64, noise: 0.02",
                "name: cifar10, dir: nowhere/cifar",
            ),
    );
    // `plan` says so, without failing and without writing anything.
    let out = sb.run(&["plan", "e.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data `cifar10` is not usable here")
            && err.contains("nowhere/cifar/data_batch_1.bin: not found"),
        "{err}"
    );
    assert!(!sb.store().exists());
    let out = sb.run(&["sweep", "e.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("nowhere/cifar/data_batch_1.bin: not found")
            && text(&out).contains("cifar-10-binary.tar.gz"),
        "{}",
        text(&out)
    );
    assert!(!sb.store().exists());
}

#[test]
fn every_shipped_experiment_file_plans() {
    let mut files = Vec::new();
    for dir in ["experiments", "experiments/paper"] {
        for e in fs::read_dir(dir).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "yaml") {
                files.push(e.path());
            }
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    for f in files {
        let out = std::process::Command::new(BIN)
            .args(["--store", "/nonexistent-store", "plan"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", f.display(), text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("pending")
                || String::from_utf8_lossy(&out.stdout).contains("done")
        );
    }
}

#[test]
fn a_store_path_that_is_a_file_is_bad_input() {
    let sb = Sandbox::new();
    sb.write("e.yaml", TINY);
    fs::write(sb.store(), "not a directory").unwrap();
    for cmd in ["plan", "sweep", "status"] {
        let out = sb.run(&[cmd, "e.yaml"]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", text(&out));
        assert!(
            text(&out).contains("is a file, not a directory")
                && text(&out).contains("--store takes a directory"),
            "{}",
            text(&out)
        );
    }
    assert_eq!(fs::read_to_string(sb.store()).unwrap(), "not a directory");
}

#[test]
fn a_huge_grid_is_refused_at_once_and_max_runs_raises_the_limit() {
    let sb = Sandbox::new();
    let head = &TINY[..TINY.find("grid:").unwrap()];
    sb.write(
        "e.yaml",
        &format!(
            "{head}grid:\n  - {{ method: [erm], train.lr: [{}], train.weight_decay: [{}], train.epochs: [{}] }}\n",
            thousand("0.001"),
            thousand("0.0001"),
            thousand("1")
        ),
    );
    let t = std::time::Instant::now();
    let out = sb.run(&["plan", "e.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Counted, not expanded: before, this grew until the kernel killed it (~50 s, 24 GiB).
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    // A grid over the default limit plans when the file (or -o) raises it.
    sb.write(
        "mid.yaml",
        &format!(
            "{head}grid:\n  - {{ method: [erm], train.lr: [{}], train.epochs: [1, 2, 3] }}\n",
            thousand("0.001")
        ),
    );
    let out = sb.run(&["plan", "mid.yaml", "-o", "max_runs=6000"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("6000 runs: 6000 pending"),
        "{}",
        text(&out)
    );
    let out = sb.run(&["plan", "mid.yaml", "-o", "max_runs=5999"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn run_names_tell_the_runs_of_an_experiment_apart() {
    // experiments/spirals.yaml has five ERM runs per seed that differ in weight decay, input
    // noise, dropout or batch norm: before, all five were `erm-s0-<id>`.
    let out = std::process::Command::new(BIN)
        .args([
            "--store",
            "/nonexistent-store",
            "plan",
            "experiments/spirals.yaml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let slugs: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|s| s.ends_with("-s0"))
        .collect();
    assert_eq!(slugs.len(), 8, "{stdout}");
    let mut distinct = slugs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), slugs.len(), "{slugs:?}");
    for want in [
        "erm-wd1e-4-s0",
        "erm-wd0-s0",
        "erm-bn-wd0-s0",
        "manifold_mixup-a2-L4-wd0-s0",
    ] {
        assert!(slugs.contains(&want), "{want} not in {slugs:?}");
    }
}

#[test]
fn a_claimed_run_loses_the_temporaries_a_kill_left_behind() {
    let sb = Sandbox::new();
    sb.write("e.yaml", &TINY.replace("seeds: [0, 1]", "seeds: [0]"));
    let out = sb.run(&["sweep", "e.yaml", "--simulate", "0"]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = sb.run_dirs("tiny").remove(0);
    // What a kill between a write and its rename leaves behind.
    let stale = [
        dir.join(".status.json.tmp.999999"),
        dir.join(".metrics.jsonl.tmp.4242"),
    ];
    for f in &stale {
        fs::write(f, "{").unwrap();
    }
    let out = std::process::Command::new(BIN)
        .arg("--store")
        .arg(sb.store())
        .args(["exec", "--simulate", "0"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for f in &stale {
        assert!(!f.exists(), "{} is still there", f.display());
    }
}
