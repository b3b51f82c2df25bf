"""A worker as a long-lived process over a real transport: the loop, the stop flag and the exit codes.

The loop is the same ``pump`` the standalone runner uses; this adds what a process needs:
SIGTERM/SIGINT handling, exit codes, and riding out a broker outage.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from types import FrameType

import structlog

from fscore.communicator import Communicator
from fscore.driver import pump
from fscore.errors import TransportError
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.service")

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
