//! The dependency graph and the cycle search (see the parent module for what the edges mean).
//!
//! Edges are kept as a bit mask per (from, to) pair, so one pair can be, say, both `ww` and
//! `realtime`. [`search`] runs Tarjan's strongly-connected-components algorithm over the whole
//! graph; a cycle lies within one component, so each component of two or more transactions is
//! searched alone. For each kind of cycle (most severe first) the component is split again by
//! Tarjan over the edges that kind may use, and from an edge of the kind the cycle must contain,
//! whose ends lie in one sub-component, a breadth-first search finds the shortest way back. The
//! search runs over (transaction, whether an `rw` edge was used) states, so that a G-single
//! uses exactly one `rw` edge and a G2-class cycle at least one, even when it is searched from a
//! `process` or `realtime` edge; such searches may need several starts.

use std::collections::{HashMap, VecDeque};

use super::Atom;

pub const WW: u8 = 1;
pub const WR: u8 = 2;
pub const RW: u8 = 4;
pub const PROCESS: u8 = 8;
pub const REALTIME: u8 = 16;

/// The name of one edge kind.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        PROCESS => "process",
        _ => "realtime",
    }
}

/// A graph under construction: edges in any order, with the key that explains each data edge.
pub struct Graph {
    n: usize,
    edges: Vec<(u32, u32, u8)>,
    why: HashMap<(u32, u32, u8), Atom>,
}

impl Graph {
    /// A graph over transactions `0..n`.
    pub fn new(n: usize) -> Graph {
        Graph {
            n,
            edges: Vec::new(),
            why: HashMap::new(),
        }
    }

    /// Adds an edge `from → to` of `kind`, explained by `key`; self-edges are ignored.
    pub fn add(&mut self, from: usize, to: usize, kind: u8, key: Option<&Atom>) {
        if from == to || from >= self.n || to >= self.n {
            return;
        }
        let (a, b) = (from as u32, to as u32);
        self.edges.push((a, b, kind));
        if let Some(k) = key {
            self.why.entry((a, b, kind)).or_insert_with(|| k.clone());
        }
    }

    /// Edges added so far (with repeats).
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// The adjacency lists, merged per pair.
    pub fn freeze(mut self) -> Frozen {
        self.edges.sort_unstable();
        let mut offsets = vec![0u32; self.n + 1];
        let mut targets: Vec<u32> = Vec::with_capacity(self.edges.len());
        let mut masks: Vec<u8> = Vec::with_capacity(self.edges.len());
        let mut last: Option<(u32, u32)> = None;
        for &(a, b, k) in &self.edges {
            if last == Some((a, b)) {
                if let Some(m) = masks.last_mut() {
                    *m |= k;
                }
                continue;
            }
            last = Some((a, b));
            targets.push(b);
            masks.push(k);
            offsets[a as usize + 1] += 1;
        }
        for i in 0..self.n {
            offsets[i + 1] += offsets[i];
        }
        Frozen {
            n: self.n,
            offsets,
            targets,
            masks,
            why: self.why,
        }
    }
}

/// Adds Elle's `realtime` edges to `g`: `a → b` when `a` completed before `b` was invoked.
/// `spans` gives each vertex's invocation time and, when it completed, its completion time. A
/// vertex that never completed (an `info` op: it may take effect at any later time) can follow
/// others but precedes nothing, as in Elle's realtime graph, which links each `ok` completion to
/// the ops invoked after it whatever they end as.
///
/// Only the edges from the completions no later completion has covered are kept (Elle's
/// transitive reduction), which preserves every path: events are taken in time order; the
/// frontier holds the completed vertices no later completion has an edge from; each invocation
/// gets an edge from every one of them; a completion replaces in the frontier those it has an
/// edge from. At equal times invocations come first: an op invoked at the instant another
/// completed is concurrent with it.
pub fn add_realtime_edges(
    g: &mut Graph,
    spans: impl IntoIterator<Item = (usize, u64, Option<u64>)>,
) {
    // (time, is an invocation, vertex, whether it completes).
    let mut events: Vec<(u64, bool, usize, bool)> = Vec::new();
    for (v, invoked, completed) in spans {
        events.push((invoked, true, v, completed.is_some()));
        if let Some(done) = completed {
            events.push((done, false, v, true));
        }
    }
    events.sort_by_key(|&(time, invoke, v, _)| (time, !invoke, v));
    let mut frontier: Vec<usize> = Vec::new();
    let mut preds: HashMap<usize, Vec<usize>> = HashMap::new();
    for (_, invoke, v, completes) in events {
        if invoke {
            for &p in &frontier {
                g.add(p, v, REALTIME, None);
            }
            if completes {
                preds.insert(v, frontier.clone());
            }
        } else {
            let covered = preds.remove(&v).unwrap_or_default();
            frontier.retain(|p| !covered.contains(p));
            frontier.push(v);
        }
    }
}

