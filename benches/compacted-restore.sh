#!/usr/bin/env bash
# A compacted topic after a real cleaner run (few survivors, most offsets
# holes) restored three ways into new topics on the target broker:
# `kvault restore --offsets translate` (survivors packed), `--offsets
# exact` (survivors at their source offsets, every hole reproduced by one
# transaction), and `kcat -P` producing the same survivors (dumped from
# the source by kcat) as the baseline. Wall time and peak RSS by
# /usr/bin/time (BENCHMARKS.md).
#
#   benches/compacted-restore.sh KVAULT_BIN [RECORDS] [KEYS]
#
# Needs KVAULT_KAFKA_SOURCE and KVAULT_KAFKA_TARGET (scripts/kafka start
# source / target), kcat and python3.
set -euo pipefail
bin=$1 records=${2:-200000} keys=${3:-10000}
. "$(dirname "$0")/support/restore-bench.sh"
src=$KVAULT_KAFKA_SOURCE tgt=$KVAULT_KAFKA_TARGET
run=$(date +%s)
topic="bench-compact-$run"
# One record in records/keys has a key of its own (kept by compaction);
# the others rewrite seven hot keys (removed but their last): the kept
# records lie scattered, each gap between them a hole to reproduce. Small
# segments, so all but the active one are cleaned.
python3 - "$records" "$keys" >"$d/in" <<'PY'
import sys
n, k = int(sys.argv[1]), int(sys.argv[2])
every = max(1, n // k)
for i in range(n):
    key = f"own-{i}" if i % every == 0 else f"hot-{i % 7}"
    sys.stdout.write(f"{key}|kvaultK|{{\"seq\":{i},\"payload\":\"{'x' * 80}\"}}|kvaultD|")
PY
python3 - "$src" "$topic" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
cfg = {"cleanup.policy": "compact", "segment.bytes": "1048576", "min.cleanable.dirty.ratio": "0.01",
       "min.compaction.lag.ms": "0", "delete.retention.ms": "100"}
for f in a.create_topics([NewTopic(sys.argv[2], 1, 1, config=cfg)]).values():
    f.result()
PY
kcat -P -b "$src" -t "$topic" -p 0 -K '|kvaultK|' -D '|kvaultD|' -l "$d/in"
count() { kcat -C -b "$1" -t "$2" -p 0 -o beginning -e -q -f '.\n' | wc -l; }
# Wait for the cleaner: at most a tenth of the records left.
for _ in $(seq 120); do
  left=$(count "$src" "$topic")
  [ "$left" -le $((records / 10)) ] && break
  sleep 1
done
echo "source: $records records written, $left survive compaction"
kcat -C -b "$src" -t "$topic" -p 0 -o beginning -e -q -f '%k|kvaultK|%s|kvaultD|' >"$d/survivors"
snapshot_into "$bin" "$topic"
for mode in translate exact; do
  /usr/bin/time -f "kvault --offsets $mode: %e s, peak RSS %M KiB" "$bin" -r "$d/repo" --no-progress \
    restore latest -b "$tgt" --topic "$topic" --prefix "$mode-" --offsets "$mode" \
    --state-dir "$d/state" --json | grep -o '"records_written":[0-9]*\|"transactions":[0-9]*' | sort | uniq -c | tr '\n' ' '
  echo
done
python3 - "$tgt" "kcat-$topic" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in a.create_topics([NewTopic(sys.argv[2], 1, 1)]).values():
    f.result()
PY
/usr/bin/time -f "kcat -P (idempotent): %e s, peak RSS %M KiB" \
  kcat -P -b "$tgt" -t "kcat-$topic" -p 0 -K '|kvaultK|' -D '|kvaultD|' -l -X enable.idempotence=true "$d/survivors"
echo "target: translate-$topic $(count "$tgt" "translate-$topic"), exact-$topic $(count "$tgt" "exact-$topic"), kcat-$topic $(count "$tgt" "kcat-$topic") records"
