//! The scheduler's own cost, for `make bench`: seconds per run of a sweep of runs that do
//! nothing (`--simulate 0`: each child starts, claims its run, writes its status and result,
//! and exits), one slot per core and one slot in all; and the time to expand, validate and
//! hash a grid of 100,000 points.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::store::Store;

/// An experiment of `n` one-epoch runs (n seeds of one point).
fn experiment(n: usize) -> String {
    let seeds: Vec<String> = (0..n).map(|s| s.to_string()).collect();
    format!(
        "name: nothing\nbase:\n  data: {{ name: spirals, n_train: 8, n_test: 8 }}\n  model: {{ name: spiral_mlp, width: 2, depth: 1 }}\n  train: {{ epochs: 1, batch_size: 8 }}\nseeds: [{}]\ngrid:\n  - {{ method: [erm] }}\n",
        seeds.join(", ")
    )
}

/// Seconds per run of a sweep of `n` runs that do nothing, on `devices` (`cpu:2`).
pub fn seconds_per_run(dir: &Path, n: usize, devices: &str) -> std::io::Result<f64> {
    let file = dir.join(format!("nothing-{devices}.yaml").replace(':', "-"));
    std::fs::write(&file, experiment(n))?;
    let store = dir.join(format!("runs-{devices}").replace(':', "-"));
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let out = Command::new(exe)
        .arg("--store")
        .arg(&store)
        .arg("sweep")
        .arg(&file)
        .arg("--devices")
        .arg(devices)
        .arg("--simulate")
        .arg("0")
        .output()?;
    let seconds = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "the benchmark sweep failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(seconds / n as f64)
}

/// Runs of 0.1 s per epoch under `--simulate 0.1`: 16 runs from 0.5 to 3 s, 25 s in all (the
/// makespan measured here, and the scheduler's tests in tests/schedule.rs).
pub const TIMED_EXPERIMENT: &str = r#"name: timed
base:
  data: { name: spirals, n_train: 64, n_test: 64 }
  model: { name: spiral_mlp, width: 8 }
  train: { optimizer: adam, lr: 1.0e-2, weight_decay: 0.0, epochs: 10, batch_size: 32 }
seeds: [0, 1]
grid:
  - { method: [erm], train.epochs: [30, 25, 20, 15, 12, 10, 6, 5] }
"#;

/// Sixteen simulated runs of 0.1 s per epoch, 0.5 to 3 s each (25 s in all), on two pretend
/// GPUs with two slots each: the makespan against its lower bound max(longest run, total /
/// slots), both from the start and end times in schedule.jsonl (child start-up included).
pub fn makespan_ratio(dir: &Path) -> std::io::Result<(f64, f64)> {
    let file = dir.join("timed.yaml");
    std::fs::write(&file, TIMED_EXPERIMENT)?;
    let store = dir.join("runs-timed");
    let out = Command::new(std::env::current_exe()?)
        .arg("--store")
        .arg(&store)
        .args([
            "sweep",
            "--devices",
            "fake:2",
            "--slots-per-device",
            "2",
            "--simulate",
            "0.1",
        ])
        .arg(&file)
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let log = std::fs::read_to_string(store.join("timed").join("schedule.jsonl"))?;
    let mut starts = std::collections::HashMap::new();
    let mut spans = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
        let (run, t) = (v["run"].to_string(), v["t"].as_f64().unwrap_or(0.0));
        match v["event"].as_str() {
            Some("start") => {
                starts.insert(run, t);
            }
            _ => {
                if let Some(t0) = starts.remove(&run) {
                    spans.push((t0, t));
                }
            }
        }
    }
    let total: f64 = spans.iter().map(|s| s.1 - s.0).sum();
    let longest = spans.iter().map(|s| s.1 - s.0).fold(0.0, f64::max);
    let bound = longest.max(total / 4.0);
    let makespan = spans.iter().map(|s| s.1).fold(0.0, f64::max)
        - spans.iter().map(|s| s.0).fold(f64::MAX, f64::min);
    Ok((makespan, bound))
}

/// Why the planning measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Seconds to expand and validate a grid of `points` runs, and to hash them into run ids;
/// and how many runs the grid had.
pub fn plan_seconds(points: usize) -> Result<(f64, f64, usize), PlanError> {
    let seeds = 100.min(points);
    let lrs: Vec<String> = (0..points / seeds)
        .map(|i| format!("{:e}", 1e-4 * (1.0 + i as f64)))
        .collect();
    let text = format!(
        "name: big\nmax_runs: {points}\nbase:\n  data: {{ name: spirals }}\n  model: {{ name: spiral_mlp }}\nseeds: [{}]\ngrid:\n  - {{ method: [manifold_mixup], alpha: [2.0], layers: [[4]], train.lr: [{}] }}\n",
        (0..seeds)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        lrs.join(", ")
    );
    let t = Instant::now();
    let exp = crate::spec::parse(&text, Path::new("big.yaml"), &[])?;
    let expand = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let planned = Store::new("unused").planned(&exp)?;
    let hash = t.elapsed().as_secs_f64();
    Ok((expand, hash, planned.len()))
}

/// The markdown section.
pub fn section(dir: &Path, runs: usize, points: usize) -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut out = String::new();
    let _ = writeln!(out, "## The scheduler's own cost\n");
    let _ = writeln!(out, "| what | per run |");
    let _ = writeln!(out, "|---|---|");
    for devices in ["cpu:1".to_string(), format!("cpu:{cores}")] {
        match seconds_per_run(dir, runs, &devices) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "| a sweep of {runs} runs that do nothing, `--devices {devices}` | {:.1} ms |",
                    1000.0 * s
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| a sweep of {runs} runs that do nothing, `--devices {devices}` | failed: {e} |"
                );
            }
        }
    }
    match plan_seconds(points) {
        Ok((expand, hash, n)) => {
            let _ = writeln!(
                out,
                "| expanding and validating a grid of {n} points | {:.1} µs ({:.2} s in all) |",
                1e6 * expand / n.max(1) as f64,
                expand
            );
            let _ = writeln!(
                out,
                "| hashing those {n} specs into run ids | {:.1} µs ({:.2} s in all) |",
                1e6 * hash / n.max(1) as f64,
                hash
            );
        }
        Err(e) => {
            let _ = writeln!(out, "| expanding a grid of {points} points | failed: {e} |");
        }
    }
    match makespan_ratio(dir) {
        Ok((makespan, bound)) => {
            let _ = writeln!(
                out,
                "| makespan of 16 simulated runs (0.5–3 s, 25 s in all) on `--devices fake:2 --slots-per-device 2`, against its lower bound max(longest, total / 4) | {makespan:.2} s vs {bound:.2} s: ratio {:.3} |",
                makespan / bound
            );
        }
        Err(e) => {
            let _ = writeln!(out, "| makespan of 16 simulated runs | failed: {e} |");
        }
    }
    let _ = writeln!(
        out,
        "\nA run that does nothing still starts a child process (`mixsweep exec`), takes its claim, writes status.json (at the start, after its one epoch, at the end) and result.json (each written to a temporary file, synced and renamed), and is checked and logged by the scheduler: this is the overhead every real run pays once."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_experiments_are_valid() {
        // The do-nothing sweep once planned a batch larger than its 8 training points; the
        // bench then reported "failed" instead of a figure. Check its experiment here.
        let exp = crate::spec::parse(&experiment(3), Path::new("nothing.yaml"), &[]).unwrap();
        assert_eq!(exp.runs.len(), 3);
    }
}
