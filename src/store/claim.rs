//! Claims: who is running a run right now. A claim is the file `claim` in the run directory,
//! holding the owner's host, pid and start time, and locked (flock) by the owner for as long as
//! it lives. The kernel drops the lock when the owner dies however it dies, so a claim whose
//! lock can be taken is stale and may be taken over; no pid guessing is involved.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::records::{hostname, now};

/// What a claim file says about its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    pub started: u64,
}

/// A held claim. Dropping it releases the lock; `release` also removes the file.
#[derive(Debug)]
pub struct Claim {
    file: File,
    path: PathBuf,
}

const CLAIM_FILE: &str = "claim";

/// Tries to claim `run_dir` for this process. `Ok(None)`: a live process holds it.
pub fn acquire(run_dir: &Path) -> std::io::Result<Option<Claim>> {
    let path = run_dir.join(CLAIM_FILE);
    for _ in 0..5 {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        // The owner may have removed the file between our open and our lock: then we hold a
        // lock on a file nobody else can see. Start again on the path's current file.
        let same = std::fs::metadata(&path)
            .map(|m| m.ino() == file.metadata().map(|f| f.ino()).unwrap_or(0))
            .unwrap_or(false);
        if !same {
            continue;
        }
        let owner = Owner {
            host: hostname(),
            pid: std::process::id(),
            started: now(),
        };
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(
            serde_json::to_string(&owner)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        file.sync_all()?;
        return Ok(Some(Claim { file, path }));
    }
    Ok(None)
}

/// The live owner of `run_dir`'s claim, if any. A stale claim file reads as no owner.
pub fn live_owner(run_dir: &Path) -> Option<Owner> {
    let mut file = File::open(run_dir.join(CLAIM_FILE)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            Some(serde_json::from_str(&text).unwrap_or(Owner {
                host: "?".into(),
                pid: 0,
                started: 0,
            }))
        }
    }
}

impl Claim {
    /// Removes the claim file, then lets go of the lock.
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_claim_excludes_others_and_a_released_one_does_not() {
        let dir = crate::testing::TempDir::new().unwrap();
        let claim = acquire(dir.path()).unwrap().expect("first claim");
        assert!(
            acquire(dir.path()).unwrap().is_none(),
            "second claim while held"
        );
        let owner = live_owner(dir.path()).expect("owner visible");
        assert_eq!(owner.pid, std::process::id());
        drop(claim); // lock gone, file stays: a stale claim
        assert!(live_owner(dir.path()).is_none());
        let again = acquire(dir.path())
            .unwrap()
            .expect("stale claim taken over");
        again.release();
        assert!(!dir.path().join(CLAIM_FILE).exists());
    }
}
