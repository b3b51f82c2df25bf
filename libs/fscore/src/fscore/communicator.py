"""The communicator: a worker's messages <-> records on the course's topics.

It owns routing (which topic a message goes to), encoding through the wire codec, the worker's
record decoder (which skips broadcasts addressed to others), commits, and the dead-letter topic.
What becomes of each record is decided in :mod:`fscore.intake`.
"""

from __future__ import annotations

import structlog

from fscore.intake import DecodeCache, IntakeCounts, RecordDecoder
from fscore.message import COORDINATOR, Message, MessageCatalog
from fscore.topics import CourseTopics
from fscore.transport.base import Consumer, Record, Transport
from fscore.trust.signing import Signer, Verifier
from fstranslation import Header

log = structlog.get_logger("fscore.communicator")

_DLQ_HEADERS = frozenset({"fscope.reason", "fscope.source", "fscope.worker"})


class Communicator:
    def __init__(self, transport: Transport, topics: CourseTopics, catalog: MessageCatalog, address: str,
                 *, cache: DecodeCache | None = None, signer: Signer | None = None,
                 verifier: Verifier | None = None) -> None:
        self.transport = transport
        self.topics = topics
        self.catalog = catalog
        self.address = address
        self.signer = signer  # signs every record this worker publishes (fscore.trust)
        self.decode = RecordDecoder(catalog.codec, address, cache, verifier)
        self._consumer: Consumer | None = None
        self._done: dict[tuple[str, int], Record] = {}  # per partition, the last record finished with
        #: per partition, the offset after the last record finished with (what a commit would reach, were no
        #: chunked record partly received: commits stop at its first chunk)
        self.handled: dict[tuple[str, int], int] = {}
        self.dead_lettered = 0
        self.intake = IntakeCounts()  # what became of every record this worker was given

    # -- sending --------------------------------------------------------------------------

    def send(self, message: Message) -> int:
        """Encode, sign and publish ``message``; returns the encoded size in bytes."""
        data = self.encode(message)
        headers = self.signer.headers(data) if self.signer is not None else ()
        if self.catalog.receiver_role(message.type) == COORDINATOR:
            self.transport.publish(self.topics.coordinator, data, key=message.sender.encode(), headers=headers)
        elif len(message.receivers) == 1:
            self.transport.publish(self.topics.direct, data, key=message.receivers[0].encode(), headers=headers)
        else:
            self.transport.publish(self.topics.broadcast, data, headers=headers)
        return len(data)

    def encode(self, message: Message) -> bytes:
        header = Header(message.id, message.course, message.type, message.sender, message.receivers,
                        message.round, message.timestamp)
        return self.catalog.codec.encode(header, message.payload)

    # -- receiving ------------------------------------------------------------------------

    def subscribe(self, role: str) -> None:
        if role == COORDINATOR:
            self._consumer = self.transport.consumer([self.topics.coordinator], group=self.address)
        else:
            self._consumer = self.transport.consumer([self.topics.broadcast, self.topics.direct],
                                                     group=self.address, key=self.address.encode())

    def records(self, max_records: int = 500, timeout: float = 0.0) -> list[Record]:
        """The next records on this worker's topics, undecoded: :func:`fscore.intake.take` decides on each."""
        if self._consumer is None:
            raise RuntimeError(f"{self.address}: subscribe() before polling")
        return self._consumer.poll(max_records, timeout)

    def done(self, record: Record) -> None:
        """``record`` is fully handled; :meth:`commit` will commit it."""
        self._done[(record.topic, record.partition)] = record
        self.handled[(record.topic, record.partition)] = record.offset + 1

    def commit(self) -> None:
        """Commit what is done, once what handling it sent is durable, so a crash never loses an output.

        Called once per polled batch: one flush and one commit per partition, not one per message.
        A crash before it means the batch is handled again, which handlers tolerate (duplicate ids
        are ignored, and the coordinator rejects a second update for a round).
        """
        if not self._done:
            return
        self.transport.flush()
        done, self._done = self._done, {}
        if self._consumer is not None:
            for record in done.values():
                self._consumer.commit(record)

    def dead_letter(self, record: Record, reason: str) -> None:
        """Keep the record unchanged on the dead-letter topic, with the reason and where it came from."""
        self.dead_lettered += 1
        log.warning("dead_lettered", worker=self.address, topic=record.topic, partition=record.partition,
                    offset=record.offset, reason=reason)
        kept = tuple(h for h in record.headers if h[0] not in _DLQ_HEADERS)  # a record cannot name its own reason
        self.transport.publish(self.topics.dlq, record.value, key=record.key, headers=(
            *kept, ("fscope.reason", reason.encode()), ("fscope.source", f"{record.topic}/{record.partition}/"
                                                                   f"{record.offset}".encode()),
            ("fscope.worker", self.address.encode())))
