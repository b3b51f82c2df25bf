"""Hostile input on the embedded log: no record crashes a worker, touches its state, or makes the live loop,
recovery and replay disagree (docs/architecture.md, "Untrusted input")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fscore.aggregators import FedAvg
from fscore.communicator import Communicator
from fscore.coordinator import Coordinator, CoursePlan
from fscore.courselog import refeed
from fscore.driver import pump
from fscore.events import HandlerOverwriteWarning
from fscore.intake import Outcome, RecordDecoder, take
from fscore.message import COORDINATOR, Message, MessageCatalog
from fscore.participant import Participant
from fscore.samplers import UniformSampler
from fscore.service import recover
from fscore.topics import CourseTopics
from fscore.trainers.base import NoOpTrainer
from fscore.transport import EmbeddedLog
from fscore.transport.base import Record
from tests.hostile import SKIPPED, UNDECODABLE, Forger, HypothesisDraw, RngDraw, _encode_raw, _raw_tensor

COURSE = "c"
PARAMS = {"fc.weight": np.zeros((3, 4), np.float32), "fc.bias": np.zeros(3, np.float32)}


class Course:
    """A coordinator on the embedded log, and the participants' side written by hand."""

    def __init__(self, rounds: int = 2) -> None:
        self.catalog, self.log, self.topics = MessageCatalog(), EmbeddedLog(), CourseTopics("fscope", COURSE)
        self.log.ensure_topics(self.topics.specs())
        self.comm = Communicator(self.log, self.topics, self.catalog, COORDINATOR)
        self.rounds = rounds
        self.coordinator = self.fresh()
        self.comm.subscribe(COORDINATOR)
        self._ids = 0

    def fresh(self, outbox=None) -> Coordinator:
        return Coordinator(COORDINATOR, COURSE, self.catalog, outbox or self.comm, plan=CoursePlan(2, self.rounds),
                           initial_params=PARAMS, aggregator=FedAvg(), sampler=UniformSampler(),
                           rng=np.random.default_rng(0))

    def message(self, type_name: str, sender: str, payload: dict, rnd: int = 0, ts: float = 1.0,
                receivers: tuple[str, ...] = (COORDINATOR,)) -> bytes:
        self._ids += 1
        msg = Message(type_name, receivers, rnd, payload, sender=sender, timestamp=ts, id=f"{sender}/i/{self._ids}",
                      course=COURSE)
        return self.comm.encode(msg)

    def join(self, name: str) -> bytes:
        return self.message("join_in", name, {"address": name, "num_train_samples": 10, "num_test_samples": 5,
                                              "backend": "torch", "layout": [
                                                  {"name": k, "shape": list(v.shape), "dtype": "float32"}
                                                  for k, v in PARAMS.items()]}, ts=0.0)

    def update(self, name: str, value: float, rnd: int, **kw) -> bytes:
        tensors = {k: np.full_like(v, value) for k, v in PARAMS.items()}
        return self.message("model_update", name, {"num_samples": 10, "base_round": rnd, "train_metrics": {},
                                                   "tensors": tensors}, rnd=rnd, ts=1.0 + 2 * rnd, **kw)

    def metrics(self, name: str, rnd: int) -> bytes:
        return self.message("metrics", name, {"split": "test", "num_samples": 5, "values": {"accuracy": 0.5}},
                            rnd=rnd, ts=2.0 * rnd)

    def publish(self, *values: bytes) -> None:
        for v in values:
            self.log.publish(self.topics.coordinator, v, key=b"k")

    def inbox(self) -> list[Record]:
        return list(self.log.read(self.topics.coordinator))


def state_of(c: Coordinator) -> tuple:
    s = c.state
    return (s.phase, s.round, len(s.buffer.updates), c.now, tuple(sorted(s.requests.busy)), len(s.evaluation.replies),
            {k: v.tobytes() for k, v in c.params.items()})


# -- the seven poison records of the issue ------------------------------------------------


