//! Real node processes over pipes (spec §2, §10): spawn, the three I/O threads, strict stdout
//! parsing, stderr logs, kill/pause/resume and crash detection.
//!
//! One [`NodeProcess`] is one incarnation of a node. It owns the child and three threads, named
//! like Maelstrom's (`"<id> stdin"`, `"<id> stdout"`, `"<id> stderr"`):
//! - **stdin writer**: fed by an unbounded channel through cheap-clone [`NodeInput`] handles, so
//!   the network never blocks on a slow or paused node. It writes each line plus `\n` and flushes
//!   only when the channel is momentarily empty, batching writes under load. Lines that cannot be
//!   written (the process is gone) are counted and dropped, never a panic or an endless block.
//! - **stdout reader**: reads lines, checks each against Maelstrom's closed envelope schema with
//!   [`parse_stdout_line`], and hands `(node id, Ok(ParsedLine) | Err(MalformedLine))` to the
//!   caller's [`LineSink`], in output order. What to do with a malformed line (Maelstrom stops
//!   reading that node for the rest of the test) is the driver's decision: this thread keeps
//!   reading so the node never blocks on a full pipe.
//! - **stderr reader**: appends every line to `node-logs/<id>.log` (flushed per line) and, with
//!   `--log-stderr`, echoes it as `[<id> stderr] line` on the runner's stderr.
//!
//! The last [`TAIL_LINES`] lines of stdout and stderr are kept for crash reports; a report waits
//! (briefly) for both readers to reach the end of the streams, so it shows the node's last words.
//!
//! The child runs in its own process group and every signal goes to the group, so a node started
//! through a wrapper (`#!/bin/sh` script, `cargo run`) is killed, paused and resumed as a whole.
//! A restart after `kill` is simply a new `NodeProcess` from the same [`NodeCommand`]; the log file
//! is opened for appending, so one file covers every incarnation, separated by a marker line.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How many recent stdout and stderr lines are kept for crash reports (Maelstrom keeps 32).
pub const TAIL_LINES: usize = 32;

/// How long `stop`/`kill` wait for the process to die after SIGKILL (Maelstrom waits 5 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`NodeProcess::crash_report`] waits for the stdout and stderr readers to reach the
/// end of the streams of an exited process, so the report shows its last words. Bounded because
/// a child the node left behind may hold the pipes open.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The marker written to a node's log when a new incarnation starts appending to it.
pub const RESTART_MARKER: &str = "--- restarted ---";

/// Buffer size of the stdin writer: large enough to batch many messages per `write` syscall.
const WRITE_BUFFER: usize = 64 * 1024;
/// Buffer size of the stdout and stderr readers.
const READ_BUFFER: usize = 64 * 1024;

/// Everything needed to start (and restart) one node.
#[derive(Debug, Clone)]
pub struct NodeCommand {
    /// The node id, e.g. `n0`; names the threads and prefixes `--log-stderr` lines.
    pub id: String,
    /// The node binary, already canonicalised (spec §2: Maelstrom spawns the canonical path).
    pub bin: PathBuf,
    /// Extra arguments (`maelstrom test ... -- args`).
    pub args: Vec<String>,
    /// The child's working directory: a per-run directory chosen by the driver.
    pub work_dir: PathBuf,
    /// Variables added to the inherited environment. Maelstrom adds none (spec §2); leave it
    /// empty for fidelity, or use it to tell a node where to persist data.
    pub env: Vec<(String, String)>,
    /// `node-logs/<id>.log`, opened for appending (its directory is created if missing).
    pub log_path: PathBuf,
    /// Echo stderr lines to the runner's stderr as `[<id> stderr] line`.
    pub log_stderr: bool,
}

/// A well-formed stdout line: a message the network can route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub src: String,
    pub dest: String,
    /// The body object exactly as the node wrote it (JSON text), to be forwarded unchanged.
    pub raw_body: String,
    /// The body's top-level `type` when it is a string; used for the journal and per-type stats.
    pub body_type: Option<String>,
    /// The body's top-level `in_reply_to` when it is a non-negative integer literal. `5.0` gives
    /// `None`, which matches Maelstrom's clients: they compare with Clojure `=`, so `5.0` never
    /// answers request 5 (spec §1).
    pub in_reply_to: Option<u64>,
}

/// Why a stdout line is not a valid Maelstrom message (spec §1, process.clj `parse-msg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// An empty (or all-whitespace) line: Maelstrom parses it to nothing, so src and dest are
    /// missing.
    Empty,
    /// Not well-formed JSON (the parser's message), including trailing text after the object.
    NotJson(String),
    /// Valid JSON, but not an object; the kind found (`array`, `string`, ...).
    NotAnObject(&'static str),
    /// A top-level key other than `id`, `src`, `dest`, `body`: the envelope is a closed schema.
    UnknownKey(String),
    /// `src`, `dest` or `body` is absent.
    MissingKey(&'static str),
    /// `src` or `dest` is not a string; the kind found.
    NotAString {
        key: &'static str,
        found: &'static str,
    },
    /// `body` is not an object; the kind found.
    BodyNotObject(&'static str),
    /// `id` is present but not an integer; its JSON text (shortened).
    IdNotInteger(String),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Empty => f.write_str("empty line (a message needs src, dest and body)"),
            Malformed::NotJson(e) => write!(f, "not well-formed JSON: {e}"),
            Malformed::NotAnObject(kind) => write!(f, "a JSON {kind}, not an object"),
            Malformed::UnknownKey(k) => write!(
                f,
                "unexpected top-level key {k:?} (the envelope allows only id, src, dest and body)"
            ),
            Malformed::MissingKey(k) => write!(f, "missing {k:?}"),
            Malformed::NotAString { key, found } => {
                write!(f, "{key:?} must be a string, not {found}")
            }
            Malformed::BodyNotObject(kind) => write!(f, "\"body\" must be an object, not {kind}"),
            Malformed::IdNotInteger(text) => write!(f, "\"id\" must be an integer, not {text}"),
        }
    }
}

