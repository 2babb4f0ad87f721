//! The three I/O threads of a node process: the stdin writer, the stdout reader (which validates
//! each line with [`parse_stdout_line`]) and the stderr reader (which logs each line), and the
//! tails of the last lines they saw, kept for crash reports. See the parent module's docs for
//! what each thread does and why.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use super::line::{parse_stdout_line, BadLine, LineError};
use super::{LineSink, MAX_LINE_BYTES, TAIL_LINES};

/// Buffer size of the stdin writer: large enough to batch many messages per `write` syscall.
const WRITE_BUFFER: usize = 64 * 1024;
/// Buffer size of the stdout and stderr readers.
const READ_BUFFER: usize = 64 * 1024;
/// How much of each line the tails keep (characters): enough to read a message, and a bound on
/// what 32 lines of a hostile node can cost.
const TAIL_LINE_CHARS: usize = 2000;

/// The last `TAIL_LINES` lines of a stream.
#[derive(Debug, Default)]
pub(super) struct Tail {
    lines: VecDeque<String>,
}

impl Tail {
    fn push(&mut self, line: String) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

pub(super) fn tail_lines(tail: &Mutex<Tail>) -> Vec<String> {
    tail.lock()
        .unwrap_or_else(|e| e.into_inner())
        .lines
        .iter()
        .cloned()
        .collect()
}

/// The stdin writer loop: write everything queued, flush when the queue is momentarily empty.
/// After the first write error (the process is gone) lines are counted as dropped. Ends when the
/// queue is closed and drained.
/// `queued_bytes` is decreased by each line's size (plus its `\n`) once it leaves the queue.
pub(super) fn write_stdin(
    stdin: ChildStdin,
    rx: Receiver<String>,
    dropped: &AtomicU64,
    queued_bytes: &AtomicU64,
) {
    let mut out = Some(BufWriter::with_capacity(WRITE_BUFFER, stdin));
    // Lines written into the buffer since the last successful flush: lost if the flush fails.
    let mut unflushed = 0u64;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(line) = next {
            queued_bytes.fetch_sub(line.len() as u64 + 1, Ordering::Relaxed);
            match &mut out {
                Some(w) => {
                    unflushed += 1;
                    if w.write_all(line.as_bytes())
                        .and_then(|()| w.write_all(b"\n"))
                        .is_err()
                    {
                        dropped.fetch_add(unflushed, Ordering::Relaxed);
                        unflushed = 0;
                        // Dropping the writer retries the flush once; a broken pipe fails fast.
                        out = None;
                    }
                }
                None => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            next = rx.try_recv().ok();
        }
        if let Some(w) = &mut out {
            if w.flush().is_err() {
                dropped.fetch_add(unflushed, Ordering::Relaxed);
                out = None;
            }
        }
        unflushed = 0;
    }
}

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// A whole line (its bytes are in the reader's buffer, `\n` included if there was one).
    Line,
    /// A line longer than the limit: its first `limit` bytes are in the buffer; the rest is
    /// skipped, without being stored, by the following calls.
    TooLong,
    /// The end of the stream.
    End,
}

/// Splits a stream into lines of at most `limit` bytes, holding no more than that in memory
/// whatever the node writes: a line that never ends, or one of a gigabyte, costs `limit` bytes,
/// not its length. A final line without `\n` still counts, as with Java's `readLine`.
pub(crate) struct LineReader<R> {
    reader: R,
    buf: Vec<u8>,
    limit: usize,
    /// Inside an over-long line: discard input up to its `\n`.
    skipping: bool,
}

impl<R: BufRead> LineReader<R> {
    pub(super) fn new(reader: R, limit: usize) -> Self {
        LineReader {
            reader,
            buf: Vec::with_capacity(1024),
            limit,
            skipping: false,
        }
    }

    /// The bytes of the line [`LineReader::next_line`] last returned.
    pub(super) fn line(&self) -> &[u8] {
        &self.buf
    }

