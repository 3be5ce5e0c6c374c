//! The layering of design §2, checked on the source: the orchestration half (spec, store,
//! schedule, report, slurm) never imports burn or the training half (train, models, data,
//! eval, exec), so it builds and is tested without a device; and the evaluation modules import
//! each other in one direction only.

use std::fs;
use std::path::{Path, PathBuf};

/// Every .rs file under `path` (or `path` itself).
fn sources(path: &Path) -> Vec<PathBuf> {
    if !path.exists() {
        return Vec::new();
    }
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// The lines of `file` (comments left out) that name one of `forbidden`.
fn offending(file: &Path, forbidden: &[&str]) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter(|(_, l)| forbidden.iter().any(|f| l.contains(f)))
        .map(|(i, l)| format!("{}:{}: {}", file.display(), i + 1, l.trim()))
        .collect()
}

#[test]
fn orchestration_never_imports_burn_or_the_training_half() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = [
        "burn::",
        "crate::train",
        "crate::models",
        "crate::data",
        "crate::eval",
        "crate::exec",
    ];
    let mut bad = Vec::new();
    for part in [
        "spec",
        "store",
        "schedule",
        "report",
        "slurm.rs",
        "signals.rs",
    ] {
        for file in sources(&root.join(part)) {
            bad.extend(offending(&file, &forbidden));
        }
    }
    assert!(
        bad.is_empty(),
        "orchestration imports training:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_planes_do_not_import_the_measures_that_call_them() {
    let plane = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/eval/plane.rs");
    let bad = offending(&plane, &["measure::", "super::measure"]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
