#!/usr/bin/env python3
"""An independent Kafka client (confluent-kafka, not kvault's code) for the
find tests: reads every partition of TOPIC from its log start to its end
(assign only, read_committed) and prints, as one JSON list, every record
whose key is KEY: [partition, offset, timestamp, value or null].

usage: key_versions.py BROKERS TOPIC KEY
"""
import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

brokers, topic, key = sys.argv[1], sys.argv[2], sys.argv[3].encode()
c = Consumer({
    "bootstrap.servers": brokers,
    "group.id": "key-versions-never-committed",
    "enable.auto.commit": False,
    "isolation.level": "read_committed",
})
parts = c.list_topics(topic, timeout=30).topics[topic].partitions
out = []
for p in sorted(parts):
    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
    if high <= low:
        continue
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
    deadline = time.monotonic() + 60
    while True:
        m = c.poll(10)
        if m is None:
            if time.monotonic() > deadline:
                sys.exit(f"no record from {topic}/{p} within 60 s")
            continue
        if m.error():
            continue
        if m.key() == key:
            v = m.value()
            out.append([p, m.offset(), m.timestamp()[1], v.decode() if v is not None else None])
        if m.offset() >= high - 1:
            break
c.close()
print(json.dumps(out))
