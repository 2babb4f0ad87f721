//! End-to-end: spawn each node binary and exchange JSON lines with it over real pipes.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// Feeds `lines` to `bin` (then closes stdin) and returns every stdout line parsed, plus stderr
/// and the exit status. Panics if stdout carries anything but JSON envelopes.
fn exchange(
    bin: &str,
    args: &[&str],
    lines: &[String],
) -> (Vec<Value>, String, std::process::ExitStatus) {
    // A fresh data directory, so persisting nodes neither litter <tmp>/murmur nor see old data.
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "debug")
        .env("MURMUR_DATA_DIR", data.path())
        // As under CI, which sets the test suite's own `MURMUR_TEST_*` budgets: not node knobs.
        .env("MURMUR_TEST_FUZZ_CASES", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        stdin.write_all(l.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout: Vec<Value> = BufReader::new(&out.stdout[..])
        .lines()
        .map(|l| {
            let l = l.unwrap();
            let v: Value = serde_json::from_str(&l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"));
            let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
            assert!(
                keys.iter()
                    .all(|k| ["src", "dest", "body"].contains(&k.as_str())),
                "extra envelope keys: {l}"
            );
            v
        })
        .collect();
    (
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status,
    )
}

fn init(node: &str, nodes: &[&str]) -> String {
    json!({"id":0,"src":"c0","dest":node,"body":{"type":"init","node_id":node,"node_ids":nodes,"msg_id":1}}).to_string()
}

fn line(src: &str, dest: &str, body: Value) -> String {
    json!({"id":7,"src":src,"dest":dest,"body":body}).to_string()
}

fn bodies_to(out: &[Value], dest: &str) -> Vec<Value> {
    out.iter()
        .filter(|m| m["dest"] == dest)
        .map(|m| m["body"].clone())
        .collect()
}

#[test]
fn echo_end_to_end() {
    let (out, _, status) = exchange(
        env!("CARGO_BIN_EXE_echo"),
        &[],
        &[
            init("n0", &["n0"]),
            line(
                "c1",
                "n0",
                json!({"type":"echo","echo":"Please echo 7","msg_id":1}),
            ),
        ],
    );
    assert!(status.success());
    assert_eq!(
        bodies_to(&out, "c0"),
        vec![json!({"type":"init_ok","in_reply_to":1})]
    );
    assert_eq!(
        bodies_to(&out, "c1"),
        vec![json!({"type":"echo_ok","echo":"Please echo 7","in_reply_to":1})]
    );
}

#[test]
fn unique_ids_end_to_end() {
    let mut lines = vec![init("n1", &["n0", "n1", "n2"])];
    lines.extend((1..=200).map(|k| line("c4", "n1", json!({"type":"generate","msg_id":k}))));
    let (out, _, status) = exchange(env!("CARGO_BIN_EXE_unique-ids"), &[], &lines);
    assert!(status.success());
    let ids: std::collections::HashSet<u64> = bodies_to(&out, "c4")
        .iter()
        .map(|b| b["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 200);
}

#[test]
fn broadcast_end_to_end_with_bad_input() {
    let lines = vec![
        line("c1", "n0", json!({"type":"read","msg_id":1})), // before init: error 11
        "this is not json".to_string(),
        String::new(),
        init("n0", &["n0"]),
        line(
            "c2",
            "n0",
            json!({"type":"topology","topology":{"n0":[]},"msg_id":1}),
        ),
        "{\"src\":\"c2\"".to_string(),
        line(
            "c2",
            "n0",
            json!({"type":"broadcast","message":1,"msg_id":2}),
        ),
        line("c2", "n0", json!({"type":"frobnicate","msg_id":3})),
        line(
            "c2",
            "n0",
            json!({"type":"broadcast","message":2,"msg_id":4}),
        ),
        line("c2", "n0", json!({"type":"broadcast","msg_id":5})), // missing field: error 12
        line("c2", "n0", json!({"type":"read","msg_id":6})),
    ];
    let (out, stderr, status) = exchange(env!("CARGO_BIN_EXE_broadcast"), &[], &lines);
    assert!(status.success(), "exit 0 on EOF; stderr:\n{stderr}");
    let c1 = bodies_to(&out, "c1");
    assert_eq!(c1.len(), 1);
    assert_eq!(
        (c1[0]["type"].as_str(), c1[0]["code"].as_u64()),
        (Some("error"), Some(11))
    );
    let mut c2 = bodies_to(&out, "c2");
    // `broadcast_ok` and `read_ok` wait for the log to be durable while the shell's error replies
    // leave at once, so compare in request order.
    c2.sort_by_key(|b| b["in_reply_to"].as_u64());
    let types: Vec<(&str, Option<u64>)> = c2
        .iter()
        .map(|b| (b["type"].as_str().unwrap(), b["code"].as_u64()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("topology_ok", None),
            ("broadcast_ok", None),
            ("error", Some(10)),
            ("broadcast_ok", None),
            ("error", Some(12)),
            ("read_ok", None)
        ]
    );
    assert_eq!(c2[5]["messages"], json!([1, 2]));
    assert!(
        stderr.contains("malformed line"),
        "malformed lines are logged to stderr:\n{stderr}"
    );
}

#[test]
fn broadcast_rejects_bad_knobs_clearly() {
    let (out, stderr, status) =
        exchange(env!("CARGO_BIN_EXE_broadcast"), &["--overlay", "ring"], &[]);
    assert!(!status.success());
    assert!(out.is_empty());
    assert!(stderr.contains("unknown overlay"), "{stderr}");
}

#[test]
fn eof_before_init_exits_cleanly() {
    let (out, _, status) = exchange(env!("CARGO_BIN_EXE_broadcast"), &[], &[]);
    assert!(status.success());
    assert!(out.is_empty());
}

/// A node idle through a pause (SIGSTOP, SIGCONT) answers a request that arrives well after the
/// resume. The shell must learn of the resume when it happens: if it noticed only when the request
/// arrived, the client guard would date the request back to before the pause and drop it as stale
/// (found in real runs of g-counter under kill,pause,partition: final reads dropped). The sleeps
/// only bound from below how long after the resume the request comes; nothing is timed.
#[test]
fn an_idle_node_answers_a_request_sent_long_after_a_pause_ended() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_g-counter"))
        .env("MURMUR_DATA_DIR", data.path())
        .env("MURMUR_REPLY_DEADLINE_MS", "500")
        .env("MURMUR_STALL_MS", "1000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "{}", init("n0", &["n0"])).unwrap();
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("init_ok"), "{first}");
    let pid = child.id() as libc::pid_t;
    // SAFETY: signals to our own child, which has not been reaped.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // Longer than the stall window (1000 ms) after the resume.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    writeln!(
        stdin,
        "{}",
        line("c1", "n0", json!({"type":"read","msg_id":2}))
    )
    .unwrap();
    drop(stdin);
    let rest: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    child.wait().unwrap();
    assert_eq!(
        bodies_to(&rest, "c1"),
        vec![json!({"type":"read_ok","value":0,"in_reply_to":2})]
    );
}
