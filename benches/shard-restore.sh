#!/usr/bin/env bash
# One snapshot restored by N worker processes at once (`restore --shard
# K/N`), for each N given, into new topics (a prefix per N) on the target
# broker: wall time from the first start to the last exit, each worker's
# wall time and peak RSS by /usr/bin/time, and the records written
# (BENCHMARKS.md, docs/scale.md's RTO model).
#
#   benches/shard-restore.sh KVAULT_BIN 'bench-w1-v1*' ['1 2 4'] [translate|exact]
#
# Needs KVAULT_KAFKA_SOURCE and KVAULT_KAFKA_TARGET (scripts/kafka start
# source / target) and the topics on the source.
set -euo pipefail
bin=$1 topics=$2 counts=${3:-"1 2 4"} mode=${4:-translate}
. "$(dirname "$0")/support/restore-bench.sh"
snapshot_into "$bin" "$topics"
run=$(date +%s)
for n in $counts; do
  start=$(date +%s.%N)
  for k in $(seq 0 $((n - 1))); do
    /usr/bin/time -f "%e %M" -o "$d/time-$n-$k" "$bin" -r "$d/repo" --no-progress \
      restore latest -b "$KVAULT_KAFKA_TARGET" --topic "$topics" --prefix "s$run-$n-" \
      --shard "$k/$n" --offsets "$mode" --state-dir "$d/state" --json >"$d/out-$n-$k" &
  done
  wait
  end=$(date +%s.%N)
  written=0 workers=""
  for k in $(seq 0 $((n - 1))); do
    w=$(grep -o '"records_written":[0-9]*' "$d/out-$n-$k" | cut -d: -f2)
    written=$((written + w))
    read -r secs kib <"$d/time-$n-$k"
    workers="$workers ${secs}s/$((kib / 1024))MiB"
  done
  echo "N=$n $mode: wall $(awk "BEGIN{printf \"%.2f\", $end - $start}") s, $written records; workers (wall/peak RSS):$workers"
done
