//! The run store (design §5): one directory per experiment under the store root, one directory
//! per run named `<slug>-<id12>`, plain files inside, each written atomically.
//!
//! A run's state is read from its files, never cached: result.json present = done; a live
//! claim = running; status.json `running` without a live claim = interrupted (its process died);
//! `failed` = failed; anything else = pending.

pub mod atomic;
pub mod claim;
pub mod next;
pub mod records;
pub mod throughput;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::spec::{Experiment, RunSpec};
pub use next::{
    Next, RunView, SETTINGS_FILE, begin_attempt, end_attempt, evaluated_models,
    missing_evaluations, needs_evaluation, record_failure, settings_beside, view,
};
use records::{Failure, RunResult, State, Status};

/// Errors of the run store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: unreadable ({reason}); move the file away and run again, or delete the run directory to start it over"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path}: this run directory holds a different spec than its name says; the store has been edited by hand. Delete the directory to re-plan it"
    )]
    Mismatch { path: PathBuf },
    #[error(
        "the canonical form of {what} cannot be written ({reason}), so it has no id; this is a bug in mixsweep, please report it"
    )]
    Identity { what: &'static str, reason: String },
}

impl From<crate::spec::evaluate::SettingsIdError> for StoreError {
    fn from(e: crate::spec::evaluate::SettingsIdError) -> Self {
        StoreError::Identity {
            what: "the evaluation settings",
            reason: e.0,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A run's identity: SHA-256 of its canonical spec, in hex. A spec that cannot be written
/// is an error, never the hash of an empty string.
pub fn run_id(spec: &RunSpec) -> Result<String, StoreError> {
    let json = spec.canonical_json().map_err(|e| StoreError::Identity {
        what: "a run spec",
        reason: e.to_string(),
    })?;
    let digest = Sha256::digest(json.as_bytes());
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The characters of the id that end a run directory's name (`<slug>-<id12>`).
pub const ID_IN_NAME: usize = 12;

/// The slug part of a run directory's name (`erm-wd1e-4-s0` of `erm-wd1e-4-s0-0123456789ab`).
pub fn slug_of(run_dir: &Path) -> String {
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('-') {
        Some((slug, id)) if id.len() == ID_IN_NAME => slug.to_string(),
        _ => name,
    }
}

/// The run directories already in an experiment directory, by the id they end with.
fn existing_runs(dir: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        if let Some((_, id)) = name.rsplit_once('-')
            && id.len() == ID_IN_NAME
            && id.chars().all(|c| c.is_ascii_hexdigit())
        {
            out.insert(id.to_string(), name);
        }
    }
    out
}

/// A run's effective state, derived from its files.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Pending,
    Running(claim::Owner),
    Done,
    /// Its process died while running; it will be run again.
    Interrupted,
    Failed(Failure),
}

impl RunState {
    pub fn label(&self) -> String {
        match self {
            RunState::Pending => "pending".into(),
            RunState::Running(o) => format!("running ({}:{})", o.host, o.pid),
            RunState::Done => "done".into(),
            RunState::Interrupted => "interrupted".into(),
            RunState::Failed(f) => format!("failed ({})", f.class),
        }
    }
    /// The short name used in totals.
    pub fn kind(&self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running(_) => "running",
            RunState::Done => "done",
            RunState::Interrupted => "interrupted",
            RunState::Failed(_) => "failed",
        }
    }
}

/// A planned run and its directory.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub id: String,
    pub slug: String,
    pub dir: PathBuf,
    pub spec: RunSpec,
}

/// The paths inside a run directory.
pub struct RunFiles;

impl RunFiles {
    pub const SPEC: &'static str = "spec.yaml";
    pub const STATUS: &'static str = "status.json";
    pub const METRICS: &'static str = "metrics.jsonl";
    pub const RESULT: &'static str = "result.json";
    pub const CHECKPOINT: &'static str = "checkpoint";
    /// Inside `CHECKPOINT`: the model of the epoch with the lowest validation error so far.
    pub const BEST_ON_VALIDATION: &'static str = "best-on-validation.bpk";
}

