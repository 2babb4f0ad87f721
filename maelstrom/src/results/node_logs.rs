//! What murmur's broadcast nodes say in their logs about each other: the state changes of their
//! network tables (a peer turning suspect, dead or alive again) and the routing around a silent
//! hub (a successor chosen, leaves served, the star re-formed), placed on the run's clock for the
//! report's per-node table.
//!
//! The runner keeps every node's stderr in `node-logs/<id>.log`, appended across restarts.
//! murmur nodes log with a UTC timestamp first (`2026-12-07T16:52:41.071293Z  INFO target: message
//! key=value …`). A line's place on the run's clock is found from the node's own `init` line:
//! the k-th `init node=<id>` line of a log is the node's k-th incarnation, whose `init` the
//! journal shows delivered at a known time; later lines are that many ms after it. Both clocks are
//! the same machine's, so the error is how long the node took to log its `init` (well under a
//! millisecond). Nodes that log otherwise (not murmur's) give no events, and the table shows
//! nothing rather than guesses.

use crate::history::{JournalEvent, JournalKind};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// The tracing target of murmur's liveness module: its info and warn lines are the events.
const LIVENESS_TARGET: &str = "murmur::workload::broadcast::liveness:";
/// What a murmur node logs when it answers `init` (`murmur::host`).
const INIT_MARK: &str = "murmur::host: init node=";
/// Events kept per node: a run with a flapping link could otherwise fill the page.
pub const MAX_EVENTS_PER_NODE: usize = 200;

/// One thing a node noticed, in the report's units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeEvent {
    pub node: String,
    /// µs since the test started.
    pub t: u64,
    /// Short text: `n0 suspect`, `successor n1`, `serves n5`, ….
    pub text: String,
}

/// The `key=value` field `key` of a log line's rest (tracing quotes string values it formats
/// with `Debug`: `successor="n1"`; the quotes are dropped).
fn field<'a>(rest: &'a str, key: &str) -> Option<&'a str> {
    rest.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

/// The short text for one liveness line's message (what follows the target), `None` for lines
/// that are not state changes.
fn describe(msg: &str) -> Option<String> {
    let msg = msg.trim();
    Some(if msg.starts_with("peer state") {
        let peer = field(msg, "peer")?;
        let state = field(msg, "state")?.to_ascii_lowercase();
        format!("{peer} {state}")
    } else if msg.starts_with("hub not answering") {
        "routes around its hub".to_string()
    } else if msg.starts_with("successor hub") {
        format!("successor {}", field(msg, "successor")?)
    } else if msg.starts_with("hub answers again") {
        "hub answers: star re-formed".to_string()
    } else if msg.starts_with("acting as its successor hub") {
        format!("serves {}", field(msg, "peer")?)
    } else if msg.starts_with("released") {
        format!("released by {}", field(msg, "peer")?)
    } else {
        return None;
    })
}

/// A log line's timestamp in µs since the epoch, if it starts with one.
fn stamp_us(line: &str) -> Option<i128> {
    let word = line.split_whitespace().next()?;
    let ts: jiff::Timestamp = word.parse().ok()?;
    Some(ts.as_microsecond() as i128)
}

/// The events in one node's log, given when (µs on the run's clock) each of its incarnations
/// received `init`.
pub fn events_in_log(node: &str, log: &str, inits_us: &[u64]) -> Vec<NodeEvent> {
    let mut out = Vec::new();
    // (log time, run time) of the current incarnation's init line.
    let mut anchor: Option<(i128, i128)> = None;
    let mut incarnation = 0usize;
    for line in log.lines() {
        if line.contains(INIT_MARK) {
            anchor = match (stamp_us(line), inits_us.get(incarnation)) {
                (Some(at), Some(&run)) => Some((at, run as i128)),
                _ => None,
            };
            incarnation += 1;
            continue;
        }
        let Some((_, msg)) = line.split_once(LIVENESS_TARGET) else {
            continue;
        };
        let (Some((log0, run0)), Some(at)) = (anchor, stamp_us(line)) else {
            continue;
        };
        let Some(text) = describe(msg) else {
            continue;
        };
        if out.len() == MAX_EVENTS_PER_NODE {
            break;
        }
        let t = (run0 + at - log0).max(0);
        out.push(NodeEvent {
            node: node.to_string(),
            t: u64::try_from(t).unwrap_or(u64::MAX),
            text,
        });
    }
    out
}

