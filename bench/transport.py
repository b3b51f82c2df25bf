"""(d) Throughput of fscope's Kafka transport for 1, 10 and 100 MB payloads, against raw confluent-kafka.

Both sides move the same bytes through the same broker in the same run, produce-to-last-byte-consumed:
- baseline: raw confluent-kafka, the payload cut into records of the same size fscope uses
  (the broker's default limit is 1 MiB, so no client can send 10 MB as one record), idempotent
  producer with acks=all, one consumer reading them back;
- fscope: ``Transport.publish`` (chunking with headers) and a fscope consumer (reassembly and
  sha256 verification of every payload), on confluent-kafka and on kafka-python.
Ratio = raw time / fscope time. Target: >= 0.7.

    python bench/transport.py [--total-mb 200]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from broker import kafka_bootstrap
from confluent_kafka import Consumer, Producer, TopicPartition
from harness import quiet_logs, report

from fscore.config import KafkaConfig
from fscore.transport import TopicSpec
from fscore.transport.kafka_common import make_kafka_transport

MB = 1_000_000


def new_topic(transport) -> str:
    topic = f"bench.{uuid.uuid4().hex[:10]}"
    transport.ensure_topics([TopicSpec(topic, 1)])
    return topic


def raw_round_trip(bootstrap: str, topic: str, payloads: list[bytes], record_bytes: int) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 2, "message.max.bytes": record_bytes + 64_000})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0)])
    expected = sum(len(p) for p in payloads)
    started = time.perf_counter()
    for payload in payloads:
        view = memoryview(payload)
        for start in range(0, len(payload), record_bytes):
            while True:
                try:
                    producer.produce(topic, view[start:start + record_bytes].tobytes(), b"k")
                    break
                except BufferError:
                    producer.poll(0.05)
    producer.flush(120)
    got = 0
    while got < expected:
        for msg in consumer.consume(500, 1.0):
            if msg.error() is None:
                got += len(msg.value())
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def fscope_round_trip(config: KafkaConfig, payloads: list[bytes]) -> float:
    import hashlib

    transport = make_kafka_transport(config)
    topic = new_topic(transport)
    consumer = transport.consumer([topic], group=f"fscope-{uuid.uuid4().hex[:8]}")
    digests = [hashlib.sha256(p).digest() for p in payloads]
    started = time.perf_counter()
    for payload in payloads:
        transport.publish(topic, payload, key=b"k")
    transport.flush()
    received = []
    while len(received) < len(payloads):
        received.extend(consumer.poll(max_records=500, timeout=1.0))
    elapsed = time.perf_counter() - started
    assert [hashlib.sha256(r.value).digest() for r in received] == digests
    consumer.close()
    transport.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--total-mb", type=int, default=200, help="bytes moved per measurement")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    rows = []
    with kafka_bootstrap() as bootstrap:
        confluent = KafkaConfig(bootstrap_servers=bootstrap)
        python = KafkaConfig(bootstrap_servers=bootstrap, client="kafka-python")
        admin = make_kafka_transport(confluent)
        for size_mb in (1, 10, 100):
            count = max(1, args.total_mb // size_mb)
            payloads = [os.urandom(size_mb * MB) for _ in range(count)]
            raw, ours, pure = [], [], []
            for _ in range(args.repeat):  # interleaved, so drift in the broker hits all three alike
                raw.append(raw_round_trip(bootstrap, new_topic(admin), payloads, confluent.max_record_bytes))
                ours.append(fscope_round_trip(confluent, payloads))
                pure.append(fscope_round_trip(python, payloads))
            total = size_mb * count
            t_raw, t_ours, t_pure = sorted(raw)[len(raw) // 2], sorted(ours)[len(ours) // 2], \
                sorted(pure)[len(pure) // 2]
            rows.append({"payload": f"{size_mb} MB x {count}", "raw MB/s": total / t_raw,
                         "fscope confluent MB/s": total / t_ours, "ratio": t_raw / t_ours,
                         "fscope kafka-python MB/s": total / t_pure, "ratio kafka-python": t_raw / t_pure})
        admin.close()
    report("transport", rows, f"produce + consume through one local broker, median of {args.repeat}; "
                              "ratio = raw confluent-kafka time / fscope time (target >= 0.7)")


if __name__ == "__main__":
    main()
