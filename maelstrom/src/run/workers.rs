//! The worker threads that issue client ops, and the generator's phases that drive them.

use super::nodes::RunCtx;
use super::switchboard::Switchboard;
use super::{RECOVERY_WAIT, RPC_TIMEOUT};
use crate::coordinator::{next_nemesis_op, process_after_info, FinalOps, OpSchedule};
use crate::history::{OpType, Process};
use crate::nemesis::{final_ops, FaultSet, NemesisPlan};
use crate::results::{Progress, ProgressCounters};
use crate::workload::{ClientWorkload, Completion, OpSpec, Session, Step};
use anyhow::{anyhow, bail};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self};
use std::time::{Duration, Instant};

/// What a worker is asked to do.
pub(super) struct Assignment {
    pub(super) op: OpSpec,
    pub(super) process: u64,
    pub(super) final_: bool,
}

/// A worker's report.
pub(super) struct Done {
    pub(super) worker: usize,
    pub(super) op: OpSpec,
    pub(super) process: u64,
    pub(super) completion: Completion,
    pub(super) final_: bool,
}

pub(super) fn worker(
    shared: Arc<Switchboard>,
    w: ClientWorkload,
    t: usize,
    node: String,
    timeout: Duration,
    rx: Receiver<Assignment>,
    done: Sender<Done>,
) {
    let mut client = shared.open_client();
    let mut session = Session::default();
    let aborting = || shared.aborting.load(Ordering::Relaxed);
    while let Ok(a) = rx.recv() {
        // One op may take several requests (kafka's poll, then commit_offsets).
        let (mut call, mut step) = w.begin(a.op, a.final_, &mut session);
        let completion = loop {
            match step {
                Step::Send(body) => {
                    let reply = client.call(&shared, &node, body, timeout, &aborting);
                    step = w.advance(&mut call, &mut session, &reply);
                }
                Step::Done(c) => break c,
            }
        };
        if completion.kind == OpType::Info && !w.reusable_client() {
            // The thread's process is replaced: close this client, open a fresh `c<k>`.
            shared.close_client(client);
            client = shared.open_client();
            session = Session::default();
        }
        let _ = done.send(Done {
            worker: t,
            op: call.op,
            process: a.process,
            completion,
            final_: a.final_,
        });
    }
    shared.close_client(client);
}

/// The driver thread's view of the worker threads: who is busy, each thread's current process id,
/// and the channels to and from them.
pub(super) struct Workers {
    pub(super) assign: Vec<Sender<Assignment>>,
    pub(super) done_rx: Receiver<Done>,
    pub(super) busy: Vec<bool>,
    /// Thread t's process; a fresh one after an `info` op ([`process_after_info`]).
    pub(super) process: Vec<u64>,
    pub(super) counters: Arc<ProgressCounters>,
    /// The client RPC timeout ([`ClientWorkload::client_timeout_ms`]).
    pub(super) timeout: Duration,
    /// The main phase's op schedule, told of every completion (kafka's generator follows them).
    pub(super) schedule: Option<OpSchedule>,
    pub(super) workload: ClientWorkload,
}

impl Workers {
    pub(super) fn any_busy(&self) -> bool {
        self.busy.iter().any(|b| *b)
    }

    /// Records the invocation and hands the op to thread `t`.
    pub(super) fn invoke(
        &mut self,
        ctx: &RunCtx<'_>,
        t: usize,
        op: OpSpec,
        final_: bool,
    ) -> anyhow::Result<()> {
        ctx.record(
            OpType::Invoke,
            Process::Client(self.process[t]),
            op.f,
            op.value.clone(),
            None,
            final_,
        );
        self.busy[t] = true;
        let process = self.process[t];
        self.assign[t]
            .send(Assignment {
                op,
                process,
                final_,
            })
            .map_err(|_| anyhow!("worker {t} died"))
    }

    /// Records a completion and frees its thread; hands the report back.
    pub(super) fn complete(&mut self, ctx: &RunCtx<'_>, d: Done) -> Done {
        self.busy[d.worker] = false;
        self.counters.record(d.completion.kind);
        ctx.record(
            d.completion.kind,
            Process::Client(d.process),
            d.op.f,
            d.completion.value.clone(),
            Some(&d.completion),
            d.final_,
        );
        if d.completion.kind == OpType::Info {
            self.process[d.worker] = process_after_info(d.process, self.busy.len());
        }
        if let Some(s) = self.schedule.as_mut() {
            s.observe(self.workload, d.op.f, &d.completion);
        }
        d
    }

