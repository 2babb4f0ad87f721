//! The node host: everything between a line arriving and outputs leaving that is the same for
//! every workload, free of I/O and clocks.

mod config;
mod guard;

pub use config::{parse_bool, ShellConfig, SHELL_ENV};
pub use guard::ClientGuard;
