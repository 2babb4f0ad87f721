//! The main-phase progress bar and the counters that feed it.

use crate::history::OpType;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

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
    pub(super) fn message(&self, elapsed: Duration, limit: Duration, phase: &str) -> String {
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
