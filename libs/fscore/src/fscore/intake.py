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
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from fscore.errors import RejectedMessage, ReplayedMessage, TransportError, Unauthenticated
from fscore.message import Message, Verdicts
from fscore.transport.base import Record
from fscore.trust.signing import Verifier
from fscore.worker import BaseWorker
from fstranslation import DecodeError, Header, WireCodec

log = structlog.get_logger("fscore.intake")


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"  # a message id already handled: ignored
    NOT_ADDRESSED = "not_addressed"  # a broadcast (or a stray record) for other workers: skipped
    UNDECODABLE = "undecodable"  # not a well-formed record: dead-lettered
    UNAUTHENTICATED = "unauthenticated"  # not signed by the sender it names, or a forged alarm: dead-lettered
    REJECTED = "rejected"  # well-formed, but invalid for the worker's state: dead-lettered
    REPLAYED = "replayed"  # a copy of an accepted message, written again elsewhere in the log: dead-lettered
    POISON = "poison"  # handling it raised something else: dead-lettered with the traceback

    @property
    def dead_letters(self) -> bool:
        return self not in (Outcome.HANDLED, Outcome.DUPLICATE, Outcome.NOT_ADDRESSED)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str = ""
    message: Message | None = None


@dataclass(slots=True)
class _Decoded:
    """What a record holds, decoded as far as was needed; shared by the workers of one process."""

    header: Header
    receivers: frozenset[str]
    message: Message | None = None
    verdict: str | None = None  # why the record is not authentic; checked once, before the payload is read
    checked: bool = False
    #: the checks its content passed (a participant's fit to its layout), for every worker given ``message``
    content_verdicts: Verdicts = field(default_factory=Verdicts)


class DecodeCache:
    """Decoded broadcasts shared by the participants of one process, so a model sent to many is decoded
    (and its signature verified) once."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, int, int], _Decoded] = OrderedDict()

    def get(self, record: Record) -> _Decoded | None:
        return self._items.get((record.topic, record.partition, record.offset))

    def put(self, record: Record, value: _Decoded) -> None:
        self._items[(record.topic, record.partition, record.offset)] = value
        if len(self._items) > self._size:
            self._items.popitem(last=False)


class RecordDecoder:
    """A record -> the message it holds for ``address``, or None when it is addressed to others.

    Only the envelope is decoded for a record addressed elsewhere, so a participant never pays for
    another's model, and a stray record in the coordinator's inbox is skipped before its payload is
    read. A record addressed here is checked by ``verifier`` (:class:`fscore.trust.Verifier`) before
    its payload is decoded; one that fails raises :class:`~fscore.errors.Unauthenticated`.
    """

    def __init__(self, codec: WireCodec, address: str, cache: DecodeCache | None = None,
                 verifier: Verifier | None = None) -> None:
        self.codec = codec
        self.address = address
        self.verifier = verifier
        self._cache = cache

    def __call__(self, record: Record) -> Message | None:
        decoded = self._cache.get(record) if self._cache is not None else None
        body = None
        if decoded is None:
            header, writer, bio, start = self.codec.decode_header(record.value)
            decoded = _Decoded(header, frozenset(header.receivers))
            body = (writer, bio, start)
            if self._cache is not None:
                self._cache.put(record, decoded)
        if self.address not in decoded.receivers:
            return None
        if not decoded.checked:
            if self.verifier is not None:
                try:
                    self.verifier.check(record, decoded.header)
                except Unauthenticated as exc:
                    decoded.verdict = str(exc)
            decoded.checked = True
        if decoded.verdict is not None:
            raise Unauthenticated(decoded.verdict)
        if decoded.message is None:
            payload = (self.codec.decode_body(*body, record.value) if body is not None
                       else self.codec.decode(record.value)[1])
            decoded.message = _message(decoded.header, payload, decoded.content_verdicts)
        return decoded.message


def _message(header: Header, payload: dict, verdicts: Verdicts) -> Message:
    return Message(type=header.type, receivers=header.receivers, round=header.round, payload=payload,
                   sender=header.sender, timestamp=header.timestamp, id=header.id, course=header.course,
                   verdicts=verdicts)


def take(worker: BaseWorker, record: Record, decode: RecordDecoder) -> Decision:
    """Decode ``record`` for ``worker``, hand it over, and say what became of it.

    A :class:`TransportError` raised while handling (a reply could not be published) is not the
    record's fault and propagates: the record is not committed, and is handled again after a restart.
    """
    try:
        message = decode(record)
    except DecodeError as exc:
        return Decision(Outcome.UNDECODABLE, str(exc))
    except Unauthenticated as exc:
        return Decision(Outcome.UNAUTHENTICATED, str(exc))
    if message is None:
        return Decision(Outcome.NOT_ADDRESSED)
    try:
        handled = worker.handle(message, f"{record.topic}/{record.partition}/{record.offset}")
    except ReplayedMessage as exc:
        return Decision(Outcome.REPLAYED, str(exc), message)
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
