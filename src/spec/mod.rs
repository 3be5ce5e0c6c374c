//! Experiment files: YAML → located tree → grid points → merged run trees → raw structs
//! (unknown keys rejected) → validated `RunSpec`s. Nothing here runs or writes anything.

pub mod error;
pub mod evaluate;
pub mod grid;
pub mod node;
pub mod raw;
pub mod types;
pub mod validate;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use error::{Issue, SpecError};
use node::{Node, Origin, Step, Value, parse_path, path_to_string};
pub use types::RunSpec;

/// The keys an experiment file may have at its top level.
const TOP_LEVEL_KEYS: [&str; 10] = [
    "name",
    "description",
    "device",
    "base",
    "seeds",
    "grid",
    "zip",
    "exclude",
    "evaluate",
    "report",
];

/// A loaded, fully validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    /// Where runs compute unless `--device` says otherwise (not part of any run's identity).
    pub device: Option<types::DeviceChoice>,
    /// Every run, in plan order, without duplicates.
    pub runs: Vec<RunSpec>,
    /// Seeds as listed (for "n = 2/5" in reports).
    pub seeds: Vec<u64>,
    /// What is measured on each trained model (not part of any run's identity).
    pub evaluate: evaluate::EvalSettings,
    pub report: ReportSpec,
    /// Grid points that resolved to a spec already planned (dropped).
    pub duplicates: usize,
    /// Non-fatal remarks, e.g. an exclude entry that matched nothing.
    pub warnings: Vec<String>,
}

/// `report:` in the experiment file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    #[serde(default)]
    pub tables: Vec<TableSpec>,
}

/// One table of the report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub title: String,
    /// Spec keys that label rows (dotted: `model.width`); by default every key that varies.
    #[serde(default)]
    pub rows: Vec<String>,
    /// Spec keys whose values become columns (a pivot, e.g. `layers` rows × `alpha`
    /// columns for the ablations); the table then shows its one metric in each cell.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Metrics of result.json to show; by default test error and NLL.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    /// Which epoch's model each run contributes.
    #[serde(default)]
    pub selection: Selection,
}

/// The model selection rule of a report table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The model after the last epoch: no selection.
    #[default]
    Final,
    /// The epoch with the lowest error on the held-out validation split (`data.val_split`).
    BestOnValidation,
    /// The epoch with the lowest test error: what the paper reported; optimistic.
    BestOnTest,
}

impl Selection {
    /// The sentence under a table.
    pub fn describe(self) -> &'static str {
        match self {
            Selection::Final => "final epoch (no model selection on the test set)",
            Selection::BestOnValidation => {
                "the epoch with the lowest validation error (held-out training examples)"
            }
            Selection::BestOnTest => {
                "the epoch with the lowest TEST error, as the paper reported — optimistic, not a held-out estimate"
            }
        }
    }
}

fn default_metrics() -> Vec<String> {
    vec!["test_error".to_string(), "test_nll".to_string()]
}

/// A `-o key=value` override from the command line.
#[derive(Debug, Clone)]
pub struct Override {
    pub arg: String,
    pub path: Vec<Step>,
    pub value: Node,
}

impl Override {
    /// Parses `train.epochs=5` or `layers=[0, 1]`; the value is read as YAML.
    pub fn parse(arg: &str) -> Result<Override, SpecError> {
        let bad = |problem: &str| {
            SpecError::invalid(
                "command line",
                Issue::new(
                    arg,
                    "",
                    problem,
                    "-o key=value, e.g. -o train.epochs=5 or -o seeds=[0,1]",
                )
                .at(Origin::CommandLine(arg.to_string())),
            )
        };
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| bad("no `=` in the override"))?;
        if key.trim().is_empty() {
            return Err(bad("the key is empty"));
        }
        let mut node =
            Node::parse(value).map_err(|e| bad(&format!("the value is not YAML: {e}")))?;
        let origin = Origin::CommandLine(arg.to_string());
        set_origin(&mut node, &origin);
        Ok(Override {
            arg: arg.to_string(),
            path: parse_path(key.trim()),
            value: node,
        })
    }
}

fn set_origin(node: &mut Node, origin: &Origin) {
    node.origin = origin.clone();
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| set_origin(n, origin)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, n)| {
            k.origin = origin.clone();
            set_origin(n, origin)
        }),
        _ => {}
    }
}

