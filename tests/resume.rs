//! A run stopped mid-way — killed outright, or stopped cleanly by SIGTERM — resumes from its
//! checkpoint and ends with exactly the numbers of a run that was never interrupted (CPU,
//! same thread count): same metrics at every evaluated epoch, same final result.

use std::path::PathBuf;

mod common;
use common::*;

const ONE_RUN: &str = r#"name: one
base:
  data: { name: spirals, n_train: 2048, n_test: 256 }
  model: { name: spiral_mlp, width: 64, depth: 3 }
  train: { optimizer: adam, lr: 1.0e-3, epochs: 100, batch_size: 32, milestones: [60], loss: soft_ce }
seeds: [3]
grid:
  - { method: [manifold_mixup], alpha: [2.0], layers: [[0, 2, 4]] }
"#;

fn only_run(sb: &Sandbox) -> PathBuf {
    let dirs = sb.run_dirs("one");
    assert_eq!(dirs.len(), 1);
    dirs[0].clone()
}

/// The reference: one uninterrupted run.
fn uninterrupted() -> (Vec<serde_json::Value>, serde_json::Value) {
    let sb = Sandbox::new();
    sb.write("e.yaml", ONE_RUN);
    let out = sb.run(&["sweep", "e.yaml", "--threads", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = only_run(&sb);
    assert_eq!(result(&dir)["provenance"]["resumed_from_epoch"], 0);
    let m = final_metrics(&dir);
    assert!(
        m["test_error"].as_f64().unwrap() < 0.2,
        "the reference run should learn: {m}"
    );
    (metrics(&dir), m)
}

#[test]
fn a_killed_run_resumes_from_its_checkpoint_bit_for_bit() {
    let (want_metrics, want_final) = uninterrupted();
    let sb = Sandbox::new();
    sb.write("e.yaml", ONE_RUN);
    let mut child = start_and_wait(&sb, "one", &["--threads", "1"], 12);
    child.kill().unwrap(); // SIGKILL: no chance to checkpoint; the child dies with it
    child.wait().unwrap();
    wait_until_nothing_runs(&sb, "e.yaml");
    let dir = only_run(&sb);
    assert!(!dir.join("result.json").exists(), "the kill came too late");
    assert!(dir.join("checkpoint/state.json").exists());

    let out = sb.run(&["sweep", "e.yaml", "--threads", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(status(&dir)["attempts"], 2);
    let resumed = result(&dir)["provenance"]["resumed_from_epoch"]
        .as_u64()
        .unwrap();
    // metrics.jsonl is written just before the epoch's checkpoint, so the last one may be epoch 11.
    assert!(
        resumed >= 11,
        "resumed from epoch {resumed}, not from the checkpoint"
    );
    assert_eq!(final_metrics(&dir), want_final);
    assert_eq!(metrics(&dir), want_metrics);
}

#[test]
fn sigterm_checkpoints_mid_epoch_and_the_next_sweep_finishes_bit_for_bit() {
    let (want_metrics, want_final) = uninterrupted();
    let sb = Sandbox::new();
    sb.write("e.yaml", ONE_RUN);
    let child = start_and_wait(&sb, "one", &["--threads", "1"], 5);
    // SIGTERM to the scheduler, which forwards it to the run; the run stops at the next
    // minibatch boundary after writing a checkpoint.
    kill(child.id(), 15);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("stopped"), "{stdout}");
    let dir = only_run(&sb);
    assert_eq!(status(&dir)["state"], "interrupted");
    let st = sb.run(&["status", "e.yaml"]);
    assert!(text(&st).contains("interrupted"), "{}", text(&st));

    let again = sb.run(&["sweep", "e.yaml", "--threads", "1"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(final_metrics(&dir), want_final);
    assert_eq!(metrics(&dir), want_metrics);
}
