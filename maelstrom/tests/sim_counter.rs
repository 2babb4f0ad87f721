//! The services and the counter workloads in the deterministic simulator ([`maelstrom::sim`]):
//! a tiny g-counter node written here over murmur's [`Workload`] trait (run inside murmur's
//! `Host`, as the simulator runs every node) keeps its counter in `seq-kv`, and Maelstrom's
//! g-counter and pn-counter clients and checker judge it, over hundreds of seeds with partitions,
//! kills and pauses.
//!
//! - `cas` (the intended way, as `src/bin/counter-node.rs`): an add reads the counter and cas-es it
//!   from what it read, reading again after a failed cas; a read first writes a value unique to
//!   the node, which moves it to `seq-kv`'s newest state, then reads. It must pass every seed.
//!   (Unique means across restarts too: a restarted node that counted its sync writes from 1
//!   again rewrote values already there, which leaves `seq-kv`'s state unchanged, so its reads
//!   stayed stale; the kill seeds caught that.)
//! - `blind` (a mutant): an add writes what it read plus its delta. It must be caught.
//!
//! g-set gets the same treatment with a node keeping its set in `lin-kv` (read, then cas from what
//! it read to that plus the element), judged by set-full and the simulator's final-read checks.
//!
//! murmur's own nodes (`murmur::workload::counter`) are swept the same way: the CRDT design
//! (g-counter, pn-counter, g-set over the broadcast node, persisting) must lose no acknowledged add
//! on any seed, kills, pauses and torn flushes included; the same nodes without persistence must be
//! caught losing adds to kills (so the sweep can fail); the seq-kv design must pass every seed.
//!
//! Replay one seed: `SIM_SEED=<seed> cargo test -p murmur-maelstrom --test sim_counter -- --nocapture`.

use std::collections::HashMap;

use maelstrom::nemesis::{Fault, FaultSet};
use maelstrom::net::Latency;
use maelstrom::sim::{self, SimConfig, SimOutcome};
use maelstrom::workload::ClientWorkload;
use murmur::node::{Ctx, InitInfo, Message, Millis, Workload};
use murmur::wire::ErrorBody;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const KEY: &str = "counter";
const SERVICE: &str = "seq-kv";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Msg {
    Add {
        delta: i64,
    },
    AddOk,
    /// A client's read has no key; ours, to the service, has one.
    Read {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    ReadOk {
        value: i64,
    },
    Write {
        key: String,
        value: serde_json::Value,
    },
    WriteOk,
    Cas {
        key: String,
        from: i64,
        to: i64,
        create_if_not_exists: bool,
    },
    CasOk,
    Error(ErrorBody),
}

impl From<ErrorBody> for Msg {
    fn from(e: ErrorBody) -> Self {
        Msg::Error(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    AddRead { delta: i64 },
    AddWrite { delta: i64 },
    ReadSync,
    ReadValue,
}

#[derive(Debug)]
struct Job {
    client: String,
    msg_id: Option<u64>,
    step: Step,
}

#[derive(Debug, Clone, Copy)]
struct CounterConfig {
    /// The mutant: a plain write instead of a cas.
    blind: bool,
}

struct Counter {
    blind: bool,
    /// This incarnation's boot time: with `syncs`, a value no incarnation wrote before.
    boot: u64,
    syncs: u64,
    jobs: HashMap<u64, Job>,
}

impl Counter {
    fn call(&mut self, msg: Msg, job: Job, ctx: &mut Ctx<Msg>) {
        let id = ctx.send(SERVICE, msg);
        self.jobs.insert(id, job);
    }

    fn read_counter(&mut self, job: Job, ctx: &mut Ctx<Msg>) {
        let key = Some(KEY.to_string());
        self.call(Msg::Read { key }, job, ctx);
    }
}

impl Workload for Counter {
    type Msg = Msg;
    type Config = CounterConfig;

    fn init(info: &InitInfo, config: &CounterConfig, _: Millis) -> Self {
        Counter {
            blind: config.blind,
            boot: info.boot_unix_micros,
            syncs: 0,
            jobs: HashMap::new(),
        }
    }

    fn handle(&mut self, msg: Message<Msg>, _: Millis, ctx: &mut Ctx<Msg>) {
        if let Some(irt) = msg.body.in_reply_to {
            let Some(job) = self.jobs.remove(&irt) else {
                return;
            };
            let (ok, value) = match msg.body.payload {
                Msg::ReadOk { value } => (true, value),
                Msg::Error(_) => (false, 0), // a missing counter is 0
                _ => (true, 0),
            };
            match job.step {
                Step::AddRead { delta } => {
                    let key = KEY.to_string();
                    let m = if self.blind {
                        Msg::Write {
                            key,
                            value: (value + delta).into(),
                        }
                    } else {
                        Msg::Cas {
                            key,
                            from: value,
                            to: value + delta,
                            create_if_not_exists: true,
                        }
                    };
                    let step = Step::AddWrite { delta };
                    self.call(m, Job { step, ..job }, ctx);
                }
                Step::AddWrite { .. } if ok => ctx.reply(&job.client, job.msg_id, Msg::AddOk),
                Step::AddWrite { delta } => {
                    let step = Step::AddRead { delta };
                    self.read_counter(Job { step, ..job }, ctx);
                }
                Step::ReadSync => {
                    let step = Step::ReadValue;
                    self.read_counter(Job { step, ..job }, ctx);
                }
                Step::ReadValue => ctx.reply(&job.client, job.msg_id, Msg::ReadOk { value }),
            }
            return;
        }
        let job = |step| Job {
            client: msg.src.clone(),
            msg_id: msg.body.msg_id,
            step,
        };
        match msg.body.payload {
            Msg::Add { delta } => self.read_counter(job(Step::AddRead { delta }), ctx),
            Msg::Read { .. } => {
                // Unique across restarts too: rewriting a value already there changes nothing,
                // so it would not move the node to the newest state.
                self.syncs += 1;
                let m = Msg::Write {
                    key: format!("sync-{}", ctx.me()),
                    value: format!("{}-{}", self.boot, self.syncs).into(),
                };
                self.call(m, job(Step::ReadSync), ctx);
            }
            _ => {}
        }
    }
}

/// The simulation of `seed`: knobs drawn from a stream of their own.
fn config(seed: u64, client: ClientWorkload) -> SimConfig {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xc0_7e_c0_7e);
    let nodes = r.random_range(1..=5);
    let faults: FaultSet = match r.random_range(0..4) {
        0 => FaultSet::default(),
        1 => [Fault::Partition].into_iter().collect(),
        _ => [Fault::Partition, Fault::Kill, Fault::Pause]
            .into_iter()
            .collect(),
    };
    SimConfig {
        scenario: client.name().to_string(),
        client,
        latency: Latency::constant([0, 1, 5, 20][r.random_range(0..4)]),
        rate: r.random_range(10.0..60.0),
        time_limit_ms: r.random_range(2_000..=4_000),
        nemesis_interval_ms: r.random_range(300..=1_500),
        faults,
        recovery_ms: 2_000,
        idle_check_ms: 1_000,
        replay_command:
            "SIM_SEED={seed} cargo test -p murmur-maelstrom --test sim_counter -- --nocapture"
                .into(),
        ..SimConfig::broadcast(seed, nodes)
    }
}

fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..count).collect(),
    }
}

