"""The paper's sync and async strategies as coordinator behaviour: triggers, broadcast manners, staleness."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fscore.aggregators import ClientUpdate, FedAvg
from fscore.config import StrategyConfig, config_from_dict
from fscore.coordinator import Coordinator, CoursePlan
from fscore.course import CourseBuilder
from fscore.errors import ConfigError, RejectedMessage
from fscore.message import Message, MessageCatalog
from fscore.samplers import make_sampler
from fscore.strategy import Strategy

from .helpers import ListOutbox

PARAMS = {"w": np.zeros(3, np.float32)}
_ids = iter(range(10**6))


def unjoined(n: int, sample_size: int, rounds: int = 50, clock: str = "virtual", **strategy):
    outbox = ListOutbox()
    resolved = Strategy.from_config(StrategyConfig(**strategy), sample_size)
    c = Coordinator("coordinator", "c", MessageCatalog(), outbox, plan=CoursePlan(n, rounds, sample_size),
                    initial_params=PARAMS, aggregator=FedAvg(), sampler=make_sampler(resolved.sampler),
                    rng=np.random.default_rng(0), strategy=resolved, clock=clock)
    return c, outbox


def join_all(c: Coordinator) -> None:
    for i in range(c.plan.participants):
        c.handle(Message("join_in", ("coordinator",), 0, {"address": f"p{i}", "num_train_samples": 10,
                                                           "num_test_samples": 1, "backend": "numpy"},
                         sender=f"p{i}", timestamp=0.0, id=f"p{i}/t/{next(_ids)}", course="c"))


def coordinator(n: int, sample_size: int, rounds: int = 50, **strategy):
    c, outbox = unjoined(n, sample_size, rounds, **strategy)
    join_all(c)
    return c, outbox


def update(sender: str, rnd: int, value: float, ts: float, n: int = 10) -> Message:
    return Message("model_update", ("coordinator",), rnd, {"num_samples": n, "base_round": rnd, "train_metrics": {},
                                                           "tensors": {"w": np.full(3, value, np.float32)}},
                   sender=sender, timestamp=ts, id=f"{sender}/t/{next(_ids)}", course="c")


def sent_to(outbox: ListOutbox, type_name: str = "model_parameters") -> list[tuple[str, ...]]:
    return [m.receivers for m in outbox.of_type(type_name)]


# -- config ---------------------------------------------------------------------------------


def course(**strategy) -> dict:
    return {"participants": 10, "sample_size": 4, "strategy": strategy}


@pytest.mark.parametrize("strategy, message", [
    ({"name": "async_goal_aggr_unif", "min_received": 5},
     "strategy.min_received: goal_achieved waits for 5 updates, but only sample_size=4 participants train at once"),
    ({"name": "async_time_aggr_unif", "time_budget_s": -1},
     "strategy.time_budget_s: Input should be greater than 0 (got -1)"),
    ({"name": "async_time_aggr_unif"}, "strategy.time_budget_s: strategy async_time_aggr_unif (trigger time_up) "
                                       "needs a time budget"),
    ({"name": "custom", "trigger": "all_received", "broadcast": "after_receiving"},
     "strategy.broadcast: after_receiving sends a new model as soon as an update arrives"),
    ({"name": "sync_vanilla", "reply_timeout_s": 0},
     "strategy.reply_timeout_s: Input should be greater than 0 (got 0)"),
    ({"name": "sync_os", "overselection": 3.0}, "strategy.overselection: 3.0 x sample_size 4 asks for 12"),
    ({"name": "async_goal_rece_unif", "staleness_toleration": 0}, "strategy.staleness_toleration: after_receiving"),
    ({"name": "async_goal_rece_unify"}, "strategy.name: Input should be 'sync_vanilla'"),
    ({"name": "custom", "trigger": "goal"}, "strategy.trigger: Input should be 'all_received', 'goal_achieved'"),
    ({"name": "async_goal_aggr_unif", "sampler": "fastest"},
     "strategy.sampler: unknown sampler 'fastest'; known: group, oort, responsiveness, uniform"),
])
def test_a_strategy_that_cannot_work_is_refused_before_the_course_naming_the_key(strategy, message):
    with pytest.raises(ConfigError) as err:
        CourseBuilder(config_from_dict(course(**strategy)))  # the sampler is found when the course is built
    assert message in str(err.value)


def test_named_strategies_resolve_to_the_papers_settings():
    def resolved(**kw):
        return Strategy.from_config(StrategyConfig(**kw), 20)

    vanilla = resolved(name="sync_vanilla")
    assert (vanilla.trigger, vanilla.broadcast, vanilla.toleration, vanilla.concurrency) == (
        "all_received", "after_aggregating", 0, 20) and vanilla.synchronous and vanilla.evaluates_participants
    os_ = resolved(name="sync_os")
    assert (os_.trigger, os_.goal, os_.concurrency, os_.synchronous) == ("goal_achieved", 20, 26, True)
    rece = resolved(name="async_goal_rece_unif", min_received=5)
    assert (rece.trigger, rece.broadcast, rece.goal, rece.toleration, rece.synchronous) == (
        "goal_achieved", "after_receiving", 5, 10, False)
    assert resolved(name="async_goal_aggr_group").sampler == "group"
    assert resolved(name="async_time_aggr_unif", time_budget_s=3).trigger == "time_up"
    assert resolved(name="async_goal_aggr_unif", min_received_rate=0.25).goal == 5
    # an explicit key wins over the preset
    assert resolved(name="sync_os", staleness_toleration=3).toleration == 3


def test_staleness_discounts():
    poly = Strategy.from_config(StrategyConfig(name="async_goal_aggr_unif"), 4)
    assert [poly.weight(s) for s in (0, 3)] == [1.0, 0.5]
    hinge = Strategy.from_config(StrategyConfig(name="async_goal_aggr_unif", staleness_discount="hinge",
                                                discount_exponent=1.0, discount_hinge=2), 4)
    assert [hinge.weight(s) for s in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.2]
    const = Strategy.from_config(StrategyConfig(name="async_goal_aggr_unif", staleness_discount="constant"), 4)
    assert const.weight(9) == 1.0


# -- aggregation rule -----------------------------------------------------------------------


def test_stale_updates_are_applied_as_discounted_deltas_from_their_own_base_with_normalised_weights():
    current = {"w": np.full(3, 10.0, np.float32)}
    old = {"w": np.full(3, 4.0, np.float32)}
    fresh = ClientUpdate("a", {"w": np.full(3, 12.0, np.float32)}, 10, 2, 0)  # delta +2 from current
    stale = ClientUpdate("b", {"w": np.full(3, 5.0, np.float32)}, 30, 0, 2, weight=1 / 3, base=old)  # delta +1
    out = FedAvg().aggregate(current, [fresh, stale])["w"]
    # weights 10*1 and 30*(1/3) = 10 -> normalised 0.5, 0.5 -> step 1.5
    np.testing.assert_allclose(out, 11.5, rtol=1e-6)
    assert out.dtype == np.float32
    half = FedAvg(server_lr=0.5).aggregate(current, [fresh, stale])["w"]
    np.testing.assert_allclose(half, 10.75, rtol=1e-6)


def test_fresh_updates_average_exactly_as_plain_fedavg():
    ups = [ClientUpdate(n, {"w": np.full(3, v, np.float32)}, k, 0) for n, v, k in (("a", 1.0, 1), ("b", 0.0, 3))]
    assert FedAvg().aggregate(PARAMS, ups)["w"].tolist() == [0.25] * 3


# -- triggers and broadcast manners ---------------------------------------------------------


def test_goal_achieved_aggregates_after_k_updates_and_after_aggregating_tops_up_the_concurrency():
    c, outbox = coordinator(8, 4, name="async_goal_aggr_unif", min_received=2)
    (first,) = sent_to(outbox)
    assert len(first) == 4 and len(c.state.requests.busy) == 4
    a, b, rest = first[0], first[1], first[2:]
    c.handle(update(a, 0, 1.0, ts=1.0))
    assert c.state.round == 0 and len(sent_to(outbox)) == 1  # after_aggregating: nothing sent on receipt
    c.handle(update(b, 0, 3.0, ts=2.0))
    assert c.state.round == 1 and c.params["w"].tolist() == [2.0] * 3
    second = sent_to(outbox)[1]
    assert len(second) == 2 and not set(second) & set(rest)  # two idle participants replace the two that reported
    assert outbox.of_type("model_parameters")[1].timestamp == 2.0  # the broadcast inherits the trigger's time
    assert len(c.state.requests.busy) == 4


def test_after_receiving_sends_the_current_model_to_an_idle_participant_at_once():
    c, outbox = coordinator(6, 3, name="async_goal_rece_unif", min_received=2)
    (first,) = sent_to(outbox)
    c.handle(update(first[0], 0, 1.0, ts=1.0))
    assert len(sent_to(outbox)) == 2 and len(sent_to(outbox)[1]) == 1 and len(c.state.requests.busy) == 3
    c.handle(update(first[1], 0, 1.0, ts=1.5))
    # the goal is reached first, then the idle slot gets the aggregated model (round 1)
    last = outbox.of_type("model_parameters")[-1]
    assert c.state.round == 1 and last.round == 1 and len(last.receivers) == 1


def test_updates_staler_than_the_toleration_are_dropped_and_counted_not_dead_lettered():
    c, outbox = coordinator(6, 3, name="async_goal_rece_unif", min_received=1, staleness_toleration=1)
    (first,) = sent_to(outbox)
    slow = first[2]
    c.handle(update(first[0], 0, 1.0, ts=1.0))  # round 1
    nxt = outbox.of_type("model_parameters")[-1].receivers[0]
    c.handle(update(first[1], 0, 1.0, ts=2.0))  # staleness 1: tolerated, discounted; round 2
    assert c.state.aggregations[-1].staleness == (1,)
    c.handle(update(nxt, 1, 1.0, ts=2.5))  # round 3
    c.handle(update(slow, 0, 9.0, ts=3.0))  # staleness 3 > 1: dropped, not rejected
    assert c.state.buffer.dropped == [(slow, 3)] and slow not in c.state.requests.busy
    c.handle(update(outbox.of_type("model_parameters")[-1].receivers[0], 3, 1.0, ts=4.0))
    assert c.state.aggregations[-1].dropped == ((slow, 3),) and c.state.buffer.dropped == []


def test_an_update_nobody_asked_for_is_rejected_and_the_participant_stays_usable():
    c, outbox = coordinator(4, 2, name="async_goal_aggr_unif", min_received=2)
    (first,) = sent_to(outbox)
    idle = next(p for p in ("p0", "p1", "p2", "p3") if p not in first)
    with pytest.raises(RejectedMessage, match=f"second model_update from '{idle}', or one it was not asked for"):
        c.handle(update(idle, 0, 1.0, ts=1.0))
    with pytest.raises(RejectedMessage, match="is for round 3, but it was sent the model of round 0"):
        c.handle(update(first[0], 3, 1.0, ts=1.0))
    c.handle(update(first[0], 0, 1.0, ts=1.0))
    assert [u.sender for u in c.state.buffer.updates] == [first[0]]


def test_time_up_sends_itself_an_alarm_at_the_deadline_and_aggregates_what_arrived_before_it():
    c, outbox = coordinator(4, 4, name="async_time_aggr_unif", time_budget_s=5.0)
    (alarm,) = outbox.of_type("alarm")
    assert alarm.receivers == ("coordinator",) and alarm.timestamp == 5.0
    assert alarm.payload == {"budget": 1, "deadline": 5.0, "kind": "time_up"}
    c.handle(update("p0", 0, 2.0, ts=1.0))
    c.handle(update("p1", 0, 4.0, ts=4.0))
    assert c.state.round == 0
    c.handle(alarm)
    assert c.state.round == 1 and c.params["w"].tolist() == [3.0] * 3
    second = outbox.of_type("alarm")[-1]
    assert second.payload == {"budget": 2, "deadline": 10.0, "kind": "time_up"}
    c.handle(alarm)  # the old alarm again (a duplicate id): ignored
    forged = Message("alarm", ("coordinator",), 1, second.payload, sender="p2", timestamp=6.0, id="p2/t/1", course="c")
    with pytest.raises(RejectedMessage, match="only the coordinator sets its own timer"):
        c.handle(forged)
    c.handle(second)  # nothing arrived in this budget: same model, a new budget
    assert c.state.round == 1
    assert outbox.of_type("alarm")[-1].payload == {"budget": 3, "deadline": 15.0, "kind": "time_up"}


def test_a_wall_clock_alarm_rings_once_per_budget_even_when_the_virtual_deadline_repeats():
    from fscore.service import WallAlarm

    c, outbox = unjoined(2, 2, 5, clock="wall", name="async_time_aggr_unif", time_budget_s=5.0)
    now = [100.0]
    alarm = WallAlarm(c, clock=lambda: now[0])
    alarm()
    assert not outbox.of_type("alarm")  # no budget before the course starts
    join_all(c)
    assert not outbox.of_type("alarm")  # the wall clock sends nothing ahead
    alarm()
    now[0] = 104.0
    alarm()
    assert not outbox.of_type("alarm")
    now[0] = 105.0
    alarm()
    alarm()
    (first,) = outbox.of_type("alarm")
    c.handle(first)  # nothing arrived: a new budget, although virtual time has not moved
    assert c.state.timer.number == 2 and c.state.timer.deadline == 5.0
    alarm()  # the countdown of budget 2 starts now, at 105
    now[0] = 110.0
    alarm()
    assert outbox.of_type("alarm")[-1].payload == {"budget": 2, "deadline": 5.0, "kind": "time_up"}


def test_sync_os_over_selects_aggregates_the_first_k_and_drops_the_stragglers():
    c, outbox = coordinator(10, 4, name="sync_os")
    (cohort,) = sent_to(outbox)
    assert len(cohort) == math.ceil(4 * 1.3)
    for i, p in enumerate(cohort[:4]):
        c.handle(update(p, 0, 1.0, ts=1.0 + i))
    assert c.state.round == 1
    fresh = sent_to(outbox)[1]
    assert len(fresh) == 6 and not set(fresh) & set(cohort[4:])  # stragglers are still busy: not re-sampled
    c.handle(update(cohort[4], 0, 1.0, ts=9.0))
    assert c.state.buffer.dropped == [(cohort[4], 1)]


def test_sync_vanilla_waits_for_all_and_evaluates_on_every_participant():
    c, outbox = coordinator(3, 3, name="sync_vanilla")
    for p in ("p0", "p1"):
        c.handle(update(p, 0, 1.0, ts=1.0))
    assert c.state.round == 0
    c.handle(update("p2", 0, 1.0, ts=1.0))
    assert c.state.round == 1 and c.state.phase == "evaluating" and sent_to(outbox, "evaluate") == [("p0", "p1", "p2")]


# -- reply deadlines ----------------------------------------------------------------------------


def metrics(sender: str, rnd: int, ts: float) -> Message:
    return Message("metrics", ("coordinator",), rnd, {"split": "test", "num_samples": 1, "values": {"accuracy": 1.0}},
                   sender=sender, timestamp=ts, id=f"{sender}/t/{next(_ids)}", course="c")


def reply_alarms(outbox: ListOutbox) -> list[Message]:
    return [m for m in outbox.of_type("alarm") if m.payload["kind"] == "reply"]


def test_a_sync_round_goes_on_without_a_participant_that_missed_its_reply_deadline():
    c, outbox = coordinator(3, 3, name="sync_vanilla", reply_timeout_s=10.0)
    (deadline,) = reply_alarms(outbox)
    assert deadline.timestamp == 10.0 and deadline.payload == {"budget": 1, "deadline": 10.0, "kind": "reply"}
    c.handle(update("p0", 0, 1.0, ts=2.0))
    c.handle(update("p1", 0, 3.0, ts=4.0))
    c.handle(deadline)
    assert c.state.round == 1 and c.params["w"].tolist() == [2.0] * 3
    assert c.state.aggregations[-1].senders == ("p0", "p1")
    assert c.state.membership.unresponsive == {"p2": 1} and c.state.membership.timeouts == {"p2": 1}
    assert sent_to(outbox, "evaluate") == [("p0", "p1")]  # not asked again until heard from
    with pytest.raises(RejectedMessage, match="'p2' for round 0 came after its reply deadline"):
        c.handle(update("p2", 0, 9.0, ts=30.0))
    assert c.state.membership.unresponsive == {}  # it is alive after all: it may be sampled again


def test_an_evaluation_is_recorded_with_whoever_answered_by_its_deadline():
    c, outbox = coordinator(3, 3, name="sync_vanilla", reply_timeout_s=10.0)
    for p in ("p0", "p1", "p2"):
        c.handle(update(p, 0, 1.0, ts=1.0))
    assert c.state.phase == "evaluating"
    evaluation_deadline = reply_alarms(outbox)[-1]
    assert evaluation_deadline.payload["budget"] == 2 and evaluation_deadline.timestamp == 11.0
    c.handle(metrics("p0", 1, ts=2.0))
    c.handle(metrics("p1", 1, ts=3.0))
    c.handle(reply_alarms(outbox)[0])  # the training deadline: everyone answered it, nothing happens
    assert c.state.phase == "evaluating" and not c.state.membership.timeouts
    c.handle(evaluation_deadline)
    assert len(c.state.history) == 1 and c.state.membership.unresponsive == {"p2": 2}
    assert sent_to(outbox)[-1] == ("p0", "p1")  # the next cohort leaves p2 out


def test_sync_os_aggregates_what_arrived_once_everyone_left_was_given_up_on():
    c, outbox = coordinator(10, 4, name="sync_os", reply_timeout_s=10.0)
    (cohort,) = sent_to(outbox)
    for p in cohort[:3]:
        c.handle(update(p, 0, 1.0, ts=1.0))
    assert c.state.round == 0  # the goal is 4
    c.handle(reply_alarms(outbox)[0])
    assert c.state.round == 1 and c.state.aggregations[-1].senders == tuple(sorted(cohort[:3]))
    assert sorted(c.state.membership.unresponsive) == sorted(cohort[3:])


def test_an_async_course_hands_the_places_of_participants_given_up_on_to_others():
    c, outbox = coordinator(6, 4, name="async_goal_rece_unif", reply_timeout_s=10.0)
    (first,) = sent_to(outbox)
    c.handle(update(first[0], 0, 1.0, ts=3.0))  # its place goes to an idle participant at once
    replacement = sent_to(outbox)[-1]
    c.handle(reply_alarms(outbox)[0])  # three of the first four never answered
    given_up = set(first[1:])
    assert set(c.state.membership.unresponsive) == given_up
    refill = sent_to(outbox)[-1]
    assert not given_up & set(refill) and len(c.state.requests.busy) == 3  # only three are left who may be asked
    assert set(c.state.requests.busy) == {first[0], *replacement, *refill} - given_up


def test_when_everyone_was_given_up_on_everyone_is_asked_again():
    c, outbox = coordinator(2, 2, name="sync_vanilla", reply_timeout_s=5.0)
    c.handle(reply_alarms(outbox)[0])
    assert c.state.round == 0 and sorted(c.state.membership.unresponsive) == ["p0", "p1"]
    assert sent_to(outbox) == [("p0", "p1"), ("p0", "p1")]  # the course would stall otherwise
    assert reply_alarms(outbox)[-1].timestamp == 10.0


def test_a_wall_clock_reply_deadline_rings_only_when_a_request_is_still_unanswered():
    from fscore.service import WallAlarm

    c, outbox = unjoined(2, 2, 5, clock="wall", name="sync_vanilla", reply_timeout_s=5.0)
    now = [0.0]
    alarm = WallAlarm(c, clock=lambda: now[0])
    join_all(c)
    alarm()  # dispatch 1 (the models) is noticed now
    c.handle(update("p0", 0, 1.0, ts=1.0))
    c.handle(update("p1", 0, 1.0, ts=1.0))
    alarm()  # dispatch 2 (evaluate) at 0 too
    now[0] = 5.0
    c.handle(metrics("p0", 1, ts=2.0))
    alarm()
    (rung,) = reply_alarms(outbox)  # p1 owes metrics; the models were all answered
    assert rung.payload["budget"] == 2
    c.handle(rung)
    assert c.state.membership.unresponsive == {"p1": 2} and len(c.state.history) == 1
    alarm()  # dispatch 3: round 1's model, to p0 only, noticed at 5
    assert sent_to(outbox)[-1] == ("p0",)
    c.handle(update("p0", 1, 1.0, ts=3.0))
    now[0] = 20.0
    alarm()
    assert len(reply_alarms(outbox)) == 1  # dispatch 3 is overdue, but it was answered: no alarm


def test_all_received_with_a_staleness_toleration_still_ends_the_round_at_the_deadline():
    c, outbox = coordinator(6, 3, name="sync_vanilla", staleness_toleration=5, reply_timeout_s=10.0)
    (cohort,) = sent_to(outbox)
    c.handle(update(cohort[0], 0, 1.0, ts=2.0))
    c.handle(reply_alarms(outbox)[0])
    assert c.state.round == 1 and c.state.aggregations[-1].senders == (cohort[0],)
    assert len(sent_to(outbox)) == 1  # no one was sent a model between the deadline and the aggregation


def test_when_nobody_responsive_is_left_everyone_gets_another_go_and_an_answer_clears_the_mark():
    c, outbox = coordinator(2, 1, name="sync_vanilla", reply_timeout_s=5.0)
    (x,), = sent_to(outbox)
    c.handle(reply_alarms(outbox)[-1])  # x never answers: given up on at 5
    (y,) = sent_to(outbox)[-1]
    assert y != x and c.state.membership.unresponsive == {x: 1}
    c.handle(update(y, 0, 1.0, ts=6.0))  # round 1; y is asked to evaluate, x is not
    assert sent_to(outbox, "evaluate") == [(y,)]
    c.handle(reply_alarms(outbox)[-1])  # y does not evaluate in time either: the evaluation has no one left
    assert len(c.state.history) == 1 and sorted(c.state.membership.unresponsive) == sorted((x, y))
    (z,) = sent_to(outbox)[-1]  # nobody responsive is idle and nobody is training: everyone is a candidate
    c.handle(update(z, 1, 1.0, ts=12.0))
    assert c.state.round == 2 and z not in c.state.membership.unresponsive  # it answered in time: responsive again
    assert sent_to(outbox, "evaluate")[-1] == (z,)
