"""A deployed coordinator's snapshots, and recovering from the latest (issue 17).

Standalone, a snapshot is a file (:mod:`fscore.simulation.runner`). A deployed coordinator asked for
``--snapshot-every N`` takes one each time N more rounds are aggregated, *at rest*: between two polls, when
every inbox record it has handled is committed and everything handling them sent is durable. A snapshot is
the same versioned Avro record as a snapshot file (:class:`fscore.snapshot.CourseSnapshot`): the
coordinator's state, its wall-clock countdowns (a second entry, ``coordinator#alarms``), the evaluation rows
so far, and the inbox offset it had handled up to (its committed offset then). It is written to the course's
snapshots topic, and a ``coordinator_snapshot`` record on the meta topic points to it, with its sha256 and
signed like every meta record, so the meta topic that every process reads at start stays small however large
the model.

Restarted, the coordinator restores the latest snapshot that fits its course and re-feeds only the inbox
records from that offset to its committed one (:func:`fscore.service.recover`). It never fetches the records
before it, so recovery costs what the last N rounds cost however long the course has run, and an operator
may let retention delete the inbox's head once a snapshot covers it (replay then no longer can). The state a
snapshot holds is the one re-feeding its records would rebuild, which the tests check bit for bit. A
snapshot that does not decode, is of another config or another deployment of the course, or lies past the
committed offset is skipped with a warning naming where it is, and the one before it is tried; with none,
the whole inbox is re-fed, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import structlog

from fscore.communicator import Communicator
from fscore.config import CourseConfig
from fscore.courselog import fetch_snapshot, publish_snapshot, snapshot_records
from fscore.errors import LogTruncated
from fscore.message import COORDINATOR, MessageCatalog
from fscore.results import RunWriter
from fscore.service.alarm import WallAlarm
from fscore.snapshot.course import take
from fscore.snapshot.record import CourseSnapshot, WorkerSnapshot, check_fits, decode, encode, fingerprint
from fscore.snapshot.state import SnapshotError, capture, restore
from fscore.topics import CourseTopics
from fscore.transport.base import Transport
from fscore.trust.setup import WorkerTrust
from fscore.trust.signing import Verifier

log = structlog.get_logger("fscore.service")

#: the snapshot entry holding the coordinator's wall-clock countdowns
ALARMS = f"{COORDINATOR}#alarms"


class CoordinatorSnapshots:
    """Called between polls: writes the coordinator's snapshot to the meta topic each time ``every`` more rounds
    have been aggregated."""

    def __init__(self, coordinator: Any, communicator: Communicator, alarm: WallAlarm, writer: RunWriter,
                 config: CourseConfig, incarnation: str, trust: WorkerTrust, every: int | None) -> None:
        self.coordinator, self.communicator, self.alarm, self.writer = coordinator, communicator, alarm, writer
        self.config, self.incarnation, self.trust, self.every = config, incarnation, trust, every
        self.due = (coordinator.state.round // every + 1) * every if every else None
        self.written = 0

    def __call__(self) -> None:
        s = self.coordinator.state
        if self.due is None or self.every is None or s.round < self.due:
            return
        if self.coordinator.finished or s.round >= self.config.rounds:  # nothing is left to recover into
            return
        if self.write():
            self.due = (s.round // self.every + 1) * self.every

    def write(self) -> bool:
        """Snapshot now, if at rest; False if not (the next tick tries again).

        ``pump`` commits each batch it handled, but a commit stops at the first chunk of a record still partly
        received, and the records after it are already handled: the state is then not that of the records
        before the committed offset, so it waits until the record is whole and the commit has caught up.
        """
        comm, topics = self.communicator, self.communicator.topics
        offset = comm.transport.committed(COORDINATOR, topics.coordinator, 0)
        if offset != comm.handled.get((topics.coordinator, 0), 0):
            return False
        snapshot = coordinator_snapshot(self.config, self.coordinator, comm, self.alarm, self.writer.rows, offset)
        data = encode(snapshot)
        publish_snapshot(comm.transport, topics, comm.catalog, self.config, self.incarnation, snapshot.round, offset,
                         snapshot.fingerprint, data, self.trust)
        self.written += 1
        log.info("snapshot_written", course=self.config.course_id, round=snapshot.round, inbox_offset=offset,
                 bytes=len(data))
        return True


def coordinator_snapshot(config: CourseConfig, coordinator: Any, communicator: Communicator, alarm: WallAlarm,
                         rows: list[dict[str, Any]], inbox_offset: int) -> CourseSnapshot:
    """The snapshot of a coordinator that has handled its inbox up to ``inbox_offset``, with its alarms and
    evaluation ``rows``."""
    snapshot = take(config, coordinator.state.round, coordinator.now, [(coordinator, communicator)], metrics=rows,
                    inbox={0: inbox_offset})
    snapshot.workers.append(WorkerSnapshot(ALARMS, capture(alarm, ALARMS), {}, 0))
    return snapshot


@dataclass(frozen=True)
class Restored:
    """What a restarted coordinator restored: the snapshot, and where on the meta topic it was."""

    snapshot: CourseSnapshot
    inbox_offset: int
    meta_offset: int

    def as_dict(self) -> dict[str, int]:
        return {"round": self.snapshot.round, "inbox_offset": self.inbox_offset, "meta_offset": self.meta_offset}


def restore_latest(build: Callable[[], tuple[Any, WallAlarm]], writer: RunWriter, transport: Transport,
                   topics: CourseTopics, catalog: MessageCatalog, config: CourseConfig, committed: int,
                   incarnations: Collection[str], verifier: Verifier | None = None
                   ) -> tuple[Any, WallAlarm, Restored | None]:
    """The coordinator (and its alarms) from the latest snapshot that fits, or freshly built when none does.

    ``build`` makes a fresh pair; each attempt restores into a new one, so a snapshot refused half way leaves
    nothing behind. ``committed`` is the inbox offset the course's coordinators committed; ``incarnations``
    those recorded on this course's meta topic: a pointer from any other (copied from another deployment of
    the same course id, say) is refused.
    """
    for pointer, record in snapshot_records(transport, topics, catalog, verifier):
        where = f"{topics.meta}/{record.partition}/{record.offset}"
        offset = pointer["inbox_offset"]
        coordinator, alarm = build()
        try:
            if pointer["incarnation"] not in incarnations:
                raise SnapshotError(f"{where}: a snapshot of incarnation {pointer['incarnation']!r}, which this "
                                    "course's meta topic does not record")
            if not 0 <= offset <= committed:
                raise SnapshotError(f"{where}: a snapshot at inbox offset {offset}, past the committed {committed}")
            snapshot = decode(fetch_snapshot(transport, topics, pointer, where), where)
            check_fits(snapshot, config, where)
            if snapshot.inbox.get(0) != offset or pointer["fingerprint"] != fingerprint(config):
                raise SnapshotError(f"{where}: the pointer and the snapshot it names disagree on the inbox offset "
                                    "or the config")
            incarnation = coordinator.incarnation  # this incarnation's ids stay its own
            restore(coordinator, snapshot.worker(COORDINATOR).state, COORDINATOR)
            coordinator.incarnation = incarnation
            restore(alarm, snapshot.worker(ALARMS).state, ALARMS)
        except (SnapshotError, LogTruncated) as exc:
            log.warning("snapshot_skipped", course=config.course_id, where=where, reason=str(exc))
            continue
        writer.resume(snapshot.metrics, coordinator.state.aggregations)
        log.info("snapshot_restored", course=config.course_id, where=where, round=snapshot.round,
                 inbox_offset=offset)
        return coordinator, alarm, Restored(snapshot, offset, record.offset)
    coordinator, alarm = build()
    return coordinator, alarm, None
