//! The `echo` node (Maelstrom workload `echo`).
fn main() -> std::process::ExitCode {
    murmur::runtime::main::<murmur::workload::echo::Echo>(())
}