/// A finished graph in compressed adjacency form.
pub struct Frozen {
    n: usize,
    offsets: Vec<u32>,
    targets: Vec<u32>,
    masks: Vec<u8>,
    why: HashMap<(u32, u32, u8), Atom>,
}

impl Frozen {
    fn out(&self, v: u32) -> impl Iterator<Item = (u32, u8)> + '_ {
        let (a, b) = (
            self.offsets[v as usize] as usize,
            self.offsets[v as usize + 1] as usize,
        );
        self.targets[a..b]
            .iter()
            .copied()
            .zip(self.masks[a..b].iter().copied())
    }

    /// The key behind the edge, if it is a data edge.
    pub fn explain(&self, from: usize, to: usize, kind: u8) -> Option<&Atom> {
        self.why.get(&(from as u32, to as u32, kind))
    }
}

/// One step of a cycle: the edge `from → to`, of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub from: usize,
    pub to: usize,
    pub kind: u8,
}

/// A cycle found, and its name.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub name: String,
    pub steps: Vec<Step>,
}

/// What [`search`] found.
#[derive(Debug, Default)]
pub struct Found {
    pub cycles: Vec<Cycle>,
    /// Components left unsearched (or half searched) when the budget ran out.
    pub timed_out: usize,
}

/// Names a cycle by its edges (see the parent module).
pub fn classify(steps: &[Step]) -> String {
    let rw: Vec<bool> = steps.iter().map(|s| s.kind == RW).collect();
    let rws = rw.iter().filter(|&&r| r).count();
    let base = match rws {
        0 if steps.iter().any(|s| s.kind == WR) => "G1c",
        0 => "G0",
        1 => "G-single-item",
        _ => {
            let n = rw.len();
            let adjacent = (0..n).any(|i| rw[i] && rw[(i + 1) % n]);
            if adjacent {
                "G2-item"
            } else {
                "G-nonadjacent-item"
            }
        }
    };
    let suffix = if steps.iter().any(|s| s.kind == REALTIME) {
        "-realtime"
    } else if steps.iter().any(|s| s.kind == PROCESS) {
        "-process"
    } else {
        ""
    };
    format!("{base}{suffix}")
}

/// (class, level) of a cycle name: class 0 G0, 1 G1c, 2 G-single, 3 G-nonadjacent/G2; level 0
/// data, 1 process, 2 realtime.
fn rank(name: &str) -> (usize, usize) {
    let level = if name.ends_with("-realtime") {
        2
    } else if name.ends_with("-process") {
        1
    } else {
        0
    };
    let class = if name.starts_with("G0") {
        0
    } else if name.starts_with("G1c") {
        1
    } else if name.starts_with("G-single") {
        2
    } else {
        3
    };
    (class, level)
}

/// Whether a cycle of (class, level) is implied by one found already: G0 implies G1c, G-single
/// implies G-nonadjacent and G2, and each implies its own process and realtime forms.
fn implied(found: &[(usize, usize)], class: usize, level: usize) -> bool {
    let chain = |c: usize| c / 2;
    found
        .iter()
        .any(|&(c, l)| l <= level && chain(c) == chain(class) && c <= class)
}

/// The search's reusable per-vertex arrays, reset through the list of touched vertices.
struct Scratch {
    index: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    member: Vec<u32>,
    stamp: u32,
    touched: Vec<u32>,
    seen: Vec<u32>,
    parent: Vec<(u32, u8)>,
    bfs_stamp: u32,
}

