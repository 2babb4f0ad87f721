//! The txn node's knobs: how updates travel to peers, and whether the node persists.

use std::str::FromStr;

/// How a node sends its updates to its peers (see "Two designs" in the [module docs](super)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// Per peer, one `replicate` in flight carrying every pending update (up to
    /// [`super::MAX_BATCH`]), cumulatively acknowledged. The default.
    Batched,
    /// Every update to every peer as a message of its own, each retried on its own timer until
    /// acknowledged: the straightforward Gossip Glomers 6b/6c answer.
    PerTxn,
}

impl FromStr for Design {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "batched" | "batch" => Ok(Design::Batched),
            "per-txn" | "pertxn" | "per-transaction" => Ok(Design::PerTxn),
            _ => Err(format!("unknown design `{s}`: expected batched or per-txn")),
        }
    }
}

/// The txn node's knobs. Set with `MURMUR_<NAME>` environment variables or `--name value`
/// arguments after the binary (arguments win), as the other nodes' knobs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `design` (default `batched`): how updates travel to peers.
    pub design: Design,
    /// `persist` (default true): a transaction's writes, and the peers' updates this node
    /// acknowledges, are durable before they are answered. Without it a killed node forgets what
    /// it held (and what it acknowledged to peers, who then never resend it).
    pub persist: bool,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            design: Design::Batched,
            persist: true,
        }
    }
}

impl TxnConfig {
    /// Sets one knob by name (`-` and `_` alike, any case).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name.replace('-', "_").to_ascii_lowercase().as_str() {
            "design" => self.design = value.parse()?,
            "persist" => self.persist = crate::workload::flag_knob(name, value)?,
            _ => return Err(format!("unknown knob `{name}`")),
        }
        Ok(())
    }

    /// Defaults, then `MURMUR_DESIGN` and `MURMUR_PERSIST` (other `MURMUR_*` variables belong to
    /// the shell and are ignored), then `--name value` or `--name=value` arguments.
    pub fn from_env_and_args(
        env: impl IntoIterator<Item = (String, String)>,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let mut cfg = TxnConfig::default();
        crate::workload::apply_known_env(&mut cfg, env, TxnConfig::set)?;
        crate::workload::apply_knob_args(args, |name, value| cfg.set(name, value))?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_env_then_args() {
        assert_eq!(
            TxnConfig::from_env_and_args(vec![], vec![]),
            Ok(TxnConfig {
                design: Design::Batched,
                persist: true
            })
        );
        let c = TxnConfig::from_env_and_args(
            env(&[
                ("MURMUR_DESIGN", "per-txn"),
                ("MURMUR_PERSIST", "false"),
                ("MURMUR_FLUSH_MS", "5"),
            ]),
            vec![],
        )
        .unwrap();
        assert_eq!((c.design, c.persist), (Design::PerTxn, false));
        let c = TxnConfig::from_env_and_args(
            env(&[("MURMUR_DESIGN", "per-txn")]),
            args(&["--design", "batched", "--persist=0"]),
        )
        .unwrap();
        assert_eq!((c.design, c.persist), (Design::Batched, false));
        assert_eq!("PER_TXN".parse(), Ok(Design::PerTxn));
    }

    #[test]
    fn bad_knobs_are_errors() {
        assert!(TxnConfig::from_env_and_args(env(&[("MURMUR_DESIGN", "raft")]), vec![]).is_err());
        assert!(TxnConfig::from_env_and_args(env(&[("MURMUR_PERSIST", "maybe")]), vec![]).is_err());
        assert!(TxnConfig::from_env_and_args(vec![], args(&["--design"])).is_err());
        assert!(TxnConfig::from_env_and_args(vec![], args(&["--bogus", "1"])).is_err());
        assert!(TxnConfig::from_env_and_args(vec![], args(&["extra"])).is_err());
    }
}
