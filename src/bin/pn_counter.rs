//! The `pn-counter` node (Maelstrom workload `pn-counter`). Design and knobs: `MURMUR_DESIGN` (crdt or seq-kv)
//! and the broadcast knobs, see `murmur::workload::counter`.
fn main() -> std::process::ExitCode {
    murmur::workload::counter::main(murmur::workload::counter::Kind::PnCounter)
}
