//! Tests of partition shapes and the fault schedule.

use super::*;
use proptest::prelude::*;

const SEC: u64 = 1_000_000_000;

fn nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn drops<'a>(g: &'a Grudge, node: &str) -> &'a HashSet<String> {
    g.get(node).expect("every node is a key")
}

fn is_symmetric(g: &Grudge) -> bool {
    g.iter()
        .all(|(r, srcs)| srcs.iter().all(|s| g.get(s).is_some_and(|b| b.contains(r))))
}

/// Nodes with a non-empty drop set.
fn cut_nodes(g: &Grudge) -> Vec<&String> {
    g.iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn fault_sets_parse_like_maelstrom() {
    let all: FaultSet = "kill,pause,partition".parse().unwrap();
    assert_eq!(
        all,
        FaultSet {
            partition: true,
            kill: true,
            pause: true
        }
    );
    assert_eq!(all.to_string(), "partition,kill,pause");
    let p: FaultSet = "partition".parse().unwrap();
    assert!(p.partition && !p.kill && !p.pause);
    let two: FaultSet = "pause , kill,kill".parse().unwrap();
    assert_eq!(
        two,
        FaultSet {
            partition: false,
            kill: true,
            pause: true
        }
    );
    assert!(FaultSet::default().is_empty());
    assert_eq!(
        [Fault::Kill, Fault::Pause]
            .into_iter()
            .collect::<FaultSet>(),
        two
    );
    for bad in ["", "partitions", " partition", "partition,", "crash"] {
        let err = bad.parse::<FaultSet>().unwrap_err();
        assert!(err.to_string().contains("partition, kill, pause"), "{err}");
    }
}

#[test]
fn partition_spec_names() {
    for spec in PartitionSpec::ALL {
        assert_eq!(spec.name().parse::<PartitionSpec>().unwrap(), spec);
    }
    assert!("primaries".parse::<PartitionSpec>().is_err());
}

#[test]
fn sizes() {
    assert_eq!(
        (0..8).map(majority).collect::<Vec<_>>(),
        [1, 1, 2, 2, 3, 3, 4, 4]
    );
    assert_eq!(
        [0, 1, 2, 3, 4, 5, 7, 25].map(minority_third),
        [0, 0, 0, 0, 1, 1, 2, 8]
    );
}

#[test]
fn one_isolates_a_single_node_both_ways() {
    for n in [3, 5, 25] {
        for seed in 0..20 {
            let p = partition(PartitionSpec::One, &nodes(n), &mut rng(seed));
            assert_eq!(p.grudge.len(), n);
            assert!(is_symmetric(&p.grudge));
            let loners: Vec<_> = p
                .grudge
                .iter()
                .filter(|(_, s)| s.len() == n - 1)
                .map(|(k, _)| k)
                .collect();
            assert_eq!(loners.len(), 1);
            let loner = loners[0];
            for (node, srcs) in &p.grudge {
                if node != loner {
                    assert_eq!(srcs.len(), 1);
                    assert!(srcs.contains(loner));
                }
            }
        }
    }
}

#[test]
fn majority_splits_at_half() {
    for n in [3, 5, 25] {
        for seed in 0..20 {
            let p = partition(PartitionSpec::Majority, &nodes(n), &mut rng(seed));
            assert!(is_symmetric(&p.grudge));
            let small: Vec<_> = p
                .grudge
                .iter()
                .filter(|(_, s)| s.len() == n - n / 2)
                .collect();
            let big: Vec<_> = p.grudge.iter().filter(|(_, s)| s.len() == n / 2).collect();
            assert_eq!(small.len(), n / 2);
            assert_eq!(big.len(), n - n / 2);
            // Each side drops exactly the other side.
            for (_, srcs) in &small {
                assert!(srcs.iter().all(|s| big.iter().any(|(b, _)| *b == s)));
            }
        }
    }
}

#[test]
fn minority_third_sizes() {
    let p = partition(PartitionSpec::MinorityThird, &nodes(3), &mut rng(1));
    assert_eq!(p.grudge.len(), 3);
    assert!(cut_nodes(&p.grudge).is_empty(), "a no-op for n = 3");
    for seed in 0..20 {
        let p = partition(PartitionSpec::MinorityThird, &nodes(5), &mut rng(seed));
        assert!(is_symmetric(&p.grudge));
        assert_eq!(p.grudge.values().filter(|s| s.len() == 4).count(), 1);
        assert_eq!(p.grudge.values().filter(|s| s.len() == 1).count(), 4);
        let p = partition(PartitionSpec::MinorityThird, &nodes(25), &mut rng(seed));
        assert!(is_symmetric(&p.grudge));
        assert_eq!(p.grudge.values().filter(|s| s.len() == 17).count(), 8);
        assert_eq!(p.grudge.values().filter(|s| s.len() == 8).count(), 17);
    }
}

#[test]
fn majorities_ring_three_is_a_one_directional_cycle() {
    for seed in 0..20 {
        let g = majorities_ring(&nodes(3), &mut rng(seed));
        assert_eq!(g.len(), 3);
        for (r, srcs) in &g {
            assert_eq!(srcs.len(), 1, "{g:?}");
            let s = srcs.iter().next().unwrap();
            assert_ne!(s, r);
            // One-directional: the node r drops does not drop r.
            assert!(!drops(&g, s).contains(r), "{g:?}");
        }
    }
}

#[test]
fn majorities_ring_five_hears_exactly_two_ring_neighbours() {
    for seed in 0..50 {
        let ns = nodes(5);
        let g = majorities_ring(&ns, &mut rng(seed));
        assert!(is_symmetric(&g));
        // Who hears whom (excluding self) forms one 5-cycle.
        let hears = |a: &String| -> Vec<&String> {
            ns.iter()
                .filter(|b| *b != a && !drops(&g, a).contains(*b))
                .collect()
        };
        for a in &ns {
            assert_eq!(drops(&g, a).len(), 2);
            assert_eq!(hears(a).len(), 2);
        }
        let mut seen = vec![&ns[0]];
        let mut cur = &ns[0];
        let mut prev: Option<&String> = None;
        for _ in 0..4 {
            let next = *hears(cur).iter().find(|x| Some(**x) != prev).unwrap();
            assert!(!seen.contains(&next), "{g:?}");
            seen.push(next);
            prev = Some(cur);
            cur = next;
        }
        assert!(hears(cur).contains(&&ns[0]));
        // Every node sees a majority (3, itself included), and no two see the same one.
        let views: HashSet<Vec<&String>> = ns
            .iter()
            .map(|a| {
                let mut v: Vec<&String> =
                    ns.iter().filter(|b| !drops(&g, a).contains(*b)).collect();
                v.sort();
                v
            })
            .collect();
        assert_eq!(views.len(), 5);
    }
}

#[test]
fn majorities_ring_25_keeps_a_majority_everywhere() {
    for seed in 0..20 {
        let ns = nodes(25);
        let g = majorities_ring(&ns, &mut rng(seed));
        assert_eq!(g.len(), 25);
        assert!(is_symmetric(&g));
        for (r, srcs) in &g {
            assert!(!srcs.contains(r));
            assert!(25 - srcs.len() >= 13, "{r} keeps {} links", 25 - srcs.len());
        }
        assert!(!cut_nodes(&g).is_empty());
    }
}

#[test]
fn tiny_and_empty_clusters_never_panic() {
    for n in 0..3 {
        for spec in PartitionSpec::ALL {
            let p = partition(spec, &nodes(n), &mut rng(0));
            assert_eq!(p.grudge.len(), n);
            let cuts_two = n == 2 && matches!(spec, PartitionSpec::One | PartitionSpec::Majority);
            assert_eq!(
                cut_nodes(&p.grudge).len(),
                if cuts_two { 2 } else { 0 },
                "{spec} n={n}"
            );
        }
        for spec in NodeSpec::ALL {
            let chosen = spec.resolve(&nodes(n), &mut rng(0));
            assert!(chosen.len() <= n);
        }
    }
    let mut plan = NemesisPlan::new(
        FaultSet {
            partition: true,
            kill: true,
            pause: true,
        },
        1.0,
        Vec::new(),
        3,
    )
    .unwrap();
    let mut now = 0;
    for _ in 0..50 {
        let (due, op) = plan.next(now).unwrap();
        assert!(op.nodes().is_empty() || matches!(op, NemesisOp::Start { .. }));
        now = due;
    }
}

#[test]
fn description_and_values() {
    let ns = nodes(12);
    let g = complete_grudge(&[
        vec!["n10".into()],
        ns.iter().filter(|n| *n != "n10").cloned().collect(),
    ]);
    let p = Partition {
        spec: Some(PartitionSpec::One),
        description: isolated_value(&g, &ns),
        grudge: g,
    };
    let v = p.description.clone();
    assert_eq!(v[0], "isolated");
    assert_eq!(v[1]["n2"], json!(["n10"]));
    let loner = v[1]["n10"].as_array().unwrap();
    let expect: Vec<Value> = ns
        .iter()
        .filter(|n| *n != "n10")
        .map(|n| json!(n))
        .collect();
    assert_eq!(loner, &expect, "sources in node-list order");
    // The internal description agrees with isolated_value.
    let p2 = partition(PartitionSpec::MajoritiesRing, &nodes(25), &mut rng(9));
    assert_eq!(p2.description, isolated_value(&p2.grudge, &nodes(25)));
    let op = NemesisOp::StartPartition(p);
    assert_eq!(op.f(), "start-partition");
    assert_eq!(op.invoke_value(), json!("one"));
    assert_eq!(op.completion_value(), v);
    assert_eq!(NemesisOp::StopPartition.f(), "stop-partition");
    assert_eq!(NemesisOp::StopPartition.invoke_value(), Value::Null);
    assert_eq!(
        NemesisOp::StopPartition.completion_value(),
        json!("network-healed")
    );
    let kill = NemesisOp::Kill {
        target: NodeSpec::Random,
        nodes: vec!["n1".into()],
    };
    assert_eq!((kill.f(), kill.invoke_value()), ("kill", Value::Null));
    assert_eq!(kill.completion_value(), json!({"n1": "killed"}));
    let pause = NemesisOp::Pause {
        target: NodeSpec::Minority,
        nodes: vec!["n0".into()],
    };
    assert_eq!(
        (pause.f(), pause.invoke_value()),
        ("pause", json!("minority"))
    );
    let start = NemesisOp::Start { nodes: nodes(2) };
    assert_eq!((start.f(), start.invoke_value()), ("start", json!("all")));
    assert_eq!(
        start.completion_value(),
        json!({"n0": "started", "n1": "started"})
    );
    let resume = NemesisOp::Resume { nodes: nodes(1) };
    assert_eq!(
        (resume.f(), resume.completion_value()),
        ("resume", json!({"n0": "resumed"}))
    );
}

#[test]
fn node_specs_resolve_to_the_right_sizes() {
    let ns = nodes(5);
    let mut r = rng(4);
    for _ in 0..50 {
        assert_eq!(NodeSpec::One.resolve(&ns, &mut r).len(), 1);
        assert_eq!(NodeSpec::MinorityThird.resolve(&ns, &mut r).len(), 1);
        assert_eq!(NodeSpec::Minority.resolve(&ns, &mut r).len(), 2);
        assert_eq!(NodeSpec::Majority.resolve(&ns, &mut r).len(), 3);
        assert_eq!(NodeSpec::All.resolve(&ns, &mut r), ns);
        let k = NodeSpec::Random.resolve(&ns, &mut r);
        assert!((1..=5).contains(&k.len()));
        // Node-list order, no repeats.
        let mut sorted = k.clone();
        sorted.sort_by_key(|n| n[1..].parse::<u32>().unwrap());
        sorted.dedup();
        assert_eq!(sorted, k);
    }
    assert_eq!(NodeSpec::Random.value(), Value::Null);
    assert_eq!(NodeSpec::MinorityThird.value(), json!("minority-third"));
}

/// Drives a plan with zero-duration ops; returns (due, op) pairs.
fn run(plan: &mut NemesisPlan, count: usize) -> Vec<(u64, NemesisOp)> {
    let mut now = 0;
    let mut out = Vec::new();
    for _ in 0..count {
        let (due, op) = plan.next(now).unwrap();
        assert!(due >= now);
        now = due;
        out.push((due, op));
    }
    out
}

#[test]
fn no_faults_no_ops() {
    let mut plan = NemesisPlan::new(FaultSet::default(), 10.0, nodes(5), 1).unwrap();
    assert!(plan.is_empty());
    assert!(plan.next(0).is_none());
    assert!(plan.final_ops().is_empty());
}

#[test]
fn invalid_intervals_are_rejected() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(NemesisPlan::new(FaultSet::default(), bad, nodes(3), 1).is_err());
    }
    // A tiny interval is fine: gaps collapse to 0.
    let f = FaultSet {
        partition: true,
        ..FaultSet::default()
    };
    let mut plan = NemesisPlan::new(f, 1e-12, nodes(3), 1).unwrap();
    assert!(run(&mut plan, 5).iter().all(|(t, _)| *t == 0));
}

