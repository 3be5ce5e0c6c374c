//! Evaluation end to end: a sweep evaluates every trained run under the experiment's
//! `evaluate:` settings and records them in result.json; new settings (by `mixsweep eval` or by
//! editing the file and sweeping again) are evaluated from the checkpoint without retraining,
//! beside the old ones; re-evaluation repeats the numbers; bad settings exit 2 naming the key.

use std::fs;

mod common;
use common::*;

const EVALUATED: &str = r#"name: evaluated
base:
  data: { name: spirals, n_train: 64, n_test: 64, noise: 0.02 }
  model: { name: spiral_mlp, width: 8, depth: 3 }
  train: { optimizer: adam, lr: 1.0e-2, weight_decay: 0.0, epochs: 3, batch_size: 32 }
evaluate:
  examples: 32
  fgsm: [0.1]
  pgd: [{ eps: 0.1, steps: 3, step_size: 0.05 }]
  noise: [0.1]
  flattening: [1, 4]
  plane: { grid: 8, points: 50 }
seeds: [0]
grid:
  - { method: [erm] }
  - { method: [manifold_mixup], alpha: [2.0], layers: [[4]] }
report:
  tables:
    - { title: "robustness", rows: [method], metrics: [ece, fgsm@0.1, pgd@0.1, noise@0.1, flat_rest@1, entropy_input, entropy_hidden] }
"#;

fn without_wall_time(mut e: serde_json::Value) -> serde_json::Value {
    e.as_object_mut().unwrap().remove("wall_time");
    e
}

