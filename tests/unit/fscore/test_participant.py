"""The participant's check of a received model (names, shapes, dtypes, finite values): a broadcast decoded once
for the participants of a process is checked once per layout, the verdict kept with the decoded record; a
message built in Python is checked every time."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import fscore.participant
from fscore.communicator import Communicator
from fscore.driver import pump
from fscore.errors import RejectedMessage
from fscore.intake import DecodeCache
from fscore.message import COORDINATOR, Message, MessageCatalog
from fscore.participant import Participant
from fscore.topics import CourseTopics
from fscore.trainers.base import NoOpTrainer
from fscore.transport import EmbeddedLog
from fstranslation.layout import TensorSpec
from tests.unit.fscore.helpers import ListOutbox

COURSE = "c"
PARAMS = {"fc.weight": np.ones((3, 4), np.float32), "fc.bias": np.ones(3, np.float32)}
OTHER = {"fc.weight": TensorSpec((4, 3)), "fc.bias": TensorSpec((3,))}


class _Data:
    train = test = tuple(range(10))


def _participant(address: str, catalog: MessageCatalog, outbox, layout=None) -> Participant:
    trainer = NoOpTrainer()
    trainer.set_parameters(PARAMS)
    return Participant(address, COURSE, catalog, outbox, trainer=trainer, data=_Data(), layout=layout)


class _Course:
    """A coordinator's communicator and participants on one embedded log, sharing ``cache`` as a simulation does."""

    def __init__(self, cache: DecodeCache, layouts: list) -> None:
        self.catalog, self.log, self.topics = MessageCatalog(), EmbeddedLog(), CourseTopics("fscope", COURSE)
        self.log.ensure_topics(self.topics.specs())
        self.coordinator = Communicator(self.log, self.topics, self.catalog, COORDINATOR)
        self.parts = []
        for i, layout in enumerate(layouts):
            comm = Communicator(self.log, self.topics, self.catalog, f"p{i}", cache=cache)
            comm.subscribe("participant")
            self.parts.append((_participant(f"p{i}", self.catalog, comm, layout), comm))

    def broadcast(self, tensors) -> None:
        receivers = tuple(p.address for p, _ in self.parts)
        self.coordinator.send(Message("model_parameters", receivers, 0, {"tensors": tensors}, sender=COORDINATOR,
                                      id="coordinator/x/1", course=COURSE))
        for p, comm in self.parts:
            pump(p, comm)


@pytest.fixture
def checks(monkeypatch) -> list[str]:
    """The participants that checked a model's values."""
    seen: list[str] = []
    check = fscore.participant.check_finite

    def counted(what, tensors, values=None):
        seen.append(what)
        check(what, tensors, values)

    monkeypatch.setattr(fscore.participant, "check_finite", counted)
    return seen


def test_a_broadcast_decoded_once_is_checked_once_per_layout(checks):
    course = _Course(DecodeCache(), [None, OTHER, None, None])
    course.broadcast(PARAMS)
    assert [p.rounds_trained for p, _ in course.parts] == [1, 0, 1, 1]
    (dead,) = course.log.read(course.topics.dlq)
    assert "does not fit p1's model" in dead.header("fscope.reason").decode()
    assert len(checks) == 1  # p0 checked for p2 and p3; p1's layout was checked on its own, and failed


def test_a_verdict_is_per_decoded_record_and_never_outlives_it(checks):
    first = _Course(DecodeCache(), [None, None])
    first.broadcast(PARAMS)
    received = weakref.ref(first.parts[0][0].trainer.get_parameters()["fc.weight"])
    assert len(checks) == 1
    del first
    gc.collect()
    assert received() is None  # nothing of the first course (no class-level slot) keeps its decoded model
    second = _Course(DecodeCache(), [None, None])  # a second course in the process checks its own broadcast
    second.broadcast(PARAMS)
    assert len(checks) == 2
    assert [p.rounds_trained for p, _ in second.parts] == [1, 1]


def test_a_model_built_in_python_is_checked_every_time(checks):
    p = _participant("p0", MessageCatalog(), ListOutbox())
    tensors = {k: v.copy() for k, v in PARAMS.items()}
    for frozen in tensors.values():
        frozen.flags.writeable = False  # read-only, yet not decoded from a record: still checked every time

    def model(n: int) -> Message:
        return Message("model_parameters", ("p0",), 0, {"tensors": tensors}, sender=COORDINATOR,
                       id=f"coordinator/x/{n}", course=COURSE)

    p.handle(model(1))
    p.handle(model(2))
    assert len(checks) == 2
    tensors["fc.bias"] = np.array([1.0, np.nan, 1.0], np.float32)
    with pytest.raises(RejectedMessage, match=r"tensor `fc\.bias` has 1 non-finite values"):
        p.handle(model(3))
    assert p.rounds_trained == 2
