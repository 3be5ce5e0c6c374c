//! Checkpoints: everything a run needs to continue exactly where it stopped — the model's
//! parameters (burnpack), the optimiser's state (burnpack), and the loop's own state (epoch,
//! minibatch, the position of every random stream, loss sums, metric history) as JSON.
//!
//! Layout, inside `<run>/checkpoint/`: `model-<tag>.bpk`, `optim-<tag>.bpk` and `state.json`,
//! which names the tag and is written last, atomically. A crash at any moment leaves the
//! previous `state.json` pointing at complete files; files of older tags are removed after.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::atomic;
use crate::store::records::EpochMetrics;

/// The training loop's own state at a minibatch boundary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// The epoch in progress (0-based).
    pub epoch: usize,
    /// Minibatches of `epoch` already done.
    pub step: usize,
    /// Word position of the "order" stream at the start of `epoch` (the epoch's permutation is
    /// drawn again from there).
    pub order_pos: u128,
    /// Current word positions of the mixing streams.
    pub layer_pos: u128,
    pub lambda_pos: u128,
    pub partner_pos: u128,
    /// Word position of the "augment" stream (crops, flips, Cutout holes) after the last
    /// batch trained on.
    #[serde(default)]
    pub augment_pos: u128,
    /// Seconds the training step waited for batches, over the whole run.
    #[serde(default)]
    pub data_wait: f64,
    /// Sum of minibatch losses and minibatches so far in `epoch`.
    pub loss_sum: f64,
    pub batches: usize,
    /// Training examples processed and seconds spent training, over the whole run.
    pub examples: usize,
    pub train_time: f64,
    /// Seconds since the run started, over all attempts.
    pub elapsed: f64,
    pub history: Vec<EpochMetrics>,
}

/// `state.json`: the loop state and the tag of the matching parameter files.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateFile {
    tag: String,
    state: LoopState,
}

/// A checkpoint read back from disk.
pub struct Saved {
    pub state: LoopState,
    pub model: Vec<u8>,
    pub optim: Vec<u8>,
}

fn files(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("model-{tag}.bpk")),
        dir.join(format!("optim-{tag}.bpk")),
    )
}

/// Writes a checkpoint into `dir` (created if needed).
pub fn save(dir: &Path, state: &LoopState, model: &[u8], optim: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tag = format!("e{}-s{}", state.epoch, state.step);
    let (model_path, optim_path) = files(dir, &tag);
    atomic::write(&model_path, model)?;
    atomic::write(&optim_path, optim)?;
    atomic::write_json(
        &dir.join("state.json"),
        &StateFile {
            tag: tag.clone(),
            state: state.clone(),
        },
    )?;
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = (name.starts_with("model-") || name.starts_with("optim-"))
            && !name.contains(&format!("-{tag}."));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Keeps `model` as the best on validation so far.
pub fn save_best_on_validation(dir: &Path, model: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    atomic::write(&dir.join(crate::store::RunFiles::BEST_ON_VALIDATION), model)
}

/// The model parameters of the checkpoint in `dir` and the loop state they go with, without
/// the optimiser's state (for evaluation).
pub fn load_model(dir: &Path) -> std::io::Result<Option<(LoopState, Vec<u8>)>> {
    let Some(file) = read_state(dir)? else {
        return Ok(None);
    };
    let (model_path, _) = files(dir, &file.tag);
    Ok(Some((file.state, fs::read(model_path)?)))
}

/// The checkpoint in `dir`, if there is one. A checkpoint that cannot be read is an error, not
/// a silent restart from scratch.
pub fn load(dir: &Path) -> std::io::Result<Option<Saved>> {
    let Some(file) = read_state(dir)? else {
        return Ok(None);
    };
    let (model_path, optim_path) = files(dir, &file.tag);
    Ok(Some(Saved {
        state: file.state,
        model: fs::read(model_path)?,
        optim: fs::read(optim_path)?,
    }))
}

fn read_state(dir: &Path) -> std::io::Result<Option<StateFile>> {
    let state_path = dir.join("state.json");
    let text = match fs::read_to_string(&state_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", state_path.display())))
}
