//! The terminal summary of a results object, ending with Maelstrom's verdict line.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Maelstrom's verdict for `valid? true`.
pub const VERDICT_VALID: &str = "Everything looks good! ヽ(‘ー`)ノ";
/// Maelstrom's verdict for `valid? false`.
pub const VERDICT_INVALID: &str = "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻";
/// Maelstrom's verdict for `valid? unknown` (a checker failed, nothing invalid found).
pub const VERDICT_UNKNOWN: &str = "Errors occurred during analysis, but no anomalies found. ಠ~ಠ";

/// Context printed after the results: things that are not in `results.json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SummaryInfo<'a> {
    /// The run's seed (always worth printing: it replays the run).
    pub seed: Option<u64>,
    /// Where the run folder is.
    pub run_dir: Option<&'a Path>,
}

/// Maelstrom's verdict line for a top-level `valid?` value: `true`, `false`, or anything else
/// (`"unknown"`, absent) as unknown.
pub fn verdict(results: &Value) -> &'static str {
    match results.get("valid?") {
        Some(Value::Bool(true)) => VERDICT_VALID,
        Some(Value::Bool(false)) => VERDICT_INVALID,
        _ => VERDICT_UNKNOWN,
    }
}

/// Width of the label column.
const LABEL: usize = 13;
/// Lines of `by node` wrap at this width.
pub(super) const WIDTH: usize = 96;
/// At most this many rows of the per-type table.
const MAX_TYPES: usize = 12;
/// At most this many examples of lost/duplicated values or errors.
const MAX_EXAMPLES: usize = 8;

/// A compact, readable report of a results object, ending with the verdict line. Missing or
/// oddly shaped sections are skipped, never a panic.
pub fn summary(results: &Value, info: &SummaryInfo<'_>) -> String {
    let mut out = Summary::default();
    out.stats(results.get("stats"));
    out.availability(results.get("availability"));
    out.net(results.get("net"));
    out.workload(results.get("workload"));
    out.exceptions(results.get("exceptions"));
    out.runner(results.get("runner"));
    if let Some(seed) = info.seed {
        out.line("seed", seed.to_string());
    }
    if let Some(dir) = info.run_dir {
        out.line("run folder", dir.display().to_string());
    }
    let problems = problem_sections(results);
    let mut text = out.text;
    if !problems.is_empty() {
        let _ = writeln!(text, "\nnot valid: {}", problems.join(", "));
    }
    let _ = writeln!(text, "\n{}", verdict(results));
    text
}

#[derive(Default)]
struct Summary {
    text: String,
}

impl Summary {
    fn line(&mut self, label: &str, body: impl AsRef<str>) {
        let _ = writeln!(self.text, "{label:<LABEL$} {}", body.as_ref());
    }

    fn more(&mut self, body: impl AsRef<str>) {
        self.line("", body);
    }

    fn stats(&mut self, stats: Option<&Value>) {
        let Some(stats) = stats.filter(|s| s.is_object()) else {
            return;
        };
        self.line("ops", op_counts(stats));
        if let Some(Value::Object(by_f)) = stats.get("by-f") {
            let width = by_f.keys().map(|k| k.chars().count()).max().unwrap_or(0);
            for (f, counts) in by_f {
                self.more(format!("  {f:<width$}  {}", op_counts(counts)));
            }
        }
    }

    fn availability(&mut self, av: Option<&Value>) {
        let Some(fraction) = av
            .and_then(|a| a.get("ok-fraction"))
            .and_then(Value::as_f64)
        else {
            return;
        };
        let below = match av.and_then(|a| a.get("valid?")) {
            Some(Value::Bool(false)) => "  (below --availability)",
            _ => "",
        };
        self.line(
            "availability",
            format!("{:.2}% of client ops ok{below}", fraction * 100.0),
        );
    }

    fn net(&mut self, net: Option<&Value>) {
        let Some(net) = net.filter(|n| n.is_object()) else {
            return;
        };
        let mut first = true;
        for view in ["all", "servers", "clients"] {
            let Some(v) = net.get(view).filter(|v| v.is_object()) else {
                continue;
            };
            let mut body = format!(
                "{view:<8} {:>9} sent {:>9} recv",
                count_text(v, &["send-count"]),
                count_text(v, &["recv-count"])
            );
            if let Some(m) = v.get("msgs-per-op").and_then(Value::as_f64) {
                let _ = write!(body, "   msgs-per-op {m:.2}");
            }
            if first {
                self.line("messages", body);
                first = false;
            } else {
                self.more(body);
            }
        }
        self.by_type(net.get("by-type"));
        self.by_node(net.get("by-node"));
    }

