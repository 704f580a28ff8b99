#!/usr/bin/env python3
"""An independent consumer (confluent-kafka, not kvault's code) that keeps
its position outside Kafka, in a file, as Flink, Spark and sink connectors
do: it reads K records of partition P of TOPIC_A on BROKERS_A
(read_committed, assign-only), writes the next offset to FILE, then
switches clusters: it reads FILE and continues on TOPIC_B of BROKERS_B
from that offset. Prints as JSON the record it would have read next on A
and the one it reads on B: (offset, key, value).

usage: external_position.py BROKERS_A TOPIC_A BROKERS_B TOPIC_B P K FILE
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

ba, ta, bb, tb, p, k, path = sys.argv[1:8]
p, k = int(p), int(k)


def consumer(brokers):
    return Consumer({"bootstrap.servers": brokers, "group.id": "kvault-external-position",
                     "enable.auto.commit": False, "isolation.level": "read_committed",
                     "enable.partition.eof": True})


# Errors librdkafka reports and recovers from on its own (a loaded broker).
TRANSIENT = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT}


def next_record(c):
    deadline = time.monotonic() + 60
    while True:
        m = c.poll(10)
        if m is None or (m.error() and m.error().code() in TRANSIENT):
            if time.monotonic() > deadline:
                raise SystemExit("no record within 60 s")
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                return None
            raise SystemExit(str(m.error()))
        return [m.offset(), m.key().hex() if m.key() else None, m.value().hex() if m.value() else None]


a = consumer(ba)
low, _ = a.get_watermark_offsets(TopicPartition(ta, p), timeout=30)
a.assign([TopicPartition(ta, p, low)])
for _ in range(k):
    r = next_record(a)
with open(path, "w") as f:
    f.write(str(r[0] + 1))
expected = next_record(a)
a.close()
with open(path) as f:
    position = int(f.read())
b = consumer(bb)
b.assign([TopicPartition(tb, p, position)])
print(json.dumps({"position": position, "source_next": expected, "target_next": next_record(b)}))
b.close()
