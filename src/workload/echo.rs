//! `echo`: `{"type":"echo","echo":X}` → `{"type":"echo_ok","echo":X}` ([workloads](https://github.com/jepsen-io/maelstrom/blob/main/doc/workloads.md#workload-echo)).

use crate::node::{Ctx, InitInfo, Message, Millis, Workload};
use crate::wire::ErrorBody;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Echo { echo: Value },
    EchoOk { echo: Value },
    Error(ErrorBody),
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

/// Echo has no state and no knobs.
#[derive(Debug)]
pub struct Echo;

impl Workload for Echo {
    type Msg = Msg;
    type Config = ();

    fn init(_: &InitInfo, _: &(), _: Millis) -> Self {
        Echo
    }

    fn handle(&mut self, msg: Message<Msg>, _now: Millis, ctx: &mut Ctx<Msg>) {
        match msg.body.payload {
            Msg::Echo { echo } => ctx.reply(&msg.src, msg.body.msg_id, Msg::EchoOk { echo }),
            Msg::EchoOk { .. } | Msg::Error(_) => {
                tracing::debug!(src = %msg.src, "ignoring a reply")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, Envelope};
    use serde_json::json;

    #[test]
    fn echo_replies_with_the_same_value_and_only_allowed_keys() {
        let info = InitInfo {
            node_id: "n0".into(),
            node_ids: vec!["n0".into()],
            boot_unix_micros: 0,
            recovered: vec![],
        };
        let mut node = Echo::init(&info, &(), 0);
        let mut ctx = Ctx::new("n0");
        let req: Envelope<Body<Msg>> = serde_json::from_value(
            json!({"src":"c1","dest":"n0","body":{"type":"echo","echo":"Please echo 35","msg_id":1}}),
        )
        .unwrap();
        node.handle(req, 0, &mut ctx);
        let out = ctx.drain();
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!([{"src":"n0","dest":"c1","body":{"type":"echo_ok","echo":"Please echo 35","in_reply_to":1}}])
        );
    }

    #[test]
    fn replies_are_not_answered() {
        let info = InitInfo {
            node_id: "n0".into(),
            node_ids: vec!["n0".into()],
            boot_unix_micros: 0,
            recovered: vec![],
        };
        let mut node = Echo::init(&info, &(), 0);
        let mut ctx = Ctx::new("n0");
        let m: Envelope<Body<Msg>> = serde_json::from_value(
            json!({"src":"n1","dest":"n0","body":{"type":"echo_ok","echo":1,"in_reply_to":3}}),
        )
        .unwrap();
        node.handle(m, 0, &mut ctx);
        assert!(ctx.drain().is_empty());
    }
}
