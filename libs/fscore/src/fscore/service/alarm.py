"""Wall-clock alarms of a deployed coordinator, and its ``waiting`` warning."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from fscore.errors import SnapshotError
from fscore.transport.base import Record

log = structlog.get_logger("fscore.service")


class WallAlarm:
    """Rings a deployed coordinator's alarms on the wall clock: the join deadline, time_up when a round's
    budget has passed, and reply deadlines.

    The coordinator only numbers what is running (time budgets, request dispatches); this notices a
    new one, starts a wall-clock countdown, and when it runs out has the coordinator send its alarm
    through its own inbox, where it is ordered with the updates and replayed like them. The join
    deadline counts from ``started`` (the course's first start; default: now). A restarted coordinator
    feeds :meth:`observe_record` each record it handles again, so the countdowns resume from the
    records' timestamps instead of starting over.
    """

    def __init__(self, coordinator: Any, clock: Callable[[], float] = time.time, started: float | None = None
                 ) -> None:
        self.coordinator = coordinator
        self.clock = clock
        self._budget = 0
        self._due = 0.0
        self._rung = False
        self._dispatch = 0
        self._reply_due: deque[tuple[int, float]] = deque()  # (dispatch, when its replies are overdue)
        timeout = coordinator.plan.join_timeout_s
        self._join_due = None if timeout is None else (clock() if started is None else started) + timeout
        self._progress: tuple[Any, ...] = ()
        self._quiet_since = clock()

    #: how long a course may go without progress before the coordinator says whom it is waiting for
    WAITING_WARNING_S = 60.0

    def __call__(self) -> None:
        self.observe(self.clock())
        self.ring(self.clock())
        self.warn_if_waiting(self.clock())

    def warn_if_waiting(self, now: float) -> None:
        """Without a reply deadline one lost update stalls a sync round for good: once a minute without
        progress, say so and name whom the coordinator is waiting for."""
        s = self.coordinator.state
        progress = (s.phase, s.round, len(s.buffer.updates), len(s.evaluation.replies), len(s.membership.participants),
                    s.requests.dispatch)
        if progress != self._progress:
            self._progress, self._quiet_since = progress, now
            return
        if now - self._quiet_since < self.WAITING_WARNING_S or s.phase == "finished":
            return
        self._quiet_since = now
        joining = s.phase == "joining"
        training, evaluating = self.coordinator.unanswered(s.requests.dispatch)
        log.warning("waiting", course=self.coordinator.course, phase=s.phase, round=s.round,
                    quiet_s=round(self.WAITING_WARNING_S), joined=len(s.membership.participants) if joining else None,
                    expected=self.coordinator.plan.participants if joining else None,
                    no_update=training, no_metrics=evaluating,
                    hint="set strategy.reply_timeout_s to go on without participants that do not answer")

    def snapshot_state(self) -> dict[str, Any]:
        """The countdowns, for a coordinator snapshot (:mod:`fscore.service.snapshots`): wall-clock times, so a
        restored coordinator's alarms ring when they would have."""
        return {"budget": self._budget, "due": self._due, "rung": self._rung, "dispatch": self._dispatch,
                "reply_due": [[d, t] for d, t in self._reply_due], "join_due": self._join_due}

    def restore_state(self, tree: dict[str, Any]) -> None:
        try:
            self._budget, self._due, self._rung = int(tree["budget"]), float(tree["due"]), bool(tree["rung"])
            self._dispatch = int(tree["dispatch"])
            self._reply_due = deque((int(d), float(t)) for d, t in tree["reply_due"])
            self._join_due = None if tree["join_due"] is None else float(tree["join_due"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"coordinator alarms: malformed snapshot state ({type(exc).__name__}: {exc})") from None

    def observe_record(self, record: Record) -> None:
        """Recovery: the coordinator has just handled ``record`` again; what it started then started at the
        record's time (now, if the record has none)."""
        self.observe(record.timestamp or self.clock())

    def observe(self, now: float) -> None:
        """Start the countdown of a time budget or a dispatch that is new since the last look, as of ``now``.
        Dispatches made between two looks share the later one: a look follows every batch."""
        state, strategy = self.coordinator.state, self.coordinator.strategy
        if strategy.time_budget_s is not None and state.timer.number and state.timer.number != self._budget:
            self._budget, self._due, self._rung = state.timer.number, now + strategy.time_budget_s, False
        if strategy.reply_timeout_s is not None and state.requests.dispatch > self._dispatch:
            self._dispatch = state.requests.dispatch
            self._reply_due.append((state.requests.dispatch, now + strategy.reply_timeout_s))

    def ring(self, now: float) -> None:
        """Have the coordinator send the alarm of every countdown that has run out by ``now``."""
        if self._join_due is not None and now >= self._join_due:
            self._join_due = None
            self.coordinator.ring_join_deadline()
        if self._budget and not self._rung and now >= self._due:
            self._rung = True
            self.coordinator.ring_alarm()
        overdue = None
        while self._reply_due and now >= self._reply_due[0][1]:
            overdue = self._reply_due.popleft()[0]
        if overdue is not None:
            self.coordinator.ring_reply_deadline(overdue)
