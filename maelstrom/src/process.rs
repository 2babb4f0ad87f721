//! Real node processes over pipes: spawn, the three I/O threads, strict stdout parsing, stderr
//! logs, kill/pause/resume and crash detection, as Maelstrom runs nodes (see
//! <https://github.com/jepsen-io/maelstrom/tree/main/doc>: a node is a binary that reads messages
//! on stdin, writes them on stdout, and logs on stderr).
//!
//! One [`NodeProcess`] is one incarnation of a node. It owns the child and three threads, named
//! like Maelstrom's (`"<id> stdin"`, `"<id> stdout"`, `"<id> stderr"`), in `pipes`:
//! - **stdin writer**: fed by a channel through cheap-clone [`NodeInput`] handles, so the network
//!   never blocks on a slow or paused node. It writes each line plus `\n` and flushes only when the
//!   channel is momentarily empty, batching writes under load. Lines that cannot be written (the
//!   process is gone) are counted and dropped, never a panic or an endless block. The queue holds
//!   at most [`STDIN_QUEUE_BYTES`]; past that, a node that does not read its stdin loses further
//!   lines ([`NodeInput::overflowed`]) rather than growing the runner without bound. Before that,
//!   at [`STDIN_BACKLOG_BYTES`], the driver holds back the nodes that send to it.
//! - **stdout reader**: reads lines of at most [`MAX_LINE_BYTES`] (a longer one is reported as
//!   soon as it passes the limit, and its rest discarded unread into memory), checks each against Maelstrom's closed envelope schema with
//!   [`parse_stdout_line`] (in `line`), and hands `(node id, Ok(ParsedLine) |
//!   Err(BadLine))` to the caller's [`LineSink`], in output order. What to do with a
//!   malformed line (Maelstrom stops reading that node for the rest of the test) is the driver's
//!   decision: this thread keeps reading so the node never blocks on a full pipe.
//! - **stderr reader**: appends every line to `node-logs/<id>.log` (flushed per line) and, with
//!   `--log-stderr`, echoes it as `[<id> stderr] line` on the runner's stderr.
//!
//! The last [`TAIL_LINES`] lines of stdout and stderr are kept (their first 2000 characters) for
//! crash reports; a report waits (briefly) for both readers to reach the end of the streams, so it
//! shows the node's last words.
//!
//! The child runs in its own process group and every signal goes to the group, so a node started
//! through a wrapper (`#!/bin/sh` script, `cargo run`) is killed, paused and resumed as a whole.
//! When the node exits on its own, what is left of its group is SIGKILLed before the node is
//! reaped, so helpers it forked cannot keep its pipes open. Helpers that left the group are the
//! business of [`kill_orphans`] (`orphans`), at teardown. The runner never sends SIGTERM: like
//! Maelstrom, it stops nodes with SIGKILL, which no node can ignore.
//! A restart after `kill` is simply a new `NodeProcess` from the same [`NodeCommand`]; the log file
//! is opened for appending, so one file covers every incarnation, separated by a marker line.

mod line;
mod orphans;
mod pipes;

pub use line::{parse_stdout_line, BadLine, LineError, LineResult, ParsedLine};
pub use orphans::{become_subreaper, kill_orphans, Orphan};

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use pipes::{read_stderr, read_stdout, tail_lines, write_stdin, Tail};

/// How many recent stdout and stderr lines are kept for crash reports (Maelstrom keeps 32).
pub const TAIL_LINES: usize = 32;

/// How long `stop`/`kill` wait for the process to die after SIGKILL (Maelstrom waits 5 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`NodeProcess::crash_report`] waits for the stdout and stderr readers to reach the
/// end of the streams of an exited process, so the report shows its last words. Bounded because
/// a child the node left behind may hold the pipes open.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest stdout or stderr line the runner reads: 16 MiB, far above any message of
/// Maelstrom's protocol (a broadcast `read_ok` of 100 000 values is under 1 MiB). A longer stdout
/// line is a malformed message ([`LineError::TooLong`], reported as soon as the limit is passed,
/// so a line that never ends is caught too); a longer stderr line is logged up to the limit. The
/// rest of such a line is read and discarded, so a node can never make the runner hold more than
/// this per stream. Maelstrom has no limit (its JVM heap is the limit).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// The most a node's stdin queue may hold (bytes of lines the network delivered that the node has
/// not read yet): 64 MiB. The queue only grows when a node stops reading its stdin (paused, stuck,
/// or flooding itself); a paused correct node queues kilobytes. Past the limit, lines for that
/// node are dropped and counted ([`NodeInput::overflowed`]), so a node that never reads cannot
/// make the runner's memory grow without bound. Maelstrom's queues are unbounded.
pub const STDIN_QUEUE_BYTES: u64 = 64 << 20;

