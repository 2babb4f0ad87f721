//! Single-node capacity (`just capacity`): drives one broadcast node directly over its pipes (no
//! runner, no network). It grows the node's set with broadcasts, and at set sizes 1k, 10k and 100k
//! measures read and broadcast latency under a 50/50 mix at each rate of a sweep, plus the node's
//! CPU and memory; writes `CAPACITY.md`.

use super::{spawn_node, tempdir_for, write_or_exit};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One node driven over pipes; see the module docs.
pub fn run(node: &str, out: &Path) {
    const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
    const RATES: [u64; 4] = [100, 500, 1_000, 2_000];
    const WINDOW: Duration = Duration::from_secs(3);

    let data = tempdir_for("capacity");
    let mut child = match spawn_node(node, &data) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: cannot start {node}: {e}");
            std::process::exit(1);
        }
    };
    let pid = child.id();
    let mut stdin = std::io::BufWriter::new(child.stdin.take().expect("piped"));
    let stdout = child.stdout.take().expect("piped");
    // Reader thread: (msg_id, arrival) for every reply.
    let (tx, rx) = mpsc::channel::<(u64, Instant)>();
    std::thread::spawn(move || {
        for line in BufReader::with_capacity(1 << 20, stdout).lines() {
            let Ok(line) = line else { break };
            // Only `in_reply_to` is needed; avoid parsing 100k-value arrays.
            if let Some(id) = line.rfind("\"in_reply_to\":").and_then(|i| {
                line[i + 14..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse::<u64>().ok())
            }) {
                let _ = tx.send((id, Instant::now()));
            }
        }
    });
    let mut next_id = 1u64;
    let mut send =
        |stdin: &mut std::io::BufWriter<std::process::ChildStdin>, body: String| -> u64 {
            let id = next_id;
            next_id += 1;
            let _ = writeln!(
                stdin,
                r#"{{"src":"c1","dest":"n0","body":{{"msg_id":{id},{body}}}}}"#
            );
            id
        };
    let init = send(
        &mut stdin,
        r#""type":"init","node_id":"n0","node_ids":["n0"]"#.into(),
    );
    let _ = stdin.flush();
    let wait_for = |rx: &mpsc::Receiver<(u64, Instant)>, id: u64| {
        while let Ok((got, _)) = rx.recv_timeout(Duration::from_secs(30)) {
            if got == id {
                return true;
            }
        }
        false
    };
    if !wait_for(&rx, init) {
        eprintln!("bench: node did not answer init");
        std::process::exit(1);
    }
    let mut value = 0u64;
    let mut rows = Vec::new();
    for size in SIZES {
        // Grow the set to `size` with a pipelined burst of broadcasts.
        let mut last = 0;
        while (value as usize) < size {
            last = send(
                &mut stdin,
                format!(r#""type":"broadcast","message":{value}"#),
            );
            value += 1;
        }
        let _ = stdin.flush();
        wait_for(&rx, last);
        for rate in RATES {
            let cpu0 = maelstrom::procstats::ProcStats::read(pid)
                .map(|s| s.cpu_seconds)
                .unwrap_or(0.0);
            let mut sent: HashMap<u64, (bool, Instant)> = HashMap::new();
            let mut lat: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            let start = Instant::now();
            let gap = Duration::from_secs_f64(1.0 / rate as f64);
            let mut k = 0u64;
            while start.elapsed() < WINDOW {
                let due = start + gap * k as u32;
                let now = Instant::now();
                if now < due {
                    std::thread::sleep(due - now);
                }
                let is_read = k % 2 == 0;
                let body = if is_read {
                    r#""type":"read""#.to_string()
                } else {
                    value += 1;
                    format!(r#""type":"broadcast","message":{}"#, value + 10_000_000)
                };
                let id = send(&mut stdin, body);
                let _ = stdin.flush();
                sent.insert(id, (is_read, Instant::now()));
                k += 1;
                while let Ok((id, at)) = rx.try_recv() {
                    if let Some((r, t0)) = sent.remove(&id) {
                        lat[usize::from(r)].push(at.duration_since(t0).as_secs_f64() * 1e3);
                    }
                }
            }
            let drain_until = Instant::now() + Duration::from_secs(10);
            while !sent.is_empty() && Instant::now() < drain_until {
                if let Ok((id, at)) = rx.recv_timeout(Duration::from_millis(100)) {
                    if let Some((r, t0)) = sent.remove(&id) {
                        lat[usize::from(r)].push(at.duration_since(t0).as_secs_f64() * 1e3);
                    }
                }
            }
            let cpu = maelstrom::procstats::ProcStats::read(pid)
                .map(|s| s.cpu_seconds)
                .unwrap_or(0.0)
                - cpu0;
            let rss = maelstrom::procstats::ProcStats::read(pid)
                .map(|s| s.peak_rss_kib)
                .unwrap_or(0);
            // Exact quantiles of the latencies in ms (0-based rank ⌊n·q⌋, the rule of every
            // quantile the runner reports): a window holds a few thousand samples, so sorting
            // them costs nothing, and a histogram would print bucket bounds at 0.01 ms precision.
            let q = |v: &mut Vec<f64>, q: f64| -> f64 {
                v.sort_by(|a, b| a.total_cmp(b));
                if v.is_empty() {
                    f64::NAN
                } else {
                    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
                }
            };
            let [mut b, mut r] = lat;
            let row = format!(
                "| {size} | {rate} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.0}% | {:.1} |",
                q(&mut b, 0.5),
                q(&mut b, 0.99),
                q(&mut r, 0.5),
                q(&mut r, 0.99),
                sent.len(),
                cpu / WINDOW.as_secs_f64() * 100.0,
                rss as f64 / 1024.0
            );
            eprintln!("capacity: {row}");
            rows.push(row);
        }
    }
    let _ = child.kill();
    let _ = std::fs::remove_dir_all(&data);
    let mut s = String::new();
    let _ = writeln!(s, "# Single-node capacity\n");
    let _ = writeln!(
        s,
        "Produced by `just capacity` (`target/release/bench --capacity`): one broadcast node (default settings) driven over \
         its pipes by an open-loop client. At each set size the set is first grown with broadcasts, then for {} s at each \
         rate the client alternates `read` (which returns the whole set) and `broadcast`. Latency is request write to \
         reply read, in ms. CPU is the node's CPU time over the window as a share of one core; RSS is its peak. \
         *Lost* counts replies not received within 10 s of the window's end.\n",
        WINDOW.as_secs()
    );
    let _ = writeln!(s, "| set size | ops/s | broadcast p50 | broadcast p99 | read p50 | read p99 | unanswered | node CPU | peak RSS MiB |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(s, "{r}");
    }
    write_or_exit(out, "CAPACITY.md", s);
}
