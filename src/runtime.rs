//! The tokio shell around a [`Host`]: the only place that touches stdin, stdout, the disk and the
//! clock. Everything a node decides (what to answer before `init`, which requests and replies the
//! client guard drops, what is due, what waits for durability) is the host's, which the runner's
//! simulator drives too; this module only moves bytes and time to and from it.
//!
//! ```text
//!  stdin ─► reader ─mpsc(4096)─► listen ────────┐                  ┌─► writer ─► stdout
//!                                               │                  │
//!   sleep until next_tick ─► sync ──────────────┼── Mutex<Host> ───┤ mpsc(64) lines
//!        ▲ (poked when it moves)                │        │         │
//!   poke (records queued) ─► flusher ───────────┘        │         │
//!        queued records │ ▲ durable(n) ─► outputs ───────┼─────────┘
//!                       ▼ │                             │
//!   Store::append = copy into the mapped log (+ fdatasync│
//!   on the blocking pool if MURMUR_FSYNC) (records.log)  │
//!            SIGCONT ─► flag ─► Host::resumed ◄─────────┘ checked before anything is handled
//! ```
//! Everything but the optional fsync runs on one thread (a current-thread runtime). Stdin and
//! stdout, when they are pipes (as under Maelstrom), are read and written in non-blocking mode on
//! that thread, so a message costs no hand-off between threads; otherwise tokio's blocking-pool
//! stdio is used.
//! An idle node has no timer armed at all: it sleeps in the kernel until a line arrives.
//!
//! - **reader** owns stdin: reads lines (at most [`ShellConfig::max_line_bytes`]; longer ones are
//!   skipped) and classifies them with [`parse_line`] (malformed lines are logged to stderr and
//!   skipped) into a bounded channel, which gives back-pressure.
//! - **listen** hands each line to [`Host::receive`]. When the host hands `init` back, listen opens
//!   the node's [`Store`] for a persistent workload (on the runtime thread: nothing else is due)
//!   and completes it with [`Host::init`] and every durable record, *before* `init_ok` is sent; if
//!   the store cannot be opened the host answers error 13 and the shell exits, rather than
//!   acknowledge writes it cannot keep. After `init`, for each burst of messages already waiting
//!   (at most 64, `BURST`): lock, [`Host::receive`] each, then hand off the records the burst
//!   emitted ([`Host::persist_with`]), drain outputs, ask [`Host::next_tick`], unlock, send, and
//!   poke the sync task if the next tick moved. The hand-off appends the records to the log
//!   at once and reports them with [`Host::durable`] when it can (the default: no fsync, no
//!   batching window, nothing queued ahead), so an acknowledgement leaves with the rest of the
//!   handler's output; otherwise it queues them for the flusher and pokes it.
//! - **sync** sleeps until the time [`Host::next_tick`] last gave (not at all if it gave `None`),
//!   then calls [`Host::tick`] (which ticks the workload only if it still says it is due), and
//!   hands off records, drains and pokes the same way. Demand-driven rather than periodic: a
//!   periodic timer costs every idle node a wake-up per period (`just bench` measures what one
//!   wake-up costs: the "Reading the CPU column" paragraph of `results/BENCHMARKS.md`).
//! - **flusher** (persistent workloads only) is group commit, for `MURMUR_FSYNC`, a batching
//!   window and retries. By default it has nothing to do: handlers append their own records,
//!   which spares a task hop per message. Poked when a handler queued records, it waits
//!   [`ShellConfig::flush_ms`] more (0 by default), takes the whole queue, and appends it as one
//!   batch: a copy into the memory-mapped log on the runtime thread, or with `MURMUR_FSYNC` the
//!   copy and an `fdatasync` on the blocking pool. The host's lock is not held meanwhile, so
//!   messages keep being handled and their records queue behind the batch. Then it locks the host,
//!   reports [`Host::durable`] with the running count, drains the outputs that waited for
//!   durability (acknowledgements), unlocks and sends them. A failed append is retried with the
//!   same records first (backoff 10 ms doubling to 1 s); nothing is reported durable until it
//!   succeeds.
//! - **SIGCONT** sets a flag that the shell checks before handling anything and passes on to
//!   [`Host::resumed`], so the client guard learns of a pause before it sees the backlog that piled
//!   up during it; see "Pauses" below.
//! - **writer** alone owns stdout, so lines never interleave; it serialises each line (off the
//!   lock) and flushes whenever its queue is momentarily empty.
//!
//! The host sits behind one `std::sync::Mutex`: every critical section is a pure function call,
//! never held across `.await`, a sync or a read, so a blocking mutex is the right tool (as in
//! mini-redis). The one system call it may cover is the inline append's occasional growth of the
//! log (an allocation of file space every 64 KiB or more). The records' queue and log are locked
//! after the host.
//!
//! **Pauses.** A Maelstrom client gives up on a request after 5 s and its id is closed; a reply to
//! a closed client makes Maelstrom stop reading this node's stdout for the rest of the test. After
//! a SIGSTOP/SIGCONT pause, the requests queued in the pipe are read in a burst and look fresh. The
//! host's [`crate::host::ClientGuard`] dates messages handled just after a resume back to the last
//! moment the node was active and drops client requests, and client replies, older than
//! [`ShellConfig::reply_deadline_ms`]; its docs give the heuristic and its knobs.
//!
//! **Shutdown.** EOF on stdin is the normal end: the reader stops, the listen task handles what was
//! already queued, the sync task is stopped, the flusher takes every remaining
//! record, makes it durable and releases the outputs that waited for it (a final flush), the writer
//! drains its queue and flushes, and the process exits 0 (1 if the final flush failed). Maelstrom
//! itself ends nodes with SIGKILL, which loses nothing durable.
//!
//! **Compaction.** After every call into the host, once its outputs are handed to the writer,
//! the shell asks the host for a compaction ([`Host::take_compaction`]) and, if one is due,
//! writes the snapshot over the log ([`Store::compact`]) holding the node's lock, then reports it
//! ([`Host::compacted`]). The host offers one only when every record taken is durable, so nothing
//! is queued or being written; with `MURMUR_FSYNC=1` the compaction's two syncs run there too, on
//! the runtime thread (rare: each compaction follows at least as many appended bytes as it writes).