fn simulate(seed: u64, client: ClientWorkload, blind: bool) -> SimOutcome {
    sim::run::<Counter>(&config(seed, client), &CounterConfig { blind })
}

/// The history's `ok` adds: their count and sum.
fn ok_adds(out: &SimOutcome) -> (usize, i64) {
    let adds: Vec<i64> = out
        .history
        .iter()
        .filter(|o| o.is_client() && o.f == "add" && o.kind == maelstrom::history::OpType::Ok)
        .filter_map(|o| o.value.as_json()?.as_i64())
        .collect();
    (adds.len(), adds.iter().sum())
}

#[test]
fn a_cas_counter_over_seq_kv_passes_every_seed() {
    let (mut adds, mut faults, mut service_msgs) = (0, 0, 0);
    for client in [ClientWorkload::GCounter, ClientWorkload::PnCounter] {
        for seed in seeds(300) {
            let out = simulate(seed, client, false);
            if let Some(report) = out.failure_report() {
                panic!("{report}");
            }
            let (n, _) = ok_adds(&out);
            // Kills and pauses may time out every op of a short run; partitions never touch the
            // node's service traffic, nor its clients'.
            let only_partitions = !out.config.faults.contains(Fault::Kill);
            assert!(
                n > 0 || !only_partitions,
                "seed {seed}: no add succeeded: {}",
                out.config.describe()
            );
            adds += n;
            faults += out.stats.faults();
            service_msgs += out
                .journal
                .iter()
                .filter(|e| e.src == SERVICE && e.kind == maelstrom::history::JournalKind::Send)
                .count();
            if seed % 20 == 0 {
                // One seed, one run.
                let again = simulate(seed, client, false);
                assert_eq!(out.fingerprint(), again.fingerprint(), "seed {seed}");
            }
        }
    }
    eprintln!(
        "cas counter: {adds} acknowledged adds, {faults} faults, {service_msgs} service replies"
    );
    assert!(adds > 1_000 && faults > 100 && service_msgs > adds);
}

