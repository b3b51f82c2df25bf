"""Replay: re-drive a fresh coordinator from a course's recorded inbox, and verify it.

The coordinator's state is a function of its config, its seed and its inbox log (event
sourcing). Replay reads the manifest (config and seed) from the meta topic, builds a fresh
coordinator whose sends are captured rather than published, feeds it every inbox record in
log order, and compares each model it sends (model_parameters, evaluate, finish) with the one
recorded on the broadcast and direct topics, by sha256 of the tensors' Avro encoding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from fscore.coordinator import Evaluation
from fscore.course import CourseBuilder
from fscore.courselog import Capture, coordinator_incarnations, coordinator_keys, read_manifest, read_topic, refeed
from fscore.errors import Unauthenticated
from fscore.intake import Outcome
from fscore.message import COORDINATOR, EVALUATE, FINISH, MODEL_PARAMETERS, MessageCatalog
from fscore.results import RunWriter, course_privacy, course_statistics, evaluation_row
from fscore.topics import CourseTopics
from fscore.transport.base import Transport
from fscore.trust.setup import replay_verifier
from fscore.trust.signing import Verifier
from fstranslation import DecodeError

log = structlog.get_logger("fscore.replay")

MODEL_TYPES = (MODEL_PARAMETERS, EVALUATE, FINISH)
#: refused inbox records listed in a replay's summary.json (all are counted)
REFUSED_SHOWN = 1000


def tensors_sha256(catalog: MessageCatalog, tensors: Mapping[str, np.ndarray]) -> str:
    return hashlib.sha256(catalog.codec.encode_payload(MODEL_PARAMETERS, {"tensors": tensors})).hexdigest()


@dataclass
class RecordedModel:
    type: str
    round: int
    sha256: str
    where: str
    receivers: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int, tuple[str, ...]]:
        """What identifies one send: an async coordinator sends one round's model many times, each to others."""
        return self.type, self.round, self.receivers

    @property
    def label(self) -> str:
        to = f" to {', '.join(self.receivers)}" if len(self.receivers) <= 3 else f" to {len(self.receivers)} workers"
        return f"{self.type} of round {self.round}{to}"


@dataclass
class ReplayReport:
    course: str
    intake: dict[str, int] = field(default_factory=dict)  # every inbox record's outcome (fscore.intake)
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)  # identical models sent again by a restarted coordinator
    ignored: list[str] = field(default_factory=list)  # records on the model topics the coordinator did not send
    history: list[dict[str, Any]] = field(default_factory=list)
    final_sha256: str = ""
    plugins: dict[str, Any] = field(default_factory=dict)  # the rebuilt coordinator's plug-ins' summaries
    #: every inbox record the rebuilt coordinator refused, with where it is and why (a tampered one is named here)
    refused: list[str] = field(default_factory=list)

    @property
    def inbox_records(self) -> int:
        return sum(self.intake.values())

    @property
    def rejected(self) -> int:
        """Inbox records the coordinator refused, as the live one did (poison records included)."""
        return self.intake.get(Outcome.REJECTED.value, 0) + self.intake.get(Outcome.POISON.value, 0)

    @property
    def undecodable(self) -> int:
        return self.intake.get(Outcome.UNDECODABLE.value, 0)

    @property
    def verified(self) -> bool:
        return not self.mismatches and self.checked > 0


def recorded_models(transport: Transport, topics: CourseTopics, catalog: MessageCatalog,
                    problems: list[str], incarnations: set[str] | None, ignored: list[str],
                    verifier: Verifier | None = None) -> list[RecordedModel]:
    """The models the live coordinator sent, as found on the broadcast and direct topics.

    Only the coordinator's own records count: sender ``coordinator``, this course, an id of one of
    its ``incarnations`` (None: any). Anything else on those topics (garbage, records of another course
    or sender, copies of a record with an id already seen) is not the coordinator's send; it goes to
    ``ignored``. A record of the coordinator's that does not decode, or (in a signed course, with
    ``verifier``) whose signature does not verify, is reported in ``problems``.
    """
    out, seen = [], set()
    for topic in (topics.broadcast, topics.direct):
        for record in read_topic(transport, topic):
            where = f"{record.topic}/{record.partition}/{record.offset}"
            try:
                header, writer, bio, start = catalog.codec.decode_header(record.value)
            except DecodeError as exc:
                ignored.append(f"record {where} is not an fscope record ({exc})")
                continue
            if header.type not in MODEL_TYPES:
                continue
            incarnation = header.id.split("/")[1] if header.id.count("/") == 2 else None
            if (header.sender != COORDINATOR or header.course != topics.course
                    or (incarnations is not None and incarnation not in incarnations)):
                ignored.append(f"record {where}: a {header.type} from {header.sender!r} (id {header.id}, course "
                               f"{header.course!r}) that no incarnation of this course's coordinator sent")
                continue
            if header.id in seen:
                ignored.append(f"record {where}: a copy of {header.id}, already read")
                continue
            try:
                if verifier is not None:
                    verifier.check(record, header)
            except Unauthenticated as exc:
                problems.append(f"record {where}: {exc}")
                continue
            try:
                payload = catalog.codec.decode_body(writer, bio, start, record.value)
            except DecodeError as exc:
                problems.append(f"record {where} cannot be decoded: {exc}")
                continue
            seen.add(header.id)  # only a record that checks and decodes claims its id
            out.append(RecordedModel(header.type, header.round, tensors_sha256(catalog, payload["tensors"]), where,
                                     tuple(header.receivers)))
    return out