use crate::host::{Host, ShellConfig};
use crate::node::{parse_line, Inbound, Millis, Workload};
use crate::store::{self, Store};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch, Notify};

/// Capacity of the reader → listen channel: enough to absorb a burst, small enough to push back.
const INBOX: usize = 4096;

/// The most messages the listen task handles in one critical section. Messages that arrived
/// together (Maelstrom delivers a node's queue in bursts: a client request waits behind the peer
/// message ahead of it) are handled under one lock, and their records are appended as one batch
/// afterwards, so a read that waits for durability is answered with every value of the burst, as
/// when a flusher task ran after it. The bound keeps one burst from holding the lock for long.
const BURST: usize = 64;
/// Capacity of the channel to the writer, in batches of lines (one handler's outputs each).
/// Bounded so that a reader of stdout that falls behind slows the node down (every task waits to
/// send) instead of letting queued replies grow without limit in memory. Small, because lines are
/// serialised only when the writer takes them (a broadcast `read_ok` holds a reference to a
/// snapshot shared by the reads of the same durable set, but is written as the whole set); the
/// writer drains it far faster than handlers fill it in normal operation.
const OUTBOX: usize = 64;

/// Backoff between attempts of a failed append: doubles from the first value up to the second.
const RETRY_MS: (Millis, Millis) = (10, 1000);

/// Attempts of the final flush at EOF before giving up (its outputs are then never sent).
const FINAL_FLUSH_ATTEMPTS: u32 = 5;

