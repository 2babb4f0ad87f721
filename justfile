# murmur: gossip nodes for Maelstrom, and a Maelstrom-compatible runner.
# `just` lists recipes. The built-in runner is used unless MAELSTROM points at a real Maelstrom
# (the `maelstrom` launcher script of a release, which needs a JVM).

set shell := ["bash", "-euo", "pipefail", "-c"]

runner := env_var_or_default("MAELSTROM", "target/release/maelstrom")

default:
    @just --list

# Build every node binary and the runner (release).
build:
    cargo build --release --workspace

# The gate: format, lint, test. This is what CI runs.
test:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace

# Run a workload's challenge configuration: just maelstrom-run broadcast [extra runner flags]
# (txn-list-append has no murmur node; `--bin <your node>` in the flags runs another node). g-counter
# and pn-counter run the CRDT design; `MURMUR_DESIGN=seq-kv just maelstrom-run g-counter` runs the
# seq-kv design. kafka: `kafka` (or `kafka-5a`) is challenge 5a (one node), `kafka-5b` and `kafka-5c`
# are 5b and 5c (two nodes, the same configuration; 5c's goal is efficiency, see README); the node runs
# its local design, `MURMUR_DESIGN=lin-kv` runs the lin-kv design. txn-rw-register's challenges are 6a,
# 6b (its partitioned run) and 6c; the plain name runs 6c; the node runs its batched design,
# `MURMUR_DESIGN=per-txn` the straightforward one (see `just bench-txn`).
maelstrom-run workload="broadcast" *flags="": build
    #!/usr/bin/env bash
    set -euo pipefail
    w="{{workload}}"
    case "{{workload}}" in
      echo)       cfg="--node-count 1 --time-limit 10" ;;
      unique-ids) cfg="--time-limit 30 --rate 1000 --node-count 3 --availability total --nemesis partition" ;;
      broadcast)  cfg="--node-count 25 --time-limit 20 --rate 100 --latency 100" ;;
      g-set)      cfg="--node-count 3 --time-limit 20 --rate 10 --nemesis partition" ;;
      g-counter)  cfg="--node-count 3 --rate 100 --time-limit 20 --nemesis partition" ;;
      pn-counter) cfg="--node-count 3 --rate 100 --time-limit 20 --nemesis partition" ;;
      lin-kv)     cfg="--node-count 5 --concurrency 2n --rate 100 --time-limit 20 --nemesis partition" ;;
      kafka|kafka-5a)     cfg="--node-count 1 --concurrency 2n --time-limit 20 --rate 1000" ;;
      kafka-5b|kafka-5c)  cfg="--node-count 2 --concurrency 2n --time-limit 20 --rate 1000" ;;
      6a)         cfg="--node-count 1 --time-limit 20 --rate 1000 --concurrency 2n --consistency-models read-uncommitted --availability total" ;;
      6b)         cfg="--node-count 2 --concurrency 2n --time-limit 20 --rate 1000 --consistency-models read-uncommitted --availability total --nemesis partition" ;;
      6c|txn-rw-register) cfg="--node-count 2 --concurrency 2n --time-limit 20 --rate 1000 --consistency-models read-committed --availability total --nemesis partition" ;;
      txn-list-append) cfg="--node-count 1 --time-limit 10" ;;
      *) echo "unknown workload {{workload}} (echo, unique-ids, broadcast, g-set, g-counter, pn-counter, lin-kv, kafka or kafka-5a/5b/5c, txn-rw-register or 6a/6b/6c, txn-list-append)" >&2; exit 254 ;;
    esac
    case "{{workload}}" in
      kafka*) w=kafka ;;
      6a|6b|6c) w=txn-rw-register ;;
      *) w="{{workload}}" ;;
    esac
    # The node: target/release/<workload>, unless the flags name one with --bin.
    bin=()
    case " {{flags}} " in
      *" --bin "*|*" --bin="*) ;;
      *)
        if [ ! -x "target/release/$w" ]; then
          case "$w" in
            txn-list-append) why="murmur has no $w node" ;;
            *) why="was it built? \`just build\` builds it" ;;
          esac
          echo "error: no node binary for $w: target/release/$w does not exist ($why); pass a node with: just maelstrom-run {{workload}} --bin <path to your node>" >&2
          exit 254
        fi
        bin=(--bin "target/release/$w") ;;
    esac
    exec {{runner}} test -w "$w" "${bin[@]}" $cfg {{flags}}

