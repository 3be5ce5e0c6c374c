//! External programs as runs (`runner: { command: … }`, src/external.rs), with the numpy-only
//! trainer tests/fixtures/runner/train.py speaking the protocol: metrics and reports, a kill
//! and a resume through its checkpoint, failures classified from its exit and output,
//! placeholders good and bad, and identity following the script's content.

mod common;

use std::fs;
use std::time::Duration;

use common::*;

fn script() -> String {
    format!(
        "{}/tests/fixtures/runner/train.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// An experiment of the fixture trainer; `extra` goes into the command.
fn experiment(script: &str, extra: &str) -> String {
    format!(
        r#"name: ext
base:
  method: erm
  model: {{ name: spiral_mlp }}
  data: {{ name: spirals, n_train: 200, n_test: 100 }}
  train: {{ epochs: 3, batch_size: 50, lr: 0.5 }}
  eval: {{ every: 1 }}
  runner:
    command: [python3, "{script}", --lr, "{{train.lr}}", --epochs, "{{train.epochs}}", --seed, "{{seed}}", --method, "{{method}}"{extra}]
seeds: [0, 1]
grid:
  - {{ method: [erm] }}
  - {{ method: [input_mixup], alpha: [1.0] }}
report:
  tables:
    - {{ title: "External runs", rows: [method], metrics: [test_error, test_nll, ece] }}
"#
    )
}

#[test]
fn an_external_program_runs_as_a_run_and_reports_like_ours() {
    let sb = Sandbox::new();
    sb.write("e.yaml", &experiment(&script(), ""));
    let out = sb.run(&["sweep", "e.yaml", "--threads", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let dirs = sb.run_dirs("ext");
    assert_eq!(dirs.len(), 4);
    for d in &dirs {
        assert_eq!(status(d)["state"], "done", "{}", d.display());
        let m = metrics(d);
        assert_eq!(m.len(), 3, "one line per epoch");
        let err = m[2]["test_error"].as_f64().unwrap();
        // Two well-separated blobs: the regression learns them.
        assert!((0.0..0.2).contains(&err), "{err}");
        let r = result(d);
        assert!(
            r["runner"]
                .as_str()
                .unwrap()
                .contains("train.py --lr 0.5 --epochs 3")
        );
        assert!(
            r["provenance"]["device"]
                .as_str()
                .unwrap()
                .contains("via python3")
        );
        // The protocol's environment reached it (its log line).
        let log = fs::read_to_string(d.join("attempt-1.log")).unwrap();
        assert!(log.contains("threads 1, run dir /"), "{log}");
    }
    // A second sweep finds everything done (no evaluation is owed by external runs).
    let again = sb.run(&["sweep", "e.yaml"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("all 4 runs already done"),
        "{}",
        text(&again)
    );
    let rep = sb.run(&["report", "e.yaml", "--reports", "reports"]);
    assert!(rep.status.success(), "{}", text(&rep));
    let md = fs::read_to_string(sb.path().join("reports/ext.md")).unwrap();
    assert!(
        md.contains("| erm |") && md.contains("| input_mixup |"),
        "{md}"
    );
    assert!(md.contains(" | 2/2 |"), "{md}");
    // Measures of our own models do not exist for them: shown as such, never as 0.
    assert!(md.contains("| — | 2/2 |"), "{md}");
    assert!(
        md.contains("4 of these runs were trained by an external program"),
        "{md}"
    );
}

#[test]
fn failures_of_the_program_are_classified_with_its_output() {
    let sb = Sandbox::new();
    for (behave, class, says) in [
        ("crash", "crashed", "something went wrong on purpose"),
        ("oom", "oom", "out of memory"),
        ("nan", "diverged", "not finite"),
        ("silent", "crashed", "wrote no metrics"),
    ] {
        let file = format!("{behave}.yaml");
        sb.write(
            &file,
            &experiment(&script(), &format!(", --behave, {behave}"))
                .replace("name: ext", &format!("name: {behave}"))
                .replace("seeds: [0, 1]", "seeds: [0]"),
        );
        let out = sb.run(&["sweep", &file, "--threads", "1"]);
        assert_eq!(out.status.code(), Some(1), "{behave}: {}", text(&out));
        for d in sb.run_dirs(behave) {
            let s = status(&d);
            assert_eq!(s["state"], "failed", "{behave}");
            assert_eq!(s["failure"]["class"], class, "{behave}: {s}");
            let reason = s["failure"]["reason"].as_str().unwrap().to_lowercase();
            assert!(
                reason.contains(says) || class == "oom",
                "{behave}: {reason}"
            );
            assert!(
                !d.join("result.json").exists(),
                "{behave}: a failure left a result"
            );
        }
    }
}

#[test]
fn a_killed_external_run_resumes_from_its_checkpoint() {
    let sb = Sandbox::new();
    sb.write(
        "e.yaml",
        &experiment(&script(), ", --behave, slow")
            .replace("seeds: [0, 1]", "seeds: [0]")
            .replace("epochs: 3", "epochs: 5"),
    );
    let child = sb
        .cmd(&["sweep", "e.yaml", "--threads", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        first_run_has_lines(
            &sb,
            "ext",
            "program-metrics.jsonl",
            2,
            Duration::from_secs(120)
        ),
        "the program did not reach epoch 2"
    );
    kill(child.id(), 2);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let first = sb.run_dirs("ext")[0].clone();
    assert_eq!(status(&first)["state"], "interrupted");
    let again = sb.run(&["sweep", "e.yaml", "--threads", "1"]);
    assert!(again.status.success(), "{}", text(&again));
    for d in sb.run_dirs("ext") {
        let epochs: Vec<u64> = metrics(&d)
            .iter()
            .map(|m| m["epoch"].as_u64().unwrap())
            .collect();
        assert_eq!(epochs, [1, 2, 3, 4, 5], "{}", d.display());
    }
    let log = fs::read_to_string(first.join("attempt-2.log")).unwrap();
    assert!(log.contains("resumed from epoch"), "{log}");
}

#[test]
fn placeholders_are_checked_at_plan_time_and_the_script_is_part_of_the_identity() {
    let sb = Sandbox::new();
    sb.write("e.yaml", &experiment(&script(), ", \"{train.lrr}\""));
    let out = sb.run(&["plan", "e.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("e.yaml") && msg.contains("runner.command"),
        "{msg}"
    );
    assert!(
        msg.contains("{train.lrr}") && msg.contains("{train.lr}"),
        "{msg}"
    );
    assert!(!sb.store().exists(), "bad input wrote to the store");

    // The script copied into the sandbox, named by a relative path: editing it makes new ids.
    fs::copy(script(), sb.path().join("train.py")).unwrap();
    sb.write("e.yaml", &experiment("train.py", ""));
    let ids = |sb: &Sandbox| {
        let out = sb.run(&["plan", "e.yaml", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let before = ids(&sb);
    fs::write(
        sb.path().join("train.py"),
        fs::read_to_string(sb.path().join("train.py")).unwrap() + "\n# edited\n",
    )
    .unwrap();
    let after = ids(&sb);
    assert_ne!(before, after, "editing the script kept the run ids");
    // A plain rerun of plan is stable.
    assert_eq!(after, ids(&sb));
}
