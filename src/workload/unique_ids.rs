//! `unique-ids`: `{"type":"generate"}` → `{"type":"generate_ok","id":N}` ([workloads](https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md#workload-unique-ids)).
//!
//! Ids are unique under partitions and totally available because no node ever asks another:
//! id = `seq * node_count + node_index`, so nodes draw from disjoint residue classes. `seq` is a
//! per-node counter that never falls behind the wall clock in microseconds since 2025-01-01: it
//! starts there at boot and each id takes `max(seq + 1, clock)`. A restarted node therefore starts
//! above every id its previous incarnation issued, as long as that incarnation averaged under one id
//! per microsecond (a million per second) — far beyond what a node serves. Ids are plain integers
//! (compact on the wire) and stay below 2^53, exact in every JSON parser, for decades with 25 nodes.

use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::wire::{ErrorBody, ErrorCode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Generate,
    GenerateOk { id: u64 },
    Error(ErrorBody),
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

/// 2025-01-01T00:00:00Z in microseconds since the Unix epoch.
const EPOCH_2025_MICROS: u64 = 1_735_689_600_000_000;

#[derive(Debug)]
pub struct UniqueIds {
    index: u64,
    count: u64,
    /// Wall-clock microseconds (since 2025) at boot, minus the driver's clock at boot.
    base_micros: u64,
    boot_ms: Millis,
    seq: u64,
}

impl UniqueIds {
    /// Makes every later id larger than `id` if `id` is one of this node's: a node that recovers
    /// ids it issued before a restart (the counters' durable adds) then never repeats one, whatever
    /// the clock says.
    pub(crate) fn issued(&mut self, id: u64) {
        if id % self.count == self.index {
            self.seq = self.seq.max(id / self.count);
        }
    }

    /// The next id, or `None` once the id space is exhausted.
    pub(crate) fn next_id(&mut self, now: Millis) -> Option<u64> {
        let clock = self
            .base_micros
            .saturating_add(now.saturating_sub(self.boot_ms).saturating_mul(1000));
        self.seq = self.seq.checked_add(1)?.max(clock);
        self.seq.checked_mul(self.count)?.checked_add(self.index)
    }
}

impl Workload for UniqueIds {
    type Msg = Msg;
    type Config = ();

    fn init(info: &InitInfo, _: &(), now: Millis) -> Self {
        let count = info.node_ids.len().max(1) as u64;
        // A node missing from node_ids still gets a distinct class if its id is `n<k>`.
        let index = info
            .node_ids
            .iter()
            .position(|n| *n == info.node_id)
            .map(|i| i as u64)
            .unwrap_or_else(|| info.node_id.trim_start_matches('n').parse().unwrap_or(0) % count);
        let base_micros = info.boot_unix_micros.saturating_sub(EPOCH_2025_MICROS);
        UniqueIds {
            index,
            count,
            base_micros,
            boot_ms: now,
            seq: base_micros,
        }
    }

    fn handle(&mut self, msg: Message<Msg>, now: Millis, ctx: &mut Ctx<Msg>) {
        match msg.body.payload {
            Msg::Generate => match self.next_id(now) {
                Some(id) => ctx.reply(&msg.src, msg.body.msg_id, Msg::GenerateOk { id }),
                None => ctx.reply_error(
                    &msg.src,
                    msg.body.msg_id,
                    ErrorCode::Abort,
                    "id space exhausted",
                ),
            },
            Msg::GenerateOk { .. } | Msg::Error(_) => {
                tracing::debug!(src = %msg.src, "ignoring a reply")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, Envelope};
    use std::collections::HashSet;

    fn gen_req(k: u64) -> Message<Msg> {
        Envelope {
            id: None,
            src: "c1".into(),
            dest: "n0".into(),
            body: Body {
                msg_id: Some(k),
                in_reply_to: None,
                payload: Msg::Generate,
            },
        }
    }

    fn ids(node: &mut UniqueIds, me: &str, n: usize, now: Millis) -> Vec<u64> {
        let mut ctx = Ctx::new(me);
        for k in 0..n as u64 {
            node.handle(gen_req(k), now, &mut ctx);
        }
        ctx.drain()
            .into_iter()
            .map(|m| match m.body.payload {
                Msg::GenerateOk { id } => id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn info(me: &str, boot: u64) -> InitInfo {
        InitInfo {
            node_id: me.into(),
            node_ids: vec!["n0".into(), "n1".into(), "n2".into()],
            boot_unix_micros: boot,
            recovered: vec![],
        }
    }

    #[test]
    fn ids_are_unique_across_nodes_bursts_and_restarts() {
        let boot = EPOCH_2025_MICROS + 60 * 1_000_000 * 60 * 24 * 365;
        let mut seen = HashSet::new();
        for me in ["n0", "n1", "n2"] {
            let mut node = UniqueIds::init(&info(me, boot), &(), 0);
            // A burst far faster than the clock, then time passes.
            for id in ids(&mut node, me, 5000, 0)
                .into_iter()
                .chain(ids(&mut node, me, 10, 3))
            {
                assert!(seen.insert(id), "duplicate {id} from {me}");
            }
            // Restart 10 ms later: the new incarnation must not repeat anything.
            let mut again = UniqueIds::init(&info(me, boot + 10_000), &(), 0);
            for id in ids(&mut again, me, 1000, 0) {
                assert!(seen.insert(id), "duplicate {id} from restarted {me}");
            }
        }
        assert!(seen.iter().all(|id| *id < (1u64 << 53)));
    }

    #[test]
    fn generate_ok_has_only_allowed_keys() {
        let mut node = UniqueIds::init(&info("n1", EPOCH_2025_MICROS), &(), 0);
        let mut ctx = Ctx::new("n1");
        node.handle(gen_req(9), 0, &mut ctx);
        let v = serde_json::to_value(&ctx.drain()[0].body).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 3, "{v}");
        assert_eq!(v["type"], "generate_ok");
        assert_eq!(v["in_reply_to"], 9);
        assert_eq!(v["id"].as_u64().unwrap() % 3, 1);
    }
}