def test_the_records_that_crashed_the_coordinator_are_dead_lettered_with_a_reason_and_it_goes_on():
    course = Course()
    course.publish(course.join("p0"), course.join("p1"))
    pump(course.coordinator, course.comm)
    template = course.update("p0", 1.0, 0)
    forger = Forger(course.catalog.codec, COURSE, [template], (COORDINATOR,))
    header = course.catalog.codec.decode_header(template)[0]
    poison = {
        "huge zero-size shape": forger._forge(template, tensors=[_raw_tensor("fc.weight", "float32",
                                                                             [0, 2**40, 2**40], b"")]),
        "70 dimensions": forger._forge(template, tensors=[_raw_tensor("fc.weight", "float32", [1] * 70, bytes(4))]),
        "huge layout": forger._join(RngDraw(0), [{"name": "fc.weight", "shape": [2**40, 2**40],
                                                  "dtype": "float32"}]),
        "unknown dtype": forger._join(RngDraw(1), [{"name": "fc.weight", "shape": [3, 4], "dtype": "nosuch"}]),
    }
    course.publish(*poison.values())
    pump(course.coordinator, course.comm)
    dlq = list(course.log.read(course.topics.dlq))
    reasons = [r.header("fscope.reason").decode() for r in dlq]
    assert len(dlq) == 4 and [r.value for r in dlq] == list(poison.values())
    assert "would need" in reasons[0] and "2 GiB" not in reasons[0]
    assert "70 dimensions; at most 8" in reasons[1]
    assert "malformed layout" in reasons[2] and "would need" in reasons[2]
    assert "'nosuch', which is not a wire dtype" in reasons[3]
    assert course.comm.intake[Outcome.UNDECODABLE] == 2 and course.comm.intake[Outcome.REJECTED] == 2
    # ...and the course goes on: the real update is taken
    course.publish(template, course.update("p1", 3.0, 0))
    pump(course.coordinator, course.comm)
    assert course.coordinator.state.round == 1 and header.sender == "p0"
    assert course.coordinator.params["fc.bias"].tolist() == [2.0] * 3


def participant_inbox():
    catalog, log, topics = MessageCatalog(), EmbeddedLog(), CourseTopics("fscope", COURSE)
    log.ensure_topics(topics.specs())
    comm = Communicator(log, topics, catalog, "p0")
    trainer = NoOpTrainer()
    trainer.set_parameters(PARAMS)
    p = Participant("p0", COURSE, catalog, comm, trainer=trainer, data=_Data())
    comm.subscribe("participant")
    coordinator = Communicator(log, topics, catalog, COORDINATOR)
    return p, comm, coordinator, log, topics


class _Data:
    train = test = tuple(range(10))


def test_the_records_that_crashed_a_participant_are_dead_lettered_and_it_still_trains():
    p, comm, coordinator, log, topics = participant_inbox()
    codec = coordinator.catalog.codec

    ids = iter(range(100, 200))

    def model(type_name: str, tensors, **payload) -> bytes:
        return _encode_raw(codec, _header(type_name, next(ids)), {"tensors": tensors, **payload})

    wrong_shape = coordinator.encode(Message("model_parameters", ("p0",), 0, {"tensors": {
        "fc.weight": np.zeros((4, 3), np.float32), "fc.bias": np.zeros(3, np.float32)}}, sender=COORDINATOR,
        id="coordinator/x/1", course=COURSE))
    finish_empty = model("finish", [], reason="forged")
    many_dims = model("model_parameters", [_raw_tensor("fc.weight", "float32", [1] * 70, bytes(4))])
    for value in (wrong_shape, finish_empty, many_dims):
        log.publish(topics.direct, value, key=b"p0")
    pump(p, comm)
    reasons = [r.header("fscope.reason").decode() for r in log.read(topics.dlq)]
    assert len(reasons) == 3
    assert "does not fit p0's model" in reasons[0] and "shape (4, 3)" in reasons[0]
    assert "finish" in reasons[1] and "missing parameter `fc.weight`" in reasons[1]
    assert "70 dimensions" in reasons[2]
    assert not p.finished and p.rounds_trained == 0
    coordinator.send(Message("model_parameters", ("p0",), 0, {"tensors": PARAMS}, sender=COORDINATOR,
                             id="coordinator/x/2", course=COURSE))
    pump(p, comm)
    assert p.rounds_trained == 1


