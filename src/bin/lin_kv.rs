//! The `lin-kv` node (Maelstrom workload `lin-kv`): a Raft group of all the nodes. Knobs:
//! `MURMUR_*` environment variables or `--name value` arguments after `--bin`; see `LinKvConfig`.
use murmur::workload::lin_kv::{LinKv, LinKvConfig};

fn main() -> std::process::ExitCode {
    match LinKvConfig::from_env_and_args(std::env::vars(), std::env::args().skip(1)) {
        Ok(cfg) => murmur::runtime::main::<LinKv>(cfg),
        Err(e) => {
            eprintln!("lin-kv: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
