#!/usr/bin/env bash
# `kvault verify` against kcat reading the same restored topic with its own
# defaults (`kcat -C -e`: verify must read every record of the target
# once too, and also reads the snapshot's), both on the target cluster,
# rounds alternating; wall time and peak RSS by /usr/bin/time
# (BENCHMARKS.md, "Verify").
#
#   benches/verify.sh KVAULT_BIN [MB] [PARTITIONS] [ROUNDS]
#
# A topic of MB (default 500) of ~1 KiB JSON records over PARTITIONS
# (default 12) is snapshotted and restored to the target under `v-`.
# Needs KVAULT_KAFKA_SOURCE and KVAULT_KAFKA_TARGET (scripts/kafka start
# source / target), kcat, /usr/bin/time and python3 with confluent-kafka.
set -euo pipefail
bin=$1 mb=${2:-500} partitions=${3:-12} rounds=${4:-3}
. "$(dirname "$0")/support/restore-bench.sh"
src=$KVAULT_KAFKA_SOURCE tgt=$KVAULT_KAFKA_TARGET
topic="bench-verify-$(date +%s)"
python3 - "$src" "$topic" "$partitions" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in a.create_topics([NewTopic(sys.argv[2], int(sys.argv[3]), 1, config={"retention.ms": "-1"})]).values():
    f.result()
PY
python3 - "$mb" >"$d/in" <<'PY'
import random, sys
r = random.Random(7)
for i in range(int(sys.argv[1]) * 1024):
    words = " ".join(r.choice(["order", "paid", "shipped", "cart", "view", "click", "refund"]) for _ in range(130))
    sys.stdout.write(f'user-{r.randrange(100000)}|kvaultK|{{"seq":{i},"events":"{words}","n":{r.random()}}}|kvaultD|')
PY
kcat -P -b "$src" -t "$topic" -K '|kvaultK|' -D '|kvaultD|' -l "$d/in"
rm "$d/in"
snapshot_into "$bin" "$topic"
"$bin" -r "$d/repo" --no-progress restore -b "$tgt" --topic "$topic" --prefix v- >/dev/null
echo "topic: $partitions partitions, $((mb * 1024)) records (~$mb MB), restored to the target as v-$topic"
for round in $(seq "$rounds"); do
  /usr/bin/time -f "round $round: kcat -C -e reading v-$topic: %e s (CPU %U s user, %S s sys), peak RSS %M KiB" \
    kcat -C -b "$tgt" -t "v-$topic" -o beginning -e -q -f '%k %s\n' >/dev/null
  /usr/bin/time -f "round $round: kvault verify: %e s (CPU %U s user, %S s sys), peak RSS %M KiB" \
    "$bin" -r "$d/repo" --no-progress verify -b "$tgt" --topic "$topic" --prefix v- >/dev/null
done
