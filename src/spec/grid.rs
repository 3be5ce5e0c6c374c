//! Grid expansion: `base` + one point of a grid block + a seed + `-o` overrides = one run tree.
//!
//! Order (it is the order of plan.jsonl and of `mixsweep plan`): seeds outermost, so that every
//! grid point gets its first seed before any gets its second; then blocks in file order; inside
//! a block, a cartesian product over its keys in written order, the first key varying slowest.
//! Keys named together in a `zip:` group vary together instead of being crossed.

use super::error::Issue;
use super::node::{Node, Origin, Step, Value, parse_path};

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

/// Expands `grid:` (a list of blocks) into points. `zip` holds groups of dotted keys.
pub fn expand(grid: Option<&Node>, zip: &[Vec<String>]) -> Result<Vec<Point>, Vec<Issue>> {
    let Some(grid) = grid else {
        return Ok(vec![Point {
            block: 0,
            origin: Origin::Implied,
            assignments: Vec::new(),
        }]);
    };
    let Value::Seq(blocks) = &grid.value else {
        return Err(vec![Issue::new("grid", grid.show(), "grid must be a list of blocks", "grid:\n    - { method: [erm] }\n    - { method: [manifold_mixup], alpha: [2.0], layers: [[0, 1, 2]] }").at(grid.origin.clone())]);
    };
    let mut points = Vec::new();
    let mut issues = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        match axes(b, block, zip) {
            Ok(axes) => product(b, &block.origin, &axes, &mut points),
            Err(mut e) => issues.append(&mut e),
        }
    }
    if issues.is_empty() {
        Ok(points)
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

/// Cartesian product, first axis slowest.
fn product(block: usize, origin: &Origin, axes: &[Axis], out: &mut Vec<Point>) {
    let total: usize = axes.iter().map(|a| a.candidates.len()).product();
    for mut index in 0..total {
        let mut choice = vec![0; axes.len()];
        for (a, axis) in axes.iter().enumerate().rev() {
            choice[a] = index % axis.candidates.len();
            index /= axis.candidates.len();
        }
        let mut assignments = Vec::new();
        for (axis, &c) in axes.iter().zip(&choice) {
            for (key, value) in axis.keys.iter().zip(&axis.candidates[c]) {
                assignments.push((key.clone(), value.clone()));
            }
        }
        out.push(Point {
            block,
            origin: origin.clone(),
            assignments,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::node::path_to_string;

    fn points(yaml: &str, zip: &[Vec<String>]) -> Vec<Vec<String>> {
        let grid = Node::parse(yaml).unwrap();
        expand(Some(&grid), zip)
            .unwrap()
            .into_iter()
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
        let err = expand(Some(&grid), &zip).unwrap_err();
        assert!(err[0].problem.contains("as many candidates"), "{err:?}");
    }

    #[test]
    fn scalars_and_flat_layer_sets_are_rejected_with_a_fix() {
        let grid =
            Node::parse("- { alpha: 2.0, method: [manifold_mixup], layers: [0, 1] }\n").unwrap();
        let err = expand(Some(&grid), &[]).unwrap_err();
        assert_eq!(err.len(), 3);
        assert!(err[0].allowed.contains("alpha: [2.0]"));
        assert!(err[1].allowed.contains("layers: [[0]]"));
    }
}