/// The root of a store (`runs/` by default).
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn experiment_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The runs of an experiment with their directories, reading the disk but writing
    /// nothing. A run's directory is `<slug>-<id12>`; one made earlier under another slug (the
    /// experiment's varying keys changed, or an older mixsweep named it) keeps its name.
    pub fn planned(&self, exp: &Experiment) -> Result<Vec<PlannedRun>, StoreError> {
        let dir = self.experiment_dir(&exp.name);
        let existing = existing_runs(&dir);
        exp.runs
            .iter()
            .zip(&exp.slugs)
            .map(|(spec, slug)| {
                let id = run_id(spec)?;
                let short = &id[..ID_IN_NAME];
                let name = existing
                    .get(short)
                    .cloned()
                    .unwrap_or_else(|| format!("{slug}-{short}"));
                Ok(PlannedRun {
                    dir: dir.join(name),
                    id,
                    slug: slug.clone(),
                    spec: spec.clone(),
                })
            })
            .collect()
    }

    /// Writes plan.jsonl and, for each run that has no directory yet, its spec.yaml and a
    /// pending status.json. Existing runs are checked, never overwritten.
    pub fn write_plan(&self, exp: &Experiment) -> Result<Vec<PlannedRun>, StoreError> {
        let dir = self.experiment_dir(&exp.name);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let runs = self.planned(exp)?;
        let mut plan = String::new();
        for run in &runs {
            let line = serde_json::json!({ "id": run.id, "slug": run.slug, "dir": run.dir.file_name().map(|n| n.to_string_lossy()), "spec": run.spec });
            plan.push_str(&line.to_string());
            plan.push('\n');
            let spec_path = run.dir.join(RunFiles::SPEC);
            if spec_path.exists() {
                let text = fs::read_to_string(&spec_path).map_err(io(&spec_path))?;
                let file = spec_path.display().to_string();
                match RunSpec::from_yaml(&text, &file) {
                    Ok(existing) if existing == run.spec => {}
                    Ok(_) => {
                        return Err(StoreError::Mismatch {
                            path: run.dir.clone(),
                        });
                    }
                    Err(e) => {
                        return Err(StoreError::Corrupt {
                            path: spec_path,
                            reason: e.to_string(),
                        });
                    }
                }
                continue;
            }
            // A fresh run directory is built under a temporary name and renamed into place,
            // so a crash never leaves a run directory without its spec.
            let tmp = dir.join(format!(".new-{}-{}", &run.id[..12], std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            let yaml = run.spec.to_yaml().map_err(|e| StoreError::Identity {
                what: "a run spec (as YAML)",
                reason: e.to_string(),
            })?;
            fs::create_dir_all(&tmp).map_err(io(&tmp))?;
            atomic::write(&tmp.join(RunFiles::SPEC), yaml.as_bytes()).map_err(io(&tmp))?;
            atomic::write_json(&tmp.join(RunFiles::STATUS), &Status::pending())
                .map_err(io(&tmp))?;
            if let Err(e) = fs::rename(&tmp, &run.dir) {
                let _ = fs::remove_dir_all(&tmp);
                // Another scheduler may have created it first: that is fine if it now exists.
                if !run.dir.join(RunFiles::SPEC).exists() {
                    return Err(StoreError::Io {
                        path: run.dir.clone(),
                        source: e,
                    });
                }
            }
        }
        let settings_path = dir.join(SETTINGS_FILE);
        atomic::write_json(&settings_path, &exp.evaluate).map_err(io(&settings_path))?;
        let plan_path = dir.join("plan.jsonl");
        atomic::write(&plan_path, plan.as_bytes()).map_err(io(&plan_path))?;
        Ok(runs)
    }
}

/// Reads a run's effective state from its files.
pub fn run_state(run_dir: &Path) -> Result<RunState, StoreError> {
    if run_dir.join(RunFiles::RESULT).exists() {
        return Ok(RunState::Done);
    }
    if let Some(owner) = claim::live_owner(run_dir) {
        return Ok(RunState::Running(owner));
    }
    let Some(status) = read_status(run_dir)? else {
        return Ok(RunState::Pending);
    };
    Ok(match (status.state, status.failure) {
        (State::Failed, Some(f)) => RunState::Failed(f),
        (State::Failed, None) => RunState::Failed(Failure {
            class: records::FailureClass::Crashed,
            reason: "no reason recorded".into(),
        }),
        (State::Running | State::Interrupted, _) => RunState::Interrupted,
        // Done in status.json but no result.json: the result was never written.
        (State::Done, _) => RunState::Interrupted,
        (State::Pending, _) => RunState::Pending,
    })
}

/// status.json, if the run has one.
pub fn read_status(run_dir: &Path) -> Result<Option<Status>, StoreError> {
    read_json(&run_dir.join(RunFiles::STATUS))
}

pub fn write_status(run_dir: &Path, status: &Status) -> Result<(), StoreError> {
    let path = run_dir.join(RunFiles::STATUS);
    atomic::write_json(&path, status).map_err(io(&path))
}

/// result.json, if the run is done.
pub fn read_result(run_dir: &Path) -> Result<Option<RunResult>, StoreError> {
    read_json(&run_dir.join(RunFiles::RESULT))
}

/// A JSON file of the store: `None` if absent, `Corrupt` if it does not parse.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// The attempt logs of a run, oldest first.
pub fn attempt_logs(run_dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<(u32, PathBuf)> = fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name
                .strip_prefix("attempt-")?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    logs.sort();
    logs.into_iter().map(|(_, p)| p).collect()
}
