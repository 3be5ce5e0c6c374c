//! Planning: seeds × grid points, each merged onto `base` with the `-o` overrides, checked
//! against `exclude:`, resolved into a validated `RunSpec` and de-duplicated. Points are
//! expanded one at a time (the grid was counted and bounded before), so memory grows with
//! the runs kept, not with the grid.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::error::Issue;
use super::evaluate::EvalSettings;
use super::exclude::{Entry, KeyCheck};
use super::grid::Grid;
use super::node::{Node, Origin, Step, Value, parse_path, path_to_string};
use super::{Override, RunSpec, resolve};

/// What planning needs from the experiment file.
pub struct Inputs<'a> {
    pub root: &'a Node,
    pub base: &'a Node,
    pub grid: &'a Grid,
    pub seeds: &'a [u64],
    pub overrides: &'a [&'a Override],
    pub exclude: &'a [Entry],
    pub evaluate: &'a EvalSettings,
    /// The experiment file, for warnings.
    pub file: &'a str,
}

/// The planned runs, in plan order.
pub struct Planned {
    pub runs: Vec<RunSpec>,
    /// Grid points that resolved to a spec already planned (dropped).
    pub duplicates: usize,
    pub warnings: Vec<String>,
}

/// Plans every run, or says everything that is wrong.
pub fn plan(inputs: &Inputs) -> Result<Planned, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut runs = Vec::new();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut excluded = vec![0usize; inputs.exclude.len()];
    let mut keys = KeyCheck::new(inputs.exclude);
    let mut last_block = None;
    let mut hashed = FileHashes::default();
    for &seed in inputs.seeds {
        for point in inputs.grid.points() {
            let context = format!("grid[{}], seed {seed}", point.block);
            let tree = merge(inputs, &point.assignments, seed, &context, &mut issues);
            let first_of_block = last_block != Some(point.block);
            last_block = Some(point.block);
            keys.see(inputs.exclude, &tree, first_of_block, |t| {
                resolve(t).map(|_| ())
            });
            if let Some(e) = inputs.exclude.iter().position(|ex| ex.matches(&tree)) {
                excluded[e] += 1;
                continue;
            }
            match resolve(&tree).and_then(|spec| hashed.runner_files(spec)) {
                Ok(spec) => {
                    for issue in inputs.evaluate.check_run(&spec) {
                        let origin = inputs.root.locate(&parse_path(&issue.key));
                        push_new(&mut issues, issue.at(origin).in_context(&context));
                    }
                    match spec.canonical_json() {
                        Ok(json) => {
                            if seen.insert(json) {
                                runs.push(spec);
                            } else {
                                duplicates += 1;
                            }
                        }
                        Err(e) => push_new(
                            &mut issues,
                            Issue::new(
                                "(run)",
                                "",
                                format!("the resolved spec cannot be written as JSON: {e}"),
                                "report this as a bug",
                            )
                            .in_context(&context),
                        ),
                    }
                }
                Err(found) => {
                    for mut issue in found {
                        if issue.origin == Origin::Implied || issue.origin == inputs.base.origin {
                            issue.origin = point.origin.clone();
                        }
                        push_new(&mut issues, issue.in_context(&context));
                    }
                }
            }
        }
    }
    issues.extend(keys.unknown(inputs.exclude));
    if issues.is_empty() && runs.is_empty() {
        issues.push(Issue::new(
            "exclude",
            "",
            "every planned run is excluded: the experiment has no runs",
            "remove or narrow the exclude entries",
        ));
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    let warnings = inputs
        .exclude
        .iter()
        .zip(&excluded)
        .filter(|(_, hits)| **hits == 0)
        .map(|(ex, _)| {
            format!(
                "{}: exclude entry {} matches no run",
                inputs.file,
                ex.show()
            )
        })
        .collect();
    Ok(Planned {
        runs,
        duplicates,
        warnings,
    })
}

/// `base` + the point's values + the seed + the `-o` overrides.
fn merge(
    inputs: &Inputs,
    assignments: &[(Vec<Step>, Node)],
    seed: u64,
    context: &str,
    issues: &mut Vec<Issue>,
) -> Node {
    let mut tree = inputs.base.clone();
    for (path, value) in assignments {
        if let Err(problem) = tree.set(path, value.clone()) {
            push_new(
                issues,
                Issue::new(
                    path_to_string(path),
                    value.show(),
                    problem,
                    "a dotted key into a mapping of base",
                )
                .at(value.origin.clone())
                .in_context(context),
            );
        }
    }
    let seed_node = Node::new(Value::Int(seed as i64), Origin::Implied);
    // `base` is a mapping (checked before planning), so a top-level key can always be set.
    let _ = tree.set(&[Step::Key("seed".into())], seed_node);
    for o in inputs.overrides {
        if let Err(problem) = tree.set(&o.path, o.value.clone()) {
            push_new(
                issues,
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
    tree
}

/// Adds an issue unless the same one (key, problem, value) is already there: one bad value in
/// `base` is reported once, not once per run.
fn push_new(issues: &mut Vec<Issue>, issue: Issue) {
    if !issues
        .iter()
        .any(|i| i.key == issue.key && i.problem == issue.problem && i.value == issue.value)
    {
        issues.push(issue);
    }
}

/// The SHA-256 of the files external runners name, read once per plan.
#[derive(Default)]
struct FileHashes(HashMap<(String, Vec<String>), BTreeMap<String, String>>);

impl FileHashes {
    /// `spec` with its runner's `files` filled in (part of the run's identity).
    fn runner_files(&mut self, mut spec: RunSpec) -> Result<RunSpec, Vec<Issue>> {
        let Some(ext) = &mut spec.runner else {
            return Ok(spec);
        };
        let key = (ext.cwd.clone(), ext.command.clone());
        let files = match self.0.get(&key) {
            Some(f) => f.clone(),
            None => {
                let f = super::runner::file_hashes(ext).map_err(|e| {
                    vec![Issue::new(
                        "runner.command",
                        ext.command.join(" "),
                        format!("a file the command names cannot be read: {e}"),
                        "make it readable, or fix the path",
                    )]
                })?;
                self.0.insert(key, f.clone());
                f
            }
        };
        ext.files = files;
        Ok(spec)
    }
}