/// Installs the stderr logger (`RUST_LOG` filters; default `info`). Stdout is reserved for protocol
/// lines.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Runs workload `W` on stdin/stdout until EOF. The binaries' whole `main`.
pub fn main<W: Workload>(config: W::Config) -> std::process::ExitCode {
    init_logging();
    let shell = match ShellConfig::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!(?config, ?shell, "starting");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The shell runs as a spawned task, not as `block_on`'s own future: in a current-thread
    // runtime, wake-ups issued from the `block_on` future bypass the run queue and signal the
    // driver through an eventfd (two extra syscalls per message, costly on a VM).
    let result = rt.block_on(async move {
        tokio::spawn(run::<W>(config, shell))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the shell task failed: {e}")))
    });
    // A stdin read may still be parked on the blocking pool (when the node stops for another reason
    // than EOF); do not wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The monotonic clock handlers see: milliseconds since the shell started. It keeps running while
/// the process is stopped (SIGSTOP), which is what makes a pause visible.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Millis {
        self.0.elapsed().as_millis() as Millis
    }
}

/// A line to write, serialised by the writer task (keeps serialisation off the node lock).
type Line = Box<dyn erased::Line + Send>;

mod erased {
    pub trait Line {
        fn write_to(&self, buf: &mut Vec<u8>) -> serde_json::Result<()>;
    }
    impl<T: serde::Serialize> Line for T {
        fn write_to(&self, buf: &mut Vec<u8>) -> serde_json::Result<()> {
            serde_json::to_writer(&mut *buf, self)
        }
    }
}

fn boxed<T: Serialize + Send + 'static>(v: T) -> Line {
    Box::new(v)
}

/// What every task shares.
struct Shared<W: Workload> {
    host: Mutex<Host<W>>,
    /// Set by the SIGCONT handler; taken before anything is handled (see [`Host::resumed`]).
    resumed: Arc<AtomicBool>,
    out: mpsc::Sender<Vec<Line>>,
    clock: Clock,
    /// Records taken from the workload after each handler, waiting for the flusher, oldest first
    /// (persistent workloads only).
    records: Option<Records>,
    /// [`Workload::next_tick`] as of the last handler ([`NO_TICK`] for none): the sync task sleeps
    /// until then.
    tick_at: AtomicU64,
    /// Poked when `tick_at` moved: the sync task sleeps until the new time.
    tick_moved: Notify,
}

/// `tick_at` when the workload needs no tick.
const NO_TICK: u64 = u64::MAX;

/// The hand-off from handlers to the log. A handler that emitted no records touches none of it:
/// most messages (reads, acknowledgements) write nothing.
///
/// Without fsync and without a batching window, an append is a copy into the mapped log, cheaper
/// than waking another task: the handler appends its records itself, in its critical section,
/// and reports them durable to the workload before its outputs are drained, so an
/// acknowledgement leaves in the same write as the rest ([`Records::hand_off`]). Otherwise (fsync,
/// `flush_ms` > 0, a failed append being retried, or records already waiting) the records join
/// the flusher's queue, so the log keeps their order.
struct Records {
    pending: Mutex<Pending>,
    /// Poked when records were queued.
    dirty: Notify,
    /// The log, while the flusher does not hold it for a blocking append.
    store: Mutex<Option<Store>>,
    /// Handlers may append themselves (fsync off and `flush_ms` 0).
    inline: bool,
}

#[derive(Default)]
struct Pending {
    /// Records waiting for the flusher, oldest first.
    queue: Vec<Vec<u8>>,
    /// The flusher has taken a batch that is not durable yet (being written, or waiting to be
    /// retried after a failure): newer records must queue behind it.
    busy: bool,
    /// Records of this incarnation made durable, by either path.
    durable: u64,
}

impl Records {
    fn new(store: Store, flush_ms: Millis) -> Records {
        Records {
            pending: Mutex::new(Pending::default()),
            dirty: Notify::new(),
            inline: !store.fsync() && flush_ms == 0,
            store: Mutex::new(Some(store)),
        }
    }

