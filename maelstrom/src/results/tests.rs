//! Tests of the run folder, the JSON writers, the summary and the progress bar.

use super::report::WIDTH;
use super::run_dir::format_in;
use super::*;
use crate::history::{ChunkPool, IntList, JournalEvent, JournalKind, Op, OpType, OpValue, Process};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

#[test]
fn timestamps() {
    let utc = jiff::tz::TimeZone::UTC;
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
    assert_eq!(format_in(at(0), &utc), "19700101T000000.000");
    assert_eq!(format_in(start(), &utc), "20231114T221320.123");
    assert_eq!(format_in(at(951_782_400_000), &utc), "20000229T000000.000");
    // Truncated to the millisecond; before 1970 is 1970.
    let late = at(1_700_000_000_123) + Duration::from_nanos(999_999);
    assert_eq!(format_in(late, &utc), "20231114T221320.123");
    assert_eq!(
        format_in(UNIX_EPOCH - Duration::from_secs(5), &utc),
        "19700101T000000.000"
    );
    let east = jiff::tz::TimeZone::fixed(jiff::tz::offset(5));
    assert_eq!(format_in(start(), &east), "20231115T031320.123");
    let s = format_timestamp(start());
    assert_eq!(s.len(), "20231114T221320.123".len(), "{s}");
    assert_eq!(&s[8..9], "T");
    assert!(s.ends_with(".123"));
    assert!(s.chars().filter(|c| c.is_ascii_digit()).count() == 17);
}

#[test]
fn results_json_reads_back_bit_for_bit() {
    // serde_json's default float parser may miss the last bit (0.013364000000000044 reads
    // back as ...043), so the crate enables `float_roundtrip`; the first float is that case.
    let tmp = tempfile::tempdir().unwrap();
    let dir = RunDir::create(&tmp.path().join("results"), "echo", start()).unwrap();
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut floats = vec![0.013364000000000044, 2.1818182468414307, 1e-300, f64::MAX];
    floats.extend((0..2000).map(|_| f64::from_bits(rng.random_range(0..0x7fef_ffff_ffff_ffff))));
    let results = json!({ "floats": floats });
    let path = dir.write_results(&results).unwrap();
    let back: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(back, results);
}

#[test]
fn run_dir_layout_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("results");
    let a = RunDir::create(&root, "broadcast", start()).unwrap();
    assert!(a.path().starts_with(root.join("broadcast")));
    assert!(a.node_logs_dir().is_dir());
    assert_eq!(a.node_log_path("n1"), a.path().join("node-logs/n1.log"));
    assert_eq!(
        fs::read_link(root.join("current")).unwrap(),
        Path::new("broadcast").join(a.name())
    );
    assert!(
        !root.join("latest").exists(),
        "latest is set when the run ends"
    );

    a.update_latest_links().unwrap();
    assert_eq!(
        fs::read_link(root.join("latest")).unwrap(),
        Path::new("broadcast").join(a.name())
    );
    assert_eq!(
        fs::read_link(root.join("broadcast/latest")).unwrap(),
        Path::new(a.name())
    );
    assert_eq!(
        fs::canonicalize(root.join("latest")).unwrap(),
        fs::canonicalize(a.path()).unwrap()
    );

    // Same millisecond: a distinct folder; the links move over atomically.
    let b = RunDir::create(&root, "broadcast", start()).unwrap();
    assert_eq!(b.name(), format!("{}-1", a.name()));
    b.update_latest_links().unwrap();
    assert_eq!(
        fs::canonicalize(root.join("latest")).unwrap(),
        fs::canonicalize(b.path()).unwrap()
    );
    assert_eq!(
        fs::canonicalize(root.join("broadcast/latest")).unwrap(),
        fs::canonicalize(b.path()).unwrap()
    );

    // Another workload moves the top-level link only.
    let c = RunDir::create(&root, "echo", start()).unwrap();
    c.update_latest_links().unwrap();
    assert_eq!(
        fs::canonicalize(root.join("latest")).unwrap(),
        fs::canonicalize(c.path()).unwrap()
    );
    assert_eq!(
        fs::canonicalize(root.join("broadcast/latest")).unwrap(),
        fs::canonicalize(b.path()).unwrap()
    );
    // No temporary links are left behind.
    let leftovers: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());

    // A real directory in the way is reported, not clobbered.
    fs::remove_file(root.join("echo/latest")).unwrap();
    fs::create_dir(root.join("echo/latest")).unwrap();
    assert!(c.update_latest_links().is_err());
    assert!(RunDir::create(&root, "../x", start()).is_err());
}

