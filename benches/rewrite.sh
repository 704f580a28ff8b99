#!/usr/bin/env bash
# Finding and erasing one key in a topic backed up by many incremental
# snapshots: `kvault find` with and without the chunks' key filters, then
# `kvault rewrite --forget` (read every chunk of the topic once, re-encode
# the chunks holding the key, store new trees and snapshots) and the
# `prune --max-unused 0` that deletes the erased bytes, against two
# baselines: kcat reading the whole topic with its own defaults (`kcat -C
# -e`; rewrite must read every record once too), and taking the whole
# topic again, a full `kvault snapshot` into a new repository (what a tool
# without rewrite must do, after deleting every backup that held the key).
# Wall time, bytes written and peak RSS by /usr/bin/time (BENCHMARKS.md).
#
#   benches/rewrite.sh KVAULT_BIN [MB_PER_SNAPSHOT] [SNAPSHOTS] [EVERY] [PARTITIONS]
#
# The topic (PARTITIONS partitions, default 100; kcat's default
# partitioner spreads the keys) grows by MB_PER_SNAPSHOT (default 100) of
# ~1 KiB JSON records (mb × 1024 of them) before each of SNAPSHOTS (default 10) snapshots; one
# record in EVERY (default 100,000: a customer among many) has the key
# `person-42`. Needs KVAULT_KAFKA_SOURCE
# and KVAULT_KAFKA_TARGET (scripts/kafka start source / target), kcat,
# /usr/bin/time and python3 with confluent-kafka.
set -euo pipefail
bin=$1 mb=${2:-100} snaps=${3:-10} every=${4:-100000} partitions=${5:-100}
. "$(dirname "$0")/support/restore-bench.sh"
src=$KVAULT_KAFKA_SOURCE
topic="bench-rewrite-$(date +%s)"
python3 - "$src" "$topic" "$partitions" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in a.create_topics([NewTopic(sys.argv[2], int(sys.argv[3]), 1, config={"retention.ms": "-1"})]).values():
    f.result()
PY
kv() { "$bin" -r "$1" --no-progress "${@:2}"; }
kv "$d/repo" init >/dev/null
for round in $(seq "$snaps"); do
  python3 - "$mb" "$round" "$every" >"$d/in" <<'PY'
import random, sys
mb, rnd, every = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r = random.Random(rnd)
n = mb * 1024
for i in range(n):
    key = "person-42" if (rnd * n + i) % every == 7 else f"user-{r.randrange(100000)}"
    words = " ".join(r.choice(["order", "paid", "shipped", "cart", "view", "click", "refund"]) for _ in range(130))
    sys.stdout.write(f'{key}|kvaultK|{{"seq":{rnd * n + i},"user":"{key}","events":"{words}","n":{r.random()}}}|kvaultD|')
PY
  kcat -P -b "$src" -t "$topic" -K '|kvaultK|' -D '|kvaultD|' -l "$d/in"
  kv "$d/repo" snapshot -b "$src" --topic "$topic" --group none >/dev/null
done
size() { du -sb "$1" | cut -f1; }
/usr/bin/time -f "baseline, kcat -C -e reading the topic: %e s, peak RSS %M KiB" \
  kcat -C -b "$src" -t "$topic" -o beginning -e -q -f '%k %s\n' >/dev/null
echo "topic: $partitions partitions, $((mb * 1024 * snaps)) records over $snaps snapshots; repository $(size "$d/repo") bytes"
# find, the same key across the same snapshots: by the chunks' key
# filters, and reading every chunk (--no-filters; what snapshots from
# before the filters cost), against the kcat read above.
for how in "" --no-filters; do
  /usr/bin/time -f "kvault find ${how:-(key filters)}: %e s, peak RSS %M KiB" "$bin" -r "$d/repo" --no-progress \
    find --topic "$topic" --key person-42 $how --json | python3 -c '
import json, sys
r = [json.loads(l) for l in sys.stdin if "\"find\"" in l][0]
print("  %d versions; %d chunks read, %d skipped by their key filters; %d segments without filters"
      % (len(r["versions"]), r["chunks_read"], r["chunks_filtered"], r["segments_unfiltered"]))'
done
before=$(size "$d/repo")
/usr/bin/time -f "kvault rewrite --forget: %e s, peak RSS %M KiB" "$bin" -r "$d/repo" --no-progress rewrite --topic "$topic" \
  --drop-key person-42 --forget --json | python3 -c '
import json, sys
r = [json.loads(l) for l in sys.stdin if "\"rewrite\"" in l][0]
w = r["rewritten"]
print("  %d snapshots rewritten, %d records erased (over all snapshots), %d chunks read, %d skipped by their key filters, %d re-encoded, %d bytes written"
      % (len(w), sum(s["records"] for s in w), r["chunks_read"], r["chunks_skipped"], r["chunks_rewritten"], r["bytes_written"]))'
echo "  repository grew by $(( $(size "$d/repo") - before )) bytes"
/usr/bin/time -f "kvault prune --max-unused 0: %e s, peak RSS %M KiB" "$bin" -r "$d/repo" --no-progress prune --max-unused 0 >/dev/null
echo "  repository after prune: $(size "$d/repo") bytes"
kv "$d/repo" check --absent person-42 >/dev/null && echo "  check --absent person-42: no object holds the key"
kv "$d/full" init >/dev/null
/usr/bin/time -f "baseline, a full snapshot of the topic: %e s, peak RSS %M KiB" \
  "$bin" -r "$d/full" --no-progress snapshot -b "$src" --topic "$topic" --group none >/dev/null
echo "  full snapshot wrote $(size "$d/full") bytes"
