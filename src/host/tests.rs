//! The host's rules with a toy workload that persists: `put` answers `put_ok` once its record is
//! durable, `get` answers at once, and a tick is due every 100 ms while puts are pending.

use super::*;
use crate::node::parse_line;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Toy {
    Put { v: u64 },
    PutOk,
    Get,
    GetOk { vs: Vec<u64> },
    Error(ErrorBody),
}

impl From<ErrorBody> for Toy {
    fn from(e: ErrorBody) -> Self {
        Toy::Error(e)
    }
}

#[derive(Default)]
struct Store {
    vs: Vec<u64>,
    /// Records emitted and not taken yet.
    fresh: Vec<Vec<u8>>,
    /// Replies waiting for the record with this running count: (count, client, msg_id).
    waiting: Vec<(u64, String, Option<u64>)>,
    emitted: u64,
    ticks: u64,
}

impl Workload for Store {
    type Msg = Toy;
    type Config = ();

    fn init(info: &InitInfo, _: &(), _: Millis) -> Self {
        let vs = info
            .recovered
            .iter()
            .map(|r| u64::from_le_bytes(r[..8].try_into().unwrap()))
            .collect();
        Store {
            vs,
            ..Store::default()
        }
    }

    fn handle(&mut self, msg: Message<Toy>, _: Millis, ctx: &mut Ctx<Toy>) {
        match msg.body.payload {
            Toy::Put { v } => {
                self.vs.push(v);
                self.fresh.push(v.to_le_bytes().to_vec());
                self.emitted += 1;
                self.waiting.push((self.emitted, msg.src, msg.body.msg_id));
            }
            Toy::Get => {
                let vs = self.vs.clone();
                ctx.reply(&msg.src, msg.body.msg_id, Toy::GetOk { vs });
            }
            _ => {}
        }
    }

    fn tick(&mut self, _: Millis, _: &mut Ctx<Toy>) {
        self.ticks += 1;
    }

    fn next_tick(&mut self, now: Millis) -> Option<Millis> {
        (!self.waiting.is_empty()).then_some(now.next_multiple_of(100))
    }

    fn persistent(_: &()) -> bool {
        true
    }

    fn take_records(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.fresh)
    }

    /// The live state is the set of distinct values: repeated puts are garbage.
    fn live_bytes(&self) -> Option<u64> {
        Some(self.distinct().len() as u64 * frame_len(8))
    }

    fn snapshot(&mut self) -> Option<Vec<Vec<u8>>> {
        Some(
            self.distinct()
                .iter()
                .map(|v| v.to_le_bytes().to_vec())
                .collect(),
        )
    }

    fn persisted(&mut self, count: u64, _: Millis, ctx: &mut Ctx<Toy>) {
        self.waiting.retain(|(n, client, msg_id)| {
            let done = *n <= count;
            if done {
                ctx.reply(client, *msg_id, Toy::PutOk);
            }
            !done
        });
    }
}

impl Store {
    fn distinct(&self) -> Vec<u64> {
        let mut d = self.vs.clone();
        d.sort_unstable();
        d.dedup();
        d
    }
}

/// A host with the shell's default guard knobs, started at 0.
fn host() -> Host<Store> {
    Host::new((), 1000, 4000, 0)
}

fn line(src: &str, body: Value) -> Inbound<Toy> {
    let l = json!({"src": src, "dest": "n1", "body": body}).to_string();
    parse_line(&l).unwrap()
}

/// Drains the host and renders every output as JSON.
fn out(h: &mut Host<Store>) -> Vec<Value> {
    h.drain()
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect()
}

