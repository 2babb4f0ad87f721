//! The shell's settings and the knob syntax every node binary shares, parsed without I/O: the
//! environment is passed in as a lookup, so the same parsing serves the tokio shell, the runner's
//! simulator and tests.

use crate::node::Millis;
use crate::store;
use std::ffi::OsString;
use std::path::PathBuf;

/// `MURMUR_<NAME>` variables that belong to the shell (see [`ShellConfig`]), not to a workload;
/// workload knob parsers skip them.
pub const SHELL_ENV: &[&str] = &[
    "DATA_DIR",
    "FLUSH_MS",
    "STALL_MS",
    "REPLY_DEADLINE_MS",
    "FSYNC",
    "COMPACT_MIN_BYTES",
    "LOG",
];

/// The shell's knobs, from environment variables only (they are the same for every workload).
/// Defaults:
///
/// | field | variable | default | meaning |
/// |---|---|---|---|
/// | `data_root` | `MURMUR_DATA_DIR` | `<tmp>/murmur/<parent>` | nodes persist in `<data_root>/<node id>/` ([`store::data_root`] explains the default) |
/// | `flush_ms` | `MURMUR_FLUSH_MS` | 0 | batching window: how long the flusher waits after records appear before writing them. 0 writes at once; records emitted while a write is in progress form the next batch anyway |
/// | `stall_ms` | `MURMUR_STALL_MS` | 1000 | after a resume from a pause (SIGCONT), messages handled this long are dated back to the node's last activity before it; 0 ignores pauses |
/// | `reply_deadline_ms` | `MURMUR_REPLY_DEADLINE_MS` | 4000 | client requests older than this are dropped unanswered (Maelstrom's client timeout is 5000 ms, minus room for network latency); 0 answers whatever the age |
/// | `fsync` | `MURMUR_FSYNC` | `false` | end every group commit with an `fdatasync` (on the blocking pool), so records survive a crash of the machine; off, records are copied into the kernel's page cache (the mapped log) on the runtime thread and survive the death of the process (SIGKILL), which is every crash Maelstrom injects ([`crate::store::Store::fsync`]) |
/// | `compact_min_bytes` | `MURMUR_COMPACT_MIN_BYTES` | 1048576 ([`super::DEFAULT_COMPACT_MIN_BYTES`]) | the log is compacted (rewritten as a snapshot of the node's state) once it is at least this large and twice the state's size ([`super::Host::take_compaction`]); 0 never compacts |
/// | `max_line_bytes` | — | 64 MiB | longer stdin lines are skipped (bounded memory) |
/// | `clean_stale_runs` | — | `true` without `MURMUR_DATA_DIR` | at `init`, delete the default location's folders of runs that ended ([`store::remove_stale_runs`]); never done in a directory the user chose |
///
/// Persistence itself is switched by the workload (for broadcast, `MURMUR_PERSIST`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShellConfig {
    pub data_root: PathBuf,
    pub flush_ms: Millis,
    pub stall_ms: Millis,
    pub reply_deadline_ms: Millis,
    pub fsync: bool,
    /// `None`: never compact.
    pub compact_min_bytes: Option<u64>,
    pub max_line_bytes: usize,
    pub clean_stale_runs: bool,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            data_root: store::data_root(None),
            flush_ms: 0,
            stall_ms: 1000,
            reply_deadline_ms: 4000,
            fsync: false,
            compact_min_bytes: Some(super::DEFAULT_COMPACT_MIN_BYTES),
            max_line_bytes: 64 << 20,
            clean_stale_runs: true,
        }
    }
}

impl ShellConfig {
    /// Defaults overridden by the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Defaults overridden by `get(variable)`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<OsString>) -> Result<Self, String> {
        let data_dir = get("MURMUR_DATA_DIR").filter(|d| !d.is_empty());
        let mut c = ShellConfig {
            data_root: store::data_root(data_dir.as_deref()),
            clean_stale_runs: data_dir.is_none(),
            ..ShellConfig::default()
        };
        for (name, field) in [
            ("MURMUR_FLUSH_MS", &mut c.flush_ms),
            ("MURMUR_STALL_MS", &mut c.stall_ms),
            ("MURMUR_REPLY_DEADLINE_MS", &mut c.reply_deadline_ms),
        ] {
            if let Some(v) = get(name) {
                *field = v
                    .to_str()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| {
                        format!(
                            "{name}: `{}` is not a number of milliseconds",
                            v.to_string_lossy()
                        )
                    })?;
            }
        }
        if let Some(v) = get("MURMUR_COMPACT_MIN_BYTES") {
            let n: u64 = v
                .to_str()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    format!(
                        "MURMUR_COMPACT_MIN_BYTES: `{}` is not a number of bytes",
                        v.to_string_lossy()
                    )
                })?;
            c.compact_min_bytes = (n > 0).then_some(n);
        }
        if let Some(v) = get("MURMUR_FSYNC") {
            let v = v.to_string_lossy();
            c.fsync = parse_bool(v.trim()).ok_or_else(|| {
                format!("MURMUR_FSYNC: `{v}` is not a boolean (1/0, true/false, on/off)")
            })?;
        }
        Ok(c)
    }
}

/// A boolean knob's value: 1/0, true/false, on/off, yes/no (any case).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_config_from_env() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let c = ShellConfig::from_lookup(env(&[
            ("MURMUR_DATA_DIR", "/d"),
            ("MURMUR_FLUSH_MS", "5"),
            ("MURMUR_STALL_MS", "0"),
        ]))
        .unwrap();
        assert_eq!(c.data_root, PathBuf::from("/d"));
        assert!(!c.clean_stale_runs, "never in a directory the user chose");
        assert!(ShellConfig::from_lookup(env(&[])).unwrap().clean_stale_runs);
        assert_eq!((c.flush_ms, c.stall_ms, c.reply_deadline_ms), (5, 0, 4000));
        assert!(ShellConfig::from_lookup(env(&[("MURMUR_REPLY_DEADLINE_MS", "soon")])).is_err());
        assert_eq!(
            c.compact_min_bytes,
            Some(super::super::DEFAULT_COMPACT_MIN_BYTES)
        );
        let never = ShellConfig::from_lookup(env(&[("MURMUR_COMPACT_MIN_BYTES", "0")])).unwrap();
        assert_eq!(never.compact_min_bytes, None);
        let small = ShellConfig::from_lookup(env(&[("MURMUR_COMPACT_MIN_BYTES", "4096")])).unwrap();
        assert_eq!(small.compact_min_bytes, Some(4096));
    }
}