/// Reads, expands and validates an experiment file.
pub fn load(path: &Path, overrides: &[Override]) -> Result<Experiment, SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&text, path, overrides)
}

/// Like `load`, from text already read (`path` names it in messages).
pub fn parse(text: &str, path: &Path, overrides: &[Override]) -> Result<Experiment, SpecError> {
    let file = path.display().to_string();
    let invalid = |issues: Vec<Issue>| SpecError::Invalid {
        file: file.clone(),
        issues,
    };
    let root = Node::parse(text).map_err(|e| SpecError::from_yaml(&file, &e))?;
    let Value::Map(entries) = &root.value else {
        return Err(invalid(vec![
            Issue::new(
                "(top level)",
                root.show(),
                "an experiment file is a mapping",
                "keys name, base, seeds, grid, zip, exclude, report",
            )
            .at(root.origin.clone()),
        ]));
    };
    let mut issues = Vec::new();
    for (key, _) in entries {
        if !TOP_LEVEL_KEYS.contains(&key.name.as_str()) {
            issues.push(
                Issue::new(
                    key.name.clone(),
                    "",
                    "unknown top-level key",
                    format!("one of {}", TOP_LEVEL_KEYS.join(", ")),
                )
                .at(key.origin.clone()),
            );
        }
    }
    let get = |k: &str| root.get(&[Step::Key(k.to_string())]);
    let name = match get("name").map(|n| &n.value) {
        Some(Value::Str(s)) if valid_name(s) => s.clone(),
        _ => {
            let shown = get("name").map(Node::show).unwrap_or_default();
            issues.push(
                Issue::new(
                    "name",
                    shown,
                    "every experiment needs a name that can be a directory name",
                    "letters, digits, '-', '_' and '.', e.g. name: spirals",
                )
                .at(root.locate(&parse_path("name"))),
            );
            String::new()
        }
    };
    let description = match get("description").map(|n| &n.value) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let device = match get("device") {
        None => None,
        Some(node) => match &node.value {
            Value::Str(s) => match s.parse::<types::DeviceChoice>() {
                Ok(d) => Some(d),
                Err(problem) => {
                    issues.push(
                        Issue::new("device", s.clone(), problem, "cpu, cuda:N or vulkan:N")
                            .at(node.origin.clone()),
                    );
                    None
                }
            },
            _ => {
                issues.push(
                    Issue::new(
                        "device",
                        node.show(),
                        "a device is a name",
                        "device: cuda:0",
                    )
                    .at(node.origin.clone()),
                );
                None
            }
        },
    };
    let mut seeds_node = get("seeds").cloned();
    let base = get("base")
        .cloned()
        .unwrap_or_else(|| Node::new(Value::Map(Vec::new()), Origin::Implied));
    if !matches!(base.value, Value::Map(_)) {
        issues.push(
            Issue::new(
                "base",
                base.show(),
                "base must be a mapping",
                "base: { model: {...}, data: {...}, train: {...} }",
            )
            .at(base.origin.clone()),
        );
    }
    let zip: Vec<Vec<String>> = typed(get("zip"), "zip", &root, &mut issues).unwrap_or_default();
    let report: ReportSpec = typed(get("report"), "report", &root, &mut issues).unwrap_or_default();
    let evaluate: evaluate::EvalSettings =
        typed(get("evaluate"), "evaluate", &root, &mut issues).unwrap_or_default();
    for issue in evaluate.check() {
        let origin = root.locate(&parse_path(&issue.key));
        issues.push(issue.at(origin));
    }
    let mut run_overrides = Vec::new();
    for o in overrides {
        match o.path.as_slice() {
            [Step::Key(k)] if k == "seeds" => seeds_node = Some(o.value.clone()),
            [Step::Key(k), ..] if k == "seed" => issues.push(
                Issue::new(
                    "seed",
                    o.value.show(),
                    "set seeds, not seed",
                    "-o seeds=[0,1,2]",
                )
                .at(o.value.origin.clone()),
            ),
            [Step::Key(k), ..] if TOP_LEVEL_KEYS.contains(&k.as_str()) => issues.push(
                Issue::new(
                    path_to_string(&o.path),
                    o.value.show(),
                    "only run keys and `seeds` can be overridden",
                    "-o train.epochs=5, -o alpha=2, -o seeds=[0,1]",
                )
                .at(o.value.origin.clone()),
            ),
            _ => run_overrides.push(o),
        }
    }
    let seeds = seeds(seeds_node.as_ref(), &root, &mut issues);
    let exclude = excludes(get("exclude"), &mut issues);
    let points = grid::expand(get("grid"), &zip).unwrap_or_else(|mut e| {
        issues.append(&mut e);
        Vec::new()
    });
    if !issues.is_empty() {
        return Err(invalid(issues));
    }

    let mut runs = Vec::new();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut excluded_hits = vec![0usize; exclude.len()];
    for &seed in &seeds {
        for point in &points {
            let mut tree = base.clone();
            let context = format!("grid[{}], seed {seed}", point.block);
            for (path, value) in &point.assignments {
                if let Err(problem) = tree.set(path, value.clone()) {
                    issues.push(
                        Issue::new(
                            path_to_string(path),
                            value.show(),
                            problem,
                            "a dotted key into a mapping of base",
                        )
                        .at(value.origin.clone())
                        .in_context(&context),
                    );
                }
            }
            let seed_node = Node::new(Value::Int(seed as i64), Origin::Implied);
            let _ = tree.set(&[Step::Key("seed".into())], seed_node);
            for o in &run_overrides {
                if let Err(problem) = tree.set(&o.path, o.value.clone()) {
                    issues.push(
                        Issue::new(
                            path_to_string(&o.path),
                            o.value.show(),
                            problem,
                            "a dotted key into the run spec",
                        )
                        .at(o.value.origin.clone()),
                    );
                }
            }
            if let Some(i) = exclude.iter().position(|ex| matches_exclude(&tree, ex)) {
                excluded_hits[i] += 1;
                continue;
            }
            match resolve(&tree) {
                Ok(spec) => {
                    for issue in evaluate.check_run(&spec) {
                        let origin = root.locate(&parse_path(&issue.key));
                        let issue = issue.at(origin).in_context(&context);
                        if !issues
                            .iter()
                            .any(|i: &Issue| i.key == issue.key && i.problem == issue.problem)
                        {
                            issues.push(issue);
                        }
                    }
                    if seen.insert(spec.canonical_json()) {
                        runs.push(spec);
                    } else {
                        duplicates += 1;
                    }
                }
                Err(found) => {
                    for mut issue in found {
                        if issue.origin == Origin::Implied || issue.origin == base.origin {
                            issue.origin = point.origin.clone();
                        }
                        let issue = issue.in_context(&context);
                        if !issues.iter().any(|i: &Issue| {
                            i.key == issue.key
                                && i.problem == issue.problem
                                && i.value == issue.value
                        }) {
                            issues.push(issue);
                        }
                    }
                }
            }
        }
    }
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    let warnings = exclude
        .iter()
        .zip(&excluded_hits)
        .filter(|(_, hits)| **hits == 0)
        .map(|(ex, _)| format!("{file}: exclude entry {} matches no run", show_exclude(ex)))
        .collect();
    Ok(Experiment {
        name,
        file: path.to_path_buf(),
        description,
        device,
        runs,
        seeds,
        evaluate,
        report,
        duplicates,
        warnings,
    })
}