    /// Waits until every thread is idle (each call ends within its timeout), checking for
    /// crashed nodes meanwhile so that a crash aborts the run at once.
    pub(super) fn wait_idle(&mut self, ctx: &RunCtx<'_>, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.timeout.max(RPC_TIMEOUT) + Duration::from_secs(1);
        while self.any_busy() {
            match self.done_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(d) => {
                    self.complete(ctx, d);
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => bail!("a worker did not finish its {what}"),
            }
            ctx.checkpoint()?;
        }
        Ok(())
    }
}

/// The generator's phases, in the order of [`crate::coordinator`]: the main phase (client ops at
/// `--rate`, the nemesis on its own thread, in-flight ops drained), then, for workloads that have
/// one, the final phase (final nemesis ops, the recovery wait, one final op per worker).
pub(super) fn phases(
    ctx: &RunCtx<'_>,
    workload: ClientWorkload,
    op_rng: &mut ChaCha8Rng,
    nemesis_seed: u64,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    let opts = ctx.opts;
    let shared = &ctx.shared;

    // Nemesis.
    let nemesis_stop = AtomicBool::new(false);
    let main_start = shared.now();
    let time_limit_ns = opts.time_limit_secs * 1_000_000_000;
    // `--time-limit 0` (with `--web`): until Stop is pressed.
    let cutoff = match time_limit_ns {
        0 => u64::MAX,
        ns => main_start + ns,
    };
    let faults: FaultSet = opts.nemesis.iter().copied().collect();
    let mut plan = NemesisPlan::new(
        faults,
        opts.nemesis_interval_secs,
        opts.nodes.clone(),
        nemesis_seed,
    )?;
    let progress = Progress::start(
        opts.time_limit(),
        opts.show_progress(),
        Arc::clone(&workers.counters),
    );

    // The live dashboard's controls, open for the main phase: its god thread applies them.
    let controls = ctx.live.as_ref().map(|hub| {
        hub.main_started(main_start);
        hub.open_controls()
    });
    let main = thread::scope(|s| -> anyhow::Result<()> {
        let god_handle = controls.map(|rx| {
            let stop = &nemesis_stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(g) => ctx.nemesis_step_as(g.op, g.invocation),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
        });
        let nemesis_handle = (!plan.is_empty()).then(|| {
            let stop = &nemesis_stop;
            let plan = &mut plan;
            s.spawn(move || {
                while let Some((at, op)) = next_nemesis_op(plan, shared.now(), main_start, cutoff) {
                    while shared.now() < at {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        thread::sleep(
                            Duration::from_nanos(at - shared.now()).min(Duration::from_millis(20)),
                        );
                    }
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    ctx.nemesis_step(op);
                }
            })
        });
        let main = main_phase(ctx, workload, op_rng, main_start, cutoff, workers);
        // Whatever the main phase's outcome, the nemesis stops before the final phase (or the
        // abort): from here on it must not kill, pause or partition anything.
        if let Some(hub) = &ctx.live {
            hub.close_controls();
        }
        nemesis_stop.store(true, Ordering::SeqCst);
        if let Some(h) = nemesis_handle {
            let _ = h.join();
        }
        if let Some(h) = god_handle {
            let _ = h.join();
        }
        main
    });
    ctx.main_end.store(shared.now(), Ordering::SeqCst);
    progress.finish();
    main?;

    // Final phase: heal/resume/restart, wait for recovery, then each thread's final ops (one
    // read, or kafka's catch-up polls).
    // Faults injected from the dashboard are undone as if they had been in `--nemesis`.
    let mut undo = faults;
    if let Some(hub) = &ctx.live {
        let used = hub.faults_used();
        undo.partition |= used.partition;
        undo.kill |= used.kill;
        undo.pause |= used.pause;
    }
    let live_phase = |p: &str| {
        if let Some(hub) = &ctx.live {
            hub.set_phase(p);
        }
    };
    if workload.has_final_phase() {
        live_phase("final: healing");
        for op in final_ops(undo, &opts.nodes) {
            ctx.nemesis_step(op);
        }
        live_phase("final: waiting for recovery");
        eprintln!("Waiting for recovery...");
        let wake = Instant::now() + RECOVERY_WAIT;
        loop {
            // A crash during the wait aborts now, not 10 s later.
            ctx.checkpoint()?;
            let left = wake.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(100)));
        }
        live_phase("final: reads");
        final_phase(ctx, workload, op_rng, workers)?;
    }
    Ok(())
}