/// A stdout line that failed validation, kept whole for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedLine {
    pub line: String,
    pub reason: Malformed,
}

impl fmt::Display for MalformedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed message on STDOUT ({}): {}",
            self.reason,
            shorten(&self.line, 200)
        )
    }
}

/// What the stdout reader hands on for each line.
pub type LineResult = Result<ParsedLine, MalformedLine>;

/// Receives every stdout line of a node, in order, on that node's stdout thread. Implemented for
/// closures `FnMut(&Arc<str>, LineResult)` and for `mpsc::Sender<(Arc<str>, LineResult)>` (the
/// usual choice: one channel shared by all nodes, drained by the network thread).
pub trait LineSink: Send + 'static {
    fn accept(&mut self, node: &Arc<str>, line: LineResult);
}

impl<F> LineSink for F
where
    F: FnMut(&Arc<str>, LineResult) + Send + 'static,
{
    fn accept(&mut self, node: &Arc<str>, line: LineResult) {
        self(node, line)
    }
}

impl LineSink for Sender<(Arc<str>, LineResult)> {
    fn accept(&mut self, node: &Arc<str>, line: LineResult) {
        // A closed receiver means the run is over; the line has nowhere to go.
        let _ = self.send((Arc::clone(node), line));
    }
}

/// Errors from spawning and controlling a node process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("node {id}: cannot open its log {path}: {source}")]
    Log {
        id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("node {id}: cannot start {bin}: {source}")]
    Spawn {
        id: String,
        bin: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("node {id}: cannot start its {which} thread: {source}")]
    Thread {
        id: String,
        which: &'static str,
        #[source]
        source: io::Error,
    },
    /// The process had already exited on its own: for the driver, a crash (spec §2).
    #[error("node {id} had already exited ({})", describe_status(*status))]
    Exited { id: String, status: ExitStatus },
    #[error("node {id}: sending {signal} failed: {source}")]
    Signal {
        id: String,
        signal: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("node {id} (pid {pid}) was still running {timeout:?} after SIGKILL")]
    StopTimeout {
        id: String,
        pid: u32,
        timeout: Duration,
    },
    #[error("node {id}: waiting for the process failed: {source}")]
    Wait {
        id: String,
        #[source]
        source: io::Error,
    },
}

/// The result of [`NodeProcess::stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    pub status: ExitStatus,
    /// The process had exited before teardown without the runner killing it. Maelstrom treats
    /// that as a crash whatever the exit code, 0 included (spec §2).
    pub exited_on_its_own: bool,
}

/// A cheap-clone handle for writing lines to a node's stdin. Sending never blocks; lines for a
/// dead or stopped incarnation are counted in [`NodeInput::dropped`] and discarded.
#[derive(Debug, Clone)]
pub struct NodeInput {
    shared: Arc<InputShared>,
}

#[derive(Debug)]
struct InputShared {
    /// The only sender of the writer's channel. Taking it out (at kill or stop) ends the writer
    /// once it has drained the queue, however many handles are still around, and makes every
    /// later `send` count as dropped: the accounting stays exact without racing the writer.
    tx: Mutex<Option<Sender<String>>>,
    dropped: AtomicU64,
}

