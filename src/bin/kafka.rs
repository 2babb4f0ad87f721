//! The `kafka` node (Maelstrom workload `kafka`). Design and knobs: `MURMUR_DESIGN` (local or
//! lin-kv), `MURMUR_KAFKA_PERSIST`, see `murmur::workload::kafka`.
fn main() -> std::process::ExitCode {
    murmur::workload::kafka::main()
}
