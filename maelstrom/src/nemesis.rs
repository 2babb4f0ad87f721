//! Fault plans: partition shapes (grudges) and the nemesis schedule, as in Maelstrom's
//! `nemesis.clj` and Jepsen's combined nemesis (kill and pause included).
//!
//! Clock-free and I/O-free like [`crate::net`]: time is passed in as nanoseconds since the test
//! started, and all randomness comes from a [`ChaCha8Rng`] seeded by the caller, so a seed fixes
//! the whole plan.
//!
//! # Where the behaviour comes from
//!
//! Maelstrom's nemesis (`src/maelstrom/nemesis.clj`) is Jepsen's combined nemesis
//! (`jepsen/src/jepsen/nemesis/combined.clj`, Jepsen 0.3.7) composed from two packages, in this
//! order: `partition-package`, then `db-package`. Maelstrom passes only `:db`, `:interval`
//! (`--nemesis-interval`, default 10 s, [`DEFAULT_INTERVAL_SECS`]) and `:faults` (`--nemesis`), so
//! every other option takes Jepsen's default:
//!
//! - **Partitions** (`partition-package`, `grudge`, `partition-specs`): each `start-partition` draws
//!   its spec uniformly from [`PartitionSpec::ALL`] = one, minority-third, majority,
//!   majorities-ring (`:primaries` is left out because Maelstrom's DB has no primaries). The
//!   generator is `flip-flop(start, repeat(stop))` wrapped in `stagger(interval)`: start, stop,
//!   start, … . Grudge shapes come from `jepsen/src/jepsen/nemesis.clj`: `split-one`, `bisect`,
//!   `complete-grudge`, `majorities-ring` (`-perfect` for n ≤ 5, `-stochastic` above) and
//!   `invert-grudge`; sizes from `jepsen/src/jepsen/util.clj` (`majority` = ⌊n/2⌋ + 1,
//!   `minority-third` = ⌊(n − 1)/3⌋). See [`partition`].
//! - **Kill and pause** (`db-generators`, `db-package`, `db-nodes`, `node-specs`): a kill or pause
//!   targets a node spec drawn uniformly from [`NodeSpec::ALL`] = a random non-empty subset
//!   (Jepsen's `nil`), one, minority-third, minority, majority, all (again no `:primaries`). The
//!   generators are `flip-flop(kill, repeat(start all))` and `flip-flop(pause, repeat(resume all))`,
//!   combined with `gen/mix` (pause–resume listed first) and wrapped in their own
//!   `stagger(interval)`. `start` and `resume` always target **all** nodes.
//! - **Composition** (`compose-packages`): the package generators run side by side under `gen/any`,
//!   so with partitions *and* kill/pause there are two independent staggered streams (about two
//!   nemesis ops per interval). The final generators run in sequence: `stop-partition`, then
//!   `resume` all, then `start` all ([`NemesisPlan::final_ops`]).
//!
//! Generator semantics (`jepsen/src/jepsen/generator.clj`, 0.3.7):
//! - `stagger dt`: an op is due at the stream's scheduled time, or at "now" if the nemesis is late
//!   (or if the stream has not emitted yet); the next scheduled time is that op's time plus a
//!   uniform draw in [0, 2·dt). So the first op of each stream comes at t ≈ 0 and later gaps are
//!   U[0, 2·interval), measured from the previous op's time.
//! - `any`: the stream whose op is due soonest goes first; exact ties are broken uniformly at random.
//! - `mix`: after each op, the next op's generator is picked uniformly at random (the first pick is
//!   made up front); each flip-flop keeps its own position.
//! - `flip-flop a b`: a, b, a, b, … .
//!
//! # Driving the plan
//!
//! The nemesis is a single Jepsen worker. When it is free at time `now` (the main phase starts, or
//! its previous op completed), the driver calls [`NemesisPlan::next`]`(now)`, gets `(due, op)` with
//! `due ≥ now`, waits until `due`, records the invocation, performs the op, records the completion
//! ([`NemesisOp::invoke_value`], [`NemesisOp::completion_value`]; process `nemesis`, type `info`)
//! and calls `next` again with the completion time. The plan knows nothing of the main phase's time
//! limit: the driver must not issue an op whose `due` is at or after the cutoff. Before
//! the final phase it runs [`NemesisPlan::final_ops`] in order.
//!
//! Completion values of kill/start/pause/resume: Jepsen's `db-nemesis` returns a map from each
//! targeted node to what the DB returned. We record `{node: "killed" | "started" | "paused" |
//! "resumed"}`; a driver that knows more (a node that was already running) may build its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::net::Grudge;

