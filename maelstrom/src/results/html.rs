//! `report.html`: one self-contained page per run (issue 13), written at the end of every run and
//! again by `maelstrom analyze <run-folder>`.
//!
//! The page is the template `report.html` (markup, styles and script, all inline) with the run's
//! data spliced in as one JSON object, so it opens offline from disk. The data is laid out for the
//! script, not for people: messages and ops are columns of integers (times in µs since the test
//! started, lanes and types as indices into name tables), which keeps a 10k-message run well
//! under a megabyte and lets the script scan 100k messages per frame. Message bodies are cut to
//! [`BODY_LIMIT`] characters (`messages.jsonl` keeps them whole): a broadcast `read_ok` near the
//! end of a run carries every value, and a thousand of them would otherwise dominate the file.
//!
//! Rendering is split from writing so tests can check the data without a file system, and the
//! fault intervals ([`fault_intervals`], from the history's nemesis ops) and broadcast nodes' last
//! reads ([`broadcast_last_reads`], from the journal's bodies) are computed here, where they can be
//! unit-tested, rather than in the page's script.

use super::node_logs::NodeEvent;
use super::run_dir::ResultsError;
use crate::history::{JournalEvent, JournalKind, Op, OpType, Process};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The template; `__TITLE__` and `__DATA__` are replaced once each.
const TEMPLATE: &str = include_str!("report.html");

/// Bodies longer than this many characters are cut in the page (whole in `messages.jsonl`).
/// 400 shows a gossip batch or a `read_ok` of a hundred values whole.
pub const BODY_LIMIT: usize = 400;

/// What the page says about the run besides the data: where it came from.
#[derive(Debug, Clone, Default)]
pub struct ReportMeta {
    pub workload: String,
    /// The run folder's name (its start time).
    pub run: String,
    /// The command line that started the run, when it was recorded.
    pub command: Option<String>,
    pub seed: Option<u64>,
    /// Server node ids, in the run's order; when empty they are taken from the journal.
    pub nodes: Vec<String>,
    /// Why the run aborted, if it did (the page then has no checker results).
    pub aborted: Option<String>,
}

/// One fault over an interval of the run, from the history's nemesis completions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultInterval {
    /// `partition`, `kill` or `pause`.
    pub kind: &'static str,
    /// µs since the test started.
    pub start: u64,
    /// µs; the end of the history when the fault was never lifted.
    pub end: u64,
    /// The nodes affected: killed or paused ones, or, for a partition, those that dropped messages.
    pub nodes: Vec<String>,
    /// For a partition: each affected node → the sources it dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<BTreeMap<String, Vec<String>>>,
}

