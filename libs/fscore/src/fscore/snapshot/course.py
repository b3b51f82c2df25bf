"""Taking a whole course's snapshot, and putting one back into a course built from the same config (issue 17).

A standalone course is snapshotted when it is at rest: every worker has handled what it was given, and what
remains is held on the virtual network (participants' replies, the coordinator's own alarms). The snapshot
keeps every worker's state (:mod:`fscore.snapshot.state`), its communicator's intake counts, and those held
messages as the wire records they are. Restored, the course continues exactly where it was: the same
messages are released in the same order, to workers in the same state, so it ends with the same model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fscore.communicator import Communicator
from fscore.config import CourseConfig
from fscore.intake import IntakeCounts, Outcome
from fscore.simulation.network import VirtualNetwork
from fscore.snapshot.record import CourseSnapshot, Held, WorkerSnapshot, course_config, fingerprint
from fscore.snapshot.state import SnapshotError, capture, restore
from fscore.worker import BaseWorker

Parts = Sequence[tuple[BaseWorker, Communicator]]


def take(config: CourseConfig, round_: int, virtual_time: float, parts: Parts,
         network: VirtualNetwork | None = None, metrics: list[dict[str, Any]] | None = None,
         inbox: dict[int, int] | None = None) -> CourseSnapshot:
    """The course's state now: every worker of ``parts`` and what ``network`` holds in flight."""
    workers = [WorkerSnapshot(worker.address, capture(worker, worker.address), comm.intake.as_dict(),
                              comm.dead_lettered) for worker, comm in parts]
    held, sent = network.held() if network is not None else ([], 0)
    return CourseSnapshot(config.course_id, fingerprint(config), course_config(config), round_, virtual_time,
                          workers, list(metrics or []), [Held(*h) for h in held], sent, dict(inbox or {}),
                          config.rounds)


def put_back(snapshot: CourseSnapshot, parts: Parts, network: VirtualNetwork | None = None) -> None:
    """Restore ``snapshot`` into the freshly built workers of ``parts`` (and the messages it held onto
    ``network``). Every worker must have its state in the snapshot, and every state its worker."""
    ours = {worker.address for worker, _ in parts}
    extra = sorted(w.address for w in snapshot.workers if w.address not in ours)
    if extra:
        raise SnapshotError(f"participants: the snapshot holds workers this course does not have: {extra[:5]}")
    for worker, comm in parts:
        saved = snapshot.worker(worker.address)
        restore(worker, saved.state, worker.address)
        try:
            comm.intake = IntakeCounts({Outcome(k): v for k, v in saved.intake.items() if v})
        except ValueError as exc:
            raise SnapshotError(f"{worker.address}: the snapshot's intake counts have an unknown outcome "
                                f"({exc})") from None
        comm.dead_lettered = saved.dead_lettered
    if network is not None:
        network.hold([(h.timestamp, h.sender, h.sequence, h.value, h.key, h.headers) for h in snapshot.in_flight],
                     snapshot.sent)


def snapshot_refusal(plugins: Iterable[tuple[str, Any, type]]) -> str | None:
    """Why a course with these plug-ins (``CourseBuilder.plugins``) cannot be snapshotted, in one line naming the
    plug-in's key; None when it can."""
    for key, _entry, cls in plugins:
        if getattr(cls, "snapshot_refusal", ""):
            return f"{key}: a course with plug-in {cls.name} cannot be snapshotted: {cls.snapshot_refusal}"
    return None