#[test]
fn writers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(tmp.path(), "echo", start()).unwrap();
    let results = json!({"valid?": true, "stats": {"count": 1}});
    let path = run.write_results(&results).unwrap();
    let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back, results);

    let ops = vec![
        Op::new(
            0,
            5,
            OpType::Invoke,
            Process::Client(0),
            "echo",
            json!("Please echo 1"),
        ),
        Op {
            index: 1,
            time: 9,
            kind: OpType::Info,
            process: Process::Nemesis,
            f: "kill".into(),
            value: json!(["n1"]).into(),
            error: Some(json!("net-timeout")),
            exception: None,
            final_: false,
        },
    ];
    let path = run.write_history(&ops).unwrap();
    let text = fs::read_to_string(path).unwrap();
    let back: Vec<Op> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, ops);
    let txt = fs::read_to_string(run.file("history.txt")).unwrap();
    // Jepsen's `prn-op`: process, :type, :f, the value as EDN (nemesis strings as keywords),
    // then the error printed bare.
    assert_eq!(
        txt,
        "0\t:invoke\t:echo\t\"Please echo 1\"\n:nemesis\t:info\t:kill\t[:n1]\t:net-timeout\n"
    );

    // A read held as an IntList is written exactly as the same read held as JSON.
    let read: Vec<u64> = (0..600)
        .map(|i| i * 7 % 1000)
        .chain([u64::MAX, 0])
        .collect();
    let mut as_json = ops.clone();
    as_json.push(Op {
        index: 2,
        time: 12,
        kind: OpType::Ok,
        process: Process::Client(3),
        f: "read".into(),
        value: json!(read).into(),
        error: None,
        exception: None,
        final_: true,
    });
    let mut compact = as_json.clone();
    let list = IntList::new(read.iter().copied(), &mut ChunkPool::new());
    compact[2].value = OpValue::Ints(list);
    let written = |ops: &[Op], name: &str| {
        let run = RunDir::create(&tmp.path().join(name), "broadcast", start()).unwrap();
        run.write_history(ops).unwrap();
        ["history.jsonl", "history.txt"].map(|f| fs::read(run.file(f)).unwrap())
    };
    assert_eq!(written(&compact, "compact"), written(&as_json, "json"));

    let events: Vec<JournalEvent> = (0..10_000)
        .map(|i| JournalEvent {
            kind: if i % 2 == 0 {
                JournalKind::Send
            } else {
                JournalKind::Recv
            },
            time: i,
            id: i / 2,
            src: "n1".into(),
            dest: "n2".into(),
            body_type: "gossip".into(),
            // Sends carry their body (with a `</script>` to check nothing escapes it wrongly).
            body: (i % 2 == 0)
                .then(|| format!(r#"{{"type":"gossip","v":[{i}],"s":"</script>"}}"#).into()),
        })
        .collect();
    let path = run.write_journal(&events).unwrap();
    let text = fs::read_to_string(path).unwrap();
    assert_eq!(text.lines().count(), 10_000);
    let back: Vec<JournalEvent> = text
        .lines()
        .map(|l| crate::results::parse_journal_line(l).unwrap())
        .collect();
    assert_eq!(back, events);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["body"]["v"],
        json!([0]),
        "the body is a JSON object, not a string"
    );
    assert!(text
        .lines()
        .nth(1)
        .is_some_and(|l| !l.contains("\"body\":")));

    run.write_json("opts.json", &json!({"seed": 1})).unwrap();
    assert!(run.file("opts.json").is_file());
    assert!(run.write_json("../escape.json", &json!(1)).is_err());
    assert!(run.write_json("a/b.json", &json!(1)).is_err());

    let data = run.create_data_dir().unwrap();
    fs::write(data.join("n1.state"), "x").unwrap();
    run.remove_data_dir().unwrap();
    assert!(!data.exists());
    run.remove_data_dir().unwrap();
}

