//! The state every thread shares, the router that delivers due messages, and the clients that
//! call nodes through the network.

use super::{lock, GIVE_UP_POLL};
use crate::net::{Delivery, Net, NetError, Packet};
use crate::process::{LineResult, STDIN_BACKLOG_BYTES, STDIN_QUEUE_BYTES};
use crate::services::Services;
use crate::workload::Reply;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a node's stdout reader, held back by a backlogged destination, looks again.
const BACKLOG_POLL: Duration = Duration::from_millis(10);

/// State every thread shares.
pub(super) struct Switchboard {
    pub(super) start: Instant,
    pub(super) net: Mutex<Net>,
    /// Wakes the router: a send may have created an earlier deadline.
    pub(super) wake: Condvar,
    pub(super) routes: Mutex<Routes>,
    pub(super) stop: AtomicBool,
    pub(super) next_client: AtomicU64,
    /// Nodes whose output Maelstrom would stop reading (a malformed line or an invalid dest).
    pub(super) wedged: Mutex<Vec<(String, String)>>,
    pub(super) routed: AtomicU64,
    /// Set when the run is aborting: outstanding client calls give up at once instead of
    /// waiting out their timeout.
    pub(super) aborting: AtomicBool,
}

#[derive(Default)]
pub(super) struct Routes {
    pub(super) nodes: HashMap<String, crate::process::NodeInput>,
    pub(super) clients: HashMap<String, Sender<Delivery>>,
}

impl Switchboard {
    pub(super) fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub(super) fn send(&self, packet: Packet) -> Result<u64, NetError> {
        let r = lock(&self.net).send(self.now(), packet);
        self.wake.notify_one();
        r
    }

    pub(super) fn open_client(&self) -> RpcClient {
        let id = format!("c{}", self.next_client.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = mpsc::channel();
        lock(&self.routes).clients.insert(id.clone(), tx);
        if let Err(e) = lock(&self.net).register_client(&id) {
            tracing::error!("cannot register client {id}: {e}");
        }
        RpcClient {
            id,
            inbox: rx,
            next_msg_id: 1,
        }
    }

    pub(super) fn close_client(&self, client: RpcClient) {
        lock(&self.routes).clients.remove(&client.id);
        let now = self.now();
        let _ = lock(&self.net).deregister(now, &client.id);
    }
}

/// A Maelstrom client: one id, one inbox, at most one request outstanding.
pub(super) struct RpcClient {
    pub(super) id: String,
    pub(super) inbox: Receiver<Delivery>,
    pub(super) next_msg_id: u64,
}

impl RpcClient {
    /// One RPC: sends `body` (a JSON object) to `dest` and waits for the reply whose
    /// `in_reply_to` equals its `msg_id`; any other message is consumed and discarded, as by
    /// Maelstrom's clients.
    /// `give_up` is polled every [`GIVE_UP_POLL`] while waiting: when it returns true the call
    /// ends as a timeout at once.
    pub(super) fn call(
        &mut self,
        shared: &Switchboard,
        dest: &str,
        mut body: Value,
        timeout: Duration,
        give_up: &dyn Fn() -> bool,
    ) -> Reply {
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        body["msg_id"] = json!(msg_id);
        if let Err(e) = shared.send(Packet::from_value(&self.id, dest, &body)) {
            tracing::error!("client {} cannot send: {e}", self.id);
            return Reply::Timeout;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(left.min(GIVE_UP_POLL)) {
                Ok(d) => {
                    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&d.packet.body)
                    else {
                        continue;
                    };
                    // Clojure `=`: 5.0 does not answer 5.
                    if map.get("in_reply_to").and_then(Value::as_u64) == Some(msg_id)
                        && !map.get("in_reply_to").is_some_and(Value::is_f64)
                    {
                        return Reply::Body(map);
                    }
                }
                Err(RecvTimeoutError::Timeout) if !left.is_zero() && !give_up() => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return Reply::Timeout
                }
            }
        }
    }
}

