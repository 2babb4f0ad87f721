//! Processes the nodes leave behind. A node may fork helpers that leave its process group
//! (`setsid`, a daemon's double fork), which the group SIGKILL cannot reach; they keep running
//! after the node is gone and may hold its pipes open. The `maelstrom` binary makes itself a
//! *child subreaper* (Linux `prctl(PR_SET_CHILD_SUBREAPER)`) with [`become_subreaper`]: every
//! orphaned descendant of a node is then re-parented to the runner instead of to init, and at
//! teardown, once every node has been killed and reaped, [`kill_orphans`] SIGKILLs and reaps
//! whatever children the runner still has. Every child of the runner's process is a node or a
//! node's descendant, so nothing else can be hit; a library user that spawns children of its own
//! (a test harness) simply does not call [`become_subreaper`], and [`kill_orphans`] does nothing.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

static SUBREAPER: AtomicBool = AtomicBool::new(false);

/// Makes this process the reaper of its orphaned descendants (see the module docs) and enables
/// [`kill_orphans`]. Call it once, from `main`, before any node starts.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    SUBREAPER.store(true, Ordering::SeqCst);
    Ok(())
}

/// A child process of the runner, found by [`kill_orphans`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub pid: u32,
    /// Its command name (`/proc/<pid>/stat`), for the report.
    pub name: String,
    /// It had already exited (a zombie, e.g. a helper that died with its node's process group):
    /// only reaped, not a process left running.
    pub dead: bool,
}

impl std::fmt::Display for Orphan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.pid, self.name)
    }
}

/// SIGKILLs and reaps every child this process still has, round after round (a killed orphan's
/// own children are re-parented to us in turn), for at most `timeout`. Only after every node has
/// been reaped, and only in a process that called [`become_subreaper`]; otherwise a no-op.
/// Returns every child found; those that were still running (`!dead`) are the ones the nodes
/// left behind.
pub fn kill_orphans(timeout: Duration) -> Vec<Orphan> {
    let mut killed = Vec::new();
    if !SUBREAPER.load(Ordering::SeqCst) {
        return killed;
    }
    let deadline = Instant::now() + timeout;
    loop {
        let children = children_of(std::process::id());
        if children.is_empty() || Instant::now() >= deadline {
            if !children.is_empty() {
                tracing::warn!(
                    "{} processes left behind by the nodes are still alive after {timeout:?}",
                    children.len()
                );
            }
            return killed;
        }
        for child in children {
            let Ok(pid) = libc::pid_t::try_from(child.pid) else {
                continue;
            };
            // SAFETY: kill(2) and waitpid(2) have no memory-safety preconditions; `pid` is our
            // unreaped child, so it cannot have been recycled.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let mut nap = Duration::from_millis(1);
            // SAFETY: as above; a null status pointer is allowed.
            while unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0
                && Instant::now() < deadline
            {
                thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            if !killed.iter().any(|k: &Orphan| k.pid == child.pid) {
                killed.push(child);
            }
        }
    }
}

/// The processes whose parent is `parent`, from `/proc/<pid>/stat`.
fn children_of(parent: u32) -> Vec<Orphan> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (name, state, ppid) = parse_stat(&stat)?;
            (ppid == parent).then(|| Orphan {
                pid,
                name: name.to_string(),
                dead: matches!(state, "Z" | "X"),
            })
        })
        .collect()
}

/// The command name, state and parent pid from a `/proc/<pid>/stat` line:
/// `pid (comm) state ppid ...`, where comm may itself contain spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(&str, &str, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut rest = stat.get(close + 1..)?.split_ascii_whitespace();
    let state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((name, state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        assert_eq!(
            parse_stat("4242 (hostile (x) y) S 17 4242 4242 0 -1"),
            Some(("hostile (x) y", "S", 17))
        );
        assert_eq!(parse_stat("1 (init) S"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn finds_this_process_among_its_parents_children() {
        // SAFETY: getppid has no preconditions.
        let parent = u32::try_from(unsafe { libc::getppid() }).unwrap();
        let me = std::process::id();
        assert!(children_of(parent).iter().any(|c| c.pid == me));
    }

    #[test]
    fn does_nothing_unless_a_subreaper() {
        // Test binaries never call become_subreaper: other tests' children must be safe.
        assert!(kill_orphans(Duration::from_millis(10)).is_empty());
    }
}
