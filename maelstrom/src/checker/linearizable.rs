//! The lin-kv checker: per key, is the history linearizable against a compare-and-set register
//! whose initial value is `null`? Maelstrom runs Knossos over each key (Jepsen's `independent`
//! checker around `checker/linearizable` with `model/cas-register`, see `workload/lin_kv.clj`);
//! this is the same question answered with the same kind of search.
//!
//! **Ops.** Each client op's value is `[key, v]`: `read` completes with `[key, value]`, `write`
//! carries `[key, value]`, `cas` carries `[key, [from, to]]`. An invocation is paired with its
//! process's next completion. Then:
//! - `ok` ops took effect, somewhere between their invocation and their completion;
//! - `fail` ops never took effect and are dropped;
//! - `info` writes and cas (or invocations never completed) may have taken effect at any moment
//!   after their invocation, or never: their completion is treated as lying at infinity and the
//!   search may leave them out;
//! - `info` reads change nothing and observed nothing, so they are dropped.
//!
//! **Search** (Wing & Gong's algorithm with Lowe's just-in-time linearization and memoisation,
//! the "linear" analyzer of Knossos and the algorithm of Porcupine). The ops of one key become a
//! list of call and return entries in history order. Walking the list, a call whose op is legal
//! in the current register state is linearized: it is lifted out of the list (call and return),
//! the state advances, and the walk restarts at the head. A return entry reached while its op is
//! still pending means the choices so far cannot work, so the last linearized op is put back and
//! the walk continues after it. Each (set of linearized ops, register state) configuration is
//! explored at most once (the memo), which bounds the search by the number of distinct
//! configurations rather than the number of orders. The history is linearizable once no `ok` op
//! is left; it is not once the walk has to back out of the first choice.
//!
//! **Budget.** A [`Budget`] (a deadline and a step count, both optional) bounds the search of
//! the whole check; when it runs out, the keys not yet decided are `unknown`.
//!
//! **Result keys** (Jepsen's `independent` checker): `valid?`, `results` (key → that key's
//! result), `failures` (the invalid keys), plus `unknown` (keys the budget cut short) and
//! `op-count`. An invalid key's result follows Knossos: `op` (the op the deepest attempt could
//! not linearize: its return came while it was still impossible), `previous-ok` (the last op
//! that attempt did linearize), `last-state` (the register's value then), and `window`: the ops
//! still pending at that frontier, the small set among which no legal order exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::pairing::Pairing;
use super::{in_index_order, CheckResult, Validity};
use crate::history::{Op, OpType};

/// How much search a check may do before it gives up with `unknown`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop once this moment has passed (checked every few hundred steps).
    pub deadline: Option<Instant>,
    /// Stop after this many search steps in all (a step = one entry visited).
    pub max_steps: Option<u64>,
}

impl Budget {
    /// No limit at all.
    pub const UNLIMITED: Budget = Budget {
        deadline: None,
        max_steps: None,
    };

    /// At most `steps` search steps: a deterministic budget (`0` decides nothing).
    pub fn steps(steps: u64) -> Budget {
        Budget {
            deadline: None,
            max_steps: Some(steps),
        }
    }

    /// Until `deadline`.
    pub fn until(deadline: Instant) -> Budget {
        Budget {
            deadline: Some(deadline),
            max_steps: None,
        }
    }
}

/// The outcome for one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyResult {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    /// Ops of this key that the search had to place (`ok`, and `info` writes/cas).
    #[serde(rename = "op-count")]
    pub op_count: usize,
    /// Configurations explored.
    pub configs: u64,
    /// For an invalid key: the op that could not be linearized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    /// The last op the deepest attempt linearized before getting stuck.
    #[serde(rename = "previous-ok", skip_serializing_if = "Option::is_none")]
    pub previous_ok: Option<Op>,
    /// The register's value at the point of failure.
    #[serde(rename = "last-state", skip_serializing_if = "Option::is_none")]
    pub last_state: Option<Value>,
    /// The ops pending at the failing frontier, in history order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub window: Vec<Op>,
    /// Why the key is `unknown`, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The workload result, shaped like Jepsen's `independent` checker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinearizableResult {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    /// Per key (the key's JSON text), in key order.
    pub results: BTreeMap<String, KeyResult>,
    /// The keys found not linearizable.
    pub failures: Vec<String>,
    /// The keys left undecided by the budget.
    pub unknown: Vec<String>,
    /// Client ops of the workload (invocations).
    #[serde(rename = "op-count")]
    pub op_count: usize,
}

impl CheckResult for LinearizableResult {
    fn validity(&self) -> Validity {
        self.valid
    }
}

