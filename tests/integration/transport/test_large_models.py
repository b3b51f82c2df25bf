"""A 100 MB model through a broker that keeps its default 1 MiB record limit, on both clients."""

from __future__ import annotations

import hashlib
import time
import uuid

import numpy as np
import pytest

from fscore.config import KafkaConfig
from fscore.message import MODEL_PARAMETERS
from fscore.transport import TopicSpec
from fscore.transport.kafka_common import make_kafka_transport
from fstranslation import Header, WireCodec

pytestmark = pytest.mark.slow

MB = 1024 * 1024


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_100_mb_model_is_chunked_under_the_default_record_limit_and_reassembled(kafka_bootstrap, client):
    codec = WireCodec()
    rng = np.random.default_rng(0)
    tensors = {"embedding": rng.standard_normal((100 * MB // 4 // 1024, 1024), dtype=np.float32),
               "head.bias": rng.standard_normal(10, dtype=np.float32)}
    value = codec.encode(Header("big-1", "big", MODEL_PARAMETERS, "coordinator", ("p",), 0, 0.0),
                         {"tensors": tensors})
    assert len(value) >= 100 * MB
    config = KafkaConfig(bootstrap_servers=kafka_bootstrap, client=client)  # default chunk size, under 1 MiB
    transport = make_kafka_transport(config)
    topic = f"large.{uuid.uuid4().hex[:8]}"
    transport.ensure_topics([TopicSpec(topic, 1)])
    transport.publish(topic, value, key=b"p")
    transport.flush()
    chunks = transport.end_offsets(topic)[0]
    assert chunks == -(-len(value) // config.max_record_bytes)  # every record is below the broker's limit

    consumer = transport.consumer([topic], group="large")
    got, deadline = [], time.monotonic() + 120
    while not got and time.monotonic() < deadline:
        got = consumer.poll(max_records=500, timeout=0.5)
    assert len(got) == 1 and got[0].offset == chunks - 1
    assert hashlib.sha256(got[0].value).digest() == hashlib.sha256(value).digest()
    header, payload = codec.decode(got[0].value)
    assert header.id == "big-1"
    np.testing.assert_array_equal(payload["tensors"]["embedding"], tensors["embedding"])
    consumer.close()
    transport.close()
