//! One module per Maelstrom workload, each with its payload enum, its state, its handlers and its
//! tests. Adding a workload means adding a module here and a thin binary in `src/bin/`.
//! `counter` serves three workloads (g-set, g-counter, pn-counter) by running the broadcast node
//! inside itself, or, for the counters, over Maelstrom's `seq-kv` service. `lin_kv` is a Raft
//! group serving Maelstrom's linearizable key-value workload.

pub mod broadcast;
pub mod counter;
pub mod echo;
pub mod kafka;
pub mod lin_kv;
pub mod txn;
pub mod unique_ids;

/// Applies the `MURMUR_<NAME>` variables of `env` that `set` knows to `cfg`. A name `set` rejects as
/// an `unknown knob` is skipped (it is the shell's, or another workload's), and the config is left
/// as it was; any other error (a bad value) fails, naming the variable.
pub(crate) fn apply_known_env<C: Clone>(
    cfg: &mut C,
    env: impl IntoIterator<Item = (String, String)>,
    set: impl Fn(&mut C, &str, &str) -> Result<(), String>,
) -> Result<(), String> {
    for (k, v) in env {
        let Some(name) = k.strip_prefix("MURMUR_") else {
            continue;
        };
        let mut probe = cfg.clone();
        match set(&mut probe, name, &v) {
            Ok(()) => *cfg = probe,
            Err(e) if e.starts_with("unknown knob") => {}
            Err(e) => return Err(format!("{k}: {e}")),
        }
    }
    Ok(())
}

/// A boolean knob's value (1/0, true/false, on/off), or an error naming the knob.
pub(crate) fn flag_knob(name: &str, value: &str) -> Result<bool, String> {
    crate::host::parse_bool(value).ok_or_else(|| {
        format!("knob `{name}`: `{value}` is not a boolean (1/0, true/false, on/off)")
    })
}

/// Applies knob arguments given after a node's `--bin` (`--name value` or `--name=value`, in order)
/// through `set`; anything else is an error naming it. The workloads' configs share this so that
/// every node takes its knobs the same way.
pub(crate) fn apply_knob_args(
    args: impl IntoIterator<Item = String>,
    mut set: impl FnMut(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let Some(flag) = a.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument `{a}`: knobs are given as --name value"
            ));
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (
                flag.to_string(),
                args.next()
                    .ok_or_else(|| format!("--{flag} needs a value"))?,
            ),
        };
        set(&name, &value)?;
    }
    Ok(())
}