/// `--nemesis-interval` default, in seconds: the mean time between ops of one stream.
pub const DEFAULT_INTERVAL_SECS: f64 = 10.0;

// ---------------------------------------------------------------------------------------------
// Faults

/// One `--nemesis` fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    Partition,
    Kill,
    Pause,
}

impl Fault {
    pub const ALL: [Fault; 3] = [Fault::Partition, Fault::Kill, Fault::Pause];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown `--nemesis` fault name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown nemesis fault {name:?}; expected a comma-separated list of: partition, kill, pause"
)]
pub struct ParseFaultError {
    pub name: String,
}

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| ParseFaultError {
                name: s.to_string(),
            })
    }
}

/// The set of enabled faults. The default (no `--nemesis`) is empty: no nemesis ops at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FaultSet {
    pub partition: bool,
    pub kill: bool,
    pub pause: bool,
}

impl FaultSet {
    pub fn is_empty(&self) -> bool {
        !(self.partition || self.kill || self.pause)
    }

    pub fn contains(&self, fault: Fault) -> bool {
        match fault {
            Fault::Partition => self.partition,
            Fault::Kill => self.kill,
            Fault::Pause => self.pause,
        }
    }

    pub fn insert(&mut self, fault: Fault) {
        match fault {
            Fault::Partition => self.partition = true,
            Fault::Kill => self.kill = true,
            Fault::Pause => self.pause = true,
        }
    }
}

impl FromIterator<Fault> for FaultSet {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> Self {
        let mut set = FaultSet::default();
        for fault in iter {
            set.insert(fault);
        }
        set
    }
}

impl FromStr for FaultSet {
    type Err = ParseFaultError;

    /// Parses `--nemesis`: names separated by commas, with whitespace allowed around the commas
    /// (Maelstrom splits on `\s*,\s*`); repeats are fine. An empty string is an unknown fault `""`,
    /// as in Maelstrom.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = FaultSet::default();
        let pieces: Vec<&str> = s.split(',').collect();
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            let piece = if i > 0 { piece.trim_start() } else { piece };
            let piece = if i < last { piece.trim_end() } else { piece };
            set.insert(piece.parse()?);
        }
        Ok(set)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Fault::ALL
            .into_iter()
            .filter(|x| self.contains(*x))
            .map(Fault::name)
            .collect();
        f.write_str(&names.join(","))
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes

/// Jepsen's `majority`: the smallest integer strictly greater than n/2.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Jepsen's `minority-third`: the largest integer strictly less than n/3, i.e. ⌊(n − 1)/3⌋
/// (0 for n = 0).
pub fn minority_third(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

// ---------------------------------------------------------------------------------------------
// Partitions

/// A partition shape drawn by each `start-partition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionSpec {
    /// One random node cut off from all others, both ways.
    One,
    /// The first ⌊(n − 1)/3⌋ shuffled nodes cut off from the rest (no-op for n ≤ 3).
    MinorityThird,
    /// Shuffled and split at ⌊n/2⌋; the two sides cut off from each other.
    Majority,
    /// Every node sees a majority, but no two nodes the same one.
    MajoritiesRing,
}

impl PartitionSpec {
    /// The specs a `start-partition` draws from, uniformly, in Jepsen's `partition-specs` order.
    pub const ALL: [PartitionSpec; 4] = [
        PartitionSpec::One,
        PartitionSpec::MinorityThird,
        PartitionSpec::Majority,
        PartitionSpec::MajoritiesRing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PartitionSpec::One => "one",
            PartitionSpec::MinorityThird => "minority-third",
            PartitionSpec::Majority => "majority",
            PartitionSpec::MajoritiesRing => "majorities-ring",
        }
    }
}

impl fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown partition spec name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown partition spec {name:?}; expected one of: one, minority-third, majority, majorities-ring")]
pub struct ParsePartitionSpecError {
    pub name: String,
}