impl NodeInput {
    /// Queues one line (without its `\n`; the caller guarantees it contains none, as compact
    /// JSON does). Returns false when this incarnation has been stopped: the line is dropped.
    pub fn send(&self, line: String) -> bool {
        let tx = self.shared.tx.lock().unwrap_or_else(|e| e.into_inner());
        let queued = tx.as_ref().is_some_and(|tx| tx.send(line).is_ok());
        if !queued {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Lines that never reached the process (it had exited, or this incarnation was stopped).
    /// Lines buffered when a write failed count too, though part of them may have arrived.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Closes the queue: the writer finishes what is queued (or counts it as dropped) and ends.
    fn close(&self) {
        self.shared
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// The last `TAIL_LINES` lines of a stream.
#[derive(Debug, Default)]
struct Tail {
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

#[derive(Debug)]
struct ChildState {
    child: Child,
    /// Cached once the child has been reaped; after that its pid may be reused, so no signal is
    /// sent any more.
    status: Option<ExitStatus>,
    /// Set when the runner sent SIGKILL, so an exit is not mistaken for a crash.
    killed: bool,
}

impl ChildState {
    fn poll(&mut self) -> Result<Option<ExitStatus>, io::Error> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Polls until the child exits or `timeout` passes.
    fn wait_for(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, io::Error> {
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_millis(1);
        loop {
            if let Some(status) = self.poll()? {
                return Ok(Some(status));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }
}

/// One running incarnation of a node. All methods take `&self` (the child sits behind a mutex
/// held only briefly, or for at most [`STOP_TIMEOUT`] while waiting for a SIGKILL to land), so
/// it can be shared in an `Arc` between the driver and the nemesis. Dropping it kills the
/// process if it is still running.
#[derive(Debug)]
pub struct NodeProcess {
    id: Arc<str>,
    pid: u32,
    child: Mutex<ChildState>,
    input: NodeInput,
    stdout_tail: Arc<Mutex<Tail>>,
    stderr_tail: Arc<Mutex<Tail>>,
    /// Every I/O thread holds a sender; `recv` reports `Disconnected` once all have finished.
    io_done: Mutex<Receiver<()>>,
    /// The same for the stdout and stderr readers alone: they finish at the end of the streams.
    readers_done: Mutex<Receiver<()>>,
    log_path: PathBuf,
}

impl NodeProcess {
    /// Starts the node and its three I/O threads. `sink` receives every stdout line.
    pub fn spawn(cmd: &NodeCommand, sink: impl LineSink) -> Result<NodeProcess, ProcessError> {
        let id: Arc<str> = Arc::from(cmd.id.as_str());
        let log_err = |source| ProcessError::Log {
            id: cmd.id.clone(),
            path: cmd.log_path.clone(),
            source,
        };
        if let Some(dir) = cmd.log_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(log_err)?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cmd.log_path)
            .map_err(log_err)?;
        let restarted = log.metadata().map(|m| m.len() > 0).unwrap_or(false);

        let mut child = Command::new(&cmd.bin)
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&cmd.work_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so signals reach wrapper scripts' children too.
            .process_group(0)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                id: cmd.id.clone(),
                bin: cmd.bin.clone(),
                source,
            })?;
        let pid = child.id();
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let (readers_tx, readers_rx) = mpsc::channel();
        let node = NodeProcess {
            id: Arc::clone(&id),
            pid,
            child: Mutex::new(ChildState {
                child,
                status: None,
                killed: false,
            }),
            input: NodeInput {
                shared: Arc::new(InputShared {
                    tx: Mutex::new(Some(tx)),
                    dropped: AtomicU64::new(0),
                }),
            },
            stdout_tail: Arc::default(),
            stderr_tail: Arc::default(),
            io_done: Mutex::new(done_rx),
            readers_done: Mutex::new(readers_rx),
            log_path: cmd.log_path.clone(),
        };
        // From here on, an early return drops `node`, which kills the child.
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            let source = io::Error::other("a standard stream was not piped");
            return Err(ProcessError::Spawn {
                id: cmd.id.clone(),
                bin: cmd.bin.clone(),
                source,
            });
        };
        if restarted {
            // Best effort: a log write failure must not stop the node from starting.
            let _ = writeln!(log, "{RESTART_MARKER} (pid {pid})");
        }

        let thread_err = |which| {
            move |source| ProcessError::Thread {
                id: cmd.id.clone(),
                which,
                source,
            }
        };
        let (shared, done) = (Arc::clone(&node.input.shared), done_tx.clone());
        thread::Builder::new()
            .name(format!("{id} stdin"))
            .spawn(move || {
                write_stdin(stdin, rx, &shared.dropped);
                drop(done);
            })
            .map_err(thread_err("stdin"))?;
        let (tail, done, reader_done, node_id) = (
            Arc::clone(&node.stdout_tail),
            done_tx.clone(),
            readers_tx.clone(),
            Arc::clone(&id),
        );
        thread::Builder::new()
            .name(format!("{id} stdout"))
            .spawn(move || {
                read_stdout(stdout, &node_id, &tail, sink);
                drop((done, reader_done));
            })
            .map_err(thread_err("stdout"))?;
        let (tail, log_stderr) = (Arc::clone(&node.stderr_tail), cmd.log_stderr);
        thread::Builder::new()
            .name(format!("{id} stderr"))
            .spawn(move || {
                read_stderr(stderr, &id, log, log_stderr, &tail);
                drop((done_tx, readers_tx));
            })
            .map_err(thread_err("stderr"))?;
        Ok(node)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// A handle for writing to this incarnation's stdin (give one to the network).
    pub fn input(&self) -> NodeInput {
        self.input.clone()
    }

    /// Shorthand for `input().send(line)`.
    pub fn send_line(&self, line: String) -> bool {
        self.input.send(line)
    }

    /// Lines that could not be written to this incarnation.
    pub fn dropped_writes(&self) -> u64 {
        self.input.dropped()
    }

    /// The exit status if the process has exited (non-blocking). Any exit the runner did not
    /// cause, exit code 0 included, is a crash (spec §2); see [`NodeProcess::was_killed`].
    pub fn try_exit_status(&self) -> Option<ExitStatus> {
        let mut st = self.lock_child();
        match st.poll() {
            Ok(status) => status,
            Err(e) => {
                tracing::warn!(node = %self.id, "try_wait failed: {e}");
                None
            }
        }
    }

    /// Whether the runner killed this incarnation (`kill` or `stop`).
    pub fn was_killed(&self) -> bool {
        self.lock_child().killed
    }

    /// The kill fault: SIGKILL to the process group, then wait (up to [`STOP_TIMEOUT`]) for the
    /// exit. Killing an incarnation the runner already killed returns its status again; one that
    /// had exited on its own gives [`ProcessError::Exited`], which the driver reports as a crash.
    pub fn kill(&self) -> Result<ExitStatus, ProcessError> {
        let outcome = self.kill_locked(&mut self.lock_child())?;
        match outcome {
            Kill::Killed(status) => {
                self.input.close();
                Ok(status)
            }
            Kill::ExitedOnItsOwn(status) => Err(ProcessError::Exited {
                id: self.id.to_string(),
                status,
            }),
        }
    }

    /// The pause fault: SIGSTOP to the process group. Memory and pipes are kept; the stdin
    /// writer keeps queueing. A no-op on an incarnation the runner killed; an incarnation that
    /// exited on its own gives [`ProcessError::Exited`].
    pub fn pause(&self) -> Result<(), ProcessError> {
        self.signal_running(libc::SIGSTOP, "SIGSTOP")
    }

    /// Ends a pause: SIGCONT to the process group. Resuming a running node is harmless; the
    /// exited cases are as for [`NodeProcess::pause`].
    pub fn resume(&self) -> Result<(), ProcessError> {
        self.signal_running(libc::SIGCONT, "SIGCONT")
    }

    /// Teardown (spec §2): SIGKILL if still running (no SIGTERM, no stdin EOF first), wait up to
    /// [`STOP_TIMEOUT`] for the exit, stop the stdin writer, and give the readers the rest of that
    /// time to drain. `exited_on_its_own` tells the driver whether this was a crash.
    pub fn stop(&self) -> Result<Stopped, ProcessError> {
        let start = Instant::now();
        let outcome = self.kill_locked(&mut self.lock_child())?;
        let stopped = match outcome {
            Kill::Killed(status) => Stopped {
                status,
                exited_on_its_own: false,
            },
            Kill::ExitedOnItsOwn(status) => Stopped {
                status,
                exited_on_its_own: true,
            },
        };
        self.input.close();
        // The writer ends once its queue is drained; the readers at EOF, once every process
        // holding the pipes is gone. Nobody sends on `io_done`: it only disconnects.
        let done = self.io_done.lock().unwrap_or_else(|e| e.into_inner());
        let remaining = STOP_TIMEOUT.saturating_sub(start.elapsed());
        if let Err(mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(remaining) {
            tracing::debug!(node = %self.id, "I/O threads still running after stop");
        }
        Ok(stopped)
    }

    /// The last [`TAIL_LINES`] stdout lines, oldest first.
    pub fn last_stdout(&self) -> Vec<String> {
        tail_lines(&self.stdout_tail)
    }

    /// The last [`TAIL_LINES`] stderr lines, oldest first.
    pub fn last_stderr(&self) -> Vec<String> {
        tail_lines(&self.stderr_tail)
    }

    /// Maelstrom's `:node-crashed` message: the exit, the last stdout and stderr lines, and
    /// where the full log is. Call it once the process has exited: it first gives the readers
    /// up to [`DRAIN_TIMEOUT`] to consume what the process wrote before exiting, so the report
    /// ends with its last words rather than with whatever the threads had read so far.
    pub fn crash_report(&self, status: ExitStatus) -> String {
        self.wait_for_readers(DRAIN_TIMEOUT);
        format!(
            "{}. Before crashing, it wrote to STDOUT:\n\n{}\n\n\
             And to STDERR:\n\n{}\n\nFull STDERR logs are available in {}",
            self.crash_summary(status),
            self.last_stdout().join("\n"),
            self.last_stderr().join("\n"),
            self.log_path.display()
        )
    }

    /// The first sentence of [`NodeProcess::crash_report`]: `Node n1 crashed with exit code 0`.
    pub fn crash_summary(&self, status: ExitStatus) -> String {
        format!("Node {} crashed with {}", self.id, describe_status(status))
    }

    /// Waits (up to `timeout`) until the stdout and stderr readers have reached the end of their
    /// streams; true if they have.
    pub fn wait_for_readers(&self, timeout: Duration) -> bool {
        let done = self.readers_done.lock().unwrap_or_else(|e| e.into_inner());
        // Nobody sends: the channel only disconnects when both readers have finished.
        !matches!(
            done.recv_timeout(timeout),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    }

    fn lock_child(&self) -> MutexGuard<'_, ChildState> {
        // A panic elsewhere while holding the lock leaves the state usable; never propagate it.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_err(&self, source: io::Error) -> ProcessError {
        ProcessError::Wait {
            id: self.id.to_string(),
            source,
        }
    }

    /// SIGKILL and bounded wait, unless the process has already exited.
    fn kill_locked(&self, st: &mut ChildState) -> Result<Kill, ProcessError> {
        if let Some(status) = st.poll().map_err(|source| self.wait_err(source))? {
            return Ok(if st.killed {
                Kill::Killed(status)
            } else {
                Kill::ExitedOnItsOwn(status)
            });
        }
        signal_group(self.pid, libc::SIGKILL).map_err(|source| ProcessError::Signal {
            id: self.id.to_string(),
            signal: "SIGKILL",
            source,
        })?;
        st.killed = true;
        match st
            .wait_for(STOP_TIMEOUT)
            .map_err(|source| self.wait_err(source))?
        {
            Some(status) => Ok(Kill::Killed(status)),
            None => Err(ProcessError::StopTimeout {
                id: self.id.to_string(),
                pid: self.pid,
                timeout: STOP_TIMEOUT,
            }),
        }
    }

    fn signal_running(&self, sig: libc::c_int, name: &'static str) -> Result<(), ProcessError> {
        let mut st = self.lock_child();
        if let Some(status) = st.poll().map_err(|source| self.wait_err(source))? {
            // Pausing or resuming a node the runner killed is a no-op (the nemesis may target
            // every node); one that died on its own has crashed, which the caller must hear.
            return if st.killed {
                Ok(())
            } else {
                Err(ProcessError::Exited {
                    id: self.id.to_string(),
                    status,
                })
            };
        }
        // The child is not reaped while we hold the lock, so its pid cannot have been reused.
        signal_group(self.pid, sig).map_err(|source| ProcessError::Signal {
            id: self.id.to_string(),
            signal: name,
            source,
        })
    }
}

/// How [`NodeProcess::kill_locked`] found the process.
enum Kill {
    /// The runner killed it (now or earlier).
    Killed(ExitStatus),
    /// It had exited without the runner's help: a crash.
    ExitedOnItsOwn(ExitStatus),
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.input.close();
        let st = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if matches!(st.poll(), Ok(None)) {
            if let Err(e) = signal_group(self.pid, libc::SIGKILL) {
                tracing::warn!(node = %self.id, "SIGKILL on drop failed: {e}");
            }
            st.killed = true;
            // Reap it so no zombie is left behind.
            let _ = st.wait_for(STOP_TIMEOUT);
        }
    }
}

/// Sends `sig` to the node's process group, or to the process alone if it left the group.
fn signal_group(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our unreaped child, so it
    // (and the group it leads) cannot have been recycled.
    if unsafe { libc::kill(-pid, sig) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ESRCH) {
        return Err(err);
    }
    // SAFETY: as above.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `exit code 1` or `signal 9 (SIGKILL)`.
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGINT => " (SIGINT)",
            libc::SIGPIPE => " (SIGPIPE)",
            libc::SIGBUS => " (SIGBUS)",
            _ => "",
        };
        format!("signal {sig}{name}")
    } else {
        status.to_string()
    }
}

fn tail_lines(tail: &Mutex<Tail>) -> Vec<String> {
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
fn write_stdin(stdin: ChildStdin, rx: Receiver<String>, dropped: &AtomicU64) {
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

fn read_stdout(stdout: ChildStdout, id: &Arc<str>, tail: &Mutex<Tail>, mut sink: impl LineSink) {
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
                Err(MalformedLine { line, reason })
            }
        };
        sink.accept(id, result);
    }
}

fn read_stderr(stderr: ChildStderr, id: &str, mut log: File, echo: bool, tail: &Mutex<Tail>) {
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

/// Validates one stdout line against Maelstrom's envelope schema (spec §1): a JSON object with
/// exactly `src` and `dest` (strings), `body` (an object) and optionally `id` (an integer).
///
/// Cost: one validating pass of serde_json over the line (which allocates nothing for the
/// values), then a structural scan that finds the top-level members without decoding them, and
/// a scan of the body's top-level members for `type` and `in_reply_to`. The body is returned as
/// its original text, so routing never re-serialises it.
pub fn parse_stdout_line(line: &str) -> Result<ParsedLine, Malformed> {
    let text = line.trim_matches(is_json_ws);
    if text.is_empty() {
        return Err(Malformed::Empty);
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(Malformed::NotJson(e.to_string()));
    }
    if !text.starts_with('{') {
        return Err(Malformed::NotAnObject(json_kind(text)));
    }
    let (mut src, mut dest, mut body) = (None, None, None);
    // Duplicate keys: the last one wins, as with Maelstrom's JSON parser.
    for (key, value) in members(text) {
        match decode_str(key).as_deref() {
            Some("src") => src = Some(value),
            Some("dest") => dest = Some(value),
            Some("body") => body = Some(value),
            Some("id") => {
                if !is_integer_literal(value) {
                    return Err(Malformed::IdNotInteger(shorten(value, 40)));
                }
            }
            Some(other) => return Err(Malformed::UnknownKey(other.to_string())),
            // Unreachable for valid JSON; reported rather than trusted.
            None => return Err(Malformed::UnknownKey(key.to_string())),
        }
    }
    let src = string_field("src", src)?;
    let dest = string_field("dest", dest)?;
    let body = body.ok_or(Malformed::MissingKey("body"))?;
    if !body.starts_with('{') {
        return Err(Malformed::BodyNotObject(json_kind(body)));
    }
    let (mut body_type, mut in_reply_to) = (None, None);
    for (key, value) in members(body) {
        match decode_str(key).as_deref() {
            Some("type") => body_type = value.starts_with('"').then(|| decode_str(value)).flatten(),
            Some("in_reply_to") => {
                in_reply_to = value.parse::<u64>().ok().filter(|_| is_digits(value))
            }
            _ => {}
        }
    }
    Ok(ParsedLine {
        src,
        dest,
        raw_body: body.to_string(),
        body_type: body_type.map(Cow::into_owned),
        in_reply_to,
    })
}

fn string_field(key: &'static str, value: Option<&str>) -> Result<String, Malformed> {
    let value = value.ok_or(Malformed::MissingKey(key))?;
    if !value.starts_with('"') {
        return Err(Malformed::NotAString {
            key,
            found: json_kind(value),
        });
    }
    decode_str(value)
        .map(Cow::into_owned)
        .ok_or(Malformed::NotAString {
            key,
            found: "an undecodable string",
        })
}

fn is_json_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// JSON integer syntax: `-?digits` (no fraction, no exponent). Any size, as Clojure's `s/Int`.
fn is_integer_literal(s: &str) -> bool {
    is_digits(s.strip_prefix('-').unwrap_or(s))
}

/// The kind of a (valid) JSON value from its first character, for messages.
fn json_kind(value: &str) -> &'static str {
    match value.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Decodes a JSON string literal (with its quotes); borrows when there is no escape.
fn decode_str(quoted: &str) -> Option<Cow<'_, str>> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// The top-level `(raw key, raw value)` pairs of a JSON object whose syntax is already known to
/// be valid. Pure structural scanning: strings are skipped by their quotes and escapes, nested
/// values by bracket depth. Stops quietly (instead of panicking) on anything unexpected.
fn members(object: &str) -> Members<'_> {
    Members {
        text: object,
        pos: 1,
    }
}

struct Members<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let b = self.text.as_bytes();
        let mut i = skip_ws(b, self.pos);
        if *b.get(i)? == b',' {
            i = skip_ws(b, i + 1);
        }
        if *b.get(i)? != b'"' {
            self.pos = b.len();
            return None;
        }
        let key_end = skip_string(b, i)?;
        let key = self.text.get(i..key_end)?;
        i = skip_ws(b, key_end);
        if *b.get(i)? != b':' {
            self.pos = b.len();
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = skip_value(b, start)?;
        self.pos = end;
        Some((key, self.text.get(start..end)?))
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Index just past the string literal starting at `i`.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// Index just past the JSON value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while !matches!(
                b.get(j),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                j += 1;
            }
            Some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Receiver;

    fn ok(line: &str) -> ParsedLine {
        parse_stdout_line(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn bad(line: &str) -> Malformed {
        match parse_stdout_line(line) {
            Ok(p) => panic!("{line} parsed: {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn well_formed_lines_parse() {
        let p =
            ok(r#"{"src":"n1","dest":"c2","body":{"type":"echo_ok","echo":"hi","in_reply_to":7}}"#);
        assert_eq!((p.src.as_str(), p.dest.as_str()), ("n1", "c2"));
        assert_eq!(
            p.raw_body,
            r#"{"type":"echo_ok","echo":"hi","in_reply_to":7}"#
        );
        assert_eq!(p.body_type.as_deref(), Some("echo_ok"));
        assert_eq!(p.in_reply_to, Some(7));

        // id is allowed (and ignored); whitespace, key order and escapes are the node's business.
        let p = ok(" { \"body\" : { \"x\" : {\"type\":\"inner\"} , \"type\" : \"g\\u006fssip\" } ,\"id\":-3, \"dest\":\"n\\u0032\", \"src\" : \"n1\" }\r");
        assert_eq!(p.dest, "n2");
        assert_eq!(p.body_type.as_deref(), Some("gossip"));
        assert_eq!(p.in_reply_to, None);
        assert_eq!(
            p.raw_body,
            "{ \"x\" : {\"type\":\"inner\"} , \"type\" : \"g\\u006fssip\" }"
        );

        // An escaped key is still the key it decodes to.
        assert_eq!(ok(r#"{"\u0073rc":"a","dest":"b","body":{}}"#).src, "a");
        // A body without type, strings containing braces and quotes.
        let p = ok(r#"{"src":"a","dest":"b","body":{"s":"}{\"]","type":1,"in_reply_to":5.0}}"#);
        assert_eq!((p.body_type, p.in_reply_to), (None, None));
        assert_eq!(p.raw_body, r#"{"s":"}{\"]","type":1,"in_reply_to":5.0}"#);
    }

    #[test]
    fn malformed_lines_are_classified() {
        assert_eq!(bad(""), Malformed::Empty);
        assert_eq!(bad("   "), Malformed::Empty);
        assert!(matches!(bad("hello"), Malformed::NotJson(_)));
        assert!(matches!(
            bad(r#"{"src":"a","dest":"b","body":{}"#),
            Malformed::NotJson(_)
        ));
        assert!(matches!(
            bad(r#"{"src":"a","dest":"b","body":{}} {}"#),
            Malformed::NotJson(_)
        ));
        assert!(matches!(bad(r#"{"src":"a",}"#), Malformed::NotJson(_)));
        assert_eq!(bad(r#"["src","dest"]"#), Malformed::NotAnObject("an array"));
        assert_eq!(bad("42"), Malformed::NotAnObject("a number"));
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":{},"extra":1}"#),
            Malformed::UnknownKey("extra".into())
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":[1]}"#),
            Malformed::BodyNotObject("an array")
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":null}"#),
            Malformed::BodyNotObject("null")
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":"b","body":"x"}"#),
            Malformed::BodyNotObject("a string")
        );
        assert_eq!(
            bad(r#"{"src":"a","body":{}}"#),
            Malformed::MissingKey("dest")
        );
        assert_eq!(
            bad(r#"{"dest":"a","body":{}}"#),
            Malformed::MissingKey("src")
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":"b"}"#),
            Malformed::MissingKey("body")
        );
        assert_eq!(bad("{}"), Malformed::MissingKey("src"));
        assert_eq!(
            bad(r#"{"src":1,"dest":"b","body":{}}"#),
            Malformed::NotAString {
                key: "src",
                found: "a number"
            }
        );
        assert_eq!(
            bad(r#"{"src":"a","dest":null,"body":{}}"#),
            Malformed::NotAString {
                key: "dest",
                found: "null"
            }
        );
        assert_eq!(
            bad(r#"{"id":1.5,"src":"a","dest":"b","body":{}}"#),
            Malformed::IdNotInteger("1.5".into())
        );
        assert_eq!(
            bad(r#"{"id":"1","src":"a","dest":"b","body":{}}"#),
            Malformed::IdNotInteger("\"1\"".into())
        );
        assert!(matches!(
            bad(r#"{"id":1e3,"src":"a","dest":"b","body":{}}"#),
            Malformed::IdNotInteger(_)
        ));
        let m = MalformedLine {
            line: "x".into(),
            reason: Malformed::MissingKey("dest"),
        };
        assert!(m.to_string().contains("missing \"dest\""));
    }

    #[test]
    fn member_scanner_handles_nesting_and_escapes() {
        let obj = r#"{"a":{"b":[1,{"c":"]}"}]},"d\"":"e\\","f":-1.5e3,"g":true}"#;
        let got: Vec<_> = members(obj).collect();
        assert_eq!(
            got,
            [
                (r#""a""#, r#"{"b":[1,{"c":"]}"}]}"#),
                (r#""d\"""#, r#""e\\""#),
                (r#""f""#, "-1.5e3"),
                (r#""g""#, "true"),
            ]
        );
        assert_eq!(members("{}").count(), 0);
        assert_eq!(members("{ }").count(), 0);
        // Garbage never panics.
        for junk in [
            "{",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":[",
            "{\"a\":\"\\",
            "{]",
        ] {
            let _ = members(junk).count();
        }
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(line in ".{0,80}") {
            let _ = parse_stdout_line(&line);
        }

        #[test]
        fn valid_envelopes_round_trip(
            src in "[a-z0-9\"\\\\é]{1,6}",
            dest in "[a-z0-9]{1,6}",
            ty in proptest::option::of("[a-z_\"]{1,8}"),
            irt in proptest::option::of(0u64..u64::MAX),
            id in proptest::option::of(proptest::num::i64::ANY),
        ) {
            let mut body = serde_json::Map::new();
            body.insert("nested".into(), serde_json::json!({"type": "no", "x": ["}", "\""]}));
            if let Some(t) = &ty { body.insert("type".into(), t.clone().into()); }
            if let Some(r) = irt { body.insert("in_reply_to".into(), r.into()); }
            let mut env = serde_json::json!({"src": src, "dest": dest, "body": body});
            if let Some(id) = id { env["id"] = id.into(); }
            let line = env.to_string();
            let p = parse_stdout_line(&line).unwrap();
            proptest::prop_assert_eq!(&p.src, &src);
            proptest::prop_assert_eq!(&p.dest, &dest);
            proptest::prop_assert_eq!(&p.body_type, &ty);
            proptest::prop_assert_eq!(p.in_reply_to, irt);
            let reparsed: serde_json::Value = serde_json::from_str(&p.raw_body).unwrap();
            proptest::prop_assert_eq!(&reparsed, &env["body"]);
        }
    }

    // ---- real processes ----

    type Lines = Receiver<(Arc<str>, LineResult)>;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn command(&self, id: &str, script: &str) -> NodeCommand {
            NodeCommand {
                id: id.into(),
                bin: "/bin/sh".into(),
                args: vec!["-c".into(), script.into()],
                work_dir: self.dir.path().to_path_buf(),
                env: vec![("MURMUR_TEST_VAR".into(), "hello".into())],
                log_path: self.dir.path().join("node-logs").join(format!("{id}.log")),
                log_stderr: false,
            }
        }

        fn spawn(&self, id: &str, script: &str) -> (NodeProcess, Lines) {
            let (tx, rx) = mpsc::channel();
            (
                NodeProcess::spawn(&self.command(id, script), tx).unwrap(),
                rx,
            )
        }
    }

    const WAIT: Duration = Duration::from_secs(10);

    fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn lines_echo_through_cat_in_order() {
        let fx = Fixture::new();
        let (node, rx) = fx.spawn("n1", "exec cat");
        let input = node.input();
        for i in 0..1000 {
            assert!(input.send(format!(
                r#"{{"src":"n1","dest":"n2","body":{{"type":"t","i":{i}}}}}"#
            )));
        }
        node.send_line("not json".into());
        node.send_line(r#"{"src":"n1","dest":"n2","body":{},"x":0}"#.into());
        for i in 0..1000 {
            let (id, line) = rx.recv_timeout(WAIT).unwrap();
            assert_eq!(&*id, "n1");
            let p = line.unwrap();
            assert_eq!(p.raw_body, format!(r#"{{"type":"t","i":{i}}}"#));
        }
        let (_, line) = rx.recv_timeout(WAIT).unwrap();
        assert!(matches!(line.unwrap_err().reason, Malformed::NotJson(_)));
        let (_, line) = rx.recv_timeout(WAIT).unwrap();
        let m = line.unwrap_err();
        assert_eq!(m.reason, Malformed::UnknownKey("x".into()));
        assert_eq!(m.line, r#"{"src":"n1","dest":"n2","body":{},"x":0}"#);
        let tail = node.last_stdout();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().unwrap(), &m.line);
        assert_eq!(node.try_exit_status(), None);
        let stopped = node.stop().unwrap();
        assert!(!stopped.exited_on_its_own);
        assert_eq!(stopped.status.signal(), Some(libc::SIGKILL));
        assert_eq!(node.dropped_writes(), 0);
    }

    #[test]
    fn stderr_goes_to_the_log_and_the_tail_across_restarts() {
        let fx = Fixture::new();
        let script = "i=0; while [ $i -lt 40 ]; do echo \"err $i\" >&2; i=$((i+1)); done; exec cat";
        let (node, _rx) = fx.spawn("n2", script);
        let log = node.log_path().to_path_buf();
        eventually("40 stderr lines", || {
            node.last_stderr().last().map(String::as_str) == Some("err 39")
        });
        let tail = node.last_stderr();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], "err 8");
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 40);
        assert!(text.starts_with("err 0\nerr 1\n"));
        node.kill().unwrap();
        let report = node.crash_report(node.try_exit_status().unwrap());
        assert!(report.contains("err 39") && report.contains("signal 9 (SIGKILL)"));

        // A restart appends to the same log after a marker.
        let (again, _rx) = fx.spawn("n2", "echo second >&2; exec cat");
        eventually("restart line", || again.last_stderr() == ["second"]);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 42);
        assert!(lines[40].starts_with(RESTART_MARKER));
        assert_eq!(lines[41], "second");
    }

    #[test]
    fn kill_pause_resume() {
        let fx = Fixture::new();
        let (node, rx) = fx.spawn("n3", "exec cat");
        let line = r#"{"src":"a","dest":"b","body":{}}"#;
        node.pause().unwrap();
        node.pause().unwrap(); // idempotent
        node.send_line(line.into());
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a paused node answered"
        );
        node.resume().unwrap();
        assert!(rx.recv_timeout(WAIT).unwrap().1.is_ok());
        node.resume().unwrap(); // resuming a running node is harmless

        // Kill works on a paused process too.
        node.pause().unwrap();
        let status = node.kill().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(node.was_killed());
        assert_eq!(node.try_exit_status(), Some(status));
        assert_eq!(
            node.kill().unwrap(),
            status,
            "killing twice returns the same status"
        );
        node.pause().unwrap(); // a killed node: nothing to do
        node.resume().unwrap();
        let stopped = node.stop().unwrap();
        assert!(
            !stopped.exited_on_its_own,
            "the runner killed it: not a crash"
        );

        // Writes to the dead incarnation are counted and dropped, without blocking.
        for _ in 0..100 {
            node.send_line(line.into());
        }
        eventually("dropped writes", || node.dropped_writes() == 100);
    }

    #[test]
    fn an_unexpected_exit_is_detected_even_with_code_0() {
        let fx = Fixture::new();
        let (node, _rx) = fx.spawn("n4", "echo bye $MURMUR_TEST_VAR; pwd >&2; exit 0");
        eventually("exit", || node.try_exit_status().is_some());
        let status = node.try_exit_status().unwrap();
        assert_eq!(status.code(), Some(0));
        assert!(!node.was_killed());
        assert!(matches!(node.kill(), Err(ProcessError::Exited { .. })));
        assert!(matches!(node.resume(), Err(ProcessError::Exited { .. })));
        let stopped = node.stop().unwrap();
        assert!(stopped.exited_on_its_own);
        assert_eq!(stopped.status, status);
        assert_eq!(node.last_stdout(), ["bye hello"], "extra env is passed");
        let cwd = std::fs::canonicalize(fx.dir.path()).unwrap();
        eventually("stderr", || !node.last_stderr().is_empty());
        assert_eq!(
            node.last_stderr(),
            [cwd.to_str().unwrap()],
            "runs in work_dir"
        );
        // Writing to it never panics or blocks: every line is eventually counted as dropped.
        let input = node.input();
        for _ in 0..10_000 {
            input.send("x".repeat(100));
        }
        eventually("dropped writes", || input.dropped() == 10_000);
    }

    #[test]
    fn a_crash_report_has_the_last_words_written_just_before_the_exit() {
        let fx = Fixture::new();
        // A burst of output (one buffered printf, well within the pipe's capacity) right before
        // exiting: the readers are still busy with it when the exit is seen.
        let script = "printf 'noise %d\\n' $(seq 0 2999) >&2; \
                      echo '{\"src\":\"n8\",\"dest\":\"c1\",\"body\":{\"last\":1}}'; \
                      echo 'last words' >&2; exit 0";
        let (node, _rx) = fx.spawn("n8", script);
        let status = loop {
            if let Some(status) = node.try_exit_status() {
                break status;
            }
            thread::sleep(Duration::from_micros(200));
        };
        let report = node.crash_report(status);
        assert!(
            report.contains("Node n8 crashed with exit code 0"),
            "{report}"
        );
        assert!(
            report.contains("noise 2999\nlast words"),
            "the report must end with the last stderr lines: {report}"
        );
        assert!(report.contains(r#"{"last":1}"#), "{report}");
        assert!(node.wait_for_readers(Duration::ZERO));
    }

    #[test]
    fn writes_to_a_process_that_died_mid_stream_are_dropped() {
        let fx = Fixture::new();
        // Reads one line, then exits: the rest cannot be written.
        let (node, _rx) = fx.spawn("n5", "read x; exit 3");
        node.send_line("first".into());
        eventually("exit", || node.try_exit_status().is_some());
        assert_eq!(node.try_exit_status().unwrap().code(), Some(3));
        for _ in 0..1000 {
            node.send_line("more".into());
        }
        eventually("dropped writes", || node.dropped_writes() == 1000);
        assert!(node.stop().unwrap().exited_on_its_own);
    }

    #[test]
    fn spawn_errors_are_reported() {
        let fx = Fixture::new();
        let mut cmd = fx.command("n6", "exit 0");
        cmd.bin = fx.dir.path().join("missing");
        let err = NodeProcess::spawn(&cmd, |_: &Arc<str>, _: LineResult| {}).unwrap_err();
        assert!(matches!(err, ProcessError::Spawn { .. }));
        let mut cmd = fx.command("n6", "exit 0");
        cmd.log_path = fx.dir.path().join("missing-dir-is-created").join("n6.log");
        let node = NodeProcess::spawn(&cmd, |_: &Arc<str>, _: LineResult| {}).unwrap();
        node.stop().unwrap();
        assert!(cmd.log_path.exists());
    }

    #[test]
    fn dropping_a_node_kills_it() {
        let fx = Fixture::new();
        let (node, _rx) = fx.spawn("n7", "exec cat");
        let pid = node.pid() as libc::pid_t;
        drop(node);
        // SAFETY: signal 0 only checks for existence. The child was reaped by drop, so the pid
        // is no longer ours; ESRCH (or a recycled pid, vanishingly unlikely) is the outcome.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive);
    }
}
