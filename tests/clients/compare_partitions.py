#!/usr/bin/env python3
"""An independent Kafka client (confluent-kafka, not kvault's code) for the
offset-exact restore tests: reads partitions 0..N-1 of topic A on brokers A
and topic B on brokers B, read_committed, and prints as JSON, per side and
partition, the watermarks, every record as (offset, key, value, headers,
timestamp type, timestamp), the answers of offsets_for_times for every
record's timestamp (and the offset of the first record read from there),
and the committed offsets of GROUP (optional) on each partition.

usage: compare_partitions.py BROKERS_A TOPIC_A BROKERS_B TOPIC_B N [GROUP]
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

# Errors librdkafka reports and recovers from on its own.
TRANSIENT = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT}


def side(brokers, topic, n, group):
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group or "kvault-compare",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    })
    out = []
    for p in range(n):
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        c.assign([TopicPartition(topic, p, low)])
        records = []
        deadline = time.monotonic() + 60
        while True:
            m = c.poll(10)
            if m is None or (m.error() and m.error().code() in TRANSIENT):
                # A loaded broker: librdkafka reconnects by itself.
                if time.monotonic() > deadline:
                    raise SystemExit(f"{topic}/{p}: no end of partition within 60 s")
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise SystemExit(str(m.error()))
            ts_type, ts = m.timestamp()
            hs = [[k, v.hex() if v is not None else None] for k, v in (m.headers() or [])]
            records.append([m.offset(), m.key().hex() if m.key() is not None else None,
                            m.value().hex() if m.value() is not None else None, hs, ts_type, ts])
        times = sorted({r[5] for r in records})
        # At most 25 lookups (one request each), spread over the log.
        times = times[:: max(1, len(times) // 25)]
        answers = {}
        for t in times:
            # One time per request: a request names each partition once.
            f = c.offsets_for_times([TopicPartition(topic, p, t)], timeout=30)[0]
            first = next((r[0] for r in records if r[0] >= f.offset), None) if f.offset >= 0 else None
            answers[str(t)] = [f.offset, first]
        committed = None
        if group:
            committed = c.committed([TopicPartition(topic, p)], timeout=30)[0].offset
        out.append({"low": low, "high": high, "records": records, "times": answers, "committed": committed})
    c.close()
    return out


ba, ta, bb, tb, n = sys.argv[1:6]
group = sys.argv[6] if len(sys.argv) > 6 else None
print(json.dumps({"a": side(ba, ta, int(n), group), "b": side(bb, tb, int(n), group)}))
