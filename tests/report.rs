//! The report, checked byte for byte against a fixture: tests/fixtures/report/runs holds the
//! store of tiny real runs made by scripts/make-report-fixture.sh (ERM and Manifold Mixup over
//! two seeds, a setting that diverges), and expected/ the markdown and CSV files the report of
//! experiments/fixture.yaml must be. A report regenerated from the same runs changes no byte,
//! figures and Parquet included.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use polars::prelude::*;

mod common;
use common::*;

const FIXTURE: &str = "tests/fixtures/report";

fn report(out: &Path) -> std::process::Output {
    Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--store",
            &format!("{FIXTURE}/runs"),
            "report",
            &format!("{FIXTURE}/experiments/fixture.yaml"),
            "--reports",
        ])
        .arg(out)
        .output()
        .unwrap()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

#[test]
fn the_fixture_store_gives_the_expected_report_byte_for_byte() {
    let tmp = mixsweep::testing::TempDir::new().unwrap();
    let out = report(tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let expected = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURE)
        .join("expected");
    let got = fs::read_to_string(tmp.path().join("fixture.md")).unwrap();
    let want = fs::read_to_string(expected.join("fixture.md")).unwrap();
    assert_eq!(
        got,
        want,
        "the report differs from {}/fixture.md (scripts/make-report-fixture.sh rebuilds it; read its diff)",
        expected.display()
    );
    for table in ["table-1.csv", "table-2.csv", "table-3.csv"] {
        assert_eq!(
            fs::read_to_string(tmp.path().join("fixture").join(table)).unwrap(),
            fs::read_to_string(expected.join("fixture").join(table)).unwrap(),
            "{table}"
        );
    }
    // What the fixture shows, in words: the failed setting is counted and listed, never
    // averaged in; the paper's stand-in value is beside ERM; the pivot says its selection.
    assert!(want.contains("| erm | — | — | 1e+30 | — | — | — | — | — | 0/2 (2 failed) |"));
    assert!(want.contains("| 1.50 ± 0.10 |") && want.contains("Welch's t-test"));
    assert!(
        want.contains("Selection: the epoch with the lowest TEST error, as the paper reported")
    );
    assert!(want.contains("![Learning curves") && want.contains("fixture/singular-values.png"));

    // The figures are PNG images; the Parquet file holds every run with its keys and metrics.
    let assets = tmp.path().join("fixture");
    for png in ["curves.png", "singular-values.png"] {
        assert_eq!(
            &fs::read(assets.join(png)).unwrap()[..8],
            b"\x89PNG\r\n\x1a\n",
            "{png}"
        );
    }
    let df = ParquetReader::new(fs::File::open(assets.join("runs.parquet")).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 8);
    for column in [
        "dir",
        "seed",
        "state",
        "method",
        "alpha",
        "train.lr",
        "test_error",
        "ece",
        "fgsm@0.1",
        "flat_rest@1",
    ] {
        assert!(
            df.column(column).is_ok(),
            "runs.parquet lacks {column}: {:?}",
            df.get_column_names()
        );
    }
    let states = df
        .column("state")
        .unwrap()
        .str()
        .unwrap()
        .into_iter()
        .flatten()
        .filter(|s| *s == "failed")
        .count();
    assert_eq!(states, 2);

    // Regenerated with no new runs: no byte changes, in any file.
    let again = mixsweep::testing::TempDir::new().unwrap();
    assert!(report(again.path()).status.success());
    for f in files(&assets) {
        let other = again.path().join("fixture").join(f.file_name().unwrap());
        assert_eq!(
            fs::read(&f).unwrap(),
            fs::read(&other).unwrap(),
            "{} changed on regeneration",
            f.display()
        );
    }
}