# The Gossip Glomers challenge configurations, one after another (g-counter and kafka 5b in both designs).
challenges: build
    {{runner}} test -w echo --bin target/release/echo --node-count 1 --time-limit 10
    {{runner}} test -w unique-ids --bin target/release/unique-ids --time-limit 30 --rate 1000 --node-count 3 --availability total --nemesis partition
    {{runner}} test -w broadcast --bin target/release/broadcast --node-count 1 --time-limit 20 --rate 10
    {{runner}} test -w broadcast --bin target/release/broadcast --node-count 5 --time-limit 20 --rate 10
    {{runner}} test -w broadcast --bin target/release/broadcast --node-count 5 --time-limit 20 --rate 10 --nemesis partition
    {{runner}} test -w broadcast --bin target/release/broadcast --node-count 25 --time-limit 20 --rate 100 --latency 100
    {{runner}} test -w broadcast --bin target/release/broadcast --node-count 25 --time-limit 20 --rate 100 --latency 100 --nemesis partition
    {{runner}} test -w g-counter --bin target/release/g-counter --node-count 3 --rate 100 --time-limit 20 --nemesis partition
    MURMUR_DESIGN=seq-kv {{runner}} test -w g-counter --bin target/release/g-counter --node-count 3 --rate 100 --time-limit 20 --nemesis partition
    {{runner}} test -w kafka --bin target/release/kafka --node-count 1 --concurrency 2n --time-limit 20 --rate 1000
    {{runner}} test -w kafka --bin target/release/kafka --node-count 2 --concurrency 2n --time-limit 20 --rate 1000
    MURMUR_DESIGN=lin-kv {{runner}} test -w kafka --bin target/release/kafka --node-count 2 --concurrency 2n --time-limit 20 --rate 1000
    {{runner}} test -w txn-rw-register --bin target/release/txn-rw-register --node-count 1 --time-limit 20 --rate 1000 --concurrency 2n --consistency-models read-uncommitted --availability total
    {{runner}} test -w txn-rw-register --bin target/release/txn-rw-register --node-count 2 --concurrency 2n --time-limit 20 --rate 1000 --consistency-models read-uncommitted
    {{runner}} test -w txn-rw-register --bin target/release/txn-rw-register --node-count 2 --concurrency 2n --time-limit 20 --rate 1000 --consistency-models read-uncommitted --availability total --nemesis partition
    {{runner}} test -w txn-rw-register --bin target/release/txn-rw-register --node-count 2 --concurrency 2n --time-limit 20 --rate 1000 --consistency-models read-committed --availability total --nemesis partition

# Broadcast benchmarks (3d/3e configuration per setting and fault variant) → results/BENCHMARKS.md.
# `just bench --quick` runs the fault-free settings only (about 3 minutes); the full run takes ~10.
bench *flags="": build
    target/release/bench {{flags}}

# Counters: murmur's g-counter, CRDT vs seq-kv design, challenge 4's configuration without faults,
# with partitions, with kill+pause+partition → the "Counters" section of results/BENCHMARKS.md (~3 min).
bench-counters seed="1": build
    target/release/bench --counters --seed {{seed}}

# lin-kv: murmur's Raft node beside kv-proxy (every op passed to the lin-kv service), 5 nodes, rate
# 100, 20 s, without faults, with partitions, with kill+pause+partition → the "lin-kv" section of
# results/BENCHMARKS.md (~4 min).
bench-lin-kv seed="1": build
    target/release/bench --lin-kv --seed {{seed}}

# txn-rw-register: murmur's node in its batched and per-txn designs, durable and in memory, on the
# Gossip Glomers 6a-6c configurations, seeds 1..N with the designs of a seed back to back → the
# "txn-rw-register" section of results/BENCHMARKS.md (~5 min per seed).
bench-txn seeds="3": build
    target/release/bench --txn --seeds {{seeds}}

# Durability matrix: 20 seeds of kill,pause,partition at 5 and 25 nodes → results/FAULTS.md (~25 min).
faults seeds="20": build
    target/release/bench --faults --seeds {{seeds}}

# Single-node capacity: latency vs rate at set sizes 1k/10k/100k → results/CAPACITY.md (~1 min).
capacity: build
    target/release/bench --capacity

# A node's start-up (spawn to init_ok) over a 1M-value log, uncompacted vs compacted → the
# "Start-up" section of results/BENCHMARKS.md (~1 min).
startup values="1000000": build
    target/release/bench --startup --values {{values}}

# The txn workloads' checker over a seeded 10k-transaction history → the "Elle checker" section of
# results/BENCHMARKS.md (~10 s).
bench-elle txns="10000": build
    target/release/bench --elle --txns {{txns}}

# The runner's own capacity: 25 flooding fixture nodes at 25k–100k msgs/s → results/RUNNER.md (~1 min).
runner-capacity: build
    target/release/bench --runner-capacity

# Soak: 600 s of kill,pause,partition at 25 nodes, memory sampled → results/SOAK.md and FAULTS.md's soak row (~11 min).
soak secs="600": build
    target/release/bench --soak --soak-secs {{secs}}

# report.html's generation time and size for a 3d/3e run with partitions (`maelstrom analyze`, 5 times; ~1 min).
report-speed repeats="5" seed="1": build
    maelstrom/scripts/report-speed.sh {{repeats}} {{seed}}

# Router delivery lag with the live dashboard (--web) off, closed, open in headless Chromium, polled (~6 min).
web-lag: build
    maelstrom/scripts/web-lag.sh
