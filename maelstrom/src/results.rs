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
mod tests;
