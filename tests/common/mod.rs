//! What the integration tests share: a sandbox directory with its own store, the binary,
//! and readers for the files a run leaves.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mixsweep");

pub const TINY: &str = r#"name: tiny
base:
  data: { name: spirals, n_train: 64, n_test: 64, noise: 0.02 }
  model: { name: spiral_mlp, width: 8, depth: 3 }
  train: { optimizer: adam, lr: 1.0e-2, weight_decay: 0.0, epochs: 3, batch_size: 32 }
seeds: [0, 1]
grid:
  - { method: [erm] }
  - { method: [input_mixup], alpha: [1.0] }
  - { method: [manifold_mixup], alpha: [2.0], layers: [[4], [0, 4]] }
"#;

pub struct Sandbox {
    dir: mixsweep::testing::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: mixsweep::testing::TempDir::new().unwrap(),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        fs::write(&p, text).unwrap();
        p
    }
    pub fn store(&self) -> PathBuf {
        self.path().join("runs")
    }
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.path())
            .arg("--store")
            .arg(self.store())
            .args(args);
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    pub fn run_dirs(&self, exp: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = fs::read_dir(self.store().join(exp))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        dirs
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn result(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(dir.join("result.json")).unwrap()).unwrap()
}

pub fn status(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(dir.join("status.json")).unwrap()).unwrap()
}

/// After killing a sweep, its run process dies a moment later (the kernel sends it SIGKILL
/// when its parent dies); wait until `status` shows no run as running.
pub fn wait_until_nothing_runs(sb: &Sandbox, experiment_file: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = sb.run(&["status", experiment_file]);
        if !text(&out).contains("running") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a run process outlived its sweep:\n{}",
            text(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// metrics.jsonl without the wall-clock field.
pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("elapsed");
            v
        })
        .collect()
}

/// result.json's final metrics without the wall-clock field.
pub fn final_metrics(dir: &Path) -> serde_json::Value {
    let mut m = result(dir)["final_metrics"].clone();
    m.as_object_mut().unwrap().remove("elapsed");
    m
}

/// Starts `sweep e.yaml` with `args` and checkpoints every epoch, and waits until the first
/// run of experiment `name` has evaluated `epochs`. The caller waits for the returned child.
#[allow(clippy::zombie_processes)]
pub fn start_and_wait(sb: &Sandbox, name: &str, args: &[&str], epochs: usize) -> Child {
    let child = sb
        .cmd(&["sweep", "e.yaml", "--checkpoint-every", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if first_run_has_lines(sb, name, "metrics.jsonl", epochs, Duration::from_secs(300)) {
        return child;
    }
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    panic!("the run did not reach epoch {epochs} in time");
}

/// Waits up to `within` until `file` in the first run directory of experiment `name` has
/// `lines` lines; whether it did.
pub fn first_run_has_lines(
    sb: &Sandbox,
    name: &str,
    file: &str,
    lines: usize,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let found = sb
            .store()
            .join(name)
            .exists()
            .then(|| sb.run_dirs(name))
            .and_then(|d| d.first().cloned())
            .and_then(|d| fs::read_to_string(d.join(file)).ok())
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if found >= lines {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to `pid` (with kill(1), so the tests need no libc).
pub fn kill(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
