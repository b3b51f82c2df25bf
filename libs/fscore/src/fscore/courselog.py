"""A course's log: reading its topics, re-feeding a coordinator from them, and its meta records.

Recovery (a restarted coordinator rebuilding itself, :func:`fscore.service.recover`) and replay
(:mod:`fscore.replay`) both read a course's topics and re-feed its inbox; this is the one place
that does it. The meta topic holds what the course's coordinators write besides messages: the
manifest (written once, by the first incarnation), one ``coordinator_started`` record per
incarnation, the coordinator's snapshots (every N rounds, when asked for), and the finish record.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fscore.config import CourseConfig, config_from_dict
from fscore.errors import ConfigError, LogTruncated, SnapshotError, TransportError, Unauthenticated
from fscore.intake import IntakeCounts, RecordDecoder, take
from fscore.message import (
    COORDINATOR,
    COORDINATOR_SNAPSHOT,
    COORDINATOR_STARTED,
    COURSE_FINISHED,
    COURSE_MANIFEST,
    Message,
    MessageCatalog,
)
from fscore.topics import CourseTopics
from fscore.transport.base import Record, Transport
from fscore.trust.keys import KeyRing, raw_public
from fscore.trust.setup import WorkerTrust
from fscore.trust.signing import Verifier
from fscore.worker import BaseWorker, Outbox
from fstranslation import DecodeError, Header

log = structlog.get_logger("fscore.courselog")


class Capture(Outbox):
    """An outbox that keeps what a worker sends instead of publishing it."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, message: Message) -> int:
        self.sent.append(message)
        return 0


def read_topic(transport: Transport, topic: str, *, timeout: float = 120.0,
               until: Mapping[int, int] | None = None, start: Mapping[int, int] | None = None) -> Iterator[Record]:
    """Every record of ``topic`` from offset 0 (or ``start``) up to its current end (or ``until``), in log order
    per partition. Nothing before ``start`` is fetched."""
    ends = transport.end_offsets(topic) if until is None else until
    first = dict(start or {})
    remaining = {p: end for p, end in ends.items() if end > first.get(p, 0)}
    if remaining:
        kept = transport.start_offsets(topic)
        gone = {p: kept.get(p, 0) for p in remaining if kept.get(p, 0) > first.get(p, 0)}
        if gone:
            p, low = min(gone.items())
            raise LogTruncated(f"reading {topic!r} from offset {first.get(p, 0)}: partition {p} now starts at offset "
                               f"{low}, the records before it were deleted (retention or DeleteRecords)")
    consumer = transport.consumer([topic], group=f"replay-{uuid.uuid4().hex[:10]}",
                                  start={(topic, p): o for p, o in first.items()})
    deadline = time.monotonic() + timeout
    position = {p: first.get(p, 0) for p in remaining}
    try:
        while remaining:
            if time.monotonic() > deadline:
                raise TransportError(f"reading {topic!r}: partitions {sorted(remaining)} did not reach their end "
                                     f"offsets within {timeout:.0f} s")
            # no more than are left: a client's batch poll waits out its timeout for a fuller batch
            left = sum(end - position[p] for p, end in remaining.items())
            for record in consumer.poll(max_records=max(1, min(500, left)), timeout=0.25):
                if record.partition not in remaining:
                    continue  # this partition is read to its end already
                position[record.partition] = record.offset + 1
                yield record
                if record.offset + 1 >= remaining[record.partition]:
                    del remaining[record.partition]
    finally:
        consumer.close()


def refeed(coordinator: BaseWorker, records: Iterable[Record], catalog: MessageCatalog,
           verifier: Verifier | None = None, on_refused: Callable[[str], None] | None = None) -> IntakeCounts:
    """Hand ``records`` to ``coordinator`` in order, deciding on each exactly as the live loop did.

    Both call :func:`fscore.intake.take`, so what the live coordinator handled, skipped or
    dead-lettered is handled, skipped or refused the same way here; ``verifier`` checks signatures
    and alarms as the live coordinator's did; ``on_refused`` is told where each refused record is and
    why. Returns the outcome counts.
    """
    counts = IntakeCounts()
    decode = RecordDecoder(catalog.codec, coordinator.address, verifier=verifier)
    for record in records:
        decision = take(coordinator, record, decode)
        counts[decision.outcome] += 1
        if on_refused is not None and decision.outcome.dead_letters:
            on_refused(f"{record.topic}/{record.partition}/{record.offset} ({decision.outcome}): "
                       f"{decision.reason.splitlines()[0] if decision.reason else ''}")
    return counts


