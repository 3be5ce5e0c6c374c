//! `runner:` of a run: what trains it. Absent (or `runner: mixsweep`), our own trainer; else
//! any program, given as a command whose arguments may hold placeholders of the resolved
//! spec (`{alpha}`, `{layers}`, `{train.lr}`, `{seed}`):
//!
//! ```yaml
//! runner: { command: [python3, examples/torch/train.py, --alpha, "{alpha}"], cwd: ., env: { A: b } }
//! ```
//!
//! A run's identity includes its runner: the command, and the SHA-256 of every file the
//! command names (an argument that is a path to an existing file, from `cwd`), recorded when
//! the run is planned. Editing the script therefore makes new runs, and `exec` refuses a run
//! whose files changed after it was planned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::Issue;

/// An external training program (the protocol is in the README: environment variables in,
/// one JSON line per evaluated epoch out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct External {
    /// The program and its arguments; `{key}` is replaced by that key of the resolved spec.
    pub command: Vec<String>,
    /// Where the program starts, relative to where mixsweep runs (default: there).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cwd: String,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// SHA-256 of each file the command names, by the argument as written; filled in when the
    /// run is planned (part of the run's identity).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

/// `runner:` as written: the name `mixsweep` or a program.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RunnerRaw {
    Name(String),
    Program(External),
}

/// The raw runner to the spec's: `None` for our trainer.
pub fn validate(raw: Option<&RunnerRaw>, issues: &mut Vec<Issue>) -> Option<External> {
    match raw {
        None => None,
        Some(RunnerRaw::Name(n)) if n == "mixsweep" => None,
        Some(RunnerRaw::Name(n)) => {
            issues.push(Issue::new(
                "runner",
                n.clone(),
                "unknown runner",
                "`mixsweep` (our trainer) or { command: [program, args…], cwd: …, env: {…} }",
            ));
            None
        }
        Some(RunnerRaw::Program(p)) => {
            if p.command.is_empty() || p.command[0].trim().is_empty() {
                issues.push(Issue::new(
                    "runner.command",
                    format!("{:?}", p.command),
                    "the command is empty",
                    "[program, arguments…], e.g. [python3, train.py, --alpha, \"{alpha}\"]",
                ));
            }
            Some(p.clone())
        }
    }
}

/// Every key of a spec's JSON (without the runner), dotted, with its value as a program
/// argument: strings as they are, numbers and booleans as JSON writes them, lists and maps as
/// compact JSON (`[0,1,2]`).
pub fn values(spec_json: &serde_json::Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        if !prefix.is_empty() {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(prefix.to_string(), text);
        }
        if let serde_json::Value::Object(map) = v {
            for (k, child) in map {
                if prefix.is_empty() && k == "runner" {
                    continue;
                }
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, child, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", spec_json, &mut out);
    out
}

/// `arg` with each `{key}` replaced from `values`; the first unknown key is the error.
pub fn substitute(arg: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open + 1..].find('}') else {
            break;
        };
        let key = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..open]);
        match values.get(key) {
            Some(v) => out.push_str(v),
            None => return Err(key.to_string()),
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Placeholders of the command that name no key of the spec.
pub fn check_placeholders(ext: &External, spec_json: &serde_json::Value) -> Vec<Issue> {
    let values = values(spec_json);
    ext.command
        .iter()
        .filter_map(|arg| substitute(arg, &values).err().map(|key| (arg, key)))
        .map(|(arg, key)| {
            let near: Vec<&String> = values
                .keys()
                .filter(|k| k.ends_with(&key) || key.ends_with(k.as_str()))
                .take(3)
                .collect();
            Issue::new(
                "runner.command",
                arg.clone(),
                format!("placeholder {{{key}}} names no key of the run's spec"),
                if near.is_empty() {
                    "a key of the resolved spec, e.g. {alpha}, {layers}, {seed}, {train.lr}, {data.name} (`mixsweep plan --json` shows them)".to_string()
                } else {
                    format!("did you mean {}?", near.iter().map(|k| format!("{{{k}}}")).collect::<Vec<_>>().join(" or "))
                },
            )
        })
        .collect()
}

/// The directory the program starts in.
pub fn workdir(ext: &External) -> PathBuf {
    if ext.cwd.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(&ext.cwd)
    }
}

/// SHA-256 (hex) of each argument of the command that names an existing file from `cwd`
/// (placeholders are not files).
pub fn file_hashes(ext: &External) -> std::io::Result<BTreeMap<String, String>> {
    let dir = workdir(ext);
    let mut out = BTreeMap::new();
    for arg in &ext.command {
        if arg.contains('{') || arg.starts_with('-') {
            continue;
        }
        let path = dir.join(arg);
        if is_file(&path) {
            let bytes = std::fs::read(&path)?;
            let hex: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            out.insert(arg.clone(), hex);
        }
    }
    Ok(out)
}

fn is_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_take_any_key_of_the_spec() {
        let json = serde_json::json!({
            "method": "manifold_mixup", "alpha": 2.0, "layers": [0, 1, 2], "seed": 3,
            "train": { "lr": 0.1 }, "runner": { "command": ["x"] }
        });
        let v = values(&json);
        assert_eq!(
            substitute("--a={alpha} --s {layers} {train.lr}/{seed}", &v).unwrap(),
            "--a=2.0 --s [0,1,2] 0.1/3"
        );
        assert_eq!(substitute("{method}", &v).unwrap(), "manifold_mixup");
        assert_eq!(
            substitute("{train.momentum}", &v),
            Err("train.momentum".into())
        );
        // The runner's own keys are not placeholders.
        assert!(!v.contains_key("runner.command"));
        let ext = External {
            command: vec!["p".into(), "{aplha}".into(), "{lr}".into()],
            cwd: String::new(),
            env: BTreeMap::new(),
            files: BTreeMap::new(),
        };
        let issues = check_placeholders(&ext, &json);
        assert_eq!(issues.len(), 2);
        assert!(
            issues[1].to_string().contains("{train.lr}"),
            "{}",
            issues[1]
        );
    }

    #[test]
    fn files_the_command_names_are_hashed() {
        let dir = std::env::temp_dir().join(format!("mixsweep-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("train.py"), "print(1)\n").unwrap();
        let ext = External {
            command: vec![
                "python3".into(),
                "train.py".into(),
                "--lr".into(),
                "{train.lr}".into(),
            ],
            cwd: dir.display().to_string(),
            env: BTreeMap::new(),
            files: BTreeMap::new(),
        };
        let h = file_hashes(&ext).unwrap();
        // sha256sum of "print(1)\n".
        assert_eq!(
            h.get("train.py").map(String::as_str),
            Some("cc42155088fca5730758db72b2a5bca33112a941dfaa2d43098ec422ce4ea213")
        );
        assert_eq!(h.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
