//! The tokio shell around a [`Workload`]: the only place that touches stdin, stdout and the clock.
//!
//! ```text
//!  stdin ──> reader task ──mpsc──> listen task ──┐            ┌──> writer task ──> stdout
//!                                                ├─ lock node ─┤
//!                         interval ──> sync task ┘  (compute,  └── mpsc of envelopes
//!                                                    unlock, send)
//! ```
//! - **reader** owns stdin: reads lines and classifies them with [`parse_line`] (malformed lines are
//!   logged to stderr and skipped) into a bounded channel, which gives back-pressure.
//! - **listen** waits for `init`, builds the workload from it (answering client requests that come
//!   earlier with error 11, and dropping peer messages, which peers retry), then handles messages.
//! - **sync** calls [`Workload::tick`] every [`Workload::tick_interval`] (missed ticks are delayed,
//!   not bunched).
//! - **writer** alone owns stdout, so lines never interleave; it flushes whenever its queue is
//!   momentarily empty.
//!
//! The node state sits behind one `std::sync::Mutex`: every critical section is a pure function
//! call, never held across `.await`, so a blocking mutex is the right tool (as in mini-redis).
//!
//! **Shutdown.** EOF on stdin is the normal end: the reader stops, the listen task handles what was
//! already queued, the sync task is stopped, the writer drains its queue and flushes, and the
//! process exits 0.

