//! Atomic file writes: a reader sees the old file or the new one, never half of one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    write(path, text.as_bytes())
}

/// Whether `name` is a temporary of `write` (`.<file>.tmp.<pid>`), and whose.
fn temporary_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, pid) = rest.rsplit_once(".tmp.")?;
    pid.parse().ok()
}

/// Removes the temporaries that writers other than this process left in `dir` (a kill between
/// the write and the rename leaves one behind). Call it only while holding the claim of the
/// run that owns `dir`: then no other process writes there, and every other temporary is
/// stale. Returns how many were removed.
pub fn remove_stale(dir: &Path) -> std::io::Result<usize> {
    let own = std::process::id();
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if temporary_of(&name).is_some_and(|pid| pid != own) && entry.path().is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_number_read_back_is_the_same_f64() {
        // A singular value from a real evaluation (tests/eval.rs) that serde_json's default
        // parser read back one ulp off, so rewriting result.json changed an old evaluation.
        let tmp = crate::testing::TempDir::new().unwrap();
        let path = tmp.path().join("x.json");
        let values = [
            6.560558890381671e-10f64,
            0.1,
            1.0 / 3.0,
            2.2250738585072014e-308,
        ];
        write_json(&path, &values).unwrap();
        let back: Vec<f64> = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));
    }

    #[test]
    fn stale_temporaries_are_removed_and_others_kept() {
        let tmp = crate::testing::TempDir::new().unwrap();
        let dir = tmp.path();
        // What a kill between write and rename leaves: `.status.json.tmp.<pid>`.
        fs::write(dir.join(".status.json.tmp.999999"), "{").unwrap();
        fs::write(dir.join(".result.json.tmp.4242"), "{").unwrap();
        let own = dir.join(format!(".metrics.jsonl.tmp.{}", std::process::id()));
        fs::write(&own, "").unwrap();
        fs::write(dir.join("status.json"), "{}").unwrap();
        fs::write(dir.join(".hidden"), "").unwrap();
        assert_eq!(remove_stale(dir).unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let own_name = own.file_name().unwrap().to_string_lossy().into_owned();
        let mut want = vec![own_name.as_str(), ".hidden", "status.json"];
        want.sort();
        assert_eq!(left, want);
    }
}
