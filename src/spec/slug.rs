//! Readable run names. A run's slug names its method, the values of the keys that vary across
//! its experiment, and its seed — `erm-wd1e-4-s0`, `manifold_mixup-a2-L012-s1` — so that runs
//! can be told apart in progress lines, `plan` and `status` without opening spec.yaml. The slug
//! is only a name: a run's identity is the hash of its spec (`store::run_id`).

use std::collections::HashSet;

use serde_json::Value;

use super::types::RunSpec;

/// Short names of common keys (the last part of the dotted key otherwise).
const SHORT: [(&str, &str); 14] = [
    ("alpha", "a"),
    ("layers", "L"),
    ("cutout", "c"),
    ("train.weight_decay", "wd"),
    ("train.lr", "lr"),
    ("train.epochs", "e"),
    ("train.batch_size", "bs"),
    ("train.input_noise", "noise"),
    ("model.dropout", "drop"),
    ("model.batch_norm", "bn"),
    ("model.width", "w"),
    ("model.depth", "d"),
    ("data.train_subset", "n"),
    ("data.val_split", "val"),
];

/// Keys whose value alone names them (`preact_resnet`, `adam`).
const BY_VALUE: [&str; 6] = [
    "model.name",
    "data.name",
    "train.optimizer",
    "train.loss",
    "train.schedule",
    "model.activation",
];

/// The longest slug, in characters (a directory name must stay well under 255 bytes).
const MAX_LEN: usize = 96;

/// One slug per run, in order: the method, then `key value` tokens for every key (other than
/// the method and the seed) whose value differs between runs, in key order, then the seed.
/// Each spec is compared with the first without being kept, so naming 100,000 runs holds one
/// spec's JSON at a time.
pub fn slugs(runs: &[RunSpec]) -> Vec<String> {
    let Some(first) = runs.first().and_then(|r| serde_json::to_value(r).ok()) else {
        return runs.iter().map(|r| name(r, &Value::Null, &[])).collect();
    };
    let mut varies = HashSet::new();
    for run in &runs[1..] {
        // A spec that cannot be written as JSON has already failed planning (its run id);
        // here it simply names nothing.
        if let Ok(v) = serde_json::to_value(run) {
            differences("", &first, &v, &mut varies);
        }
    }
    // An external runner's keys (command, cwd, env, files) name it as one token.
    let varies: HashSet<String> = varies
        .into_iter()
        .map(|k| {
            if k.starts_with("runner.") {
                "runner".into()
            } else {
                k
            }
        })
        .collect();
    let varying = ordered(
        varies
            .iter()
            .map(String::as_str)
            .filter(|k| !matches!(*k, "method" | "seed"))
            .collect(),
    );
    runs.iter()
        .map(|run| {
            let v = serde_json::to_value(run).unwrap_or(Value::Null);
            name(run, &v, &varying)
        })
        .collect()
}

/// `method-<tokens>-s<seed>` for one run, `spec` its JSON.
fn name(run: &RunSpec, spec: &Value, varying: &[&str]) -> String {
    let mut slug = run.method.name().to_string();
    for key in varying {
        if *key == "runner" {
            if let Some(ext) = &run.runner {
                slug.push_str("-by-");
                slug.push_str(&runner_name(ext));
            }
            continue;
        }
        let value = match (*key, &run.layers) {
            ("layers", Some(layers)) => Some(layers.compact()),
            _ => key.split('.').try_fold(spec, |v, k| v.get(k)).map(render),
        };
        if let Some(value) = value {
            slug.push('-');
            slug.push_str(&token(key, &value));
        }
    }
    let seed = format!("-s{}", run.seed);
    let mut slug = sanitise(&slug);
    if slug.len() + seed.len() > MAX_LEN {
        slug.truncate(MAX_LEN - seed.len());
    }
    slug + &seed
}

/// Adds to `out` the dotted key of every leaf where `a` and `b` differ or that only one has.
fn differences(prefix: &str, a: &Value, b: &Value, out: &mut HashSet<String>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => differences(&key(k), va, vb, out),
                    None => leaves(&key(k), va, out),
                }
            }
            for (k, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                leaves(&key(k), vb, out);
            }
        }
        _ if a != b => {
            out.insert(prefix.to_string());
        }
        _ => {}
    }
}

/// Adds the dotted key of every leaf of `v`.
fn leaves(prefix: &str, v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                leaves(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// An external program's short name: the stem of the first argument that names a file with an
/// extension (`examples/torch/train.py` → `train`), else the program (`python3`).
fn runner_name(ext: &super::runner::External) -> String {
    ext.command
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.extension().is_some())
        .or_else(|| ext.command.first().map(std::path::Path::new))
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into())
}

/// The runner, then α, S and Cutout (the paper's own knobs), then every other key
/// alphabetically.
fn ordered(mut keys: Vec<&str>) -> Vec<&str> {
    let rank = |k: &str| {
        ["runner", "alpha", "layers", "cutout"]
            .iter()
            .position(|&f| f == k)
    };
    keys.sort_by_key(|k| (rank(k).unwrap_or(usize::MAX), k.to_string()));
    keys
}

/// One key's token: `a2`, `L012`, `wd1e-4`, `preact_resnet`, `bn` / `nobn`.
fn token(key: &str, value: &str) -> String {
    if BY_VALUE.contains(&key) {
        return value.to_string();
    }
    let short = SHORT
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| key.rsplit('.').next().unwrap_or(key).replace('_', ""));
    match value {
        "true" => short,
        "false" => format!("no{short}"),
        _ => format!("{short}{value}"),
    }
}

/// A value as a run name writes it.
fn render(value: &Value) -> String {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => number(x),
            _ => n.to_string(),
        },
        Value::Array(items) => items.iter().map(render).collect::<Vec<_>>().join("_"),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "none".into(),
        Value::Object(_) => value.to_string(),
    }
}

/// `0.0001` → `1e-4`, `2.0` → `2`, `0.1` → `0.1`.
fn number(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Letters, digits, `.`, `_` and `-` only: a slug is part of a directory name.
fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_short() {
        assert_eq!(number(1e-4), "1e-4");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(0.0), "0");
    }

    #[test]
    fn tokens_name_their_key() {
        assert_eq!(token("train.weight_decay", "1e-4"), "wd1e-4");
        assert_eq!(token("model.batch_norm", "true"), "bn");
        assert_eq!(token("model.batch_norm", "false"), "nobn");
        assert_eq!(token("model.name", "preact_resnet"), "preact_resnet");
        assert_eq!(token("data.noise", "0.02"), "noise0.02");
        assert_eq!(token("train.momentum", "0.9"), "momentum0.9");
    }
}