def replay_course(transport: Transport, course: str, *, topic_prefix: str = "fscope",
                  output_dir: Path | None = None) -> ReplayReport:
    catalog = MessageCatalog()
    topics = CourseTopics(topic_prefix, course)
    config = read_manifest(transport, topics, catalog)
    builder = CourseBuilder(config)
    writer = RunWriter(output_dir)
    report = ReplayReport(course)

    def on_evaluation(evaluation: Evaluation) -> None:
        writer.evaluation(evaluation, 0.0)
        report.history.append(evaluation_row(evaluation, 0.0))

    capture = Capture()
    coordinator = builder.coordinator(capture, evaluator=builder.numpy_evaluator(), on_evaluation=on_evaluation,
                                      on_aggregation=writer.aggregation, incarnation="replay")
    keys, admitted = coordinator_keys(transport, topics, builder.catalog)
    verifier = replay_verifier(admitted, keys, f"{topics.meta} manifest")
    intake = refeed(coordinator, read_topic(transport, topics.coordinator), builder.catalog, verifier,
                    on_refused=report.refused.append)
    report.intake = intake.as_dict()
    replayed = [RecordedModel(m.type, m.round, tensors_sha256(catalog, m.payload["tensors"]), "replay", m.receivers)
                for m in capture.sent if m.type in MODEL_TYPES]
    recorded = recorded_models(transport, topics, builder.catalog, report.mismatches,
                               coordinator_incarnations(transport, topics, builder.catalog), report.ignored,
                               verifier if verifier.keyring is not None else None)
    _compare(report, replayed, recorded)
    report.final_sha256 = tensors_sha256(catalog, coordinator.params)
    report.plugins = {p.label: p.summary() for p in coordinator.plugins}
    writer.summary({"course_id": course, "replayed": True, "strategy": config.strategy.name,
                    "participants": config.participants, "inbox_records": report.inbox_records,
                    "rejected": report.rejected, "undecodable": report.undecodable, "intake": report.intake,
                    "checked": report.checked, "mismatches": report.mismatches, "ignored": len(report.ignored),
                    "refused": report.refused[:REFUSED_SHOWN], "refused_count": len(report.refused),
                    "model_sha256": report.final_sha256,
                    "final_metrics": report.history[-1] if report.history else {},
                    **course_statistics(coordinator), **({"plugins": report.plugins} if report.plugins else {}),
                    **({"privacy": privacy} if (privacy := course_privacy(config, coordinator)) else {})})
    return report


def _compare(report: ReplayReport, replayed: list[RecordedModel], recorded: list[RecordedModel]) -> None:
    """Pair models by (type, round, receivers): one send of one model version to the same workers."""
    ours = {m.key: m for m in replayed}
    theirs: dict[tuple[str, int, tuple[str, ...]], RecordedModel] = {}
    for m in recorded:
        first = theirs.setdefault(m.key, m)
        if first is m:
            continue
        if first.sha256 == m.sha256:
            # A coordinator killed after sending but before committing sends again when it restarts.
            report.resent.append(m.where)
        else:
            report.mismatches.append(f"record {m.where}: a second {m.label} with another model than the first "
                                     f"({first.where})")
    for key in sorted(ours.keys() | theirs.keys(), key=lambda k: (k[1], _STEP[k[0]], k[2])):
        mine, logged = ours.get(key), theirs.get(key)
        if logged is None:
            assert mine is not None
            report.mismatches.append(f"replay sent {mine.label}, which the log does not record")
            continue
        report.checked += 1
        if mine is None:
            report.mismatches.append(f"record {logged.where}: {logged.label} is in the log, but replay never sent it")
        elif mine.sha256 != logged.sha256:
            report.mismatches.append(f"record {logged.where} ({key[0]}, round {key[1]}): recorded model sha256 "
                                     f"{logged.sha256[:16]}… but replay computed {mine.sha256[:16]}…")


_STEP = {EVALUATE: 0, MODEL_PARAMETERS: 1, FINISH: 2}
