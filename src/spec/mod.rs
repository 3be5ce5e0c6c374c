//! Experiment files: YAML → located tree → grid points → merged run trees → raw structs
//! (unknown keys rejected) → validated `RunSpec`s. Nothing here runs or writes anything.

pub mod cost;
pub mod error;
pub mod evaluate;
pub mod exclude;
pub mod grid;
pub mod node;
pub mod plan;
pub mod raw;
pub mod runner;
pub mod slug;
pub mod types;
pub mod validate;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use error::{Issue, SpecError};
use node::{Node, Origin, Step, Value, parse_path, path_to_string};
pub use types::RunSpec;

/// The keys an experiment file may have at its top level.
const TOP_LEVEL_KEYS: [&str; 11] = [
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
    "max_runs",
];

/// The most runs a plan may have unless the file's `max_runs:` says otherwise.
pub const DEFAULT_MAX_RUNS: u64 = 100_000;

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
    /// Each run's readable name (`spec::slug`), in the order of `runs`.
    pub slugs: Vec<String>,
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
    let mut issues = Vec::new();
    let Some(mut head) = header(&root, &mut issues) else {
        return Err(invalid(issues));
    };
    let run_overrides = head.apply(overrides, &mut issues);
    let get = |k: &str| root.get(&[Step::Key(k.to_string())]);
    let seeds = seeds(head.seeds.as_ref(), &root, &mut issues);
    let max_runs = max_runs(head.max_runs.as_ref(), &mut issues);
    let exclude = exclude::entries(get("exclude"), &mut issues);
    let grid = grid::expand(get("grid"), &head.zip).map_err(|mut e| issues.append(&mut e));
    let (Ok(grid), true) = (grid, issues.is_empty()) else {
        return Err(invalid(issues));
    };
    let planned_points = grid.count().saturating_mul(seeds.len() as u128);
    if planned_points > max_runs as u128 {
        return Err(invalid(vec![too_large(
            &grid,
            seeds.len(),
            planned_points,
            max_runs,
            &head,
        )]));
    }
    let planned = plan::plan(&plan::Inputs {
        root: &root,
        base: &head.base,
        grid: &grid,
        seeds: &seeds,
        overrides: &run_overrides,
        exclude: &exclude,
        evaluate: &head.evaluate,
        file: &file,
    })
    .map_err(&invalid)?;
    Ok(Experiment {
        name: head.name,
        file: path.to_path_buf(),
        description: head.description,
        device: head.device,
        slugs: slug::slugs(&planned.runs),
        runs: planned.runs,
        seeds,
        evaluate: head.evaluate,
        report: head.report,
        duplicates: planned.duplicates,
        warnings: planned.warnings,
    })
}

/// The grid is too large to plan: say how large, what makes it so, and the limit.
fn too_large(grid: &grid::Grid, seeds: usize, count: u128, max_runs: u64, head: &Header) -> Issue {
    let origin = head
        .max_runs
        .as_ref()
        .map(|n| n.origin.clone())
        .unwrap_or(Origin::Implied);
    Issue::new(
        "grid",
        format!("{count} runs"),
        format!(
            "too many runs to plan: {seeds} seeds × {} grid points ({}) is more than max_runs = {max_runs}",
            grid.count(),
            grid.describe().join("; ")
        ),
        format!("fewer candidates, blocks or seeds; or raise the limit with `max_runs: {count}` at the top of the file (or `-o max_runs={count}`) if you mean it"),
    )
    .at(origin)
}

/// The top-level keys of an experiment file other than the grid, seeds and exclude.
struct Header {
    name: String,
    description: Option<String>,
    device: Option<types::DeviceChoice>,
    base: Node,
    zip: Vec<Vec<String>>,
    report: ReportSpec,
    evaluate: evaluate::EvalSettings,
    seeds: Option<Node>,
    max_runs: Option<Node>,
}

impl Header {
    /// Takes `-o seeds=…` and `-o max_runs=…` into the header; returns the overrides of run keys.
    fn apply<'o>(
        &mut self,
        overrides: &'o [Override],
        issues: &mut Vec<Issue>,
    ) -> Vec<&'o Override> {
        let mut run_overrides = Vec::new();
        for o in overrides {
            match o.path.as_slice() {
                [Step::Key(k)] if k == "seeds" => self.seeds = Some(o.value.clone()),
                [Step::Key(k)] if k == "max_runs" => self.max_runs = Some(o.value.clone()),
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
                        "only run keys, `seeds` and `max_runs` can be overridden",
                        "-o train.epochs=5, -o alpha=2, -o seeds=[0,1]",
                    )
                    .at(o.value.origin.clone()),
                ),
                _ => run_overrides.push(o),
            }
        }
        run_overrides
    }
}

