"""The coordinator's lease on a real broker, with both clients: one live holder, taken over when it leaves."""

from __future__ import annotations

import uuid

import pytest

from fscore.config import KafkaConfig
from fscore.transport import TopicSpec
from fscore.transport.kafka_common import make_kafka_transport


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_live_holder_keeps_the_lease_and_a_successor_takes_it_once_it_leaves(kafka_bootstrap, client):
    transport = make_kafka_transport(KafkaConfig(bootstrap_servers=kafka_bootstrap, client=client))
    topic = f"lease-{uuid.uuid4().hex[:8]}"
    transport.ensure_topics([TopicSpec(topic, 1)])
    group = f"{topic}.coordinator-lease"
    first = transport.lease(group, topic)
    assert first.acquire(30)
    second = transport.lease(group, topic)  # a second coordinator, started while the first serves
    try:
        assert not second.acquire(8)  # the holder polls on (it does here, between the other's polls)...
        assert first.held()  # ...and keeps the partition: the sticky assignor does not move it
        first.close()
        assert second.acquire(30)  # it left the group: the successor need not wait for a session to expire
    finally:
        second.close()
        transport.close()