impl FromStr for PartitionSpec {
    type Err = ParsePartitionSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PartitionSpec::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ParsePartitionSpecError {
                name: s.to_string(),
            })
    }
}

/// A computed partition: the grudge for [`crate::net::Net::set_grudge`] and the history value.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// The shape drawn; `None` for a set chosen by hand ([`isolate`], the live dashboard's
    /// controls).
    pub spec: Option<PartitionSpec>,
    /// Receiver → sources it drops. Every node is a key (possibly with an empty set), as in Jepsen.
    pub grudge: Grudge,
    /// The completion value `["isolated", {node: [srcs…]}]`, sources in node-list order.
    pub description: Value,
}

/// Drop lists by node index: `drops[i]` = indices node i drops, ascending.
type IdxGrudge = Vec<Vec<usize>>;

/// Computes a partition of `nodes` for `spec` (Jepsen `combined.clj` `grudge`).
///
/// With no nodes the grudge is empty; `one` with a single node isolates it from nobody.
pub fn partition<R: Rng + ?Sized>(spec: PartitionSpec, nodes: &[String], rng: &mut R) -> Partition {
    let n = nodes.len();
    let idx = match spec {
        PartitionSpec::One => {
            if n == 0 {
                Vec::new()
            } else {
                let loner = rng.random_range(0..n);
                complete_idx(n, |i| usize::from(i == loner))
            }
        }
        PartitionSpec::Majority => split_shuffled(n, n / 2, rng),
        PartitionSpec::MinorityThird => split_shuffled(n, minority_third(n), rng),
        PartitionSpec::MajoritiesRing => majorities_ring_idx(n, rng),
    };
    Partition {
        spec: Some(spec),
        grudge: to_grudge(&idx, nodes),
        description: describe_idx(&idx, nodes),
    }
}

/// A partition chosen by hand: `chosen` cut off, both ways, from the rest of `nodes` (Jepsen's
/// `complete-grudge` of the two sides). Ids in `chosen` that are not in `nodes` are ignored; with
/// nobody on one side, nobody drops anything.
pub fn isolate(chosen: &[String], nodes: &[String]) -> Partition {
    let (inside, outside): (Vec<String>, Vec<String>) =
        nodes.iter().cloned().partition(|n| chosen.contains(n));
    let grudge = if inside.is_empty() || outside.is_empty() {
        nodes.iter().map(|n| (n.clone(), HashSet::new())).collect()
    } else {
        complete_grudge(&[inside, outside])
    };
    Partition {
        spec: None,
        description: isolated_value(&grudge, nodes),
        grudge,
    }
}

/// Jepsen's `majorities-ring`: the exact ring for n ≤ 5, the stochastic construction above.
pub fn majorities_ring<R: Rng + ?Sized>(nodes: &[String], rng: &mut R) -> Grudge {
    to_grudge(&majorities_ring_idx(nodes.len(), rng), nodes)
}

/// Jepsen's `complete-grudge`: no node can hear any node outside its own component. The universe
/// is the union of the components; nodes listed in several components take their first.
pub fn complete_grudge(components: &[Vec<String>]) -> Grudge {
    let mut comp_of: Vec<(&String, usize)> = Vec::new();
    let mut seen = HashSet::new();
    for (c, comp) in components.iter().enumerate() {
        for node in comp {
            if seen.insert(node) {
                comp_of.push((node, c));
            }
        }
    }
    comp_of
        .iter()
        .map(|&(node, c)| {
            let drops = comp_of
                .iter()
                .filter(|&&(_, d)| d != c)
                .map(|&(o, _)| o.clone())
                .collect();
            (node.clone(), drops)
        })
        .collect()
}

/// The history completion value of a `start-partition`: `["isolated", {node: [srcs…]}]`, with
/// each node's sources in `nodes` order (sources not in `nodes` last, by name).
pub fn isolated_value(grudge: &Grudge, nodes: &[String]) -> Value {
    let pos: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let map: Map<String, Value> = grudge
        .iter()
        .map(|(node, srcs)| {
            let mut srcs: Vec<&String> = srcs.iter().collect();
            srcs.sort_by_key(|s| {
                (
                    pos.get(s.as_str()).copied().unwrap_or(usize::MAX),
                    s.as_str(),
                )
            });
            (
                node.clone(),
                Value::Array(srcs.into_iter().map(|s| json!(s)).collect()),
            )
        })
        .collect();
    json!(["isolated", map])
}

