//! What a researcher watches during a sweep: one line per slot with its run and epoch, and a
//! totals line — done, running, failed, queued — with an ETA from measured run times. On a
//! terminal these are live indicatif lines; otherwise (a log, CI) one line per finished run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::devices::Slot;
use crate::store::{self, PlannedRun};

/// How a finished child counts in the totals line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    Done,
    Failed,
    /// Stopped, retried, or taken by another scheduler.
    Neither,
}

pub struct Progress {
    multi: MultiProgress,
    slots: Vec<(String, ProgressBar)>,
    total: ProgressBar,
    /// Jobs handed to the pool, and how many have ended.
    jobs: usize,
    ended: usize,
    done: usize,
    failed: usize,
    /// Which slot each running run is on.
    on: HashMap<PathBuf, String>,
    last_tick: Option<Instant>,
}

fn name(run: &PlannedRun) -> String {
    run.dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.slug.clone())
}

impl Progress {
    pub fn new(slots: &[Slot], jobs: usize) -> Progress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template("{prefix:>12} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let slot_bars = slots
            .iter()
            .map(|s| {
                let bar = multi.add(
                    ProgressBar::new(0)
                        .with_style(style.clone())
                        .with_prefix(s.label.clone()),
                );
                bar.set_message("idle");
                (s.label.clone(), bar)
            })
            .collect();
        let total = multi.add(
            ProgressBar::new(jobs as u64).with_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        );
        Progress {
            multi,
            slots: slot_bars,
            total,
            jobs,
            ended: 0,
            done: 0,
            failed: 0,
            on: HashMap::new(),
            last_tick: None,
        }
    }

    fn bar(&self, label: &str) -> Option<&ProgressBar> {
        self.slots.iter().find(|(l, _)| l == label).map(|(_, b)| b)
    }

    pub fn started(&mut self, run: &PlannedRun, slot: &str, evaluate_only: bool) {
        self.on.insert(run.dir.clone(), slot.to_string());
        if let Some(bar) = self.bar(slot) {
            bar.set_message(format!(
                "{}{}",
                name(run),
                if evaluate_only { "  evaluating" } else { "" }
            ));
        }
    }

    /// A run's child ended; `line` says how.
    pub fn finished(&mut self, run: &PlannedRun, tally: Tally, line: &str) {
        self.ended += 1;
        match tally {
            Tally::Done => self.done += 1,
            Tally::Failed => self.failed += 1,
            Tally::Neither => {}
        }
        if let Some(slot) = self.on.remove(&run.dir)
            && let Some(bar) = self.bar(&slot)
        {
            bar.set_message("idle");
        }
        let text = format!(
            "[{}/{}] {}  {line}",
            self.ended,
            self.jobs.max(self.ended),
            name(run)
        );
        if self.multi.is_hidden() {
            println!("{text}")
        } else {
            let _ = self.multi.println(text);
        }
        self.total
            .set_position(self.done as u64 + self.failed as u64);
    }

    /// Refreshes the lines (at most twice a second): each slot's run and epoch from its
    /// status.json, and the totals.
    pub fn tick(
        &mut self,
        queued: usize,
        running: usize,
        eta: impl FnOnce() -> Option<f64>,
        dir_of: impl Fn(&str) -> Option<PathBuf>,
    ) {
        if self.multi.is_hidden()
            || self
                .last_tick
                .is_some_and(|t| t.elapsed() < Duration::from_millis(500))
        {
            return;
        }
        self.last_tick = Some(Instant::now());
        for (label, bar) in &self.slots {
            if let Some(dir) = dir_of(label) {
                let epoch = store::read_status(&dir)
                    .ok()
                    .flatten()
                    .and_then(|s| s.progress)
                    .map(|p| format!("  epoch {}/{}", p.epoch, p.epochs))
                    .unwrap_or_default();
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                bar.set_message(format!("{name}{epoch}"));
            }
        }
        let eta = eta()
            .map(|s| format!(", about {} left", human(s)))
            .unwrap_or_default();
        self.total.set_message(format!(
            "{} done, {running} running, {} failed, {queued} queued{eta}",
            self.done, self.failed
        ));
    }

    pub fn finish(&self) {
        for (_, bar) in &self.slots {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
    }
}

/// 75 → "1m15s".
pub fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
