//! One module per Maelstrom workload, each with its payload enum, its state, its handlers and its
//! tests. Adding a workload means adding a module here and a thin binary in `src/bin/`.
//! `counter` serves three workloads (g-set, g-counter, pn-counter) by running the broadcast node
//! inside itself, or, for the counters, over Maelstrom's `seq-kv` service. `lin_kv` is a Raft
//! group serving Maelstrom's linearizable key-value workload.

pub mod broadcast;
pub mod counter;
pub mod echo;
pub mod kafka;
pub mod lin_kv;
pub mod txn;
pub mod unique_ids;