/// What an op does to the register; values are interned (0 is `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Read(u32),
    Write(u32),
    Cas(u32, u32),
}

impl Action {
    /// The state after the op, if it is legal in `state`.
    fn step(self, state: u32) -> Option<u32> {
        match self {
            Action::Read(v) => (v == state).then_some(state),
            Action::Write(v) => Some(v),
            Action::Cas(from, to) => (from == state).then_some(to),
        }
    }
}

/// One op to place: its action, whether it must be placed (`ok`), and where it came from.
struct KeyOp {
    action: Action,
    required: bool,
    /// Positions (in the index-ordered history) of its invocation and completion.
    inv: usize,
    comp: Option<usize>,
}

/// Interns JSON values per key; `null` is 0.
#[derive(Default)]
struct Values {
    ids: HashMap<String, u32>,
    values: Vec<Value>,
}

impl Values {
    fn new() -> Values {
        let mut v = Values::default();
        v.id(&Value::Null);
        v
    }
    fn id(&mut self, v: &Value) -> u32 {
        let text = v.to_string();
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(text, id);
        self.values.push(v.clone());
        id
    }
}

/// Splits `[key, v]`.
fn key_and_arg(value: &Value) -> Option<(&Value, &Value)> {
    match value.as_array()?.as_slice() {
        [k, v] => Some((k, v)),
        _ => None,
    }
}

/// Checks a lin-kv history within `budget`.
pub fn check(history: &[Op], budget: Budget) -> LinearizableResult {
    let history = in_index_order(history);
    let pairing = Pairing::new(&history);
    let mut per_key: BTreeMap<String, (Values, Vec<KeyOp>)> = BTreeMap::new();
    let mut op_count = 0;
    for (pos, op) in history.iter().enumerate() {
        if !op.is_client()
            || op.kind != OpType::Invoke
            || !matches!(op.f.as_str(), "read" | "write" | "cas")
        {
            continue;
        }
        op_count += 1;
        let comp = pairing.completion(pos);
        let outcome = comp.map_or(OpType::Info, |c| history[c].kind);
        if outcome == OpType::Fail || (op.f == "read" && outcome != OpType::Ok) {
            continue;
        }
        let invoked = op.value.to_json();
        let Some((key, arg)) = key_and_arg(&invoked) else {
            continue;
        };
        let (values, ops) = per_key
            .entry(key.to_string())
            .or_insert_with(|| (Values::new(), Vec::new()));
        let action = match op.f.as_str() {
            "read" => {
                // The value read is in the completion.
                let c = &history[comp.expect("an ok read has a completion")];
                let read = c.value.to_json();
                let Some((_, v)) = key_and_arg(&read) else {
                    continue;
                };
                Action::Read(values.id(v))
            }
            "write" => Action::Write(values.id(arg)),
            _ => match arg.as_array().map(Vec::as_slice) {
                Some([from, to]) => Action::Cas(values.id(from), values.id(to)),
                _ => continue,
            },
        };
        ops.push(KeyOp {
            action,
            required: outcome == OpType::Ok,
            inv: pos,
            comp: comp.filter(|_| outcome == OpType::Ok),
        });
    }

    let mut search = Search {
        budget,
        steps: 0,
        exhausted: false,
    };
    let mut results = BTreeMap::new();
    let (mut failures, mut unknown) = (Vec::new(), Vec::new());
    for (key, (values, ops)) in per_key {
        let result = search.key(&history, &values, &ops);
        match result.valid {
            Validity::False => failures.push(key.clone()),
            Validity::Unknown => unknown.push(key.clone()),
            Validity::True => {}
        }
        results.insert(key, result);
    }
    let valid = if !failures.is_empty() {
        Validity::False
    } else if !unknown.is_empty() {
        Validity::Unknown
    } else {
        Validity::True
    };
    LinearizableResult {
        valid,
        results,
        failures,
        unknown,
        op_count,
    }
}

/// A fixed-size set of op numbers.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// An entry of the doubly linked list: the call or the return of op `op`.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// The shared search state: the budget spent so far across keys.
struct Search {
    budget: Budget,
    steps: u64,
    exhausted: bool,
}

/// Where the deepest failed attempt got stuck.
struct Stuck {
    depth: usize,
    op: usize,
    previous: Option<usize>,
    state: u32,
    pending: Vec<usize>,
}

impl Search {
    /// One step of budget; false once it is spent.
    fn tick(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        if self.budget.max_steps.is_some_and(|m| self.steps >= m) {
            self.exhausted = true;
            return false;
        }
        if self.steps % 256 == 0 && self.budget.deadline.is_some_and(|d| Instant::now() >= d) {
            self.exhausted = true;
            return false;
        }
        self.steps += 1;
        true
    }

