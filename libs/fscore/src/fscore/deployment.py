"""Running one worker as a long-lived process over a real transport (the services use this).

The loop is the same ``pump`` the standalone runner uses; this adds what a process needs:
SIGTERM/SIGINT handling, the course manifest on the meta topic, and exit codes.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

import structlog

from fscore.communicator import Communicator
from fscore.config import CourseConfig
from fscore.courselog import Capture, read_topic, refeed
from fscore.driver import pump
from fscore.errors import TransportError
from fscore.message import MessageCatalog
from fscore.topics import CourseTopics
from fscore.transport.base import Record, Transport
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.deployment")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_TRANSPORT = 3
EXIT_STOPPED = 4  # stopped by a signal before the course finished; it can be started again


class StopFlag:
    """Set by SIGTERM or SIGINT; the loop finishes the batch in hand, commits it, and exits."""

    def __init__(self) -> None:
        self.stopped = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        self.stopped = True


def new_incarnation() -> str:
    return uuid.uuid4().hex[:12]


def serve(worker: BaseWorker, communicator: Communicator, *, done: Callable[[], bool], poll_timeout: float,
          stop: StopFlag, tick: Callable[[], None] | None = None) -> int:
    """Pump ``worker`` until ``done()``; returns an exit code. ``tick`` runs between polls (timers).

    The transports ride out a broker outage for ``transport.kafka.outage_limit_s`` (producers keep
    retrying, consumers reconnect); an outage longer than that ends the loop with :data:`EXIT_TRANSPORT`.
    What was handled but not committed is handled again after a restart.
    """
    try:
        while not done():
            if stop.stopped:
                return EXIT_STOPPED
            pump(worker, communicator, timeout=poll_timeout)
            if tick is not None:
                tick()
                communicator.transport.flush()
        communicator.transport.flush()
    except TransportError as exc:
        log.error("kafka_unreachable", worker=worker.address, error=str(exc))
        return EXIT_TRANSPORT
    return EXIT_OK


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


def recover(coordinator: BaseWorker, transport: Transport, topics: CourseTopics, catalog: MessageCatalog,
            observe: Callable[[Record], None] | None = None) -> int:
    """Rebuild a restarted coordinator's state from its own inbox: event sourcing.

    Its state is a function of the config and the inbox records it handled, which are exactly
    those before its committed offset. They are handed to it again with its sends captured and
    dropped: every output of a handled record was made durable before that record was committed.
    ``observe`` is called with each record once the coordinator has handled it (the wall-clock
    alarms resume their countdowns from it). Returns how many records were handled again (0 for a
    first start).
    """
    committed = transport.committed(coordinator.address, topics.coordinator, 0)
    if committed == 0:
        return 0
    live, coordinator.outbox = coordinator.outbox, Capture()
    try:
        records = read_topic(transport, topics.coordinator, until={0: committed})
        intake = refeed(coordinator, _observed(records, observe), catalog)
    finally:
        coordinator.outbox = live
    log.info("recovered", worker=coordinator.address, records=intake.total(), resumes_at=committed,
             **intake.as_dict())
    return intake.total()


def _observed(records: Iterable[Record], observe: Callable[[Record], None] | None) -> Iterator[Record]:
    for record in records:
        yield record
        if observe is not None:  # runs when the next record is asked for: this one has been handled
            observe(record)


def same_course(recorded: CourseConfig, config: CourseConfig) -> bool:
    """Whether ``config`` describes the course of ``recorded``; how to reach Kafka may differ."""
    return recorded.model_dump(mode="json", exclude={"transport"}) == config.model_dump(mode="json",
                                                                                        exclude={"transport"})


#: Environment variables a container sets instead of writing brokers or secrets into the course file.
ENV_SETTINGS = {
    "KAFKA_BOOTSTRAP_SERVERS": "transport.kafka.bootstrap_servers",
    "FSCOPE_KAFKA_SASL_USERNAME": "transport.kafka.sasl_username",
    "FSCOPE_KAFKA_SASL_PASSWORD": "transport.kafka.sasl_password",
    "FSCOPE_KAFKA_SSL_KEY_PASSWORD": "transport.kafka.ssl_key_password",
}


def service_config(path: str | None, overrides: list[str]) -> CourseConfig:
    """A service's course config: a file plus overrides, from arguments or the environment.

    ``FSCOPE_CONFIG`` names the file, ``FSCOPE_SET`` holds ``;``-separated overrides, and
    :data:`ENV_SETTINGS` the brokers and secrets, so one container image serves any course and participant.
    Command-line values win over ``FSCOPE_SET``; the variables of :data:`ENV_SETTINGS` are taken
    literally (a password is never parsed as YAML) and win over both.
    """
    import os

    from fscore.config import load_config
    from fscore.errors import ConfigError

    path = path or os.environ.get("FSCOPE_CONFIG")
    if not path:
        raise ConfigError("no course config: pass CONFIG or set FSCOPE_CONFIG")
    env_overrides = [o for o in os.environ.get("FSCOPE_SET", "").split(";") if o.strip()]
    values = {key: os.environ[variable] for variable, key in ENV_SETTINGS.items() if os.environ.get(variable)}
    return load_config(path, [*env_overrides, *overrides], values)


def connect(config: CourseConfig, topics: CourseTopics) -> Transport:
    """The configured Kafka transport with the course's topics in place (created if missing)."""
    from fscore.transport.kafka_common import make_kafka_transport

    transport = make_kafka_transport(config.transport.kafka)
    transport.ensure_topics(topics.specs())
    return transport
