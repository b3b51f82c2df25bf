import numpy as np
import pytest

from fscore.aggregators import FedAvg
from fscore.coordinator import Coordinator, CoursePlan
from fscore.errors import RejectedMessage
from fscore.message import Message, MessageCatalog
from fscore.samplers import UniformSampler

from .helpers import ListOutbox

PARAMS = {"fc.weight": np.zeros((10, 64), np.float32), "fc.bias": np.zeros(10, np.float32)}


def coordinator(n=2, rounds=1):
    outbox = ListOutbox()
    c = Coordinator("coordinator", "c", MessageCatalog(), outbox, plan=CoursePlan(n, rounds), initial_params=PARAMS,
                    aggregator=FedAvg(), sampler=UniformSampler(), rng=np.random.default_rng(0))
    return c, outbox


_ids = iter(range(10**6))


def msg(type_name, sender, payload, rnd=0, ts=1.0):
    return Message(type_name, ("coordinator",), rnd, payload, sender=sender, timestamp=ts, id=f"{sender}/{next(_ids)}",
                   course="c")


def join(c, *names):
    for name in names:
        c.handle(msg("join_in", name, {"address": name, "num_train_samples": 5, "num_test_samples": 5,
                                        "backend": "torch"}))


def update(sender, tensors, n=5, rnd=0, ts=1.0):
    return msg("model_update", sender, {"num_samples": n, "base_round": rnd, "train_metrics": {}, "tensors": tensors},
               rnd, ts)


def test_all_joined_in_starts_the_first_round():
    c, outbox = coordinator()
    join(c, "a")
    assert not outbox.of_type("model_parameters")
    join(c, "b")
    (broadcast,) = outbox.of_type("model_parameters")
    assert broadcast.receivers == ("a", "b") and c.state.phase == "training"


def test_update_with_wrong_tensor_shape_is_rejected_naming_tensor_and_shapes():
    c, _ = coordinator()
    join(c, "a", "b")
    bad = {"fc.weight": np.zeros((64, 10), np.float32), "fc.bias": np.zeros(10, np.float32)}
    with pytest.raises(RejectedMessage, match=r"participant a sent tensor `fc.weight` with shape \(64, 10\); "
                                              r"the course expects \(10, 64\)"):
        c.handle(update("a", bad))
    assert c.state.buffer.updates == []
    c.handle(update("a", PARAMS))  # the participant can still send a good update
    assert [u.sender for u in c.state.buffer.updates] == ["a"]


def test_unknown_sender_and_wrong_round_are_rejected_and_state_survives():
    c, _ = coordinator()
    join(c, "a", "b")
    c.handle(update("a", PARAMS))
    with pytest.raises(RejectedMessage, match="unknown sender 'mallory'"):
        c.handle(update("mallory", PARAMS))
    with pytest.raises(RejectedMessage, match="is for round 7, but it was sent the model of round 0"):
        c.handle(update("b", PARAMS, rnd=7))
    with pytest.raises(RejectedMessage, match="second model_update from 'a'"):
        c.handle(update("a", PARAMS))
    assert [u.sender for u in c.state.buffer.updates] == ["a"]


def test_round_aggregates_then_evaluates_then_finishes():
    c, outbox = coordinator(rounds=1)
    join(c, "a", "b")
    ones = {k: np.ones_like(v) for k, v in PARAMS.items()}
    c.handle(update("a", ones, n=1))
    c.handle(update("b", PARAMS, n=3))
    assert c.params["fc.bias"].tolist() == [0.25] * 10
    assert outbox.of_type("evaluate") and c.state.phase == "evaluating"
    for name, acc in (("a", 1.0), ("b", 0.0)):
        c.handle(Message("metrics", ("coordinator",), 1, {"split": "test", "num_samples": 1 if name == "a" else 3,
                                                          "values": {"accuracy": acc}}, sender=name, id=f"{name}/t/m",
                         timestamp=1.0, course="c"))
    assert c.state.history[-1].metrics == {"clients.accuracy": 0.25}
    assert c.finished and c.state.finish_reason == "max_rounds_reached"
    assert outbox.of_type("finish")[0].receivers == ("a", "b")


def test_early_stopping_finishes_before_max_rounds():
    c, _ = coordinator(n=1, rounds=50)
    c.plan = CoursePlan(1, 50, patience=2)
    join(c, "a")
    for r in range(3):
        c.handle(update("a", PARAMS, rnd=r))
        c.handle(Message("metrics", ("coordinator",), r + 1, {"split": "test", "num_samples": 1,
                                                              "values": {"accuracy": 0.5}}, sender="a", id=f"a/t/{r}",
                         timestamp=1.0, course="c"))
    assert c.finished and c.state.finish_reason == "early_stopped" and c.state.round == 3


