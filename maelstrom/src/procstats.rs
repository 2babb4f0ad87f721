//! Resource use of node processes, read from Linux's `/proc` just before the runner stops them:
//! CPU seconds (user + system) and peak resident memory. Used for the benchmark tables; on other
//! systems (or if `/proc` is unreadable) the figures are simply absent.
//!
//! `/proc/<pid>/stat` counts CPU in clock ticks (10 ms), truncated per process: summed over 25
//! nodes that understates a run by up to a quarter of a second. So the runner also reads
//! [`reaped_children`] (`getrusage(RUSAGE_CHILDREN)`, microseconds, every thread, filled in as each
//! incarnation is reaped) before and after a run, and reports the difference.
//!
//! Wake-ups are voluntary context switches: each time a node went to sleep (waiting for input or a
//! timer) and was woken again. On a virtual machine a wake-up costs far more than handling a small
//! message, so node CPU is close to wake-ups × the cost of one (see `just bench`).

use serde::Serialize;

/// What one node process used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcStats {
    /// User + system CPU time, seconds.
    #[serde(rename = "cpu-seconds")]
    pub cpu_seconds: f64,
    /// Peak resident set size (`VmHWM`), KiB.
    #[serde(rename = "peak-rss-kib")]
    pub peak_rss_kib: u64,
    /// Voluntary context switches (the process slept and was woken).
    #[serde(rename = "wake-ups")]
    pub wakeups: u64,
}

impl ProcStats {
    /// Reads the stats of a live (or zombie, not yet reaped) process.
    pub fn read(pid: u32) -> Option<ProcStats> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
        Some(ProcStats {
            cpu_seconds: parse_cpu_seconds(&stat, clock_ticks())?,
            peak_rss_kib: status.as_deref().and_then(parse_hwm).unwrap_or(0),
            wakeups: status.as_deref().and_then(parse_wakeups).unwrap_or(0),
        })
    }

    /// Adds another incarnation's (or node's) use.
    pub fn add(&mut self, other: ProcStats) {
        self.cpu_seconds += other.cpu_seconds;
        self.peak_rss_kib += other.peak_rss_kib;
        self.wakeups += other.wakeups;
    }
}

/// What every child process this process has reaped so far used (all their threads). The
/// runner's only children are nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChildUsage {
    /// User + system CPU, microseconds. An integer, so that the difference of two readings is
    /// exact and prints as the short decimal it is (a difference of `f64` seconds can print as
    /// `0.013364000000000044`).
    pub cpu_micros: u64,
    /// Voluntary context switches.
    pub wakeups: u64,
}

/// `getrusage(RUSAGE_CHILDREN)`: see [`ChildUsage`].
pub fn reaped_children() -> Option<ChildUsage> {
    // SAFETY: getrusage writes into the zeroed struct we own; no other preconditions.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return None;
    }
    let micros = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    Some(ChildUsage {
        cpu_micros: micros(ru.ru_utime) + micros(ru.ru_stime),
        wakeups: u64::try_from(ru.ru_nvcsw).unwrap_or(0),
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; a failure returns -1, handled below.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `utime` and `stime` are fields 14 and 15 of `/proc/<pid>/stat`, counted after the `)` that ends
/// the command name (which may itself contain spaces and parentheses).
fn parse_cpu_seconds(stat: &str, ticks: f64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the first field is the state (field 3), so utime (14) is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks)
}

/// The main thread's count (the node shell does everything on it).
fn parse_wakeups(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
}

fn parse_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let stat = "1234 (my (odd) node) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 1000 10";
        assert_eq!(parse_cpu_seconds(stat, 100.0), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage", 100.0), None);
    }

    #[test]
    fn parses_peak_rss() {
        assert_eq!(
            parse_hwm("Name:\tx\nVmHWM:\t   5120 kB\nVmRSS:\t1 kB\n"),
            Some(5120)
        );
        assert_eq!(parse_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn parses_wakeups() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t412\nnonvoluntary_ctxt_switches:\t9\n";
        assert_eq!(parse_wakeups(status), Some(412));
        assert_eq!(parse_wakeups("Name:\tx\n"), None);
    }

    #[test]
    fn reaped_children_are_accounted_precisely() {
        let before = reaped_children().expect("getrusage works");
        // Busy, then asleep five times (each sleep is a voluntary context switch).
        let status = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; for j in 1 2 3 4 5; do sleep 0.01; done",
            ])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let after = reaped_children().unwrap();
        assert!(
            after.cpu_micros > before.cpu_micros,
            "a busy child's CPU is counted once reaped"
        );
        assert!(
            after.wakeups >= before.wakeups + 5,
            "a child that slept five times woke at least five times: {before:?} → {after:?}"
        );
    }

    #[test]
    fn reads_this_process() {
        let s = ProcStats::read(std::process::id()).expect("/proc is readable on Linux");
        assert!(s.peak_rss_kib > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