pub(super) fn router(shared: Arc<Switchboard>, mut services: Services) {
    let mut due = Vec::with_capacity(1024);
    let mut replies = Vec::new();
    let mut line = String::with_capacity(4096);
    loop {
        {
            let mut net = lock(&shared.net);
            loop {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                net.deliver_due(shared.now(), &mut due);
                if !due.is_empty() {
                    break;
                }
                let wait = match net.next_deadline() {
                    Some(t) => Duration::from_nanos(t.saturating_sub(shared.now())),
                    None => Duration::from_millis(50),
                };
                net = shared
                    .wake
                    .wait_timeout(net, wait.min(Duration::from_millis(50)))
                    .map(|r| r.0)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        let routes = lock(&shared.routes);
        shared.routed.fetch_add(due.len() as u64, Ordering::Relaxed);
        for d in due.drain(..) {
            if let Some(input) = routes.nodes.get(&d.packet.dest) {
                line.clear();
                d.packet.write_line(d.id, &mut line);
                if !input.send(line.clone()) && input.overflowed() > 0 && input.first_backlog() {
                    report_backlog(&shared, &d.packet.dest, STDIN_QUEUE_BYTES);
                }
            } else if let Some(tx) = routes.clients.get(&d.packet.dest) {
                let _ = tx.send(d);
            } else if let Some(reply) = services.reply_to(&d.packet) {
                replies.push(reply);
            }
        }
        drop(routes);
        // A service answers at once; its reply crosses the network like any message.
        for reply in replies.drain(..) {
            if let Err(e) = shared.send(reply) {
                tracing::warn!("a service cannot reply: {e}");
            }
        }
    }
}

/// Node `node` has `queued` bytes of unread input: [`STDIN_BACKLOG_BYTES`], found by a sender's
/// stdout reader, which then waits ([`wait_for_room`]); or [`STDIN_QUEUE_BYTES`], found by the
/// router, which then drops (messages from clients and services, which nothing holds back, or
/// already in flight). Reported loudly, once per incarnation, and listed with the wedged nodes.
fn report_backlog(shared: &Switchboard, node: &str, queued: u64) {
    let err = format!(
        "stopped reading its STDIN: {} MiB of messages are waiting for it",
        queued >> 20
    );
    let action = if queued < STDIN_QUEUE_BYTES {
        format!(
            "The runner stops reading the output of nodes that send to it until it reads again, \
             and drops messages to it beyond {} MiB.",
            STDIN_QUEUE_BYTES >> 20
        )
    } else {
        "The runner drops further messages to it until it reads again.".to_string()
    };
    tracing::error!("node {node}: {err}. {action}");
    lock(&shared.wedged).push((node.to_string(), err));
}

/// Back-pressure: while node `dest` is not reading its stdin ([`NodeInput::backlogged`]), the
/// stdout reader of the node sending to it waits here, so the sender blocks on its own full
/// pipe instead of flooding the runner. Gives up when the run ends.
///
/// [`NodeInput::backlogged`]: crate::process::NodeInput::backlogged
fn wait_for_room(shared: &Switchboard, dest: &str) {
    let Some(input) = lock(&shared.routes).nodes.get(dest).cloned() else {
        return;
    };
    if !input.backlogged() {
        return;
    }
    if input.first_backlog() {
        report_backlog(shared, dest, STDIN_BACKLOG_BYTES);
    }
    while input.backlogged()
        && !shared.aborting.load(Ordering::Relaxed)
        && !shared.stop.load(Ordering::Relaxed)
    {
        std::thread::sleep(BACKLOG_POLL);
    }
}

/// Builds the sink a node's stdout reader feeds: valid lines go into the network; the first
/// malformed line or invalid destination wedges the node's output as in Maelstrom.
pub(super) fn stdout_sink(
    shared: Arc<Switchboard>,
) -> impl FnMut(&Arc<str>, LineResult) + Send + 'static {
    let mut dead = false;
    move |node: &Arc<str>, line: LineResult| {
        if dead {
            return;
        }
        let err = match line {
            Ok(p) => {
                wait_for_room(&shared, &p.dest);
                let body_type = p.body_type.unwrap_or_default();
                match shared.send(Packet::new(p.src, p.dest, p.raw_body, body_type)) {
                    Ok(_) => return,
                    Err(e) => e.to_string(),
                }
            }
            Err(m) => format!(
                "printed a line to STDOUT which Maelstrom rejects ({}): {}",
                m.reason,
                m.excerpt()
            ),
        };
        dead = true;
        tracing::error!("node {node}: {err}. Maelstrom stops reading this node's output for the rest of the test.");
        lock(&shared.wedged).push((node.to_string(), err));
    }
}

/// Owns the router thread: stops and joins it when dropped, so the thread never outlives the
/// run, however the run ends (an error or a panic included).
pub(super) struct RouterGuard {
    pub(super) shared: Arc<Switchboard>,
    pub(super) handle: Option<JoinHandle<()>>,
}

impl Drop for RouterGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