fn sample() -> Value {
    json!({
        "valid?": false,
        "perf": {"valid?": true},
        "stats": {"valid?": true, "count": 1998, "ok-count": 1990, "fail-count": 3, "info-count": 5,
                  "by-f": {"broadcast": {"valid?": true, "count": 1000, "ok-count": 998, "fail-count": 0, "info-count": 2},
                           "read": {"valid?": true, "count": 998, "ok-count": 992, "fail-count": 3, "info-count": 3}}},
        "availability": {"valid?": true, "ok-fraction": 0.995},
        "net": {
            "all": {"send-count": 129592, "recv-count": 129590, "msg-count": 129592, "msgs-per-op": 65.121605},
            "clients": {"send-count": 4080, "recv-count": 4080, "msg-count": 4080},
            "servers": {"send-count": 125512, "recv-count": 125510, "msg-count": 125512, "msgs-per-op": 63.071358},
            "by-type": [{"type": "gossip", "send-count": 120000, "recv-count": 119998},
                        {"type": "", "send-count": 12, "recv-count": 12}],
            "by-node": (0..25).map(|i| json!({"node": format!("n{i}"), "sent": 5000 + i, "received": 4990 + i}))
                              .collect::<Vec<_>>(),
            "valid?": true
        },
        "workload": {"valid?": false, "attempt-count": 1000, "stable-count": 998, "lost-count": 2,
                     "lost": [17, 42], "never-read-count": 0, "never-read": [], "stale-count": 12,
                     "stable-latencies": {"0": 0, "0.5": 350, "0.95": 480, "0.99": 510, "1": 560},
                     "duplicated-count": 0, "duplicated": {}},
        "exceptions": {"valid?": true},
        "runner": {"delivery-lag-us": {"count": 259000, "p50": 12, "p99": 340, "max": 9100},
                   "overloaded": true, "dropped-writes": 3}
    })
}

#[test]
fn summary_of_a_broadcast_run() {
    let s = summary(
        &sample(),
        &SummaryInfo {
            seed: Some(42),
            run_dir: Some(Path::new("results/broadcast/x")),
        },
    );
    println!("{s}");
    for needle in [
        "1990 ok, 3 fail, 5 info (1998 completed)",
        "broadcast  998 ok",
        "99.50% of client ops ok",
        "msgs-per-op 63.07",
        "msgs-per-op 65.12",
        "gossip",
        "(none)",
        "n0 5000/4990",
        "n24 5024/5014",
        "attempted 1000, stable 998, lost 2, never-read 0, stale 12, duplicated 0",
        "stable latency (ms): min 0, p50 350, p95 480, p99 510, max 560",
        "lost: 17, 42",
        "delivery lag (µs) p50 12, p99 340, max 9100",
        "OVERLOADED",
        "dropped-writes 3",
        "seed          42",
        "results/broadcast/x",
        "not valid: workload (false)",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in\n{s}");
    }
    assert!(s.trim_end().ends_with(VERDICT_INVALID));
    assert!(!s.contains("clients ("), "by-node had no clients");
    assert!(s.lines().all(|l| l.chars().count() <= WIDTH), "{s}");
}

#[test]
fn summary_verdicts_and_other_workloads() {
    let s = summary(&json!({"valid?": true}), &SummaryInfo::default());
    assert_eq!(s.trim(), VERDICT_VALID);
    let s = summary(
        &json!({"valid?": "unknown", "workload": {"valid?": "unknown", "error": "boom"}}),
        &SummaryInfo::default(),
    );
    assert!(s.contains("checker error: boom") && s.contains("workload (unknown)"));
    assert!(s.trim_end().ends_with(VERDICT_UNKNOWN));
    let s = summary(
        &json!({"valid?": false, "workload": {"valid?": false, "attempted-count": 10, "acknowledged-count": 10,
                                             "duplicated-count": 1, "duplicated": [[7, 2]]}}),
        &SummaryInfo::default(),
    );
    assert!(
        s.contains("attempted 10, acknowledged 10, duplicated 1"),
        "{s}"
    );
    assert!(s.contains("duplicated: [7,2]"), "{s}");
    let s = summary(
        &json!({"valid?": false, "workload": {"valid?": false, "errors": [{"expected": "a", "got": "b"}], "error-count": 1},
                 "exceptions": {"valid?": true, "exceptions": [{"count": 3, "class": "malformed-rpc-response"}]}}),
        &SummaryInfo::default(),
    );
    assert!(
        s.contains("errors 1") && s.contains("\"expected\":\"a\""),
        "{s}"
    );
    assert!(s.contains("3× malformed-rpc-response"), "{s}");
}

