//! The broadcast knobs ([`BroadcastConfig`]), the choices they name ([`Overlay`], [`Eager`]), and
//! how they are read from the environment and the command line.

use crate::node::Millis;
use std::str::FromStr;

/// Which peers a node gossips with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    /// The neighbours from Maelstrom's `topology` message; values are forwarded hop by hop.
    Given,
    /// The first node is the hub; every other node talks only to it. Two hops end to end.
    Star,
    /// A `k`-ary tree over the node list in order; values are forwarded along it.
    Tree(usize),
    /// Everyone talks to everyone; only a value's origin sends it (no forwarding), so one hop.
    Total,
}

impl FromStr for Overlay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "given" | "maelstrom" => Ok(Overlay::Given),
            "star" => Ok(Overlay::Star),
            "total" => Ok(Overlay::Total),
            _ => match s.strip_prefix("tree").map(str::parse::<usize>) {
                Some(Ok(k)) if k >= 1 => Ok(Overlay::Tree(k)),
                _ => Err(format!(
                    "unknown overlay `{s}`: expected given, star, total or tree<k> (k ≥ 1)"
                )),
            },
        }
    }
}

/// When a client's value leaves its origin. "At once" means once it is durable, and not to a peer
/// whose gossip is held back (a silent one, or a successor's fan-out): that waits for its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eager {
    /// Only on the next sync tick.
    Never,
    /// At once if the node has a single peer (a star or tree leaf), which costs one message per
    /// value but saves up to a tick of latency; otherwise on the next tick.
    Leaves,
    /// At once to every peer.
    Always,
}

impl FromStr for Eager {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" | "false" | "0" => Ok(Eager::Never),
            "leaves" => Ok(Eager::Leaves),
            "always" | "true" | "1" => Ok(Eager::Always),
            _ => Err(format!(
                "unknown eager mode `{s}`: expected never, leaves or always"
            )),
        }
    }
}

/// Broadcast knobs. Each can be set by an environment variable `MURMUR_<NAME>` or by an argument
/// `--<name> <value>` after `--bin` (arguments win). Defaults:
///
/// | knob | default | meaning |
/// |---|---|---|
/// | `overlay` | `star` | who gossips with whom ([`Overlay`]: given, star, total, `tree<k>`) |
/// | `sync_ms` | 100 | batching period: pending deltas leave on the next multiple of it (the node only wakes when something is pending) |
/// | `fanout` | 0 | peers served per tick, chosen at random among those with something pending (0 = all) |
/// | `eager` | `leaves` | when a client's value leaves its origin ([`Eager`]) |
/// | `ack_delay_ms` | 1000 | how long an acknowledgement may wait to ride on gossip going back (in the star, a leaf's forwards of its clients' values, about two a second at the 3d rate, so few leave alone) |
/// | `rto_ms` | 2500 | a gossip unacknowledged this long is resent (from the acked cursor): above `ack_delay_ms` plus a round trip and a slot, with room for a slow runner; a premature resend only costs messages |
/// | `max_batch` | 5000 | most values in one gossip message |
/// | `ack_relay` | `true` | overlay `total`: stand-alone acknowledgements leave as one batch per node through a relay node (see "Acknowledgement relay" in the [module docs](super)), where `(rto_ms − ack_delay_ms) / 3` ≥ 4 `sync_ms` |
/// | `seed` | 0 | mixed with the node id to seed the fan-out choice |
/// | `persist` | `true` | persist the log and acknowledge only durable values (see the [module docs](super)); `0`/`false` keeps everything in memory, so a killed node loses what it held |
/// | `silent_peer_ms` | 500 | a peer whose gossip went unacknowledged for `rto_ms`, and that has not been heard from since (cut off, paused, down), gets gossip at most this often instead of every slot, until it answers: a silent peer costs two messages a second instead of ten, and is found again within this long once it can be reached; 0 keeps every slot |
/// | `detour_ms` | 400 | a successor hub's gossip to the leaves it serves while their hub is away goes at most this often (see `gossip_allowed_at`); `sync_ms` or less keeps every slot |
/// | `liveness` | `true` | star leaves health-check their hub and route through a successor while it is silent (see the `liveness` module); `0`/`false` keeps the plain star, whose leaves wait for their hub (pings from others are still answered) |
///
/// The tokio shell's own knobs (`MURMUR_DATA_DIR`, `MURMUR_FLUSH_MS`, ...) are listed in
/// [`crate::host::ShellConfig`]; they are environment variables only.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastConfig {
    pub overlay: Overlay,
    pub sync_ms: Millis,
    pub fanout: usize,
    pub eager: Eager,
    pub ack_delay_ms: Millis,
    pub rto_ms: Millis,
    pub max_batch: usize,
    pub ack_relay: bool,
    pub seed: u64,
    pub persist: bool,
    pub silent_peer_ms: Millis,
    pub detour_ms: Millis,
    pub liveness: bool,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        BroadcastConfig {
            overlay: Overlay::Star,
            sync_ms: 100,
            fanout: 0,
            eager: Eager::Leaves,
            ack_delay_ms: 1000,
            rto_ms: 2500,
            max_batch: 5000,
            ack_relay: true,
            seed: 0,
            persist: true,
            silent_peer_ms: 500,
            detour_ms: 400,
            liveness: true,
        }
    }
}