fn init_line() -> Inbound<Toy> {
    line(
        "c0",
        json!({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1", "n2"]}),
    )
}

/// Initialises `h` with `recovered` and drains `init_ok`.
fn init(h: &mut Host<Store>, recovered: Vec<Vec<u8>>) {
    let request = h
        .receive(0, init_line())
        .expect("init comes back to the driver");
    assert_eq!(
        (request.node_id.as_str(), request.node_ids.len()),
        ("n1", 2)
    );
    h.init(0, request, Ok(recovered), 0);
    assert_eq!(
        out(h),
        vec![json!({"src": "n1", "dest": "c0", "body": {"type": "init_ok", "in_reply_to": 1}})]
    );
}

#[test]
fn before_init_clients_get_error_11_and_peers_are_dropped() {
    let mut h = host();
    assert!(h
        .receive(5, line("c3", json!({"type": "get", "msg_id": 4})))
        .is_none());
    assert!(h
        .receive(5, line("n2", json!({"type": "get", "msg_id": 9})))
        .is_none());
    assert!(h
        .receive(5, line("c3", json!({"type": "frob", "msg_id": 5})))
        .is_none());
    let o = out(&mut h);
    assert_eq!(o.len(), 2, "{o:?}");
    for (m, id) in o.iter().zip([4, 5]) {
        assert_eq!(m["dest"], "c3");
        assert_eq!(m["src"], "n1", "answered as the node the message was for");
        assert_eq!(m["body"]["code"], 11);
        assert_eq!(m["body"]["in_reply_to"], id);
    }
    assert_eq!(h.stats().dropped_before_init, 1);
    assert!(!h.is_running());
    assert_eq!(h.next_tick(5), None);
}

#[test]
fn init_recovers_records_and_a_second_init_is_answered_again() {
    let mut h = host();
    init(&mut h, vec![7u64.to_le_bytes().to_vec()]);
    assert!(h.is_running());
    assert_eq!(h.node().unwrap().vs, vec![7]);
    assert!(h.receive(1, init_line()).is_none(), "not handed back twice");
    assert_eq!(out(&mut h)[0]["body"]["type"], "init_ok");
}

#[test]
fn an_unreadable_store_refuses_init_with_error_13() {
    let mut h = host();
    let request = h.receive(0, init_line()).unwrap();
    h.init(0, request, Err("disk on fire".into()), 0);
    let o = out(&mut h);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0]["body"]["code"], 13);
    assert_eq!(o[0]["body"]["text"], "disk on fire");
    assert!(!h.is_running());
}

#[test]
fn acknowledgements_wait_for_durability() {
    let mut h = host();
    init(&mut h, vec![]);
    assert!(h
        .receive(10, line("c1", json!({"type": "put", "v": 3, "msg_id": 1})))
        .is_none());
    assert!(out(&mut h).is_empty(), "nothing durable yet");
    assert_eq!(h.take_records(), vec![3u64.to_le_bytes().to_vec()]);
    h.durable(1, 11);
    let o = out(&mut h);
    assert_eq!(o[0]["body"], json!({"type": "put_ok", "in_reply_to": 1}));

    // persist_with: the driver appends at once, the reply leaves in the same step.
    let _ = h.receive(12, line("c1", json!({"type": "put", "v": 4, "msg_id": 2})));
    let mut appended = Vec::new();
    h.persist_with(12, |records| {
        appended.extend(records);
        Some(appended.len() as u64 + 1)
    });
    assert_eq!(appended.len(), 1);
    assert_eq!(out(&mut h)[0]["body"]["type"], "put_ok");

    // A driver that only queues (a flusher) leaves the reply waiting.
    let _ = h.receive(13, line("c1", json!({"type": "put", "v": 5, "msg_id": 3})));
    h.persist_with(13, |_| None);
    assert!(out(&mut h).is_empty());
}

#[test]
fn unknown_types_get_error_10_and_replies_are_never_answered() {
    let mut h = host();
    init(&mut h, vec![]);
    let _ = h.receive(1, line("n2", json!({"type": "frob", "msg_id": 8})));
    let _ = h.receive(1, line("n2", json!({"type": "frob", "in_reply_to": 3})));
    let _ = h.receive(1, line("c4", json!({"type": "put", "v": "x", "msg_id": 2})));
    let o = out(&mut h);
    assert_eq!(o.len(), 2, "{o:?}");
    assert_eq!(
        (&o[0]["body"]["code"], &o[0]["dest"]),
        (&json!(10), &json!("n2"))
    );
    assert_eq!(
        (&o[1]["body"]["code"], &o[1]["dest"]),
        (&json!(12), &json!("c4"))
    );
}