/// Every node's events from `<logs>/<id>.log`, for the nodes the journal shows receiving
/// `init`. A missing or unreadable file gives no events for its node; bytes that are not UTF-8
/// are replaced, line by line, rather than costing the node its events. A log whose `init` lines
/// do not match the journal's deliveries one for one (an `init` refused, or a kill before the
/// node logged it) gives none either: the events could not be placed with certainty.
pub fn liveness_events(logs: &Path, journal: &[JournalEvent]) -> Vec<NodeEvent> {
    let mut inits: HashMap<&str, Vec<u64>> = HashMap::new();
    for e in journal {
        if e.kind == JournalKind::Recv && e.body_type == "init" {
            inits
                .entry(e.dest.as_str())
                .or_default()
                .push(e.time / 1_000);
        }
    }
    let mut nodes: Vec<&&str> = inits.keys().collect();
    nodes.sort();
    let mut out = Vec::new();
    for node in nodes {
        let Some(log) = read_lossy(&logs.join(format!("{node}.log"))) else {
            continue;
        };
        let mut times = inits[*node].clone();
        times.sort_unstable();
        if log.lines().filter(|l| l.contains(INIT_MARK)).count() != times.len() {
            continue;
        }
        out.extend(events_in_log(node, &log, &times));
    }
    out
}

/// The lines of `path` that matter here (init lines and the liveness module's), each decoded
/// lossily; `None` if the file cannot be read. Other lines (a debug log can be large) are
/// dropped as they are read.
fn read_lossy(path: &Path) -> Option<String> {
    use std::io::BufRead;
    let mut r = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut out = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                if text.contains(INIT_MARK) || text.contains(LIVENESS_TARGET) {
                    out.push_str(text.trim_end_matches(['\n', '\r']));
                    out.push('\n');
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"2026-12-07T16:52:41.000000Z  INFO murmur::runtime: starting config=x
2026-12-07T16:52:41.100000Z  INFO murmur::host: init node=n3 nodes=5 recovered_records=0
2026-12-07T16:52:43.600000Z  INFO murmur::workload::broadcast::liveness: peer state peer=n0 state=Suspect rtt=200
2026-12-07T16:52:43.600100Z  WARN murmur::workload::broadcast::liveness: hub not answering: routing through a successor
2026-12-07T16:52:43.600200Z  INFO murmur::workload::broadcast::liveness: successor hub successor="n1"
2026-12-07T16:52:44.000000Z DEBUG murmur::workload::broadcast::liveness: pong with a stale or wrong nonce ignored src=n0
not a log line at all �
2026-12-07T16:52:50.000000Z  INFO murmur::host: init node=n3 nodes=5 recovered_records=12
2026-12-07T16:52:51.500000Z  INFO murmur::workload::broadcast::liveness: acting as its successor hub peer=n4
2026-12-07T16:52:52.000000Z  INFO murmur::workload::broadcast::liveness: hub answers again: the star re-forms after_ms=900
"#;

    #[test]
    fn events_are_placed_on_the_run_clock_per_incarnation() {
        // The first init reached n3 at 0.05 s, the second (after a restart) at 9.0 s.
        let ev = events_in_log("n3", LOG, &[50_000, 9_000_000]);
        let got: Vec<(u64, &str)> = ev.iter().map(|e| (e.t, e.text.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (2_550_000, "n0 suspect"),
                (2_550_100, "routes around its hub"),
                (2_550_200, "successor n1"),
                (10_500_000, "serves n4"),
                (11_000_000, "hub answers: star re-formed"),
            ]
        );
    }

    #[test]
    fn logs_are_read_lossily_and_a_mismatched_log_gives_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LOG.as_bytes().to_vec();
        // A line that is not UTF-8 does not cost the node its events.
        log.extend_from_slice(b"\xff\xfe binary junk\n");
        std::fs::write(dir.path().join("n3.log"), &log).unwrap();
        let init = |t: u64| JournalEvent {
            kind: JournalKind::Recv,
            time: t * 1_000,
            id: 0,
            src: "c0".into(),
            dest: "n3".into(),
            body_type: "init".into(),
            body: None,
        };
        let two = [init(50_000), init(9_000_000)];
        assert_eq!(liveness_events(dir.path(), &two).len(), 5);
        // Three deliveries for two logged inits: which one each line follows is unknown.
        let three = [init(50_000), init(4_000_000), init(9_000_000)];
        assert!(liveness_events(dir.path(), &three).is_empty());
    }

    #[test]
    fn without_an_init_anchor_nothing_is_guessed() {
        // The journal saw no init (say, a damaged journal): no events rather than wrong times.
        assert!(events_in_log("n3", LOG, &[]).is_empty());
        // A log that is not murmur's gives nothing.
        assert!(events_in_log("n3", "hello\nworld\n", &[0]).is_empty());
    }
}