/// A merged run tree to a validated spec; issues carry the origin of the bad value.
pub fn resolve(tree: &Node) -> Result<RunSpec, Vec<Issue>> {
    let raw: raw::RunRaw = match from_tree(tree) {
        Ok(raw) => raw,
        Err((path, message)) => {
            let path = point_at_unknown_field(tree, path, &message);
            let steps = parse_path(&path);
            let value = tree.get(&steps).map(Node::show).unwrap_or_default();
            return Err(vec![
                Issue::new(
                    if path.is_empty() {
                        "(run)".into()
                    } else {
                        path
                    },
                    value,
                    message,
                    "see the README's experiment-file reference",
                )
                .at(tree.locate(&steps)),
            ]);
        }
    };
    validate::validate(&raw).map_err(|issues| {
        issues
            .into_iter()
            .map(|i| {
                let origin = tree.locate(&parse_path(&i.key));
                i.at(origin)
            })
            .collect()
    })
}

/// serde reports an unknown field inside a tagged enum (`model:`, `data:`) at the enum's path;
/// point at the misspelt key itself, so the message shows its line and value.
fn point_at_unknown_field(tree: &Node, path: String, message: &str) -> String {
    let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
    else {
        return path;
    };
    let inner = if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    };
    if !path.ends_with(name) && tree.get(&parse_path(&inner)).is_some() {
        inner
    } else {
        path
    }
}

