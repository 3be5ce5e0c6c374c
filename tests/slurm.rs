//! `mixsweep slurm` against a real Slurm: Debian's slurmctld, slurmd and munge on this host
//! (`make test-slurm` starts them with scripts/ci-slurm.sh, runs this file, and stops them).
//! A small CPU sweep runs as a job array to completion, with one task cancelled mid-run and
//! submitted again: it resumes from its checkpoint and ends with the numbers of an
//! uninterrupted run of the same spec.
//!
//! Ignored by `cargo test` (it needs the daemons); `make test-slurm` runs it with `--ignored`.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::*;

const EXPERIMENT: &str = r#"name: sl
base:
  data: { name: spirals, n_train: 256, n_test: 64 }
  model: { name: spiral_mlp, width: 8 }
  train: { optimizer: adam, lr: 1.0e-2, weight_decay: 0.0, epochs: 20, batch_size: 32 }
  eval: { every: 50 }
seeds: [0]
grid:
  - { method: [erm], train.epochs: [3000, 20] }
  - { method: [manifold_mixup], alpha: [2.0], layers: [[4]] }
"#;

fn queue_is_empty(job: &str) -> bool {
    let out = Command::new("squeue")
        .args(["-h", "-j", job])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

fn wait(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn submit(sb: &Sandbox) -> String {
    let out = sb.run(&[
        "slurm",
        "sl.yaml",
        "--max-parallel",
        "2",
        "--checkpoint-every",
        "100",
        "--time",
        "5",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    t.split("submitted job array ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("no job id in: {t}"))
        .to_string()
}

#[test]
#[ignore = "needs a running Slurm: make test-slurm"]
fn a_job_array_runs_the_sweep_and_a_cancelled_task_resumes_from_its_checkpoint() {
    let sb = Sandbox::new();
    sb.write("sl.yaml", EXPERIMENT);
    let job = submit(&sb);
    let script = std::fs::read_to_string(sb.store().join("sl/slurm/array.sbatch")).unwrap();
    assert!(
        script.contains("#SBATCH --array=0-2%2")
            && script.contains("#SBATCH --requeue")
            && script.contains("--signal=B:TERM@"),
        "{script}"
    );
    // The longest run is task 0 (longest first).
    let long = sb
        .run_dirs("sl")
        .into_iter()
        .find(|d| {
            std::fs::read_to_string(d.join("spec.yaml"))
                .unwrap()
                .contains("epochs: 3000")
        })
        .unwrap();
    assert!(
        script
            .lines()
            .find(|l| l.trim().starts_with('\''))
            .unwrap()
            .contains(long.file_name().unwrap().to_str().unwrap())
    );
    // Cancel it once it has trained a few hundred epochs.
    wait(
        "the long run to pass epoch 300",
        Duration::from_secs(60),
        || {
            status(&long)["progress"]["epoch"]
                .as_u64()
                .is_some_and(|e| e >= 300)
        },
    );
    assert_eq!(status(&long)["slot"], format!("slurm:{job}_0"));
    assert!(
        Command::new("scancel")
            .arg(format!("{job}_0"))
            .status()
            .unwrap()
            .success()
    );
    wait("the array to end", Duration::from_secs(60), || {
        queue_is_empty(&job)
    });
    let out = sb.run(&["status", "sl.yaml"]);
    assert!(
        text(&out).contains("2 done, 1 interrupted"),
        "{}",
        text(&out)
    );
    assert_eq!(status(&long)["state"], "interrupted");

    // Submitted again, only the interrupted run goes; it resumes from its checkpoint.
    let again = submit(&sb);
    let script = std::fs::read_to_string(sb.store().join("sl/slurm/array.sbatch")).unwrap();
    assert!(
        script.contains("#SBATCH --array=0-0%2")
            && script.contains(long.file_name().unwrap().to_str().unwrap()),
        "{script}"
    );
    wait("the second array to end", Duration::from_secs(60), || {
        queue_is_empty(&again)
    });
    let out = sb.run(&["status", "sl.yaml"]);
    assert!(text(&out).contains("3 runs: 3 done"), "{}", text(&out));
    let resumed = result(&long);
    assert!(
        resumed["provenance"]["resumed_from_epoch"]
            .as_u64()
            .unwrap()
            >= 300,
        "{resumed}"
    );
    assert_eq!(status(&long)["attempts"], 2);

    // The same spec trained in one go, here, gives the same numbers.
    let local = Sandbox::new();
    local.write(
        "sl.yaml",
        &EXPERIMENT
            .replace("train.epochs: [3000, 20]", "train.epochs: [3000]")
            .replace(
                "  - { method: [manifold_mixup], alpha: [2.0], layers: [[4]] }\n",
                "",
            ),
    );
    let out = local.run(&["sweep", "sl.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let fresh = result(&local.run_dirs("sl")[0]);
    assert_eq!(
        fresh["final_metrics"]["test_error"],
        resumed["final_metrics"]["test_error"]
    );
    assert_eq!(
        fresh["final_metrics"]["test_nll"],
        resumed["final_metrics"]["test_nll"]
    );

    // Nothing left: no script is submitted; the report reads the same store.
    assert!(text(&sb.run(&["slurm", "sl.yaml"])).contains("nothing left to run"));
    let out = sb.run(&[
        "report",
        "sl.yaml",
        "--reports",
        sb.path().join("reports").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}
