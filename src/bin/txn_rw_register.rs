//! The `txn-rw-register` node (Maelstrom workload `txn-rw-register`): totally available,
//! read-committed, durable. Knobs (`MURMUR_DESIGN` batched or per-txn, `MURMUR_PERSIST`, or
//! `--name value` after the binary): `murmur::workload::txn::TxnConfig`; design, and why it
//! cannot promise more: `murmur::workload::txn`.
fn main() -> std::process::ExitCode {
    murmur::workload::txn::main()
}
