//! Maelstrom's `--topology` shapes for the broadcast workload
//! (<https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md>).
//!
//! The runner sends every node one `{"type":"topology","topology":{...}}` request during client setup;
//! this module computes that map from the node list (in list order, `n0 …`). The shapes follow
//! Maelstrom's `workload/broadcast.clj` (`grid-topology`, `line-topology`, `tree-topology`,
//! `total-topology`):
//!
//! - `grid` (the CLI default): side = ⌈√n⌉; node k sits at row k / side, column k mod side.
//!   Neighbours are listed down (row + 1), up, right (column + 1), left, skipping cells outside the
//!   grid or with index ≥ n.
//! - `line`: `n0: [n1]`, `last: [previous]`, others `[left, right]`. **With fewer than two nodes
//!   the map is empty**, so a single node gets no entry at all.
//! - `tree2` (alias `tree`), `tree3`, `tree4`: nodes fill tiers of size 1, b, b², … in order and each
//!   tier's nodes are handed to the previous tier's nodes in order, b per parent. That is exactly the
//!   heap layout: node i's parent is (i − 1) / b and its children are b·i + 1 … b·i + b. Neighbours
//!   are [parent (if any), children in order].
//! - `total`: every other node, in list order.
//!
//! A single node gets `{"n0": []}` for every shape except `line`. Maelstrom sends `null` for an empty
//! node list with the tree shapes; the CLI cannot produce an empty list, so [`build`] simply returns
//! an empty map there.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

/// One of Maelstrom's topology shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopologyKind {
    /// The default (`--topology` absent).
    Grid,
    Line,
    /// A tree with the given branching factor: 2 (`tree`, `tree2`), 3 (`tree3`) or 4 (`tree4`).
    Tree(u32),
    Total,
}

impl Default for TopologyKind {
    /// `grid`, Maelstrom's default.
    fn default() -> Self {
        TopologyKind::Grid
    }
}

/// The names `--topology` accepts, in the order error messages list them.
pub const TOPOLOGY_NAMES: [&str; 7] = ["line", "grid", "tree", "tree2", "tree3", "tree4", "total"];

/// An unknown `--topology` name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown topology {name:?}; expected one of: line, grid, tree, tree2, tree3, tree4, total")]
pub struct ParseTopologyError {
    pub name: String,
}

impl FromStr for TopologyKind {
    type Err = ParseTopologyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "line" => Ok(TopologyKind::Line),
            "grid" => Ok(TopologyKind::Grid),
            "tree" | "tree2" => Ok(TopologyKind::Tree(2)),
            "tree3" => Ok(TopologyKind::Tree(3)),
            "tree4" => Ok(TopologyKind::Tree(4)),
            "total" => Ok(TopologyKind::Total),
            _ => Err(ParseTopologyError {
                name: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for TopologyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyKind::Grid => f.write_str("grid"),
            TopologyKind::Line => f.write_str("line"),
            TopologyKind::Tree(b) => write!(f, "tree{b}"),
            TopologyKind::Total => f.write_str("total"),
        }
    }
}

/// Computes the topology for `nodes`: one `(node, neighbours)` entry per node that has an entry, in
/// node-list order. `line` with fewer than two nodes yields no entries at all.
///
/// A `Tree(b)` with `b` outside 2..=4 (not producible from the CLI) is built with that factor
/// anyway; `Tree(0)` is treated as `Tree(1)`, a chain.
pub fn build(kind: TopologyKind, nodes: &[String]) -> Vec<(String, Vec<String>)> {
    let n = nodes.len();
    let name = |i: usize| nodes[i].clone();
    match kind {
        TopologyKind::Grid => {
            let side = ceil_sqrt(n);
            let at = |row: usize, col: usize| -> Option<usize> {
                if col >= side {
                    return None;
                }
                let idx = row.checked_mul(side)?.checked_add(col)?;
                (idx < n).then_some(idx)
            };
            (0..n)
                .map(|k| {
                    let (row, col) = (k / side, k % side);
                    let candidates = [
                        at(row + 1, col),
                        row.checked_sub(1).and_then(|r| at(r, col)),
                        at(row, col + 1),
                        col.checked_sub(1).and_then(|c| at(row, c)),
                    ];
                    (
                        name(k),
                        candidates.into_iter().flatten().map(name).collect(),
                    )
                })
                .collect()
        }
        TopologyKind::Line => {
            if n < 2 {
                return Vec::new();
            }
            (0..n)
                .map(|k| {
                    let neighbours = if k == 0 {
                        vec![name(1)]
                    } else if k == n - 1 {
                        vec![name(n - 2)]
                    } else {
                        vec![name(k - 1), name(k + 1)]
                    };
                    (name(k), neighbours)
                })
                .collect()
        }
        TopologyKind::Tree(b) => {
            let b = (b.max(1)) as usize;
            (0..n)
                .map(|i| {
                    let parent = (i > 0).then(|| (i - 1) / b);
                    let first_child = i.saturating_mul(b).saturating_add(1);
                    let children = (0..b)
                        .map(|c| first_child.saturating_add(c))
                        .take_while(|&c| c < n);
                    let neighbours = parent.into_iter().chain(children).map(name).collect();
                    (name(i), neighbours)
                })
                .collect()
        }
        TopologyKind::Total => nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let others = nodes
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, other)| other.clone())
                    .collect();
                (node.clone(), others)
            })
            .collect(),
    }
}

