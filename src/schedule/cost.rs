//! How long runs will take, before they start: each run's FLOPs (spec::cost) over the FLOP
//! rate measured for its kind of model on the slot's device and thread count, and the
//! makespan of the whole plan on a pool.
//!
//! Rates come from `Throughput` records: what `mixsweep bench` measured and what finished
//! runs report (their result's `train_examples_per_sec` × FLOPs per example), which every
//! sweep also adds to runs/throughput.json so that other experiments' plans see them. A rate measured at another thread count is scaled along the line through the two
//! nearest measured counts (log–log), or in proportion to the threads when only one count was
//! measured. A rate for another kind of model on the same device is used when nothing better
//! exists, and the estimate says so.

pub use crate::store::throughput::Throughput;

use crate::store::PlannedRun;
use crate::store::records::RunResult;

/// The training throughput a finished run measured, if it trained (a simulated run or one
/// without a rate measured nothing).
pub fn measured(run: &PlannedRun, result: &RunResult) -> Option<Throughput> {
    let p = &result.provenance;
    (!result.simulated && p.train_examples_per_sec > 0.0).then(|| Throughput {
        device: device_kind(&p.device).to_string(),
        threads: p.threads,
        model: run.spec.model.name().to_string(),
        flops_per_sec: p.train_examples_per_sec
            * crate::spec::cost::example_training_flops(&run.spec),
        source: run.slug.clone(),
    })
}

/// One record per device kind, thread count and model family: the median rate of `all`
/// (the source names the first run of the median's group).
pub fn medians(all: &[Throughput]) -> Vec<Throughput> {
    let mut out: Vec<Throughput> = Vec::new();
    for t in all {
        if out
            .iter()
            .any(|o| o.device == t.device && o.threads == t.threads && o.model == t.model)
        {
            continue;
        }
        let same: Vec<f64> = all
            .iter()
            .filter(|o| o.device == t.device && o.threads == t.threads && o.model == t.model)
            .map(|o| o.flops_per_sec)
            .collect();
        out.push(Throughput {
            flops_per_sec: median(same),
            ..t.clone()
        });
    }
    out
}

/// How good an estimate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Measured for this model family at this thread count.
    Measured,
    /// Measured for this model family at other thread counts.
    Scaled,
    /// Only other model families were measured on this device.
    OtherModel,
}

/// The device kind of a slot label, a device name or a run's provenance: `cuda:2/1` → `cuda`,
/// `cpu (burn flex, 1 threads)` → `cpu`, `wgpu:0 (llvmpipe …)` → `wgpu`.
pub fn device_kind(device: &str) -> &str {
    device.split([':', '/', ' ']).next().unwrap_or(device)
}

/// Median of some rates.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The rate at `threads` from per-thread-count medians (sorted by threads, non-empty).
fn at_threads(points: &[(usize, f64)], threads: usize) -> f64 {
    if let Some((_, r)) = points.iter().find(|(t, _)| *t == threads) {
        return *r;
    }
    if points.len() == 1 {
        let (t, r) = points[0];
        return r * threads as f64 / t as f64;
    }
    // The two nearest counts (in log threads), a power law through them.
    let mut near: Vec<(usize, f64)> = points.to_vec();
    let lt = (threads as f64).ln();
    near.sort_by(|a, b| {
        ((a.0 as f64).ln() - lt)
            .abs()
            .total_cmp(&((b.0 as f64).ln() - lt).abs())
    });
    let ((t1, r1), (t2, r2)) = (near[0], near[1]);
    let slope = (r2.ln() - r1.ln()) / ((t2 as f64).ln() - (t1 as f64).ln());
    // Never faster than linear scaling from the nearest, never slower with more threads.
    let slope = slope.clamp(0.0, 1.0);
    r1 * (threads as f64 / t1 as f64).powf(slope)
}

/// Per-thread-count medians of `records`, sorted by threads.
fn points<'a>(records: impl Iterator<Item = &'a Throughput>) -> Vec<(usize, f64)> {
    let mut by: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for r in records {
        by.entry(r.threads).or_default().push(r.flops_per_sec);
    }
    by.into_iter().map(|(t, v)| (t, median(v))).collect()
}

/// Training FLOPs per second for `model` on `device` (a kind) with `threads` threads, and how
/// it was arrived at; `None` when nothing was measured on that device.
pub fn rate(
    records: &[Throughput],
    device: &str,
    threads: usize,
    model: &str,
) -> Option<(f64, Basis)> {
    let on_device = || records.iter().filter(|r| r.device == device);
    let same = points(on_device().filter(|r| r.model == model));
    if !same.is_empty() {
        let basis = if same.iter().any(|(t, _)| *t == threads) {
            Basis::Measured
        } else {
            Basis::Scaled
        };
        return Some((at_threads(&same, threads), basis));
    }
    let any = points(on_device());
    (!any.is_empty()).then(|| (at_threads(&any, threads), Basis::OtherModel))
}

/// The makespan of jobs of these `durations` on `slots` identical slots, longest first onto
/// the least loaded slot (what the pool does when every run is ready at the start).
pub fn makespan(durations: &[f64], slots: usize) -> f64 {
    let mut order = durations.to_vec();
    order.sort_by(|a, b| b.total_cmp(a));
    let mut load = vec![0.0f64; slots.max(1)];
    for d in order {
        let i = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]))
            .unwrap_or(0);
        load[i] += d;
    }
    load.into_iter().fold(0.0, f64::max)
}