#[test]
fn summary_of_a_lin_kv_failure() {
    use crate::checker::linearizable::{check, Budget};
    use crate::history::{Op, OpType, Process};
    let op = |index: usize, kind, process, f: &str, value| {
        Op::new(
            index,
            index as u64,
            kind,
            Process::Client(process),
            f,
            crate::history::OpValue::Json(value),
        )
    };
    let history = [
        op(0, OpType::Invoke, 0, "write", json!([4, 1])),
        op(1, OpType::Ok, 0, "write", json!([4, 1])),
        op(2, OpType::Invoke, 1, "read", json!([4, null])),
        op(3, OpType::Ok, 1, "read", json!([4, 3])),
    ];
    let w = serde_json::to_value(check(&history, Budget::UNLIMITED)).unwrap();
    let s = summary(
        &json!({"valid?": false, "workload": w}),
        &SummaryInfo::default(),
    );
    assert!(s.contains("keys 1, not linearizable 1, undecided 0"), "{s}");
    assert!(
        s.contains("key 4: cannot place p1 ok read [4,3] after p0 ok write [4,1] (register 1)"),
        "{s}"
    );
    assert!(s.contains("pending: p1 ok read [4,3]"), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= WIDTH), "{s}");
}

#[test]
fn summary_never_panics_on_odd_input() {
    for v in [
        json!(null),
        json!([]),
        json!("x"),
        json!({"stats": 1, "net": {"all": [], "by-type": {"a": 1}, "by-node": "x"}, "workload": {"stable-latencies": {"x": 1}}}),
        json!({"net": {"by-type": {"gossip": {"sent": 3}}, "by-node": {"n1": {"sent": 1, "received": 2}, "c1": {"sent": 5, "received": 6}, "c2": {"sent": 1, "received": 1}}}}),
        json!({"runner": {"delivery-lag-us": {"0.5": 1.5}}, "availability": {"ok-fraction": "x"}}),
    ] {
        let s = summary(&v, &SummaryInfo::default());
        assert!(s.contains(VERDICT_UNKNOWN));
    }
    let s = summary(
        &json!({"net": {"by-node": {"n1": {"sent": 1, "received": 2}, "c1": {"sent": 5, "received": 6}, "c2": {"sent": 1, "received": 1}}}}),
        &SummaryInfo::default(),
    );
    assert!(s.contains("n1 1/2") && s.contains("clients(2) 6/7"), "{s}");
}

#[test]
fn progress_is_hidden_off_a_terminal_and_counts() {
    let counters = Arc::new(ProgressCounters::default());
    counters.record(OpType::Ok);
    counters.record(OpType::Ok);
    counters.record(OpType::Info);
    counters.record(OpType::Invoke);
    counters.add_msgs(10);
    assert_eq!(
        counters.message(Duration::from_secs(3), Duration::from_secs(60), ""),
        "3s/60s  ok 2  fail 0  info 1  msgs 10"
    );
    assert!(counters
        .message(Duration::ZERO, Duration::ZERO, "final reads")
        .ends_with("  final reads"));
    let p = Progress::start(Duration::from_secs(1), false, Arc::clone(&counters));
    assert!(p.is_hidden());
    p.set_phase("x");
    p.finish();
    // Under `cargo test` stderr is captured or a pipe; either way this must not hang.
    let p = Progress::start(Duration::from_millis(50), true, counters);
    p.set_phase("final");
    thread::sleep(Duration::from_millis(20));
    drop(p);
}

fn op(index: usize, ms: u64, kind: OpType, process: Process, f: &str, value: Value) -> Op {
    Op::new(index, ms * 1_000_000, kind, process, f, value)
}

