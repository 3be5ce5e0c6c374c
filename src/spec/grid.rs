//! Grid expansion: `base` + one point of a grid block + a seed + `-o` overrides = one run tree.
//!
//! Order (it is the order of plan.jsonl and of `mixsweep plan`): seeds outermost, so that every
//! grid point gets its first seed before any gets its second; then blocks in file order; inside
//! a block, a cartesian product over its keys in written order, the first key varying slowest.
//! Keys named together in a `zip:` group vary together instead of being crossed.

use super::error::Issue;
use super::node::{Node, Origin, Step, Value, parse_path, path_to_string};

/// One grid key of a block (or a zipped group of keys) with its candidates.
struct Axis {
    keys: Vec<Vec<Step>>,
    /// candidates[i][j] is the i-th candidate for keys[j].
    candidates: Vec<Vec<Node>>,
}

/// One point of one block: the values it sets, and where the block is.
#[derive(Debug, Clone)]
pub struct Point {
    pub block: usize,
    /// Where the block is written (for errors about keys it lacks).
    pub origin: Origin,
    pub assignments: Vec<(Vec<Step>, Node)>,
}

/// One block of the grid, its axes unexpanded.
struct Block {
    origin: Origin,
    axes: Vec<Axis>,
}

impl Block {
    /// Points in the block (saturating: a product too large for u128 is u128::MAX).
    fn count(&self) -> u128 {
        self.axes
            .iter()
            .fold(1u128, |n, a| n.saturating_mul(a.candidates.len() as u128))
    }
}

/// The grid's blocks, counted before anything is expanded and expanded one point at a time,
/// so that planning holds only the runs it keeps.
pub struct Grid {
    blocks: Vec<Block>,
}

impl Grid {
    /// Points in the whole grid.
    pub fn count(&self) -> u128 {
        self.blocks
            .iter()
            .fold(0u128, |n, b| n.saturating_add(b.count()))
    }

    /// What makes the count, block by block: `grid[0]: alpha 1000 × train.lr 1000 = 1000000`.
    pub fn describe(&self) -> Vec<String> {
        self.blocks
            .iter()
            .enumerate()
            .map(|(b, block)| {
                let axes: Vec<String> = block
                    .axes
                    .iter()
                    .map(|a| {
                        let keys: Vec<String> = a.keys.iter().map(|k| path_to_string(k)).collect();
                        format!("{} {}", keys.join("+"), a.candidates.len())
                    })
                    .collect();
                let axes = if axes.is_empty() {
                    "no keys".to_string()
                } else {
                    axes.join(" × ")
                };
                format!("grid[{b}]: {axes} = {}", block.count())
            })
            .collect()
    }

