//! Pairs each client invocation with its completion.
//!
//! Each client process has at most one op outstanding, so an invocation is paired with the next
//! completion of the same process (Jepsen's `h/invocation` / `h/completion`). Nemesis ops are
//! never paired. A malformed history is tolerated: a second invocation before a completion leaves
//! the first unpaired, and a completion with nothing outstanding has no invocation.

use std::collections::HashMap;

use crate::history::{Op, OpType, Process};

/// Invocation/completion links, by position in the history slice.
pub(crate) struct Pairing {
    invocation: Vec<Option<usize>>,
    completion: Vec<Option<usize>>,
}

impl Pairing {
    /// Links the ops of `history` (already in index order).
    pub(crate) fn new(history: &[Op]) -> Self {
        let mut invocation = vec![None; history.len()];
        let mut completion = vec![None; history.len()];
        let mut pending: HashMap<u64, usize> = HashMap::new();
        for (pos, op) in history.iter().enumerate() {
            let Process::Client(p) = op.process else {
                continue;
            };
            if op.kind == OpType::Invoke {
                pending.insert(p, pos);
            } else if let Some(inv) = pending.remove(&p) {
                invocation[pos] = Some(inv);
                completion[inv] = Some(pos);
            }
        }
        Pairing {
            invocation,
            completion,
        }
    }

    /// The position of the invocation that the completion at `pos` completes.
    pub(crate) fn invocation(&self, pos: usize) -> Option<usize> {
        self.invocation.get(pos).copied().flatten()
    }

    /// The position of the completion of the invocation at `pos`.
    pub(crate) fn completion(&self, pos: usize) -> Option<usize> {
        self.completion.get(pos).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::checker::testkit::H;
    use crate::history::OpType::*;

    #[test]
    fn pairs_by_process_and_ignores_nemesis() {
        let mut h = H::new();
        h.c(0, Invoke, 0, "read", Value::Null); // 0
        h.c(1, Invoke, 1, "read", Value::Null); // 1
        h.nemesis(2, "start-partition"); // 2
        h.c(3, Ok, 1, "read", Value::Null); // 3
        h.c(4, Info, 0, "read", Value::Null); // 4
        h.c(5, Ok, 2, "read", Value::Null); // 5: nothing outstanding
        h.c(6, Invoke, 3, "read", Value::Null); // 6
        h.c(7, Invoke, 3, "read", Value::Null); // 7: malformed re-invocation
        h.c(8, Ok, 3, "read", Value::Null); // 8
        let p = Pairing::new(&h.ops);
        assert_eq!(p.invocation(3), Some(1));
        assert_eq!(p.invocation(4), Some(0));
        assert_eq!(p.completion(0), Some(4));
        assert_eq!(p.invocation(2), None);
        assert_eq!(p.invocation(5), None);
        assert_eq!(p.completion(6), None);
        assert_eq!(p.invocation(8), Some(7));
        assert_eq!(p.invocation(99), None);
    }
}