/// The fault intervals of a history, in order of their start. A partition lasts from its
/// `start-partition` completion (value `["isolated", {node: [sources]}]`) to the next
/// `stop-partition` completion; a node is killed (paused) from the `kill` (`pause`) completion
/// naming it to the first `start` (`resume`) completion naming it. Faults still on at the end of
/// the history end at `end_us`. As in Jepsen, a nemesis invocation is an `info` op too; it is told
/// from the completion by its value (a spec name such as `"majority"`, or `null`), which names no
/// node, so it is skipped like any value of another shape.
pub fn fault_intervals(history: &[Op], end_us: u64) -> Vec<FaultInterval> {
    let mut out = Vec::new();
    let mut partition: Option<FaultInterval> = None;
    let mut open: HashMap<(&'static str, String), u64> = HashMap::new();
    let completions = history
        .iter()
        .filter(|op| op.process == Process::Nemesis && op.kind != OpType::Invoke);
    for op in completions {
        let t = op.time / 1_000;
        // Nemesis values are never compact lists: this borrows.
        let value = op.value.to_json();
        match op.f.as_str() {
            "start-partition" if value.is_array() => {
                if let Some(mut p) = partition.take() {
                    p.end = t;
                    out.push(p);
                }
                let grudge = value
                    .as_array()
                    .and_then(|a| a.get(1))
                    .and_then(Value::as_object);
                let mut from = BTreeMap::new();
                for (node, srcs) in grudge.into_iter().flatten() {
                    let srcs: Vec<String> = srcs
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect();
                    if !srcs.is_empty() {
                        from.insert(node.clone(), srcs);
                    }
                }
                partition = Some(FaultInterval {
                    kind: "partition",
                    start: t,
                    end: end_us,
                    nodes: from.keys().cloned().collect(),
                    from: Some(from),
                });
            }
            "stop-partition" if !value.is_null() => {
                if let Some(mut p) = partition.take() {
                    p.end = t;
                    out.push(p);
                }
            }
            f @ ("kill" | "pause") => {
                let kind = if f == "kill" { "kill" } else { "pause" };
                for node in named_nodes(&value) {
                    open.entry((kind, node)).or_insert(t);
                }
            }
            f @ ("start" | "resume") => {
                let kind = if f == "start" { "kill" } else { "pause" };
                for node in named_nodes(&value) {
                    if let Some(start) = open.remove(&(kind, node.clone())) {
                        out.push(FaultInterval {
                            kind,
                            start,
                            end: t,
                            nodes: vec![node],
                            from: None,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out.extend(partition);
    out.extend(open.into_iter().map(|((kind, node), start)| FaultInterval {
        kind,
        start,
        end: end_us,
        nodes: vec![node],
        from: None,
    }));
    out.sort_by(|a, b| (a.start, &a.nodes, a.kind).cmp(&(b.start, &b.nodes, b.kind)));
    out
}

/// Nodes a kill/start/pause/resume completion names: `{node: word}` (ours) or `[word, [nodes]]`.
fn named_nodes(value: &Value) -> Vec<String> {
    match value {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(a) => a
            .get(1)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// For broadcast: a node's last `read_ok`, and the values acknowledged to a client (`broadcast_ok`
/// sent, by any node) before the node received that read, which the read did not return.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRead {
    pub node: String,
    /// When the node received the read request (µs).
    pub asked: u64,
    /// How many values the read returned.
    pub returned: usize,
    /// Acknowledged before `asked` and not returned, in acknowledgement order (at most
    /// [`MISSING_SHOWN`]); `missing_count` has them all.
    pub missing: Vec<Value>,
    pub missing_count: usize,
}

/// At most this many missing values per node are listed in the page.
pub const MISSING_SHOWN: usize = 50;

/// The last read of each node of a broadcast run, from the journal's bodies: requests are matched
/// to replies by (client, node, `msg_id` = `in_reply_to`). Nodes that served no read, and every node
/// when the journal has no bodies (`--no-journal-bodies`), are left out: the journal cannot tell.
pub fn broadcast_last_reads(journal: &[JournalEvent]) -> Vec<LastRead> {
    let body = |e: &JournalEvent| -> Option<Value> {
        e.body.as_deref().and_then(|b| serde_json::from_str(b).ok())
    };
    let msg_id = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64);
    // (client, node, msg_id) → broadcast value / read delivery time.
    let mut broadcasts: HashMap<(&str, &str, u64), Value> = HashMap::new();
    let mut read_ids: HashMap<u64, (&str, &str, u64)> = HashMap::new();
    let mut read_asked: HashMap<(&str, &str, u64), u64> = HashMap::new();
    let mut acked: Vec<(u64, Value)> = Vec::new();
    let mut last: BTreeMap<&str, (u64, Vec<Value>)> = BTreeMap::new();
    for e in journal {
        match (e.kind, e.body_type.as_str()) {
            (JournalKind::Send, "broadcast") => {
                if let Some(b) = body(e) {
                    if let (Some(id), Some(v)) = (msg_id(&b, "msg_id"), b.get("message")) {
                        broadcasts.insert((&e.src, &e.dest, id), v.clone());
                    }
                }
            }
            (JournalKind::Send, "read") => {
                if let Some(id) = body(e).and_then(|b| msg_id(&b, "msg_id")) {
                    read_ids.insert(e.id, (&e.src, &e.dest, id));
                }
            }
            (JournalKind::Recv, "read") => {
                if let Some(&key) = read_ids.get(&e.id) {
                    read_asked.insert(key, e.time / 1_000);
                }
            }
            (JournalKind::Send, "broadcast_ok") => {
                let v = body(e)
                    .and_then(|b| msg_id(&b, "in_reply_to"))
                    .and_then(|id| broadcasts.get(&(e.dest.as_str(), e.src.as_str(), id)));
                if let Some(v) = v {
                    acked.push((e.time / 1_000, v.clone()));
                }
            }
            (JournalKind::Send, "read_ok") => {
                let Some(b) = body(e) else { continue };
                let asked = msg_id(&b, "in_reply_to")
                    .and_then(|id| read_asked.get(&(e.dest.as_str(), e.src.as_str(), id)));
                let values = b.get("messages").and_then(Value::as_array);
                if let (Some(&asked), Some(values)) = (asked, values) {
                    last.insert(&e.src, (asked, values.clone()));
                }
            }
            _ => {}
        }
    }
    last.into_iter()
        .map(|(node, (asked, values))| {
            let have: std::collections::HashSet<String> =
                values.iter().map(Value::to_string).collect();
            let missing: Vec<Value> = acked
                .iter()
                .take_while(|(t, _)| *t < asked)
                .filter(|(_, v)| !have.contains(&v.to_string()))
                .map(|(_, v)| v.clone())
                .collect();
            LastRead {
                node: node.to_string(),
                asked,
                returned: values.len(),
                missing_count: missing.len(),
                missing: missing.into_iter().take(MISSING_SHOWN).collect(),
            }
        })
        .collect()
}

/// Messages as columns, in order of send time (then id).
#[derive(Debug, Default, Serialize)]
struct Messages {
    id: Vec<u64>,
    /// Source lane.
    a: Vec<u32>,
    /// Destination lane.
    b: Vec<u32>,
    /// Type index.
    t: Vec<u32>,
    /// Send time, µs.
    s: Vec<u64>,
    /// Delivery time, µs, or -1 when never delivered.
    r: Vec<i64>,
}

/// Completed (and pending) client ops as columns, in order of invocation.
#[derive(Debug, Default, Serialize)]
struct Ops {
    /// Process.
    p: Vec<u64>,
    /// Index into `fs`.
    f: Vec<u32>,
    fs: Vec<String>,
    /// 0 ok, 1 fail, 2 info, 3 never completed.
    o: Vec<u8>,
    t0: Vec<u64>,
    t1: Vec<u64>,
}

#[derive(Debug, Serialize)]
struct Meta<'a> {
    workload: &'a str,
    run: &'a str,
    command: Option<&'a str>,
    seed: Option<u64>,
    nodes: Vec<String>,
    verdict: &'static str,
    aborted: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Data<'a> {
    meta: Meta<'a>,
    results: &'a Value,
    lanes: Vec<String>,
    types: Vec<String>,
    m: Messages,
    bodies: Vec<Option<String>>,
    ops: Ops,
    faults: Vec<FaultInterval>,
    /// Broadcast runs only: each node's last read (see [`broadcast_last_reads`]).
    last_reads: Option<Vec<LastRead>>,
    /// What murmur nodes logged about their peers (see [`super::node_logs`]), by node, each node's in time order.
    node_events: &'a [NodeEvent],
    end_us: u64,
    body_limit: usize,
}

/// Natural order of ids: `c2` before `c10`.
fn natural_key(id: &str) -> (String, u64, String) {
    let digits = id.trim_start_matches(|c: char| !c.is_ascii_digit());
    let prefix = &id[..id.len() - digits.len()];
    match digits.parse::<u64>() {
        Ok(n) if !digits.is_empty() => (prefix.to_string(), n, String::new()),
        _ => (id.to_string(), 0, id.to_string()),
    }
}

/// `s` cut to at most `limit` characters, with the cut marked and the full length given.
fn cut(s: &str, limit: usize) -> String {
    match s.char_indices().nth(limit) {
        None => s.to_string(),
        Some((at, _)) => format!("{} … ({} bytes in all)", &s[..at], s.len()),
    }
}

/// The page for one run. Never fails: odd or missing data gives emptier sections.
pub fn render(
    results: &Value,
    history: &[Op],
    journal: &[JournalEvent],
    meta: &ReportMeta,
) -> String {
    render_with_events(results, history, journal, meta, &[])
}

/// [`render`], with the nodes' logged liveness events for the per-node table.
pub fn render_with_events(
    results: &Value,
    history: &[Op],
    journal: &[JournalEvent],
    meta: &ReportMeta,
    node_events: &[NodeEvent],
) -> String {
    let end_ns = history
        .iter()
        .map(|o| o.time)
        .chain(journal.iter().map(|e| e.time))
        .max()
        .unwrap_or(0);
    let end_us = end_ns / 1_000;

    // Lanes: nodes in the run's order, then services, then clients in natural order.
    let mut nodes = meta.nodes.clone();
    let mut others: Vec<&str> = Vec::new();
    {
        let known: std::collections::HashSet<&str> = nodes.iter().map(String::as_str).collect();
        let mut seen = std::collections::HashSet::new();
        for e in journal {
            for id in [e.src.as_str(), e.dest.as_str()] {
                if !known.contains(id) && seen.insert(id) {
                    others.push(id);
                }
            }
        }
    }
    let is_service = |id: &str| crate::cli::SERVICE_IDS.contains(&id);
    if nodes.is_empty() {
        nodes = others
            .iter()
            .filter(|id| !murmur::wire::is_client(id) && !is_service(id))
            .map(|s| s.to_string())
            .collect();
        nodes.sort_by_key(|s| natural_key(s));
        others.retain(|id| murmur::wire::is_client(id) || is_service(id));
    }
    others.sort_by_key(|id| {
        (
            !is_service(id),
            murmur::wire::is_client(id),
            natural_key(id),
        )
    });
    let mut lanes: Vec<String> = nodes.clone();
    lanes.extend(others.iter().map(|s| s.to_string()));
    let lane_of: HashMap<&str, u32> = lanes
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as u32))
        .collect();

    // Messages: one row per send; its delivery fills in `r`.
    let mut types: Vec<String> = Vec::new();
    let mut type_of: HashMap<&str, u32> = HashMap::new();
    let mut m = Messages::default();
    let mut bodies = Vec::new();
    let mut row_of: HashMap<u64, usize> = HashMap::with_capacity(journal.len() / 2 + 1);
    for e in journal.iter().filter(|e| e.kind == JournalKind::Send) {
        let t = *type_of.entry(e.body_type.as_str()).or_insert_with(|| {
            types.push(e.body_type.clone());
            types.len() as u32 - 1
        });
        row_of.insert(e.id, m.id.len());
        m.id.push(e.id);
        m.a.push(lane_of.get(e.src.as_str()).copied().unwrap_or(0));
        m.b.push(lane_of.get(e.dest.as_str()).copied().unwrap_or(0));
        m.t.push(t);
        m.s.push(e.time / 1_000);
        m.r.push(-1);
        bodies.push(e.body.as_deref().map(|b| cut(b, BODY_LIMIT)));
    }
    for e in journal.iter().filter(|e| e.kind == JournalKind::Recv) {
        if let Some(&row) = row_of.get(&e.id) {
            m.r[row] = i64::try_from(e.time / 1_000).unwrap_or(i64::MAX);
        }
    }
    // The journal is in time order already; sort anyway so the page can binary-search it.
    let mut order: Vec<usize> = (0..m.id.len()).collect();
    order.sort_by_key(|&i| (m.s[i], m.id[i]));
    if order.windows(2).any(|w| w[0] > w[1]) {
        let m0 = std::mem::take(&mut m);
        let b0 = std::mem::take(&mut bodies);
        let mut b0: Vec<Option<Option<String>>> = b0.into_iter().map(Some).collect();
        for &i in &order {
            m.id.push(m0.id[i]);
            m.a.push(m0.a[i]);
            m.b.push(m0.b[i]);
            m.t.push(m0.t[i]);
            m.s.push(m0.s[i]);
            m.r.push(m0.r[i]);
            bodies.push(b0[i].take().flatten());
        }
    }

    // Client ops: each invocation with its process's next completion.
    let mut ops = Ops::default();
    let mut f_of: HashMap<&str, u32> = HashMap::new();
    let mut pending: HashMap<u64, usize> = HashMap::new();
    for op in history {
        let Process::Client(p) = op.process else {
            continue;
        };
        match op.kind {
            OpType::Invoke => {
                let f = *f_of.entry(op.f.as_str()).or_insert_with(|| {
                    ops.fs.push(op.f.clone());
                    ops.fs.len() as u32 - 1
                });
                pending.insert(p, ops.p.len());
                ops.p.push(p);
                ops.f.push(f);
                ops.o.push(3);
                ops.t0.push(op.time / 1_000);
                ops.t1.push(op.time / 1_000);
            }
            kind => {
                if let Some(row) = pending.remove(&p) {
                    ops.o[row] = match kind {
                        OpType::Ok => 0,
                        OpType::Fail => 1,
                        _ => 2,
                    };
                    ops.t1[row] = op.time / 1_000;
                }
            }
        }
    }

    let verdict = if meta.aborted.is_some() {
        "the test aborted"
    } else {
        super::verdict(results)
    };
    let data = Data {
        meta: Meta {
            workload: &meta.workload,
            run: &meta.run,
            command: meta.command.as_deref(),
            seed: meta.seed,
            nodes,
            verdict,
            aborted: meta.aborted.as_deref(),
        },
        results,
        lanes,
        types,
        m,
        bodies,
        ops,
        faults: fault_intervals(history, end_us),
        last_reads: (meta.workload == "broadcast").then(|| broadcast_last_reads(journal)),
        node_events,
        end_us,
        body_limit: BODY_LIMIT,
    };
    // Serialising plain vectors and strings cannot fail; an empty object keeps the page working.
    let json = serde_json::to_string(&data).unwrap_or_else(|_| "{}".to_string());
    // `<` only occurs inside JSON strings, where `\u003c` means the same: no `</script>` or
    // `<!--` can end the data block early.
    let json = json.replace('<', "\\u003c");
    let title = html_escape(&format!(
        "{} {} — murmur run report",
        meta.workload, meta.run
    ));
    let (head, tail) = TEMPLATE.split_once("__DATA__").unwrap_or((TEMPLATE, ""));
    let mut page = String::with_capacity(TEMPLATE.len() + json.len());
    page.push_str(&head.replacen("__TITLE__", &title, 1));
    page.push_str(&json);
    page.push_str(tail);
    page
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the page, with the liveness events in `<dir>/node-logs`, and writes it to
/// `<dir>/report.html`.
pub fn write(
    dir: &Path,
    results: &Value,
    history: &[Op],
    journal: &[JournalEvent],
    meta: &ReportMeta,
) -> Result<PathBuf, ResultsError> {
    let path = dir.join("report.html");
    let events = super::node_logs::liveness_events(&dir.join("node-logs"), journal);
    let page = render_with_events(results, history, journal, meta, &events);
    std::fs::write(&path, page).map_err(|source| ResultsError {
        action: "writing",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// `maelstrom analyze <run-folder>`: writes `report.html` again from the folder's
/// `results.json`, `history.jsonl` and `messages.jsonl` (the checkers are not re-run: the page
/// shows the stored results). A missing `results.json` (an aborted run) gives a page without
/// results; unreadable lines are skipped with a warning rather than failing the page.
pub fn rewrite(dir: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    let read = |name: &str| -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", dir.join(name).display())),
        }
    };
    let history_text = read("history.jsonl")?.with_context(|| {
        format!(
            "{} is not a run folder: it has no history.jsonl",
            dir.display()
        )
    })?;
    let mut bad = 0usize;
    let history: Vec<Op> = history_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).map_err(|_| bad += 1).ok())
        .collect();
    let journal: Vec<JournalEvent> = read("messages.jsonl")?
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| super::parse_journal_line(l).map_err(|_| bad += 1).ok())
        .collect();
    if bad > 0 {
        tracing::warn!("skipped {bad} unreadable lines of history.jsonl or messages.jsonl");
    }
    let results: Option<Value> = match read("results.json")? {
        Some(text) => Some(serde_json::from_str(&text).context("parsing results.json")?),
        None => None,
    };
    let runner = results.as_ref().and_then(|r| r.get("runner"));
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name_of = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let meta = ReportMeta {
        workload: runner
            .and_then(|r| r.get("workload"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| name_of(canonical.parent())),
        run: name_of(Some(&canonical)),
        command: runner
            .and_then(|r| r.get("command"))
            .and_then(Value::as_str)
            .map(str::to_string),
        seed: runner.and_then(|r| r.get("seed")).and_then(Value::as_u64),
        nodes: Vec::new(),
        aborted: results
            .is_none()
            .then(|| "the run has no results.json (it aborted)".to_string()),
    };
    let results = results.unwrap_or_else(|| Value::Object(Default::default()));
    write(dir, &results, &history, &journal, &meta).map_err(Into::into)
}
