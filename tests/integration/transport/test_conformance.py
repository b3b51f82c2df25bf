"""One contract for every Transport: the embedded log, confluent-kafka and kafka-python on a real broker."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from fscore.config import KafkaConfig
from fscore.transport import EmbeddedLog, TopicSpec, partition_for
from fscore.transport.kafka_common import make_kafka_transport

TIMEOUT = 10.0


def open_kafka(bootstrap: str, client: str):
    return make_kafka_transport(KafkaConfig(bootstrap_servers=bootstrap, client=client,
                                            max_record_bytes=256 * 1024))


@pytest.fixture(params=["embedded", "confluent", "kafka-python"])
def transport(request):
    if request.param == "embedded":
        yield EmbeddedLog()
        return
    t = open_kafka(request.getfixturevalue("kafka_bootstrap"), request.param)
    yield t
    t.close()


@pytest.fixture(params=["confluent", "kafka-python"])
def kafka_transport(request, kafka_bootstrap):
    """Only the Kafka clients: the embedded log never chunks, so chunk-boundary tests need a broker."""
    t = open_kafka(kafka_bootstrap, request.param)
    yield t
    t.close()


def new_topic(transport) -> str:
    name = f"conformance.{uuid.uuid4().hex[:10]}"
    transport.ensure_topics([TopicSpec(name, 1), TopicSpec(name + ".keyed", 4)])
    return name


@pytest.fixture
def topic(transport):
    return new_topic(transport)


def drain(consumer, expected: int, timeout: float = TIMEOUT):
    import time

    out, deadline = [], time.monotonic() + timeout
    while len(out) < expected and time.monotonic() < deadline:
        out.extend(consumer.poll(max_records=500, timeout=0.2))
    return out


def test_records_come_back_in_order_with_offsets_keys_and_headers(transport, topic):
    for i in range(200):
        transport.publish(topic, f"v{i}".encode(), key=b"k", headers=[("h", str(i).encode())])
    transport.flush()
    got = drain(transport.consumer([topic], group="g1"), 200)
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(200)]
    assert [r.offset for r in got] == list(range(200))
    assert all(r.key == b"k" and r.header("h") == str(i).encode() for i, r in enumerate(got))


def test_records_carry_the_time_they_were_written(transport, topic):
    import time

    before = time.time()
    transport.publish(topic, b"small")
    transport.publish(topic, os.urandom(600 * 1024))  # chunked on Kafka: the reassembled record keeps a time
    transport.flush()
    after = time.time()
    got = drain(transport.consumer([topic], group="times"), 2)
    assert len(got) == 2
    assert all(before - 1 <= r.timestamp <= after + 1 for r in got), [r.timestamp for r in got]


def test_consumer_resumes_after_its_group_commit(transport, topic):
    for i in range(5):
        transport.publish(topic, bytes([i]))
    transport.flush()
    first = transport.consumer([topic], group="resume")
    got = drain(first, 5)
    first.commit(got[2])
    first.close()
    again = drain(transport.consumer([topic], group="resume"), 2)
    assert [r.offset for r in again] == [3, 4]
    other = drain(transport.consumer([topic], group="other-group"), 5)
    assert len(other) == 5


def test_a_consumer_may_start_at_given_offsets_instead_of_its_group_commit(transport, topic):
    for i in range(6):
        transport.publish(topic, bytes([i]))
    transport.flush()
    committed = transport.consumer([topic], group="started")
    committed.commit(drain(committed, 6)[0])
    committed.close()
    got = drain(transport.consumer([topic], group="started", start={(topic, 0): 4}), 2)
    assert [r.offset for r in got] == [4, 5]  # nothing before the start is read
    assert [r.offset for r in drain(transport.consumer([topic], group="started"), 5)] == [1, 2, 3, 4, 5]


def test_a_reader_is_told_when_the_records_it_needs_were_deleted(kafka_transport, kafka_bootstrap):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from fscore.courselog import read_topic
    from fscore.errors import LogTruncated

    topic = new_topic(kafka_transport)
    for i in range(5):
        kafka_transport.publish(topic, bytes([i]))
    kafka_transport.flush()
    assert kafka_transport.start_offsets(topic) == {0: 0}
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # kept: a dropped client never completes its futures
    for future in admin.delete_records([TopicPartition(topic, 0, 3)]).values():
        future.result(30)
    assert kafka_transport.start_offsets(topic) == {0: 3}
    with pytest.raises(LogTruncated, match=r"from offset 0: partition 0 now starts at offset 3, the records before"):
        list(read_topic(kafka_transport, topic))
    assert [r.offset for r in read_topic(kafka_transport, topic, start={0: 3})] == [3, 4]


def test_keyed_consumer_reads_only_its_key(transport, topic):
    keyed = topic + ".keyed"
    keys = [f"participant-{i:05d}".encode() for i in range(10)]
    for k in keys:
        transport.publish(keyed, b"for " + k, key=k)
    transport.flush()
    for k in keys:
        got = drain(transport.consumer([keyed], group=k.decode(), key=k), 1, timeout=5)
        assert [r.value for r in got] == [b"for " + k]
        assert got[0].partition == partition_for(k, 4)


def test_large_record_is_chunked_and_reassembled_intact(transport, topic):
    value = os.urandom(3 * 1024 * 1024 + 17)  # 13 chunks of 256 KiB on Kafka
    transport.publish(topic, b"before")
    transport.publish(topic, value, key=b"big", headers=[("kind", b"model")])
    transport.publish(topic, b"after")
    transport.flush()
    got = drain(transport.consumer([topic], group="chunks"), 3)
    assert [len(r.value) for r in got] == [6, len(value), 5]
    assert hashlib.sha256(got[1].value).digest() == hashlib.sha256(value).digest()
    assert got[1].header("kind") == b"model" and got[1].header("fscope.chunk") is None


def test_commit_never_passes_a_partly_received_record(kafka_transport):
    """A consumer that stops in the middle of a chunked record re-reads all of it after a restart."""
    transport, topic = kafka_transport, new_topic(kafka_transport)
    transport.publish(topic, b"small")
    transport.publish(topic, os.urandom(600 * 1024), key=b"big")  # 3 chunks
    transport.flush()
    consumer = transport.consumer([topic], group="partial")
    small = drain(consumer, 1)[0]
    consumer.commit(small)
    consumer.close()
    again = drain(transport.consumer([topic], group="partial"), 1)
    assert len(again) == 1 and len(again[0].value) == 600 * 1024