/// A complete grudge over n nodes where node i is in component `comp(i)`.
fn complete_idx(n: usize, comp: impl Fn(usize) -> usize) -> IdxGrudge {
    let comps: Vec<usize> = (0..n).map(comp).collect();
    (0..n)
        .map(|i| (0..n).filter(|&j| comps[j] != comps[i]).collect())
        .collect()
}

/// Shuffles the nodes and cuts the first `k` off from the rest (`bisect` / `split-at` of a
/// shuffled list, then `complete-grudge`).
fn split_shuffled<R: Rng + ?Sized>(n: usize, k: usize, rng: &mut R) -> IdxGrudge {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut side = vec![1usize; n];
    for &i in order.iter().take(k) {
        side[i] = 0;
    }
    complete_idx(n, |i| side[i])
}

fn majorities_ring_idx<R: Rng + ?Sized>(n: usize, rng: &mut R) -> IdxGrudge {
    if n <= 5 {
        majorities_ring_perfect_idx(n, rng)
    } else {
        majorities_ring_stochastic_idx(n, rng)
    }
}

/// `majorities-ring-perfect`: shuffle the nodes into a ring; for each of the n windows of
/// m = majority(n) consecutive nodes, the node at window position ⌊m/2⌋ drops every node outside
/// the window. For n = 5 each node hears exactly its two ring neighbours; for n = 3 the drops are
/// one-directional (a 3-cycle).
fn majorities_ring_perfect_idx<R: Rng + ?Sized>(n: usize, rng: &mut R) -> IdxGrudge {
    let mut ring: Vec<usize> = (0..n).collect();
    ring.shuffle(rng);
    let m = majority(n);
    let mut drops = vec![Vec::new(); n];
    for start in 0..n {
        let mut in_window = vec![false; n];
        for k in 0..m {
            in_window[ring[(start + k) % n]] = true;
        }
        let centre = ring[(start + m / 2) % n];
        drops[centre] = (0..n).filter(|&j| !in_window[j]).collect();
    }
    drops
}

/// `majorities-ring-stochastic`: every node starts linked to itself (degree 1). Repeatedly order
/// the nodes by degree, shuffling within each degree; take the first node `a`; if its degree has
/// reached m = majority(n), stop; otherwise link `a` (both ways) to the first node in that order it
/// is not yet linked to. Finally each node drops every node it is not linked to (`invert-grudge`).
/// The result is symmetric and every node keeps at least m links, itself included.
fn majorities_ring_stochastic_idx<R: Rng + ?Sized>(n: usize, rng: &mut R) -> IdxGrudge {
    let m = majority(n);
    let mut linked = vec![vec![false; n]; n];
    let mut degree = vec![1usize; n];
    for (i, row) in linked.iter_mut().enumerate() {
        row[i] = true;
    }
    loop {
        let mut by_degree: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &d) in degree.iter().enumerate() {
            by_degree.entry(d).or_default().push(i);
        }
        let mut order = Vec::with_capacity(n);
        for mut group in by_degree.into_values() {
            group.shuffle(rng);
            order.extend(group);
        }
        let Some(&a) = order.first() else { break };
        if degree[a] >= m {
            break;
        }
        // degree[a] < m ≤ n, so some node is not yet linked to a.
        let Some(&b) = order.iter().find(|&&b| !linked[a][b]) else {
            break;
        };
        linked[a][b] = true;
        linked[b][a] = true;
        degree[a] += 1;
        degree[b] += 1;
    }
    (0..n)
        .map(|i| (0..n).filter(|&j| !linked[i][j]).collect())
        .collect()
}

fn to_grudge(idx: &IdxGrudge, nodes: &[String]) -> Grudge {
    idx.iter()
        .enumerate()
        .map(|(i, drops)| {
            (
                nodes[i].clone(),
                drops.iter().map(|&j| nodes[j].clone()).collect(),
            )
        })
        .collect()
}

