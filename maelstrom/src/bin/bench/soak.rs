//! The soak run (`just soak`): one long `--nemesis kill,pause,partition` run at 25 nodes (the 3d
//! configuration, `--time-limit 600` by default), with the resident memory of the runner and of every
//! node process sampled from `/proc` while it runs. Writes `SOAK.md` (verdict, lost values, the
//! memory curve once a minute) and replaces the soak section of `FAULTS.md` with its summary row.
//!
//! Memory is `VmRSS` (resident now, not the peak): a node restarted by the nemesis starts small
//! again, so the curve shows the mean and the largest node at each sample, and the runner's own.
//! "Flat after warm-up" is judged by the table: the last minute against the second.

use super::{fmt, num, read_results, write_or_exit};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Seconds between memory samples.
const SAMPLE_SECS: u64 = 5;
/// Marks the soak section inside `FAULTS.md`, so `bench --faults` and `bench --soak` each rewrite
/// only their own part.
pub const FAULTS_MARK: &str = "<!-- soak: written by `just soak` (bench --soak) -->";

/// One sample: seconds since the start, runner RSS, and RSS of each live node process (KiB).
struct Sample {
    at_s: u64,
    runner_kib: u64,
    nodes_kib: Vec<u64>,
}

/// The soak run; see the module docs.
pub fn run(runner: &str, node: &str, out: &Path, scratch: &Path, seconds: u64, seed: u64) {
    let flags = format!(
        "--node-count 25 --time-limit {seconds} --rate 100 --latency 100 --nemesis kill,pause,partition --seed {seed}"
    );
    let command = format!("{runner} test -w broadcast --bin {node} {flags}");
    let dir = scratch.join("soak");
    eprintln!("soak: {command} (about {} min)", seconds / 60 + 1);
    let mut child = match Command::new(runner)
        .args(command.split_whitespace().skip(1))
        .args(["--results-dir", &dir.to_string_lossy(), "--no-progress"])
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("soak: cannot start {runner}: {e}");
            std::process::exit(1);
        }
    };
    let pid = child.id();
    let started = Instant::now();
    let mut samples = Vec::new();
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code().unwrap_or(-1),
            Ok(None) => {}
            Err(e) => {
                eprintln!("soak: waiting for the runner: {e}");
                break -1;
            }
        }
        let at_s = started.elapsed().as_secs();
        if samples
            .last()
            .map_or(true, |s: &Sample| at_s >= s.at_s + SAMPLE_SECS)
        {
            if let Some(runner_kib) = rss_kib(pid) {
                let nodes_kib = children_of(pid).into_iter().filter_map(rss_kib).collect();
                samples.push(Sample {
                    at_s,
                    runner_kib,
                    nodes_kib,
                });
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let results = read_results(&dir.join("broadcast").join("latest").join("results.json"));
    let (s, row) = render(&command, exit, results.as_ref(), &samples, seconds);
    write_or_exit(out, "SOAK.md", s);
    let faults = std::fs::read_to_string(out.join("FAULTS.md")).unwrap_or_default();
    write_or_exit(out, "FAULTS.md", with_soak_section(&faults, &row));
}

/// `FAULTS.md` with its soak section (from [`FAULTS_MARK`] to the end) replaced by `row`.
pub fn with_soak_section(faults: &str, row: &str) -> String {
    let head = faults.split(FAULTS_MARK).next().unwrap_or("").trim_end();
    format!("{head}\n\n{FAULTS_MARK}\n{row}")
}

/// The soak section of an existing `FAULTS.md` (empty if none), for `bench --faults` to keep.
pub fn soak_section(faults: &str) -> Option<&str> {
    faults.find(FAULTS_MARK).map(|at| &faults[at..])
}

fn render(
    command: &str,
    exit: i32,
    v: Option<&serde_json::Value>,
    samples: &[Sample],
    seconds: u64,
) -> (String, String) {
    let mib = |k: u64| k as f64 / 1024.0;
    let mean =
        |xs: &[u64]| (!xs.is_empty()).then(|| xs.iter().sum::<u64>() as f64 / xs.len() as f64);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Soak: {seconds} s of kill, pause and partition at 25 nodes\n"
    );
    let _ = writeln!(
        s,
        "Produced by `just soak` (`target/release/bench --soak`), which runs\n\n    {command}\n\n\
         and samples, every {SAMPLE_SECS} s, the resident memory (`VmRSS`) of the runner and of every \
         node process it has running (a restarted node starts small again). The table shows one \
         sample a minute.\n"
    );
    let (valid, lost, stable, attempted) = match v {
        Some(v) => (
            v.get("valid?") == Some(&serde_json::Value::Bool(true)),
            num(v, &["workload", "lost-count"]),
            num(v, &["workload", "stable-count"]),
            num(v, &["workload", "attempt-count"]),
        ),
        None => (false, None, None, None),
    };
    let verdict = match v {
        Some(_) if valid => "valid".to_string(),
        Some(_) => "**invalid**".to_string(),
        None => format!("**aborted** (exit {exit}, no results.json)"),
    };
    let _ = writeln!(
        s,
        "**Verdict: {verdict}; lost {}; stable {} of {} attempted; msgs-per-op {}; runner exit {exit}.**\n",
        fmt(lost, 0),
        fmt(stable, 0),
        fmt(attempted, 0),
        fmt(v.and_then(|v| num(v, &["net", "servers", "msgs-per-op"])), 2),
    );
    let _ = writeln!(
        s,
        "| minute | runner RSS MiB | node RSS mean MiB | node RSS max MiB | nodes running |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let mut next_minute = 0;
    for x in samples {
        if x.at_s < next_minute * 60 {
            continue;
        }
        next_minute = x.at_s / 60 + 1;
        let _ = writeln!(
            s,
            "| {} | {:.1} | {} | {} | {} |",
            x.at_s / 60,
            mib(x.runner_kib),
            fmt(mean(&x.nodes_kib).map(|k| k / 1024.0), 1),
            fmt(x.nodes_kib.iter().max().map(|&k| mib(k)), 1),
            x.nodes_kib.len()
        );
    }
    // Warm-up: the first two minutes; compare the second minute with the last.
    let at = |minute: u64| samples.iter().find(|x| x.at_s >= minute * 60);
    let second = at(1);
    // The last sample that saw the figure (the final samples may come after the nodes stopped).
    let growth = |f: &dyn Fn(&Sample) -> Option<f64>| match (
        second.and_then(f),
        samples.iter().rev().find_map(f),
    ) {
        (Some(a), Some(b)) if a > 0.0 => Some(format!(
            "{:.1} → {:.1} MiB ({:+.0} %)",
            a,
            b,
            (b / a - 1.0) * 100.0
        )),
        _ => None,
    };
    let runner_growth = growth(&|x| Some(mib(x.runner_kib)));
    let node_growth = growth(&|x| mean(&x.nodes_kib).map(|k| k / 1024.0));
    let peak_runner = samples.iter().map(|x| x.runner_kib).max().map(mib);
    let _ = writeln!(
        s,
        "\nFrom minute 1 to the end: runner {}, mean node {}; runner peak {} MiB. Per-run figures \
         (latency, recoveries, delivery lag) are in the run's `results.json`.",
        runner_growth.as_deref().unwrap_or("–"),
        node_growth.as_deref().unwrap_or("–"),
        fmt(peak_runner, 1),
    );
    let row = format!(
        "## Soak\n\n`just soak` ({seconds} s, 25 nodes, rate 100, latency 100, kill,pause,partition; \
         details and the memory curve in [SOAK.md](SOAK.md)):\n\n\
         | verdict | lost | stable / attempted | runner RSS minute 1 → end | mean node RSS minute 1 → end | command |\n\
         |---|---|---|---|---|---|\n\
         | {verdict} | {} | {} / {} | {} | {} | `{command}` |\n",
        fmt(lost, 0),
        fmt(stable, 0),
        fmt(attempted, 0),
        runner_growth.as_deref().unwrap_or("–"),
        node_growth.as_deref().unwrap_or("–"),
    );
    (s, row)
}

/// Resident set size of a live process (`VmRSS`), KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The live children of `pid` (the runner's node processes), from `/proc/*/stat`'s parent field.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the command name's closing ')': state, then the parent pid.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_section_is_replaced_and_the_rest_kept() {
        let faults = "# Durability\n\ntable\n";
        let once = with_soak_section(faults, "row one\n");
        assert!(once.starts_with("# Durability\n\ntable\n\n"));
        assert!(once.ends_with(&format!("{FAULTS_MARK}\nrow one\n")));
        let twice = with_soak_section(&once, "row two\n");
        assert!(!twice.contains("row one") && twice.contains("row two"));
        assert_eq!(
            soak_section(&twice),
            Some(&twice[twice.find(FAULTS_MARK).unwrap()..])
        );
        assert_eq!(soak_section(faults), None);
    }

    #[test]
    fn this_process_has_a_resident_size_and_its_children_are_found() {
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
        let mut child = Command::new("sleep").arg("5").spawn().expect("sleep");
        assert!(children_of(std::process::id()).contains(&child.id()));
        let _ = child.kill();
        let _ = child.wait();
    }
}
