//! The three I/O threads of a node process: the stdin writer, the stdout reader (which validates
//! each line with [`parse_stdout_line`]) and the stderr reader (which logs each line), and the
//! tails of the last lines they saw, kept for crash reports. See the parent module's docs for
//! what each thread does and why.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use super::line::{parse_stdout_line, BadLine};
use super::{LineSink, TAIL_LINES};

/// Buffer size of the stdin writer: large enough to batch many messages per `write` syscall.
const WRITE_BUFFER: usize = 64 * 1024;
/// Buffer size of the stdout and stderr readers.
const READ_BUFFER: usize = 64 * 1024;

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
pub(super) fn write_stdin(stdin: ChildStdin, rx: Receiver<String>, dropped: &AtomicU64) {
    let mut out = Some(BufWriter::with_capacity(WRITE_BUFFER, stdin));
    // Lines written into the buffer since the last successful flush: lost if the flush fails.
    let mut unflushed = 0u64;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(line) = next {
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

/// Reads one `\n`-terminated line into `buf`; `Ok(false)` at end of stream. A final line without
/// `\n` still counts, as with Java's `readLine`.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    Ok(r.read_until(b'\n', buf)? > 0)
}

/// The text of a line read by [`read_line`], without `\n` or `\r\n`. Invalid UTF-8 is replaced
/// with U+FFFD, as Java's reader does.
fn decode_line(buf: &[u8]) -> String {
    let line = buf.strip_suffix(b"\n").unwrap_or(buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(line).into_owned(),
    }
}

pub(super) fn read_stdout(
    stdout: ChildStdout,
    id: &Arc<str>,
    tail: &Mutex<Tail>,
    mut sink: impl LineSink,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER, stdout);
    let mut buf = Vec::with_capacity(1024);
    loop {
        match read_line(&mut reader, &mut buf) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(node = %id, "reading stdout failed: {e}");
                break;
            }
        }
        let line = decode_line(&buf);
        let result = match parse_stdout_line(&line) {
            Ok(parsed) => {
                tail.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                Ok(parsed)
            }
            Err(reason) => {
                tail.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                Err(BadLine { line, reason })
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
    let mut reader = BufReader::with_capacity(READ_BUFFER, stderr);
    let mut buf = Vec::with_capacity(1024);
    let mut log_ok = true;
    loop {
        match read_line(&mut reader, &mut buf) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(node = %id, "reading stderr failed: {e}");
                break;
            }
        }
        let line = decode_line(&buf);
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
        tail.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}
