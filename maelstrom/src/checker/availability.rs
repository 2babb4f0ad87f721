//! Maelstrom's availability checker (`maelstrom/checker.clj`).
//!
//! `ok-fraction` = `ok` client completions / client invocations, or 1 when there were no
//! invocations, stored as a 32-bit float as Maelstrom does. With no `--availability` target the
//! result is always valid; with `total` every invocation must succeed; with a number x the
//! fraction must be at least x.

use serde::Serialize;

use super::{CheckResult, Validity};
use crate::history::{Op, OpType};

/// The `--availability` target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AvailabilityTarget {
    /// `total`: every client invocation must complete `ok`.
    Total,
    /// A lower bound on `ok-fraction`, between 0 and 1.
    Fraction(f64),
}

/// The `availability` result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Availability {
    #[serde(rename = "valid?")]
    pub valid: Validity,
    pub ok_fraction: f32,
}

impl CheckResult for Availability {
    fn validity(&self) -> Validity {
        self.valid
    }
}

/// Measures availability and compares it with `target` (`None`: no requirement).
#[must_use]
pub fn check(history: &[Op], target: Option<AvailabilityTarget>) -> Availability {
    let (mut invokes, mut oks) = (0u64, 0u64);
    for op in history.iter().filter(|op| op.is_client()) {
        match op.kind {
            OpType::Invoke => invokes += 1,
            OpType::Ok => oks += 1,
            _ => {}
        }
    }
    let ok_fraction = if invokes == 0 {
        1.0
    } else {
        (oks as f64 / invokes as f64) as f32
    };
    let valid = match target {
        None => true,
        Some(AvailabilityTarget::Total) => ok_fraction == 1.0,
        // Maelstrom compares the target with the already-rounded float.
        Some(AvailabilityTarget::Fraction(x)) => f64::from(ok_fraction) >= x,
    };
    Availability {
        valid: valid.into(),
        ok_fraction,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::checker::testkit::H;
    use crate::history::OpType::*;

    /// Three invocations, two ok, plus nemesis noise.
    fn two_of_three() -> Vec<Op> {
        let mut h = H::new();
        h.c(0, Invoke, 0, "echo", json!("a"));
        h.c(1, Ok, 0, "echo", json!({"echo": "a"}));
        h.nemesis(2, "start-partition");
        h.c(3, Invoke, 0, "echo", json!("b"));
        h.c(4, Info, 0, "echo", json!("b"));
        h.c(5, Invoke, 1, "echo", json!("c"));
        h.c(6, Ok, 1, "echo", json!({"echo": "c"}));
        h.ops
    }

    #[test]
    fn no_target_is_always_valid() {
        let a = check(&two_of_three(), None);
        assert_eq!(a.valid, Validity::True);
        assert!((a.ok_fraction - 2.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn total_requires_every_op_to_succeed() {
        assert_eq!(
            check(&two_of_three(), Some(AvailabilityTarget::Total)).valid,
            Validity::False
        );
        let mut h = H::new();
        h.c(0, Invoke, 0, "read", Value::Null);
        h.c(1, Ok, 0, "read", json!([]));
        let a = check(&h.ops, Some(AvailabilityTarget::Total));
        assert_eq!(a.valid, Validity::True);
        assert_eq!(a.ok_fraction, 1.0);
    }

    #[test]
    fn fraction_is_a_lower_bound() {
        let h = two_of_three();
        assert_eq!(
            check(&h, Some(AvailabilityTarget::Fraction(0.6))).valid,
            Validity::True
        );
        assert_eq!(
            check(&h, Some(AvailabilityTarget::Fraction(0.7))).valid,
            Validity::False
        );
    }

    #[test]
    fn no_invocations_means_fully_available() {
        let a = check(&[], Some(AvailabilityTarget::Total));
        assert_eq!(a.valid, Validity::True);
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            json!({"valid?": true, "ok-fraction": 1.0})
        );
    }
}