    /// Makes `records` durable at once if it can (see [`Records`]) and returns the new count of
    /// durable records; otherwise queues them for the flusher and returns `None`.
    fn hand_off(&self, records: Vec<Vec<u8>>) -> Option<u64> {
        let mut pending = lock(&self.pending);
        if self.inline && pending.queue.is_empty() && !pending.busy {
            if let Some(store) = lock(&self.store).as_mut() {
                match store.append(&records) {
                    Ok(()) => {
                        pending.durable += records.len() as u64;
                        return Some(pending.durable);
                    }
                    Err(e) => tracing::error!(
                        records = records.len(),
                        "cannot persist records (the flusher retries; nothing waiting on them is acknowledged): {e}"
                    ),
                }
            }
        }
        pending.queue.extend(records);
        drop(pending);
        self.dirty.notify_one();
        None
    }

    /// Replaces the log with `snapshot` ([`Store::compact`]) if nothing is queued or being
    /// written (the host offers a compaction only then; this is the shell's own check). Returns
    /// whether the log was replaced.
    fn compact(&self, snapshot: &[Vec<u8>]) -> bool {
        let pending = lock(&self.pending);
        if !pending.queue.is_empty() || pending.busy {
            return false;
        }
        let mut store = lock(&self.store);
        let Some(store) = store.as_mut() else {
            return false;
        };
        let before = store.len();
        match store.compact(snapshot) {
            Ok(()) => {
                tracing::info!(
                    before_bytes = before,
                    after_bytes = store.len(),
                    records = snapshot.len(),
                    "log compacted"
                );
                true
            }
            Err(e) => {
                tracing::error!("cannot compact the log (the old log stays in use): {e}");
                false
            }
        }
    }
}

/// Unregisters a signal handler when dropped.
struct Unregister(Option<signal_hook::SigId>);

impl Drop for Unregister {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a handler panicked; the state is still the best we have.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<W: Workload> Shared<W> {
    /// Runs `f` on the host, hands off the records it emitted, sends its outputs (waiting if the
    /// writer is behind: back-pressure), and pokes the sync task if the next tick moved.
    /// Returns false if the writer is gone.
    async fn with_host(&self, f: impl FnOnce(&mut Host<W>, Millis)) -> bool {
        let lines = self.run_host(f);
        let sent = self.send(lines).await;
        self.maybe_compact();
        sent
    }

    /// Compacts the log if the host says it is due ([`Host::take_compaction`]): after the outputs
    /// of the call that made it due have been handed to the writer, so no reply waits for it. The
    /// node's lock is held throughout, so no record can be taken (and none appended) between the
    /// snapshot and the swap of files; handlers wait meanwhile (a copy of the live state into a
    /// new file, plus its syncs with `MURMUR_FSYNC=1`), which the size rule makes rare: each
    /// compaction follows at least as many appended bytes as it writes.
    fn maybe_compact(&self) {
        let Some(records) = &self.records else {
            return;
        };
        let mut host = lock(&self.host);
        let Some(snapshot) = host.take_compaction() else {
            return;
        };
        let ok = records.compact(&snapshot);
        host.compacted(ok);
    }

    /// The synchronous part of [`Shared::with_host`]: the lock is released before any `.await`.
    fn run_host(&self, f: impl FnOnce(&mut Host<W>, Millis)) -> Vec<Line> {
        let now = self.clock.now();
        let (lines, next) = {
            let mut host = lock(&self.host);
            notice_resume(&self.resumed, &mut host, now);
            f(&mut host, now);
            if let Some(records) = &self.records {
                host.persist_with(now, |taken| records.hand_off(taken));
            }
            let lines: Vec<Line> = host.drain().into_iter().map(boxed).collect();
            (lines, host.next_tick(now).unwrap_or(NO_TICK))
        };
        // Any move re-arms the sync task's sleep: sooner, so the tick is not late; later too, so
        // the process is not woken for a deadline that has gone (a leaf's liveness deadline moves
        // with every message from its hub). Re-arming is a poll of a task on this same thread; a
        // stale wake-up is a sleep and a wake of the whole process.
        if self.tick_at.swap(next, Ordering::Relaxed) != next {
            self.tick_moved.notify_one();
        }
        lines
    }

