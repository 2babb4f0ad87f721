//! `report.html` in a real browser: a real broadcast run with partitions (the `maelstrom` binary
//! on murmur's `broadcast` node), its report loaded in headless Chromium, and the rendered page
//! checked against the run's own files: the diagram drew every journaled message on one lane per
//! participant, the latency plot every completed client op, the timeline every invocation on one
//! row per client process, the node table one row per node with its last read, the checker
//! tables are there, a message picked through the page's `#msg=<id>` link shows that
//! message's body from `messages.jsonl`, and the page's script raised no error.
//!
//! Chromium is Debian's `chromium` (or `$CHROMIUM`). Where it is not installed the test says so
//! and passes, unless `MURMUR_TEST_REQUIRE_BROWSER` is set (`.ci/run` installs Chromium and sets it),
//! so a missing browser cannot pass CI silently. Screenshots of the page are kept in
//! `target/tmp/report-browser/` for a human to look at; they are not compared.

#[path = "common/browser.rs"]
mod browser;
mod common;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The run: 5 nodes, 100 ops/s for 6 s, a partition every ~2 s (Maelstrom's recovery wait adds 10 s).
const SEED: &str = "11";

/// Loads `url` in headless Chromium; returns the DOM after the page's scripts ran, and stderr.
/// With `screenshot`, also saves a PNG of the first `height` pixels.
fn load(browser: &Path, url: &str, screenshot: Option<(&Path, u32)>) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = browser::headless(browser, profile.path());
    cmd.args([
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=3000",
    ]);
    match screenshot {
        Some((png, height)) => {
            cmd.arg(format!("--screenshot={}", png.display()))
                .arg(format!("--window-size=1400,{height}"));
        }
        None => {
            cmd.args(["--window-size=1400,1000", "--dump-dom"]);
        }
    }
    let out = cmd.arg(url).output().expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of `attr` on the element whose opening tag contains `marker` (e.g. `id="diagram"`).
fn attr(dom: &str, marker: &str, attr: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let tag_start = dom[..=at].rfind('<')?;
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>')?];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_string())
}

/// The inner HTML of the element whose opening tag contains `marker`, up to `end`.
fn inner<'a>(dom: &'a str, marker: &str, end: &str) -> &'a str {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the page"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    &dom[start..start + dom[start..].find(end).unwrap()]
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(browser) = browser::chromium_or_skip() else {
        return;
    };
    let results = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_maelstrom"))
        .args(["test", "-w", "broadcast", "--bin"])
        .arg(common::node_bin("broadcast"))
        .args([
            "--node-count",
            "5",
            "--time-limit",
            "6",
            "--rate",
            "100",
            "--latency",
            "20",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "2",
            "--no-progress",
            "--seed",
            SEED,
            "--results-dir",
        ])
        .arg(results.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "the run should end in a verdict, not {status}"
    );
    let run = results
        .path()
        .join("broadcast/latest")
        .canonicalize()
        .unwrap();
    let report = run.join("report.html");
    let size = std::fs::metadata(&report).expect("report.html").len();
    assert!(size < 5 << 20, "report.html is {size} bytes");

    // What the page must show, from the run's own files.
    let journal_text = std::fs::read_to_string(run.join("messages.jsonl")).unwrap();
    let journal: Vec<Value> = journal_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sends: Vec<&Value> = journal.iter().filter(|e| e["kind"] == "send").collect();
    let mut lanes: Vec<&str> = journal
        .iter()
        .flat_map(|e| [e["src"].as_str().unwrap(), e["dest"].as_str().unwrap()])
        .collect();
    lanes.sort_unstable();
    lanes.dedup();
    let history: Vec<Value> = std::fs::read_to_string(run.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let completed = history
        .iter()
        .filter(|o| o["process"].is_u64() && o["type"] != "invoke")
        .count();
    let partitions = history
        .iter()
        .filter(|o| o["f"] == "start-partition" && o["type"] == "info")
        .count();
    assert!(partitions >= 1, "the run had no partition");

    let url = format!("file://{}", report.display());
    let (dom, stderr) = load(&browser, &url, None);
    assert_eq!(
        attr(&dom, "<body", "data-rendered").as_deref(),
        Some("yes"),
        "the page's script did not finish"
    );
    assert_eq!(inner(&dom, "id=\"errors\"", "</div>"), "", "script errors");
    assert!(
        !stderr.contains("Uncaught"),
        "console errors in chromium's log:\n{stderr}"
    );
    let num = |marker: &str, a: &str| -> usize {
        attr(&dom, marker, a)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric {a} on {marker}"))
    };
    assert_eq!(num("id=\"diagram\"", "data-total"), sends.len());
    assert_eq!(
        num("id=\"diagram\"", "data-drawn"),
        sends.len(),
        "whole run shown"
    );
    assert_eq!(num("id=\"diagram\"", "data-lanes"), lanes.len());
    assert_eq!(num("id=\"latency\"", "data-points"), completed);
    // Throughput: one line per f/outcome shown (the run has ok broadcasts and ok reads at least).
    assert!(num("id=\"rate\"", "data-series") >= 2);
    // Timeline: one bar per client invocation, one row per client process.
    let invoked: Vec<u64> = history
        .iter()
        .filter(|o| o["type"] == "invoke")
        .filter_map(|o| o["process"].as_u64())
        .collect();
    let mut processes = invoked.clone();
    processes.sort_unstable();
    processes.dedup();
    assert_eq!(num("id=\"timeline\"", "data-ops"), invoked.len());
    assert_eq!(num("id=\"timeline\"", "data-rows"), processes.len());
    let node_rows = inner(&dom, "id=\"t-nodes\"", "</table>")
        .matches("data-node=")
        .count();
    assert_eq!(node_rows, 5);
    // Broadcast: every node served reads, so every row names its last one.
    let nodes_table = inner(&dom, "id=\"t-nodes\"", "</table>");
    assert!(nodes_table.contains("last read: returned"));
    assert_eq!(nodes_table.matches(" values at ").count(), 5);
    for table in [
        "t-checkers",
        "t-stats",
        "t-net",
        "t-net-type",
        "t-net-node",
        "t-workload",
    ] {
        assert!(dom.contains(&format!("id=\"{table}\"")), "no table {table}");
    }
    assert!(inner(&dom, "id=\"command\"", "</pre>").contains("--nemesis partition"));
    assert_eq!(inner(&dom, "id=\"seed\"", "</code>"), SEED);
    // Faults are drawn into the node table: every partition shades some node's bar.
    assert!(dom.contains("class=\"st-partition\""));
    // What the nodes logged about their peers (suspicions, successor hubs): one event per info or
    // warn line of the liveness module in `node-logs/`, in the row of the node that logged it.
    let mut logged = 0;
    for k in 0..5 {
        let log = std::fs::read_to_string(run.join(format!("node-logs/n{k}.log"))).unwrap();
        let lines = log
            .lines()
            .filter(|l| l.contains("broadcast::liveness:"))
            .filter(|l| l.contains(" INFO ") || l.contains(" WARN "))
            .count();
        let shown = attr(
            inner(&dom, &format!("data-node=\"n{k}\""), "</tr>"),
            "class=\"l ev\"",
            "data-events",
        );
        if logged + lines > 0 || shown.is_some() {
            assert_eq!(shown, Some(lines.to_string()), "n{k}'s liveness events");
        }
        logged += lines;
    }
    eprintln!("{logged} liveness events logged by the nodes");
    // This seed's partitions cut the hub off from leaves with values outstanding.
    assert!(logged > 0, "no node logged a suspicion or a successor");
    assert!(nodes_table.contains("its peers, as it saw them"));

    // A gossip message, picked through the page's link, shows its journaled body.
    let gossip = sends
        .iter()
        .find(|e| e["body_type"] == "gossip")
        .expect("a gossip message");
    let (dom, _) = load(&browser, &format!("{url}#msg={}", gossip["id"]), None);
    let picked = inner(&dom, "id=\"picked\"", "</pre>");
    // The body's text as journaled: the rest of its send line after `"body":`.
    let line = journal_text
        .lines()
        .find(|l| {
            l.contains(&format!("\"id\":{},", gossip["id"])) && l.contains("\"kind\":\"send\"")
        })
        .unwrap();
    let body = &line[line.find("\"body\":").unwrap() + 7..line.len() - 1];
    let shown = picked.replace("&quot;", "\"");
    assert!(
        shown.contains(&body[..body.len().min(120)]),
        "picked message shows {picked}, expected its body {body}"
    );

    // Screenshots for people (not compared): the top of the page and the whole of it.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&shots).unwrap();
    load(&browser, &url, Some((&shots.join("report-top.png"), 1000)));
    load(&browser, &url, Some((&shots.join("report-full.png"), 3200)));
    eprintln!("screenshots in {}", shots.display());
}
