//! JSON values as hash keys and sort keys.
//!
//! [`serde_json::Value`] implements neither `Hash` nor `Ord`, but the checkers need set membership
//! (is this element in that read?) and sorted output. [`JsonKey`] is a hashable key that is equal
//! exactly when the values are equal under `Value`'s `==` (which, like Clojure's `=`, keeps `1` and
//! `1.0` apart); integers, the common case, need no allocation. [`cmp_values`] is the total order
//! used for sorted output lists.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::Value;

/// A hashable stand-in for a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum JsonKey {
    /// A non-negative integer (serde_json stores every non-negative integer this way).
    Pos(u64),
    /// A negative integer.
    Neg(i64),
    /// Anything else, as canonical JSON text (object keys sorted, `-0.0` written as `0.0`).
    Other(String),
}

/// The key of a value; `key(a) == key(b)` exactly when `a == b`.
pub(crate) fn key(v: &Value) -> JsonKey {
    if let Value::Number(n) = v {
        if let Some(u) = n.as_u64() {
            return JsonKey::Pos(u);
        }
        if let Some(i) = n.as_i64() {
            return JsonKey::Neg(i);
        }
    }
    let mut s = String::new();
    canonical(v, &mut s);
    JsonKey::Other(s)
}

/// Writes canonical JSON text: equal values give equal text and unequal values unequal text.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_u64() || n.is_i64() {
                let _ = write!(out, "{n}");
            } else {
                // Floats: `Debug` is the shortest round-trip form and always shows a `.` or an
                // exponent, so it never collides with an integer. Only ±0.0 are equal yet print
                // differently.
                let f = n.as_f64().unwrap_or(0.0);
                let f = if f == 0.0 { 0.0 } else { f };
                let _ = write!(out, "{f:?}");
            }
        }
        Value::String(s) => {
            let _ = write!(out, "{}", Value::String(s.clone()));
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", Value::String(k.clone()));
                canonical(item, out);
            }
            out.push('}');
        }
    }
}

/// A total order for output lists: numbers first, numerically (an integer before an equal float);
/// then strings, lexicographically; then everything else by canonical JSON text.
pub(crate) fn cmp_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            _ => 2,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)).then_with(|| {
            let (mut x, mut y) = (String::new(), String::new());
            canonical(a, &mut x);
            canonical(b, &mut y);
            x.cmp(&y)
        }),
    }
}

fn cmp_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    fn int(n: &serde_json::Number) -> Option<i128> {
        n.as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from))
    }
    match (int(x), int(y)) {
        (Some(i), Some(j)) => i.cmp(&j),
        (xi, yi) => {
            let fx = x.as_f64().unwrap_or(0.0);
            let fy = y.as_f64().unwrap_or(0.0);
            fx.partial_cmp(&fy)
                .unwrap_or(Ordering::Equal)
                // Equal magnitudes: the integer first, so 1 and 1.0 still have an order.
                .then_with(|| yi.is_some().cmp(&xi.is_some()))
        }
    }
}

/// Natural order for node names: digit runs compare as numbers, so `n2` sorts before `n10`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (ra, rest_a) = split_run(a);
        let (rb, rest_b) = split_run(b);
        let a_digits = ra.as_bytes()[0].is_ascii_digit();
        let b_digits = rb.as_bytes()[0].is_ascii_digit();
        let ord = if a_digits && b_digits {
            let ta = ra.trim_start_matches('0');
            let tb = rb.trim_start_matches('0');
            ta.len()
                .cmp(&tb.len())
                .then_with(|| ta.cmp(tb))
                .then_with(|| ra.len().cmp(&rb.len()))
        } else {
            ra.cmp(rb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = rest_a;
        b = rest_b;
    }
}

/// Splits off the leading run of ASCII digits or of non-digits. `s` must be non-empty.
fn split_run(s: &str) -> (&str, &str) {
    let digits = s.as_bytes()[0].is_ascii_digit();
    let end = s
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit() != digits)
        .map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_follow_value_equality() {
        let values = [
            json!(1),
            json!(1.0),
            json!(-1),
            json!(u64::MAX),
            json!("1"),
            json!([1, 2]),
            json!([1.0, 2]),
            json!({"a": 1, "b": [true, null]}),
            json!(null),
            json!(false),
        ];
        for a in &values {
            for b in &values {
                assert_eq!(key(a) == key(b), a == b, "{a} vs {b}");
            }
        }
        // Object key order does not matter; ±0.0 are equal.
        let x: Value = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
        let y: Value = serde_json::from_str(r#"{"a": 2, "b": 1}"#).unwrap();
        assert_eq!(key(&x), key(&y));
        assert_eq!(key(&json!(0.0)), key(&json!(-0.0)));
        assert_eq!(json!(0.0), json!(-0.0));
    }

    #[test]
    fn values_sort_numbers_numerically_then_strings_then_rest() {
        let mut v = vec![
            json!("b"),
            json!(10),
            json!([1]),
            json!(2),
            json!(-3),
            json!("a"),
            json!(2.5),
            json!(null),
        ];
        v.sort_by(cmp_values);
        assert_eq!(
            v,
            vec![
                json!(-3),
                json!(2),
                json!(2.5),
                json!(10),
                json!("a"),
                json!("b"),
                json!([1]),
                json!(null)
            ]
        );
        assert_eq!(cmp_values(&json!(1), &json!(1.0)), Ordering::Less);
        assert_eq!(cmp_values(&json!(1.0), &json!(1)), Ordering::Greater);
    }

    #[test]
    fn natural_order_compares_digit_runs_numerically() {
        let mut names = vec!["n10", "n2", "seq-kv", "n1", "n02", "c3", "n"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["c3", "n", "n1", "n2", "n02", "n10", "seq-kv"]);
    }
}