/// Reads the header; `None` when the file is not even a mapping.
fn header(root: &Node, issues: &mut Vec<Issue>) -> Option<Header> {
    let Value::Map(entries) = &root.value else {
        issues.push(
            Issue::new(
                "(top level)",
                root.show(),
                "an experiment file is a mapping",
                "keys name, base, seeds, grid, zip, exclude, report",
            )
            .at(root.origin.clone()),
        );
        return None;
    };
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
    let name = name(root, issues);
    let description = match get("description").map(|n| &n.value) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let device = device(get("device"), issues);
    let seeds = get("seeds").cloned();
    let max_runs = get("max_runs").cloned();
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
    let zip: Vec<Vec<String>> = typed(get("zip"), "zip", root, issues).unwrap_or_default();
    let report: ReportSpec = typed(get("report"), "report", root, issues).unwrap_or_default();
    let evaluate: evaluate::EvalSettings =
        typed(get("evaluate"), "evaluate", root, issues).unwrap_or_default();
    for issue in evaluate.check() {
        let origin = root.locate(&parse_path(&issue.key));
        issues.push(issue.at(origin));
    }
    Some(Header {
        name,
        description,
        device,
        base,
        zip,
        report,
        evaluate,
        seeds,
        max_runs,
    })
}

/// `name:`, which names the run store's and the report's directories.
fn name(root: &Node, issues: &mut Vec<Issue>) -> String {
    let node = root.get(&parse_path("name"));
    match node.map(|n| &n.value) {
        Some(Value::Str(s)) if valid_name(s) => s.clone(),
        _ => {
            issues.push(
                Issue::new(
                    "name",
                    node.map(Node::show).unwrap_or_default(),
                    "every experiment needs a name that can be a directory name",
                    "letters, digits, '-', '_' and '.', e.g. name: spirals",
                )
                .at(root.locate(&parse_path("name"))),
            );
            String::new()
        }
    }
}

/// `device:`, where runs compute unless the command line says otherwise.
fn device(node: Option<&Node>, issues: &mut Vec<Issue>) -> Option<types::DeviceChoice> {
    let node = node?;
    let problem = match &node.value {
        Value::Str(s) => match s.parse::<types::DeviceChoice>() {
            Ok(d) => return Some(d),
            Err(problem) => Issue::new(
                "device",
                s.clone(),
                problem,
                "cpu, cuda:N, vulkan:N or wgpu:N",
            ),
        },
        _ => Issue::new(
            "device",
            node.show(),
            "a device is a name",
            "device: cuda:0",
        ),
    };
    issues.push(problem.at(node.origin.clone()));
    None
}

/// `max_runs:` — the most runs a plan may have (default 100,000), so that a typo such as three
/// axes of 1,000 values is refused at once instead of exhausting the machine's memory.
fn max_runs(node: Option<&Node>, issues: &mut Vec<Issue>) -> u64 {
    match node.map(|n| (&n.value, n)) {
        None => DEFAULT_MAX_RUNS,
        Some((Value::Int(n), _)) if *n >= 1 => *n as u64,
        Some((_, n)) => {
            issues.push(
                Issue::new(
                    "max_runs",
                    n.show(),
                    "the most runs a plan may have: a whole number ≥ 1",
                    format!("e.g. max_runs: 200000 (default {DEFAULT_MAX_RUNS})"),
                )
                .at(n.origin.clone()),
            );
            DEFAULT_MAX_RUNS
        }
    }
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
    pub fn canonical_json(&self) -> Result<String, serde_json::Error> {
        // serde_json's map is ordered by key (no `preserve_order` feature), so going through a
        // `Value` sorts every level.
        serde_json::to_value(self).map(|v| v.to_string())
    }

    /// Reads a resolved spec back (spec.yaml in a run directory) with the same checks.
    pub fn from_yaml(text: &str, file: &str) -> Result<RunSpec, SpecError> {
        let tree = Node::parse(text).map_err(|e| SpecError::from_yaml(file, &e))?;
        resolve(&tree).map_err(|issues| SpecError::Invalid {
            file: file.to_string(),
            issues,
        })
    }

    /// The spec as YAML (spec.yaml of a run directory).
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        serde_saphyr::to_string(self)
    }
}