#[test]
fn partition_schedule_alternates_with_bounded_gaps() {
    let f = FaultSet {
        partition: true,
        ..FaultSet::default()
    };
    let mut plan = NemesisPlan::new(f, 10.0, nodes(5), 42).unwrap();
    let ops = run(&mut plan, 400);
    assert_eq!(ops[0].0, 0, "first start-partition at t = 0");
    let mut specs = HashSet::new();
    let mut gap_sum = 0;
    for (i, (t, op)) in ops.iter().enumerate() {
        if i % 2 == 0 {
            let NemesisOp::StartPartition(p) = op else {
                panic!("op {i} is {op:?}")
            };
            specs.insert(p.spec.expect("drawn partitions have a spec"));
        } else {
            assert_eq!(op, &NemesisOp::StopPartition);
        }
        if i > 0 {
            let gap = t - ops[i - 1].0;
            assert!(gap < 20 * SEC);
            gap_sum += gap;
        }
    }
    assert_eq!(specs.len(), 4, "every spec is drawn");
    let mean = gap_sum as f64 / 399.0 / SEC as f64;
    assert!((mean - 10.0).abs() < 1.0, "{mean}");
    assert_eq!(plan.final_ops(), vec![NemesisOp::StopPartition]);
}

#[test]
fn late_nemesis_reschedules_from_now() {
    let f = FaultSet {
        partition: true,
        ..FaultSet::default()
    };
    let mut plan = NemesisPlan::new(f, 1.0, nodes(5), 7).unwrap();
    let (t0, _) = plan.next(0).unwrap();
    assert_eq!(t0, 0);
    // The first op took 5 s (> 2·interval): the next is due immediately, and the one after
    // within 2 s of it.
    let (t1, op1) = plan.next(5 * SEC).unwrap();
    assert_eq!((t1, op1), (5 * SEC, NemesisOp::StopPartition));
    let (t2, _) = plan.next(t1).unwrap();
    assert!(t2 >= t1 && t2 < t1 + 2 * SEC);
    // Asking early returns the scheduled time, not now.
    let (t3, _) = plan.next(t2).unwrap();
    assert!(t3 >= t2 && t3 < t2 + 2 * SEC);
}

