"""The standalone runner: a whole course in one process over the embedded log, in virtual time.

The workers are the same classes a deployment runs; the runner only plays the part of the
processes and the network: it pumps each worker's inbox in turn and releases the participants'
replies to the coordinator in virtual-time order, until the course finishes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from fscore.communicator import Communicator, DecodeCache
from fscore.config import CourseConfig
from fscore.coordinator import Coordinator, Evaluation
from fscore.course import CourseBuilder, participant_address
from fscore.deployment import publish_finished, publish_manifest
from fscore.driver import pump
from fscore.errors import CourseStalled
from fscore.flowgraph import check_course
from fscore.message import COORDINATOR, PARTICIPANT
from fscore.participant import Participant
from fscore.results import RunWriter, model_sha256
from fscore.simulation.network import VirtualNetwork
from fscore.trainers.base import Trainer
from fscore.transport.embedded import EmbeddedLog

log = structlog.get_logger("fscore.runner")


@dataclass
class CourseResult:
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    coordinator: Coordinator
    participants: list[Participant]
    log: EmbeddedLog


def run_standalone(config: CourseConfig, *, output_dir: Path | None = None, progress: bool | None = None,
                   trainer: type[Trainer] | None = None) -> CourseResult:
    """Run ``config`` to the end; ``trainer`` replaces the configured trainer (benchmarks use NoOpTrainer)."""
    started = time.perf_counter()
    builder = CourseBuilder(config)
    topics = builder.topics
    embedded = EmbeddedLog()
    embedded.ensure_topics(topics.specs())
    publish_manifest(embedded, topics, builder.catalog, config, "0")  # so the run can be replayed like a deployed one
    network = VirtualNetwork(embedded, builder.catalog.codec, held_topic=topics.coordinator)
    writer = RunWriter(output_dir)

    def on_evaluation(evaluation: Evaluation) -> None:
        writer.evaluation(evaluation, time.perf_counter() - started)

    coord_comm = Communicator(embedded, topics, builder.catalog, COORDINATOR)
    evaluator = None if trainer is not None else builder.heldout_evaluator()
    coordinator = builder.coordinator(coord_comm, evaluator=evaluator, on_evaluation=on_evaluation)
    coord_comm.subscribe(COORDINATOR)
    cache = DecodeCache()
    participants, comms = [], []
    for i in range(config.participants):
        comm = Communicator(network, topics, builder.catalog, participant_address(i), cache=cache)
        participants.append(builder.participant(i, comm, trainer=trainer() if trainer is not None else None))
        comm.subscribe(PARTICIPANT)
        comms.append(comm)

    check_course([coordinator, participants[0]], builder.catalog)
    coordinator.log_handlers()
    participants[0].log_handlers()
    _drive(coordinator, coord_comm, participants, comms, network, config, progress)

    history = coordinator.state.history
    final = history[-1].metrics if history else {}
    summary = {
        "course_id": config.course_id, "config_hash": config.config_hash(), "seed": config.seed,
        "rounds": coordinator.state.round, "finish_reason": coordinator.state.finish_reason,
        "participants": config.participants, "final_metrics": final,
        "virtual_time_s": coordinator.now, "wall_time_s": round(time.perf_counter() - started, 3),
        "model_sha256": model_sha256(coordinator.params, builder.catalog.codec),
        "dead_lettered": coord_comm.dead_lettered + sum(c.dead_lettered for c in comms),
        "records": {t: embedded.end_offset(t) for t in (topics.coordinator, topics.broadcast)},
    }
    publish_finished(embedded, topics, builder.catalog, config.course_id, summary["finish_reason"], summary["rounds"],
                     summary["model_sha256"])
    writer.summary(summary)
    log.info("summary", **{k: v for k, v in summary.items() if k != "records"})
    return CourseResult(summary, writer.rows, coordinator, participants, embedded)


def _drive(coordinator: Coordinator, coord_comm: Communicator, participants: list[Participant],
           comms: list[Communicator], network: VirtualNetwork, config: CourseConfig, progress: bool | None) -> None:
    from tqdm import tqdm

    show = config.simulation.progress if progress is None else progress
    with tqdm(total=config.rounds, desc=config.course_id, unit="round", disable=not show, leave=False) as bar:
        for p in participants:
            p.start()
        network.release()
        while True:
            moved = pump(coordinator, coord_comm)
            for p, comm in zip(participants, comms, strict=True):
                moved += pump(p, comm)
            moved += network.release()
            bar.update(coordinator.state.round - bar.n)
            if coordinator.finished and all(p.finished for p in participants):
                return
            if moved == 0:
                s = coordinator.state
                raise CourseStalled(f"course {config.course_id} stalled in round {s.round} (phase {s.phase}): "
                                    f"{len(s.participants)}/{config.participants} joined, "
                                    f"{len(s.updates)}/{len(s.sampled)} updates received")
