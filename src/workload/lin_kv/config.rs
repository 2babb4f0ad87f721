//! The lin-kv node's knobs, their defaults and how they are read.

use crate::node::Millis;
use std::str::FromStr;

/// The lin-kv node's knobs. Set with `MURMUR_<NAME>` environment variables or `--name value`
/// arguments after the binary (arguments win); unknown `MURMUR_*` variables are ignored, since
/// a runner may export the broadcast knobs to every node, but an unknown argument is an error.
#[derive(Debug, Clone, PartialEq)]
pub struct LinKvConfig {
    /// How often a leader sends each follower an `append_entries` when it has nothing else to
    /// send it, so followers know it is alive. Default 50 ms: a tenth of the lowest election
    /// timeout, so a few lost heartbeats do not start an election.
    pub heartbeat_ms: Millis,
    /// The lowest election timeout: a follower that hears no leader for a time drawn uniformly
    /// from [`election_ms`, 2 × `election_ms`) stands for election. Default 300 ms: well above
    /// the heartbeat and a message's round trip, well below lin-kv's 1 s client timeout, so a
    /// lost leader is replaced before most clients give up.
    pub election_ms: Millis,
    /// How long a leader waits for a follower's answer before it sends again (it keeps one
    /// `append_entries` in flight per follower). Default 200 ms.
    pub rpc_timeout_ms: Millis,
    /// How long a follower waits for the leader's answer to a client request it passed on;
    /// after that it forgets the request (the client, whose timeout is 1 s, has given up; the
    /// request may still take effect, so no error is sent). Default 1000 ms.
    pub proxy_timeout_ms: Millis,
    /// How long an accepted request waits for its entry to commit (or a read for its
    /// confirmation) before it is forgotten unanswered. Default 5000 ms.
    pub pending_timeout_ms: Millis,
    /// Client requests that have waited this long are never answered (the host's client guard
    /// drops the late reply; [`crate::node::Workload::reply_deadline_ms`]). Default 800 ms:
    /// lin-kv's client gives up after max(10 × mean latency, 1000) ms and closes its id, and a
    /// reply to a closed client cuts the node's output off; 800 ms leaves room for up to 100 ms
    /// of latency on the request's way in.
    pub reply_deadline_ms: Millis,
    /// At most this many entries in one `append_entries` (a follower far behind catches up in
    /// several). Default 256.
    pub max_batch: usize,
    /// Persist term, vote and log through the node's store (default true). Off, a restarted
    /// node forgets its vote and its log; only for showing that the kill tests catch that.
    pub persist: bool,
    /// A planted bug, for the simulator's tests to show that they catch it (default none).
    pub mutant: Option<Mutant>,
}

/// Planted bugs (for tests of the test suite, never for use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// Every node answers reads from its own state at once, leader or not.
    LocalReads,
    /// The leader commits an entry as soon as it has it, without waiting for a majority.
    NoQuorumCommit,
}

impl FromStr for Mutant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local-reads" => Ok(Mutant::LocalReads),
            "no-quorum-commit" => Ok(Mutant::NoQuorumCommit),
            _ => Err(format!(
                "unknown mutant `{s}` (local-reads, no-quorum-commit)"
            )),
        }
    }
}

impl Default for LinKvConfig {
    fn default() -> Self {
        LinKvConfig {
            heartbeat_ms: 50,
            election_ms: 300,
            rpc_timeout_ms: 200,
            proxy_timeout_ms: 1000,
            pending_timeout_ms: 5000,
            reply_deadline_ms: 800,
            max_batch: 256,
            persist: true,
            mutant: None,
        }
    }
}

impl LinKvConfig {
    /// Sets one knob by name (`-` and `_` alike, any case).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        fn num<T: FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("knob `{name}`: `{v}` is not a valid number"))
        }
        match name.replace('-', "_").to_ascii_lowercase().as_str() {
            "heartbeat_ms" => self.heartbeat_ms = num::<Millis>(name, value)?.max(1),
            "election_ms" => self.election_ms = num::<Millis>(name, value)?.max(1),
            "rpc_timeout_ms" => self.rpc_timeout_ms = num::<Millis>(name, value)?.max(1),
            "proxy_timeout_ms" => self.proxy_timeout_ms = num(name, value)?,
            "pending_timeout_ms" => self.pending_timeout_ms = num(name, value)?,
            "reply_deadline_ms" => self.reply_deadline_ms = num::<Millis>(name, value)?.max(1),
            "max_batch" => self.max_batch = num::<usize>(name, value)?.max(1),
            "persist" => self.persist = crate::workload::flag_knob(name, value)?,
            "mutant" => self.mutant = Some(value.parse()?),
            _ => return Err(format!("unknown knob `{name}`")),
        }
        Ok(())
    }

    /// Defaults, then the known `MURMUR_*` environment variables, then `--name value` or
    /// `--name=value` arguments.
    pub fn from_env_and_args(
        env: impl IntoIterator<Item = (String, String)>,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let mut cfg = LinKvConfig::default();
        crate::workload::apply_known_env(&mut cfg, env, LinKvConfig::set)?;
        crate::workload::apply_knob_args(args, |name, value| cfg.set(name, value))?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_then_args_and_unknown_env_ignored() {
        let env = [
            ("MURMUR_HEARTBEAT_MS".to_string(), "20".to_string()),
            ("MURMUR_OVERLAY".to_string(), "total".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let args = ["--election-ms", "100", "--persist=false"].map(String::from);
        let cfg = LinKvConfig::from_env_and_args(env, args).unwrap();
        assert_eq!(cfg.heartbeat_ms, 20);
        assert_eq!(cfg.election_ms, 100);
        assert!(!cfg.persist);
        assert!(LinKvConfig::from_env_and_args([], ["--overlay".into(), "x".into()]).is_err());
        let bad = [("MURMUR_HEARTBEAT_MS".to_string(), "x".to_string())];
        assert!(LinKvConfig::from_env_and_args(bad, []).is_err());
    }
}
