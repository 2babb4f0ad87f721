//! Fault plans: partition shapes (grudges) and the nemesis schedule (spec §3 "Partitions", §2
//! "Generator phases", §10 for kill and pause).
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
//! limit: the driver must not issue an op whose `due` is at or after the cutoff (spec §2). Before
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

/// A partition shape drawn by each `start-partition` (spec §3).
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
    pub spec: PartitionSpec,
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
        spec,
        grudge: to_grudge(&idx, nodes),
        description: describe_idx(&idx, nodes),
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
    /// SIGKILL `nodes`; they stay registered and their messages pile up (spec §10).
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

    /// The invocation's value: the partition spec name, `null` for `stop-partition`, the node spec
    /// for kill/pause (`null` for a random subset), `"all"` for start/resume.
    pub fn invoke_value(&self) -> Value {
        match self {
            NemesisOp::StartPartition(p) => json!(p.spec.name()),
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
        let mut ops = Vec::new();
        if self.faults.partition {
            ops.push(NemesisOp::StopPartition);
        }
        if self.faults.pause {
            ops.push(NemesisOp::Resume {
                nodes: self.nodes.clone(),
            });
        }
        if self.faults.kill {
            ops.push(NemesisOp::Start {
                nodes: self.nodes.clone(),
            });
        }
        ops
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn drops<'a>(g: &'a Grudge, node: &str) -> &'a HashSet<String> {
        g.get(node).expect("every node is a key")
    }

    fn is_symmetric(g: &Grudge) -> bool {
        g.iter()
            .all(|(r, srcs)| srcs.iter().all(|s| g.get(s).is_some_and(|b| b.contains(r))))
    }

    /// Nodes with a non-empty drop set.
    fn cut_nodes(g: &Grudge) -> Vec<&String> {
        g.iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn fault_sets_parse_like_maelstrom() {
        let all: FaultSet = "kill,pause,partition".parse().unwrap();
        assert_eq!(
            all,
            FaultSet {
                partition: true,
                kill: true,
                pause: true
            }
        );
        assert_eq!(all.to_string(), "partition,kill,pause");
        let p: FaultSet = "partition".parse().unwrap();
        assert!(p.partition && !p.kill && !p.pause);
        let two: FaultSet = "pause , kill,kill".parse().unwrap();
        assert_eq!(
            two,
            FaultSet {
                partition: false,
                kill: true,
                pause: true
            }
        );
        assert!(FaultSet::default().is_empty());
        assert_eq!(
            [Fault::Kill, Fault::Pause]
                .into_iter()
                .collect::<FaultSet>(),
            two
        );
        for bad in ["", "partitions", " partition", "partition,", "crash"] {
            let err = bad.parse::<FaultSet>().unwrap_err();
            assert!(err.to_string().contains("partition, kill, pause"), "{err}");
        }
    }

    #[test]
    fn partition_spec_names() {
        for spec in PartitionSpec::ALL {
            assert_eq!(spec.name().parse::<PartitionSpec>().unwrap(), spec);
        }
        assert!("primaries".parse::<PartitionSpec>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(
            (0..8).map(majority).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3, 3, 4, 4]
        );
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 7, 25].map(minority_third),
            [0, 0, 0, 0, 1, 1, 2, 8]
        );
    }

    #[test]
    fn one_isolates_a_single_node_both_ways() {
        for n in [3, 5, 25] {
            for seed in 0..20 {
                let p = partition(PartitionSpec::One, &nodes(n), &mut rng(seed));
                assert_eq!(p.grudge.len(), n);
                assert!(is_symmetric(&p.grudge));
                let loners: Vec<_> = p
                    .grudge
                    .iter()
                    .filter(|(_, s)| s.len() == n - 1)
                    .map(|(k, _)| k)
                    .collect();
                assert_eq!(loners.len(), 1);
                let loner = loners[0];
                for (node, srcs) in &p.grudge {
                    if node != loner {
                        assert_eq!(srcs.len(), 1);
                        assert!(srcs.contains(loner));
                    }
                }
            }
        }
    }

    #[test]
    fn majority_splits_at_half() {
        for n in [3, 5, 25] {
            for seed in 0..20 {
                let p = partition(PartitionSpec::Majority, &nodes(n), &mut rng(seed));
                assert!(is_symmetric(&p.grudge));
                let small: Vec<_> = p
                    .grudge
                    .iter()
                    .filter(|(_, s)| s.len() == n - n / 2)
                    .collect();
                let big: Vec<_> = p.grudge.iter().filter(|(_, s)| s.len() == n / 2).collect();
                assert_eq!(small.len(), n / 2);
                assert_eq!(big.len(), n - n / 2);
                // Each side drops exactly the other side.
                for (_, srcs) in &small {
                    assert!(srcs.iter().all(|s| big.iter().any(|(b, _)| *b == s)));
                }
            }
        }
    }

    #[test]
    fn minority_third_sizes() {
        let p = partition(PartitionSpec::MinorityThird, &nodes(3), &mut rng(1));
        assert_eq!(p.grudge.len(), 3);
        assert!(cut_nodes(&p.grudge).is_empty(), "a no-op for n = 3");
        for seed in 0..20 {
            let p = partition(PartitionSpec::MinorityThird, &nodes(5), &mut rng(seed));
            assert!(is_symmetric(&p.grudge));
            assert_eq!(p.grudge.values().filter(|s| s.len() == 4).count(), 1);
            assert_eq!(p.grudge.values().filter(|s| s.len() == 1).count(), 4);
            let p = partition(PartitionSpec::MinorityThird, &nodes(25), &mut rng(seed));
            assert!(is_symmetric(&p.grudge));
            assert_eq!(p.grudge.values().filter(|s| s.len() == 17).count(), 8);
            assert_eq!(p.grudge.values().filter(|s| s.len() == 8).count(), 17);
        }
    }

    #[test]
    fn majorities_ring_three_is_a_one_directional_cycle() {
        for seed in 0..20 {
            let g = majorities_ring(&nodes(3), &mut rng(seed));
            assert_eq!(g.len(), 3);
            for (r, srcs) in &g {
                assert_eq!(srcs.len(), 1, "{g:?}");
                let s = srcs.iter().next().unwrap();
                assert_ne!(s, r);
                // One-directional: the node r drops does not drop r.
                assert!(!drops(&g, s).contains(r), "{g:?}");
            }
        }
    }

    #[test]
    fn majorities_ring_five_hears_exactly_two_ring_neighbours() {
        for seed in 0..50 {
            let ns = nodes(5);
            let g = majorities_ring(&ns, &mut rng(seed));
            assert!(is_symmetric(&g));
            // Who hears whom (excluding self) forms one 5-cycle.
            let hears = |a: &String| -> Vec<&String> {
                ns.iter()
                    .filter(|b| *b != a && !drops(&g, a).contains(*b))
                    .collect()
            };
            for a in &ns {
                assert_eq!(drops(&g, a).len(), 2);
                assert_eq!(hears(a).len(), 2);
            }
            let mut seen = vec![&ns[0]];
            let mut cur = &ns[0];
            let mut prev: Option<&String> = None;
            for _ in 0..4 {
                let next = *hears(cur).iter().find(|x| Some(**x) != prev).unwrap();
                assert!(!seen.contains(&next), "{g:?}");
                seen.push(next);
                prev = Some(cur);
                cur = next;
            }
            assert!(hears(cur).contains(&&ns[0]));
            // Every node sees a majority (3, itself included), and no two see the same one.
            let views: HashSet<Vec<&String>> = ns
                .iter()
                .map(|a| {
                    let mut v: Vec<&String> =
                        ns.iter().filter(|b| !drops(&g, a).contains(*b)).collect();
                    v.sort();
                    v
                })
                .collect();
            assert_eq!(views.len(), 5);
        }
    }

    #[test]
    fn majorities_ring_25_keeps_a_majority_everywhere() {
        for seed in 0..20 {
            let ns = nodes(25);
            let g = majorities_ring(&ns, &mut rng(seed));
            assert_eq!(g.len(), 25);
            assert!(is_symmetric(&g));
            for (r, srcs) in &g {
                assert!(!srcs.contains(r));
                assert!(25 - srcs.len() >= 13, "{r} keeps {} links", 25 - srcs.len());
            }
            assert!(!cut_nodes(&g).is_empty());
        }
    }

    #[test]
    fn tiny_and_empty_clusters_never_panic() {
        for n in 0..3 {
            for spec in PartitionSpec::ALL {
                let p = partition(spec, &nodes(n), &mut rng(0));
                assert_eq!(p.grudge.len(), n);
                let cuts_two =
                    n == 2 && matches!(spec, PartitionSpec::One | PartitionSpec::Majority);
                assert_eq!(
                    cut_nodes(&p.grudge).len(),
                    if cuts_two { 2 } else { 0 },
                    "{spec} n={n}"
                );
            }
            for spec in NodeSpec::ALL {
                let chosen = spec.resolve(&nodes(n), &mut rng(0));
                assert!(chosen.len() <= n);
            }
        }
        let mut plan = NemesisPlan::new(
            FaultSet {
                partition: true,
                kill: true,
                pause: true,
            },
            1.0,
            Vec::new(),
            3,
        )
        .unwrap();
        let mut now = 0;
        for _ in 0..50 {
            let (due, op) = plan.next(now).unwrap();
            assert!(op.nodes().is_empty() || matches!(op, NemesisOp::Start { .. }));
            now = due;
        }
    }

    #[test]
    fn description_and_values() {
        let ns = nodes(12);
        let g = complete_grudge(&[
            vec!["n10".into()],
            ns.iter().filter(|n| *n != "n10").cloned().collect(),
        ]);
        let p = Partition {
            spec: PartitionSpec::One,
            description: isolated_value(&g, &ns),
            grudge: g,
        };
        let v = p.description.clone();
        assert_eq!(v[0], "isolated");
        assert_eq!(v[1]["n2"], json!(["n10"]));
        let loner = v[1]["n10"].as_array().unwrap();
        let expect: Vec<Value> = ns
            .iter()
            .filter(|n| *n != "n10")
            .map(|n| json!(n))
            .collect();
        assert_eq!(loner, &expect, "sources in node-list order");
        // The internal description agrees with isolated_value.
        let p2 = partition(PartitionSpec::MajoritiesRing, &nodes(25), &mut rng(9));
        assert_eq!(p2.description, isolated_value(&p2.grudge, &nodes(25)));
        let op = NemesisOp::StartPartition(p);
        assert_eq!(op.f(), "start-partition");
        assert_eq!(op.invoke_value(), json!("one"));
        assert_eq!(op.completion_value(), v);
        assert_eq!(NemesisOp::StopPartition.f(), "stop-partition");
        assert_eq!(NemesisOp::StopPartition.invoke_value(), Value::Null);
        assert_eq!(
            NemesisOp::StopPartition.completion_value(),
            json!("network-healed")
        );
        let kill = NemesisOp::Kill {
            target: NodeSpec::Random,
            nodes: vec!["n1".into()],
        };
        assert_eq!((kill.f(), kill.invoke_value()), ("kill", Value::Null));
        assert_eq!(kill.completion_value(), json!({"n1": "killed"}));
        let pause = NemesisOp::Pause {
            target: NodeSpec::Minority,
            nodes: vec!["n0".into()],
        };
        assert_eq!(
            (pause.f(), pause.invoke_value()),
            ("pause", json!("minority"))
        );
        let start = NemesisOp::Start { nodes: nodes(2) };
        assert_eq!((start.f(), start.invoke_value()), ("start", json!("all")));
        assert_eq!(
            start.completion_value(),
            json!({"n0": "started", "n1": "started"})
        );
        let resume = NemesisOp::Resume { nodes: nodes(1) };
        assert_eq!(
            (resume.f(), resume.completion_value()),
            ("resume", json!({"n0": "resumed"}))
        );
    }

    #[test]
    fn node_specs_resolve_to_the_right_sizes() {
        let ns = nodes(5);
        let mut r = rng(4);
        for _ in 0..50 {
            assert_eq!(NodeSpec::One.resolve(&ns, &mut r).len(), 1);
            assert_eq!(NodeSpec::MinorityThird.resolve(&ns, &mut r).len(), 1);
            assert_eq!(NodeSpec::Minority.resolve(&ns, &mut r).len(), 2);
            assert_eq!(NodeSpec::Majority.resolve(&ns, &mut r).len(), 3);
            assert_eq!(NodeSpec::All.resolve(&ns, &mut r), ns);
            let k = NodeSpec::Random.resolve(&ns, &mut r);
            assert!((1..=5).contains(&k.len()));
            // Node-list order, no repeats.
            let mut sorted = k.clone();
            sorted.sort_by_key(|n| n[1..].parse::<u32>().unwrap());
            sorted.dedup();
            assert_eq!(sorted, k);
        }
        assert_eq!(NodeSpec::Random.value(), Value::Null);
        assert_eq!(NodeSpec::MinorityThird.value(), json!("minority-third"));
    }

    /// Drives a plan with zero-duration ops; returns (due, op) pairs.
    fn run(plan: &mut NemesisPlan, count: usize) -> Vec<(u64, NemesisOp)> {
        let mut now = 0;
        let mut out = Vec::new();
        for _ in 0..count {
            let (due, op) = plan.next(now).unwrap();
            assert!(due >= now);
            now = due;
            out.push((due, op));
        }
        out
    }

    #[test]
    fn no_faults_no_ops() {
        let mut plan = NemesisPlan::new(FaultSet::default(), 10.0, nodes(5), 1).unwrap();
        assert!(plan.is_empty());
        assert!(plan.next(0).is_none());
        assert!(plan.final_ops().is_empty());
    }

    #[test]
    fn invalid_intervals_are_rejected() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(NemesisPlan::new(FaultSet::default(), bad, nodes(3), 1).is_err());
        }
        // A tiny interval is fine: gaps collapse to 0.
        let f = FaultSet {
            partition: true,
            ..FaultSet::default()
        };
        let mut plan = NemesisPlan::new(f, 1e-12, nodes(3), 1).unwrap();
        assert!(run(&mut plan, 5).iter().all(|(t, _)| *t == 0));
    }

    #[test]
    fn partition_schedule_alternates_with_bounded_gaps() {
        let f = FaultSet {
            partition: true,
            ..FaultSet::default()
        };
        let mut plan = NemesisPlan::new(f, 10.0, nodes(5), 42).unwrap();
        let ops = run(&mut plan, 400);
        assert_eq!(ops[0].0, 0, "first start-partition at t = 0");
        let mut specs = HashSet::new();
        let mut gap_sum = 0;
        for (i, (t, op)) in ops.iter().enumerate() {
            if i % 2 == 0 {
                let NemesisOp::StartPartition(p) = op else {
                    panic!("op {i} is {op:?}")
                };
                specs.insert(p.spec);
            } else {
                assert_eq!(op, &NemesisOp::StopPartition);
            }
            if i > 0 {
                let gap = t - ops[i - 1].0;
                assert!(gap < 20 * SEC);
                gap_sum += gap;
            }
        }
        assert_eq!(specs.len(), 4, "every spec is drawn");
        let mean = gap_sum as f64 / 399.0 / SEC as f64;
        assert!((mean - 10.0).abs() < 1.0, "{mean}");
        assert_eq!(plan.final_ops(), vec![NemesisOp::StopPartition]);
    }

    #[test]
    fn late_nemesis_reschedules_from_now() {
        let f = FaultSet {
            partition: true,
            ..FaultSet::default()
        };
        let mut plan = NemesisPlan::new(f, 1.0, nodes(5), 7).unwrap();
        let (t0, _) = plan.next(0).unwrap();
        assert_eq!(t0, 0);
        // The first op took 5 s (> 2·interval): the next is due immediately, and the one after
        // within 2 s of it.
        let (t1, op1) = plan.next(5 * SEC).unwrap();
        assert_eq!((t1, op1), (5 * SEC, NemesisOp::StopPartition));
        let (t2, _) = plan.next(t1).unwrap();
        assert!(t2 >= t1 && t2 < t1 + 2 * SEC);
        // Asking early returns the scheduled time, not now.
        let (t3, _) = plan.next(t2).unwrap();
        assert!(t3 >= t2 && t3 < t2 + 2 * SEC);
    }

    #[test]
    fn kill_and_pause_flip_flops_are_mixed() {
        let f = FaultSet {
            partition: false,
            kill: true,
            pause: true,
        };
        let ns = nodes(5);
        let mut plan = NemesisPlan::new(f, 10.0, ns.clone(), 5).unwrap();
        let ops = run(&mut plan, 600);
        assert_eq!(ops[0].0, 0);
        let (mut kill_down, mut pause_down) = (false, false);
        let mut targets = HashSet::new();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (i, (t, op)) in ops.iter().enumerate() {
            *counts.entry(op.f()).or_default() += 1;
            match op {
                NemesisOp::Kill { target, nodes } => {
                    assert!(!kill_down, "kill follows start");
                    kill_down = true;
                    targets.insert(*target);
                    let ok = match target {
                        NodeSpec::Random => (1..=5).contains(&nodes.len()),
                        NodeSpec::One | NodeSpec::MinorityThird => nodes.len() == 1,
                        NodeSpec::Minority => nodes.len() == 2,
                        NodeSpec::Majority => nodes.len() == 3,
                        NodeSpec::All => nodes == &ns,
                    };
                    assert!(ok, "{target:?} {nodes:?}");
                }
                NemesisOp::Start { nodes } => {
                    assert!(kill_down, "start follows kill");
                    kill_down = false;
                    assert_eq!(nodes, &ns);
                }
                NemesisOp::Pause { target, .. } => {
                    assert!(!pause_down);
                    pause_down = true;
                    targets.insert(*target);
                }
                NemesisOp::Resume { nodes } => {
                    assert!(pause_down);
                    pause_down = false;
                    assert_eq!(nodes, &ns);
                }
                other => panic!("unexpected {other:?}"),
            }
            if i > 0 {
                assert!(t - ops[i - 1].0 < 20 * SEC);
            }
        }
        assert_eq!(targets.len(), NodeSpec::ALL.len());
        for f in ["kill", "start", "pause", "resume"] {
            assert!(counts[f] > 100, "{counts:?}");
        }
        // Both kinds are interleaved, not run one after the other.
        let switches = ops
            .windows(2)
            .filter(|w| {
                let kind =
                    |op: &NemesisOp| matches!(op, NemesisOp::Kill { .. } | NemesisOp::Start { .. });
                kind(&w[0].1) != kind(&w[1].1)
            })
            .count();
        assert!(switches > 100);
        assert_eq!(
            plan.final_ops(),
            vec![
                NemesisOp::Resume { nodes: ns.clone() },
                NemesisOp::Start { nodes: ns.clone() }
            ]
        );
    }

    #[test]
    fn partition_and_db_streams_run_side_by_side() {
        let f = FaultSet {
            partition: true,
            kill: true,
            pause: false,
        };
        let ns = nodes(3);
        let mut plan = NemesisPlan::new(f, 10.0, ns.clone(), 11).unwrap();
        let ops = run(&mut plan, 400);
        // Both streams open at t = 0.
        assert_eq!(ops[0].0, 0);
        assert_eq!(ops[1].0, 0);
        assert_ne!(
            ops[0].1.f().contains("partition"),
            ops[1].1.f().contains("partition")
        );
        // Each stream alternates and keeps its own gaps; together ≈ 2 ops per interval.
        let part: Vec<_> = ops
            .iter()
            .filter(|(_, o)| o.f().contains("partition"))
            .collect();
        let db: Vec<_> = ops
            .iter()
            .filter(|(_, o)| !o.f().contains("partition"))
            .collect();
        for stream in [&part, &db] {
            for w in stream.windows(2) {
                assert_ne!(w[0].1.f(), w[1].1.f());
                assert!(w[1].0 - w[0].0 < 20 * SEC);
            }
        }
        let span = ops.last().unwrap().0 as f64 / SEC as f64;
        let rate = 400.0 / span;
        assert!((rate - 0.2).abs() < 0.03, "{rate} ops/s");
        assert_eq!(
            plan.final_ops(),
            vec![NemesisOp::StopPartition, NemesisOp::Start { nodes: ns }]
        );
    }

    #[test]
    fn plans_are_deterministic_per_seed() {
        let f = FaultSet {
            partition: true,
            kill: true,
            pause: true,
        };
        let a = run(&mut NemesisPlan::new(f, 2.5, nodes(25), 99).unwrap(), 200);
        let b = run(&mut NemesisPlan::new(f, 2.5, nodes(25), 99).unwrap(), 200);
        let c = run(&mut NemesisPlan::new(f, 2.5, nodes(25), 100).unwrap(), 200);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for seed in 0..5 {
            let x = partition(PartitionSpec::MajoritiesRing, &nodes(25), &mut rng(seed));
            let y = partition(PartitionSpec::MajoritiesRing, &nodes(25), &mut rng(seed));
            assert_eq!(x, y);
        }
    }

    proptest! {
        #[test]
        fn grudges_are_well_formed(n in 0usize..40, seed in any::<u64>(), which in 0usize..4) {
            let ns = nodes(n);
            let spec = PartitionSpec::ALL[which];
            let p = partition(spec, &ns, &mut rng(seed));
            prop_assert_eq!(p.grudge.len(), n);
            for (r, srcs) in &p.grudge {
                prop_assert!(!srcs.contains(r));
                prop_assert!(srcs.iter().all(|s| ns.contains(s)));
            }
            match spec {
                PartitionSpec::MajoritiesRing if n == 3 => {}
                PartitionSpec::MajoritiesRing => {
                    prop_assert!(is_symmetric(&p.grudge));
                    let m = majority(n);
                    for srcs in p.grudge.values() {
                        prop_assert!(n - srcs.len() >= m);
                    }
                }
                _ => prop_assert!(is_symmetric(&p.grudge)),
            }
        }
    }
}