#[test]
fn sweeps_record_every_measure_and_new_settings_never_retrain() {
    let sb = Sandbox::new();
    let file = sb.write("evaluated.yaml", EVALUATED);
    let out = sb.run(&["sweep", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let dirs = sb.run_dirs("evaluated");
    assert_eq!(dirs.len(), 2);
    let before: Vec<(String, serde_json::Value)> = dirs
        .iter()
        .map(|d| {
            (
                fs::read_to_string(d.join("metrics.jsonl")).unwrap(),
                result(d),
            )
        })
        .collect();
    for d in &dirs {
        let r = result(d);
        let evals = r["evaluations"].as_array().unwrap();
        assert_eq!(evals.len(), 1);
        let e = &evals[0];
        assert_eq!(e["model"], "final");
        assert_eq!(e["epoch"], 3);
        assert_eq!(e["settings"]["fgsm"], serde_json::json!([0.1]));
        assert_eq!(e["clean"]["examples"], 64);
        assert_eq!(e["subset"]["examples"], 32);
        let ece = e["clean"]["ece"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ece));
        // The clean error of the evaluation is training's own final test error, recomputed.
        assert!(
            (e["clean"]["error"].as_f64().unwrap()
                - r["final_metrics"]["test_error"].as_f64().unwrap())
            .abs()
                < 1e-12
        );
        let attacks = e["attacks"].as_array().unwrap();
        assert_eq!(
            attacks
                .iter()
                .map(|a| (a["attack"].as_str().unwrap(), a["steps"].as_u64().unwrap()))
                .collect::<Vec<_>>(),
            [("fgsm", 1), ("pgd", 3)]
        );
        for a in attacks {
            // A white-box attack never makes a model more accurate than on the same clean points
            // by more than chance flips; here: error within [0, 1] and not below the clean
            // subset error minus 10 points.
            let err = a["error"].as_f64().unwrap();
            assert!(
                (0.0..=1.0).contains(&err) && err + 0.1 >= e["subset"]["error"].as_f64().unwrap(),
                "{a}"
            );
        }
        assert_eq!(e["perturbations"][0]["perturbation"], "noise");
        let flat = e["flattening"].as_array().unwrap();
        assert_eq!(
            flat.iter()
                .map(|f| f["layer"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [1, 4]
        );
        // The bottleneck has 2 units: at most 2 singular values per class.
        assert!(flat[1]["spectrum"].as_array().unwrap().len() <= 2);
        let plane = &e["plane"];
        assert_eq!(plane["layer"], 4);
        let maps: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(d.join(plane["file"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        assert_eq!(maps["input_probs"].as_array().unwrap().len(), 8 * 8 * 2);
        assert_eq!(maps["hidden_probs"].as_array().unwrap().len(), 8 * 8 * 2);
        assert_eq!(maps["train_hidden"].as_array().unwrap().len(), 64 * 2);
        assert_eq!(maps["uniform_hidden"].as_array().unwrap().len(), 50 * 2);
        let h = plane["entropy_input"].as_f64().unwrap();
        assert!((0.0..=2f64.ln() + 1e-9).contains(&h));
    }
    let report = sb.run(&[
        "report",
        file.to_str().unwrap(),
        "--reports",
        sb.path().join("reports").to_str().unwrap(),
    ]);
    assert!(report.status.success(), "{}", text(&report));
    let md = fs::read_to_string(sb.path().join("reports/evaluated.md")).unwrap();
    assert!(
        md.contains("FGSM ε=0.1 error %")
            && md.contains("entropy, input plane")
            && md.contains("evaluation settings"),
        "{md}"
    );

    // New settings from the command line: recorded beside the old ones, nothing retrained.
    let out = sb.run(&["eval", file.to_str().unwrap(), "-o", "fgsm=[0.2]"]);
    assert!(out.status.success(), "{}", text(&out));
    for (d, (metrics, old)) in dirs.iter().zip(&before) {
        let r = result(d);
        assert_eq!(
            &fs::read_to_string(d.join("metrics.jsonl")).unwrap(),
            metrics
        );
        assert_eq!(r["final_metrics"], old["final_metrics"]);
        assert_eq!(status(d)["attempts"], 1);
        let evals = r["evaluations"].as_array().unwrap();
        assert_eq!(evals.len(), 2);
        assert_eq!(evals[0], old["evaluations"][0]);
        assert_eq!(evals[1]["settings"]["fgsm"], serde_json::json!([0.2]));
        assert_ne!(evals[1]["settings_id"], evals[0]["settings_id"]);
    }

    // The same settings again (--again on a run directory, with the settings stored beside
    // it) give the same numbers.
    let out = sb.run(&["eval", dirs[1].to_str().unwrap(), "--again"]);
    assert!(out.status.success(), "{}", text(&out));
    let r = result(&dirs[1]);
    let evals = r["evaluations"].as_array().unwrap();
    assert_eq!(evals.len(), 2);
    let redone = evals
        .iter()
        .find(|e| e["settings_id"] == before[1].1["evaluations"][0]["settings_id"])
        .unwrap();
    assert_eq!(
        without_wall_time(redone.clone()),
        without_wall_time(before[1].1["evaluations"][0].clone())
    );

    // Editing `evaluate:` and sweeping again evaluates, and trains nothing.
    sb.write(
        "evaluated.yaml",
        &EVALUATED.replace("noise: [0.1]", "noise: [0.1, 0.3]"),
    );
    let out = sb.run(&["sweep", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("evaluated in"), "{}", text(&out));
    for (d, (metrics, _)) in dirs.iter().zip(&before) {
        assert_eq!(
            &fs::read_to_string(d.join("metrics.jsonl")).unwrap(),
            metrics
        );
        assert_eq!(status(d)["attempts"], 1);
        assert_eq!(result(d)["evaluations"].as_array().unwrap().len(), 3);
    }
    let out = sb.run(&["sweep", file.to_str().unwrap()]);
    assert!(text(&out).contains("nothing to run"), "{}", text(&out));
}

#[test]
fn bad_evaluation_settings_exit_2_naming_the_key_and_the_fix() {
    let sb = Sandbox::new();
    let cases = [
        ("fgsm: [0.1]", "fgsm: [0]", "evaluate.fgsm[0]", "0 < ε ≤ 1"),
        (
            "fgsm: [0.1]",
            "fgsm: [0.1]\n  rotate: [20]",
            "evaluate",
            "deformations apply to images",
        ),
        (
            "flattening: [1, 4]",
            "flattening: [9]",
            "evaluate.flattening[0]",
            "mix points 0..=7",
        ),
        ("fgsm: [0.1]", "fgsmm: [0.1]", "fgsmm", "unknown field"),
        (
            "steps: 3",
            "steps: 0",
            "evaluate.pgd[0].steps",
            "at least one step",
        ),
    ];
    for (i, (from, to, key, problem)) in cases.iter().enumerate() {
        let name = format!("bad{i}.yaml");
        let file = sb.write(&name, &EVALUATED.replace(from, to));
        let out = sb.run(&["sweep", file.to_str().unwrap()]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{to}: {msg}");
        assert!(
            msg.contains(key) && msg.contains(problem) && msg.contains(&name),
            "{to}: {msg}"
        );
        assert!(
            !sb.store().join("evaluated").exists(),
            "nothing is written for bad input"
        );
    }
    // A bad override of `mixsweep eval`.
    let file = sb.write("ok.yaml", EVALUATED);
    let out = sb.run(&["eval", file.to_str().unwrap(), "-o", "examples=-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("examples"), "{}", text(&out));
}
