//! The `unique-ids` node (Maelstrom workload `unique-ids`).
fn main() -> std::process::ExitCode {
    murmur::runtime::main::<murmur::workload::unique_ids::UniqueIds>(())
}
