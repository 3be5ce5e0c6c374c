//! `exclude:` — partial grid points to drop. Each entry is a mapping of dotted run keys to
//! values; a run is dropped when every key of an entry has that value in its tree. Keys are
//! checked as strictly as grid keys: a key no run spec has (a typo such as `methd`) is an
//! error, since it would silently exclude nothing. An entry that matches no run is a warning.

use super::error::Issue;
use super::node::{Node, Step, Value, parse_path, path_to_string};

/// One entry: its index in the file, and its (key, value) pairs.
#[derive(Debug, Clone)]
pub struct Entry {
    pub index: usize,
    pub pairs: Vec<(Vec<Step>, Node)>,
}

impl Entry {
    /// Whether the run tree has every value of the entry.
    pub fn matches(&self, tree: &Node) -> bool {
        self.pairs
            .iter()
            .all(|(path, value)| tree.get(path).is_some_and(|v| v.same_value(value)))
    }

    /// `{method: erm, alpha: 2.0}`.
    pub fn show(&self) -> String {
        let parts: Vec<String> = self
            .pairs
            .iter()
            .map(|(k, v)| format!("{}: {}", path_to_string(k), v.show()))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

/// Reads `exclude:` (a list of non-empty mappings).
pub fn entries(node: Option<&Node>, issues: &mut Vec<Issue>) -> Vec<Entry> {
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
    for (index, item) in items.iter().enumerate() {
        match &item.value {
            Value::Map(pairs) if !pairs.is_empty() => out.push(Entry {
                index,
                pairs: pairs
                    .iter()
                    .map(|(k, v)| (parse_path(&k.name), v.clone()))
                    .collect(),
            }),
            _ => issues.push(
                Issue::new(
                    format!("exclude[{index}]"),
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

/// Which exclude keys are known to be run keys: a key is known once some planned run tree
/// has it, or once setting it in such a tree leaves no "unknown field" at it.
pub struct KeyCheck {
    /// (entry, pair) → known yet.
    known: Vec<Vec<bool>>,
}

impl KeyCheck {
    pub fn new(entries: &[Entry]) -> KeyCheck {
        KeyCheck {
            known: entries.iter().map(|e| vec![false; e.pairs.len()]).collect(),
        }
    }

    /// Looks at one run tree: cheaply (is the key in it?) always, and with `resolve` (does
    /// the key exist in the schema?) when `probe` is set — the first tree of each block.
    pub fn see(
        &mut self,
        entries: &[Entry],
        tree: &Node,
        probe: bool,
        resolve: impl Fn(&Node) -> Result<(), Vec<Issue>>,
    ) {
        for (e, entry) in entries.iter().enumerate() {
            for (p, (path, value)) in entry.pairs.iter().enumerate() {
                if self.known[e][p] {
                    continue;
                }
                if tree.get(path).is_some() {
                    self.known[e][p] = true;
                } else if probe {
                    let mut probe_tree = tree.clone();
                    let key = path_to_string(path);
                    let unknown = match probe_tree.set(path, value.clone()) {
                        Err(_) => true,
                        Ok(()) => resolve(&probe_tree).err().is_some_and(|issues| {
                            issues
                                .iter()
                                .any(|i| i.key == key && i.problem.starts_with("unknown field"))
                        }),
                    };
                    self.known[e][p] = !unknown;
                }
            }
        }
    }

    /// An issue for each key no tree confirmed.
    pub fn unknown(&self, entries: &[Entry]) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (e, entry) in entries.iter().enumerate() {
            for (p, (path, value)) in entry.pairs.iter().enumerate() {
                if !self.known[e][p] {
                    issues.push(
                        Issue::new(
                            format!("exclude[{}].{}", entry.index, path_to_string(path)),
                            value.show(),
                            "no run has this key, so the entry would exclude nothing",
                            "a run key as written in base or the grid (method, alpha, layers, train.lr, model.width, ...)",
                        )
                        .at(value.origin.clone()),
                    );
                }
            }
        }
        issues
    }
}
