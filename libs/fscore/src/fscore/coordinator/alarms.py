"""The coordinator's alarms: the join deadline, the time_up budget and reply deadlines (paper §3.3).

An alarm is a message the coordinator sends to itself through its inbox, so it is ordered with the
updates and a replay sees it where the live run did. In virtual time it is sent at once, stamped
with its deadline; on the wall clock the service loop rings it (fscore.service.WallAlarm).
The payload's ``budget`` field numbers what the alarm is about, by kind: 0 for the join deadline,
the time budget for time_up, the dispatch for a reply deadline.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import structlog

from fscore.coordinator.state import CoordinatorState, CoursePlan
from fscore.errors import RejectedMessage
from fscore.message import ALARM, Message
from fscore.strategy import Strategy

log = structlog.get_logger("fscore.coordinator")


class AlarmKind(enum.Enum):
    JOIN = "join"
    TIME_UP = "time_up"
    REPLY = "reply"

    @staticmethod
    def of(payload: Mapping[str, Any]) -> AlarmKind:
        """The kind an alarm payload names; version-1 alarms name none (0 was the join deadline)."""
        kind = payload.get("kind")
        if not kind:
            return AlarmKind.JOIN if payload["budget"] == 0 else AlarmKind.TIME_UP
        try:
            return AlarmKind(kind)
        except ValueError:
            raise RejectedMessage(f"alarm of unknown kind {kind!r}") from None


def alarm_payload(kind: AlarmKind, number: int, deadline: float | None) -> dict[str, Any]:
    return {"budget": number, "deadline": deadline, "kind": kind.value}


class Alarms:
    """The coordinator's alarm handlers and timers (a part of :class:`~fscore.coordinator.Coordinator`)."""

    state: CoordinatorState
    plan: CoursePlan
    strategy: Strategy
    clock: str
    address: str
    course: str
    now: float
    send: Any
    _send_models: Any

    def open_joining(self, _: Message | None = None) -> None:
        """With a join deadline in virtual time, the alarm that ends joining is sent at once, stamped with
        the deadline; on the wall clock the service loop rings it (:meth:`ring_join_deadline`)."""
        if self.plan.join_timeout_s is not None and self.clock == "virtual":
            self.send(ALARM, [self.address], 0, alarm_payload(AlarmKind.JOIN, 0, self.plan.join_timeout_s),
                      timestamp=self.plan.join_timeout_s)

    def ring_join_deadline(self) -> None:
        """Wall clock: joining has lasted ``join_timeout_s``; the alarm goes through the inbox, to be replayed."""
        if self.state.phase == "joining" and not self.state.membership.join_closed:
            self.send(ALARM, [self.address], 0, alarm_payload(AlarmKind.JOIN, 0, self.now))

    def _dispatched(self) -> int:
        """Numbers a batch of requests. With a reply timeout on the virtual clock, the batch's deadline goes
        into the inbox now, stamped with its time; on the wall clock the service loop rings it."""
        s = self.state
        s.requests.dispatch += 1
        timeout = self.strategy.reply_timeout_s
        if timeout is not None and self.clock == "virtual":
            deadline = self.now + timeout
            self.send(ALARM, [self.address], s.round, alarm_payload(AlarmKind.REPLY, s.requests.dispatch, deadline),
                      timestamp=deadline)
        return s.requests.dispatch

    def _schedule_alarm(self) -> None:
        s, st = self.state, self.strategy
        if st.trigger != "time_up" or st.time_budget_s is None:
            return
        s.timer.number += 1
        s.timer.deadline = self.now + st.time_budget_s
        s.timer.rang = False
        if self.clock == "virtual":
            self.send(ALARM, [self.address], s.round, self._time_up_payload(), timestamp=s.timer.deadline)

    def _time_up_payload(self) -> dict[str, Any]:
        return alarm_payload(AlarmKind.TIME_UP, self.state.timer.number, self.state.timer.deadline)

    def ring_alarm(self) -> None:
        """Wall clock: the service loop calls this when the round's budget has passed. The alarm goes
        through the inbox, so it is ordered with the updates and a replay sees it where the live run did."""
        s = self.state
        if s.timer.number and s.phase == "training" and not s.timer.rang:
            self.send(ALARM, [self.address], s.round, self._time_up_payload())

    def ring_reply_deadline(self, dispatch: int) -> None:
        """Wall clock: ``reply_timeout_s`` has passed since ``dispatch`` was sent. Rung only if a request of it
        (or an earlier one) is still unanswered, so a course that keeps up writes no alarms."""
        if self.unanswered(dispatch) != ([], []):
            self.send(ALARM, [self.address], self.state.round, alarm_payload(AlarmKind.REPLY, dispatch, self.now))

    def unanswered(self, dispatch: int) -> tuple[list[str], list[str]]:
        """Who still owes an update, and who still owes metrics, for requests of ``dispatch`` or earlier."""
        s = self.state
        training = sorted(a for a, n in s.requests.requested.items() if n <= dispatch)
        evaluating = []
        if s.phase == "evaluating" and s.evaluation.dispatch <= dispatch:
            evaluating = [a for a in s.evaluation.evaluators if a not in s.evaluation.replies]
        return training, evaluating

    def on_alarm(self, msg: Message) -> None:
        s = self.state
        if msg.sender != self.address:
            raise RejectedMessage(f"alarm from {msg.sender!r}: only the coordinator sets its own timer")
        kind, number = AlarmKind.of(msg.payload), msg.payload["budget"]
        self._check_alarm(kind, number)
        if kind is AlarmKind.REPLY:
            self._give_up(number)
        elif kind is AlarmKind.JOIN:
            if s.phase == "joining":
                s.membership.join_closed = True
                log.info("join_deadline", course=self.course, joined=len(s.membership.participants),
                         refused=len(s.membership.refused), expected=self.plan.participants,
                         needed=self.plan.min_participants)
        elif s.phase == "training" and number == s.timer.number:
            s.timer.rang = True  # an alarm of an earlier budget is simply out of date

    def _check_alarm(self, kind: AlarmKind, number: int) -> None:
        """An alarm must be one this course can set: its signature (fscore.trust) proves who wrote it, and this
        refuses one that no timer of the course could have rung, whoever wrote it."""
        if kind is AlarmKind.JOIN and self.plan.join_timeout_s is None:
            raise RejectedMessage("a join-deadline alarm, but the course sets no join deadline (joining.timeout_s)")
        if kind is AlarmKind.REPLY and self.strategy.reply_timeout_s is None:
            raise RejectedMessage("a reply-deadline alarm, but the course sets no reply deadline "
                                  "(strategy.reply_timeout_s)")
        if kind is AlarmKind.REPLY and number > self.state.requests.dispatch:
            raise RejectedMessage(f"a reply-deadline alarm for dispatch {number}, but only "
                                  f"{self.state.requests.dispatch} dispatches were made")
        if kind is AlarmKind.TIME_UP and (self.strategy.trigger != "time_up" or number > self.state.timer.number):
            raise RejectedMessage(f"a time_up alarm for budget {number}, but the course has set "
                                  f"{self.state.timer.number} time budgets (trigger {self.strategy.trigger})")

    def _give_up(self, dispatch: int) -> None:
        """A reply deadline passed: the round goes on without whoever has not answered a request of ``dispatch``
        or earlier. They are not sampled or asked to evaluate until heard from again (a late reply, a join).
        A sync round aggregates what arrived; an async course hands their places to others at once."""
        s, st = self.state, self.strategy
        training, evaluating = self.unanswered(dispatch)
        for address in training:
            del s.requests.busy[address], s.requests.requested[address]
            waited = self.now - s.requests.sent_at.pop(address, self.now)
            known = s.membership.response_times.get(address, 0.0)
            s.membership.response_times[address] = max(known, waited, st.reply_timeout_s or 0.0)
        if evaluating:
            s.evaluation.evaluators = tuple(a for a in s.evaluation.evaluators if a in s.evaluation.replies)
        for address in [*training, *evaluating]:
            s.membership.unresponsive[address] = dispatch
            s.membership.timeouts[address] = s.membership.timeouts.get(address, 0) + 1
        if training or evaluating:
            log.warning("reply_deadline_passed", course=self.course, round=s.round, dispatch=dispatch,
                        no_update=training, no_metrics=evaluating, timeout_s=st.reply_timeout_s)
        if training and s.phase == "training" and st.trigger != "all_received" and not st.synchronous:
            self._send_models()  # all_received instead ends the round once nobody is left training

