//! The runner's web pages in a real browser: the live dashboard of `maelstrom test --web` and the
//! run list of `maelstrom serve`, driven in headless Chromium over its DevTools protocol (a
//! websocket: the page is live, so the test clicks and waits where `report_browser.rs` can dump
//! a finished page).
//!
//! One test, in order: a 5-node broadcast run with `--time-limit 0 --web` is opened in the
//! browser; the page must render snapshots, show one row per node; the test presses the kill
//! control of one node and waits for the row to say `killed`, then presses Stop; the run must
//! end in a verdict shown on the page, the history must hold the kill as a nemesis op naming the
//! node, and the page's last counts must equal the run's journal (`messages.jsonl`). Then
//! `maelstrom serve` over the same results folder (plus a short second run): the list shows both
//! runs with their verdicts, the report link opens a report that renders, and the comparison page
//! shows both. No page may log a console error or throw.
//!
//! Chromium and `MURMUR_TEST_REQUIRE_BROWSER` as in `report_browser.rs`. Screenshots are kept in
//! `target/tmp/web-browser/` for a human to look at; they are not compared.

#[path = "common/browser.rs"]
mod browser;
mod common;

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// How long any one wait may take before the test fails as hung (not a speed assertion: the
/// machine may be slow, so this is generous).
const HANG: Duration = Duration::from_secs(90);

/// A child process killed when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with stderr piped and returns the first stderr line containing `marker`, while a
/// thread keeps draining stderr (with `echo`, to ours, so a failure shows the process's log).
fn spawn_until(mut cmd: Command, marker: &'static str, echo: bool) -> (Reaped, String) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawning");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(marker) {
                let _ = tx.send(line.clone());
            }
            if echo {
                eprintln!("  | {line}");
            }
        }
    });
    let line = rx
        .recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("no {marker:?} line on the process's stderr"));
    (Reaped(child), line)
}

/// One Chromium tab driven over the DevTools protocol (flat sessions on the browser's socket).
struct Tab {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    /// Console errors and uncaught exceptions seen so far.
    errors: Vec<String>,
    _browser: Reaped,
    _profile: tempfile::TempDir,
}