def _header(type_name: str, n: int):
    from fstranslation import Header

    return Header(f"coordinator/forged/{n}", COURSE, type_name, COORDINATOR, ("p0",), 0, 0.0)


# -- content validation ------------------------------------------------------------------


@pytest.mark.parametrize(("change", "reason"), [
    (lambda c: c.update("p0", math.nan, 0), "non-finite values"),
    (lambda c: c.update("p0", math.inf, 0), "non-finite values"),
    (lambda c: c.message("model_update", "p0", {"num_samples": 2**40, "base_round": 0, "train_metrics": {},
                                                "tensors": PARAMS}),
     "claims num_samples 1099511627776; it declared 10"),
    (lambda c: c.message("model_update", "p0", {"num_samples": 10, "base_round": 0, "train_metrics": {},
                                                "tensors": PARAMS}, ts=-1.0), "before the model it answers was sent"),
    (lambda c: c.message("model_update", "p0", {"num_samples": 10, "base_round": 0, "train_metrics": {},
                                                "tensors": PARAMS}, ts=math.inf), "not a finite time"),
    (lambda c: c.message("model_update", "p0", {"num_samples": 10, "base_round": 0,
                                                "train_metrics": {"loss": math.nan}, "tensors": PARAMS}),
     "metric 'loss' is nan"),
])
def test_content_that_would_poison_the_model_or_the_clock_is_refused_and_touches_nothing(change, reason):
    course = Course()
    course.publish(course.join("p0"), course.join("p1"))
    pump(course.coordinator, course.comm)
    before = state_of(course.coordinator)
    course.publish(change(course))
    pump(course.coordinator, course.comm)
    (dead,) = course.log.read(course.topics.dlq)
    assert reason in dead.header("fscope.reason").decode()
    assert state_of(course.coordinator) == before


def test_an_envelope_of_another_course_is_refused():
    course = Course()
    msg = Message("join_in", (COORDINATOR,), 0, {"address": "p0", "num_train_samples": 1, "num_test_samples": 1,
                                                 "backend": "torch"}, sender="p0", id="p0/1", course="other")
    course.publish(course.comm.encode(msg))
    pump(course.coordinator, course.comm)
    (dead,) = course.log.read(course.topics.dlq)
    assert "is for course 'other', not 'c'" in dead.header("fscope.reason").decode()
    assert not course.coordinator.state.membership.participants


def test_a_rejected_message_does_not_take_its_id_from_the_real_one():
    course = Course()
    course.publish(course.join("p0"), course.join("p1"))
    pump(course.coordinator, course.comm)
    real = course.update("p0", 1.0, 0)
    header, payload = course.catalog.codec.decode(real)
    payload = dict(payload, tensors={k: np.full_like(v, np.nan) for k, v in PARAMS.items()})
    forged = course.catalog.codec.encode(header, payload)  # the same id, ahead of the real one
    course.publish(forged, real)
    pump(course.coordinator, course.comm)
    assert course.comm.intake[Outcome.REJECTED] == 1 and course.comm.intake[Outcome.HANDLED] == 3


# -- poison records: any exception is the record's, not the worker's -----------------------


def test_a_handler_that_raises_dead_letters_its_record_with_the_traceback_and_replay_agrees():
    course = Course()

    def explode(worker, msg):
        raise ZeroDivisionError("the user's bug")

    with pytest.warns(HandlerOverwriteWarning):
        course.coordinator.register(_event("message:metrics"), lambda m: explode(course.coordinator, m))
    course.publish(course.join("p0"), course.join("p1"), course.metrics("p0", 0), course.update("p0", 1.0, 0))
    pump(course.coordinator, course.comm)
    (dead,) = course.log.read(course.topics.dlq)
    reason = dead.header("fscope.reason").decode()
    assert reason.startswith("ZeroDivisionError while handling metrics from 'p0'") and "Traceback" in reason
    assert course.comm.intake[Outcome.POISON] == 1 and course.comm.intake[Outcome.HANDLED] == 3
    replayed = course.fresh(outbox=_Drop())
    with pytest.warns(HandlerOverwriteWarning):
        replayed.register(_event("message:metrics"), lambda m: explode(replayed, m))
    counts = refeed(replayed, course.inbox(), course.catalog)
    assert counts == course.comm.intake and state_of(replayed)[1:] == state_of(course.coordinator)[1:]