    fn by_type(&mut self, by_type: Option<&Value>) {
        let rows = keyed_rows(
            by_type,
            "type",
            &["send-count", "sent"],
            &["recv-count", "received"],
        );
        if rows.is_empty() {
            return;
        }
        let width = rows
            .iter()
            .take(MAX_TYPES)
            .map(|r| r.0.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        self.line(
            "by type",
            format!("{:<width$} {:>9} {:>9}", "type", "sent", "recv"),
        );
        for (name, sent, recv) in rows.iter().take(MAX_TYPES) {
            self.more(format!("{name:<width$} {sent:>9} {recv:>9}"));
        }
        if rows.len() > MAX_TYPES {
            self.more(format!("… {} more types", rows.len() - MAX_TYPES));
        }
    }

    fn by_node(&mut self, by_node: Option<&Value>) {
        let rows = keyed_rows(
            by_node,
            "node",
            &["sent", "send-count"],
            &["received", "recv-count"],
        );
        // Clients (if a producer includes them) would swamp the line; they are summed instead.
        let (clients, servers): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.0.starts_with('c'));
        let mut cells: Vec<String> = servers
            .iter()
            .map(|(n, s, r)| format!("{n} {s}/{r}"))
            .collect();
        if !clients.is_empty() {
            let sum = |pick: fn(&(String, String, String)) -> &String| -> u64 {
                clients
                    .iter()
                    .map(|r| pick(r).parse::<u64>().unwrap_or(0))
                    .sum()
            };
            cells.push(format!(
                "clients({}) {}/{}",
                clients.len(),
                sum(|r| &r.1),
                sum(|r| &r.2)
            ));
        }
        if cells.is_empty() {
            return;
        }
        let mut label = "by node";
        let mut current = String::from("(sent/recv)");
        for cell in cells {
            if current.chars().count() + 2 + cell.chars().count() > WIDTH - LABEL - 1
                && !current.is_empty()
            {
                self.line(label, std::mem::take(&mut current));
                label = "";
            }
            if !current.is_empty() {
                current.push_str("  ");
            }
            current.push_str(&cell);
        }
        self.line(label, current);
    }

    /// For each key found not linearizable (up to 3): the op the search could not place, the
    /// last op it placed, the register's value then, and the ops pending at that point.
    fn linearizability_failures(&mut self, w: &Value) {
        let brief = |o: &Value| {
            format!(
                "p{} {} {} {}",
                value_text(o.get("process").unwrap_or(&Value::Null)),
                value_text(o.get("type").unwrap_or(&Value::Null)),
                value_text(o.get("f").unwrap_or(&Value::Null)),
                compact(o.get("value").unwrap_or(&Value::Null))
            )
        };
        let failures = w.get("failures").and_then(Value::as_array);
        for key in failures.into_iter().flatten().take(3) {
            let key = value_text(key);
            let Some(r) = w.get("results").and_then(|r| r.get(&key)) else {
                continue;
            };
            let after = r.get("previous-ok").map_or("the start".into(), brief);
            let line = format!(
                "key {key}: cannot place {} after {after} (register {})",
                r.get("op").map_or("?".into(), brief),
                r.get("last-state").map_or("?".into(), compact)
            );
            self.more(shorten(&line, WIDTH - LABEL - 4));
            if let Some(window) = r.get("window").and_then(Value::as_array) {
                let items = window.iter().map(brief);
                let line = format!("  pending: {}", examples(items, window.len()));
                self.more(shorten(&line, WIDTH - LABEL - 4));
            }
        }
    }