#[test]
fn a_pivot_with_two_metrics_and_an_unknown_metric_are_errors_naming_the_table() {
    let sb = Sandbox::new();
    let base = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(FIXTURE)
            .join("experiments/fixture.yaml"),
    )
    .unwrap();
    let two = base.replace(
        "columns: [alpha], metrics: [test_error]",
        "columns: [alpha], metrics: [test_error, test_nll]",
    );
    sb.write("two.yaml", &two);
    let out = sb.run(&["report", "two.yaml", "--reports", "reports"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("A pivot: method × α") && text(&out).contains("one metric"),
        "{}",
        text(&out)
    );
    sb.write(
        "typo.yaml",
        &base.replace("metrics: [fgsm@0.1,", "metrics: [fgsm@0.2,"),
    );
    let out = sb.run(&["report", "typo.yaml", "--reports", "reports"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("unknown metric `fgsm@0.2`") && text(&out).contains("fgsm@0.1"),
        "{}",
        text(&out)
    );
}

#[test]
fn every_number_of_the_paper_sits_beside_a_run_of_the_paper_experiment_files() {
    // Reports of the paper's experiment files over an empty store: every row the paper has a
    // number for shows it, so a typo in experiments/reference/paper.yaml (a key, a value) or a
    // change of the experiment files that loses a match is caught here. Expected counts are
    // the entries of each table in the reference file.
    let sb = Sandbox::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(BIN)
        .current_dir(root)
        .arg("--store")
        .arg(sb.store())
        .args([
            "report",
            "experiments/paper/table1-cifar.yaml",
            "experiments/paper/table2-svhn.yaml",
            "experiments/paper/table3-tiny-imagenet.yaml",
            "experiments/paper/table5-layers.yaml",
            "experiments/paper/table6-alpha.yaml",
            "experiments/paper/robustness.yaml",
            "experiments/paper/flattening-mnist.yaml",
            "--reports",
        ])
        .arg(sb.path().join("reports"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let md = |name: &str| {
        fs::read_to_string(sb.path().join("reports").join(format!("{name}.md"))).unwrap()
    };
    // Plain tables: the first table of each file, one paper cell per row ("| 4.83 ± 0.066 |").
    let first_table = |text: &str| text.split("\n## ").nth(1).unwrap().to_string();
    let with_paper = |t: &str| {
        t.lines()
            .filter(|l| {
                l.starts_with("| ")
                    && !l.starts_with("| data")
                    && !l.starts_with("| model")
                    && !l.starts_with("| method")
            })
            .filter(|l| l.matches(" | ").count() > 3 && !l.contains("| — | — | — |"))
            .count()
    };
    assert_eq!(with_paper(&first_table(&md("paper-table1-cifar"))), 18);
    assert_eq!(with_paper(&first_table(&md("paper-table2-svhn"))), 9);
    assert_eq!(
        first_table(&md("paper-table3-tiny-imagenet"))
            .matches("accuracy ")
            .count(),
        9
    );
    // Pivots: one "[paper …]" per cell.
    assert_eq!(
        md("paper-table5-layers").matches("[paper accuracy").count(),
        20
    );
    assert_eq!(
        md("paper-table6-alpha").matches("[paper accuracy").count(),
        12
    );
    // Robustness: Tables 4/9 (4 methods × 17 deformations) and Table 7 (5 FGSM rows).
    let robust = md("paper-robustness");
    assert_eq!(first_table(&robust).matches("accuracy ").count(), 4 * 17);
    assert_eq!(
        robust
            .split("\n## ")
            .nth(2)
            .unwrap()
            .matches("accuracy ")
            .count(),
        5
    );
    // §3.2 and App. G on MNIST: each of the paper's 16 singular-value figures beside its row.
    let flat = md("paper-flattening-mnist");
    for v in [
        "51.73", "78.67", "33.76", "73.36", "28.83", "77.47", "33.46", "66.89", "31.65", "40.98",
        "50.08", "37.17", "43.44", "14.68", "12.49", "14.43",
    ] {
        assert_eq!(
            flat.matches(&format!("| {v} |")).count(),
            1,
            "{v} in\n{flat}"
        );
    }
}
