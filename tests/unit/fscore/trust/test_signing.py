"""Signed records on the embedded log: impersonation, forged alarms, id squatting, other courses, replayed
copies and flipped signatures are each dead-lettered with the reason, and none changes the model."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.aggregators import FedAvg
from fscore.communicator import Communicator
from fscore.coordinator import Coordinator, CoursePlan
from fscore.coordinator.alarms import AlarmKind, alarm_payload
from fscore.courselog import refeed
from fscore.driver import pump
from fscore.intake import Outcome
from fscore.message import ALARM, COORDINATOR, Message, MessageCatalog
from fscore.samplers import UniformSampler
from fscore.topics import CourseTopics
from fscore.transport import EmbeddedLog
from fscore.trust import SIGNATURE_HEADER, KeyRing, Signer, Verifier, derived_key
from fscore.trust.keys import fingerprint

COURSE = "c"
PARAMS = {"fc.weight": np.zeros((3, 4), np.float32), "fc.bias": np.zeros(3, np.float32)}
KEYS = {a: derived_key(1, a) for a in (COORDINATOR, "p0", "p1")}
ATTACKER = derived_key(1, "attacker")


class SignedCourse:
    """A signing coordinator on the embedded log; the participants' records are written by hand."""

    def __init__(self, signing: bool = True) -> None:
        self.catalog, self.log, self.topics = MessageCatalog(), EmbeddedLog(), CourseTopics("fscope", COURSE)
        self.log.ensure_topics(self.topics.specs())
        self.ring = KeyRing.of_private(KEYS) if signing else None
        self.comm = Communicator(self.log, self.topics, self.catalog, COORDINATOR, signer=Signer(KEYS[COORDINATOR]),
                                 verifier=self.verifier())
        self.coordinator = self.fresh(self.comm)
        self.comm.subscribe(COORDINATOR)
        self.counters: dict[str, int] = {}

    def verifier(self) -> Verifier:
        return Verifier(self.ring, {"live": KEYS[COORDINATOR].public_key()})

    def fresh(self, outbox) -> Coordinator:
        return Coordinator(COORDINATOR, COURSE, self.catalog, outbox, plan=CoursePlan(2, 2, join_timeout_s=30.0),
                           initial_params=PARAMS, aggregator=FedAvg(), sampler=UniformSampler(),
                           rng=np.random.default_rng(0), incarnation="live")

    def next_id(self, sender: str) -> str:
        self.counters[sender] = self.counters.get(sender, 0) + 1
        return f"{sender}/0/{self.counters[sender]}"

    def record(self, type_name: str, sender: str, payload: dict, rnd: int = 0, *, key=None, msg_id: str | None = None,
               course: str = COURSE, ts: float = 1.0) -> tuple[bytes, tuple]:
        msg = Message(type_name, (COORDINATOR,), rnd, payload, sender=sender, timestamp=ts,
                      id=msg_id or self.next_id(sender), course=course)
        value = self.comm.encode(msg)
        signer = KEYS.get(sender) if key is None else key
        return value, (Signer(signer).headers(value) if signer is not False and signer is not None else ())

    def join(self, name: str, **kw) -> tuple[bytes, tuple]:
        return self.record("join_in", name, {"address": name, "num_train_samples": 10, "num_test_samples": 5,
                                             "backend": "torch", "layout": []}, ts=0.0, **kw)

    def update(self, name: str, value: float, rnd: int, **kw) -> tuple[bytes, tuple]:
        tensors = {k: np.full_like(v, value) for k, v in PARAMS.items()}
        return self.record("model_update", name, {"num_samples": 10, "base_round": rnd, "train_metrics": {},
                                                  "tensors": tensors}, rnd=rnd, ts=10.0 * rnd + 1, **kw)

    def metrics(self, name: str, rnd: int, **kw) -> tuple[bytes, tuple]:
        return self.record("metrics", name, {"split": "test", "num_samples": 5, "values": {"accuracy": 0.5}},
                           rnd=rnd, ts=10.0 * rnd - 5, **kw)

    def alarm(self, kind: AlarmKind, number: int, **kw) -> tuple[bytes, tuple]:
        return self.record(ALARM, COORDINATOR, alarm_payload(kind, number, 0.0), msg_id=kw.pop("msg_id", None)
                           or f"{COORDINATOR}/live/99{number}", **kw)

    def publish(self, *records: tuple[bytes, tuple]) -> None:
        for value, headers in records:
            self.log.publish(self.topics.coordinator, value, key=b"k", headers=headers)

    def pump(self) -> None:
        pump(self.coordinator, self.comm)

    def reasons(self) -> list[str]:
        return [r.header("fscope.reason").decode() for r in self.log.read(self.topics.dlq)]


