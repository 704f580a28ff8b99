#!/usr/bin/env python3
"""An independent Kafka client (confluent-kafka, not kvault's code) for the
restore tests: joins GROUP on BROKERS, subscribes to TOPIC, and prints, as
JSON, the first record it receives on each of N partitions.

usage: resume_group.py BROKERS GROUP TOPIC N
"""
import json
import sys
import time

from confluent_kafka import Consumer

brokers, group, topic, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({
    "bootstrap.servers": brokers,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
})
c.subscribe([topic])
first = {}
deadline = time.time() + 60
while len(first) < n and time.time() < deadline:
    m = c.poll(1.0)
    if m is None or m.error():
        continue
    if m.partition() not in first:
        first[m.partition()] = {"offset": m.offset(), "value": m.value().decode("utf-8", "replace") if m.value() is not None else None}
c.close()
print(json.dumps({str(k): v for k, v in sorted(first.items())}))
