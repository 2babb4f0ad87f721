//! The run folder and the files written into it: `results.json`, the history, the journal,
//! node logs, and the `current`/`latest` links.

use crate::history::{JournalEvent, Op, OpType, Process};
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
pub(super) fn format_in(t: SystemTime, tz: &jiff::tz::TimeZone) -> String {
    // Out of jiff's range only past the year 9999.
    let at = jiff::Timestamp::try_from(t.max(UNIX_EPOCH)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    at.to_zoned(tz.clone())
        .strftime("%Y%m%dT%H%M%S.%3f")
        .to_string()
}