    async fn send(&self, lines: Vec<Line>) -> bool {
        lines.is_empty() || self.out.send(lines).await.is_ok()
    }
}

/// A stream of SIGCONTs that wakes the sync task, or `None` if it cannot be set up (then a resume
/// is noticed with the next message, as before init).
///
/// The flag set by the signal handler is what orders a resume before the backlog; this stream makes
/// sure it is *taken* promptly. Without it, a SIGCONT that reaches a node that was not stopped
/// (Maelstrom resumes *all* nodes, paused or not) and then sits idle would only be noticed with
/// the next message, possibly seconds later, and the guard would date that fresh request back to
/// before the idle spell and drop it (a final read lost this way left restarted nodes unread).
fn sigcont_stream() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::from_raw(signal_hook::consts::SIGCONT))
        .map_err(|e| tracing::warn!("cannot wake on SIGCONT (a resume is noticed late): {e}"))
        .ok()
}

/// The next signal of `stream`; never, if there is none.
async fn next_signal(stream: &mut Option<tokio::signal::unix::Signal>) {
    match stream {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Tells the host about a SIGCONT received since the last check.
fn notice_resume<W: Workload>(flag: &AtomicBool, host: &mut Host<W>, now: Millis) {
    if flag.swap(false, Ordering::Relaxed) {
        host.resumed(now);
    }
}

/// Runs the node over the process's stdin and stdout.
pub async fn run<W: Workload>(config: W::Config, shell: ShellConfig) -> anyhow::Result<()> {
    run_io::<W, _, _>(config, shell, stdin(), stdout()).await
}

/// Stdin. A pipe (as under Maelstrom) is read in non-blocking mode on the runtime's own thread, so
/// a message costs no hand-off between threads; anything else (a terminal, a file) goes through
/// tokio's blocking-pool reader.
fn stdin() -> Box<dyn tokio::io::AsyncRead + Unpin + Send> {
    match dup(std::io::stdin()).and_then(|fd| pipe::Receiver::from_owned_fd(fd).ok()) {
        Some(p) => Box::new(p),
        None => Box::new(tokio::io::stdin()),
    }
}

/// Stdout, the same way as [`stdin`].
fn stdout() -> Box<dyn tokio::io::AsyncWrite + Unpin + Send> {
    match dup(std::io::stdout()).and_then(|fd| pipe::Sender::from_owned_fd(fd).ok()) {
        Some(p) => Box::new(p),
        None => Box::new(tokio::io::stdout()),
    }
}

/// A descriptor of our own for a standard stream (tokio's pipe types take ownership).
fn dup(stream: impl std::os::fd::AsFd) -> Option<std::os::fd::OwnedFd> {
    stream.as_fd().try_clone_to_owned().ok()
}

/// Runs the node over any byte streams (tests drive it through in-memory pipes).
pub async fn run_io<W, R, Wr>(
    config: W::Config,
    shell: ShellConfig,
    input: R,
    output: Wr,
) -> anyhow::Result<()>
where
    W: Workload,
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    Wr: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let clock = Clock(Instant::now());
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound<W::Msg>>(INBOX);
    let (out_tx, out_rx) = mpsc::channel::<Vec<Line>>(OUTBOX);
    let mut host = Host::<W>::new(config, shell.stall_ms, shell.reply_deadline_ms, clock.now());
    host.set_compact_min(shell.compact_min_bytes);

    let reader = tokio::spawn(read_lines::<W::Msg, R>(input, in_tx, shell.max_line_bytes));
    let writer = tokio::spawn(write_lines(output, out_rx));
    let (stop_tx, stop_rx) = watch::channel(false);
    // SIGCONT marks the end of a pause (see `Host::resumed`). The handler only sets a flag; it is
    // unregistered when the node stops.
    let resumed = Arc::new(AtomicBool::new(false));
    let sigcont = signal_hook::flag::register(signal_hook::consts::SIGCONT, Arc::clone(&resumed))
        .map_err(|e| tracing::warn!("cannot watch for SIGCONT (pauses will go unnoticed): {e}"))
        .ok();
    let _unregister = Unregister(sigcont);

    // Phase 1: wait for init. No other task touches the host yet.
    let mut store = None;
    let mut init_failure = None;
    while let Some(inbound) = in_rx.recv().await {
        let now = clock.now();
        notice_resume(&resumed, &mut host, now);
        if let Some(request) = host.receive(now, inbound) {
            let recovered = if host.persistent() {
                if shell.clean_stale_runs {
                    store::remove_stale_runs(&store::default_parent(), &shell.data_root);
                }
                let dir = shell.data_root.join(store::dir_name(&request.node_id));
                // On the runtime thread, blocking it: this happens once, while the node has
                // nothing else to do (it answers nothing before `init_ok`; stdin waits in its
                // pipe), and it spares each start the creation of a blocking-pool thread.
                match Store::open(&dir, shell.fsync) {
                    Ok(opened) => {
                        store = Some(opened.store);
                        Ok(opened.records)
                    }
                    Err(e) => {
                        let text = format!("cannot open the data directory {}: {e}", dir.display());
                        init_failure = Some(text.clone());
                        Err(text)
                    }
                }
            } else {
                Ok(Vec::new())
            };
            let boot_unix_micros = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            host.init(clock.now(), request, recovered, boot_unix_micros);
        }
        let lines: Vec<Line> = host.drain().into_iter().map(boxed).collect();
        if !lines.is_empty() {
            let _ = out_tx.send(lines).await;
        }
        if host.is_running() || init_failure.is_some() {
            break;
        }
    }
    if !host.is_running() {
        match &init_failure {
            None => tracing::info!("stdin closed before init; exiting"),
            Some(_) => tracing::info!("exiting: init failed"),
        }
        drop(out_tx);
        let _ = writer.await;
        reader.abort();
        return match init_failure {
            None => Ok(()),
            Some(text) => Err(anyhow::anyhow!(text)),
        };
    }
    let shared = Arc::new(Shared::<W> {
        host: Mutex::new(host),
        resumed: Arc::clone(&resumed),
        out: out_tx,
        clock,
        records: store.map(|store| Records::new(store, shell.flush_ms)),
        tick_at: AtomicU64::new(NO_TICK),
        tick_moved: Notify::new(),
    });

    // Phase 2: the sync and flush tasks. A first empty pass asks the workload when it wants its
    // first tick (a recovered node may have gossip to resume) and hands off the records init
    // emitted.
    shared.with_host(|_, _| {}).await;
    let sync = {
        let shared = Arc::clone(&shared);
        let mut stop = stop_rx.clone();
        // The sync task also wakes on SIGCONT, to tell the host at once (see `sigcont_stream`).
        let mut sigcont = sigcont_stream();
        tokio::spawn(async move {
            loop {
                let at = shared.tick_at.load(Ordering::Relaxed);
                let moved = shared.tick_moved.notified();
                if at == NO_TICK {
                    tokio::select! {
                        _ = moved => continue,
                        _ = next_signal(&mut sigcont) => {
                            if !shared.with_host(|_, _| {}).await {
                                break;
                            }
                            continue;
                        }
                        _ = stop.changed() => break,
                    }
                }
                if at > shared.clock.now() {
                    let deadline = shared.clock.0 + Duration::from_millis(at);
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline.into()) => {}
                        _ = moved => continue,
                        _ = next_signal(&mut sigcont) => {
                            if !shared.with_host(|_, _| {}).await {
                                break;
                            }
                            continue;
                        }
                        _ = stop.changed() => break,
                    }
                }
                // Due (or woken early by a stale deadline): the workload decides.
                let alive = shared.with_host(|host, now| host.tick(now)).await;
                if !alive {
                    break;
                }
            }
        })
    };
    let (flush_stop_tx, flush_stop_rx) = watch::channel(false);
    let flusher = shared.records.as_ref().map(|_| {
        tokio::spawn(flush_loop(
            Arc::clone(&shared),
            shell.flush_ms,
            flush_stop_rx,
        ))
    });

    // Phase 3: listen until stdin closes. Workload messages already waiting are handled as one
    // burst (see `BURST`); anything else ends the burst and is handled next.
    let mut next = None;
    let mut burst = Vec::with_capacity(BURST);
    loop {
        let inbound = match next.take() {
            Some(i) => i,
            None => match in_rx.recv().await {
                Some(i) => i,
                None => break,
            },
        };
        let alive = match inbound {
            Inbound::Msg(msg) => {
                burst.push(msg);
                while burst.len() < BURST {
                    match in_rx.try_recv() {
                        Ok(Inbound::Msg(m)) => burst.push(m),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                shared
                    .with_host(|host, now| {
                        for msg in burst.drain(..) {
                            // Already initialised: no init request can come back.
                            let _ = host.receive(now, Inbound::Msg(msg));
                        }
                    })
                    .await
            }
            other => {
                shared
                    .with_host(|host, now| {
                        let _ = host.receive(now, other);
                    })
                    .await
            }
        };
        if !alive {
            break;
        }
    }

    tracing::info!("stdin closed; shutting down");
    let _ = stop_tx.send(true);
    let _ = sync.await;
    let _ = flush_stop_tx.send(true);
    let flushed = match flusher {
        Some(f) => f.await?,
        None => Ok(()),
    };
    drop(shared);
    writer.await??;
    // At EOF the reader has already ended; if the writer failed first, stdin may still be open.
    drop(in_rx);
    reader.abort();
    let _ = reader.await;
    flushed
}

/// The flusher: group commit of the workload's records (see the module docs). Returns an error
/// only if the final flush at shutdown failed.
async fn flush_loop<W: Workload>(
    shared: Arc<Shared<W>>,
    flush_ms: Millis,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(records) = shared.records.as_ref() else {
        return Ok(());
    };
    // Records taken from the queue and not yet durable, oldest first.
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut failures: u32 = 0;
    loop {
        let stopping = *stop.borrow();
        if !stopping {
            tokio::select! {
                _ = records.dirty.notified() => {}
                _ = stop.changed() => {}
            }
            if flush_ms > 0 {
                tokio::time::sleep(Duration::from_millis(flush_ms)).await;
            }
        }
        let stopping = *stop.borrow();
        {
            let mut pending = lock(&records.pending);
            batch.append(&mut pending.queue);
            pending.busy = !batch.is_empty();
        }
        if batch.is_empty() {
            if stopping {
                return Ok(());
            }
            continue;
        }
        let Some(mut store) = lock(&records.store).take() else {
            anyhow::bail!("the store was lost; {} records not persisted", batch.len());
        };
        let taken = std::mem::take(&mut batch);
        let (store, taken, result) = if store.fsync() {
            tokio::task::spawn_blocking(move || {
                let r = store.append(&taken);
                (store, taken, r)
            })
            .await
            .map_err(|e| anyhow::anyhow!("the flush thread failed: {e}"))?
        } else {
            // A copy into the mapped log (the page cache): cheaper inline than a thread hand-off.
            let r = store.append(&taken);
            (store, taken, r)
        };
        *lock(&records.store) = Some(store);
        match result {
            Ok(()) => {
                failures = 0;
                {
                    let mut pending = lock(&records.pending);
                    pending.durable += taken.len() as u64;
                    pending.busy = false;
                }
                // The count is read under the node's lock: handlers may append in between.
                if !shared
                    .with_host(|host, now| {
                        let durable = lock(&records.pending).durable;
                        host.durable(durable, now)
                    })
                    .await
                {
                    return Ok(());
                }
            }
            Err(e) => {
                failures += 1;
                tracing::error!(
                    records = taken.len(),
                    attempt = failures,
                    "cannot persist records (will retry; nothing waiting on them is acknowledged): {e}"
                );
                batch = taken;
                if stopping && failures >= FINAL_FLUSH_ATTEMPTS {
                    anyhow::bail!(
                        "final flush failed {failures} times; {} records not persisted: {e}",
                        batch.len()
                    );
                }
                let backoff = RETRY_MS
                    .0
                    .saturating_mul(1 << failures.min(10))
                    .min(RETRY_MS.1);
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                records.dirty.notify_one();
            }
        }
    }
}

async fn read_lines<M, R>(input: R, tx: mpsc::Sender<Inbound<M>>, max_line: usize)
where
    M: serde::de::DeserializeOwned + Send + 'static,
    R: tokio::io::AsyncRead + Unpin,
{
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut raw: Vec<u8> = Vec::with_capacity(4096);
    // The current line passed `max_line`: its bytes are being discarded up to its newline.
    let mut skipping = false;
    loop {
        let (used, line_done, eof) = match input.fill_buf().await {
            Ok([]) => (0, !raw.is_empty(), true),
            Ok(buf) => {
                let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..=i], true),
                    None => (buf, false),
                };
                if !skipping && raw.len() + chunk.len() > max_line.saturating_add(1) {
                    tracing::warn!(
                        "skipping a stdin line longer than {max_line} bytes (starts {:?})",
                        String::from_utf8_lossy(&raw[..raw.len().min(80)])
                    );
                    skipping = true;
                    raw = Vec::with_capacity(4096);
                }
                if !skipping {
                    raw.extend_from_slice(chunk);
                }
                (chunk.len(), done, false)
            }
            Err(e) => {
                tracing::error!("stdin read failed: {e}");
                (0, !raw.is_empty(), true)
            }
        };
        input.consume(used);
        if line_done {
            if !skipping && !deliver(&raw, &tx).await {
                break;
            }
            skipping = false;
            if raw.capacity() > 1 << 20 {
                raw = Vec::with_capacity(4096);
            } else {
                raw.clear();
            }
        }
        if eof {
            break;
        }
    }
}

