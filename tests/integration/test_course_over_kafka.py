"""A whole course over a real broker, all workers in this process so the test can step between them.

Stepping lets the test inject bad input at exact points of the course (a forged update with the
wrong tensor shape arrives before the real one) and check that the coordinator dead-letters it,
dead-letters a copy of a handled record written again (a replay), and still ends with the same
model as the standalone run.
"""

from __future__ import annotations

import time
import uuid

import fastavro
import numpy as np
import pytest

from fscore.communicator import Communicator
from fscore.config import load_config
from fscore.course import CourseBuilder, participant_address
from fscore.courselog import publish_manifest, read_topic
from fscore.driver import pump
from fscore.message import COORDINATOR, MODEL_UPDATE, PARTICIPANT, Message
from fscore.replay import replay_course
from fscore.results import model_sha256
from fscore.simulation.runner import run_standalone
from fscore.transport.kafka_common import make_kafka_transport
from fstranslation import DecodeError

pytestmark = pytest.mark.slow

ALIEN_SCHEMA = fastavro.parse_schema({"type": "record", "name": "Alien", "namespace": "elsewhere",
                                      "fields": [{"name": "x", "type": "long"}]})


def course_config(example_config, bootstrap: str, client: str):
    course = f"it-{uuid.uuid4().hex[:8]}"
    return load_config(example_config, [f"course_id={course}", "participants=3", "rounds=3", "trainer.local_epochs=1",
                                        "transport.kind=kafka", f"transport.kafka.bootstrap_servers={bootstrap}",
                                        f"transport.kafka.client={client}"])


def single_object(schema, record: dict) -> bytes:
    """Avro single-object encoding of ``record`` under a schema fscope has never seen."""
    import io

    bio = io.BytesIO()
    fastavro.schemaless_writer(bio, schema, record)
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    return b"\xc3\x01" + fingerprint + bio.getvalue()


def find_record(transport, topic: str, catalog, *, type_: str, round_: int, sender: str, timeout: float = 30):
    consumer = transport.consumer([topic], group=f"finder-{uuid.uuid4().hex[:8]}")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for record in consumer.poll(500, 0.2):
                try:
                    header = catalog.codec.decode_header(record.value)[0]
                except DecodeError:
                    continue
                if (header.type, header.round, header.sender) == (type_, round_, sender):
                    return record
    finally:
        consumer.close()
    raise AssertionError(f"no {type_} of round {round_} from {sender} on {topic}")


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_bad_input_and_a_replayed_copy_are_dead_lettered_and_the_course_matches_standalone(
        example_config, kafka_bootstrap, client):
    config = course_config(example_config, kafka_bootstrap, client)
    builder = CourseBuilder(config)
    topics, catalog = builder.topics, builder.catalog
    transport = make_kafka_transport(config.transport.kafka)
    transport.ensure_topics(topics.specs())
    publish_manifest(transport, topics, catalog, config, "0")  # the incarnation of the coordinator below

    coord_comm = Communicator(transport, topics, catalog, COORDINATOR)
    coordinator = builder.coordinator(coord_comm, evaluator=builder.numpy_evaluator())
    coord_comm.subscribe(COORDINATOR)
    participants, comms = [], []
    for i in range(config.participants):
        comm = Communicator(transport, topics, catalog, participant_address(i))
        participants.append(builder.participant(i, comm))
        comm.subscribe(PARTICIPANT)
        comms.append(comm)

    # Before anyone joins: a garbage record and a record of a schema fscope does not know.
    transport.publish(topics.coordinator, b"this is not an Avro record", key=b"intruder")
    transport.publish(topics.coordinator, single_object(ALIEN_SCHEMA, {"x": 42}), key=b"intruder")
    transport.flush()

    wrong_shape_sent = duplicate_sent = False
    for p in participants:
        p.start()
    transport.flush()
    deadline = time.monotonic() + 300
    while not (coordinator.finished and all(p.finished for p in participants)):
        assert time.monotonic() < deadline, f"course stalled at {coordinator.state}"
        pump(coordinator, coord_comm, timeout=0.05)
        s = coordinator.state
        if s.round == 1 and s.phase == "training" and not wrong_shape_sent:
            # The coordinator has just broadcast round 1; participant 0 has not trained yet, so this
            # forged update (right sender, right round, wrong shape) reaches the inbox before the real one.
            name, ref = next(iter(coordinator.params.items()))
            tensors = {**coordinator.params, name: np.zeros((ref.shape[0] + 1, *ref.shape[1:]), ref.dtype)}
            forged = Message(MODEL_UPDATE, (COORDINATOR,), 1, {"num_samples": 10, "base_round": 1,
                                                                "train_metrics": {}, "tensors": tensors},
                             sender=participant_address(0), id=f"{participant_address(0)}/forged/1",
                             course=config.course_id)
            transport.publish(topics.coordinator, coord_comm.encode(forged), key=forged.sender.encode())
            transport.flush()
            wrong_shape_sent = True
        for p, comm in zip(participants, comms, strict=True):
            pump(p, comm, timeout=0.05)
        if s.round == 2 and s.phase == "training" and not duplicate_sent:
            # Deliver participant 1's round-2 update a second time: same bytes, same message id.
            record = find_record(transport, topics.coordinator, catalog, type_=MODEL_UPDATE, round_=2,
                                 sender=participant_address(1))
            transport.publish(topics.coordinator, record.value, key=record.key)
            transport.flush()
            duplicate_sent = True
    transport.flush()
    assert wrong_shape_sent and duplicate_sent

    dead = list(read_topic(transport, topics.dlq))
    reasons = [r.header("fscope.reason").decode() for r in dead]
    assert len(dead) == 4, reasons
    assert "single-object marker" in reasons[0], reasons[0]
    assert "envelope schema" in reasons[1], reasons[1]
    assert "participant-00000" in reasons[2] and "shape" in reasons[2] and name in reasons[2], reasons[2]
    assert "is a copy of a message already handled" in reasons[3], reasons[3]
    assert [r.header("fscope.source").decode() for r in dead][:2] == [f"{topics.coordinator}/0/0",
                                                                      f"{topics.coordinator}/0/1"]
    assert [e.aggregated for e in coordinator.state.history] == [tuple(participant_address(i) for i in range(3))] * 3

    clean = run_standalone(config.model_copy(update={"transport": config.transport.model_copy(
        update={"kind": "embedded"})}), progress=False)
    assert model_sha256(coordinator.params, catalog.codec) == clean.summary["model_sha256"]

    report = replay_course(transport, config.course_id)
    assert report.verified, report.mismatches
    assert (report.undecodable, report.rejected) == (2, 1)
    assert report.final_sha256 == clean.summary["model_sha256"]
    transport.close()
