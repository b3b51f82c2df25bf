"""A deployed coordinator's snapshots on the meta topic (issue 17), on the embedded log.

A standalone course leaves the same topics a deployed one does. Its inbox is copied into a fresh log up to an
offset, a coordinator that handled that much writes its snapshot there, and the rest of the inbox follows.
A coordinator restarted on that log restores the snapshot and reads only the inbox after it, and ends with
the model the whole course ended with, bit for bit. A snapshot that is corrupt, of another course, or past
the committed offset is skipped (named in a warning) for the one before it.
"""

from __future__ import annotations

import json

import pytest
import structlog

from fscore.communicator import Communicator
from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.courselog import Capture, coordinator_keys, fetch_snapshot, publish_snapshot, publish_started, read_topic
from fscore.errors import LogTruncated
from fscore.intake import take
from fscore.message import COORDINATOR
from fscore.results import RunWriter, model_sha256
from fscore.service import WallAlarm, recover
from fscore.service.snapshots import CoordinatorSnapshots, restore_latest
from fscore.simulation.runner import run_standalone
from fscore.snapshot.record import decode, encode, fingerprint
from fscore.snapshot.state import capture
from fscore.transport import EmbeddedLog
from fscore.trust.setup import coordinator_trust

ROUNDS = 6


@pytest.fixture(scope="module")
def course():
    from tests.conftest import ROOT

    config = load_config(ROOT / "examples" / "digits_fedavg.yaml",
                         ["participants=3", f"rounds={ROUNDS}", "trainer.local_epochs=1", "course_id=snapshotted"])
    return config, run_standalone(config, progress=False)