    fn workload(&mut self, w: Option<&Value>) {
        let Some(w) = w.filter(|w| w.is_object()) else {
            return;
        };
        const COUNTS: [(&str, &str); 9] = [
            ("attempt-count", "attempted"),
            ("attempted-count", "attempted"),
            ("acknowledged-count", "acknowledged"),
            ("stable-count", "stable"),
            ("lost-count", "lost"),
            ("never-read-count", "never-read"),
            ("stale-count", "stale"),
            ("duplicated-count", "duplicated"),
            ("error-count", "errors"),
        ];
        let mut parts: Vec<String> = COUNTS
            .iter()
            .filter_map(|(key, label)| w.get(*key).map(|v| format!("{label} {}", value_text(v))))
            .collect();
        let errors = w.get("errors").and_then(Value::as_array);
        if w.get("error-count").is_none() {
            if let Some(errors) = errors.filter(|e| !e.is_empty()) {
                parts.push(format!("errors {}", errors.len()));
            }
        }
        // The counters' checker: the final reads and the values they could have been.
        if let Some(reads) = w.get("final-reads").and_then(Value::as_array) {
            parts.push(format!(
                "final reads {}",
                examples(reads.iter().map(Value::to_string), reads.len())
            ));
        }
        // lin-kv (Jepsen's independent checker): keys checked, failed, undecided.
        if let Some(results) = w.get("results").and_then(Value::as_object) {
            let count = |k: &str| w.get(k).and_then(Value::as_array).map_or(0, Vec::len);
            parts.push(format!(
                "keys {}, not linearizable {}, undecided {}",
                results.len(),
                count("failures"),
                count("unknown")
            ));
        }
        if !parts.is_empty() {
            self.line("workload", parts.join(", "));
        }
        self.linearizability_failures(w);
        if let Some(acceptable) = w.get("acceptable").filter(|a| a.is_array()) {
            self.more(format!("acceptable: {acceptable}"));
        }
        for (key, label) in [
            ("stable-latencies", "stable latency"),
            ("lost-latencies", "lost latency"),
        ] {
            if let Some(q) = w.get(key).and_then(quantiles_text) {
                self.more(format!("{label} (ms): {q}"));
            }
        }
        for key in ["lost", "never-read"] {
            if let Some(items) = w
                .get(key)
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
            {
                self.more(format!(
                    "{key}: {}",
                    examples(items.iter().map(Value::to_string), items.len())
                ));
            }
        }
        match w.get("duplicated") {
            Some(Value::Object(m)) if !m.is_empty() => {
                let items = m.iter().map(|(k, v)| format!("{k}×{}", value_text(v)));
                self.more(format!("duplicated: {}", examples(items, m.len())));
            }
            Some(Value::Array(a)) if !a.is_empty() => {
                self.more(format!(
                    "duplicated: {}",
                    examples(a.iter().map(compact), a.len())
                ));
            }
            _ => {}
        }
        if let Some(errors) = errors.filter(|e| !e.is_empty()) {
            for e in errors.iter().take(3) {
                self.more(format!(
                    "error: {}",
                    shorten(&compact(e), WIDTH - LABEL - 8)
                ));
            }
            if errors.len() > 3 {
                self.more(format!("… {} more errors", errors.len() - 3));
            }
        }
        if let Some(e) = w.get("error") {
            self.more(format!(
                "checker error: {}",
                shorten(&compact(e), WIDTH - LABEL - 16)
            ));
        }
    }

    fn exceptions(&mut self, ex: Option<&Value>) {
        let Some(list) = ex
            .and_then(|e| e.get("exceptions"))
            .and_then(Value::as_array)
        else {
            return;
        };
        if list.is_empty() {
            return;
        }
        let items = list.iter().map(|e| {
            let count = e.get("count").map(value_text).unwrap_or_else(|| "?".into());
            let class = e.get("class").map(value_text).unwrap_or_else(|| "?".into());
            format!("{count}× {class}")
        });
        self.line("exceptions", examples(items, list.len()));
    }