#[test]
fn ticks_run_only_when_due() {
    let mut h = host();
    init(&mut h, vec![]);
    h.tick(50);
    assert_eq!(h.node().unwrap().ticks, 0, "nothing pending: no tick due");
    let _ = h.receive(50, line("c1", json!({"type": "put", "v": 1, "msg_id": 1})));
    assert_eq!(h.next_tick(50), Some(100));
    h.tick(99);
    assert_eq!(h.node().unwrap().ticks, 0, "early wake-up: not due");
    h.tick(100);
    assert_eq!(h.node().unwrap().ticks, 1);
}

#[test]
fn requests_that_waited_out_a_pause_are_dropped_and_late_replies_too() {
    let mut h = host();
    init(&mut h, vec![]);
    // A put is handled just before a long pause; its record becomes durable only after it.
    let _ = h.receive(100, line("c1", json!({"type": "put", "v": 1, "msg_id": 1})));
    let _ = h.take_records();
    h.resumed(10_000);
    // The backlog read right after the resume is dated back to the pause: too old to serve.
    let _ = h.receive(10_001, line("c2", json!({"type": "get", "msg_id": 1})));
    h.durable(1, 10_002);
    assert!(
        out(&mut h).is_empty(),
        "neither the stale get nor the late put_ok"
    );
    let s = h.stats();
    assert_eq!((s.stale_requests_dropped, s.late_replies_dropped), (1, 1));
    assert_eq!(h.open_requests(), 0);
    // After the drain window, requests are served again.
    let _ = h.receive(11_500, line("c2", json!({"type": "get", "msg_id": 2})));
    assert_eq!(out(&mut h)[0]["body"]["vs"], json!([1]));
}

#[test]
fn compaction_is_offered_when_the_log_outgrows_the_state_and_all_of_it_is_durable() {
    let put = |h: &mut Host<Store>, id: u64, v: u64| {
        let _ = h.receive(1, line("c1", json!({"type": "put", "msg_id": id, "v": v})));
    };
    let mut h = host();
    h.set_compact_min(Some(64));
    init(&mut h, vec![7u64.to_le_bytes().to_vec()]);
    assert_eq!(h.log_bytes(), 16, "the recovered record counts");
    for id in 0..9 {
        put(&mut h, id + 10, 7);
    }
    // 160 bytes of log for 16 of state, but nothing taken is durable yet.
    assert_eq!(h.take_compaction(), None);
    let taken = h.take_records();
    assert_eq!((taken.len(), h.log_bytes()), (9, 160));
    assert_eq!(h.take_compaction(), None, "taken but not durable");
    h.durable(8, 2);
    assert_eq!(h.take_compaction(), None, "one taken record not durable");
    h.durable(9, 2);
    let snapshot = h.take_compaction().expect("due: 160 >= max(64, 2 x 16)");
    assert_eq!(snapshot, vec![7u64.to_le_bytes().to_vec()]);
    assert_eq!(h.take_compaction(), None, "one at a time");
    h.compacted(true);
    assert_eq!(h.log_bytes(), 16);
    // Below the minimum: never, however much garbage.
    for id in 0..2 {
        put(&mut h, id + 30, 7);
    }
    h.persist_with(3, |_| Some(11));
    assert_eq!((h.log_bytes(), h.take_compaction()), (48, None));
    // A failed attempt waits until the log has grown by the minimum again.
    for id in 0..2 {
        put(&mut h, id + 40, 7);
    }
    h.persist_with(3, |_| Some(13));
    assert!(h.take_compaction().is_some(), "80 bytes");
    h.compacted(false);
    assert_eq!(h.log_bytes(), 80, "the old log is still the log");
    put(&mut h, 50, 7);
    h.persist_with(3, |_| Some(14));
    assert_eq!(h.take_compaction(), None, "96 < 80 + 64");
    for id in 0..3 {
        put(&mut h, id + 60, 7);
    }
    h.persist_with(3, |_| Some(17));
    assert!(h.take_compaction().is_some(), "144 >= 80 + 64");
    // Live state as large as the log: not due. Off: never.
    let mut h = host();
    h.set_compact_min(Some(16));
    init(
        &mut h,
        (0..4u64).map(|v| v.to_le_bytes().to_vec()).collect(),
    );
    assert_eq!(h.take_compaction(), None, "64 bytes, all live");
    let mut h = host();
    h.set_compact_min(None);
    init(&mut h, vec![1u64.to_le_bytes().to_vec(); 1000]);
    assert_eq!(h.take_compaction(), None);
}
