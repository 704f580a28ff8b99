#!/usr/bin/env bash
# A production shape for restore: one topic of many partitions with
# values of about 1 KiB, restored by kvault (`--offsets translate`, the
# default) into a new topic on the target broker, against `kcat -P`
# producing the same records into a topic of as many partitions with its
# own defaults plus the guarantee a restore gives (`-X
# enable.idempotence=true`, which implies acks=all). Wall time and peak
# RSS by /usr/bin/time (BENCHMARKS.md).
#
#   benches/wide-restore.sh KVAULT_BIN [PARTITIONS] [RECORDS]
#
# Needs KVAULT_KAFKA_SOURCE and KVAULT_KAFKA_TARGET (scripts/kafka start
# source / target), kcat and python3 with confluent-kafka.
set -euo pipefail
bin=$1 partitions=${2:-500} records=${3:-200000}
. "$(dirname "$0")/support/restore-bench.sh"
src=$KVAULT_KAFKA_SOURCE tgt=$KVAULT_KAFKA_TARGET
run=$(date +%s)
topic="bench-wide-$run"
create() {
  python3 - "$1" "$2" "$partitions" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in a.create_topics([NewTopic(sys.argv[2], int(sys.argv[3]), 1)]).values():
    f.result()
PY
}
# Keyed JSON-ish records with a ~1 KiB value each.
python3 - "$records" >"$d/in" <<'PY'
import random, sys
r = random.Random(7)
pool = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(1000)) for _ in range(997)]
for i in range(int(sys.argv[1])):
    body = pool[i % 997]
    sys.stdout.write(f"user-{i % 50000}|kvaultK|{{\"seq\":{i},\"data\":\"{body}\"}}|kvaultD|")
PY
create "$src" "$topic"
kcat -P -b "$src" -t "$topic" -K '|kvaultK|' -D '|kvaultD|' -l "$d/in"
bytes=$(stat -c %s "$d/in")
snapshot_into "$bin" "$topic"
for round in 1 2; do
  /usr/bin/time -f "kvault restore (round $round): %e s, peak RSS %M KiB" "$bin" -r "$d/repo" --no-progress \
    restore latest -b "$tgt" --topic "$topic" --prefix "r$round-" --no-metadata --state-dir "$d/state" --json \
    | grep -o '"records_written":[0-9]*'
  create "$tgt" "kcat$round-$topic"
  /usr/bin/time -f "kcat -P (round $round): %e s, peak RSS %M KiB" \
    kcat -P -b "$tgt" -t "kcat$round-$topic" -K '|kvaultK|' -D '|kvaultD|' -l -X enable.idempotence=true "$d/in"
done
echo "workload: $partitions partitions, $records records, $bytes bytes of input"
