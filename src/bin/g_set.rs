//! The `g-set` node (Maelstrom workload `g-set`): the CRDT design only; the broadcast knobs
//! apply. See `murmur::workload::counter`.
fn main() -> std::process::ExitCode {
    murmur::workload::counter::main(murmur::workload::counter::Kind::GSet)
}