/// Renders a topology as the JSON object sent in the `topology` request body
/// (`{"n0": ["n1", …], …}`). serde_json's map orders keys by name; the order carries no meaning.
pub fn to_json(topology: &[(String, Vec<String>)]) -> Value {
    let map: Map<String, Value> = topology
        .iter()
        .map(|(node, neighbours)| {
            let list = neighbours.iter().cloned().map(Value::String).collect();
            (node.clone(), Value::Array(list))
        })
        .collect();
    Value::Object(map)
}

/// ⌈√n⌉ computed exactly in integers.
fn ceil_sqrt(n: usize) -> usize {
    let mut s = (n as f64).sqrt() as usize;
    while s.saturating_mul(s) > n {
        s -= 1;
    }
    while s.saturating_mul(s) < n {
        s += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn get<'a>(topo: &'a [(String, Vec<String>)], node: &str) -> &'a [String] {
        &topo
            .iter()
            .find(|(k, _)| k == node)
            .expect("node has an entry")
            .1
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_name_and_rejects_others() {
        assert_eq!("grid".parse(), Ok(TopologyKind::Grid));
        assert_eq!("line".parse(), Ok(TopologyKind::Line));
        assert_eq!("tree".parse(), Ok(TopologyKind::Tree(2)));
        assert_eq!("tree2".parse(), Ok(TopologyKind::Tree(2)));
        assert_eq!("tree3".parse(), Ok(TopologyKind::Tree(3)));
        assert_eq!("tree4".parse(), Ok(TopologyKind::Tree(4)));
        assert_eq!("total".parse(), Ok(TopologyKind::Total));
        let err = "ring".parse::<TopologyKind>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"ring\""), "{msg}");
        for name in TOPOLOGY_NAMES {
            assert!(msg.contains(name), "{msg}");
            let kind: TopologyKind = name.parse().unwrap();
            // Display round-trips (tree prints as tree2).
            assert_eq!(kind.to_string().parse::<TopologyKind>().unwrap(), kind);
        }
        assert!("Grid".parse::<TopologyKind>().is_err());
        assert!("tree5".parse::<TopologyKind>().is_err());
        assert_eq!(TopologyKind::default(), TopologyKind::Grid);
    }

    #[test]
    fn grid_five_nodes_matches_spec_example() {
        // n0 n1 n2
        // n3 n4
        let topo = build(TopologyKind::Grid, &nodes(5));
        let keys: Vec<&str> = topo.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["n0", "n1", "n2", "n3", "n4"]);
        assert_eq!(get(&topo, "n0"), names(&["n3", "n1"]));
        assert_eq!(get(&topo, "n1"), names(&["n4", "n2", "n0"]));
        assert_eq!(get(&topo, "n2"), names(&["n1"]));
        assert_eq!(get(&topo, "n3"), names(&["n0", "n4"]));
        assert_eq!(get(&topo, "n4"), names(&["n1", "n3"]));
    }

    #[test]
    fn grid_25_nodes_is_five_by_five() {
        let topo = build(TopologyKind::Grid, &nodes(25));
        assert_eq!(topo.len(), 25);
        // Corner, edge and centre cells.
        assert_eq!(get(&topo, "n0"), names(&["n5", "n1"]));
        assert_eq!(get(&topo, "n4"), names(&["n9", "n3"]));
        assert_eq!(get(&topo, "n12"), names(&["n17", "n7", "n13", "n11"]));
        assert_eq!(get(&topo, "n24"), names(&["n19", "n23"]));
        assert_eq!(get(&topo, "n20"), names(&["n15", "n21"]));
        // Symmetric, at most 4 neighbours.
        for (node, ns) in &topo {
            assert!(ns.len() <= 4);
            for other in ns {
                assert!(get(&topo, other).contains(node));
            }
        }
    }

    #[test]
    fn grid_irregular_sizes_are_symmetric() {
        for n in 0..40 {
            let topo = build(TopologyKind::Grid, &nodes(n));
            assert_eq!(topo.len(), n);
            for (node, ns) in &topo {
                for other in ns {
                    assert!(get(&topo, other).contains(node), "n={n} {node}->{other}");
                }
            }
        }
        // 2 nodes: side 2, one row.
        let topo = build(TopologyKind::Grid, &nodes(2));
        assert_eq!(get(&topo, "n0"), names(&["n1"]));
        assert_eq!(get(&topo, "n1"), names(&["n0"]));
        // 10 nodes: side 4; n9 is row 2 column 1, n8 is row 2 column 0.
        let topo = build(TopologyKind::Grid, &nodes(10));
        assert_eq!(get(&topo, "n9"), names(&["n5", "n8"]));
        assert_eq!(get(&topo, "n3"), names(&["n7", "n2"]));
    }

    #[test]
    fn tree2_of_seven_nodes() {
        let topo = build(TopologyKind::Tree(2), &nodes(7));
        assert_eq!(get(&topo, "n0"), names(&["n1", "n2"]));
        assert_eq!(get(&topo, "n1"), names(&["n0", "n3", "n4"]));
        assert_eq!(get(&topo, "n2"), names(&["n0", "n5", "n6"]));
        for leaf in ["n3", "n4"] {
            assert_eq!(get(&topo, leaf), names(&["n1"]));
        }
        for leaf in ["n5", "n6"] {
            assert_eq!(get(&topo, leaf), names(&["n2"]));
        }
    }

    #[test]
    fn partial_tiers_go_to_the_first_parents() {
        // tree3 of 6: root n0; tier [n1 n2 n3]; n4 n5 both belong to n1; n2, n3 get none.
        let topo = build(TopologyKind::Tree(3), &nodes(6));
        assert_eq!(get(&topo, "n0"), names(&["n1", "n2", "n3"]));
        assert_eq!(get(&topo, "n1"), names(&["n0", "n4", "n5"]));
        assert_eq!(get(&topo, "n2"), names(&["n0"]));
        assert_eq!(get(&topo, "n5"), names(&["n1"]));
        // tree4 of 25: tiers 1, 4, 16 and then n21..n24, which all go to n5.
        let topo = build(TopologyKind::Tree(4), &nodes(25));
        assert_eq!(get(&topo, "n1"), names(&["n0", "n5", "n6", "n7", "n8"]));
        assert_eq!(get(&topo, "n5"), names(&["n1", "n21", "n22", "n23", "n24"]));
        assert_eq!(get(&topo, "n6"), names(&["n1"]));
        assert_eq!(get(&topo, "n20"), names(&["n4"]));
    }

    #[test]
    fn line_shapes() {
        assert!(build(TopologyKind::Line, &nodes(0)).is_empty());
        assert!(build(TopologyKind::Line, &nodes(1)).is_empty());
        let two = build(TopologyKind::Line, &nodes(2));
        assert_eq!(get(&two, "n0"), names(&["n1"]));
        assert_eq!(get(&two, "n1"), names(&["n0"]));
        let five = build(TopologyKind::Line, &nodes(5));
        assert_eq!(get(&five, "n0"), names(&["n1"]));
        assert_eq!(get(&five, "n2"), names(&["n1", "n3"]));
        assert_eq!(get(&five, "n4"), names(&["n3"]));
    }

    #[test]
    fn total_lists_everyone_else_in_order() {
        let topo = build(TopologyKind::Total, &nodes(4));
        assert_eq!(get(&topo, "n2"), names(&["n0", "n1", "n3"]));
        assert_eq!(topo.len(), 4);
    }

    #[test]
    fn single_node_gets_empty_list_except_line() {
        for kind in [
            TopologyKind::Grid,
            TopologyKind::Tree(2),
            TopologyKind::Tree(3),
            TopologyKind::Tree(4),
            TopologyKind::Total,
        ] {
            let topo = build(kind, &nodes(1));
            assert_eq!(topo, vec![("n0".to_string(), vec![])], "{kind}");
            assert_eq!(to_json(&topo), serde_json::json!({"n0": []}));
        }
        assert_eq!(
            to_json(&build(TopologyKind::Line, &nodes(1))),
            serde_json::json!({})
        );
        for kind in [
            TopologyKind::Grid,
            TopologyKind::Tree(2),
            TopologyKind::Tree(0),
        ] {
            assert!(build(kind, &nodes(0)).is_empty());
        }
    }

    #[test]
    fn json_rendering() {
        let topo = build(TopologyKind::Grid, &nodes(5));
        assert_eq!(
            to_json(&topo),
            serde_json::json!({
                "n0": ["n3", "n1"], "n1": ["n4", "n2", "n0"], "n2": ["n1"],
                "n3": ["n0", "n4"], "n4": ["n1", "n3"]
            })
        );
    }

    #[test]
    fn ceil_sqrt_is_exact() {
        for n in 0..2000usize {
            let s = ceil_sqrt(n);
            assert!(s * s >= n);
            assert!(s == 0 || (s - 1) * (s - 1) < n);
        }
    }
}
