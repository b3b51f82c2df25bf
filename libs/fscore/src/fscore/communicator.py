"""The communicator: a worker's messages <-> records on the course's topics.

It owns routing (which topic a message goes to), encoding through the wire codec, filtering
out broadcasts addressed to others, and dead-lettering what cannot be decoded. A record that
fails to decode never reaches a handler and never stops the worker.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import structlog

from fscore.message import COORDINATOR, Message, MessageCatalog
from fscore.topics import CourseTopics
from fscore.transport.base import Consumer, Record, Transport
from fstranslation import DecodeError, Header

log = structlog.get_logger("fscore.communicator")


@dataclass(frozen=True, slots=True)
class Delivery:
    message: Message
    record: Record


class DecodeCache:
    """Decoded broadcasts shared by the participants of one process, so a model sent to many is decoded once."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, int, int], tuple[Header, frozenset[str], list[Message]]] = OrderedDict()

    def get(self, record: Record) -> tuple[Header, frozenset[str], list[Message]] | None:
        return self._items.get((record.topic, record.partition, record.offset))

    def put(self, record: Record, value: tuple[Header, frozenset[str], list[Message]]) -> None:
        self._items[(record.topic, record.partition, record.offset)] = value
        if len(self._items) > self._size:
            self._items.popitem(last=False)


class Communicator:
    def __init__(self, transport: Transport, topics: CourseTopics, catalog: MessageCatalog, address: str,
                 *, cache: DecodeCache | None = None) -> None:
        self.transport = transport
        self.topics = topics
        self.catalog = catalog
        self.address = address
        self._cache = cache
        self._consumer: Consumer | None = None
        self._done: dict[tuple[str, int], Record] = {}  # per partition, the last record finished with
        self.dead_lettered = 0

    # -- sending --------------------------------------------------------------------------

    def send(self, message: Message) -> int:
        """Encode and publish ``message``; returns the encoded size in bytes."""
        data = self.encode(message)
        if self.catalog.receiver_role(message.type) == COORDINATOR:
            self.transport.publish(self.topics.coordinator, data, key=message.sender.encode())
        elif len(message.receivers) == 1:
            self.transport.publish(self.topics.direct, data, key=message.receivers[0].encode())
        else:
            self.transport.publish(self.topics.broadcast, data)
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

    def poll(self, max_records: int = 500, timeout: float = 0.0) -> Iterator[Delivery]:
        """Decoded messages addressed to this worker; undecodable records go to the dead-letter topic."""
        if self._consumer is None:
            raise RuntimeError(f"{self.address}: subscribe() before poll()")
        for record in self._consumer.poll(max_records, timeout):
            try:
                message = self._decode(record)
            except DecodeError as exc:
                self.dead_letter(record, str(exc))
                self.done(record)
                continue
            if message is None:
                self.done(record)
                continue
            yield Delivery(message, record)

    def done(self, record: Record) -> None:
        """``record`` is fully handled; :meth:`commit` will commit it."""
        self._done[(record.topic, record.partition)] = record

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

    def _decode(self, record: Record) -> Message | None:
        cached = self._cache.get(record) if self._cache is not None else None
        if cached is None:
            codec = self.catalog.codec
            header, writer, bio, start = codec.decode_header(record.value)
            receivers = frozenset(header.receivers)
            slot: list[Message] = []
            if self.address in receivers:
                slot.append(self._message(header, codec.decode_body(writer, bio, start, record.value)))
            if self._cache is not None:
                self._cache.put(record, (header, receivers, slot))
            return slot[0] if slot else None
        header, receivers, slot = cached
        if self.address not in receivers:
            return None
        if not slot:
            slot.append(self._message(header, self.catalog.codec.decode(record.value)[1]))
        return slot[0]

    @staticmethod
    def _message(header: Header, payload: dict) -> Message:
        return Message(type=header.type, receivers=header.receivers, round=header.round, payload=payload,
                       sender=header.sender, timestamp=header.timestamp, id=header.id, course=header.course)

    def dead_letter(self, record: Record, reason: str) -> None:
        """Keep the record unchanged on the dead-letter topic, with the reason and where it came from."""
        self.dead_lettered += 1
        log.warning("dead_lettered", worker=self.address, topic=record.topic, partition=record.partition,
                    offset=record.offset, reason=reason)
        self.transport.publish(self.topics.dlq, record.value, key=record.key, headers=(
            ("fscope.reason", reason.encode()), ("fscope.source", f"{record.topic}/{record.partition}/"
                                                                   f"{record.offset}".encode()),
            ("fscope.worker", self.address.encode())))
