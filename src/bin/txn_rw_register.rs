//! The `txn-rw-register` node (Maelstrom workload `txn-rw-register`): totally available,
//! read-committed. Design and why it cannot promise more: `murmur::workload::txn`.
fn main() -> std::process::ExitCode {
    murmur::runtime::main::<murmur::workload::txn::TxnRwRegister>(())
}
