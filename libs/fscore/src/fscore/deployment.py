"""Running one worker as a long-lived process over a real transport (the services use this).

The loop is the same ``pump`` the standalone runner uses; this adds what a process needs:
SIGTERM/SIGINT handling, the course manifest on the meta topic, and exit codes.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

from fscore.communicator import Communicator
from fscore.config import CourseConfig, config_from_dict
from fscore.driver import pump
from fscore.errors import TransportError
from fscore.message import COORDINATOR, COURSE_FINISHED, COURSE_MANIFEST, MessageCatalog
from fscore.topics import CourseTopics
from fscore.transport.base import Transport
from fscore.worker import BaseWorker
from fstranslation import Header

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
    """Pump ``worker`` until ``done()``; returns an exit code. ``tick`` runs between polls (timers)."""
    while not done():
        if stop.stopped:
            return EXIT_STOPPED
        pump(worker, communicator, timeout=poll_timeout)
        if tick is not None:
            tick()
            communicator.transport.flush()
    communicator.transport.flush()
    return EXIT_OK


class WallAlarm:
    """Rings a deployed coordinator's alarms on the wall clock: the join deadline, time_up when a round's
    budget has passed, and reply deadlines.

    The coordinator only numbers what is running (time budgets, request dispatches); this notices a
    new one, starts a wall-clock countdown, and when it runs out has the coordinator send its alarm
    through its own inbox, where it is ordered with the updates and replayed like them. The join
    deadline counts from this object's creation (the service's start); after a restart the
    countdowns start again, from the latest budget and dispatch.
    """

    def __init__(self, coordinator: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.coordinator = coordinator
        self.clock = clock
        self._budget = 0
        self._due = 0.0
        self._rung = False
        self._dispatch = 0
        self._reply_due: deque[tuple[int, float]] = deque()  # (dispatch, when its replies are overdue)
        timeout = coordinator.plan.join_timeout_s
        self._join_due = None if timeout is None else clock() + timeout

    def __call__(self) -> None:
        self._join_deadline()
        self._time_up()
        self._reply_deadlines()

    def _join_deadline(self) -> None:
        if self._join_due is not None and self.clock() >= self._join_due:
            self._join_due = None
            self.coordinator.ring_join_deadline()

    def _time_up(self) -> None:
        budget, seconds = self.coordinator.state.budget, self.coordinator.strategy.time_budget_s
        if not budget or seconds is None:
            return
        if budget != self._budget:
            self._budget, self._due, self._rung = budget, self.clock() + seconds, False
        if not self._rung and self.clock() >= self._due:
            self._rung = True
            self.coordinator.ring_alarm()

    def _reply_deadlines(self) -> None:
        """Dispatches made between two ticks share the later tick's countdown: a tick follows every batch."""
        seconds = self.coordinator.strategy.reply_timeout_s
        if seconds is None:
            return
        latest = self.coordinator.state.dispatch
        if latest > self._dispatch:
            self._dispatch = latest
            self._reply_due.append((latest, self.clock() + seconds))
        overdue = None
        while self._reply_due and self.clock() >= self._reply_due[0][1]:
            overdue = self._reply_due.popleft()[0]
        if overdue is not None:
            self.coordinator.ring_reply_deadline(overdue)


def recover(coordinator: BaseWorker, transport: Transport, topics: CourseTopics, catalog: MessageCatalog) -> int:
    """Rebuild a restarted coordinator's state from its own inbox: event sourcing.

    Its state is a function of the config and the inbox records it handled, which are exactly
    those before its committed offset. They are handed to it again with its sends captured and
    dropped: every output of a handled record was made durable before that record was committed.
    Returns how many records were handled again (0 for a first start).
    """
    from fscore.replay import Capture, read_topic, refeed

    committed = transport.committed(coordinator.address, topics.coordinator, 0)
    if committed == 0:
        return 0
    live, coordinator.outbox = coordinator.outbox, Capture()
    try:
        count, rejected, undecodable = refeed(coordinator, read_topic(transport, topics.coordinator,
                                                                      until={0: committed}), catalog)
    finally:
        coordinator.outbox = live
    log.info("recovered", worker=coordinator.address, records=count, rejected=rejected, undecodable=undecodable,
             resumes_at=committed)
    return count


def same_course(recorded: CourseConfig, config: CourseConfig) -> bool:
    """Whether ``config`` describes the course of ``recorded``; how to reach Kafka may differ."""
    return recorded.model_dump(mode="json", exclude={"transport"}) == config.model_dump(mode="json",
                                                                                        exclude={"transport"})


def publish_manifest(transport: Transport, topics: CourseTopics, catalog: MessageCatalog, config: CourseConfig,
                     incarnation: str) -> None:
    header = Header(f"{COORDINATOR}/{incarnation}/manifest", config.course_id, COURSE_MANIFEST, COORDINATOR, (), 0,
                    0.0)
    payload = {"config_json": json.dumps(config.model_dump(mode="json"), sort_keys=True),
               "config_hash": config.config_hash(), "incarnation": incarnation}
    transport.publish(topics.meta, catalog.codec.encode(header, payload))
    transport.flush()


def publish_finished(transport: Transport, topics: CourseTopics, catalog: MessageCatalog, course: str,
                     reason: str, rounds: int, model_sha256: str) -> None:
    header = Header(f"{COORDINATOR}/finished", course, COURSE_FINISHED, COORDINATOR, (), rounds, 0.0)
    transport.publish(topics.meta, catalog.codec.encode(header, {"reason": reason, "rounds": rounds,
                                                                 "model_sha256": model_sha256}))
    transport.flush()


def course_finished(transport: Transport, topics: CourseTopics, catalog: MessageCatalog) -> dict | None:
    """The course's finish record from the meta topic, or None while it runs (the meta topic stays tiny)."""
    from fscore.replay import read_topic

    for record in read_topic(transport, topics.meta):
        header, payload = catalog.codec.decode(record.value)
        if header.type == COURSE_FINISHED:
            return payload
    return None


def read_manifest(transport: Transport, topics: CourseTopics, catalog: MessageCatalog,
                  timeout: float = 10.0) -> CourseConfig:
    """The config of the course's first coordinator incarnation, from the meta topic."""
    consumer = transport.consumer([topics.meta], group=f"manifest-reader-{uuid.uuid4().hex[:8]}")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for record in consumer.poll(max_records=1, timeout=0.5):
                _, payload = catalog.codec.decode(record.value)
                return config_from_dict(json.loads(payload["config_json"]), source=f"{topics.meta} manifest")
    finally:
        consumer.close()
    raise TransportError(f"no course manifest on {topics.meta}: was course {topics.course!r} run with this prefix?")


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
