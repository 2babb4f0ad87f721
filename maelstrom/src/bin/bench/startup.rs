//! Start-up with a large log (`just startup`): how long a broadcast node that holds `--values`
//! values (default 1M) takes from its start to `init_ok`, which it sends only once it has
//! recovered its log, over the log as it grows without compaction and over the same log
//! compacted. Writes the rows into the "Start-up" section of `BENCHMARKS.md` (the rest of the
//! file is `just bench`'s and is kept).
//!
//! The logs are built in-process by murmur's own host and store, as a node's shell builds them:
//! a one-node cluster `n0` (so no peer cursors) takes `values` client `broadcast`s, each handled
//! and appended on its own (the shell's default path: one record per handler when requests
//! arrive one at a time). The compacted log is that log with the host's compaction written over
//! it ([`murmur::host::Host::take_compaction`], [`murmur::store::Store::compact`]).
//!
//! Each run spawns the release node with `MURMUR_COMPACT_MIN_BYTES=0` (so it does not compact
//! the uncompacted log after `init_ok`, which is not what is measured), writes `init`, and takes
//! the wall time until `init_ok` is read: process start, store open (reading and checksumming
//! the file), recovery into the node's state. Runs alternate between the two logs; each row is
//! the median of `--repeats` runs, with the minimum and maximum beside it.

use super::{children_cpu, write_or_exit};
use murmur::host::Host;
use murmur::node::parse_line;
use murmur::store::{self, Store};
use murmur::workload::broadcast::{Broadcast, BroadcastConfig, Msg};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Where the section starts in `BENCHMARKS.md`; it runs to the next `## ` heading or the end.
pub const HEADING: &str = "## Start-up";

/// One log to start from.
struct Log {
    name: &'static str,
    root: PathBuf,
    bytes: u64,
    records: usize,
}