/// Typed deserialization of a tree; on error, the dotted path and serde's message.
pub fn from_tree<T: DeserializeOwned>(tree: &Node) -> Result<T, (String, String)> {
    let json = tree.to_json();
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })
}

fn typed<T: DeserializeOwned>(
    node: Option<&Node>,
    key: &str,
    root: &Node,
    issues: &mut Vec<Issue>,
) -> Option<T> {
    let node = node?;
    match from_tree(node) {
        Ok(v) => Some(v),
        Err((path, message)) => {
            let full = if path.is_empty() {
                key.to_string()
            } else {
                format!("{key}.{path}")
            };
            issues.push(
                Issue::new(
                    full.clone(),
                    node.get(&parse_path(&path))
                        .map(Node::show)
                        .unwrap_or_default(),
                    message,
                    format!("see the README's reference for `{key}`"),
                )
                .at(root.locate(&parse_path(&full))),
            );
            None
        }
    }
}

fn seeds(node: Option<&Node>, root: &Node, issues: &mut Vec<Issue>) -> Vec<u64> {
    let Some(node) = node else { return vec![0] };
    let fix = "a list of distinct integers ≥ 0, e.g. seeds: [0, 1, 2]";
    let Value::Seq(items) = &node.value else {
        issues.push(
            Issue::new("seeds", node.show(), "seeds must be a list", fix)
                .at(root.locate(&parse_path("seeds"))),
        );
        return Vec::new();
    };
    let mut out: Vec<u64> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.value {
            Value::Int(s) if s >= 0 && !out.contains(&(s as u64)) => out.push(s as u64),
            _ => issues.push(
                Issue::new(
                    format!("seeds[{i}]"),
                    item.show(),
                    "not a new integer ≥ 0",
                    fix,
                )
                .at(item.origin.clone()),
            ),
        }
    }
    if items.is_empty() {
        issues
            .push(Issue::new("seeds", "[]", "no seeds means no runs", fix).at(node.origin.clone()));
    }
    out
}

fn excludes(node: Option<&Node>, issues: &mut Vec<Issue>) -> Vec<Vec<(Vec<Step>, Node)>> {
    let Some(node) = node else { return Vec::new() };
    let fix = "a list of partial points, e.g. exclude: [{ method: manifold_mixup, alpha: 4.0 }]";
    let Value::Seq(items) = &node.value else {
        issues.push(
            Issue::new("exclude", node.show(), "exclude must be a list", fix)
                .at(node.origin.clone()),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match &item.value {
            Value::Map(entries) if !entries.is_empty() => out.push(
                entries
                    .iter()
                    .map(|(k, v)| (parse_path(&k.name), v.clone()))
                    .collect(),
            ),
            _ => issues.push(
                Issue::new(
                    format!("exclude[{i}]"),
                    item.show(),
                    "each entry is a non-empty mapping of key to value",
                    fix,
                )
                .at(item.origin.clone()),
            ),
        }
    }
    out
}

fn matches_exclude(tree: &Node, entry: &[(Vec<Step>, Node)]) -> bool {
    entry
        .iter()
        .all(|(path, value)| tree.get(path).is_some_and(|v| v.same_value(value)))
}

fn show_exclude(entry: &[(Vec<Step>, Node)]) -> String {
    let parts: Vec<String> = entry
        .iter()
        .map(|(k, v)| format!("{}: {}", path_to_string(k), v.show()))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !s.starts_with('.')
}

impl RunSpec {
    /// The canonical text of a spec: JSON with sorted keys and every default filled in, so key
    /// order and formatting in the YAML never change it, and every value that changes results
    /// does.
    pub fn canonical_json(&self) -> String {
        // serde_json's map is ordered by key (no `preserve_order` feature), so going through a
        // `Value` sorts every level.
        serde_json::to_value(self)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }

    /// Reads a resolved spec back (spec.yaml in a run directory) with the same checks.
    pub fn from_yaml(text: &str, file: &str) -> Result<RunSpec, SpecError> {
        let tree = Node::parse(text).map_err(|e| SpecError::from_yaml(file, &e))?;
        resolve(&tree).map_err(|issues| SpecError::Invalid {
            file: file.to_string(),
            issues,
        })
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }
}