    /// The points, block by block, each block's cartesian product with its first axis slowest.
    pub fn points(&self) -> impl Iterator<Item = Point> + '_ {
        self.blocks.iter().enumerate().flat_map(|(b, block)| {
            // Below the planning limit a block's count fits in a u64.
            let total = u64::try_from(block.count()).unwrap_or(u64::MAX);
            (0..total).map(move |index| block.point(b, index))
        })
    }

    /// Every key that some block sets (zipped keys included).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .blocks
            .iter()
            .flat_map(|b| {
                b.axes
                    .iter()
                    .flat_map(|a| a.keys.iter().map(|k| path_to_string(k)))
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

impl Block {
    /// The `index`-th point of the block's product, first axis slowest.
    fn point(&self, block: usize, mut index: u64) -> Point {
        let mut choice = vec![0; self.axes.len()];
        for (a, axis) in self.axes.iter().enumerate().rev() {
            let n = axis.candidates.len() as u64;
            choice[a] = (index % n) as usize;
            index /= n;
        }
        let mut assignments = Vec::new();
        for (axis, &c) in self.axes.iter().zip(&choice) {
            for (key, value) in axis.keys.iter().zip(&axis.candidates[c]) {
                assignments.push((key.clone(), value.clone()));
            }
        }
        Point {
            block,
            origin: self.origin.clone(),
            assignments,
        }
    }
}

/// Reads `grid:` (a list of blocks) without expanding it. `zip` holds groups of dotted keys,
/// each of which must be a grid key of some block. No `grid:` is one empty point (every run is
/// `base`); `grid: []` is an error, since it plans nothing.
pub fn expand(grid: Option<&Node>, zip: &[Vec<String>]) -> Result<Grid, Vec<Issue>> {
    let Some(grid) = grid else {
        return Ok(Grid {
            blocks: vec![Block {
                origin: Origin::Implied,
                axes: Vec::new(),
            }],
        });
    };
    let Value::Seq(blocks) = &grid.value else {
        return Err(vec![Issue::new("grid", grid.show(), "grid must be a list of blocks", "grid:\n    - { method: [erm] }\n    - { method: [manifold_mixup], alpha: [2.0], layers: [[0, 1, 2]] }").at(grid.origin.clone())]);
    };
    if blocks.is_empty() {
        return Err(vec![Issue::new(
            "grid",
            "[]",
            "an empty grid plans no runs",
            "at least one block, e.g. grid: [{ method: [erm] }], or leave `grid:` out to run `base` alone",
        )
        .at(grid.origin.clone())]);
    }
    let mut out = Vec::new();
    let mut issues = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        match axes(b, block, zip) {
            Ok(axes) => out.push(Block {
                origin: block.origin.clone(),
                axes,
            }),
            Err(mut e) => issues.append(&mut e),
        }
    }
    let grid_keys: Vec<String> = blocks
        .iter()
        .filter_map(|b| match &b.value {
            Value::Map(entries) => Some(entries.iter().map(|(k, _)| k.name.clone())),
            _ => None,
        })
        .flatten()
        .collect();
    for (g, group) in zip.iter().enumerate() {
        for (i, key) in group.iter().enumerate() {
            if !grid_keys.contains(key) {
                issues.push(
                    Issue::new(
                        format!("zip[{g}][{i}]"),
                        key.clone(),
                        "no grid block sets this key, so it zips nothing",
                        format!(
                            "a key written in a grid block: {}",
                            if grid_keys.is_empty() {
                                "(the grid sets none)".to_string()
                            } else {
                                grid_keys.join(", ")
                            }
                        ),
                    )
                    .at(grid.origin.clone()),
                );
            }
        }
    }
    if issues.is_empty() {
        Ok(Grid { blocks: out })
    } else {
        Err(issues)
    }
}

fn axes(b: usize, block: &Node, zip: &[Vec<String>]) -> Result<Vec<Axis>, Vec<Issue>> {
    let Value::Map(entries) = &block.value else {
        return Err(vec![
            Issue::new(
                format!("grid[{b}]"),
                block.show(),
                "a grid block must be a mapping of keys to lists of candidates",
                "- { method: [manifold_mixup], alpha: [1.0, 2.0] }",
            )
            .at(block.origin.clone()),
        ]);
    };
    let mut issues = Vec::new();
    let mut single: Vec<(String, Vec<Node>, Origin)> = Vec::new();
    for (key, value) in entries {
        let where_ = format!("grid[{b}].{}", key.name);
        if key.name == "seed" {
            issues.push(
                Issue::new(
                    where_,
                    value.show(),
                    "seeds are not a grid key",
                    "list them once at the top level: seeds: [0, 1, 2]",
                )
                .at(key.origin.clone()),
            );
            continue;
        }
        match &value.value {
            Value::Seq(items) if !items.is_empty() => {
                single.push((key.name.clone(), items.clone(), key.origin.clone()))
            }
            Value::Seq(_) => issues.push(
                Issue::new(
                    where_,
                    "[]",
                    "an empty list of candidates gives no runs",
                    "at least one candidate, e.g. [2.0]",
                )
                .at(value.origin.clone()),
            ),
            _ => issues.push(
                Issue::new(
                    where_,
                    value.show(),
                    "a grid value is a list of candidates",
                    format!(
                        "write `{}: [{}]`{}",
                        key.name,
                        value.show(),
                        if key.name == "layers" {
                            " (a layer set is itself a list: layers: [[0, 1, 2]])"
                        } else {
                            ""
                        }
                    ),
                )
                .at(value.origin.clone()),
            ),
        }
    }
    if key_is("layers", &single) {
        for (name, items, _) in &single {
            if name != "layers" {
                continue;
            }
            for (i, item) in items.iter().enumerate() {
                if !matches!(item.value, Value::Seq(_)) {
                    issues.push(
                        Issue::new(
                            format!("grid[{b}].layers[{i}]"),
                            item.show(),
                            "each candidate for `layers` is a layer set, i.e. a list",
                            format!(
                                "layers: [[{}]] for the set {{{}}}",
                                item.show(),
                                item.show()
                            ),
                        )
                        .at(item.origin.clone()),
                    );
                }
            }
        }
    }
    let mut result: Vec<Axis> = Vec::new();
    let mut zipped: Vec<bool> = vec![false; single.len()];
    for (i, (name, items, origin)) in single.iter().enumerate() {
        if zipped[i] {
            continue;
        }
        let group = zip.iter().find(|g| g.iter().any(|k| k == name));
        let Some(group) = group else {
            result.push(Axis {
                keys: vec![parse_path(name)],
                candidates: items.iter().map(|n| vec![n.clone()]).collect(),
            });
            continue;
        };
        let members: Vec<usize> = group
            .iter()
            .filter_map(|k| single.iter().position(|(n, _, _)| n == k))
            .collect();
        if members.len() != group.len() {
            let missing: Vec<&String> = group
                .iter()
                .filter(|k| !single.iter().any(|(n, _, _)| n == *k))
                .collect();
            issues.push(
                Issue::new(
                    format!("grid[{b}].{name}"),
                    "",
                    format!("`{name}` is zipped with {missing:?}, which this block does not set"),
                    "set every key of a zip group in the block, or none of them",
                )
                .at(origin.clone()),
            );
            continue;
        }
        let len = items.len();
        if let Some(&bad) = members.iter().find(|&&m| single[m].1.len() != len) {
            issues.push(
                Issue::new(
                    format!("grid[{b}].{}", single[bad].0),
                    format!("{} candidates", single[bad].1.len()),
                    format!("zipped keys must have as many candidates as `{name}` ({len})"),
                    "lists of equal length for the keys of one zip group",
                )
                .at(single[bad].2.clone()),
            );
            continue;
        }
        for &m in &members {
            zipped[m] = true;
        }
        let candidates = (0..len)
            .map(|c| members.iter().map(|&m| single[m].1[c].clone()).collect())
            .collect();
        result.push(Axis {
            keys: members.iter().map(|&m| parse_path(&single[m].0)).collect(),
            candidates,
        });
    }
    if issues.is_empty() {
        Ok(result)
    } else {
        Err(issues)
    }
}

fn key_is(name: &str, single: &[(String, Vec<Node>, Origin)]) -> bool {
    single.iter().any(|(n, _, _)| n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(yaml: &str, zip: &[Vec<String>]) -> Vec<Vec<String>> {
        let grid = Node::parse(yaml).unwrap();
        expand(Some(&grid), zip)
            .unwrap()
            .points()
            .map(|p| {
                p.assignments
                    .iter()
                    .map(|(k, v)| format!("{}={}", path_to_string(k), v.show()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn blocks_are_unioned_and_crossed_inside() {
        let p = points(
            "- { method: [erm] }\n- { method: [manifold_mixup], alpha: [1, 2], layers: [[0], [1, 2]] }\n",
            &[],
        );
        assert_eq!(p.len(), 1 + 2 * 2);
        assert_eq!(p[0], vec!["method=erm"]);
        assert_eq!(p[1], vec!["method=manifold_mixup", "alpha=1", "layers=[0]"]);
        assert_eq!(
            p[2],
            vec!["method=manifold_mixup", "alpha=1", "layers=[1, 2]"]
        );
        assert_eq!(p[3], vec!["method=manifold_mixup", "alpha=2", "layers=[0]"]);
    }

    #[test]
    fn zipped_keys_vary_together() {
        let zip = vec![vec!["alpha".to_string(), "train.lr".to_string()]];
        let p = points(
            "- { alpha: [1, 2, 4], train.lr: [0.1, 0.2, 0.4], method: [a, b] }\n",
            &zip,
        );
        assert_eq!(p.len(), 3 * 2);
        assert_eq!(p[1], vec!["alpha=1", "train.lr=0.1", "method=b"]);
        assert_eq!(p[2], vec!["alpha=2", "train.lr=0.2", "method=a"]);
    }

    #[test]
    fn zip_of_unequal_lengths_is_an_error() {
        let grid = Node::parse("- { alpha: [1, 2], train.lr: [0.1] }\n").unwrap();
        let zip = vec![vec!["alpha".to_string(), "train.lr".to_string()]];
        let err = expand(Some(&grid), &zip).err().unwrap();
        assert!(err[0].problem.contains("as many candidates"), "{err:?}");
    }

    #[test]
    fn scalars_and_flat_layer_sets_are_rejected_with_a_fix() {
        let grid =
            Node::parse("- { alpha: 2.0, method: [manifold_mixup], layers: [0, 1] }\n").unwrap();
        let err = expand(Some(&grid), &[]).err().unwrap();
        assert_eq!(err.len(), 3);
        assert!(err[0].allowed.contains("alpha: [2.0]"));
        assert!(err[1].allowed.contains("layers: [[0]]"));
    }

    #[test]
    fn an_empty_grid_is_an_error() {
        let grid = Node::parse("[]\n").unwrap();
        let err = expand(Some(&grid), &[])
            .err()
            .expect("grid: [] must be refused");
        assert!(err[0].problem.contains("plans no runs"), "{err:?}");
    }

    #[test]
    fn a_zip_key_no_block_sets_is_an_error() {
        // `alpah` is a typo: before, a zip group no block matched was silently ignored.
        let grid = Node::parse("- { alpha: [1, 2], train.lr: [0.1, 0.2] }\n").unwrap();
        let zip = vec![vec!["alpah".to_string(), "train.lr".to_string()]];
        let err = expand(Some(&grid), &zip).err().expect("typo in zip");
        assert!(
            err.iter()
                .any(|i| i.key == "zip[0][0]" && i.value == "alpah"),
            "{err:?}"
        );
    }

    #[test]
    fn a_billion_point_grid_is_counted_without_being_expanded() {
        // Three axes of 1,000 candidates: 10⁹ points, counted from the axes alone (instantly,
        // in the memory of the 3,000 candidates).
        let axis = |k: &str| {
            let values: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
            format!("{k}: [{}]", values.join(", "))
        };
        let yaml = format!("- {{ {}, {}, {} }}\n", axis("a"), axis("b"), axis("c"));
        let grid = expand(Some(&Node::parse(&yaml).unwrap()), &[]).unwrap();
        assert_eq!(grid.count(), 1_000_000_000);
        assert_eq!(
            grid.describe(),
            ["grid[0]: a 1000 × b 1000 × c 1000 = 1000000000"]
        );
    }
}