fn describe_idx(idx: &IdxGrudge, nodes: &[String]) -> Value {
    let map: Map<String, Value> = idx
        .iter()
        .enumerate()
        .map(|(i, drops)| {
            (
                nodes[i].clone(),
                Value::Array(drops.iter().map(|&j| json!(nodes[j])).collect()),
            )
        })
        .collect();
    json!(["isolated", map])
}

// ---------------------------------------------------------------------------------------------
// Node specs (kill / pause targets)

/// Which nodes a kill or pause targets (Jepsen `combined.clj` `db-nodes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeSpec {
    /// Jepsen's `nil`: a random non-empty subset (1 + U[0, n) nodes of a shuffle).
    Random,
    /// One random node.
    One,
    /// ⌊(n − 1)/3⌋ random nodes.
    MinorityThird,
    /// majority(n) − 1 = ⌊n/2⌋ random nodes.
    Minority,
    /// majority(n) = ⌊n/2⌋ + 1 random nodes.
    Majority,
    /// Every node.
    All,
}

impl NodeSpec {
    /// The kill/pause targets, drawn uniformly, in Jepsen's `node-specs` order (no `:primaries`).
    pub const ALL: [NodeSpec; 6] = [
        NodeSpec::Random,
        NodeSpec::One,
        NodeSpec::MinorityThird,
        NodeSpec::Minority,
        NodeSpec::Majority,
        NodeSpec::All,
    ];

    /// The history value: the spec's name, or `null` for [`NodeSpec::Random`] (Jepsen's `nil`).
    pub fn value(self) -> Value {
        match self {
            NodeSpec::Random => Value::Null,
            NodeSpec::One => json!("one"),
            NodeSpec::MinorityThird => json!("minority-third"),
            NodeSpec::Minority => json!("minority"),
            NodeSpec::Majority => json!("majority"),
            NodeSpec::All => json!("all"),
        }
    }