#[test]
fn kill_and_pause_flip_flops_are_mixed() {
    let f = FaultSet {
        partition: false,
        kill: true,
        pause: true,
    };
    let ns = nodes(5);
    let mut plan = NemesisPlan::new(f, 10.0, ns.clone(), 5).unwrap();
    let ops = run(&mut plan, 600);
    assert_eq!(ops[0].0, 0);
    let (mut kill_down, mut pause_down) = (false, false);
    let mut targets = HashSet::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (i, (t, op)) in ops.iter().enumerate() {
        *counts.entry(op.f()).or_default() += 1;
        match op {
            NemesisOp::Kill { target, nodes } => {
                assert!(!kill_down, "kill follows start");
                kill_down = true;
                targets.insert(*target);
                let ok = match target {
                    NodeSpec::Random => (1..=5).contains(&nodes.len()),
                    NodeSpec::One | NodeSpec::MinorityThird => nodes.len() == 1,
                    NodeSpec::Minority => nodes.len() == 2,
                    NodeSpec::Majority => nodes.len() == 3,
                    NodeSpec::All => nodes == &ns,
                };
                assert!(ok, "{target:?} {nodes:?}");
            }
            NemesisOp::Start { nodes } => {
                assert!(kill_down, "start follows kill");
                kill_down = false;
                assert_eq!(nodes, &ns);
            }
            NemesisOp::Pause { target, .. } => {
                assert!(!pause_down);
                pause_down = true;
                targets.insert(*target);
            }
            NemesisOp::Resume { nodes } => {
                assert!(pause_down);
                pause_down = false;
                assert_eq!(nodes, &ns);
            }
            other => panic!("unexpected {other:?}"),
        }
        if i > 0 {
            assert!(t - ops[i - 1].0 < 20 * SEC);
        }
    }
    assert_eq!(targets.len(), NodeSpec::ALL.len());
    for f in ["kill", "start", "pause", "resume"] {
        assert!(counts[f] > 100, "{counts:?}");
    }
    // Both kinds are interleaved, not run one after the other.
    let switches = ops
        .windows(2)
        .filter(|w| {
            let kind =
                |op: &NemesisOp| matches!(op, NemesisOp::Kill { .. } | NemesisOp::Start { .. });
            kind(&w[0].1) != kind(&w[1].1)
        })
        .count();
    assert!(switches > 100);
    assert_eq!(
        plan.final_ops(),
        vec![
            NemesisOp::Resume { nodes: ns.clone() },
            NemesisOp::Start { nodes: ns.clone() }
        ]
    );
}