def publish_manifest(transport: Transport, topics: CourseTopics, catalog: MessageCatalog, config: CourseConfig,
                     incarnation: str, trust: WorkerTrust | None = None) -> None:
    """The course's manifest: its config, and with ``trust`` the incarnation's public key and the admitted keys."""
    header = Header(f"{COORDINATOR}/{incarnation}/manifest", config.course_id, COURSE_MANIFEST, COORDINATOR, (), 0,
                    0.0)
    payload = {"config_json": json.dumps(config.model_dump(mode="json"), sort_keys=True),
               "config_hash": config.config_hash(), "incarnation": incarnation,
               "public_key": _raw(trust), "admitted_keys": trust.ring.lines() if trust and trust.ring else []}
    _publish_meta(transport, topics, catalog.codec.encode(header, payload), trust)


def _raw(trust: WorkerTrust | None) -> bytes | None:
    return raw_public(trust.public_key) if trust is not None and trust.public_key is not None else None


def _publish_meta(transport: Transport, topics: CourseTopics, value: bytes, trust: WorkerTrust | None) -> None:
    signer = trust.signer if trust is not None else None
    transport.publish(topics.meta, value, headers=signer.headers(value) if signer is not None else ())
    transport.flush()


def publish_finished(transport: Transport, topics: CourseTopics, catalog: MessageCatalog, course: str,
                     reason: str, rounds: int, model_sha256: str, trust: WorkerTrust | None = None) -> None:
    header = Header(f"{COORDINATOR}/finished", course, COURSE_FINISHED, COORDINATOR, (), rounds, 0.0)
    _publish_meta(transport, topics, catalog.codec.encode(header, {"reason": reason, "rounds": rounds,
                                                                   "model_sha256": model_sha256}), trust)


def meta_records(transport: Transport, topics: CourseTopics, catalog: MessageCatalog,
                 verifier: Verifier | None = None) -> list[tuple[Header, dict[str, Any], Record]]:
    """The course's meta topic, decoded: its manifests, start and finish records, in log order.

    Anyone who can write to the topic can put garbage there: what does not decode, or is not the
    coordinator's record of this course, is skipped with a warning rather than trusted or crashed on.
    In a signed course (``verifier`` with the admitted keys), so is what the coordinator did not sign.
    """
    out = []
    for record in read_topic(transport, topics.meta):
        try:
            header, payload = catalog.codec.decode(record.value)
        except DecodeError as exc:
            _skipped(record, str(exc))
            continue
        if header.course != topics.course or header.sender != COORDINATOR or header.type not in _META_TYPES:
            _skipped(record, f"a {header.type!r} record from {header.sender!r} for course {header.course!r}")
            continue
        if verifier is not None and verifier.keyring is not None:
            try:
                verifier.check(record, header)
            except Unauthenticated as exc:
                _skipped(record, str(exc))
                continue
        out.append((header, payload, record))
    return out


def _skipped(record: Record, reason: str) -> None:
    log.warning("meta_record_skipped", topic=record.topic, offset=record.offset, reason=reason)


_META_TYPES = (COURSE_MANIFEST, COURSE_FINISHED, COORDINATOR_STARTED, COORDINATOR_SNAPSHOT)


def publish_started(transport: Transport, topics: CourseTopics, catalog: MessageCatalog, config: CourseConfig,
                    incarnation: str, trust: WorkerTrust | None = None) -> None:
    """Note on the meta topic that ``incarnation`` serves the course: its sends are the coordinator's, and its
    alarms are those that verify under the public key of ``trust``."""
    header = Header(f"{COORDINATOR}/{incarnation}/started", config.course_id, COORDINATOR_STARTED, COORDINATOR, (),
                    0, 0.0)
    _publish_meta(transport, topics, catalog.codec.encode(header, {
        "incarnation": incarnation, "config_hash": config.config_hash(), "public_key": _raw(trust)}), trust)


def coordinator_incarnations(transport: Transport, topics: CourseTopics, catalog: MessageCatalog) -> set[str]:
    """Every incarnation that served the course, from its manifest and start records."""
    return {payload["incarnation"] for header, payload, _ in meta_records(transport, topics, catalog)
            if header.type in (COURSE_MANIFEST, COORDINATOR_STARTED)}