use crate::node::{parse_line, Ctx, Inbound, InitInfo, Message, Millis, Workload};
use crate::wire::{is_client, Body, Common, Envelope, ErrorCode};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Capacity of the reader → listen channel: enough to absorb a burst, small enough to push back.
const INBOX: usize = 4096;

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
    tracing::info!(?config, "starting");
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
    match rt.block_on(run::<W>(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The monotonic clock handlers see: milliseconds since the shell started.
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

/// Runs the node over the process's stdin and stdout.
pub async fn run<W: Workload>(config: W::Config) -> anyhow::Result<()> {
    run_io::<W, _, _>(config, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Runs the node over any byte streams (tests drive it through in-memory pipes).
pub async fn run_io<W, R, Wr>(config: W::Config, input: R, output: Wr) -> anyhow::Result<()>
where
    W: Workload,
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    Wr: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let clock = Clock(Instant::now());
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound<W::Msg>>(INBOX);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<Line>>();

    let reader = tokio::spawn(read_lines::<W::Msg, R>(input, in_tx));
    let writer = tokio::spawn(write_lines(output, out_rx));

    // Phase 1: wait for init.
    let mut node = None;
    while let Some(inbound) = in_rx.recv().await {
        match inbound {
            Inbound::Common(env) => match env.body.payload {
                Common::Init { node_id, node_ids } => {
                    let boot_unix_micros = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_micros() as u64)
                        .unwrap_or(0);
                    let info = InitInfo {
                        node_id: node_id.clone(),
                        node_ids,
                        boot_unix_micros,
                        recovered: Vec::new(),
                    };
                    tracing::info!(node = %node_id, nodes = info.node_ids.len(), "init");
                    node = Some((
                        W::init(&info, &config, clock.now()),
                        Ctx::<W::Msg>::new(node_id.clone()),
                    ));
                    let reply = Envelope {
                        id: None,
                        src: node_id,
                        dest: env.src,
                        body: Body {
                            msg_id: None,
                            in_reply_to: env.body.msg_id,
                            payload: Common::InitOk,
                        },
                    };
                    let _ = out_tx.send(vec![boxed(reply)]);
                    break;
                }
                other => tracing::debug!(?other, "ignoring non-init message before init"),
            },
            Inbound::Msg(m) => refuse_before_init(
                &out_tx,
                m.src,
                m.dest,
                m.body.msg_id,
                m.body.in_reply_to.is_some(),
            ),
            Inbound::Reject {
                src,
                dest,
                msg_id,
                is_reply,
                ..
            } => refuse_before_init(&out_tx, src, dest, msg_id, is_reply),
        }
    }
    let Some((state, ctx)) = node else {
        tracing::info!("stdin closed before init; exiting");
        drop(out_tx);
        let _ = writer.await;
        let _ = reader.await;
        return Ok(());
    };
    let shared = Arc::new(Mutex::new((state, ctx)));

    // Phase 2: the sync task.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sync = W::tick_interval(&config).map(|every| {
        let shared = Arc::clone(&shared);
        let out_tx = out_tx.clone();
        tokio::spawn(async move {
            let mut interval =
                tokio::time::interval(std::time::Duration::from_millis(every.max(1)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                let out = {
                    let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let (state, ctx) = &mut *guard;
                    state.tick(clock.now(), ctx);
                    ctx.drain()
                };
                if !out.is_empty() && out_tx.send(out.into_iter().map(boxed).collect()).is_err() {
                    break;
                }
            }
        })
    });

    // Phase 3: listen until stdin closes.
    while let Some(inbound) = in_rx.recv().await {
        let out: Vec<Line> = match inbound {
            Inbound::Msg(msg) => handle(&shared, msg, clock.now()),
            Inbound::Common(env) => {
                if let Common::Init { .. } = env.body.payload {
                    tracing::warn!(src = %env.src, "second init ignored; answering init_ok");
                    let me = shared
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .1
                        .me()
                        .to_string();
                    vec![boxed(Envelope {
                        id: None,
                        src: me,
                        dest: env.src,
                        body: Body {
                            msg_id: None,
                            in_reply_to: env.body.msg_id,
                            payload: Common::InitOk,
                        },
                    })]
                } else {
                    tracing::debug!(src = %env.src, body = ?env.body, "unsolicited reply ignored");
                    vec![]
                }
            }
            Inbound::Reject {
                src,
                dest,
                msg_id,
                is_reply,
                code,
                text,
            } => {
                tracing::warn!(%src, %code, "{text}");
                if is_reply {
                    vec![]
                } else {
                    vec![boxed(error_line(dest, src, msg_id, code, text))]
                }
            }
        };
        if !out.is_empty() && out_tx.send(out).is_err() {
            break;
        }
    }

    tracing::info!("stdin closed; shutting down");
    let _ = stop_tx.send(true);
    if let Some(sync) = sync {
        let _ = sync.await;
    }
    drop(out_tx);
    writer.await??;
    reader.await?;
    Ok(())
}

fn handle<W: Workload>(
    shared: &Mutex<(W, Ctx<W::Msg>)>,
    msg: Message<W::Msg>,
    now: Millis,
) -> Vec<Line> {
    let out = {
        let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
        let (state, ctx) = &mut *guard;
        state.handle(msg, now, ctx);
        ctx.drain()
    };
    out.into_iter().map(boxed).collect()
}

fn error_line(
    src: String,
    dest: String,
    in_reply_to: Option<u64>,
    code: ErrorCode,
    text: String,
) -> Envelope<Body<Common>> {
    Envelope {
        id: None,
        src,
        dest,
        body: Body {
            msg_id: None,
            in_reply_to,
            payload: Common::Error(crate::wire::ErrorBody {
                code: code as u32,
                text: Some(text),
            }),
        },
    }
}

/// Before `init` a client request gets error 11 (temporarily-unavailable: definite, so Maelstrom
/// records a clean failure); peer traffic is dropped because peers retry.
fn refuse_before_init(
    out: &mpsc::UnboundedSender<Vec<Line>>,
    src: String,
    dest: String,
    msg_id: Option<u64>,
    is_reply: bool,
) {
    if is_reply || !is_client(&src) || msg_id.is_none() {
        tracing::debug!(%src, "dropping peer message received before init");
        return;
    }
    tracing::warn!(%src, "request before init");
    let _ = out.send(vec![boxed(error_line(
        dest,
        src,
        msg_id,
        ErrorCode::TemporarilyUnavailable,
        "node not initialised yet: waiting for init".into(),
    ))]);
}

async fn read_lines<M, R>(input: R, tx: mpsc::Sender<Inbound<M>>)
where
    M: serde::de::DeserializeOwned + Send + 'static,
    R: tokio::io::AsyncRead + Unpin,
{
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut raw = Vec::with_capacity(4096);
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!("stdin read failed: {e}");
                break;
            }
        }
        let Ok(line) = std::str::from_utf8(&raw) else {
            tracing::warn!(
                "skipping a stdin line that is not valid UTF-8 ({} bytes)",
                raw.len()
            );
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line::<M>(line.trim_end()) {
            Ok(inbound) => {
                if tx.send(inbound).await.is_err() {
                    break;
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

async fn write_lines<W: tokio::io::AsyncWrite + Unpin>(
    output: W,
    mut rx: mpsc::UnboundedReceiver<Vec<Line>>,
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