#[test]
fn partition_and_db_streams_run_side_by_side() {
    let f = FaultSet {
        partition: true,
        kill: true,
        pause: false,
    };
    let ns = nodes(3);
    let mut plan = NemesisPlan::new(f, 10.0, ns.clone(), 11).unwrap();
    let ops = run(&mut plan, 400);
    // Both streams open at t = 0.
    assert_eq!(ops[0].0, 0);
    assert_eq!(ops[1].0, 0);
    assert_ne!(
        ops[0].1.f().contains("partition"),
        ops[1].1.f().contains("partition")
    );
    // Each stream alternates and keeps its own gaps; together ≈ 2 ops per interval.
    let part: Vec<_> = ops
        .iter()
        .filter(|(_, o)| o.f().contains("partition"))
        .collect();
    let db: Vec<_> = ops
        .iter()
        .filter(|(_, o)| !o.f().contains("partition"))
        .collect();
    for stream in [&part, &db] {
        for w in stream.windows(2) {
            assert_ne!(w[0].1.f(), w[1].1.f());
            assert!(w[1].0 - w[0].0 < 20 * SEC);
        }
    }
    let span = ops.last().unwrap().0 as f64 / SEC as f64;
    let rate = 400.0 / span;
    assert!((rate - 0.2).abs() < 0.03, "{rate} ops/s");
    assert_eq!(
        plan.final_ops(),
        vec![NemesisOp::StopPartition, NemesisOp::Start { nodes: ns }]
    );
}

