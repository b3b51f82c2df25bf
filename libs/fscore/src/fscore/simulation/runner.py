"""The standalone runner: a whole course in one process over the embedded log, in virtual time.

The workers are the same classes a deployment runs; the runner only plays the part of the
processes and the network: it pumps each worker's inbox in turn and releases the participants'
replies to the coordinator in virtual-time order, until the course finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from fscore.communicator import Communicator
from fscore.config import CourseConfig
from fscore.coordinator import Coordinator, Evaluation
from fscore.course import CourseBuilder, participant_address
from fscore.courselog import publish_finished, publish_manifest
from fscore.driver import pump
from fscore.errors import ConfigError, CourseStalled
from fscore.intake import DecodeCache, IntakeCounts
from fscore.message import COORDINATOR, MODEL_PARAMETERS, PARTICIPANT, Message
from fscore.participant import Participant
from fscore.results import SUMMARY_LOG_KEYS, RunWriter, course_summary, partition_summary
from fscore.simulation.network import VirtualNetwork
from fscore.snapshot.course import put_back, snapshot_refusal, take
from fscore.snapshot.record import CourseSnapshot, check_fits
from fscore.snapshot.record import write as write_snapshot
from fscore.trainers.base import Trainer
from fscore.transport.embedded import EmbeddedLog
from fscore.trust.setup import coordinator_trust, participant_trust
from fscore.worker import Outbox

if TYPE_CHECKING:
    from fscore.simulation.batched import CohortTraining
    from fscore.simulation.workers import TrainingPool

log = structlog.get_logger("fscore.runner")


@dataclass
class CourseResult:
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    coordinator: Coordinator
    participants: list[Participant]
    log: EmbeddedLog


class _Tracking(Outbox):
    """The coordinator's outbox in simulation: publishes, and notes whom it addressed, so the runner
    pumps only participants that have something to handle."""

    def __init__(self, communicator: Communicator, addressed: set[str]) -> None:
        self.communicator = communicator
        self.addressed = addressed
        self.cohort: CohortTraining | TrainingPool | None = None  # simulation.batched, simulation.workers

    def send(self, message: Message) -> int:
        self.addressed.update(message.receivers)
        if self.cohort is not None and message.type == MODEL_PARAMETERS and len(message.receivers) > 1:
            self.cohort.prepare(message.receivers, message.round, message.payload["tensors"])
        return self.communicator.send(message)


def run_standalone(config: CourseConfig, *, output_dir: Path | None = None, progress: bool | None = None,
                   trainer: type[Trainer] | None = None, snapshot_every: int | None = None,
                   snapshot_dir: Path | None = None, restore: CourseSnapshot | None = None,
                   pause_at: int | None = None) -> CourseResult:
    threads = config.simulation.threads
    if config.simulation.workers > 1 and threads == 0:
        threads = 1  # every training on the same thread count, in whichever process it runs
    with _intra_op_threads(threads):
        return _run(config, output_dir=output_dir, progress=progress, trainer=trainer, snapshot_every=snapshot_every,
                    snapshot_dir=snapshot_dir, restore=restore, pause_at=pause_at)


@contextmanager
def _intra_op_threads(threads: int) -> Iterator[None]:
    """``simulation.threads``: torch's intra-op thread count for the run, put back afterwards."""
    if threads == 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(config: CourseConfig, *, output_dir: Path | None, progress: bool | None, trainer: type[Trainer] | None,
         snapshot_every: int | None, snapshot_dir: Path | None, restore: CourseSnapshot | None,
         pause_at: int | None) -> CourseResult:
    """Run ``config`` to the end; ``trainer`` replaces the configured trainer (benchmarks use NoOpTrainer).

    ``snapshot_every`` N: write the course's snapshot to ``snapshot_dir`` (default ``output_dir/snapshots``)
    each time N more rounds are aggregated. ``restore``: continue the course from that snapshot instead of
    starting it (it must be of this config; ``rounds`` may be larger). ``pause_at`` R: stop once round R is
    aggregated and evaluated, at rest, and snapshot the course there (``summary["paused_at"]`` names the file):
    tuning trains a trial rung by rung this way, and a paused course restored with the same config ends bit for
    bit as if it had never paused.
    """
    started = time.perf_counter()
    builder = CourseBuilder(config)
    if restore is not None:
        check_fits(restore, config, "the snapshot")
    if snapshot_every is not None or restore is not None or pause_at is not None:
        refusal = snapshot_refusal(builder.plugins)
        if refusal is not None:
            raise ConfigError(refusal)
        for key, entry, cls in builder.plugins:
            fixed = cls.snapshot_fixes_rounds(cls.Options(**entry.options)) if hasattr(cls, "Options") else ""
            if restore is not None and fixed and config.rounds != restore.planned_rounds:
                raise ConfigError(f"rounds: plug-in {cls.name} ({key}) {fixed}, so a course restored with it keeps "
                                  f"rounds={restore.planned_rounds} (not {config.rounds})")
    if config.simulation.batched:
        from fscore.simulation.batched import refusal

        why = refusal(config, builder)
        if why is not None:
            raise ConfigError(why)
    if config.simulation.workers > 1:
        from fscore.simulation.workers import refusal as workers_refusal

        why = workers_refusal(config, builder)
        if why is not None:
            raise ConfigError(why)
    if pause_at is not None and not 0 < pause_at < config.rounds:
        raise ConfigError(f"pause_at: round {pause_at} is not inside the course's {config.rounds} rounds")
    if snapshot_every is not None or pause_at is not None:
        if snapshot_every is not None and snapshot_every < 1:
            raise ConfigError(f"--snapshot-every: must be at least 1 round, not {snapshot_every}")
        snapshot_dir = snapshot_dir or (output_dir / "snapshots" if output_dir is not None else None)
        if snapshot_dir is None:
            raise ConfigError("--snapshot-every: snapshots need a directory (--output)")
    topics = builder.topics
    embedded = EmbeddedLog()
    embedded.ensure_topics(topics.specs())
    addresses = [participant_address(i) for i in range(config.participants)]
    coord_trust = coordinator_trust(config, addresses, "0", service=False)
    # so the run can be replayed like a deployed one
    publish_manifest(embedded, topics, builder.catalog, config, "0", coord_trust)
    network = VirtualNetwork(embedded, builder.catalog.codec, held_topic=topics.coordinator)
    writer = RunWriter(output_dir)

    def on_evaluation(evaluation: Evaluation) -> None:
        writer.evaluation(evaluation, time.perf_counter() - started)

    addressed: set[str] = set()
    coord_comm = Communicator(network, topics, builder.catalog, COORDINATOR, signer=coord_trust.signer,
                              verifier=coord_trust.verifier)
    evaluator = None if trainer is not None else builder.heldout_evaluator()
    tracking = _Tracking(coord_comm, addressed)
    coordinator = builder.coordinator(tracking, evaluator=evaluator,
                                      on_evaluation=on_evaluation, on_aggregation=writer.aggregation)
    coord_comm.subscribe(COORDINATOR)
    cache = DecodeCache()
    participants: dict[str, tuple[Participant, Communicator]] = {}
    for i, address in enumerate(addresses):
        trust = participant_trust(config, address, addresses, service=False)
        comm = Communicator(network, topics, builder.catalog, address, cache=cache, signer=trust.signer,
                            verifier=trust.verifier)
        worker = builder.participant(i, comm, trainer=trainer() if trainer is not None else None)
        comm.subscribe(PARTICIPANT)
        participants[worker.address] = (worker, comm)

    workers = [p for p, _ in participants.values()]
    if config.simulation.batched and trainer is None:
        from fscore.simulation.batched import CohortTraining

        tracking.cohort = CohortTraining({address: p for address, (p, _) in participants.items()})
    builder.flow_graph().raise_for_problems()
    coordinator.log_handlers()
    workers[0].log_handlers()
    parts = [(coordinator, coord_comm), *participants.values()]
    if restore is not None:
        put_back(restore, parts, network)
        writer.resume(restore.metrics, coordinator.state.aggregations)
        log.info("restored", course=config.course_id, round=restore.round, virtual_time=restore.virtual_time)
    at_rest = None
    if snapshot_every is not None or pause_at is not None:
        assert snapshot_dir is not None
        at_rest = _Snapshots(config, parts, network, writer, snapshot_every, snapshot_dir, pause_at)
    pool = None
    if config.simulation.workers > 1 and trainer is None:
        from fscore.simulation.workers import TrainingPool

        # forked now, when every participant is built (and restored): the trainer processes hold the same ones
        pool = tracking.cohort = TrainingPool({address: p for address, (p, _) in participants.items()},
                                              config.simulation.workers, 1)
    try:
        _drive(coordinator, coord_comm, participants, addressed, network, config, progress,
               restored=restore is not None, at_rest=at_rest)
    finally:
        if pool is not None:
            pool.close()
    paused = at_rest is not None and at_rest.paused is not None

    summary = {
        **course_summary(config, coordinator, builder.catalog.codec, started),
        "dead_lettered": coord_comm.dead_lettered + sum(c.dead_lettered for _, c in participants.values()),
        "intake": IntakeCounts.total_of([coord_comm.intake, *(c.intake for _, c in participants.values())]),
        "records": {t: embedded.end_offset(t) for t in (topics.coordinator, topics.broadcast)},
        # who holds what (participants reading their own files are not in the course's federation)
        **({"data": partition_summary(builder.federation)} if config.data.local_path is None else {}),
        **({"restored_from_round": restore.round} if restore is not None else {}),
        **({"snapshots": at_rest.written} if at_rest is not None else {}),
        **({tracking.cohort.counted_as: tracking.cohort.prepared} if tracking.cohort is not None else {}),
        **({"finish_reason": "paused", "paused_at": at_rest.paused} if paused and at_rest is not None else {}),
    }
    if not paused:
        publish_finished(embedded, topics, builder.catalog, config.course_id, summary["finish_reason"],
                         summary["rounds"], summary["model_sha256"], coord_trust)
    writer.summary(summary)
    log.info("summary", **{k: v for k, v in summary.items() if k in SUMMARY_LOG_KEYS})
    return CourseResult(summary, writer.rows, coordinator, workers, embedded)


