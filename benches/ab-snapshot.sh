#!/usr/bin/env bash
# Two kvault binaries, A and B, alternating on the same topics: a full
# snapshot into a fresh repository, then (into repositories holding one)
# unchanged snapshots; wall time and peak RSS by /usr/bin/time. For
# before/after comparisons measured in the same run (BENCHMARKS.md).
#
#   benches/ab-snapshot.sh A_BIN B_BIN 'bench-w1-v1*' [ROUNDS]
#
# Needs KVAULT_KAFKA_SOURCE (scripts/kafka start source) and the topics
# (the snapshot bench's W1: KVAULT_BENCH_WORKLOADS=W1 cargo bench --bench snapshot).
set -euo pipefail
a=$1 b=$2 topics=$3 rounds=${4:-6}
: "${KVAULT_KAFKA_SOURCE:?start a broker: eval \"\$(scripts/kafka start source)\"}"
export KVAULT_PASSWORD=bench
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
snap() { "$1" -r "$2" --no-progress snapshot -b "$KVAULT_KAFKA_SOURCE" --topic "$topics" --group none >/dev/null; }
for round in $(seq "$rounds"); do
  for which in A B; do
    bin=$a; [ "$which" = B ] && bin=$b
    rm -rf "$d/full"
    "$bin" -r "$d/full" --no-progress init >/dev/null
    /usr/bin/time -f "$which full $round: %e s %M KiB" "$bin" -r "$d/full" --no-progress \
      snapshot -b "$KVAULT_KAFKA_SOURCE" --topic "$topics" --group none >/dev/null
  done
done
for which in A B; do
  bin=$a; [ "$which" = B ] && bin=$b
  "$bin" -r "$d/$which" --no-progress init >/dev/null
  snap "$bin" "$d/$which"
done
for round in $(seq $((rounds + 2))); do
  for which in A B; do
    bin=$a; [ "$which" = B ] && bin=$b
    /usr/bin/time -f "$which unchanged $round: %e s %M KiB" "$bin" -r "$d/$which" --no-progress \
      snapshot -b "$KVAULT_KAFKA_SOURCE" --topic "$topics" --group none >/dev/null
  done
done