def _event(text: str):
    from fscore.events import Event

    return Event.parse(text)


class _Drop:
    def send(self, message: Message) -> int:
        return 0


# -- one path for live, recovery and replay --------------------------------------------------


def test_live_recovery_and_replay_decide_alike_on_a_hostile_inbox_and_end_with_the_same_model():
    course = Course(rounds=2)
    joins = [course.join("p0"), course.join("p1")]
    # A valid update from p0 addressed to someone else: the live loop skips it, so recovery and replay must too.
    stray = course.update("p0", 100.0, 0, receivers=("participant-00009",))
    round0 = [course.update("p0", 1.0, 0), course.update("p1", 3.0, 0)]
    evals = [course.metrics("p0", 1), course.metrics("p1", 1)]
    round1 = [course.update("p0", 5.0, 1), course.update("p1", 7.0, 1)]
    draw = RngDraw(7)

    def hostile(*published: bytes) -> list[bytes]:  # made from what is on the log already, as an attacker would
        forger = Forger(course.catalog.codec, COURSE, list(published), (COORDINATOR,))
        return [forger.record(draw)[1] for _ in range(150)]

    course.publish(*joins, stray)
    course.publish(*hostile(*joins))
    pump(course.coordinator, course.comm)
    course.publish(*round0)
    course.publish(*hostile(*joins, *round0))
    pump(course.coordinator, course.comm)
    course.publish(*evals, *hostile(*round0, *evals), *round1, course.metrics("p0", 2), course.metrics("p1", 2))
    course.publish(*hostile(*round1, *evals))
    pump(course.coordinator, course.comm)
    live = course.coordinator
    assert live.finished and live.state.round == 2
    assert live.params["fc.bias"].tolist() == [6.0] * 3  # (1+3)/2 -> (5+7)/2: nothing hostile counted
    assert course.comm.intake[Outcome.NOT_ADDRESSED] >= 1 and course.comm.intake[Outcome.POISON] == 0
    assert course.comm.intake.total() == len(course.inbox())

    recovered = course.fresh(outbox=_Drop())
    assert recover(recovered, course.log, course.topics, course.catalog) == len(course.inbox())
    replayed = course.fresh(outbox=_Drop())
    counts = refeed(replayed, course.inbox(), course.catalog)
    assert counts == course.comm.intake
    for other in (recovered, replayed):
        assert state_of(other) == state_of(live)
        assert [e.metrics for e in other.state.history] == [e.metrics for e in live.state.history]
        assert other._seen.ids() == live._seen.ids()


# -- hypothesis: whatever the record, the worker's state is untouched ------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_hostile_record_escapes_its_outcome_or_changes_the_models(data):
    course = Course()
    joins = [course.join("p0"), course.join("p1")]
    first = course.update("p0", 1.0, 0)
    course.publish(*joins, first)
    pump(course.coordinator, course.comm)
    before = state_of(course.coordinator)
    forger = Forger(course.catalog.codec, COURSE, [*joins, first], (COORDINATOR,))
    kind, value = forger.record(HypothesisDraw(data))
    record = Record(course.topics.coordinator, 0, 99, b"k", value)
    decision = take(course.coordinator, record, RecordDecoder(course.catalog.codec, COORDINATOR))
    assert decision.outcome is not Outcome.POISON, decision.reason
    if kind in UNDECODABLE:
        assert decision.outcome is Outcome.UNDECODABLE
    if kind in SKIPPED:
        assert decision.outcome is Outcome.NOT_ADDRESSED
    after = state_of(course.coordinator)
    assert after[1:] == before[1:], (kind, decision)  # round, buffer, clock, who is busy, the model
