//! The run folder and the files written into it: `results.json`, the history, the journal,
//! node logs, and the `current`/`latest` links.

use crate::history::{JournalEvent, JournalKind, Op, OpType, Process};
use serde::Serialize;
use serde_json::Value;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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

    /// `history.jsonl` (one op per line, the [`Op`] fields) and `history.txt` (Jepsen's text
    /// form, see [`jepsen_line`]). Returns the `.jsonl` path.
    pub fn write_history(&self, ops: &[Op]) -> Result<PathBuf, ResultsError> {
        let path = self.write_jsonl("history.jsonl", ops)?;
        let txt = self.file("history.txt");
        self.with_writer(&txt, |w| {
            let mut line = String::new();
            for op in ops {
                line.clear();
                jepsen_line(op, &mut line);
                w.write_all(line.as_bytes())?;
            }
            Ok(())
        })?;
        Ok(path)
    }

    /// `messages.jsonl`: the network journal, one event per line; a `send` event's body, when it
    /// was journaled, is appended as `"body":{…}` (its JSON text, verbatim).
    pub fn write_journal(&self, events: &[JournalEvent]) -> Result<PathBuf, ResultsError> {
        let path = self.checked_file("messages.jsonl")?;
        self.with_writer(&path, |w| {
            let mut buf = Vec::with_capacity(512);
            for e in events {
                buf.clear();
                serde_json::to_writer(&mut buf, e)?;
                if let Some(body) = &e.body {
                    // `{…}` → `{…,"body":<body>}`; the event always serialises as an object.
                    buf.pop();
                    buf.extend_from_slice(b",\"body\":");
                    buf.extend_from_slice(body.as_bytes());
                    buf.push(b'}');
                }
                buf.push(b'\n');
                w.write_all(&buf)?;
            }
            Ok(())
        })?;
        Ok(path)
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
pub(super) fn format_in(t: SystemTime, tz: &jiff::tz::TimeZone) -> String {
    // Out of jiff's range only past the year 9999.
    let at = jiff::Timestamp::try_from(t.max(UNIX_EPOCH)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    at.to_zoned(tz.clone())
        .strftime("%Y%m%dT%H%M%S.%3f")
        .to_string()
}

/// One line of Jepsen's `history.txt` (its `util/prn-op`): process, type, f and value printed as
/// Clojure data, tab-separated, then the error (printed, not quoted) if any, e.g.
/// `3\t:ok\t:broadcast\t7` or `:nemesis\t:info\t:start-partition\t:majority`. Jepsen prints no
/// time here (`history.jsonl` has it). Values are JSON printed as EDN: `nil`, `[1 2]`,
/// `{"n1" ["n2"]}`; a nemesis op's string values are printed as keywords (`:majority`), as Jepsen's
/// nemesis writes them, a client op's as strings.
pub fn jepsen_line(op: &Op, out: &mut String) {
    use std::fmt::Write as _;
    match op.process {
        Process::Client(p) => {
            let _ = write!(out, "{p}");
        }
        Process::Nemesis => out.push_str(":nemesis"),
    }
    out.push_str(match op.kind {
        OpType::Invoke => "\t:invoke\t:",
        OpType::Ok => "\t:ok\t:",
        OpType::Fail => "\t:fail\t:",
        OpType::Info => "\t:info\t:",
    });
    out.push_str(&op.f);
    out.push('\t');
    edn(
        &op.value.to_json(),
        op.process == Process::Nemesis,
        true,
        out,
    );
    if let Some(err) = &op.error {
        out.push('\t');
        // Maelstrom's error values are keywords (`:net-timeout`) or `[:code "text"]`.
        match err {
            Value::String(s) => {
                out.push(':');
                out.push_str(s);
            }
            Value::Array(a) if a.first().is_some_and(Value::is_string) => {
                out.push_str("[:");
                out.push_str(a[0].as_str().unwrap_or_default());
                for v in &a[1..] {
                    out.push(' ');
                    edn(v, false, false, out);
                }
                out.push(']');
            }
            v => edn(v, false, false, out),
        }
    }
    out.push('\n');
}

/// A JSON value as Clojure prints it: `readably` quotes strings (`pr`), otherwise they are printed
/// bare (`print`); `keywords` prints strings as keywords.
fn edn(v: &Value, keywords: bool, readably: bool, out: &mut String) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) if keywords && !s.is_empty() && !s.contains(char::is_whitespace) => {
            out.push(':');
            out.push_str(s);
        }
        Value::String(s) if readably => {
            // JSON's string escapes are Clojure's for everything a history holds.
            out.push_str(&Value::String(s.clone()).to_string());
        }
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                edn(x, keywords, readably, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                edn(&Value::String(k.clone()), false, readably, out);
                out.push(' ');
                edn(x, keywords, readably, out);
            }
            out.push('}');
        }
    }
}

/// One line of `messages.jsonl` as read back: the event's fields plus the optional raw body.
#[derive(serde::Deserialize)]
struct JournalLine {
    kind: JournalKind,
    time: u64,
    id: u64,
    src: String,
    dest: String,
    body_type: String,
    #[serde(default)]
    body: Option<Box<serde_json::value::RawValue>>,
}

/// Parses one `messages.jsonl` line (as [`RunDir::write_journal`] writes it).
pub fn parse_journal_line(line: &str) -> Result<JournalEvent, serde_json::Error> {
    let l: JournalLine = serde_json::from_str(line)?;
    Ok(JournalEvent {
        kind: l.kind,
        time: l.time,
        id: l.id,
        src: l.src,
        dest: l.dest,
        body_type: l.body_type,
        body: l.body.map(|b| std::sync::Arc::from(b.get())),
    })
}