def coordinator_keys(transport: Transport, topics: CourseTopics, catalog: MessageCatalog
                     ) -> tuple[dict[str, Ed25519PublicKey | None], list[str]]:
    """Each coordinator incarnation's public key, and the admitted key lines, from the meta topic.

    Only the course's first manifest counts, as everywhere (:func:`first_manifest`). When it admits
    keys (a signed course), a record counts only if the admitted coordinator key signed it, so a
    record slipped onto the meta topic adds no key, and an incarnation without a key is not taken.
    In an unsigned course the meta topic is trusted: keep it writable by the coordinator only. An
    incarnation recorded without a key there (written before alarms were signed) maps to None: its
    alarms are taken unsigned, so courses recorded then still replay.
    """
    records = meta_records(transport, topics, catalog)
    manifest = next(((h, p, r) for h, p, r in records if h.type == COURSE_MANIFEST), None)
    if manifest is None:
        return {}, []
    admitted = list(manifest[1].get("admitted_keys") or [])
    verifier = None
    if admitted:
        try:
            verifier = Verifier(KeyRing.parse(admitted, f"{topics.meta} manifest"))
        except ConfigError as exc:
            _skipped(manifest[2], f"its admitted keys do not parse: {exc}")
            return {}, []
    keys: dict[str, Ed25519PublicKey | None] = {}
    for header, payload, record in records:
        if record is not manifest[2] and header.type != COORDINATOR_STARTED:
            continue
        if verifier is not None:
            try:
                verifier.check(record, header)
            except Unauthenticated as exc:
                _skipped(record, str(exc))
                continue
        raw = payload.get("public_key")
        try:
            key = Ed25519PublicKey.from_public_bytes(raw) if raw else None
        except ValueError as exc:
            _skipped(record, f"its public key is not an Ed25519 key ({exc})")
            continue
        if key is None and verifier is not None:
            _skipped(record, "an incarnation without a key, in a signed course")
            continue
        keys[payload["incarnation"]] = key
    return keys, admitted


def first_manifest(transport: Transport, topics: CourseTopics, catalog: MessageCatalog
                   ) -> tuple[CourseConfig, float] | None:
    """The course's manifest (written once, by its first coordinator) and when it was written; None before."""
    for header, payload, record in meta_records(transport, topics, catalog):
        if header.type == COURSE_MANIFEST:
            config = config_from_dict(json.loads(payload["config_json"]), source=f"{topics.meta} manifest")
            return config, record.timestamp
    return None


def course_finished(transport: Transport, topics: CourseTopics, catalog: MessageCatalog,
                    verifier: Verifier | None = None) -> dict | None:
    """The course's finish record from the meta topic, or None while it runs (the meta topic stays tiny).
    In a signed course (``verifier`` with the admitted keys) only one the coordinator signed counts."""
    for header, payload, _ in meta_records(transport, topics, catalog, verifier):
        if header.type == COURSE_FINISHED:
            return payload
    return None


def read_manifest(transport: Transport, topics: CourseTopics, catalog: MessageCatalog) -> CourseConfig:
    """The config of the course's first coordinator incarnation, from the meta topic."""
    found = first_manifest(transport, topics, catalog)
    if found is None:
        raise TransportError(f"no course manifest on {topics.meta}: was course {topics.course!r} run with this prefix?")
    return found[0]


def publish_snapshot(transport: Transport, topics: CourseTopics, catalog: MessageCatalog, config: CourseConfig,
                     incarnation: str, round_: int, inbox_offset: int, fingerprint: str, snapshot: bytes,
                     trust: WorkerTrust | None = None) -> None:
    """The coordinator's state at rest, having handled its inbox up to ``inbox_offset``
    (:mod:`fscore.service.snapshots`): the snapshot on the snapshots topic, then a signed pointer to it, with
    its sha256, on the meta topic. Only the coordinator, which holds the course's lease, writes the snapshots
    topic, so the record lands at the end offset read just before it."""
    at = transport.end_offsets(topics.snapshots).get(0, 0)
    transport.publish(topics.snapshots, snapshot)
    transport.flush()
    header = Header(f"{COORDINATOR}/{incarnation}/snapshot-{inbox_offset}", config.course_id, COORDINATOR_SNAPSHOT,
                    COORDINATOR, (), round_, 0.0)
    _publish_meta(transport, topics, catalog.codec.encode(header, {
        "incarnation": incarnation, "round": round_, "inbox_offset": inbox_offset, "fingerprint": fingerprint,
        "snapshot_offset": at, "snapshot_sha256": hashlib.sha256(snapshot).hexdigest(),
        "snapshot_bytes": len(snapshot)}), trust)


def snapshot_records(transport: Transport, topics: CourseTopics, catalog: MessageCatalog,
                     verifier: Verifier | None = None) -> list[tuple[dict[str, Any], Record]]:
    """The pointers to the coordinator's snapshots on the meta topic, newest first (in a signed course, signed
    ones only)."""
    found = [(payload, record) for header, payload, record in meta_records(transport, topics, catalog, verifier)
             if header.type == COORDINATOR_SNAPSHOT]
    return found[::-1]


def fetch_snapshot(transport: Transport, topics: CourseTopics, pointer: Mapping[str, Any], where: str) -> bytes:
    """The snapshot a meta pointer names: the first record at or after its offset on the snapshots topic whose
    sha256 is the pointer's (a record someone else slipped in before it is passed over). Nothing before the
    offset is read."""
    for record in read_topic(transport, topics.snapshots, start={0: pointer["snapshot_offset"]}):
        if hashlib.sha256(record.value).hexdigest() == pointer["snapshot_sha256"]:
            return record.value
    raise SnapshotError(f"{where}: {topics.snapshots} holds no record with the snapshot's sha256 at or after offset "
                        f"{pointer['snapshot_offset']}")
