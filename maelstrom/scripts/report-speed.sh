#!/usr/bin/env bash
# Report generation speed (issue 13's budget: a 3d/3e run's report.html in under 1 s and 5 MB):
# one 25-node broadcast run with partitions, then `maelstrom analyze` on its folder N times (it reads
# results.json, history.jsonl and messages.jsonl and writes report.html, as the end of a run does).
# Prints each analyze's wall time, the median, the journal's message count and the page's size.
# Usage: report-speed.sh [repeats=5] [seed=1]; release binaries from `just build`.
set -euo pipefail
repeats=${1:-5}
seed=${2:-1}
runner=target/release/maelstrom
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmd=("$runner" test -w broadcast --bin target/release/broadcast --node-count 25 --time-limit 20
     --rate 100 --latency 100 --nemesis partition --seed "$seed")
echo "run: ${cmd[*]}" >&2
"${cmd[@]}" --results-dir "$scratch" --no-progress >/dev/null 2>&1 || true
run=$(dirname "$(find "$scratch" -name results.json | head -1)")
msgs=$(wc -l < "$run/messages.jsonl")
times=()
for _ in $(seq "$repeats"); do
    start=$(date +%s%N)
    "$runner" analyze "$run" >/dev/null 2>&1
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000000 )))
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
bytes=$(stat -c %s "$run/report.html")
echo "messages.jsonl lines: $msgs"
echo "analyze wall ms: ${times[*]} (median $median)"
echo "report.html bytes: $bytes"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