const UNSET: u32 = u32::MAX;

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            index: vec![UNSET; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            member: vec![0; n],
            stamp: 0,
            touched: Vec::new(),
            seen: vec![0; 2 * n],
            parent: vec![(0, 0); 2 * n],
            bfs_stamp: 0,
        }
    }

    /// Marks `verts` as the current vertex set; returns its stamp.
    fn enter(&mut self, verts: &[u32]) -> u32 {
        self.stamp += 1;
        for &v in verts {
            self.member[v as usize] = self.stamp;
        }
        self.stamp
    }
}

/// Tarjan's algorithm (iterative) over the vertices `verts` (the current member set of `s`),
/// following only edges whose mask meets `allowed`; components of two or more vertices.
fn sccs(g: &Frozen, s: &mut Scratch, verts: &[u32], allowed: u8, steps: &mut u64) -> Vec<Vec<u32>> {
    let stamp = s.enter(verts);
    let mut out = Vec::new();
    let mut next_index = 0u32;
    let mut stack: Vec<u32> = Vec::new();
    // Call stack: (vertex, position in its adjacency).
    let mut calls: Vec<(u32, u32)> = Vec::new();
    for &root in verts {
        if s.index[root as usize] != UNSET {
            continue;
        }
        calls.push((root, s.offsets_start(g, root)));
        s.index[root as usize] = next_index;
        s.low[root as usize] = next_index;
        next_index += 1;
        s.touched.push(root);
        stack.push(root);
        s.on_stack[root as usize] = true;
        while let Some(&mut (v, ref mut pos)) = calls.last_mut() {
            let end = g.offsets[v as usize + 1];
            let mut descended = false;
            while *pos < end {
                let i = *pos as usize;
                *pos += 1;
                *steps += 1;
                let (w, m) = (g.targets[i], g.masks[i]);
                if m & allowed == 0 || s.member[w as usize] != stamp {
                    continue;
                }
                if s.index[w as usize] == UNSET {
                    s.index[w as usize] = next_index;
                    s.low[w as usize] = next_index;
                    next_index += 1;
                    s.touched.push(w);
                    stack.push(w);
                    s.on_stack[w as usize] = true;
                    calls.push((w, g.offsets[w as usize]));
                    descended = true;
                    break;
                } else if s.on_stack[w as usize] {
                    let iw = s.index[w as usize];
                    let lv = &mut s.low[v as usize];
                    *lv = (*lv).min(iw);
                }
            }
            if descended {
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                let lv = s.low[v as usize];
                let lp = &mut s.low[parent as usize];
                *lp = (*lp).min(lv);
            }
            if s.low[v as usize] == s.index[v as usize] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    s.on_stack[w as usize] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    out.push(comp);
                }
            }
        }
    }
    for v in s.touched.drain(..) {
        s.index[v as usize] = UNSET;
    }
    out
}

impl Scratch {
    fn offsets_start(&self, g: &Frozen, v: u32) -> u32 {
        g.offsets[v as usize]
    }
}

/// The label an edge with mask `m` gets among `allowed`: data kinds first (`ww`, `wr`, then
/// `rw`), then `process`, then `realtime`.
fn label(m: u8, allowed: u8) -> Option<u8> {
    let m = m & allowed;
    [WW, WR, RW, PROCESS, REALTIME]
        .into_iter()
        .find(|&k| m & k != 0)
}

/// A cycle in the current member set `stamp` using edges in `allowed`, containing an edge of
/// `required` (searched from), with at most one `rw` edge when `capped` and at least one when
/// `need_rw`. `Err` when the budget ran out.
#[allow(clippy::too_many_arguments)]
fn find_in(
    g: &Frozen,
    s: &mut Scratch,
    verts: &[u32],
    stamp: u32,
    allowed: u8,
    required: u8,
    capped: bool,
    need_rw: bool,
    steps: &mut u64,
    budget: u64,
) -> Result<Option<Vec<Step>>, ()> {
    for &a in verts {
        for (b, m) in g.out(a) {
            if m & allowed & required == 0 || s.member[b as usize] != stamp {
                continue;
            }
            // The start edge is labelled with the kind it is required for.
            let kind = label(m & required, allowed).unwrap_or(required);
            let start_rw = kind == RW;
            if let Some(path) = bfs(
                g, s, stamp, b, a, start_rw, allowed, capped, need_rw, steps, budget,
            )? {
                let mut cycle = vec![Step {
                    from: a as usize,
                    to: b as usize,
                    kind,
                }];
                cycle.extend(path);
                return Ok(Some(cycle));
            }
        }
    }
    Ok(None)
}