def _flip(record: tuple[bytes, tuple]) -> tuple[bytes, tuple]:
    value, headers = record
    sig = dict(headers)[SIGNATURE_HEADER]
    return value, tuple((k, bytes([sig[0] ^ 1]) + sig[1:] if k == SIGNATURE_HEADER else v) for k, v in headers)


def _course(attack: bool) -> SignedCourse:
    c = SignedCourse()
    if attack:  # before anyone joined: a forged join deadline (it would start the course with one participant)
        c.publish(c.alarm(AlarmKind.JOIN, 0, key=ATTACKER), c.alarm(AlarmKind.JOIN, 0, key=False),
                  c.join("intruder", key=ATTACKER), c.join("p1", key=ATTACKER))
        c.pump()
        # squat p0's next id with a record that is refused (unsigned), then one signed by an outsider
        squat = f"p0/0/{c.counters.get('p0', 0) + 1}"
        c.publish(c.join("p0", key=False, msg_id=squat), c.join("p0", key=ATTACKER, msg_id=squat))
    c.publish(c.join("p0"), c.join("p1"))
    c.pump()
    assert c.coordinator.state.phase == "training"
    if attack:
        c.publish(c.update("p0", 100.0, 0, key=False),            # claims p0, unsigned
                  c.update("p0", 100.0, 0, key=KEYS["p1"]),       # signed by p1, claims p0
                  c.update("p0", 100.0, 0, key=ATTACKER),         # an outsider's key
                  c.update("p0", 100.0, 0, course="other"),       # p0's own signature, another course
                  _flip(c.update("p0", 100.0, 0)),                # flipped signature bytes
                  c.alarm(AlarmKind.REPLY, 1, key=ATTACKER))      # a forged reply deadline
        c.pump()
    first = c.update("p0", 1.0, 0)
    c.publish(first, c.update("p1", 3.0, 0))
    c.pump()
    if attack:
        c.publish(first)  # p0's signed round-0 update again, later in the log
    c.publish(c.metrics("p0", 1), c.metrics("p1", 1), c.update("p0", 5.0, 1), c.update("p1", 7.0, 1),
              c.metrics("p0", 2), c.metrics("p1", 2))
    c.pump()
    return c