class Reads(EmbeddedLog):
    """The embedded log, noting every inbox offset a reader is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.inbox_reads: list[int] = []

    def consumer(self, topics, *, group, key=None, start=None):
        consumer = super().consumer(topics, group=group, key=key, start=start)
        poll = consumer.poll

        def noted(max_records=500, timeout=0.0):
            records = poll(max_records, timeout)
            self.inbox_reads += [r.offset for r in records if r.topic.endswith(".coordinator")]
            return records
        consumer.poll = noted
        return consumer


def _copy(source, target, topic: str, start: int, end: int) -> None:
    for record in list(source.read(topic))[start:end]:
        target.publish(topic, record.value, key=record.key, headers=record.headers)


def _commit(log, topic: str, offset: int) -> None:
    """The coordinator group committed the inbox up to ``offset``, as a coordinator that handled that much has."""
    consumer = log.consumer([topic], group=COORDINATOR)
    while (records := consumer.poll(max_records=offset)) and records[-1].offset + 1 < offset:
        pass
    consumer.commit(next(r for r in log.read(topic) if r.offset == offset - 1))


def _parts(config, log, incarnation="restarted"):
    builder = CourseBuilder(config)
    communicator = Communicator(log, builder.topics, builder.catalog, COORDINATOR)
    writer = RunWriter(None)

    def build():
        made = builder.coordinator(communicator, evaluator=builder.numpy_evaluator(),
                                   on_evaluation=lambda e: writer.evaluation(e, 0.0), clock="wall",
                                   incarnation=incarnation)
        return made, WallAlarm(made)
    return builder, communicator, writer, build


def _log_with_snapshot_at(config, result, offset: int, extra=()) -> Reads:
    """A log holding the course's meta records and inbox, with the snapshot of a coordinator that had handled the
    inbox up to ``offset`` (and ``extra`` meta records after it)."""
    topics = CourseBuilder(config).topics
    log = Reads()
    log.ensure_topics(topics.specs())
    _copy(result.log, log, topics.meta, 0, 1)  # the manifest
    _copy(result.log, log, topics.coordinator, 0, offset)
    _commit(log, topics.coordinator, offset)
    builder, communicator, writer, build = _parts(config, log, "first")
    publish_started(log, topics, builder.catalog, config, "first")
    coordinator, alarm = build()
    coordinator.outbox = Capture()
    for record in read_topic(log, topics.coordinator):
        take(coordinator, record, communicator.decode)
        communicator.done(record)
    coordinator.outbox = communicator
    trust = coordinator_trust(config, [], "first", service=False)
    CoordinatorSnapshots(coordinator, communicator, alarm, writer, config, "first", trust, every=1).write()
    for publish in extra:
        publish(log, builder)
    end = result.log.end_offset(topics.coordinator)
    _copy(result.log, log, topics.coordinator, offset, end)
    _commit(log, topics.coordinator, end)
    log.inbox_reads.clear()
    return log


def _restart(config, log):
    builder, _, writer, build = _parts(config, log)
    committed = log.committed(COORDINATOR, builder.topics.coordinator, 0)
    incarnations = set(coordinator_keys(log, builder.topics, builder.catalog)[0])
    coordinator, alarm, restored = restore_latest(build, writer, log, builder.topics, builder.catalog, config,
                                                  committed, incarnations)
    records = recover(coordinator, log, builder.topics, builder.catalog, observe=alarm.observe_record,
                      start=restored.inbox_offset if restored is not None else 0)
    return coordinator, restored, records, writer


def test_a_restarted_coordinator_restores_its_snapshot_reads_only_the_inbox_after_it_and_ends_bit_exact(course):
    config, result = course
    topics = CourseBuilder(config).topics
    end = result.log.end_offset(topics.coordinator)
    offset = end // 2
    log = _log_with_snapshot_at(config, result, offset)
    coordinator, restored, records, writer = _restart(config, log)
    assert restored is not None and restored.inbox_offset == offset
    assert min(log.inbox_reads) == offset and records == end - offset  # nothing before the snapshot is read
    assert model_sha256(coordinator.params, coordinator.catalog.codec) == result.summary["model_sha256"]
    assert coordinator.finished and coordinator.state.round == ROUNDS
    assert coordinator.incarnation == "restarted"  # new ids are the new incarnation's, not the snapshot's "first"
    whole, _, _, _ = _restart(config, _whole_log(config, result))
    assert _state(coordinator) == _state(whole)  # the very state re-feeding the whole inbox rebuilds
    assert [r["round"] for r in writer.rows] == [r["round"] for r in result.history]  # the earlier rows come too


def _whole_log(config, result) -> Reads:
    topics = CourseBuilder(config).topics
    log = Reads()
    log.ensure_topics(topics.specs())
    _copy(result.log, log, topics.meta, 0, 1)
    end = result.log.end_offset(topics.coordinator)
    _copy(result.log, log, topics.coordinator, 0, end)
    _commit(log, topics.coordinator, end)
    log.inbox_reads.clear()
    return log


def _state(coordinator):
    state = capture(coordinator, "coordinator")
    return json.dumps(state.tree, sort_keys=True), [(t.dtype.str, t.shape, t.tobytes()) for t in state.tensors]


def test_without_a_snapshot_the_whole_inbox_is_read_again(course):
    config, result = course
    end = result.log.end_offset(CourseBuilder(config).topics.coordinator)
    log = _whole_log(config, result)
    coordinator, restored, records, _ = _restart(config, log)
    assert restored is None and records == end and min(log.inbox_reads) == 0
    assert model_sha256(coordinator.params, coordinator.catalog.codec) == result.summary["model_sha256"]


def test_an_inbox_whose_head_was_deleted_is_refused_without_a_snapshot_that_covers_it(course):
    config, result = course
    topics = CourseBuilder(config).topics
    end = result.log.end_offset(topics.coordinator)

    class Truncated(Reads):
        def start_offsets(self, topic):
            return {0: end // 2} if topic == topics.coordinator else super().start_offsets(topic)

    log = Truncated()
    log.ensure_topics(topics.specs())
    _copy(result.log, log, topics.meta, 0, 1)
    _copy(result.log, log, topics.coordinator, 0, end)
    _commit(log, topics.coordinator, end)
    with pytest.raises(LogTruncated, match=rf"from offset 0: partition 0 now starts at offset {end // 2}"):
        _restart(config, log)


def _bad_snapshot(kind: str):
    """Publishes a snapshot after the good one: undecodable, past the committed offset, another config's, or of
    an incarnation this course's meta topic does not record (another deployment's)."""
    def publish(log, builder):
        config, topics, catalog = builder.config, builder.topics, builder.catalog
        by = "elsewhere" if kind == "another deployment" else "first"
        if kind == "corrupt":
            publish_snapshot(log, topics, catalog, config, by, 3, 10, fingerprint(config), b"not an avro container")
            return
        _, pointer = catalog.codec.decode(list(log.read(topics.meta))[-1].value)  # the good one
        data = fetch_snapshot(log, topics, pointer, "test")
        if kind == "another config":
            snapshot = decode(data, "test")
            snapshot.config, snapshot.fingerprint = {**snapshot.config, "seed": 999}, "0" * 64
            data = encode(snapshot)
        offset = 10**9 if kind == "past the committed offset" else pointer["inbox_offset"]
        publish_snapshot(log, topics, catalog, config, by, pointer["round"], offset, pointer["fingerprint"], data)
    return publish


@pytest.mark.parametrize("kind", ["corrupt", "past the committed offset", "another config", "another deployment"])
def test_a_bad_latest_snapshot_is_skipped_with_a_warning_for_the_one_before_it(course, kind):
    config, result = course
    topics = CourseBuilder(config).topics
    end = result.log.end_offset(topics.coordinator)
    log = _log_with_snapshot_at(config, result, end // 3, extra=[_bad_snapshot(kind)])
    with structlog.testing.capture_logs() as logs:
        coordinator, restored, records, _ = _restart(config, log)
    skipped = [e for e in logs if e["event"] == "snapshot_skipped"]
    assert len(skipped) == 1 and f"{topics.meta}/0/" in skipped[0]["where"], logs
    assert restored is not None and restored.inbox_offset == end // 3 and records == end - end // 3
    assert model_sha256(coordinator.params, coordinator.catalog.codec) == result.summary["model_sha256"]


@pytest.mark.parametrize("args, needle", [
    (["--snapshot-every", "0"], "--snapshot-every: must be at least 1 round, not 0"),
    (["--snapshot-every", "2", "--set", "plugins=[{name: secure_aggregation, role: all}]"],
     "--snapshot-every: plugins[0]: a course with plug-in secure_aggregation cannot be snapshotted"),
])
def test_the_coordinator_refuses_snapshots_it_cannot_take_in_one_line_before_touching_kafka(args, needle):
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import ROOT

    proc = subprocess.run([str(Path(sys.executable).parent / "fscope-coordinator"), "serve",
                           str(ROOT / "examples" / "digits_fedavg.yaml"), "--set", "participants=4",
                           "--set", "transport.kafka.bootstrap_servers=127.0.0.1:1", *args],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
