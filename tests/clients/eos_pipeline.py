#!/usr/bin/env python3
"""An exactly-once consume-transform-produce pipeline (confluent-kafka, not
kvault's code) for the transaction tests: as GROUP, reads INPUT
(read_committed) and, per transaction, writes "out:" + each value to the
same partition of OUTPUT and commits its input positions with
send_offsets_to_transaction; at most PER_TXN records a transaction, PAUSE
seconds between transactions. Stops when it has read every partition of
INPUT to its end, and prints, as JSON, the transactions it committed.

usage: eos_pipeline.py BROKERS GROUP INPUT OUTPUT PER_TXN PAUSE
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer

brokers, group, inp, out = sys.argv[1:5]
per_txn, pause = int(sys.argv[5]), float(sys.argv[6])

consumer = Consumer({
    "bootstrap.servers": brokers,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
})
producer = Producer({
    "bootstrap.servers": brokers,
    "transactional.id": f"{group}-{uuid.uuid4()}",
})
producer.init_transactions(30)
consumer.subscribe([inp])


def caught_up():
    """Whether every assigned partition is read to its end."""
    parts = consumer.assignment()
    if not parts:
        return False
    committed = {(c.topic, c.partition): c.offset for c in consumer.committed(parts, timeout=10)}
    for tp in consumer.position(parts):
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        # Nothing read yet: where the group stands (its committed offset, or
        # the log start).
        at = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
        if max(at, low) < high:
            return False
    return True


txns = 0
deadline = time.time() + 120
while time.time() < deadline:
    msgs = [m for m in consumer.consume(per_txn, 1.0) if not m.error()]
    if not msgs:
        if caught_up():
            break
        continue
    producer.begin_transaction()
    for m in msgs:
        producer.produce(out, key=m.key(), value=b"out:" + m.value(), partition=m.partition())
    positions = consumer.position(consumer.assignment())
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(30)
    txns += 1
    time.sleep(pause)
consumer.close()
print(json.dumps({"transactions": txns}))