class _Snapshots:
    """At rest: writes the course's snapshot each time ``every`` more rounds have been aggregated, and stops the
    course (returns True) with a snapshot once round ``pause_at`` is aggregated and evaluated."""

    def __init__(self, config: CourseConfig, parts: list[tuple[Any, Communicator]], network: VirtualNetwork,
                 writer: RunWriter, every: int | None, directory: Path, pause_at: int | None = None) -> None:
        self.config, self.parts, self.network, self.writer = config, parts, network, writer
        self.every, self.directory, self.pause_at = every, directory, pause_at
        coordinator = parts[0][0]
        self.due = (coordinator.state.round // every + 1) * every if every else None
        self.written: list[str] = []
        self.paused: str | None = None

    def __call__(self) -> bool:
        coordinator = self.parts[0][0]
        s = coordinator.state
        if s.round >= self.config.rounds or coordinator.finished:
            return False
        if self.pause_at is not None and s.history and s.history[-1].round >= self.pause_at:
            self.paused = self._write(s.round)
            return True
        if self.due is not None and self.every and s.round >= self.due:
            self._write(s.round)
            self.due = (s.round // self.every + 1) * self.every
        return False

    def _write(self, round_: int) -> str:
        coordinator = self.parts[0][0]
        snapshot = take(self.config, round_, coordinator.now, self.parts, self.network, self.writer.rows)
        path = self.directory / f"round-{round_:05d}.avro"
        write_snapshot(path, snapshot)
        self.written.append(str(path))
        log.info("snapshot_written", course=self.config.course_id, round=round_, path=str(path))
        return str(path)


def _drive(coordinator: Coordinator, coord_comm: Communicator,
           participants: dict[str, tuple[Participant, Communicator]], addressed: set[str], network: VirtualNetwork,
           config: CourseConfig, progress: bool | None, *, restored: bool = False,
           at_rest: Callable[[], bool] | None = None) -> None:
    """Discrete-event loop: let every worker react to what it has, then deliver the next message in time.

    Between the two, every worker has handled what it was given and the rest is in flight on the network:
    the course is at rest, and ``at_rest`` may snapshot it, or pause it by returning True. A ``restored`` course
    is not started again.
    """
    from tqdm import tqdm

    show = config.simulation.progress if progress is None else progress
    with tqdm(total=config.rounds, desc=config.course_id, unit="round", disable=not show, leave=False) as bar:
        if not restored:
            coordinator.start()  # a join deadline, if there is one
            for p, _ in participants.values():
                p.start()
        while True:
            moved = pump(coordinator, coord_comm)
            while addressed:
                for address in sorted(addressed):
                    addressed.discard(address)
                    if address in participants:
                        moved += pump(*participants[address])
            bar.update(coordinator.state.round - bar.n)
            if coordinator.finished and all(p.finished for p, _ in participants.values()):
                return
            if moved == 0 and at_rest is not None and at_rest():
                return
            if moved == 0 and not network.release_next():
                s = coordinator.state
                raise CourseStalled(f"course {config.course_id} stalled in round {s.round} (phase {s.phase}): "
                                    f"{len(s.membership.participants)}/{config.participants} joined, "
                                    f"{len(s.buffer.updates)} updates buffered, "
                                    f"{len(s.requests.busy)} participants training")