    /// Reads the next line; an over-long one is reported as soon as it passes the limit (so a
    /// line that never ends is reported too), and its remainder is skipped by later calls.
    pub(super) fn next_line(&mut self) -> io::Result<Read> {
        self.buf.clear();
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                self.skipping = false;
                return Ok(if self.buf.is_empty() {
                    Read::End
                } else {
                    Read::Line
                });
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let take = newline.map_or(chunk.len(), |i| i + 1);
            if self.skipping {
                self.reader.consume(take);
                self.skipping = newline.is_none();
                continue;
            }
            // The limit counts the line's bytes, not its `\n`.
            let room = self.limit - self.buf.len();
            if newline.unwrap_or(take) > room {
                // Over the limit: keep the first `limit` bytes for the report, skip the rest.
                self.buf.extend_from_slice(&chunk[..room]);
                self.reader.consume(take);
                self.skipping = newline.is_none();
                return Ok(Read::TooLong);
            }
            self.buf.extend_from_slice(&chunk[..take]);
            self.reader.consume(take);
            if newline.is_some() {
                return Ok(Read::Line);
            }
        }
    }
}

/// The text of a line read by [`LineReader`], without `\n` or `\r\n`. Invalid UTF-8 is replaced
/// with U+FFFD, as Java's reader does.
fn decode_line(buf: &[u8]) -> String {
    let line = buf.strip_suffix(b"\n").unwrap_or(buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(line).into_owned(),
    }
}

/// The start of a line, for tails and reports: at most [`TAIL_LINE_CHARS`] characters, so that
/// 32 kept lines cost kilobytes however long the node's lines are.
fn excerpt(line: &str) -> String {
    match line.char_indices().nth(TAIL_LINE_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes)", &line[..cut], line.len()),
        None => line.to_string(),
    }
}

/// `killed` is set once the runner has SIGKILLed the process: an unterminated last line is then
/// the one the signal cut short, and is dropped rather than reported as malformed.
pub(super) fn read_stdout(
    stdout: ChildStdout,
    id: &Arc<str>,
    tail: &Mutex<Tail>,
    killed: &AtomicBool,
    mut sink: impl LineSink,
) {
    let mut reader = LineReader::new(
        BufReader::with_capacity(READ_BUFFER, stdout),
        MAX_LINE_BYTES,
    );
    loop {
        let read = match reader.next_line() {
            Ok(Read::End) => break,
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(node = %id, "reading stdout failed: {e}");
                break;
            }
        };
        if read == Read::Line && !reader.line().ends_with(b"\n") && killed.load(Ordering::SeqCst) {
            tracing::debug!(node = %id, "dropped the last stdout line, cut short by SIGKILL");
            break;
        }
        let line = decode_line(reader.line());
        let result = if read == Read::TooLong {
            let line = excerpt(&line);
            tail.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{line} [longer than {MAX_LINE_BYTES} bytes: cut]"));
            Err(BadLine {
                line,
                reason: LineError::TooLong {
                    limit: MAX_LINE_BYTES,
                },
            })
        } else {
            match parse_stdout_line(&line) {
                Ok(parsed) => {
                    tail.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(excerpt(&line));
                    Ok(parsed)
                }
                Err(reason) => {
                    tail.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(excerpt(&line));
                    Err(BadLine { line, reason })
                }
            }
        };
        sink.accept(id, result);
    }
}

pub(super) fn read_stderr(
    stderr: ChildStderr,
    id: &str,
    mut log: File,
    echo: bool,
    tail: &Mutex<Tail>,
) {
    let mut reader = LineReader::new(
        BufReader::with_capacity(READ_BUFFER, stderr),
        MAX_LINE_BYTES,
    );
    let mut log_ok = true;
    loop {
        let read = match reader.next_line() {
            Ok(Read::End) => break,
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(node = %id, "reading stderr failed: {e}");
                break;
            }
        };
        let mut line = decode_line(reader.line());
        if read == Read::TooLong {
            // Logged up to the limit, with a note; the rest of the line is skipped.
            line.push_str(&format!(" [longer than {MAX_LINE_BYTES} bytes: cut]"));
        }
        if log_ok {
            // One write per line (File is unbuffered): the log is current even if we crash.
            let mut record = Vec::with_capacity(line.len() + 1);
            record.extend_from_slice(line.as_bytes());
            record.push(b'\n');
            if let Err(e) = log.write_all(&record) {
                tracing::warn!(node = %id, "writing the node log failed, no longer logging: {e}");
                log_ok = false;
            }
        }
        if echo {
            let _ = writeln!(io::stderr().lock(), "[{id} stderr] {line}");
        }
        tail.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(excerpt(&line));
    }
}
