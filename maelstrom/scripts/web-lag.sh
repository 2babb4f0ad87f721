#!/bin/bash
# Router delivery lag p99 with the live dashboard (`maelstrom test --web`) closed and open
# (`just web-lag`): each config is run with no --web ("off"), with --web and no page ("closed"),
# with --web and headless Chromium on the page for the whole run ("open"), and with --web and a
# curl fetching a snapshot every 500 ms ("poll": the server's work without a browser's CPU),
# interleaved. Prints one line per run from its results.json. Needs release binaries (just build)
# and Debian's chromium. Runs go to target/tmp/web-lag/.
set -u
cd "$(dirname "$0")/../.."
R=target/release
OUT=target/tmp/web-lag

one() { # NAME MODE maelstrom-test-args...
  local name=$1 mode=$2; shift 2
  local out=$OUT/$name-$mode-$RANDOM
  mkdir -p "$out"
  local port=$((20000 + RANDOM % 20000)) web=() cpid= ppid=
  [ "$mode" != off ] && web=(--web "127.0.0.1:$port")
  "$R/maelstrom" test "${web[@]}" --no-progress --results-dir "$out/results" "$@" \
    > "$out/stdout" 2> "$out/stderr" &
  local mpid=$!
  if [ "$mode" = open ] || [ "$mode" = poll ]; then
    for _ in $(seq 1 100); do grep -qs "Live dashboard" "$out/stderr" && break; sleep 0.1; done
  fi
  if [ "$mode" = open ]; then
    chromium --headless --no-sandbox --disable-gpu --remote-debugging-port=0 \
      --user-data-dir="$out/profile" "http://127.0.0.1:$port/" > /dev/null 2> "$out/chromium.log" &
    cpid=$!
    sleep 4
    # The page and its event stream: 2 connections while the page is open.
    ss -tn state established "( dport = :$port )" | tail -n +2 | wc -l > "$out/conns"
  elif [ "$mode" = poll ]; then
    ( while sleep 0.5; do curl -s "http://127.0.0.1:$port/api/snapshot?since=999999999" > /dev/null; done ) &
    ppid=$!
  fi
  wait "$mpid"
  local rc=$?
  [ -n "$ppid" ] && kill "$ppid" 2> /dev/null
  [ -n "$cpid" ] && kill "$cpid" 2> /dev/null && wait "$cpid" 2> /dev/null
  python3 - "$out" "$rc" "$mode" "$name" <<'PY'
import glob, json, os, sys
out, rc, mode, name = sys.argv[1:]
f = glob.glob(out + "/results/*/latest/results.json")
r = json.load(open(f[0])) if f else {}
lag = r.get("runner", {}).get("delivery-lag-us", {})
conns = open(out + "/conns").read().strip() if os.path.exists(out + "/conns") else "-"
print(f"{name:8} {mode:6} exit={rc} valid={r.get('valid?')} lag p50={lag.get('p50')} "
      f"p99={lag.get('p99')} max={lag.get('max')} us, deliveries={lag.get('count')}, page-conns={conns}")
PY
}

FLOOD=(-w echo --bin "$R/broken-node" --node-count 25 --rate 0 --time-limit 10 --latency 10 --seed 1 -- flood=10)
BCAST=(-w broadcast --bin "$R/broadcast" --node-count 25 --rate 100 --time-limit 20 --seed 1)
for mode in off closed open poll open closed off poll; do one flood "$mode" "${FLOOD[@]}"; done
for mode in off closed open poll open closed off poll; do one bcast25 "$mode" "${BCAST[@]}"; done