impl Tab {
    fn open(browser: &Path) -> Tab {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = browser::headless(browser, profile.path());
        cmd.args(["--remote-debugging-port=0", "--window-size=1400,1000"])
            .arg("about:blank")
            .stdout(Stdio::null());
        let (child, line) = spawn_until(cmd, "DevTools listening on ", false);
        let url = line[line.find("ws://").expect("a ws:// url")..]
            .trim()
            .to_string();
        let (mut ws, _) = tungstenite::connect(url.as_str()).expect("connecting to DevTools");
        if let MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(HANG)).unwrap();
        }
        let mut tab = Tab {
            ws,
            session: String::new(),
            next_id: 0,
            errors: Vec::new(),
            _browser: child,
            _profile: profile,
        };
        let target = tab.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = tab.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        tab.session = attached["sessionId"].as_str().unwrap().to_string();
        tab.call("Runtime.enable", json!({}));
        tab.call("Log.enable", json!({}));
        tab.call("Page.enable", json!({}));
        tab
    }

    /// Sends a command (to the tab once attached) and waits for its answer, noting errors the
    /// page reports meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().expect("reading from DevTools");
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    self.errors
                        .push(v["params"]["exceptionDetails"].to_string());
                }
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.errors.push(v["params"]["args"].to_string());
                }
                Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                    self.errors.push(v["params"]["entry"].to_string());
                }
                _ => {}
            }
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// Evaluates `js` in the page and returns its value (JSON-serialisable values only).
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "evaluating {js}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits until `js` evaluates to `true` (an exception counts as not yet: the page may still
    /// be loading); `what` says what was awaited if it never does.
    fn wait_for(&mut self, js: &str, what: &str) {
        let deadline = Instant::now() + HANG;
        let guarded =
            format!("(() => {{ try {{ return {js}; }} catch (e) {{ return false; }} }})()");
        while self.eval(&guarded) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "waited in vain for {what} ({js})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&mut self, png: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(png, bytes).unwrap();
    }
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn live_page_and_serve_in_headless_chromium() {
    let Some(browser) = browser::chromium_or_skip() else {
        return;
    };
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let results = tempfile::tempdir().unwrap();

    // The live run: until Stop, the dashboard on a free loopback port.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maelstrom"));
    cmd.args(["test", "-w", "broadcast", "--bin"])
        .arg(common::node_bin("broadcast"))
        .args([
            "--node-count",
            "5",
            "--time-limit",
            "0",
            "--web",
            "127.0.0.1:0",
            "--rate",
            "50",
            "--latency",
            "5",
            "--no-progress",
            "--seed",
            "5",
            "--results-dir",
        ])
        .arg(results.path())
        .stdout(Stdio::null());
    let (mut run, line) = spawn_until(cmd, "Live dashboard: ", true);
    let url = line[line.find("http://").unwrap()..].trim().to_string();

    let mut tab = Tab::open(&browser);
    tab.goto(&url);
    tab.wait_for(
        "document.body.dataset.phase === 'main' && +document.body.dataset.snapshots >= 3",
        "the main phase on the page",
    );
    assert_eq!(
        tab.eval("document.querySelectorAll('#nodes tbody tr').length"),
        json!(5)
    );
    tab.wait_for(
        "+document.getElementById('totals').dataset.sends > 0 && \
         document.querySelectorAll('#rates tbody tr').length > 0 && \
         document.querySelectorAll('#monitor div').length > 0",
        "messages counted, rates and monitor filled",
    );
    // Every node up before any fault.
    assert_eq!(
        tab.eval("[...document.querySelectorAll('#nodes tbody tr')].every(r => r.dataset.state === 'up')"),
        json!(true)
    );

    // The god control: kill n2 from its row.
    tab.eval("document.querySelector('button[data-act=kill][data-node=n2]').click()");
    tab.wait_for(
        "document.querySelector('tr[data-node=n2]').dataset.state === 'killed'",
        "n2 shown killed",
    );
    tab.wait_for(
        "[...document.querySelectorAll('#monitor div.fault')].some(d => d.textContent.includes('kill'))",
        "the kill in the event monitor",
    );
    // The others carry on without it.
    let sent_before = tab.eval("+document.getElementById('totals').dataset.sends");
    tab.wait_for(
        &format!("+document.getElementById('totals').dataset.sends > {sent_before}"),
        "traffic after the kill",
    );
    tab.screenshot(&shots.join("live-killed.png"));

    tab.eval("document.getElementById('stop').click()");
    tab.wait_for(
        "document.body.dataset.verdict !== undefined",
        "the verdict on the page",
    );
    tab.screenshot(&shots.join("live-done.png"));
    let page_sends = tab.eval("+document.getElementById('totals').dataset.sends");
    let page_deliveries = tab.eval("+document.getElementById('totals').dataset.deliveries");
    let row_sent = tab.eval(
        "[...document.querySelectorAll('#nodes tbody tr')].map(r => [r.dataset.node, +r.dataset.sent])",
    );
    let verdict = tab.eval("document.body.dataset.verdict");
    let status = run.0.wait().unwrap();
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "the run should end in a verdict, not {status}"
    );
    assert_eq!(
        verdict,
        json!(if status.code() == Some(0) {
            "valid"
        } else {
            "invalid"
        })
    );

    // The kill is in the history as a nemesis op naming n2, and the final phase restarted it.
    let run_dir = results
        .path()
        .join("broadcast/latest")
        .canonicalize()
        .unwrap();
    let history = read_jsonl(&run_dir.join("history.jsonl"));
    let nemesis: Vec<&Value> = history
        .iter()
        .filter(|o| o["process"] == "nemesis")
        .collect();
    assert!(
        nemesis
            .iter()
            .any(|o| o["f"] == "kill" && o["value"] == json!(["n2"])),
        "no kill of n2 in the history's nemesis ops: {nemesis:?}"
    );
    assert!(nemesis
        .iter()
        .any(|o| o["f"] == "kill" && o["value"] == json!({"n2": "killed"})));
    assert!(nemesis.iter().any(|o| o["f"] == "start"));

    // The page's last counts are the journal's.
    let journal = read_jsonl(&run_dir.join("messages.jsonl"));
    let sends = journal.iter().filter(|e| e["kind"] == "send").count();
    let recvs = journal.iter().filter(|e| e["kind"] == "recv").count();
    assert_eq!(page_sends, json!(sends));
    assert_eq!(page_deliveries, json!(recvs));
    for pair in row_sent.as_array().unwrap() {
        let node = pair[0].as_str().unwrap();
        let from_node = journal
            .iter()
            .filter(|e| e["kind"] == "send" && e["src"] == node)
            .count();
        assert_eq!(pair[1], json!(from_node), "messages sent by {node}");
    }

    // A second, short run, so that there are two to list and compare.
    let status = Command::new(env!("CARGO_BIN_EXE_maelstrom"))
        .args(["test", "-w", "echo", "--bin"])
        .arg(common::node_bin("echo"))
        .args([
            "--node-count",
            "1",
            "--time-limit",
            "1",
            "--rate",
            "10",
            "--no-progress",
            "--seed",
            "1",
        ])
        .arg("--results-dir")
        .arg(results.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maelstrom"));
    cmd.args(["serve", "--port", "0"])
        .arg(results.path())
        .stdout(Stdio::null());
    let (_serve, line) = spawn_until(cmd, "Serving ", true);
    let base = line[line.find("http://").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    tab.goto(&format!("{base}/"));
    tab.wait_for(
        "document.querySelectorAll('#runs tr[data-run]').length === 2",
        "two runs listed",
    );
    let listed = tab.eval(
        "[...document.querySelectorAll('#runs tr[data-run]')].map(r => [r.dataset.run, r.querySelector('td.v').textContent])",
    );
    let bcast = format!(
        "broadcast/{}",
        run_dir.file_name().unwrap().to_string_lossy()
    );
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[0] == json!(bcast) && r[1] == verdict),
        "{listed}"
    );
    tab.screenshot(&shots.join("serve-list.png"));

    // Its report opens from the link and renders.
    tab.eval(&format!(
        "document.querySelector('tr[data-run=\"{bcast}\"] a[href$=\"report.html\"]').click()"
    ));
    tab.wait_for(
        "document.body && document.body.dataset.rendered === 'yes'",
        "the report rendered",
    );
    assert_eq!(
        tab.eval("document.getElementById('errors').textContent"),
        json!("")
    );

    // Two side by side.
    tab.goto(&format!("{base}/"));
    tab.wait_for(
        "document.querySelectorAll('#runs tr[data-run]').length === 2",
        "the list again",
    );
    tab.eval(
        "const rows = document.querySelectorAll('#runs tr[data-run]'); \
         rows[0].querySelector('input[name=a]').click(); \
         rows[1].querySelector('input[name=b]').click(); \
         document.querySelector('form button[type=submit]').click()",
    );
    tab.wait_for(
        "document.querySelectorAll('iframe.report').length === 2 && \
         [...document.querySelectorAll('iframe.report')].every(f => f.contentDocument && \
            f.contentDocument.body && f.contentDocument.body.dataset.rendered === 'yes')",
        "two reports side by side",
    );
    assert_eq!(
        tab.eval("document.querySelectorAll('#figures tr').length >= 8"),
        json!(true)
    );
    tab.screenshot(&shots.join("serve-compare.png"));

    assert!(tab.errors.is_empty(), "console errors: {:?}", tab.errors);
    eprintln!("screenshots in {}", shots.display());
}