/// Breadth-first search from `from` to `to` within member set `stamp`, over states (vertex,
/// whether an `rw` edge has been used, counting the start edge: `start_rw`). With `capped`, at
/// most one `rw` edge may be used; with `need_rw`, the way back must end having used one. An edge
/// that is both `rw` and something else may be taken as either.
#[allow(clippy::too_many_arguments)]
fn bfs(
    g: &Frozen,
    s: &mut Scratch,
    stamp: u32,
    from: u32,
    to: u32,
    start_rw: bool,
    allowed: u8,
    capped: bool,
    need_rw: bool,
    steps: &mut u64,
    budget: u64,
) -> Result<Option<Vec<Step>>, ()> {
    s.bfs_stamp += 1;
    let mark = s.bfs_stamp;
    let state = |v: u32, r: bool| (v as usize) * 2 + usize::from(r);
    let mut queue = VecDeque::new();
    s.seen[state(from, start_rw)] = mark;
    queue.push_back((from, start_rw));
    while let Some((v, r)) = queue.pop_front() {
        if v == to && (r || !need_rw) {
            let mut path = Vec::new();
            let mut cur = state(v, r);
            while cur != state(from, start_rw) {
                let (prev, kind) = s.parent[cur];
                path.push(Step {
                    from: prev as usize / 2,
                    to: cur / 2,
                    kind,
                });
                cur = prev as usize;
            }
            path.reverse();
            return Ok(Some(path));
        }
        for (w, m) in g.out(v) {
            *steps += 1;
            if *steps > budget {
                return Err(());
            }
            if s.member[w as usize] != stamp {
                continue;
            }
            let plain = label(m, allowed & !RW).map(|k| (k, r));
            let as_rw = (m & allowed & RW != 0 && !(capped && r)).then_some((RW, true));
            for (kind, r2) in [plain, as_rw].into_iter().flatten() {
                let st = state(w, r2);
                if s.seen[st] == mark {
                    continue;
                }
                s.seen[st] = mark;
                s.parent[st] = (state(v, r) as u32, kind);
                queue.push_back((w, r2));
            }
        }
    }
    Ok(None)
}

/// The kinds of cycle searched for, most severe first: (data edges allowed, required edge at
/// the data level, at most one `rw`, names it can produce).
const CLASSES: [(u8, u8, bool, &[&str]); 4] = [
    (WW, WW, false, &["G0"]),
    (WW | WR, WR, false, &["G1c"]),
    (WW | WR | RW, RW, true, &["G-single-item"]),
    (WW | WR | RW, RW, false, &["G-nonadjacent-item", "G2-item"]),
];