/// A stdin queue holding this much (32 MiB, half of [`STDIN_QUEUE_BYTES`]) is *backlogged*
/// ([`NodeInput::backlogged`]): the driver then stops reading the output of the nodes that send
/// to it, as a full pipe would stop them, so a flood towards a node that does not read stops at
/// its source instead of costing the runner's journal a record per message; the other half is
/// headroom for messages already in flight.
pub const STDIN_BACKLOG_BYTES: u64 = STDIN_QUEUE_BYTES / 2;

/// The marker written to a node's log when a new incarnation starts appending to it.
pub const RESTART_MARKER: &str = "--- restarted ---";

/// Everything needed to start (and restart) one node.
#[derive(Debug, Clone)]
pub struct NodeCommand {
    /// The node id, e.g. `n0`; names the threads and prefixes `--log-stderr` lines.
    pub id: String,
    /// The node binary, already canonicalised (Maelstrom spawns the canonical path).
    pub bin: PathBuf,
    /// Extra arguments (`maelstrom test ... -- args`).
    pub args: Vec<String>,
    /// The child's working directory: a per-run directory chosen by the driver.
    pub work_dir: PathBuf,
    /// Variables added to the inherited environment. Maelstrom adds none; leave it
    /// empty for fidelity, or use it to tell a node where to persist data.
    pub env: Vec<(String, String)>,
    /// `node-logs/<id>.log`, opened for appending (its directory is created if missing).
    pub log_path: PathBuf,
    /// Echo stderr lines to the runner's stderr as `[<id> stderr] line`.
    pub log_stderr: bool,
}

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
    /// The process had already exited on its own: for the driver, a crash.
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
    /// that as a crash whatever the exit code, 0 included.
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
    /// Bytes queued and not yet written to the pipe: the writer subtracts what it has written.
    queued_bytes: AtomicU64,
    /// Lines dropped because the queue held [`STDIN_QUEUE_BYTES`] (also counted in `dropped`).
    overflowed: AtomicU64,
    /// Set by the first [`NodeInput::first_backlog`]: one report per incarnation.
    backlog_reported: AtomicBool,
}