#[test]
fn jepsen_history_lines() {
    let mut line = String::new();
    let mut read = op(
        0,
        1,
        OpType::Ok,
        Process::Client(12),
        "read",
        json!([1, 2, 3]),
    );
    jepsen_line(&read, &mut line);
    assert_eq!(line, "12\t:ok\t:read\t[1 2 3]\n");
    line.clear();
    read.kind = OpType::Fail;
    read.value = Value::Null.into();
    read.error = Some(json!(["timeout", "no reply in 5000 ms"]));
    jepsen_line(&read, &mut line);
    assert_eq!(
        line,
        "12\t:fail\t:read\tnil\t[:timeout no reply in 5000 ms]\n"
    );
    line.clear();
    let part = op(
        1,
        2,
        OpType::Info,
        Process::Nemesis,
        "start-partition",
        json!(["isolated", {"n1": ["n2", "n3"]}]),
    );
    jepsen_line(&part, &mut line);
    assert_eq!(
        line,
        ":nemesis\t:info\t:start-partition\t[:isolated {\"n1\" [:n2 :n3]}]\n"
    );
}

/// A nemesis completion at `ms`.
fn nem(index: usize, ms: u64, f: &str, value: Value) -> Op {
    op(index, ms, OpType::Info, Process::Nemesis, f, value)
}

#[test]
fn fault_intervals_from_nemesis_ops() {
    use crate::results::html::fault_intervals;
    let history = vec![
        // Invocations (`info` ops too, as Jepsen's nemesis records them) are told by their
        // values and ignored: intervals run between completions.
        nem(0, 100, "start-partition", json!("majority")),
        nem(
            1,
            110,
            "start-partition",
            json!(["isolated", {"n1": ["n2"], "n2": ["n1"], "n3": []}]),
        ),
        nem(2, 290, "kill", json!("one")),
        nem(2, 300, "kill", json!({"n3": "killed"})),
        nem(3, 390, "stop-partition", Value::Null),
        nem(3, 400, "stop-partition", json!("network-healed")),
        nem(3, 450, "start", json!("all")),
        nem(4, 500, "pause", json!({"n1": "paused", "n2": "paused"})),
        nem(5, 600, "start", json!(["started", ["n3"]])),
        nem(6, 700, "resume", json!({"n1": "resumed"})),
        nem(
            7,
            800,
            "start-partition",
            json!(["isolated", {"n2": ["n3"]}]),
        ),
    ];
    let f = fault_intervals(&history, 1_000_000);
    let got: Vec<(&str, u64, u64, Vec<String>)> = f
        .iter()
        .map(|x| (x.kind, x.start / 1000, x.end / 1000, x.nodes.clone()))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            ("partition", 110, 400, s(&["n1", "n2"])),
            ("kill", 300, 600, s(&["n3"])),
            ("pause", 500, 700, s(&["n1"])),
            // Still paused and partitioned when the history ends.
            ("pause", 500, 1000, s(&["n2"])),
            ("partition", 800, 1000, s(&["n2"])),
        ]
    );
    assert_eq!(f[0].from.as_ref().unwrap()["n1"], s(&["n2"]));
}