    /// Searches one key's ops for a linearization.
    fn key(&mut self, history: &[Op], values: &Values, ops: &[KeyOp]) -> KeyResult {
        let n = ops.len();
        let mut result = KeyResult {
            valid: Validity::True,
            op_count: n,
            configs: 0,
            op: None,
            previous_ok: None,
            last_state: None,
            window: Vec::new(),
            error: None,
        };
        // Entries in history order: calls at their invocation, returns at their completion;
        // optional ops have no return (it lies beyond the end).
        let mut order: Vec<(usize, usize, bool)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.inv, i, true));
            if let (true, Some(c)) = (op.required, op.comp) {
                order.push((c, i, false));
            }
        }
        order.sort_unstable_by_key(|&(pos, _, _)| pos);
        // Node 0 is the head sentinel; entries are 1..=len; `NIL` ends the list.
        const NIL: usize = usize::MAX;
        let mut list = vec![Entry {
            op: NIL,
            is_call: false,
            prev: NIL,
            next: NIL,
        }];
        let mut ret_of = vec![NIL; n];
        for (k, &(_, op, is_call)) in order.iter().enumerate() {
            let id = k + 1;
            list[id - 1].next = id;
            list.push(Entry {
                op,
                is_call,
                prev: id - 1,
                next: NIL,
            });
            if !is_call {
                ret_of[op] = id;
            }
        }
        let lift = |list: &mut Vec<Entry>, id: usize| {
            let Entry { prev, next, .. } = list[id];
            list[prev].next = next;
            if next != NIL {
                list[next].prev = prev;
            }
        };
        let unlift = |list: &mut Vec<Entry>, id: usize| {
            let Entry { prev, next, .. } = list[id];
            list[prev].next = id;
            if next != NIL {
                list[next].prev = id;
            }
        };

        let mut state = 0u32;
        let mut linearized = Bits::new(n);
        let mut memo: HashSet<(Bits, u32)> = HashSet::new();
        // (call entry, state before) of each linearized op, in order.
        let mut stack: Vec<(usize, u32)> = Vec::new();
        let mut stuck: Option<Stuck> = None;
        let mut entry = list[0].next;
        loop {
            if entry == NIL {
                // Only optional calls are left: every required op is placed.
                break;
            }
            if !self.tick() {
                result.valid = Validity::Unknown;
                result.error = Some("the search ran out of its time budget".into());
                break;
            }
            let e = list[entry];
            if e.is_call {
                if let Some(next_state) = ops[e.op].action.step(state) {
                    linearized.set(e.op);
                    if memo.insert((linearized.clone(), next_state)) {
                        result.configs += 1;
                        stack.push((entry, state));
                        state = next_state;
                        lift(&mut list, entry);
                        if ret_of[e.op] != NIL {
                            lift(&mut list, ret_of[e.op]);
                        }
                        entry = list[0].next;
                        continue;
                    }
                    linearized.clear(e.op);
                }
                entry = e.next;
            } else {
                // A return while its op is pending: back out of the last choice.
                if stuck.as_ref().map_or(true, |s| stack.len() >= s.depth) {
                    let mut pending = Vec::new();
                    let mut id = list[0].next;
                    while id != NIL && id != entry {
                        if list[id].is_call {
                            pending.push(list[id].op);
                        }
                        id = list[id].next;
                    }
                    pending.push(e.op);
                    stuck = Some(Stuck {
                        depth: stack.len(),
                        op: e.op,
                        previous: stack.last().map(|&(c, _)| list[c].op),
                        state,
                        pending,
                    });
                }
                let Some((call, before)) = stack.pop() else {
                    result.valid = Validity::False;
                    break;
                };
                let op = list[call].op;
                linearized.clear(op);
                state = before;
                if ret_of[op] != NIL {
                    unlift(&mut list, ret_of[op]);
                }
                unlift(&mut list, call);
                entry = list[call].next;
            }
        }
        if result.valid == Validity::False {
            if let Some(s) = stuck {
                let shown = |i: usize| shown_op(history, &ops[i]);
                result.op = Some(shown(s.op));
                result.previous_ok = s.previous.map(shown);
                result.last_state = values.values.get(s.state as usize).cloned();
                let mut window = s.pending;
                window.sort_unstable_by_key(|&i| ops[i].inv);
                window.dedup();
                result.window = window.into_iter().map(shown).collect();
            }
        }
        result
    }
}

/// An op as reported: its completion (which has the value read), or its invocation if it never
/// completed.
fn shown_op(history: &[Op], op: &KeyOp) -> Op {
    match op.comp {
        Some(c) => history[c].clone(),
        None => history[op.inv].clone(),
    }
}

#[cfg(test)]
mod tests;