def test_every_impersonation_is_dead_lettered_with_its_reason_and_none_changes_the_model():
    clean, attacked = _course(attack=False), _course(attack=True)
    assert attacked.coordinator.finished and attacked.coordinator.state.round == 2
    assert attacked.coordinator.params["fc.bias"].tolist() == clean.coordinator.params["fc.bias"].tolist() == [6.0] * 3
    assert [e.aggregated for e in attacked.coordinator.state.history] == [("p0", "p1")] * 2
    intake = attacked.comm.intake
    assert intake[Outcome.UNAUTHENTICATED] == 11 and intake[Outcome.REPLAYED] == 1 and intake[Outcome.REJECTED] == 1
    assert clean.reasons() == []
    reasons = attacked.reasons()
    assert len(reasons) == 13
    expected = [
        "alarm from 'coordinator' (id coordinator/live/990): its signature does not verify",
        "alarm from 'coordinator' (id coordinator/live/990) is unsigned",
        "join_in from 'intruder' (id intruder/0/1): 'intruder' is not admitted to this course",
        "join_in from 'p1' (id p1/0/1): its signature does not verify under 'p1''s key",
        "join_in from 'p0' (id p0/0/1) is unsigned",
        "join_in from 'p0' (id p0/0/1): its signature does not verify",
        "model_update from 'p0' (id p0/0/2) is unsigned",
        "model_update from 'p0' (id p0/0/3) is signed with the key admitted for 'p1'",
        "model_update from 'p0' (id p0/0/4): its signature does not verify",
        "model_update from 'p0' (id p0/0/5) is for course 'other', not 'c'",
        "model_update from 'p0' (id p0/0/6): its signature does not verify",
        "alarm from 'coordinator' (id coordinator/live/991): its signature does not verify",
    ]
    for want, got in zip(expected, reasons, strict=False):
        assert want in got, (want, got)
    assert "model_update from 'p0' (id p0/0/7) is a copy of a message already handled (read from " in reasons[-1]


def test_recovery_and_replay_decide_alike_with_the_same_verifier():
    live = _course(attack=True)
    records = list(live.log.read(live.topics.coordinator))

    class Drop:
        def send(self, message):
            return 0

    again = live.fresh(Drop())
    counts = refeed(again, records, live.catalog, live.verifier())
    assert counts == live.comm.intake
    assert again.params["fc.bias"].tolist() == live.coordinator.params["fc.bias"].tolist()


def test_a_participants_alarm_and_an_alarm_of_an_unknown_incarnation_are_not_the_coordinators():
    c = SignedCourse(signing=False)
    c.publish(c.record(ALARM, "p0", alarm_payload(AlarmKind.JOIN, 0, 0.0)),
              c.alarm(AlarmKind.JOIN, 0, key=KEYS[COORDINATOR], msg_id="coordinator/elsewhere/1"))
    c.pump()
    reasons = c.reasons()
    assert "only the coordinator's own alarms count" in reasons[0]
    assert "no incarnation of the coordinator has that id" in reasons[1]
    # the coordinator's own alarm verifies: the join deadline closes joining
    c.publish(c.alarm(AlarmKind.JOIN, 0, key=KEYS[COORDINATOR]))
    c.pump()
    assert c.coordinator.state.membership.join_closed


@pytest.mark.parametrize("signing", [True, False])
def test_an_unsigned_course_still_refuses_alarms_no_timer_of_the_course_could_ring(signing):
    c = SignedCourse(signing=signing)
    c.publish(c.alarm(AlarmKind.REPLY, 1, key=KEYS[COORDINATOR]), c.alarm(AlarmKind.TIME_UP, 1, key=KEYS[COORDINATOR]))
    c.pump()
    assert "the course sets no reply deadline" in c.reasons()[0]
    assert "a time_up alarm for budget 1" in c.reasons()[1]


def test_the_signer_header_names_the_key_and_a_tampered_value_fails():
    signer = Signer(KEYS["p0"])
    value = b"\xc3\x01" + b"x" * 40
    headers = dict(signer.headers(value))
    assert headers["fscope.signer"].decode() == fingerprint(KEYS["p0"].public_key())
    assert len(headers[SIGNATURE_HEADER]) == 64
    assert KeyRing.of_private(KEYS).owner(fingerprint(KEYS["p1"].public_key())) == "p1"


def test_alarms_of_an_incarnation_recorded_before_alarms_were_signed_are_taken_unsigned():
    c = SignedCourse(signing=False)
    c.comm.decode.verifier.alarm_keys["old"] = None  # a version-1 coordinator_started record: no key
    c.publish(c.alarm(AlarmKind.JOIN, 0, key=False, msg_id="coordinator/old/1"))
    c.pump()
    assert c.reasons() == [] and c.coordinator.state.membership.join_closed