def join_with_layout(c, name, layout):
    c.handle(msg("join_in", name, {"address": name, "num_train_samples": 5, "num_test_samples": 5, "backend": "keras",
                                    "layout": layout}))


def test_a_participant_whose_model_does_not_fit_is_refused_and_the_course_goes_on_without_it():
    c, outbox = coordinator(n=3)
    join(c, "a")
    join_with_layout(c, "tf", [{"name": "fc.weight", "shape": [64, 10], "dtype": "float32"},
                               {"name": "fc.bias", "shape": [10], "dtype": "float32"}])
    (refusal,) = outbox.of_type("refuse")
    assert refusal.receivers == ("tf",)
    assert refusal.payload["reason"] == ("refused: tf (keras) does not match the agreed layout: parameter `fc.weight` "
                                         "has shape (64, 10); the agreed layout says (10, 64)")
    assert not outbox.of_type("model_parameters")
    join_with_layout(c, "b", [{"name": k, "shape": list(v.shape), "dtype": "float32"} for k, v in PARAMS.items()])
    (broadcast,) = outbox.of_type("model_parameters")  # two joined and one refused: the course starts
    assert broadcast.receivers == ("a", "b") and set(c.state.membership.refused) == {"tf"}
    with pytest.raises(RejectedMessage, match="model_update from unknown sender 'tf'"):
        c.handle(update("tf", PARAMS))


def deadline_coordinator(n, rounds=3, min_participants=1):
    c, outbox = coordinator(n=n, rounds=rounds)
    c.plan = CoursePlan(n, rounds, join_timeout_s=30.0, min_participants=min_participants)
    c.start()
    return c, outbox


def ring(c, outbox):
    (alarm,) = [m for m in outbox.of_type("alarm") if m.payload["budget"] == 0]
    assert alarm.receivers == ("coordinator",) and alarm.timestamp == 30.0  # stamped with the virtual deadline
    c.handle(alarm)


def test_at_the_join_deadline_the_course_starts_with_whoever_joined_and_admits_latecomers():
    c, outbox = deadline_coordinator(n=4)
    join(c, "a", "b")
    assert not outbox.of_type("model_parameters")
    ring(c, outbox)
    (first,) = outbox.of_type("model_parameters")
    assert first.receivers == ("a", "b") and c.state.phase == "training"
    join(c, "c")  # late: admitted, and in the next round's cohort
    assert outbox.of_type("assign_id")[-1].receivers == ("c",)
    c.handle(update("a", PARAMS, ts=30.0))  # the deadline rang at virtual 30 s: replies are stamped later
    c.handle(update("b", PARAMS, ts=30.0))
    (evaluate,) = outbox.of_type("evaluate")
    assert evaluate.receivers == ("a", "b", "c")
    join(c, "d")  # joins while the others evaluate: not awaited for this evaluation
    for name in ("a", "b", "c"):
        c.handle(Message("metrics", ("coordinator",), 1, {"split": "test", "num_samples": 1,
                                                          "values": {"accuracy": 0.5}}, sender=name, id=f"{name}/t/m",
                         timestamp=30.0, course="c"))
    assert outbox.of_type("model_parameters")[-1].receivers == ("a", "b", "c", "d")


def test_the_deadline_waits_for_min_participants_and_is_ignored_once_everyone_joined():
    c, outbox = deadline_coordinator(n=3, min_participants=2)
    join(c, "a")
    ring(c, outbox)
    assert c.state.phase == "joining" and c.state.membership.join_closed
    join(c, "b")
    assert outbox.of_type("model_parameters")[0].receivers == ("a", "b")
    c2, outbox2 = deadline_coordinator(n=2)
    join(c2, "a", "b")
    ring(c2, outbox2)  # late: the course started at the second join already
    assert len(outbox2.of_type("model_parameters")) == 1 and not c2.state.membership.join_closed


def test_a_deployed_coordinator_rings_the_join_deadline_on_the_wall_clock():
    from fscore.service import WallAlarm

    c, outbox = coordinator(n=3)
    c.plan = CoursePlan(3, 1, join_timeout_s=5.0)
    c.clock = "wall"
    now = [100.0]
    alarm = WallAlarm(c, clock=lambda: now[0])
    c.start()
    join(c, "a")
    alarm()
    assert not outbox.of_type("alarm")
    now[0] = 105.0
    alarm()
    alarm()  # once
    (ring_,) = outbox.of_type("alarm")
    c.handle(ring_)
    assert outbox.of_type("model_parameters")[0].receivers == ("a",)
