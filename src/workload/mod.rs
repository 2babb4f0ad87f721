//! One module per Maelstrom workload, each with its payload enum, its state, its handlers and its
//! tests. Adding a workload means adding a module here and a thin binary in `src/bin/`.

pub mod broadcast;
pub mod counter;
pub mod echo;
pub mod unique_ids;