pub fn run(node: &str, out: &Path, values: u64, repeats: usize) {
    let scratch = super::tempdir_for("startup");
    let plain = scratch.join("uncompacted");
    let compacted = scratch.join("compacted");
    for d in [&plain, &compacted] {
        let _ = std::fs::remove_dir_all(d);
    }
    let started = Instant::now();
    let (plain_log, compacted_log) = match build(&plain, &compacted, values) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("bench: cannot build the logs: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "bench: built {values}-value logs in {:.1} s: uncompacted {} bytes / {} records, compacted {} bytes / {} records",
        started.elapsed().as_secs_f64(),
        plain_log.bytes,
        plain_log.records,
        compacted_log.bytes,
        compacted_log.records
    );
    let logs = [plain_log, compacted_log];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); logs.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); logs.len()];
    let mut parts: Vec<Vec<(f64, f64)>> = vec![Vec::new(); logs.len()];
    for r in 0..repeats {
        for (i, log) in logs.iter().enumerate() {
            let cpu_before = children_cpu();
            match start_once(node, &log.root) {
                Ok(ms) => {
                    let cpu_ms = (children_cpu() - cpu_before) * 1e3;
                    eprintln!(
                        "bench: start-up {} #{r}: {ms:.1} ms wall, {cpu_ms:.1} ms CPU (whole life: start-up, then exit)",
                        log.name
                    );
                    times[i].push(ms);
                    cpu[i].push(cpu_ms);
                }
                Err(e) => {
                    eprintln!("bench: start-up {} failed: {e}", log.name);
                    std::process::exit(1);
                }
            }
            match recover_in_process(&log.root) {
                Ok(p) => parts[i].push(p),
                Err(e) => {
                    eprintln!("bench: in-process recovery of {} failed: {e}", log.name);
                    std::process::exit(1);
                }
            }
        }
    }
    let mut section = String::new();
    let command = format!(
        "target/release/bench --startup --values {values} --repeats {repeats} --node {node}"
    );
    let _ = writeln!(section, "{HEADING}\n");
    let _ = writeln!(
        section,
        "Produced by `just startup` (`{command}`): wall time from spawning the broadcast node to \
         reading its `init_ok`, which it sends once its log is recovered, with {values} values in \
         its log (a one-node cluster; each value was broadcast and appended on its own, as the \
         shell does when requests arrive one at a time). *uncompacted*: the log as it grows; \
         *compacted*: the same log after the node's compaction (a snapshot in values records). \
         Median of {repeats} runs per row, alternating between the two logs, minimum and maximum \
         beside it (ms). The node runs with `MURMUR_COMPACT_MIN_BYTES=0` so that it does not \
         compact the first log itself. The last two columns split the same work, done in the \
         bench's own process after each spawn (medians, wall): `Store::open` (read, checksum, \
         split into records) and `Host::init` (decode, index, rebuild the node).\n"
    );
    let _ = writeln!(
        section,
        "| log | values | log bytes | records | start-up median ms | min | max | node CPU ms | open ms | init ms | command |"
    );
    let _ = writeln!(section, "|---|---|---|---|---|---|---|---|---|---|---|");
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    for (((log, t), p), c) in logs.iter().zip(&mut times).zip(&parts).zip(&mut cpu) {
        c.sort_by(f64::total_cmp);
        let cpu_median = c.get(c.len() / 2).copied().unwrap_or(f64::NAN);
        t.sort_by(f64::total_cmp);
        let median = t.get(t.len() / 2).copied().unwrap_or(f64::NAN);
        let mid = |f: fn(&(f64, f64)) -> f64| {
            let mut v: Vec<f64> = p.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let _ = writeln!(
            section,
            "| {} | {values} | {} | {} | {median:.1} | {:.1} | {:.1} | {cpu_median:.1} | {:.1} | {:.1} | `{command}` |",
            log.name,
            log.bytes,
            log.records,
            t.first().copied().unwrap_or(f64::NAN),
            t.last().copied().unwrap_or(f64::NAN),
            mid(|x| x.0),
            mid(|x| x.1),
        );
    }
    let _ = writeln!(
        section,
        "\nLoad average when the table was written: {load} (on {} cores). Wall times include \
         waiting for a core; node CPU (user + system, `getrusage` of the reaped node, its whole \
         life: start-up, then exit when its stdin closes) does not.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = std::fs::remove_dir_all(&scratch);
    let path = out.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    write_or_exit(out, "BENCHMARKS.md", with_section(&old, &section));
}

/// `doc` with its [`HEADING`] section replaced by `section` (appended if it has none).
pub fn with_section(doc: &str, section: &str) -> String {
    let (before, after) = split_section(doc);
    let mut out = before.trim_end().to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(section.trim_end());
    out.push('\n');
    if !after.is_empty() {
        out.push('\n');
        out.push_str(after);
    }
    out
}

/// (`doc` without its [`HEADING`] section, joined around it; the section itself, or "").
pub fn take_section(doc: &str) -> (String, String) {
    let Some(start) = find_heading(doc) else {
        return (doc.to_string(), String::new());
    };
    let end = next_heading(doc, start);
    let mut rest = doc[..start].to_string();
    rest.push_str(&doc[end..]);
    (rest, doc[start..end].trim_end().to_string())
}

fn split_section(doc: &str) -> (&str, &str) {
    match find_heading(doc) {
        Some(start) => (&doc[..start], &doc[next_heading(doc, start)..]),
        None => (doc, ""),
    }
}

fn find_heading(doc: &str) -> Option<usize> {
    if doc.starts_with(HEADING) {
        return Some(0);
    }
    doc.find(&format!("\n{HEADING}")).map(|i| i + 1)
}

/// Where the section starting at `start` ends: at the next heading, or at the next marker comment
/// (another mode's section, or the hand-measured part), whichever comes first.
fn next_heading(doc: &str, start: usize) -> usize {
    let rest = &doc[start + HEADING.len()..];
    [rest.find("\n## "), rest.find("\n<!-- ")]
        .into_iter()
        .flatten()
        .min()
        .map_or(doc.len(), |i| start + HEADING.len() + i + 1)
}

/// Builds the uncompacted log under `plain/n0/` and the compacted one under `compacted/n0/`.
fn build(plain: &Path, compacted: &Path, values: u64) -> std::io::Result<(Log, Log)> {
    let dir = plain.join(store::dir_name("n0"));
    let mut st = Store::open(&dir, false)?.store;
    let mut host: Host<Broadcast> = Host::new(BroadcastConfig::default(), 0, 0, 0);
    host.set_compact_min(None);
    let init = r#"{"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}}"#;
    let parsed = parse_line::<Msg>(init).map_err(|e| std::io::Error::other(e.to_string()))?;
    let request = host
        .receive(0, parsed)
        .ok_or_else(|| std::io::Error::other("init not handed back"))?;
    host.init(0, request, Ok(Vec::new()), 0);
    let mut durable = 0u64;
    let mut records = 0usize;
    let mut failed = None;
    let mut persist = |host: &mut Host<Broadcast>, st: &mut Store, records: &mut usize| {
        host.persist_with(0, |batch| match st.append(&batch) {
            Ok(()) => {
                durable += batch.len() as u64;
                *records += batch.len();
                Some(durable)
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        });
    };
    persist(&mut host, &mut st, &mut records);
    for v in 0..values {
        let line = format!(
            r#"{{"src":"c1","dest":"n0","body":{{"type":"broadcast","message":{v},"msg_id":{}}}}}"#,
            v + 2
        );
        let parsed = parse_line::<Msg>(&line).map_err(|e| std::io::Error::other(e.to_string()))?;
        let _ = host.receive(0, parsed);
        persist(&mut host, &mut st, &mut records);
        host.drain();
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let plain_log = Log {
        name: "uncompacted",
        root: plain.to_path_buf(),
        bytes: st.len(),
        records,
    };
    drop(st);
    // The same log, compacted by the host's own decision and the store's swap.
    let cdir = compacted.join(store::dir_name("n0"));
    std::fs::create_dir_all(&cdir)?;
    std::fs::copy(dir.join(store::FILE_NAME), cdir.join(store::FILE_NAME))?;
    let mut cst = Store::open(&cdir, false)?.store;
    host.set_compact_min(Some(1));
    let snapshot = host
        .take_compaction()
        .ok_or_else(|| std::io::Error::other("the host saw no compaction due"))?;
    cst.compact(&snapshot)?;
    host.compacted(true);
    let compacted_log = Log {
        name: "compacted",
        root: compacted.to_path_buf(),
        bytes: cst.len(),
        records: snapshot.len(),
    };
    Ok((plain_log, compacted_log))
}

/// What the node does before `init_ok`, in this process: (ms to open the store, ms to init the
/// host with its records).
fn recover_in_process(root: &Path) -> std::io::Result<(f64, f64)> {
    let t0 = Instant::now();
    let opened = Store::open(&root.join(store::dir_name("n0")), false)?;
    let open_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut host: Host<Broadcast> = Host::new(BroadcastConfig::default(), 0, 0, 0);
    let init = r#"{"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}}"#;
    let parsed = parse_line::<Msg>(init).map_err(|e| std::io::Error::other(e.to_string()))?;
    let request = host
        .receive(0, parsed)
        .ok_or_else(|| std::io::Error::other("init not handed back"))?;
    let t1 = Instant::now();
    host.init(0, request, Ok(opened.records), 0);
    let init_ms = t1.elapsed().as_secs_f64() * 1e3;
    let held = host.node().map_or(0, |n| n.values().len());
    if held == 0 {
        return Err(std::io::Error::other("nothing recovered"));
    }
    Ok((open_ms, init_ms))
}

/// Spawns the node over the data root `root`, sends `init`, and returns the milliseconds until
/// `init_ok` was read; then closes its stdin and reaps it.
fn start_once(node: &str, root: &Path) -> std::io::Result<f64> {
    let t0 = Instant::now();
    let mut child = Command::new(node)
        .env("MURMUR_DATA_DIR", root)
        .env("MURMUR_COMPACT_MIN_BYTES", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    writeln!(
        stdin,
        r#"{{"src":"c0","dest":"n0","body":{{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}}}}"#
    )?;
    stdin.flush()?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut line)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(stdin);
    let _ = child.wait();
    if !line.contains("init_ok") {
        return Err(std::io::Error::other(format!(
            "expected init_ok, got {line:?}"
        )));
    }
    Ok(ms)
}
