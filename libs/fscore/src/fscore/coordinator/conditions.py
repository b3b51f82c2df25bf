"""The coordinator's conditions (paper §3.2, condition-checking events), in precedence order.

A worker fires the first condition that holds, then checks again. Each reads the worker it is given,
so a test or a user handler may swap the coordinator's plan or strategy.
"""

from __future__ import annotations

from typing import Protocol

from fscore.conditions import Condition
from fscore.coordinator.state import CoordinatorState, CoursePlan
from fscore.message import ALARM, JOIN_IN, METRICS, MODEL_UPDATE
from fscore.strategy import Strategy


class Coordinated(Protocol):
    """What a condition reads of the coordinator."""

    state: CoordinatorState
    plan: CoursePlan
    strategy: Strategy

    def candidates(self) -> list[str]: ...


def _all_joined_in(c: Coordinated) -> bool:
    """Everyone answered (joined, or was refused for a model that does not fit) and someone joined; or the
    join deadline passed and enough joined."""
    s = c.state
    if s.phase != "joining" or not s.membership.participants:
        return False
    return (len(s.membership.participants) + len(s.membership.refused) == c.plan.participants
            or (s.membership.join_closed and len(s.membership.participants) >= c.plan.min_participants))


def _all_received(c: Coordinated) -> bool:
    return c.strategy.trigger == "all_received" and c.state.phase == "training" and not c.state.requests.busy


def _goal_achieved(c: Coordinated) -> bool:
    """k updates are in; or, in a sync round (Sync-OS), everyone still training was given up on."""
    s, st = c.state, c.strategy
    if st.trigger != "goal_achieved" or s.phase != "training":
        return False
    return len(s.buffer.updates) >= st.goal or (st.synchronous and not s.requests.busy)


def _time_up(c: Coordinated) -> bool:
    return c.strategy.trigger == "time_up" and c.state.phase == "training" and c.state.timer.rang


def _all_evaluated(c: Coordinated) -> bool:
    return c.state.phase == "evaluating" and len(c.state.evaluation.replies) == len(c.state.evaluation.evaluators)


def _max_rounds_reached(c: Coordinated) -> bool:
    return c.state.phase == "round_done" and c.state.round >= c.plan.rounds


def _early_stopped(c: Coordinated) -> bool:
    return (c.state.phase == "round_done" and c.plan.patience > 0
            and c.state.progress.evals_without_improvement >= c.plan.patience)


def _target_reached(c: Coordinated) -> bool:
    return c.state.phase == "round_done" and c.plan.stop_at_target and c.state.progress.target_reached


def _next_round_due(c: Coordinated) -> bool:
    return c.state.phase == "round_done"


def _participant_idle(c: Coordinated) -> bool:
    """after_receiving: fewer than the concurrency are training, and someone may be sent a model."""
    s = c.state
    return (c.strategy.broadcast == "after_receiving" and s.phase == "training"
            and len(s.requests.busy) < min(c.strategy.concurrency, len(s.membership.participants))
            and bool(c.candidates()))



def default_conditions(strategy: Strategy) -> list[Condition]:
    """The conditions in precedence order, each with the message types that can make it hold (the
    completeness check draws its edges from these)."""
    timed = strategy.trigger == "time_up" or strategy.reply_timeout_s is not None
    alarm = [ALARM] if timed else []
    training = [MODEL_UPDATE, *alarm]
    after = [*training, METRICS]
    return [Condition.of(name, check, watches) for name, check, watches in (
        ("all_joined_in", _all_joined_in, [JOIN_IN, ALARM]),
        ("all_received", _all_received, training),
        ("goal_achieved", _goal_achieved, training),
        ("time_up", _time_up, training),
        ("all_evaluated", _all_evaluated, [METRICS, *alarm]),
        ("max_rounds_reached", _max_rounds_reached, after),
        ("early_stopped", _early_stopped, after),
        ("target_reached", _target_reached, after),
        ("next_round_due", _next_round_due, after),
        ("participant_idle", _participant_idle, training),
    )]
