//! The replicated state: a map from keys to values, changed only by applying committed entries.

use super::{Msg, Op};
use crate::wire::{ErrorBody, ErrorCode};
use serde_json::Value;
use std::collections::HashMap;

/// Keys are compared by their JSON text, as Maelstrom compares them (Clojure equality: `1` and
/// `1.0` are different keys); values by JSON equality.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Kv {
    map: HashMap<String, Value>,
}

impl Kv {
    /// The answer to a read of `key` in the current state.
    pub fn read(&self, key: &Value) -> Msg {
        match self.map.get(&key.to_string()) {
            Some(value) => Msg::ReadOk {
                value: value.clone(),
            },
            None => missing(),
        }
    }

    /// Applies one committed op; the answer for whoever asked (none for a no-op).
    pub fn apply(&mut self, op: &Op) -> Option<Msg> {
        match op {
            Op::Noop => None,
            Op::Write { key, value } => {
                self.map.insert(key.to_string(), value.clone());
                Some(Msg::WriteOk)
            }
            Op::Cas { key, from, to } => Some(match self.map.get_mut(&key.to_string()) {
                None => missing(),
                Some(v) if v == from => {
                    *v = to.clone();
                    Msg::CasOk
                }
                Some(v) => Msg::Error(ErrorBody::new(
                    ErrorCode::PreconditionFailed,
                    format!("expected {from}, but had {v}"),
                )),
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn missing() -> Msg {
    Msg::Error(ErrorBody::new(
        ErrorCode::KeyDoesNotExist,
        "key does not exist",
    ))
}