/// Searches every component for cycles of the kinds `wanted` accepts (by name), at the data
/// level and, with `realtime`, with `process` and then `realtime` edges too; at most `budget`
/// steps in all.
pub fn search(g: &Frozen, realtime: bool, wanted: &dyn Fn(&str) -> bool, budget: u64) -> Found {
    let mut found = Found::default();
    let mut s = Scratch::new(g.n);
    let all: Vec<u32> = (0..g.n as u32).collect();
    let levels: &[(u8, u8, &str)] = if realtime {
        &[
            (0, 0, ""),
            (PROCESS, PROCESS, "-process"),
            (PROCESS | REALTIME, REALTIME, "-realtime"),
        ]
    } else {
        &[(0, 0, "")]
    };
    let everything = WW | WR | RW | if realtime { PROCESS | REALTIME } else { 0 };
    let mut steps = 0u64;
    let comps = sccs(g, &mut s, &all, everything, &mut steps);
    let total = comps.len();
    for (ci, comp) in comps.into_iter().enumerate() {
        let mut seen: Vec<(usize, usize)> = Vec::new();
        let mut out_of_budget = false;
        'levels: for (li, &(extras, level_req, suffix)) in levels.iter().enumerate() {
            for (class, &(data, data_req, capped, names)) in CLASSES.iter().enumerate() {
                if !names.iter().any(|n| wanted(&format!("{n}{suffix}")))
                    || implied(&seen, class, li)
                {
                    continue;
                }
                let allowed = data | extras;
                let required = if li == 0 { data_req } else { level_req };
                let subs = sccs(g, &mut s, &comp, allowed, &mut steps);
                let mut hit = None;
                for sub in subs {
                    let stamp = s.enter(&sub);
                    let need_rw = data_req == RW;
                    match find_in(
                        g, &mut s, &sub, stamp, allowed, required, capped, need_rw, &mut steps,
                        budget,
                    ) {
                        Ok(Some(c)) => {
                            hit = Some(c);
                            break;
                        }
                        Ok(None) => {}
                        Err(()) => {
                            out_of_budget = true;
                            break;
                        }
                    }
                }
                if let Some(steps_) = hit {
                    let name = classify(&steps_);
                    seen.push(rank(&name));
                    found.cycles.push(Cycle {
                        name,
                        steps: steps_,
                    });
                }
                if out_of_budget || steps > budget {
                    found.timed_out = total - ci;
                    break 'levels;
                }
            }
        }
        if found.timed_out > 0 {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(usize, usize, u8)]) -> Frozen {
        let mut g = Graph::new(n);
        for &(a, b, k) in edges {
            g.add(a, b, k, None);
        }
        g.freeze()
    }

    fn names(f: &Found) -> Vec<&str> {
        f.cycles.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn classifies_cycles_by_their_edges() {
        let step = |kind| Step {
            from: 0,
            to: 0,
            kind,
        };
        assert_eq!(classify(&[step(WW), step(WW)]), "G0");
        assert_eq!(classify(&[step(WW), step(WR)]), "G1c");
        assert_eq!(classify(&[step(RW), step(WR)]), "G-single-item");
        assert_eq!(
            classify(&[step(RW), step(WR), step(RW), step(WW)]),
            "G-nonadjacent-item"
        );
        assert_eq!(classify(&[step(RW), step(RW), step(WR)]), "G2-item");
        assert_eq!(
            classify(&[step(RW), step(REALTIME)]),
            "G-single-item-realtime"
        );
        assert_eq!(classify(&[step(WW), step(PROCESS)]), "G0-process");
    }

    #[test]
    fn finds_the_most_severe_cycle_per_component() {
        let all = |_: &str| true;
        // 0 -ww-> 1 -ww-> 0, and 1 -wr-> 2 -rw-> 1: G0 and a G-single in one component.
        let g = graph(3, &[(0, 1, WW), (1, 0, WW), (1, 2, WR), (2, 1, RW)]);
        let f = search(&g, false, &all, u64::MAX);
        assert_eq!(names(&f), ["G0", "G-single-item"]);
        // Only rw edges, in pairs: G2-item.
        let g = graph(2, &[(0, 1, RW), (1, 0, RW)]);
        assert_eq!(names(&search(&g, false, &all, u64::MAX)), ["G2-item"]);
        // Acyclic: nothing.
        let g = graph(3, &[(0, 1, WW), (1, 2, WR), (0, 2, RW)]);
        assert!(search(&g, true, &all, u64::MAX).cycles.is_empty());
        // A realtime edge closes a wr chain.
        let g = graph(2, &[(0, 1, WR), (1, 0, REALTIME)]);
        assert!(search(&g, false, &all, u64::MAX).cycles.is_empty());
        assert_eq!(names(&search(&g, true, &all, u64::MAX)), ["G1c-realtime"]);
        // A G-single needs a path back without rw: here the only way back has two.
        let g = graph(3, &[(0, 1, RW), (1, 2, RW), (2, 0, WR)]);
        assert_eq!(names(&search(&g, false, &all, u64::MAX)), ["G2-item"]);
    }

    #[test]
    fn only_wanted_kinds_are_searched_and_the_budget_holds() {
        let g = graph(2, &[(0, 1, RW), (1, 0, WR)]);
        let rc = |n: &str| n == "G0" || n == "G1c";
        assert!(search(&g, false, &rc, u64::MAX).cycles.is_empty());
        let f = search(&g, false, &|_| true, 1);
        assert_eq!(f.timed_out, 1);
    }
}