#[test]
fn plans_are_deterministic_per_seed() {
    let f = FaultSet {
        partition: true,
        kill: true,
        pause: true,
    };
    let a = run(&mut NemesisPlan::new(f, 2.5, nodes(25), 99).unwrap(), 200);
    let b = run(&mut NemesisPlan::new(f, 2.5, nodes(25), 99).unwrap(), 200);
    let c = run(&mut NemesisPlan::new(f, 2.5, nodes(25), 100).unwrap(), 200);
    assert_eq!(a, b);
    assert_ne!(a, c);
    for seed in 0..5 {
        let x = partition(PartitionSpec::MajoritiesRing, &nodes(25), &mut rng(seed));
        let y = partition(PartitionSpec::MajoritiesRing, &nodes(25), &mut rng(seed));
        assert_eq!(x, y);
    }
}

proptest! {
    #[test]
    fn grudges_are_well_formed(n in 0usize..40, seed in any::<u64>(), which in 0usize..4) {
        let ns = nodes(n);
        let spec = PartitionSpec::ALL[which];
        let p = partition(spec, &ns, &mut rng(seed));
        prop_assert_eq!(p.grudge.len(), n);
        for (r, srcs) in &p.grudge {
            prop_assert!(!srcs.contains(r));
            prop_assert!(srcs.iter().all(|s| ns.contains(s)));
        }
        match spec {
            PartitionSpec::MajoritiesRing if n == 3 => {}
            PartitionSpec::MajoritiesRing => {
                prop_assert!(is_symmetric(&p.grudge));
                let m = majority(n);
                for srcs in p.grudge.values() {
                    prop_assert!(n - srcs.len() >= m);
                }
            }
            _ => prop_assert!(is_symmetric(&p.grudge)),
        }
    }
}

#[test]
fn a_chosen_set_is_cut_off_from_the_rest_both_ways() {
    let ns = nodes(5);
    let p = isolate(&["n1".to_string(), "n3".to_string()], &ns);
    assert_eq!(p.spec, None);
    assert_eq!(
        NemesisOp::StartPartition(p.clone()).invoke_value(),
        json!("chosen")
    );
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    assert_eq!(drops(&p.grudge, "n1"), &set(&["n0", "n2", "n4"]));
    assert_eq!(drops(&p.grudge, "n3"), &set(&["n0", "n2", "n4"]));
    assert_eq!(drops(&p.grudge, "n0"), &set(&["n1", "n3"]));
    assert!(is_symmetric(&p.grudge));
    assert_eq!(p.description, isolated_value(&p.grudge, &ns));
    // Everyone (or no one, or only strangers) on one side: nobody drops anything.
    for chosen in [ns.clone(), vec![], vec!["x".to_string()]] {
        let p = isolate(&chosen, &ns);
        assert_eq!(p.grudge.len(), 5);
        assert!(p.grudge.values().all(HashSet::is_empty));
    }
}
