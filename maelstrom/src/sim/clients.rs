//! Maelstrom's clients: one per `init`, one per `topology`, and one per worker, each with at most
//! one request outstanding and a timeout. Workers (worker t talks to node t mod n) take the
//! staggered ops of [`OpSchedule`](crate::coordinator::OpSchedule), record their invocations and
//! completions in the history, and get a fresh process id (and a fresh client, for workloads
//! whose client is not reusable) after an `info` op.

use murmur::node::Workload;
use serde_json::{json, Value};

use super::checks::FinalRead;
use super::phases::Phase;
use super::scheduler::Event;
use super::{Sim, MS};
use crate::coordinator::process_after_info;
use crate::coordinator::FinalOps;
use crate::history::{Op, OpType, OpValue, Process};
use crate::net::{Delivery, Packet};
use crate::workload::{Call, ClientWorkload, Completion, OpSpec, Reply, Session, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What a client is for.
pub(super) enum Purpose {
    /// Sends `init` to a node.
    Init(usize),
    /// Sends `topology` to a node.
    Topology(usize),
    /// Worker t's client.
    Worker(usize),
}

/// A Maelstrom client: one id, at most one request outstanding.
pub(super) struct SimClient {
    pub(super) purpose: Purpose,
    pub(super) next_msg_id: u64,
    /// The outstanding request's `msg_id`.
    pub(super) waiting: Option<u64>,
}

/// A client worker (Maelstrom's thread): talks to one node, one op at a time.
pub(super) struct Worker {
    pub(super) node: usize,
    pub(super) client: String,
    pub(super) process: u64,
    /// The op in flight (and whether it is a final op).
    pub(super) busy: Option<Call>,
    /// The client's state between ops (kafka's positions); fresh with each fresh client.
    pub(super) session: Session,
    /// An op that completed without a request, recorded at its [`Event::LocalDone`].
    pub(super) ready: Option<Completion>,
    /// The final phase's ops for this worker, and whether it has none left.
    pub(super) finals: Option<FinalOps>,
    pub(super) finals_done: bool,
}

impl Worker {
    pub(super) fn new(node: usize, client: String, process: u64) -> Worker {
        Worker {
            node,
            client,
            process,
            busy: None,
            session: Session::default(),
            ready: None,
            finals: None,
            finals_done: false,
        }
    }
}

impl<W: Workload> Sim<'_, W> {
    pub(super) fn open_client(&mut self, purpose: Purpose) -> String {
        let id = format!("c{}", self.next_client);
        self.next_client += 1;
        self.net.register_client(&id).expect("fresh client id");
        self.clients.insert(
            id.clone(),
            SimClient {
                purpose,
                next_msg_id: 1,
                waiting: None,
            },
        );
        id
    }

    pub(super) fn close_client(&mut self, id: &str) {
        self.clients.remove(id);
        let _ = self.net.deregister(self.now, id);
    }

    /// Sends `body` as client's next request to node `node`, with a timeout.
    pub(super) fn client_send(
        &mut self,
        client: &str,
        node: usize,
        mut body: Value,
        timeout_ms: u64,
    ) {
        let c = self.clients.get_mut(client).expect("open client");
        let msg_id = c.next_msg_id;
        c.next_msg_id += 1;
        c.waiting = Some(msg_id);
        body["msg_id"] = json!(msg_id);
        let packet = Packet::from_value(client, &self.node_ids[node], &body);
        if self.net.send(self.now, packet).is_err() {
            return; // cannot happen: both ends are registered; the timeout fires
        }
        self.at(
            self.now + timeout_ms * MS,
            Event::ClientTimeout {
                client: client.to_string(),
                msg_id,
            },
        );
    }

    /// A message for a client: the reply it waits for, or discarded.
    pub(super) fn client_delivery(&mut self, d: Delivery) {
        let Some(c) = self.clients.get(&d.packet.dest) else {
            return;
        };
        let Some(waiting) = c.waiting else {
            return;
        };
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&d.packet.body) else {
            return;
        };
        let irt = body.get("in_reply_to");
        if irt.and_then(Value::as_u64) != Some(waiting) || irt.is_some_and(Value::is_f64) {
            return; // not the reply we wait for: consumed and discarded, as by Maelstrom
        }
        self.client_reply(&d.packet.dest, Reply::Body(body));
    }

    /// A client's request completed (or timed out): handled by what the client is for.
    pub(super) fn client_reply(&mut self, client: &str, reply: Reply) {
        let c = self.clients.get_mut(client).expect("open client");
        c.waiting = None;
        match c.purpose {
            Purpose::Init(node) => {
                self.close_client(client);
                self.init_done(node, reply);
            }
            Purpose::Topology(node) => {
                self.close_client(client);
                let ok = match &reply {
                    Reply::Body(b) => crate::workload::check_topology_ok(b)
                        .map_err(|e| format!("{e}: {}", Value::Object(b.clone()))),
                    Reply::Timeout => Err("no answer within the client timeout".into()),
                };
                match ok {
                    Ok(()) => {
                        self.setup_left -= 1;
                        if self.setup_left == 0 {
                            self.begin_main();
                        }
                    }
                    Err(e) => self.abort(format!(
                        "{} answered topology badly: {e}",
                        self.node_ids[node]
                    )),
                }
            }
            Purpose::Worker(w) => self.worker_done(w, reply),
        }
    }
    /// Issues the next op on a free worker (round robin); false if none is free.
    pub(super) fn issue_op(&mut self) -> bool {
        let ops = self.ops.as_mut().expect("ops are issued in the main phase");
        let workers = &self.workers;
        let Some((t, op)) = ops.issue(
            self.now,
            workers.len(),
            |t| workers[t].busy.is_none(),
            |t| workers[t].process,
            self.cfg.client,
            &mut self.op_rng,
        ) else {
            return false;
        };
        let next_at = ops.next_at();
        self.invoke(t, op, false);
        if next_at < self.cutoff {
            self.at(next_at, Event::NextOp);
        }
        true
    }

    /// Records the invocation of `op` and sends its first request from worker `w` (or, for an
    /// op that needs none, completes it at once, through an event).
    pub(super) fn invoke(&mut self, w: usize, op: OpSpec, final_: bool) {
        let process = self.workers[w].process;
        let marked = final_ && self.cfg.client.marks_final();
        self.record(
            OpType::Invoke,
            Process::Client(process),
            op.f,
            op.value.clone(),
            None,
            marked,
        );
        self.stats.client_ops += 1;
        let client_workload = self.cfg.client;
        let worker = &mut self.workers[w];
        let (call, step) = client_workload.begin(op, final_, &mut worker.session);
        worker.busy = Some(call);
        self.worker_step(w, step);
    }

    fn worker_step(&mut self, w: usize, step: Step) {
        match step {
            Step::Send(body) => {
                let (client, node) = (self.workers[w].client.clone(), self.workers[w].node);
                self.client_send(&client, node, body, self.cfg.client_timeout_ms);
            }
            Step::Done(c) => {
                self.workers[w].ready = Some(c);
                self.at(self.now, Event::LocalDone { worker: w });
            }
        }
    }

    /// Worker `w`'s op completed without a request.
    pub(super) fn local_done(&mut self, w: usize) {
        if let Some(c) = self.workers[w].ready.take() {
            self.worker_finish(w, c);
        }
    }

    /// A reply (or timeout) for worker `w`'s request: the op's next request, or its completion.
    pub(super) fn worker_done(&mut self, w: usize, reply: Reply) {
        let client_workload = self.cfg.client;
        let worker = &mut self.workers[w];
        let call = worker.busy.as_mut().expect("busy worker");
        match client_workload.advance(call, &mut worker.session, &reply) {
            Step::Done(c) => self.worker_finish(w, c),
            step => self.worker_step(w, step),
        }
    }

    /// Worker `w`'s op completed: recorded, kept if a final read, and the next op issued.
    fn worker_finish(&mut self, w: usize, completion: Completion) {
        let call = self.workers[w].busy.take().expect("busy worker");
        let (op, final_) = (call.op, call.final_);
        let process = self.workers[w].process;
        self.history.push(Op {
            index: self.history.len(),
            time: self.now,
            kind: completion.kind,
            process: Process::Client(process),
            f: op.f.to_string(),
            value: OpValue::recorded(
                completion.kind,
                op.f,
                completion.value.clone(),
                &mut self.read_chunks,
            ),
            error: completion.error.clone(),
            exception: completion.exception.clone(),
            final_: final_ && self.cfg.client.marks_final(),
        });
        if let Some(ops) = self.ops.as_mut() {
            ops.observe(self.cfg.client, op.f, &completion);
        }
        if let Some(finals) = self.workers[w].finals.as_mut() {
            finals.observe(op.f, &completion);
        }
        if final_ && self.cfg.client != ClientWorkload::Kafka {
            let outcome = match (&completion.kind, &completion.value) {
                (OpType::Ok, v) => Ok(v.clone()),
                (kind, _) => Err(format!(
                    "{kind:?} {}",
                    completion
                        .error
                        .as_ref()
                        .map(Value::to_string)
                        .or(completion.exception.clone())
                        .unwrap_or_default()
                )),
            };
            self.final_reads.push(FinalRead {
                node: self.workers[w].node,
                outcome,
            });
        }
        if completion.kind == OpType::Info {
            self.workers[w].process =
                process_after_info(self.workers[w].process, self.workers.len());
            if !self.cfg.client.reusable_client() {
                let old = self.workers[w].client.clone();
                self.close_client(&old);
                self.workers[w].client = self.open_client(Purpose::Worker(w));
                self.workers[w].session = Session::default();
            }
        }
        match self.phase {
            Phase::Main if self.op_waiting && self.now < self.cutoff => {
                self.op_waiting = false;
                self.issue_op();
            }
            Phase::Drain => self.maybe_begin_final(),
            Phase::Final => self.final_next(w),
            _ => {}
        }
    }

    /// Appends an op to the history, at the current time.
    pub(super) fn record(
        &mut self,
        kind: OpType,
        process: Process,
        f: &str,
        value: Value,
        error: Option<Value>,
        final_: bool,
    ) {
        self.history.push(Op {
            index: self.history.len(),
            time: self.now,
            kind,
            process,
            f: f.to_string(),
            value: OpValue::recorded(kind, f, value, &mut self.read_chunks),
            error,
            exception: None,
            final_,
        });
    }
}