/// The JSON object spliced into a rendered page.
fn page_data(page: &str) -> Value {
    let start = page.find(r#"type="application/json">"#).unwrap() + 24;
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

#[test]
fn report_page_carries_the_run() {
    use crate::results::html::{render, ReportMeta, BODY_LIMIT};
    let history = vec![
        op(
            0,
            10,
            OpType::Invoke,
            Process::Client(0),
            "broadcast",
            json!(1),
        ),
        op(1, 12, OpType::Ok, Process::Client(0), "broadcast", json!(1)),
        op(
            2,
            20,
            OpType::Invoke,
            Process::Client(1),
            "read",
            Value::Null,
        ),
        op(3, 25, OpType::Info, Process::Client(1), "read", Value::Null),
        op(
            4,
            30,
            OpType::Invoke,
            Process::Client(2),
            "read",
            Value::Null,
        ),
    ];
    let long = format!(
        r#"{{"type":"read_ok","messages":[{}]}}"#,
        "1,".repeat(BODY_LIMIT) + "1"
    );
    let ev =
        |kind, ms: u64, id, src: &str, dest: &str, ty: &str, body: Option<&str>| JournalEvent {
            kind,
            time: ms * 1_000_000,
            id,
            src: src.into(),
            dest: dest.into(),
            body_type: ty.into(),
            body: body.map(Arc::from),
        };
    let journal = vec![
        ev(
            JournalKind::Send,
            10,
            0,
            "c0",
            "n1",
            "broadcast",
            Some(r#"{"type":"broadcast","message":"</script><b>"}"#),
        ),
        ev(JournalKind::Recv, 10, 0, "c0", "n1", "broadcast", None),
        ev(
            JournalKind::Send,
            11,
            1,
            "n1",
            "n0",
            "gossip",
            Some(r#"{"type":"gossip"}"#),
        ),
        ev(JournalKind::Send, 11, 2, "n1", "lin-kv", "read", None),
        ev(JournalKind::Recv, 111, 1, "n1", "n0", "gossip", None),
        ev(
            JournalKind::Send,
            21,
            3,
            "n0",
            "c10",
            "read_ok",
            Some(&long),
        ),
    ];
    let meta = ReportMeta {
        workload: "broadcast".into(),
        run: "20260101T000000.000".into(),
        command: Some("maelstrom test -w broadcast --seed 3 <x>".into()),
        seed: Some(3),
        nodes: vec!["n0".into(), "n1".into()],
        aborted: None,
    };
    let results = json!({"valid?": false, "workload": {"lost": [1], "lost-count": 1}});
    let page = render(&results, &history, &journal, &meta);
    // Nothing in the data can close the script block early.
    assert_eq!(
        page.matches("</script>").count(),
        2,
        "data and code blocks only"
    );
    assert!(page.contains("<title>broadcast 20260101T000000.000 — murmur run report</title>"));
    let d = page_data(&page);
    assert_eq!(
        d["meta"]["command"],
        "maelstrom test -w broadcast --seed 3 <x>"
    );
    assert_eq!(d["meta"]["verdict"], super::VERDICT_INVALID);
    assert_eq!(d["results"]["workload"]["lost"], json!([1]));
    // Nodes in the run's order, then services, then clients in natural order.
    assert_eq!(d["lanes"], json!(["n0", "n1", "lin-kv", "c0", "c10"]));
    assert_eq!(
        d["types"],
        json!(["broadcast", "gossip", "read", "read_ok"])
    );
    assert_eq!(d["m"]["id"], json!([0, 1, 2, 3]));
    assert_eq!(d["m"]["a"], json!([3, 1, 1, 0]));
    assert_eq!(d["m"]["b"], json!([1, 0, 2, 4]));
    assert_eq!(d["m"]["s"], json!([10_000, 11_000, 11_000, 21_000]));
    assert_eq!(d["m"]["r"], json!([10_000, 111_000, -1, -1]));
    assert_eq!(
        d["bodies"][0],
        r#"{"type":"broadcast","message":"</script><b>"}"#
    );
    assert_eq!(d["bodies"][2], Value::Null);
    let cut = d["bodies"][3].as_str().unwrap();
    assert!(
        cut.chars().count() < BODY_LIMIT + 40 && cut.contains(" … ("),
        "{cut}"
    );
    // Ops: one row per invocation, with its outcome (3: never completed).
    assert_eq!(d["ops"]["fs"], json!(["broadcast", "read"]));
    assert_eq!(d["ops"]["o"], json!([0, 2, 3]));
    assert_eq!(d["ops"]["t0"], json!([10_000, 20_000, 30_000]));
    assert_eq!(d["ops"]["t1"], json!([12_000, 25_000, 30_000]));
    assert_eq!(d["end_us"], 111_000);
}

#[test]
fn analyze_rewrites_the_page_from_a_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(tmp.path(), "echo", start()).unwrap();
    assert!(
        crate::results::html::rewrite(run.path()).is_err(),
        "no history yet"
    );
    run.write_history(&[op(
        0,
        1,
        OpType::Invoke,
        Process::Client(0),
        "echo",
        json!("x"),
    )])
    .unwrap();
    let journal = vec![JournalEvent {
        kind: JournalKind::Send,
        time: 5,
        id: 0,
        src: "c0".into(),
        dest: "n1".into(),
        body_type: "echo".into(),
        body: Some(Arc::from(r#"{"type":"echo","echo":"x"}"#)),
    }];
    run.write_journal(&journal).unwrap();
    run.write_results(&json!({"valid?": true, "runner": {"seed": 9, "command": "maelstrom test", "workload": "echo"}}))
        .unwrap();
    let path = crate::results::html::rewrite(run.path()).unwrap();
    let d = page_data(&fs::read_to_string(path).unwrap());
    assert_eq!(d["meta"]["seed"], 9);
    assert_eq!(d["meta"]["command"], "maelstrom test");
    assert_eq!(d["meta"]["workload"], "echo");
    assert_eq!(
        d["meta"]["nodes"],
        json!(["n1"]),
        "nodes come from the journal"
    );
    assert_eq!(d["bodies"][0], r#"{"type":"echo","echo":"x"}"#);
}

#[test]
fn broadcast_last_reads_name_missing_acknowledged_values() {
    use crate::results::html::broadcast_last_reads;
    let mut id = 0;
    let mut j = Vec::new();
    let mut msg = |ms: u64, src: &str, dest: &str, body: Value, delivered: bool| {
        let ev = |kind| JournalEvent {
            kind,
            time: ms * 1_000_000,
            id,
            src: src.into(),
            dest: dest.into(),
            body_type: body["type"].as_str().unwrap().into(),
            body: (kind == JournalKind::Send).then(|| Arc::from(body.to_string().as_str())),
        };
        j.push(ev(JournalKind::Send));
        if delivered {
            j.push(ev(JournalKind::Recv));
        }
        id += 1;
    };
    msg(
        1,
        "c0",
        "n0",
        json!({"type": "broadcast", "msg_id": 1, "message": 5}),
        true,
    );
    msg(
        2,
        "n0",
        "c0",
        json!({"type": "broadcast_ok", "in_reply_to": 1}),
        true,
    );
    msg(
        3,
        "c1",
        "n1",
        json!({"type": "broadcast", "msg_id": 1, "message": 6}),
        true,
    );
    msg(
        3,
        "n1",
        "c1",
        json!({"type": "broadcast_ok", "in_reply_to": 1}),
        true,
    );
    // n1's reads: an early one, then its last, which lacks 5 (acknowledged at 2 ms).
    msg(4, "c2", "n1", json!({"type": "read", "msg_id": 1}), true);
    msg(
        4,
        "n1",
        "c2",
        json!({"type": "read_ok", "in_reply_to": 1, "messages": []}),
        true,
    );
    msg(5, "c2", "n1", json!({"type": "read", "msg_id": 2}), true);
    msg(
        5,
        "n1",
        "c2",
        json!({"type": "read_ok", "in_reply_to": 2, "messages": [6]}),
        true,
    );
    // n0 has both; a value acknowledged after its read was asked does not count.
    msg(6, "c3", "n0", json!({"type": "read", "msg_id": 7}), true);
    msg(
        7,
        "c4",
        "n1",
        json!({"type": "broadcast", "msg_id": 3, "message": 9}),
        true,
    );
    msg(
        7,
        "n1",
        "c4",
        json!({"type": "broadcast_ok", "in_reply_to": 3}),
        true,
    );
    msg(
        8,
        "n0",
        "c3",
        json!({"type": "read_ok", "in_reply_to": 7, "messages": [6, 5]}),
        true,
    );
    let reads = broadcast_last_reads(&j);
    let got: Vec<(&str, u64, usize, &[Value])> = reads
        .iter()
        .map(|r| (r.node.as_str(), r.asked, r.returned, r.missing.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![("n0", 6_000, 2, &[][..]), ("n1", 5_000, 1, &[json!(5)][..])]
    );
    // Without bodies the journal cannot tell: no rows rather than a guess.
    let bare: Vec<JournalEvent> = j
        .into_iter()
        .map(|mut e| {
            e.body = None;
            e
        })
        .collect();
    assert!(broadcast_last_reads(&bare).is_empty());
}