impl NodeInput {
    /// Queues one line (without its `\n`; the caller guarantees it contains none, as compact
    /// JSON does). Returns false when the line is dropped: this incarnation has been stopped, or
    /// its queue already holds [`STDIN_QUEUE_BYTES`] (see [`NodeInput::overflowed`]).
    pub fn send(&self, line: String) -> bool {
        let shared = &self.shared;
        let size = line.len() as u64 + 1;
        let tx = shared.tx.lock().unwrap_or_else(|e| e.into_inner());
        let queued = match tx.as_ref() {
            Some(_) if shared.queued_bytes.load(Ordering::Relaxed) + size > STDIN_QUEUE_BYTES => {
                shared.overflowed.fetch_add(1, Ordering::Relaxed);
                false
            }
            Some(tx) => {
                shared.queued_bytes.fetch_add(size, Ordering::Relaxed);
                let sent = tx.send(line).is_ok();
                if !sent {
                    shared.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                }
                sent
            }
            None => false,
        };
        if !queued {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Lines dropped because the node was not reading its stdin and its queue was full
    /// ([`STDIN_QUEUE_BYTES`]); they are counted in [`NodeInput::dropped`] too.
    pub fn overflowed(&self) -> u64 {
        self.shared.overflowed.load(Ordering::Relaxed)
    }

    /// The queue of this live incarnation holds at least [`STDIN_BACKLOG_BYTES`]: the node is
    /// not keeping up with its input.
    pub fn backlogged(&self) -> bool {
        self.shared.queued_bytes.load(Ordering::Relaxed) >= STDIN_BACKLOG_BYTES
            && self
                .shared
                .tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
    }

    /// True once per incarnation, for whoever first finds it backlogged or overflowing and
    /// reports it.
    pub fn first_backlog(&self) -> bool {
        !self.shared.backlog_reported.swap(true, Ordering::Relaxed)
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
    /// The exit status once the child has exited (non-blocking). On finding it exited, SIGKILLs
    /// what is left of its process group *before* reaping it: the unreaped child still holds its
    /// pid, so the group id cannot have been recycled. So a node that exits, on its own or by
    /// the runner's SIGKILL, takes the helpers it forked (and did not move out of its group)
    /// with it, and they release the node's pipes.
    fn poll(&mut self) -> Result<Option<ExitStatus>, io::Error> {
        if self.status.is_none() && exited_unreaped(self.child.id())? {
            if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill(2) has no memory-safety preconditions; the group is the child's
                // (see above). ESRCH (no member left) is the usual, harmless outcome.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
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
    /// Set just before the runner SIGKILLs the process: the stdout reader then drops an
    /// unterminated last line, which the signal cut short (not the node's doing).
    killed_flag: Arc<AtomicBool>,
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
                    queued_bytes: AtomicU64::new(0),
                    overflowed: AtomicU64::new(0),
                    backlog_reported: AtomicBool::new(false),
                }),
            },
            stdout_tail: Arc::default(),
            stderr_tail: Arc::default(),
            io_done: Mutex::new(done_rx),
            readers_done: Mutex::new(readers_rx),
            log_path: cmd.log_path.clone(),
            killed_flag: Arc::default(),
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
                write_stdin(stdin, rx, &shared.dropped, &shared.queued_bytes);
                drop(done);
            })
            .map_err(thread_err("stdin"))?;
        let (tail, done, reader_done, node_id, killed) = (
            Arc::clone(&node.stdout_tail),
            done_tx.clone(),
            readers_tx.clone(),
            Arc::clone(&id),
            Arc::clone(&node.killed_flag),
        );
        thread::Builder::new()
            .name(format!("{id} stdout"))
            .spawn(move || {
                read_stdout(stdout, &node_id, &tail, &killed, sink);
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
    /// cause, exit code 0 included, is a crash; see [`NodeProcess::was_killed`].
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

    /// Teardown, as Maelstrom's: SIGKILL if still running (no SIGTERM, no stdin EOF first), wait up to
    /// [`STOP_TIMEOUT`] for the exit, stop the stdin writer, and give the readers the rest of that
    /// time to drain. `exited_on_its_own` tells the driver whether this was a crash.
    pub fn stop(&self) -> Result<Stopped, ProcessError> {
        let start = Instant::now();
        let stopped = self.terminate()?;
        if !self.wait_for_io(STOP_TIMEOUT.saturating_sub(start.elapsed())) {
            tracing::debug!(node = %self.id, "I/O threads still running after stop");
        }
        Ok(stopped)
    }

    /// The first half of [`NodeProcess::stop`]: SIGKILL if still running, wait up to
    /// [`STOP_TIMEOUT`] for the exit, and close the stdin queue, without waiting for the I/O
    /// threads (which may be held up by processes the node left behind: see [`kill_orphans`]).
    pub fn terminate(&self) -> Result<Stopped, ProcessError> {
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
        Ok(stopped)
    }

    /// Waits (up to `timeout`) for the three I/O threads to finish; true if they have. The
    /// writer ends once its queue is drained; the readers at EOF, once every process holding the
    /// pipes is gone.
    pub fn wait_for_io(&self, timeout: Duration) -> bool {
        let done = self.io_done.lock().unwrap_or_else(|e| e.into_inner());
        // Nobody sends on `io_done`: it only disconnects.
        !matches!(
            done.recv_timeout(timeout),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
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
        // Before the signal: the stdout reader must know by the time it sees the end of stream.
        self.killed_flag.store(true, Ordering::SeqCst);
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
            self.killed_flag.store(true, Ordering::SeqCst);
            if let Err(e) = signal_group(self.pid, libc::SIGKILL) {
                tracing::warn!(node = %self.id, "SIGKILL on drop failed: {e}");
            }
            st.killed = true;
            // Reap it so no zombie is left behind.
            let _ = st.wait_for(STOP_TIMEOUT);
        }
    }
}

/// Whether child `pid` has exited, without reaping it (`waitid` with `WNOWAIT`).
fn exited_unreaped(pid: u32) -> io::Result<bool> {
    let id = libc::id_t::from(pid);
    // SAFETY: an all-zero siginfo_t is a valid value; waitid writes into it and nothing else.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is a valid, writable siginfo_t.
    if unsafe { libc::waitid(libc::P_PID, id, &mut info, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` (si_pid stays 0 when the child has not exited).
    Ok(unsafe { info.si_pid() } != 0)
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

#[cfg(test)]
mod tests;
