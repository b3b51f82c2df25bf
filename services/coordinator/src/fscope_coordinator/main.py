"""``fscope-coordinator``: the coordinator process.

    fscope-coordinator serve [CONFIG] [--set k=v ...] [--output DIR] [--snapshot-every N]
                                                                          (or: fscope coordinator serve ...)
    fscope-coordinator describe [CONFIG]

It creates the course's topics, writes the course manifest, and runs the same Coordinator as the
standalone runner, over Kafka. Restarted, it rebuilds its state from its inbox up to its committed
offset (event sourcing) and carries on; a restart with a different course config is refused. With
``--snapshot-every N`` it writes its state to the meta topic every N rounds, and a restart restores the
latest snapshot and re-feeds only the inbox after it (:mod:`fscore.service.snapshots`).
It imports neither torch nor TensorFlow: it aggregates numpy arrays decoded from the wire and
evaluates logreg/MLP models on its held-out set in numpy.
Exit codes: 0 finished, 1 error, 2 bad config, 3 Kafka unreachable, 4 stopped by a signal.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import structlog

from fscore.cli import invoke
from fscore.communicator import Communicator
from fscore.config import CourseConfig
from fscore.coordinator import Coordinator, Evaluation
from fscore.course import CourseBuilder, checked_builder, participant_address
from fscore.courselog import (
    coordinator_keys,
    course_finished,
    first_manifest,
    publish_finished,
    publish_manifest,
    publish_started,
)
from fscore.errors import ConfigError, LogTruncated, TransportError
from fscore.message import COORDINATOR
from fscore.results import RunWriter, course_summary
from fscore.service import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_TRANSPORT,
    StopFlag,
    WallAlarm,
    connect,
    new_incarnation,
    recover,
    same_course,
    service_config,
)
from fscore.service import serve as serve_worker
from fscore.service.entry import config_options, start
from fscore.service.snapshots import CoordinatorSnapshots, restore_latest
from fscore.snapshot.course import snapshot_refusal
from fscore.trust.setup import WorkerTrust, coordinator_trust
from fscore.worker import Outbox

log = structlog.get_logger("fscope.coordinator")


def build_coordinator(config_path: Path, overrides: list[str]) -> Coordinator:
    builder = CourseBuilder(service_config(str(config_path), overrides))
    return builder.coordinator(Outbox())


def prepared(config: CourseConfig, snapshot_every: int | None = None) -> tuple[CourseBuilder, WorkerTrust, str]:
    """Everything that can be refused before Kafka is touched: the course, its flow, its keys and snapshots."""
    builder = checked_builder(config)
    if snapshot_every is not None:
        if snapshot_every < 1:
            raise ConfigError(f"--snapshot-every: must be at least 1 round, not {snapshot_every}")
        refusal = snapshot_refusal(builder.plugins)
        if refusal is not None:
            raise ConfigError(f"--snapshot-every: {refusal}")
    incarnation = new_incarnation()
    addresses = [participant_address(i) for i in range(config.participants)]
    return builder, coordinator_trust(config, addresses, incarnation, service=True), incarnation


def run(builder: CourseBuilder, trust: WorkerTrust, incarnation: str, output: Path | None,
        snapshot_every: int | None = None) -> int:
    started = time.perf_counter()
    config = builder.config
    topics, catalog = builder.topics, builder.catalog
    try:
        transport = connect(config, topics)
        # One course, one coordinator: a second one is refused before it sends anything (docs/architecture.md).
        lease = transport.lease(f"{topics.meta}.coordinator-lease", topics.meta)
        wait = 2 * config.transport.kafka.lease_session_timeout_s + 5
        if not lease.acquire(wait):
            log.error("another_coordinator", course=config.course_id, waited_s=wait,
                      error="another coordinator serves this course (its lease has a live holder); stop it first")
            lease.close()
            return EXIT_CONFIG
        restarted = transport.committed(COORDINATOR, topics.coordinator, 0) > 0
        # The manifest is written once, by the course's first coordinator; every later one must match it,
        # whether or not its predecessor committed anything.
        manifest = first_manifest(transport, topics, catalog)
        if manifest is None:
            publish_manifest(transport, topics, catalog, config, incarnation, trust)
        elif not same_course(manifest[0], config):
            log.error("config_differs", course=config.course_id,
                      error="this course already ran with another config (see its manifest on the meta topic)")
            lease.close()
            return EXIT_CONFIG
        earlier, admitted = coordinator_keys(transport, topics, catalog)
        if manifest is not None and admitted != (trust.ring.lines() if trust.ring is not None else []):
            log.error("config_differs", course=config.course_id,
                      error="the admitted keys differ from those the course's manifest records (trust.keys changed?)")
            lease.close()
            return EXIT_CONFIG
        publish_started(transport, topics, catalog, config, incarnation, trust)
        # alarms of earlier incarnations verify under their keys (a restart re-reads them)
        assert trust.verifier is not None
        trust.verifier.alarm_keys.update(earlier)
    except TransportError as exc:
        log.error("kafka_unreachable", error=str(exc))
        return EXIT_TRANSPORT
    writer = RunWriter(output)
    communicator = Communicator(transport, builder.topics, builder.catalog, COORDINATOR, signer=trust.signer,
                                verifier=trust.verifier)

    def on_evaluation(evaluation: Evaluation) -> None:
        writer.evaluation(evaluation, time.perf_counter() - started)

    started_at = manifest[1] if manifest is not None and manifest[1] else None  # the join deadline counts from it

    def build() -> tuple[Coordinator, WallAlarm]:
        made = builder.coordinator(communicator, evaluator=builder.numpy_evaluator(), on_evaluation=on_evaluation,
                                   on_aggregation=writer.aggregation, clock="wall", incarnation=incarnation)
        return made, WallAlarm(made, started=started_at)

    # a restart picks up where the last incarnation committed, from its latest snapshot if there is one, its
    # countdowns where they were
    restored = None
    if restarted and snapshot_refusal(builder.plugins) is None:
        committed = transport.committed(COORDINATOR, topics.coordinator, 0)
        coordinator, alarm, restored = restore_latest(build, writer, transport, topics, catalog, config, committed,
                                                      set(earlier), trust.verifier)
    else:
        coordinator, alarm = build()
    try:
        recovered = recover(coordinator, transport, topics, catalog, observe=alarm.observe_record,
                            verifier=trust.verifier, start=restored.inbox_offset if restored is not None else 0)
    except LogTruncated as exc:
        log.error("inbox_truncated", course=config.course_id, error=str(exc),
                  hint="no usable snapshot covers the deleted records (see snapshot_skipped): keep the inbox whole, "
                       "or run the coordinator with --snapshot-every before its records expire")
        lease.close()
        return EXIT_CONFIG
    snapshots = CoordinatorSnapshots(coordinator, communicator, alarm, writer, config, incarnation, trust,
                                     snapshot_every)
    if not restarted:
        coordinator.start()
    communicator.subscribe(COORDINATOR)
    coordinator.log_handlers()
    log.info("serving", course=config.course_id, bootstrap=config.transport.kafka.bootstrap_servers,
             participants=config.participants)
    def tick() -> None:
        now = alarm.clock()
        alarm.observe(now)
        # at rest: the batch just handled is committed. Before the alarms ring: a snapshot must not hold a
        # countdown as rung whose alarm a crash could still lose (a duplicate alarm is harmless, a lost one not)
        snapshots()
        alarm.ring(now)
        alarm.warn_if_waiting(now)
        lease.held()  # keeps the membership alive (the broker counts a member that stops polling as gone)

    code = serve_worker(coordinator, communicator, done=lambda: coordinator.finished,
                 poll_timeout=config.transport.kafka.poll_timeout_s, stop=StopFlag(), tick=tick)
    summary = course_summary(config, coordinator, builder.catalog.codec, started)
    if coordinator.finished and course_finished(transport, topics, catalog, trust.verifier) is None:
        publish_finished(transport, topics, catalog, config.course_id, coordinator.state.finish_reason,
                         coordinator.state.round, summary["model_sha256"], trust)
    writer.summary({**summary, "dead_lettered": communicator.dead_lettered, "intake": communicator.intake.as_dict(),
                    "recovered_records": recovered, "exit_code": code,
                    "recovered_from_snapshot": restored.as_dict() if restored is not None else None,
                    "snapshots_written": snapshots.written})
    lease.close()
    transport.close()
    log.info("exiting", course=config.course_id, code=code, finished=coordinator.finished)
    return code


@click.group(name="coordinator", help="The coordinator (FL server) as a service over Kafka.")
def cli() -> None:
    pass


@cli.command(help="serve the course over Kafka until it finishes")
@config_options
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="directory for summary.json and metrics.jsonl")
@click.option("--snapshot-every", type=int, default=None, metavar="N",
              help="write the coordinator's snapshot to the meta topic every N rounds; a restart recovers from it")
def serve(config: str | None, overrides: tuple[str, ...], output: Path | None, snapshot_every: int | None) -> int:
    return start("fscope-coordinator", json_logs=True,
                 prepare=lambda: prepared(service_config(config, list(overrides)), snapshot_every),
                 act=lambda p: run(*p, output, snapshot_every))


@cli.command(help="print the coordinator's handlers, without touching Kafka")
@config_options
def describe(config: str | None, overrides: tuple[str, ...]) -> int:
    def show(builder: CourseBuilder) -> int:
        for line in builder.coordinator(Outbox()).handlers.describe():
            print(line)
        return EXIT_OK
    return start("fscope-coordinator", json_logs=False,
                 prepare=lambda: checked_builder(service_config(config, list(overrides))), act=show)


def main(argv: list[str] | None = None) -> int:
    return invoke(cli, argv, "fscope-coordinator")


if __name__ == "__main__":
    raise SystemExit(main())