    /// Resolves the spec to concrete nodes, returned in node-list order. Never panics; with few
    /// nodes a spec may select nobody (e.g. `minority` of 1).
    pub fn resolve<R: Rng + ?Sized>(self, nodes: &[String], rng: &mut R) -> Vec<String> {
        let n = nodes.len();
        let k = match self {
            NodeSpec::All => return nodes.to_vec(),
            NodeSpec::Random if n == 0 => 0,
            NodeSpec::Random => 1 + rng.random_range(0..n),
            NodeSpec::One => n.min(1),
            NodeSpec::MinorityThird => minority_third(n),
            NodeSpec::Minority => majority(n) - 1,
            NodeSpec::Majority => majority(n),
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        let mut chosen: Vec<usize> = order.into_iter().take(k).collect();
        chosen.sort_unstable();
        chosen.into_iter().map(|i| nodes[i].clone()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Ops

/// One nemesis operation, as the driver performs and records it.
#[derive(Debug, Clone, PartialEq)]
pub enum NemesisOp {
    /// Install `partition.grudge` in the network.
    StartPartition(Partition),
    /// Heal the network.
    StopPartition,
    /// SIGKILL `nodes`; they stay registered and their messages pile up.
    Kill {
        target: NodeSpec,
        nodes: Vec<String>,
    },
    /// (Re)start `nodes` (all nodes; idempotent for running ones) and send them `init` again.
    Start { nodes: Vec<String> },
    /// SIGSTOP `nodes`.
    Pause {
        target: NodeSpec,
        nodes: Vec<String>,
    },
    /// SIGCONT `nodes` (all nodes; idempotent).
    Resume { nodes: Vec<String> },
}

impl NemesisOp {
    /// The history `f`.
    pub fn f(&self) -> &'static str {
        match self {
            NemesisOp::StartPartition(_) => "start-partition",
            NemesisOp::StopPartition => "stop-partition",
            NemesisOp::Kill { .. } => "kill",
            NemesisOp::Start { .. } => "start",
            NemesisOp::Pause { .. } => "pause",
            NemesisOp::Resume { .. } => "resume",
        }
    }

    /// The invocation's value: the partition spec name (`"chosen"` for a partition chosen by
    /// hand), `null` for `stop-partition`, the node spec for kill/pause (`null` for a random
    /// subset), `"all"` for start/resume. Ops from the live dashboard record their own (the nodes
    /// chosen): see [`crate::coordinator::apply_nemesis_as`].
    pub fn invoke_value(&self) -> Value {
        match self {
            NemesisOp::StartPartition(p) => json!(p.spec.map_or("chosen", PartitionSpec::name)),
            NemesisOp::StopPartition => Value::Null,
            NemesisOp::Kill { target, .. } | NemesisOp::Pause { target, .. } => target.value(),
            NemesisOp::Start { .. } | NemesisOp::Resume { .. } => json!("all"),
        }
    }

    /// The completion's value: `["isolated", grudge]`, `"network-healed"`, or
    /// `{node: "killed" | "started" | "paused" | "resumed"}` over the targeted nodes.
    pub fn completion_value(&self) -> Value {
        let per_node = |nodes: &[String], what: &str| -> Value {
            Value::Object(nodes.iter().map(|n| (n.clone(), json!(what))).collect())
        };
        match self {
            NemesisOp::StartPartition(p) => p.description.clone(),
            NemesisOp::StopPartition => json!("network-healed"),
            NemesisOp::Kill { nodes, .. } => per_node(nodes, "killed"),
            NemesisOp::Start { nodes } => per_node(nodes, "started"),
            NemesisOp::Pause { nodes, .. } => per_node(nodes, "paused"),
            NemesisOp::Resume { nodes } => per_node(nodes, "resumed"),
        }
    }

    /// The nodes a process-level op acts on (empty for partition ops).
    pub fn nodes(&self) -> &[String] {
        match self {
            NemesisOp::Kill { nodes, .. }
            | NemesisOp::Start { nodes }
            | NemesisOp::Pause { nodes, .. }
            | NemesisOp::Resume { nodes } => nodes,
            NemesisOp::StartPartition(_) | NemesisOp::StopPartition => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The plan

/// An invalid plan configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NemesisError {
    #[error("--nemesis-interval must be a positive number of seconds, got {0}")]
    InvalidInterval(f64),
}

/// `gen/stagger`: the next scheduled time (none before the first op).
#[derive(Debug, Clone)]
struct Stagger {
    /// 2 · interval, ns: gaps are uniform in [0, dt).
    dt: u64,
    next: Option<u64>,
}

impl Stagger {
    fn due(&self, now: u64) -> u64 {
        self.next.unwrap_or(now).max(now)
    }

    fn emitted_at<R: Rng + ?Sized>(&mut self, t: u64, rng: &mut R) {
        let gap = if self.dt == 0 {
            0
        } else {
            rng.random_range(0..self.dt)
        };
        self.next = Some(t.saturating_add(gap));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbKind {
    Pause,
    Kill,
}

/// One `flip-flop` of the db package: the fault next if `down_next`, else the recovery.
#[derive(Debug, Clone)]
struct DbMode {
    kind: DbKind,
    down_next: bool,
}

#[derive(Debug, Clone)]
struct PartitionStream {
    stagger: Stagger,
    start_next: bool,
}

#[derive(Debug, Clone)]
struct DbStream {
    stagger: Stagger,
    modes: Vec<DbMode>,
    /// `gen/mix`'s index of the mode that produces the next op.
    mix: usize,
}

/// The nemesis schedule for one test. See the module docs.
#[derive(Debug, Clone)]
pub struct NemesisPlan {
    faults: FaultSet,
    nodes: Vec<String>,
    rng: ChaCha8Rng,
    partition: Option<PartitionStream>,
    db: Option<DbStream>,
}

impl NemesisPlan {
    /// A plan for `faults` on `nodes` with mean gap `interval_secs` per stream, seeded by `seed`.
    pub fn new(
        faults: FaultSet,
        interval_secs: f64,
        nodes: Vec<String>,
        seed: u64,
    ) -> Result<NemesisPlan, NemesisError> {
        Self::with_rng(
            faults,
            interval_secs,
            nodes,
            ChaCha8Rng::seed_from_u64(seed),
        )
    }

    /// Like [`NemesisPlan::new`] with a caller-made generator.
    pub fn with_rng(
        faults: FaultSet,
        interval_secs: f64,
        nodes: Vec<String>,
        mut rng: ChaCha8Rng,
    ) -> Result<NemesisPlan, NemesisError> {
        if !(interval_secs.is_finite() && interval_secs > 0.0) {
            return Err(NemesisError::InvalidInterval(interval_secs));
        }
        // Jepsen: (long (secs->nanos (* 2 dt))); `as` saturates.
        let dt = (2.0 * interval_secs * 1e9) as u64;
        let partition = faults.partition.then_some(PartitionStream {
            stagger: Stagger { dt, next: None },
            start_next: true,
        });
        let mut modes = Vec::new();
        if faults.pause {
            modes.push(DbMode {
                kind: DbKind::Pause,
                down_next: true,
            });
        }
        if faults.kill {
            modes.push(DbMode {
                kind: DbKind::Kill,
                down_next: true,
            });
        }
        let db = (!modes.is_empty()).then(|| {
            let mix = rng.random_range(0..modes.len());
            DbStream {
                stagger: Stagger { dt, next: None },
                modes,
                mix,
            }
        });
        Ok(NemesisPlan {
            faults,
            nodes,
            rng,
            partition,
            db,
        })
    }

    pub fn faults(&self) -> FaultSet {
        self.faults
    }

    /// True when no fault is enabled: [`NemesisPlan::next`] returns `None` and there are no final
    /// ops.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The nemesis is free at `now`: returns the next op and the time it is due (≥ `now`), or
    /// `None` if no fault is enabled. The driver performs it and calls `next` again with the time
    /// the op completed.
    pub fn next(&mut self, now: u64) -> Option<(u64, NemesisOp)> {
        let p_due = self.partition.as_ref().map(|p| p.stagger.due(now));
        let d_due = self.db.as_ref().map(|d| d.stagger.due(now));
        let use_partition = match (p_due, d_due) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(p), Some(d)) if p == d => self.rng.random_bool(0.5),
            (Some(p), Some(d)) => p < d,
        };
        if use_partition {
            let p = self.partition.as_mut().expect("partition stream");
            let due = p.stagger.due(now);
            let op = if p.start_next {
                let spec = PartitionSpec::ALL[self.rng.random_range(0..PartitionSpec::ALL.len())];
                NemesisOp::StartPartition(partition(spec, &self.nodes, &mut self.rng))
            } else {
                NemesisOp::StopPartition
            };
            p.start_next = !p.start_next;
            p.stagger.emitted_at(due, &mut self.rng);
            Some((due, op))
        } else {
            let d = self.db.as_mut().expect("db stream");
            let due = d.stagger.due(now);
            let mode = &mut d.modes[d.mix];
            let op = if mode.down_next {
                let target = NodeSpec::ALL[self.rng.random_range(0..NodeSpec::ALL.len())];
                let nodes = target.resolve(&self.nodes, &mut self.rng);
                match mode.kind {
                    DbKind::Kill => NemesisOp::Kill { target, nodes },
                    DbKind::Pause => NemesisOp::Pause { target, nodes },
                }
            } else {
                let nodes = self.nodes.clone();
                match mode.kind {
                    DbKind::Kill => NemesisOp::Start { nodes },
                    DbKind::Pause => NemesisOp::Resume { nodes },
                }
            };
            mode.down_next = !mode.down_next;
            d.mix = self.rng.random_range(0..d.modes.len());
            d.stagger.emitted_at(due, &mut self.rng);
            Some((due, op))
        }
    }

    /// The final nemesis ops, run in this order before the final phase's recovery sleep:
    /// `stop-partition` (if partitions), `resume` all (if pause), `start` all (if kill).
    pub fn final_ops(&self) -> Vec<NemesisOp> {
        final_ops(self.faults, &self.nodes)
    }
}

/// The final nemesis ops for `faults` over `nodes`, in order: `stop-partition` (if partitions),
/// `resume` all (if pause), `start` all (if kill). The real-time driver adds the faults injected
/// by hand from the live dashboard, so that they are undone before the final phase too.
pub fn final_ops(faults: FaultSet, nodes: &[String]) -> Vec<NemesisOp> {
    let mut ops = Vec::new();
    if faults.partition {
        ops.push(NemesisOp::StopPartition);
    }
    if faults.pause {
        ops.push(NemesisOp::Resume {
            nodes: nodes.to_vec(),
        });
    }
    if faults.kill {
        ops.push(NemesisOp::Start {
            nodes: nodes.to_vec(),
        });
    }
    ops
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