/// Each thread performs its final ops ([`FinalOps`]), waiting before each as they say; ends when
/// every thread is done and idle.
fn final_phase(
    ctx: &RunCtx<'_>,
    workload: ClientWorkload,
    op_rng: &mut ChaCha8Rng,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    let shared = &ctx.shared;
    let n = workers.busy.len();
    let start = shared.now();
    let mut finals: Vec<FinalOps> = (0..n)
        .map(|_| match &workers.schedule {
            Some(s) => s.final_ops(workload, start),
            None => FinalOps::Once(workload.final_op()),
        })
        .collect();
    let mut pending: Vec<Option<(u64, OpSpec)>> = vec![None; n];
    let mut done = vec![false; n];
    let deadline_idle = workers.timeout.max(RPC_TIMEOUT) + Duration::from_secs(1);
    let mut last_progress = Instant::now();
    loop {
        let now = shared.now();
        for t in 0..n {
            if workers.busy[t] || done[t] {
                continue;
            }
            if pending[t].is_none() {
                match finals[t].next(now, op_rng) {
                    Some((gap, op)) => pending[t] = Some((now + gap, op)),
                    None => done[t] = true,
                }
            }
            if let Some((at, _)) = pending[t] {
                if now >= at {
                    let (_, op) = pending[t].take().expect("pending");
                    if finals[t].open(now) {
                        // g-set's and kafka's final ops are not marked `final?`
                        // (see `ClientWorkload::marks_final`).
                        workers.invoke(ctx, t, op, workload.marks_final())?;
                        last_progress = Instant::now();
                    } else {
                        done[t] = true;
                    }
                }
            }
        }
        if done.iter().all(|d| *d) && !workers.any_busy() {
            return Ok(());
        }
        let next_due = pending
            .iter()
            .flatten()
            .map(|(at, _)| at.saturating_sub(now))
            .min()
            .unwrap_or(100_000_000);
        match workers
            .done_rx
            .recv_timeout(Duration::from_nanos(next_due).min(Duration::from_millis(100)))
        {
            Ok(d) => {
                let d = workers.complete(ctx, d);
                finals[d.worker].observe(d.op.f, &d.completion);
                last_progress = Instant::now();
            }
            Err(RecvTimeoutError::Timeout) => {
                if workers.any_busy() && last_progress.elapsed() > deadline_idle {
                    bail!("a worker did not finish its final op");
                }
            }
            Err(RecvTimeoutError::Disconnected) => bail!("all workers died"),
        }
        ctx.checkpoint()?;
    }
}

/// Client ops staggered at `--rate` ([`OpSchedule`]) from `main_start` until `cutoff`, handed to free
/// threads round-robin; then the in-flight ops run to completion or time out. Checks for crashed
/// nodes every 100 ms.
pub(super) fn main_phase(
    ctx: &RunCtx<'_>,
    workload: ClientWorkload,
    op_rng: &mut ChaCha8Rng,
    main_start: u64,
    cutoff: u64,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    let opts = ctx.opts;
    let shared = &ctx.shared;
    let n = workers.busy.len();
    workers.schedule = Some(
        OpSchedule::start(opts.rate, n, main_start, op_rng)
            .for_nodes(opts.nodes.len())
            .with_txn(opts.txn),
    );
    let mut last_crash_check = Instant::now();
    let stopped = || ctx.live.as_ref().is_some_and(|h| h.stop_requested());
    loop {
        let now = shared.now();
        if now >= cutoff || stopped() {
            break;
        }
        if last_crash_check.elapsed() > Duration::from_millis(100) {
            last_crash_check = Instant::now();
            ctx.checkpoint()?;
            workers
                .counters
                .msgs
                .store(shared.routed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let ops = workers.schedule.as_mut().expect("set above");
        let next_at = ops.next_at();
        if now >= next_at {
            let (busy, process) = (&workers.busy, &workers.process);
            if let Some((t, op)) = ops.issue(now, n, |t| !busy[t], |t| process[t], workload, op_rng)
            {
                workers.invoke(ctx, t, op, false)?;
                continue;
            }
        }
        let wait = if now >= next_at {
            cutoff - now
        } else {
            (next_at - now).min(cutoff - now)
        };
        match workers
            .done_rx
            .recv_timeout(Duration::from_nanos(wait).min(Duration::from_millis(100)))
        {
            Ok(d) => {
                workers.complete(ctx, d);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("all workers died"),
        }
    }
    // In-flight ops run to completion or time out.
    workers.wait_idle(ctx, "op")
}
