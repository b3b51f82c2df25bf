"""A restarted coordinator rebuilds its state from its own inbox (event sourcing)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import structlog

from fscore.config import CourseConfig
from fscore.courselog import Capture, read_topic, refeed
from fscore.message import MessageCatalog
from fscore.topics import CourseTopics
from fscore.transport.base import Record, Transport
from fscore.trust.signing import Verifier
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.service")


def recover(coordinator: BaseWorker, transport: Transport, topics: CourseTopics, catalog: MessageCatalog,
            observe: Callable[[Record], None] | None = None, verifier: Verifier | None = None, start: int = 0) -> int:
    """Rebuild a restarted coordinator's state from its own inbox: event sourcing.

    Its state is a function of the config and the inbox records it handled, which are exactly
    those before its committed offset. They are handed to it again with its sends captured and
    dropped: every output of a handled record was made durable before that record was committed.
    A coordinator restored from a snapshot (:mod:`fscore.service.snapshots`) has handled those before
    ``start`` already: only the records from ``start`` on are read. ``observe`` is called with each record
    once the coordinator has handled it (the wall-clock alarms resume their countdowns from it).
    ``verifier`` checks each record as the live coordinator did. Returns how many records were handled
    again (0 for a first start).
    """
    committed = transport.committed(coordinator.address, topics.coordinator, 0)
    if committed == 0:
        return 0
    if committed <= start:  # the snapshot is the whole state
        log.info("recovered", worker=coordinator.address, records=0, read_from=start, resumes_at=committed)
        return 0
    live, coordinator.outbox = coordinator.outbox, Capture()
    try:
        records = read_topic(transport, topics.coordinator, until={0: committed}, start={0: start})
        intake = refeed(coordinator, _observed(records, observe), catalog, verifier)
    finally:
        coordinator.outbox = live
    log.info("recovered", worker=coordinator.address, records=intake.total(), read_from=start, resumes_at=committed,
             **intake.as_dict())
    return intake.total()


def _observed(records: Iterable[Record], observe: Callable[[Record], None] | None) -> Iterator[Record]:
    for record in records:
        yield record
        if observe is not None:  # runs when the next record is asked for: this one has been handled
            observe(record)


def same_course(recorded: CourseConfig, config: CourseConfig) -> bool:
    """Whether ``config`` describes the course of ``recorded``; how to reach Kafka, and where the private key
    file is, may differ."""
    where = {"transport": True, "trust": {"private_key"}}  # where the process finds things, not what the course is
    return recorded.model_dump(mode="json", exclude=where) == config.model_dump(mode="json", exclude=where)