/// Classifies one raw line and queues it for the listen task; false once the listener is gone.
async fn deliver<M: serde::de::DeserializeOwned>(
    raw: &[u8],
    tx: &mpsc::Sender<Inbound<M>>,
) -> bool {
    let Ok(line) = std::str::from_utf8(raw) else {
        tracing::warn!(
            "skipping a stdin line that is not valid UTF-8 ({} bytes)",
            raw.len()
        );
        return true;
    };
    if line.trim().is_empty() {
        return true;
    }
    match parse_line::<M>(line.trim_end()) {
        Ok(inbound) => tx.send(inbound).await.is_ok(),
        Err(e) => {
            tracing::warn!("{e}");
            true
        }
    }
}

async fn write_lines<W: tokio::io::AsyncWrite + Unpin>(
    output: W,
    mut rx: mpsc::Receiver<Vec<Line>>,
) -> std::io::Result<()> {
    let mut out = tokio::io::BufWriter::with_capacity(1 << 16, output);
    let mut buf = Vec::with_capacity(4096);
    while let Some(batch) = rx.recv().await {
        for line in batch {
            buf.clear();
            if let Err(e) = line.write_to(&mut buf) {
                tracing::error!("cannot serialise an outgoing message: {e}");
                continue;
            }
            buf.push(b'\n');
            out.write_all(&buf).await?;
        }
        if rx.is_empty() {
            out.flush().await?;
        }
    }
    out.flush().await
}

#[cfg(test)]
mod tests;