/// Knob parsing is written out here rather than left to clap (which the runner uses), because what
/// it accepts does not fit clap's model:
/// - the environment is a parameter, not necessarily the process's own (the tests pass theirs),
///   and every `MURMUR_*` variable that is not the shell's is a knob, so a misspelt one is an
///   error rather than silently ignored; clap's `env` support reads the process environment, and
///   only the names it declares;
/// - names match in any case and with `-` and `_` interchangeable, in variables and arguments
///   alike;
/// - a knob given twice takes the later value, and arguments come after the environment.
///
/// Doing that with clap would take an alias list per knob and a pass of our own over the
/// environment anyway, and would add clap to the node's dependencies, for a dozen knobs.
/// `MURMUR_TEST_*` variables are the test suite's (e.g. `MURMUR_TEST_FUZZ_CASES`), never knobs.
pub const TEST_ENV_PREFIX: &str = "TEST_";

impl BroadcastConfig {
    /// Applies one knob by name (`overlay`, `sync-ms` or `sync_ms`, ...).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        fn num<T: FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("knob `{name}`: `{v}` is not a valid number"))
        }
        let flag = crate::workload::flag_knob;
        match name.replace('-', "_").to_ascii_lowercase().as_str() {
            "overlay" => self.overlay = value.parse()?,
            "sync_ms" => self.sync_ms = num(name, value)?,
            "fanout" => self.fanout = num(name, value)?,
            "eager" => self.eager = value.parse()?,
            "ack_delay_ms" => self.ack_delay_ms = num(name, value)?,
            "rto_ms" => self.rto_ms = num(name, value)?,
            "max_batch" => self.max_batch = num::<usize>(name, value)?.max(1),
            "ack_relay" => self.ack_relay = flag(name, value)?,
            "seed" => self.seed = num(name, value)?,
            "persist" => self.persist = flag(name, value)?,
            "silent_peer_ms" => self.silent_peer_ms = num(name, value)?,
            "detour_ms" => self.detour_ms = num(name, value)?,
            "liveness" => self.liveness = flag(name, value)?,
            _ => return Err(format!("unknown knob `{name}`")),
        }
        Ok(())
    }

    /// Defaults, then `MURMUR_*` environment variables (except the shell's own,
    /// [`crate::host::SHELL_ENV`], and the test suite's `MURMUR_TEST_*`), then `--name value` or
    /// `--name=value` arguments.
    pub fn from_env_and_args(
        env: impl IntoIterator<Item = (String, String)>,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let mut cfg = BroadcastConfig::default();
        for (k, v) in env {
            if let Some(name) = k.strip_prefix("MURMUR_") {
                // `MURMUR_TEST_*` belongs to the test suite (fuzz budgets and the like), which
                // spawns nodes with it in their environment.
                if crate::host::SHELL_ENV.contains(&name) || name.starts_with(TEST_ENV_PREFIX) {
                    continue;
                }
                cfg.set(name, &v).map_err(|e| format!("{k}: {e}"))?;
            }
        }
        crate::workload::apply_knob_args(args, |name, value| cfg.set(name, value))?;
        Ok(cfg)
    }
}
