//! The `broadcast` node (Maelstrom workload `broadcast`). Knobs: `MURMUR_*` environment variables
//! or `--name value` arguments after `--bin`; see `BroadcastConfig` for names and defaults.
use murmur::workload::broadcast::{Broadcast, BroadcastConfig};

fn main() -> std::process::ExitCode {
    match BroadcastConfig::from_env_and_args(std::env::vars(), std::env::args().skip(1)) {
        Ok(cfg) => murmur::runtime::main::<Broadcast>(cfg),
        Err(e) => {
            eprintln!("broadcast: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