#[test]
fn a_blind_counter_is_caught() {
    let (mut caught, mut runs) = (0, 0);
    for seed in seeds(100) {
        let out = simulate(seed, ClientWorkload::GCounter, true);
        runs += 1;
        let unacceptable = out.violations.iter().any(|v| v.kind() == "unacceptable");
        if unacceptable {
            caught += 1;
        } else if out.config.nodes > 1 && ok_adds(&out).0 > 20 && out.config.latency.mean_ms() > 0 {
            // Concurrent adds from several nodes over a network with latency: the blind writes
            // overwrite each other.
            eprintln!("not caught: {}", out.config.describe());
        }
    }
    eprintln!("blind counter caught in {caught} of {runs} seeds");
    if runs > 1 {
        assert!(caught * 2 > runs, "caught in only {caught} of {runs} seeds");
    }
}

// ---------------------------------------------------------------------------------------------
// g-set over lin-kv

const SET_KEY: &str = "set";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SetMsg {
    Add {
        element: serde_json::Value,
    },
    AddOk,
    /// A client's read has no key; ours, to the service, has one.
    Read {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    ReadOk {
        value: Vec<serde_json::Value>,
    },
    Cas {
        key: String,
        from: Vec<serde_json::Value>,
        to: Vec<serde_json::Value>,
        create_if_not_exists: bool,
    },
    CasOk,
    Error(ErrorBody),
}

impl From<ErrorBody> for SetMsg {
    fn from(e: ErrorBody) -> Self {
        SetMsg::Error(e)
    }
}

/// What a request to `lin-kv` is for: an add's read or cas (of this element), or a read.
#[derive(Debug, Clone)]
enum SetStep {
    AddRead(serde_json::Value),
    AddCas(serde_json::Value),
    Read,
}

struct GSet {
    /// The mutant: acknowledges every fifth element without storing it.
    lossy: bool,
    jobs: HashMap<u64, (String, Option<u64>, SetStep)>,
}

impl GSet {
    fn read(&mut self, job: (String, Option<u64>, SetStep), ctx: &mut Ctx<SetMsg>) {
        let key = Some(SET_KEY.to_string());
        let id = ctx.send("lin-kv", SetMsg::Read { key });
        self.jobs.insert(id, job);
    }
}

impl Workload for GSet {
    type Msg = SetMsg;
    /// Lossy (the mutant) or not.
    type Config = bool;

    fn init(_: &InitInfo, lossy: &bool, _: Millis) -> Self {
        GSet {
            lossy: *lossy,
            jobs: HashMap::new(),
        }
    }

    fn handle(&mut self, msg: Message<SetMsg>, _: Millis, ctx: &mut Ctx<SetMsg>) {
        let Some(irt) = msg.body.in_reply_to else {
            let (src, msg_id) = (msg.src.clone(), msg.body.msg_id);
            match msg.body.payload {
                SetMsg::Add { element }
                    if self.lossy && element.as_u64().is_some_and(|e| e % 5 == 0) =>
                {
                    ctx.reply(&src, msg_id, SetMsg::AddOk)
                }
                SetMsg::Add { element } => self.read((src, msg_id, SetStep::AddRead(element)), ctx),
                SetMsg::Read { .. } => self.read((src, msg_id, SetStep::Read), ctx),
                _ => {}
            }
            return;
        };
        let Some((client, msg_id, step)) = self.jobs.remove(&irt) else {
            return;
        };
        let (ok, set) = match msg.body.payload {
            SetMsg::ReadOk { value } => (true, value),
            SetMsg::Error(_) => (false, Vec::new()), // a missing set is empty
            _ => (true, Vec::new()),
        };
        match step {
            SetStep::AddRead(e) if set.contains(&e) => ctx.reply(&client, msg_id, SetMsg::AddOk),
            SetStep::AddRead(e) => {
                let mut to = set.clone();
                to.push(e.clone());
                let cas = SetMsg::Cas {
                    key: SET_KEY.into(),
                    from: set,
                    to,
                    create_if_not_exists: true,
                };
                let id = ctx.send("lin-kv", cas);
                self.jobs.insert(id, (client, msg_id, SetStep::AddCas(e)));
            }
            SetStep::AddCas(_) if ok => ctx.reply(&client, msg_id, SetMsg::AddOk),
            SetStep::AddCas(e) => self.read((client, msg_id, SetStep::AddRead(e)), ctx),
            SetStep::Read => ctx.reply(&client, msg_id, SetMsg::ReadOk { value: set }),
        }
    }
}

#[test]
fn a_g_set_over_lin_kv_passes_every_seed() {
    let (mut acked, mut checked) = (0, 0);
    for seed in seeds(200) {
        let out = sim::run::<GSet>(&config(seed, ClientWorkload::GSet), &false);
        if let Some(report) = out.failure_report() {
            panic!("{report}");
        }
        let sf = out.set_full.as_ref().expect("set-full ran");
        assert_eq!(sf.lost_count, 0);
        acked += out.stats.acked;
        checked += out.stats.values_checked;
    }
    eprintln!("g-set: {acked} acknowledged elements, {checked} checked in final reads");
    assert!(acked > 500 && checked > acked);
}

#[test]
fn a_g_set_that_loses_elements_is_caught() {
    let (mut caught, mut runs) = (0, 0);
    for seed in seeds(60) {
        let out = sim::run::<GSet>(&config(seed, ClientWorkload::GSet), &true);
        runs += 1;
        let lost = out.set_full.as_ref().is_some_and(|sf| sf.lost_count > 0);
        if lost && out.lost_values() {
            caught += 1;
        }
    }
    eprintln!("lossy g-set caught in {caught} of {runs} seeds");
    if runs > 1 {
        assert!(
            caught * 4 > runs * 3,
            "caught in only {caught} of {runs} seeds"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// murmur's own nodes (`murmur::workload::counter`): the CRDT design over the broadcast node, and
// the seq-kv design.

use murmur::workload::broadcast::BroadcastConfig;
use murmur::workload::counter::{Crdt, CrdtConfig, Kind, KvConfig, KvCounter};

fn kind_of(client: ClientWorkload) -> Kind {
    match client {
        ClientWorkload::GSet => Kind::GSet,
        ClientWorkload::GCounter => Kind::GCounter,
        _ => Kind::PnCounter,
    }
}

/// murmur's CRDT node for `client`'s workload, `persist` on or off; Maelstrom's 10 s recovery
/// wait, so that the node's retransmissions after the last partition (`rto_ms` 2.5 s) are done
/// before the idle check.
fn simulate_crdt(seed: u64, client: ClientWorkload, persist: bool) -> SimOutcome {
    let cfg = SimConfig {
        recovery_ms: 10_000,
        ..config(seed, client)
    };
    let node = CrdtConfig {
        kind: kind_of(client),
        broadcast: BroadcastConfig {
            seed,
            persist,
            ..BroadcastConfig::default()
        },
    };
    sim::run::<Crdt>(&cfg, &node)
}

#[test]
fn murmur_crdt_nodes_lose_no_acknowledged_add_under_kills_pauses_and_partitions() {
    let (mut adds, mut kills) = (0, 0);
    for client in [
        ClientWorkload::GCounter,
        ClientWorkload::PnCounter,
        ClientWorkload::GSet,
    ] {
        for seed in seeds(100) {
            let out = simulate_crdt(seed, client, true);
            if let Some(report) = out.failure_report() {
                panic!("{report}");
            }
            if let Some(sf) = &out.set_full {
                assert_eq!(sf.lost_count, 0, "seed {seed}");
            }
            adds += match client {
                ClientWorkload::GSet => out.stats.acked as usize,
                _ => ok_adds(&out).0,
            };
            kills += out.stats.kills;
            if seed % 25 == 0 {
                let again = simulate_crdt(seed, client, true);
                assert_eq!(out.fingerprint(), again.fingerprint(), "seed {seed}");
            }
        }
    }
    eprintln!("murmur crdt: {adds} acknowledged adds, {kills} kills, none lost");
    if seeds(2).len() > 1 {
        assert!(adds > 5_000 && kills > 100, "{adds} adds, {kills} kills");
    }
}

/// The same nodes keeping nothing on disk must be caught losing acknowledged adds to kills: the
/// sweep above can fail.
#[test]
fn murmur_crdt_nodes_without_persistence_are_caught_losing_adds() {
    let (mut caught, mut runs) = (0, 0);
    for seed in seeds(100) {
        let out = simulate_crdt(seed, ClientWorkload::GCounter, false);
        if !out.config.faults.contains(Fault::Kill) {
            continue;
        }
        runs += 1;
        if out.violations.iter().any(|v| v.kind() == "unacceptable") {
            caught += 1;
        }
    }
    eprintln!("crdt without persistence caught in {caught} of {runs} seeds with kills");
    if runs > 1 {
        assert!(caught * 5 > runs, "caught in only {caught} of {runs} seeds");
    }
}

#[test]
fn murmur_seq_kv_counters_pass_every_seed() {
    let mut adds = 0;
    for client in [ClientWorkload::GCounter, ClientWorkload::PnCounter] {
        for seed in seeds(100) {
            let node = KvConfig {
                kind: kind_of(client),
            };
            let out = sim::run::<KvCounter>(&config(seed, client), &node);
            if let Some(report) = out.failure_report() {
                panic!("{report}");
            }
            adds += ok_adds(&out).0;
        }
    }
    eprintln!("murmur seq-kv counter: {adds} acknowledged adds");
    if seeds(2).len() > 1 {
        assert!(adds > 5_000, "{adds} adds");
    }
}