    fn runner(&mut self, runner: Option<&Value>) {
        let Some(Value::Object(r)) = runner else {
            return;
        };
        let lag = ["delivery-lag-us", "delivery-lag", "lag-us", "lag"]
            .iter()
            .find_map(|k| r.get(*k).filter(|v| v.is_object()));
        let mut parts = Vec::new();
        if let Some(lag) = lag {
            let pick = |keys: &[&str]| keys.iter().find_map(|k| lag.get(*k)).map(value_text);
            let mut q = Vec::new();
            for (label, keys) in [
                ("p50", &["p50", "p50-us", "p50_us", "0.5"][..]),
                ("p99", &["p99", "p99-us", "p99_us", "0.99"][..]),
                ("max", &["max", "max-us", "max_us", "1"][..]),
            ] {
                if let Some(v) = pick(keys) {
                    q.push(format!("{label} {v}"));
                }
            }
            if !q.is_empty() {
                parts.push(format!("delivery lag (µs) {}", q.join(", ")));
            }
        }
        if r.get("overloaded").and_then(Value::as_bool) == Some(true) {
            parts.push("OVERLOADED: timings are not trustworthy".into());
        }
        let lag_key = |k: &str| {
            [
                "delivery-lag-us",
                "delivery-lag",
                "lag-us",
                "lag",
                "overloaded",
            ]
            .contains(&k)
        };
        let others: Vec<String> = r
            .iter()
            .filter(|(k, v)| !lag_key(k) && !v.is_object() && !v.is_array())
            .map(|(k, v)| format!("{k} {}", value_text(v)))
            .collect();
        if !others.is_empty() {
            parts.push(others.join(", "));
        }
        let mut label = "runner";
        for part in parts {
            self.line(label, part);
            label = "";
        }
    }
}

/// `1998 ok, 0 fail, 0 info` from a stats map.
fn op_counts(v: &Value) -> String {
    let mut s = format!(
        "{} ok, {} fail, {} info",
        count_text(v, &["ok-count"]),
        count_text(v, &["fail-count"]),
        count_text(v, &["info-count"])
    );
    if let Some(n) = v.get("count") {
        let _ = write!(s, " ({} completed)", value_text(n));
    }
    if v.get("valid?") == Some(&Value::Bool(false)) {
        s.push_str("  <- no ok op");
    }
    s
}

fn count_text(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| v.get(*k))
        .map(value_text)
        .unwrap_or_else(|| "-".into())
}

/// Rows `(name, sent, recv)` from either an array of objects carrying `name_key`, or an object
/// keyed by name. Counts are rendered as text ("-" when absent).
fn keyed_rows(
    v: Option<&Value>,
    name_key: &str,
    sent: &[&str],
    recv: &[&str],
) -> Vec<(String, String, String)> {
    let row = |name: String, obj: &Value| {
        let name = if name.is_empty() {
            "(none)".to_string()
        } else {
            name
        };
        (name, count_text(obj, sent), count_text(obj, recv))
    };
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter(|o| o.is_object())
            .map(|o| row(o.get(name_key).map(value_text).unwrap_or_default(), o))
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .filter(|(_, o)| o.is_object())
            .map(|(k, o)| row(k.clone(), o))
            .collect(),
        _ => Vec::new(),
    }
}

/// `min 0, p50 350, p95 480, p99 510, max 560` from `{"0":…, "0.5":…, …}`, in quantile order.
fn quantiles_text(q: &Value) -> Option<String> {
    let map = q.as_object()?;
    let mut entries: Vec<(f64, &Value)> = map
        .iter()
        .filter_map(|(k, v)| k.parse::<f64>().ok().map(|q| (q, v)))
        .collect();
    if entries.is_empty() {
        return None;
    }
    entries.sort_by(|a, b| a.0.total_cmp(&b.0));
    let label = |q: f64| {
        if q == 0.0 {
            "min".to_string()
        } else if q == 1.0 {
            "max".to_string()
        } else {
            format!("p{}", (q * 1000.0).round() / 10.0)
        }
    };
    Some(
        entries
            .iter()
            .map(|(q, v)| format!("{} {}", label(*q), value_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Up to [`MAX_EXAMPLES`] items, then "… (N total)".
fn examples(items: impl Iterator<Item = String>, total: usize) -> String {
    let mut s = items.take(MAX_EXAMPLES).collect::<Vec<_>>().join(", ");
    if total > MAX_EXAMPLES {
        let _ = write!(s, ", … ({total} total)");
    }
    s
}

/// A scalar as plain text: strings unquoted, whole floats without `.0`, others with two decimals.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        }
        other => other.to_string(),
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// Top-level sections whose `valid?` is not true, e.g. `workload (false)`.
fn problem_sections(results: &Value) -> Vec<String> {
    let Some(map) = results.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| match v.get("valid?")? {
            Value::Bool(true) => None,
            other => Some(format!("{k} ({})", value_text(other))),
        })
        .collect()
}
