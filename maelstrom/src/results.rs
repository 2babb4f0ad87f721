//! What a run leaves behind and what it prints: the run folder, the terminal summary, and the
//! progress bar.
//!
//! - [`RunDir`]: `results/<workload>/<yyyyMMddTHHmmss.mmm>/` (Jepsen's `store/` layout, with JSON
//!   instead of EDN) holding `results.json`, `history.jsonl` (+ `history.txt`),
//!   `messages.jsonl`, `node-logs/<id>.log`, and any extras. `results/current` points at the run
//!   while it is under way; `results/latest` and `results/<workload>/latest` are pointed at it
//!   when it ends. Links are relative and replaced atomically (temporary link + rename), so a
//!   reader never sees a missing or half-written link.
//! - [`summary`]: a compact, colour-free report of a results object (the keys described in
//!   <https://github.com/jepsen-io/maelstrom/blob/main/doc/results.md>), ending with
//!   Maelstrom's own verdict line. It reads the JSON, not the checker types, so it tolerates
//!   absent sections (they print nothing) and can render a stored `results.json` again.
//! - [`Progress`]: an indicatif bar on stderr for the main phase, fed by atomic
//!   [`ProgressCounters`]; hidden when stderr is not a terminal or when asked.

use crate::history::{JournalEvent, Op, OpType, Process};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Maelstrom's verdict for `valid? true`.
pub const VERDICT_VALID: &str = "Everything looks good! ヽ(‘ー`)ノ";
/// Maelstrom's verdict for `valid? false`.
pub const VERDICT_INVALID: &str = "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻";
/// Maelstrom's verdict for `valid? unknown` (a checker failed, nothing invalid found).
pub const VERDICT_UNKNOWN: &str = "Errors occurred during analysis, but no anomalies found. ಠ~ಠ";

/// Buffer for the JSON-lines writers: the journal can run to a million lines.
const WRITE_BUFFER: usize = 256 * 1024;

/// An I/O failure on a run-folder path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct ResultsError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ResultsError + 'a {
    move |source| ResultsError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One run's folder. Creating it creates `node-logs/` too (nodes' stderr goes there from spawn).
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    workload: String,
    name: String,
    path: PathBuf,
}

impl RunDir {
    /// Creates `<results_root>/<workload>/<timestamp>/node-logs/` (and the parents) and points
    /// `<results_root>/current` at it. The timestamp is `start` in local time, as Jepsen's store
    /// names runs (without the zone suffix); should two runs start in the same millisecond, the
    /// second gets a `-1` suffix. A failure to set `current` is only logged.
    pub fn create(
        results_root: &Path,
        workload: &str,
        start: SystemTime,
    ) -> Result<RunDir, ResultsError> {
        if workload.is_empty() || workload.contains('/') || workload == "." || workload == ".." {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a valid workload name");
            return Err(ResultsError {
                action: "creating the run folder for",
                path: workload.into(),
                source,
            });
        }
        let parent = results_root.join(workload);
        fs::create_dir_all(&parent).map_err(io_err("creating", &parent))?;
        let stamp = format_timestamp(start);
        let mut attempt = 0u32;
        let (name, path) = loop {
            let name = if attempt == 0 {
                stamp.clone()
            } else {
                format!("{stamp}-{attempt}")
            };
            let path = parent.join(&name);
            match fs::create_dir(&path) {
                Ok(()) => break (name, path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => {
                    attempt += 1
                }
                Err(e) => return Err(io_err("creating", &path)(e)),
            }
        };
        let run = RunDir {
            root: results_root.to_path_buf(),
            workload: workload.to_string(),
            name,
            path,
        };
        let logs = run.node_logs_dir();
        fs::create_dir(&logs).map_err(io_err("creating", &logs))?;
        if let Err(e) = replace_symlink(&run.relative_to_root(), &run.root.join("current")) {
            tracing::warn!(
                "could not point {}/current at the run: {e}",
                run.root.display()
            );
        }
        Ok(run)
    }

    /// The run folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder's name: the start timestamp (plus a suffix on collision).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<run>/<name>`, for extra files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn node_logs_dir(&self) -> PathBuf {
        self.path.join("node-logs")
    }

    /// `node-logs/<id>.log` (every incarnation of the node appends to it).
    pub fn node_log_path(&self, node: &str) -> PathBuf {
        self.node_logs_dir()
            .join(format!("{}.log", node.replace('/', "_")))
    }