/// The CPU split (slots, threads each) with the shortest estimated makespan for runs of these
/// (model family, training FLOPs) on `cores` cores, with that makespan; `None` when no CPU
/// throughput was measured. Ties go to fewer slots (less memory).
pub fn best_cpu_split(
    records: &[Throughput],
    runs: &[(String, f64)],
    cores: usize,
) -> Option<(usize, usize, f64)> {
    let mut best: Option<(usize, usize, f64)> = None;
    for slots in 1..=cores.max(1) {
        let threads = (cores / slots).max(1);
        let durations: Option<Vec<f64>> = runs
            .iter()
            .map(|(model, flops)| rate(records, "cpu", threads, model).map(|(r, _)| flops / r))
            .collect();
        let span = makespan(&durations?, slots);
        if best.is_none_or(|(_, _, b)| span < b * 0.999) {
            best = Some((slots, threads, span));
        }
    }
    best
}

/// `3 h 20 min`-style text for seconds.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 2.0 * 86400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(threads: usize, model: &str, flops_per_sec: f64) -> Throughput {
        Throughput {
            device: "cpu".into(),
            threads,
            model: model.into(),
            flops_per_sec,
            source: "bench".into(),
        }
    }

    #[test]
    fn device_kinds_come_from_labels_names_and_provenance() {
        for (text, kind) in [
            ("cuda:2/1", "cuda"),
            ("cpu", "cpu"),
            ("cpu (burn flex, 1 threads)", "cpu"),
            (
                "wgpu:0 (llvmpipe (LLVM 15.0.6, 256 bits), CPU (software), vulkan)",
                "wgpu",
            ),
        ] {
            assert_eq!(device_kind(text), kind, "{text}");
        }
    }

    #[test]
    fn medians_keep_one_record_per_device_threads_and_model() {
        let m = medians(&[
            record(1, "spiral_mlp", 3.0),
            record(1, "spiral_mlp", 1.0),
            record(2, "spiral_mlp", 5.0),
            record(1, "spiral_mlp", 2.0),
            record(1, "preact_resnet", 7.0),
        ]);
        let rates: Vec<(usize, &str, f64)> = m
            .iter()
            .map(|t| (t.threads, t.model.as_str(), t.flops_per_sec))
            .collect();
        // Median of 3, 1, 2 is 2.
        assert_eq!(
            rates,
            [
                (1, "spiral_mlp", 2.0),
                (2, "spiral_mlp", 5.0),
                (1, "preact_resnet", 7.0)
            ]
        );
    }

    #[test]
    fn rates_are_measured_scaled_or_borrowed() {
        let records = [
            record(1, "preact_resnet", 10.0),
            record(2, "preact_resnet", 17.0),
            record(1, "spiral_mlp", 1.0),
        ];
        assert_eq!(
            rate(&records, "cpu", 2, "preact_resnet"),
            Some((17.0, Basis::Measured))
        );
        // log-log through (1, 10) and (2, 17): 10·4^log2(1.7) = 28.9.
        let (r, basis) = rate(&records, "cpu", 4, "preact_resnet").unwrap();
        assert_eq!(basis, Basis::Scaled);
        assert!((r - 28.9).abs() < 0.01, "{r}");
        // One count only: in proportion to the threads.
        assert_eq!(
            rate(&records, "cpu", 3, "spiral_mlp"),
            Some((3.0, Basis::Scaled))
        );
        assert_eq!(
            rate(&records, "cpu", 1, "wide_resnet").map(|r| r.1),
            Some(Basis::OtherModel)
        );
        assert_eq!(rate(&records, "cuda", 1, "preact_resnet"), None);
    }

    #[test]
    fn makespan_packs_longest_first() {
        // Longest first onto the least loaded: 5 | 4, then 3 → 7, 3 → 8, 3 → 10 (the best
        // split, 9 | 9 by 3+3+3 and 5+4, is what LPT can miss).
        assert_eq!(makespan(&[3.0, 5.0, 3.0, 4.0, 3.0], 2), 10.0);
        assert_eq!(makespan(&[2.0; 4], 4), 2.0);
        assert_eq!(makespan(&[], 3), 0.0);
    }

    #[test]
    fn the_cpu_split_follows_the_measured_scaling() {
        let runs: Vec<(String, f64)> = vec![("preact_resnet".into(), 100.0); 4];
        // A second thread gives 1.2×: two 1-thread slots win (makespan 2·100/10 = 20 s).
        let poor = [
            record(1, "preact_resnet", 10.0),
            record(2, "preact_resnet", 12.0),
        ];
        assert_eq!(best_cpu_split(&poor, &runs, 2), Some((2, 1, 20.0)));
        // Perfect scaling: a tie, broken towards one slot.
        let perfect = [
            record(1, "preact_resnet", 10.0),
            record(2, "preact_resnet", 20.0),
        ];
        assert_eq!(best_cpu_split(&perfect, &runs, 2), Some((1, 2, 20.0)));
        // A single run: one slot with both threads, whatever the scaling.
        let one = vec![("preact_resnet".into(), 100.0)];
        assert_eq!(best_cpu_split(&poor, &one, 2).map(|b| b.0), Some(1));
        assert_eq!(best_cpu_split(&[], &runs, 2), None);
    }
}
