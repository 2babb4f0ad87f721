//! Hostile Maelstrom nodes, for the runner's own tests (`tests/hostile_nodes.rs`): each attacks
//! the runner through its process, pipes or output, and the runner must survive it (a clear
//! message, the right exit code, bounded memory, no hang, no process left behind). Plain
//! synchronous code on purpose: these are fixtures, not examples.
//!
//! Without a mode it is a correct echo node. `hostile-node <mode>[,<mode>...]`, modes:
//! - `exit-before-init`: exits (code 3) before reading anything.
//! - `exit-after-init`: answers `init`, then exits (code 0).
//! - `flood-valid`: after `init`, writes valid 32 KiB messages addressed to itself as fast as it
//!   can, forever, and never reads its stdin again.
//! - `flood-junk`: after `init`, writes lines that are not JSON as fast as it can, forever.
//! - `huge-line`: after `init`, writes one 1 GiB line (a message whose body holds a huge
//!   string), then works as an echo node.
//! - `endless-line`: after `init`, writes a line that never ends.
//! - `bad-utf8`: after `init`, writes a line of invalid UTF-8, then works as an echo node.
//! - `ignore-sigterm`: ignores SIGTERM (and SIGINT, SIGHUP), otherwise an echo node.
//! - `fork-child`: after `init`, forks a child that stays in the node's process group, keeps
//!   stdin, stdout and stderr open, and sleeps forever.
//! - `fork-escape`: after `init`, forks a grandchild that leaves the process group (`setsid`),
//!   keeps the three pipes open and sleeps forever; the intermediate child exits.
//!
//! `fork-*` combine with `exit-after-init` (the node exits, its offspring hold the pipes). When
//! `HOSTILE_PIDS` names a file, every process the fixture runs (the node and its offspring)
//! appends its pid there, one per line, so a test can check that none survives the run.

use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::time::Duration;

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let modes: Vec<&str> = arg.split(',').filter(|m| !m.is_empty()).collect();
    let has = |m: &str| modes.contains(&m);
    record_pid();
    if has("ignore-sigterm") {
        // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety preconditions.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
    }
    if has("exit-before-init") {
        eprintln!("exiting before init, on purpose");
        std::process::exit(3);
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut me = String::new();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let src = msg["src"].as_str().unwrap_or_default().to_string();
        let body = &msg["body"];
        let mut reply = match body["type"].as_str().unwrap_or_default() {
            "init" => {
                me = body["node_id"].as_str().unwrap_or_default().to_string();
                json!({"type": "init_ok"})
            }
            "echo" => json!({"type": "echo_ok", "echo": body["echo"]}),
            _ => continue,
        };
        reply["in_reply_to"] = body["msg_id"].clone();
        let _ = writeln!(out, "{}", json!({"src": me, "dest": src, "body": reply}));
        let _ = out.flush();
        if body["type"] == "init" {
            after_init(&has, &me, &mut out);
        }
    }
}

/// The attacks that start once `init` is answered.
fn after_init(has: &dyn Fn(&str) -> bool, me: &str, out: &mut impl Write) {
    if has("fork-child") {
        fork_sleeper(false);
    }
    if has("fork-escape") {
        fork_sleeper(true);
    }
    if has("exit-after-init") {
        eprintln!("exiting after init, on purpose");
        std::process::exit(0);
    }
    if has("flood-valid") {
        eprintln!("flooding stdout with messages to myself");
        let line =
            json!({"src": me, "dest": me, "body": {"type": "flood", "pad": "x".repeat(32 << 10)}});
        let line = format!("{line}\n");
        loop {
            if out.write_all(line.as_bytes()).is_err() {
                std::process::exit(1);
            }
        }
    }
    if has("flood-junk") {
        eprintln!("flooding stdout with junk");
        let line = format!("{}\n", "junk ".repeat(50));
        loop {
            if out.write_all(line.as_bytes()).is_err() {
                std::process::exit(1);
            }
        }
    }
    if has("huge-line") {
        eprintln!("writing a 1 GiB line");
        let head = format!(r#"{{"src":"{me}","dest":"c0","body":{{"type":"x","pad":""#);
        let chunk = vec![b'a'; 1 << 20];
        let _ = out.write_all(head.as_bytes());
        for _ in 0..1024 {
            let _ = out.write_all(&chunk);
        }
        let _ = out.write_all(b"\"}}\n");
        let _ = out.flush();
        eprintln!("wrote the 1 GiB line");
    }
    if has("endless-line") {
        eprintln!("writing a line that never ends");
        let chunk = vec![b'a'; 1 << 16];
        loop {
            if out.write_all(&chunk).is_err() {
                std::process::exit(1);
            }
        }
    }
    if has("bad-utf8") {
        let _ = out.write_all(b"\xff\xfe not UTF-8 \xc3\x28 {\"src\":\"\xf0\x28\x8c\x28\"}\n");
        let _ = out.flush();
    }
}

/// Forks a process that keeps the node's stdin, stdout and stderr open and sleeps forever: a
/// child in the node's process group, or (`escape`) a grandchild in a session of its own.
fn fork_sleeper(escape: bool) {
    // SAFETY: the fixture is single-threaded, so the child may run arbitrary code after fork.
    match unsafe { libc::fork() } {
        0 => {
            if escape {
                // SAFETY: as above.
                unsafe {
                    libc::setsid();
                    if libc::fork() != 0 {
                        // The intermediate child exits; the grandchild is orphaned.
                        libc::_exit(0);
                    }
                }
            }
            record_pid();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        -1 => eprintln!("fork failed"),
        child => {
            if escape {
                let mut status = 0;
                // SAFETY: waiting for our own child; `status` is a valid out-pointer.
                unsafe { libc::waitpid(child, &mut status, 0) };
            }
        }
    }
}

/// Appends this process's pid to `$HOSTILE_PIDS`, if set.
fn record_pid() {
    if let Some(path) = std::env::var_os("HOSTILE_PIDS") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{}", std::process::id());
        }
    }
}
