"""The one boundary between a worker and the records it is given: decode, filter, handle, decide.

Every record a worker meets ends in exactly one :class:`Outcome`. The live loop
(:func:`fscore.driver.pump`), a restarted coordinator's recovery and ``fscope replay`` all call
:func:`take`, so they decide alike about every record, hostile ones included: a record the live
run skipped or dead-lettered is skipped the same way when the log is re-fed, and the models agree.

Bytes off a topic are untrusted. Whatever a record makes go wrong while it is decoded or handled
(a :class:`~fstranslation.DecodeError`, a :class:`~fscore.errors.RejectedMessage`, or any other
exception: a poison record) is the record's outcome, never the worker's end. Only a failing
transport stops the loop: that is the broker, not the record.
"""

from __future__ import annotations

import traceback
from collections import Counter, OrderedDict
from dataclasses import dataclass
from enum import StrEnum

import structlog

from fscore.errors import RejectedMessage, TransportError
from fscore.message import Message
from fscore.transport.base import Record
from fscore.worker import BaseWorker
from fstranslation import DecodeError, Header, WireCodec

log = structlog.get_logger("fscore.intake")


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"  # a message id already handled: ignored
    NOT_ADDRESSED = "not_addressed"  # a broadcast (or a stray record) for other workers: skipped
    UNDECODABLE = "undecodable"  # not a well-formed record: dead-lettered
    REJECTED = "rejected"  # well-formed, but invalid for the worker's state: dead-lettered
    POISON = "poison"  # handling it raised something else: dead-lettered with the traceback

    @property
    def dead_letters(self) -> bool:
        return self in (Outcome.UNDECODABLE, Outcome.REJECTED, Outcome.POISON)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str = ""
    message: Message | None = None


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


class RecordDecoder:
    """A record -> the message it holds for ``address``, or None when it is addressed to others.

    Only the envelope is decoded for a record addressed elsewhere, so a participant never pays for
    another's model, and a stray record in the coordinator's inbox is skipped before its payload is read.
    """

    def __init__(self, codec: WireCodec, address: str, cache: DecodeCache | None = None) -> None:
        self.codec = codec
        self.address = address
        self._cache = cache

    def __call__(self, record: Record) -> Message | None:
        cached = self._cache.get(record) if self._cache is not None else None
        if cached is None:
            header, writer, bio, start = self.codec.decode_header(record.value)
            receivers = frozenset(header.receivers)
            slot: list[Message] = []
            if self.address in receivers:
                slot.append(_message(header, self.codec.decode_body(writer, bio, start, record.value)))
            if self._cache is not None:
                self._cache.put(record, (header, receivers, slot))
            return slot[0] if slot else None
        header, receivers, slot = cached
        if self.address not in receivers:
            return None
        if not slot:
            slot.append(_message(header, self.codec.decode(record.value)[1]))
        return slot[0]


def _message(header: Header, payload: dict) -> Message:
    return Message(type=header.type, receivers=header.receivers, round=header.round, payload=payload,
                   sender=header.sender, timestamp=header.timestamp, id=header.id, course=header.course)


def take(worker: BaseWorker, record: Record, decode: RecordDecoder) -> Decision:
    """Decode ``record`` for ``worker``, hand it over, and say what became of it.

    A :class:`TransportError` raised while handling (a reply could not be published) is not the
    record's fault and propagates: the record is not committed, and is handled again after a restart.
    """
    try:
        message = decode(record)
    except DecodeError as exc:
        return Decision(Outcome.UNDECODABLE, str(exc))
    if message is None:
        return Decision(Outcome.NOT_ADDRESSED)
    try:
        handled = worker.handle(message)
    except RejectedMessage as exc:
        return Decision(Outcome.REJECTED, str(exc), message)
    except TransportError:
        raise
    except Exception as exc:  # noqa: BLE001 - a poison record must not stop the worker (it would again on restart)
        trace = traceback.format_exc()
        log.error("poison_record", worker=worker.address, topic=record.topic, partition=record.partition,
                  offset=record.offset, msg_type=message.type, sender=message.sender, error=repr(exc),
                  traceback=trace)
        return Decision(Outcome.POISON, f"{type(exc).__name__} while handling {message.type} from "
                                        f"{message.sender!r} (id {message.id}): {exc}\n{trace}", message)
    return Decision(Outcome.HANDLED if handled else Outcome.DUPLICATE, message=message)


class IntakeCounts(Counter):
    """How many records ended in each :class:`Outcome`; written to ``summary.json`` as ``intake``."""

    def as_dict(self) -> dict[str, int]:
        return {o.value: self.get(o, 0) for o in Outcome}

    @classmethod
    def total_of(cls, counts: list[IntakeCounts]) -> dict[str, int]:
        total = cls()
        for c in counts:
            total.update(c)
        return total.as_dict()
