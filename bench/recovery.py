"""(e) Coordinator recovery over Kafka as courses grow (issue 17): the whole inbox against the latest snapshot.

A restarted coordinator rebuilds its state. Without snapshots it re-feeds its whole inbox, so recovery grows
with the course; with ``--snapshot-every N`` it restores the latest snapshot from the meta topic and re-feeds
only the inbox after it. One standalone course (digits, Dirichlet(0.5), MLP) gives the records; for each
crash point (the coordinator dies once round R is evaluated) a Kafka course is laid out on a real broker as a
deployed coordinator would have left it: the manifest, the inbox up to that point (committed), and a
snapshot every N rounds. Then, alternated (A B A B ...) in the same run:

- *whole inbox* (the baseline): build the coordinator, ``recover`` from offset 0;
- *snapshot*: ``restore_latest`` (the pointer from the meta topic, the snapshot from the snapshots topic) and
  ``recover`` from the snapshot's offset.

Both end with the same model (checked). The crash points lie N/2 rounds after a snapshot, so the snapshot
path always re-feeds N/2 rounds. Also shown: the size of the latest snapshot, and the meta topic's size and
the time to read it whole, which every starting process does (it grows by one small pointer per N rounds).

    python bench/recovery.py [--participants 20] [--every 10] [--crash 25 45 85 165] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from broker import kafka_bootstrap
from harness import quiet_logs, report

from fscore.communicator import Communicator
from fscore.config import config_from_dict
from fscore.course import CourseBuilder
from fscore.courselog import Capture, publish_snapshot, read_topic
from fscore.intake import RecordDecoder, take
from fscore.message import COORDINATOR
from fscore.results import RunWriter, model_sha256
from fscore.service import WallAlarm, recover
from fscore.service.snapshots import coordinator_snapshot, restore_latest
from fscore.simulation.runner import run_standalone
from fscore.snapshot.record import encode
from fscore.transport import EmbeddedLog
from fscore.transport.kafka_common import make_kafka_transport


def course(participants: int, rounds: int, bootstrap: str, prefix: str = "fscope"):
    return config_from_dict({
        "course_id": "bench-recovery", "participants": participants, "rounds": rounds,
        "data": {"dataset": "digits", "split": "dirichlet", "alpha": 0.5},
        "model": {"name": "mlp", "hidden": 64}, "simulation": {"progress": False},
        "trainer": {"lr": 0.1, "momentum": 0.5, "local_epochs": 1, "batch_size": 16},
        "transport": {"topic_prefix": prefix, "kafka": {"bootstrap_servers": bootstrap}}})


def coordinator_for(builder: CourseBuilder, transport):
    communicator = Communicator(transport, builder.topics, builder.catalog, COORDINATOR)
    writer = RunWriter(None)

    def build():
        made = builder.coordinator(communicator, evaluator=builder.numpy_evaluator(),
                                   on_evaluation=lambda e: writer.evaluation(e, 0.0), clock="wall",
                                   incarnation=uuid.uuid4().hex[:12])
        return made, WallAlarm(made)
    return communicator, writer, build


def walk(config, log: EmbeddedLog, every: int, crashes: list[int]):
    """One pass over the standalone inbox, as a deployed coordinator would have handled it: the inbox offset at
    which each crash round was evaluated, and each N-round snapshot (offset, bytes)."""
    builder = CourseBuilder(config)
    communicator, writer, build = coordinator_for(builder, log)
    coordinator, alarm = build()
    coordinator.outbox = Capture()
    decode = RecordDecoder(builder.catalog.codec, COORDINATOR)
    snapshots, ends, due = [], {}, every
    for record in read_topic(log, builder.topics.coordinator):
        take(coordinator, record, decode)
        s = coordinator.state
        if s.round >= due and s.round < config.rounds:
            snapshots.append((record.offset + 1, encode(coordinator_snapshot(config, coordinator, communicator,
                                                                             alarm, writer.rows, record.offset + 1))))
            due += every
        for r in crashes:
            if r not in ends and s.history and s.history[-1].round >= r:
                ends[r] = record.offset + 1
    return ends, snapshots


def lay_out(config, log: EmbeddedLog, end: int, snapshots, bootstrap: str):
    """A Kafka course holding the manifest, the inbox up to ``end`` (committed) and the snapshots before it."""
    builder = CourseBuilder(config)
    kafka = make_kafka_transport(config.transport.kafka)
    kafka.ensure_topics(builder.topics.specs())
    topics = builder.topics
    source = CourseBuilder(config.model_copy(update={"transport": config.transport.model_copy(
        update={"topic_prefix": "fscope"})})).topics  # the standalone course's topics: the same course, elsewhere
    kafka.publish(topics.meta, next(log.read(source.meta)).value)
    for record in list(log.read(source.coordinator))[:end]:
        kafka.publish(topics.coordinator, record.value, key=record.key, headers=record.headers)
    for offset, data in snapshots:
        if offset <= end:
            publish_snapshot(kafka, topics, builder.catalog, config, "bench", 0, offset,
                             _fingerprint(config), data)
    kafka.flush()
    consumer = kafka.consumer([topics.coordinator], group=COORDINATOR, start={(topics.coordinator, 0): end - 1})
    deadline = time.monotonic() + 60
    while not (got := consumer.poll(max_records=1, timeout=0.5)) and time.monotonic() < deadline:
        pass
    consumer.commit(got[0])
    consumer.close()
    return builder, kafka


def _fingerprint(config) -> str:
    from fscore.snapshot.record import fingerprint

    return fingerprint(config)


def whole(builder, kafka) -> tuple[float, str, int]:
    _, _, build = coordinator_for(builder, kafka)
    t = time.perf_counter()  # from building the coordinator on, as in snapshotted()
    coordinator, alarm = build()
    records = recover(coordinator, kafka, builder.topics, builder.catalog, observe=alarm.observe_record)
    return time.perf_counter() - t, model_sha256(coordinator.params, builder.catalog.codec), records


def snapshotted(builder, kafka) -> tuple[float, str, int]:
    _, writer, build = coordinator_for(builder, kafka)
    t = time.perf_counter()
    committed = kafka.committed(COORDINATOR, builder.topics.coordinator, 0)
    coordinator, alarm, restored = restore_latest(build, writer, kafka, builder.topics, builder.catalog,
                                                  builder.config, committed, {"bench"})
    assert restored is not None
    records = recover(coordinator, kafka, builder.topics, builder.catalog, observe=alarm.observe_record,
                      start=restored.inbox_offset)
    return time.perf_counter() - t, model_sha256(coordinator.params, builder.catalog.codec), records


def meta_scan(builder, kafka) -> tuple[float, int, int]:
    t = time.perf_counter()
    size = sum(len(r.value) for r in read_topic(kafka, builder.topics.meta))
    scan = time.perf_counter() - t
    latest = max(((r.offset, len(r.value)) for r in read_topic(kafka, builder.topics.snapshots)), default=(0, 0))
    return scan, size, latest[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--participants", type=int, default=20)
    ap.add_argument("--every", type=int, default=10, help="N: a snapshot every N rounds")
    ap.add_argument("--crash", type=int, nargs="+", default=[25, 45, 85, 165],
                    help="rounds after which the coordinator crashes (one course each)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    quiet_logs()
    with kafka_bootstrap() as bootstrap:
        base = course(args.participants, max(args.crash), bootstrap)
        t = time.perf_counter()
        standalone = run_standalone(base, progress=False)
        print(f"standalone course of {max(args.crash)} rounds: {time.perf_counter() - t:.1f} s")
        ends, snapshots = walk(base, standalone.log, args.every, args.crash)
        rows = []
        for r in args.crash:
            config = course(args.participants, max(args.crash), bootstrap, f"bench-{uuid.uuid4().hex[:8]}")
            builder, kafka = lay_out(config, standalone.log, ends[r], snapshots, bootstrap)
            a_times, b_times = [], []
            for i in range(args.repeat):  # A B, then B A, ...
                if i % 2 == 0:
                    a, a_sha, a_records = whole(builder, kafka)
                    b, b_sha, b_records = snapshotted(builder, kafka)
                else:
                    b, b_sha, b_records = snapshotted(builder, kafka)
                    a, a_sha, a_records = whole(builder, kafka)
                assert a_sha == b_sha, f"round {r}: the snapshot path ends with another model"
                a_times.append(a)
                b_times.append(b)
            scan, size, snapshot_size = meta_scan(builder, kafka)
            a_med, b_med = statistics.median(a_times), statistics.median(b_times)
            rows.append({"crash_round": r, "inbox_records": ends[r], "whole_refed": a_records, "whole_s": a_med,
                         "snapshot_refed": b_records, "snapshot_s": b_med, "ratio": b_med / a_med,
                         "snapshot_kb": snapshot_size / 1024, "meta_kb": size / 1024, "meta_read_s": scan})
            kafka.close()
    report("recovery", rows, notes=f"{args.participants} participants, MLP on digits Dirichlet(0.5), a snapshot every "
           f"{args.every} rounds; median of {args.repeat}, alternated; ratio = snapshot / whole inbox")


if __name__ == "__main__":
    main()
