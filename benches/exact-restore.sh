#!/usr/bin/env bash
# `restore --offsets translate` against `--offsets exact` with one kvault
# binary, alternating, each into new topics (a prefix per run) on the
# target broker; wall time and peak RSS by /usr/bin/time (BENCHMARKS.md).
#
#   benches/exact-restore.sh KVAULT_BIN 'bench-w1-v1*' [ROUNDS]
#
# Needs KVAULT_KAFKA_SOURCE and KVAULT_KAFKA_TARGET (scripts/kafka start
# source / target) and the topics on the source.
set -euo pipefail
bin=$1 topics=$2 rounds=${3:-3}
. "$(dirname "$0")/support/restore-bench.sh"
snapshot_into "$bin" "$topics"
run=$(date +%s)
for round in $(seq "$rounds"); do
  for mode in translate exact; do
    /usr/bin/time -f "$mode $round: %e s %M KiB" "$bin" -r "$d/repo" --no-progress \
      restore latest -b "$KVAULT_KAFKA_TARGET" --topic "$topics" --prefix "x$run-$round-$mode-" \
      --offsets "$mode" --state-dir "$d/state" --json | grep -o '"records_written":[0-9]*'
  done
done
