//! Measured training throughput, for estimating what runs will cost before they run
//! (schedule::cost): `mixsweep bench` keeps its latest measurements in
//! `<store>/throughput.json`, one record per device kind, thread count and model family;
//! finished runs contribute their own (read from their results, not stored here).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, atomic};

/// One measured training throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// The device kind: `cpu`, `cuda`, `vulkan`, `wgpu` (`DeviceChoice::kind`).
    pub device: String,
    /// CPU threads of the process.
    pub threads: usize,
    /// The model's family (`ModelSpec::name`).
    pub model: String,
    /// Training FLOPs per second (3 forward passes' worth per example; spec::cost).
    pub flops_per_sec: f64,
    /// Where it was measured: `bench` or a run's slug.
    pub source: String,
}

/// `<store>/throughput.json`.
pub fn path(store: &Store) -> PathBuf {
    store.root.join("throughput.json")
}

/// The bench's records; none when the file does not exist.
pub fn read(store: &Store) -> Result<Vec<Throughput>, StoreError> {
    read_file(&path(store))
}

fn read_file(path: &Path) -> Result<Vec<Throughput>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the records of the same device, threads and model by `new` ones, keeps the rest,
/// and writes the file atomically.
pub fn update(store: &Store, new: &[Throughput]) -> Result<(), StoreError> {
    let path = path(store);
    let mut all = read_file(&path)?;
    all.retain(|old| {
        !new.iter()
            .any(|n| n.device == old.device && n.threads == old.threads && n.model == old.model)
    });
    all.extend(new.iter().cloned());
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&store.root).map_err(io)?;
    atomic::write_json(&path, &all).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(threads: usize, flops_per_sec: f64) -> Throughput {
        Throughput {
            device: "cpu".into(),
            threads,
            model: "preact_resnet".into(),
            flops_per_sec,
            source: "bench".into(),
        }
    }

    #[test]
    fn an_update_replaces_what_it_measured_again() {
        let dir = crate::testing::TempDir::new().unwrap();
        let store = Store::new(dir.path());
        assert!(read(&store).unwrap().is_empty());
        update(&store, &[record(1, 1.0), record(2, 2.0)]).unwrap();
        update(&store, &[record(2, 3.0)]).unwrap();
        assert_eq!(read(&store).unwrap(), vec![record(1, 1.0), record(2, 3.0)]);
        std::fs::write(path(&store), "[{").unwrap();
        assert!(matches!(read(&store), Err(StoreError::Corrupt { .. })));
    }
}