    /// `<run>/data/`: a working directory for the nodes (Maelstrom runs them all in one
    /// directory, its tmpdir), so files a node persists stay with the run.
    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }

    /// Creates [`RunDir::data_dir`] and returns it.
    pub fn create_data_dir(&self) -> Result<PathBuf, ResultsError> {
        let dir = self.data_dir();
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        Ok(dir)
    }

    /// Deletes [`RunDir::data_dir`] (unless `--keep-data`); a missing directory is fine.
    pub fn remove_data_dir(&self) -> Result<(), ResultsError> {
        let dir = self.data_dir();
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &dir)(e)),
            _ => Ok(()),
        }
    }

    /// `results.json`, pretty-printed.
    pub fn write_results(&self, results: &Value) -> Result<PathBuf, ResultsError> {
        self.write_json("results.json", results)
    }

    /// Any value as pretty JSON in `<run>/<name>` (e.g. `opts.json`).
    pub fn write_json<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<PathBuf, ResultsError> {
        let path = self.checked_file(name)?;
        self.with_writer(&path, |w| {
            serde_json::to_writer_pretty(&mut *w, value)?;
            w.write_all(b"\n")
        })?;
        Ok(path)
    }

    /// One compact JSON value per line in `<run>/<name>`.
    pub fn write_jsonl<T: Serialize>(
        &self,
        name: &str,
        items: impl IntoIterator<Item = T>,
    ) -> Result<PathBuf, ResultsError> {
        let path = self.checked_file(name)?;
        self.with_writer(&path, |w| {
            for item in items {
                serde_json::to_writer(&mut *w, &item)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
        Ok(path)
    }

    /// `history.jsonl` (one op per line, the [`Op`] fields) and `history.txt` (Jepsen's
    /// tab-separated view: process, type, f, value, error). Returns the `.jsonl` path.
    pub fn write_history(&self, ops: &[Op]) -> Result<PathBuf, ResultsError> {
        let path = self.write_jsonl("history.jsonl", ops)?;
        let txt = self.file("history.txt");
        self.with_writer(&txt, |w| {
            for op in ops {
                let process = match op.process {
                    Process::Client(p) => p.to_string(),
                    Process::Nemesis => "nemesis".to_string(),
                };
                let kind = match op.kind {
                    OpType::Invoke => "invoke",
                    OpType::Ok => "ok",
                    OpType::Fail => "fail",
                    OpType::Info => "info",
                };
                write!(w, "{process}\t{kind}\t{}\t{}", op.f, op.value)?;
                if let Some(err) = &op.error {
                    write!(w, "\t{err}")?;
                }
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
        Ok(path)
    }

    /// `messages.jsonl`: the network journal, one event per line.
    pub fn write_journal(&self, events: &[JournalEvent]) -> Result<PathBuf, ResultsError> {
        self.write_jsonl("messages.jsonl", events)
    }

    /// Points `<root>/latest` and `<root>/<workload>/latest` at this run (relative links,
    /// replaced atomically). Call once the run has ended. `current` is left in place, as
    /// Jepsen's store does.
    pub fn update_latest_links(&self) -> Result<(), ResultsError> {
        let link = self.root.join("latest");
        replace_symlink(&self.relative_to_root(), &link).map_err(io_err("linking", &link))?;
        let link = self.root.join(&self.workload).join("latest");
        replace_symlink(Path::new(&self.name), &link).map_err(io_err("linking", &link))
    }

    fn relative_to_root(&self) -> PathBuf {
        Path::new(&self.workload).join(&self.name)
    }

    /// A plain file name inside the run folder (no separators, no `..`).
    fn checked_file(&self, name: &str) -> Result<PathBuf, ResultsError> {
        let plain = Path::new(name).file_name().is_some_and(|f| f == name) && name != "..";
        if plain {
            Ok(self.file(name))
        } else {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a plain file name");
            Err(ResultsError {
                action: "writing",
                path: name.into(),
                source,
            })
        }
    }

    fn with_writer(
        &self,
        path: &Path,
        f: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
    ) -> Result<(), ResultsError> {
        let file = File::create(path).map_err(io_err("creating", path))?;
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, file);
        f(&mut w)
            .and_then(|()| w.flush())
            .map_err(io_err("writing", path))
    }
}

/// Makes `link` a symlink to `target`, atomically replacing an existing link or file (not a
/// directory: renaming over one fails, which is reported).
fn replace_symlink(target: &Path, link: &Path) -> io::Result<()> {
    let file_name = link.file_name().and_then(|f| f.to_str()).unwrap_or("link");
    let tmp = link.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// `yyyyMMddTHHmmss.mmm` in local time: the zone `TZ` names, else the system's
/// (`/etc/localtime`), else UTC, as the C library's `localtime` finds it. Times before 1970 count
/// as 1970.
pub fn format_timestamp(t: SystemTime) -> String {
    format_in(t, &jiff::tz::TimeZone::system())
}

/// [`format_timestamp`] in the zone `tz`. Milliseconds are truncated, not rounded.
fn format_in(t: SystemTime, tz: &jiff::tz::TimeZone) -> String {
    // Out of jiff's range only past the year 9999.
    let at = jiff::Timestamp::try_from(t.max(UNIX_EPOCH)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    at.to_zoned(tz.clone())
        .strftime("%Y%m%dT%H%M%S.%3f")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Summary

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
const WIDTH: usize = 96;
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
        if !parts.is_empty() {
            self.line("workload", parts.join(", "));
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

// ---------------------------------------------------------------------------------------------
// Progress

/// Live counts for the progress bar, updated by the driver from any thread.
#[derive(Debug, Default)]
pub struct ProgressCounters {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    /// Messages routed by the network.
    pub msgs: AtomicU64,
}

impl ProgressCounters {
    /// Counts one completion (invocations are ignored).
    pub fn record(&self, kind: OpType) {
        let counter = match kind {
            OpType::Ok => &self.ok,
            OpType::Fail => &self.fail,
            OpType::Info => &self.info,
            OpType::Invoke => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_msgs(&self, n: u64) {
        self.msgs.fetch_add(n, Ordering::Relaxed);
    }

    /// Overwrites all four counts, for a driver that keeps its own totals.
    pub fn set(&self, ok: u64, fail: u64, info: u64, msgs: u64) {
        self.ok.store(ok, Ordering::Relaxed);
        self.fail.store(fail, Ordering::Relaxed);
        self.info.store(info, Ordering::Relaxed);
        self.msgs.store(msgs, Ordering::Relaxed);
    }

    /// `12s/60s  ok 120  fail 0  info 1  msgs 4560`.
    fn message(&self, elapsed: Duration, limit: Duration, phase: &str) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{}s/{}s  ok {}  fail {}  info {}  msgs {}{}{phase}",
            elapsed.as_secs(),
            limit.as_secs(),
            load(&self.ok),
            load(&self.fail),
            load(&self.info),
            load(&self.msgs),
            if phase.is_empty() { "" } else { "  " },
        )
    }
}

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// The main-phase progress bar on stderr: elapsed against the time limit, op outcome counters
/// and messages routed, redrawn by a small ticker thread. Hidden (no thread, no output) when
/// disabled or when stderr is not a terminal. Finished (cleared) on [`Progress::finish`] or drop.
pub struct Progress {
    bar: ProgressBar,
    /// Dropping the sender stops the ticker; phase changes travel on it.
    tick_tx: Option<mpsc::Sender<String>>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the bar. `enabled` is the driver's choice (`TestOpts::show_progress`).
    pub fn start(time_limit: Duration, enabled: bool, counters: Arc<ProgressCounters>) -> Progress {
        if !enabled || !io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                tick_tx: None,
                ticker: None,
            };
        }
        let limit_ms = u64::try_from(time_limit.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let bar = ProgressBar::with_draw_target(Some(limit_ms), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        let (tx, rx) = mpsc::channel::<String>();
        let ticker_bar = bar.clone();
        let ticker = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let start = Instant::now();
                let mut phase = String::new();
                loop {
                    let elapsed = start.elapsed();
                    ticker_bar.set_position(
                        u64::try_from(elapsed.as_millis())
                            .unwrap_or(u64::MAX)
                            .min(limit_ms),
                    );
                    ticker_bar.set_message(counters.message(elapsed, time_limit, &phase));
                    match rx.recv_timeout(TICK) {
                        Ok(p) => phase = p,
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .ok();
        if ticker.is_none() {
            // Without a ticker the bar would freeze; better to show nothing.
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        Progress {
            bar,
            tick_tx: Some(tx),
            ticker,
        }
    }

    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// A short note shown after the counters, e.g. `final reads`.
    pub fn set_phase(&self, phase: &str) {
        if let Some(tx) = &self.tick_tx {
            let _ = tx.send(phase.to_string());
        }
    }

    /// Prints a line on stderr without tearing the bar.
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            let _ = writeln!(io::stderr().lock(), "{line}");
        } else {
            self.bar.suspend(|| {
                let _ = writeln!(io::stderr().lock(), "{line}");
            });
        }
    }

    /// Stops the ticker and clears the bar.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tick_tx.take();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::JournalKind;
    use serde_json::json;

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
        floats
            .extend((0..2000).map(|_| f64::from_bits(rng.random_range(0..0x7fef_ffff_ffff_ffff))));
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
            Op {
                index: 0,
                time: 5,
                kind: OpType::Invoke,
                process: Process::Client(0),
                f: "echo".into(),
                value: json!("Please echo 1"),
                error: None,
                exception: None,
                final_: false,
            },
            Op {
                index: 1,
                time: 9,
                kind: OpType::Info,
                process: Process::Nemesis,
                f: "kill".into(),
                value: json!(["n1"]),
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
        assert_eq!(
            txt,
            "0\tinvoke\techo\t\"Please echo 1\"\nnemesis\tinfo\tkill\t[\"n1\"]\t\"net-timeout\"\n"
        );

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
            })
            .collect();
        let path = run.write_journal(&events).unwrap();
        let text = fs::read_to_string(path).unwrap();
        assert_eq!(text.lines().count(), 10_000);
        let last: JournalEvent = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last, events[9_999]);

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
}
