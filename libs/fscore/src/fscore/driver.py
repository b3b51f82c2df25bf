"""The consumer loop every worker runs, standalone or as a service.

Each delivered message is handled, and only then committed: after each polled batch, once what the
batch's handlers sent is durable. A message the worker rejects goes to the dead-letter topic with the
reason and the loop carries on (faust's acknowledge-then-commit).
"""

from __future__ import annotations

import structlog

from fscore.communicator import Communicator
from fscore.errors import RejectedMessage
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.driver")


def pump(worker: BaseWorker, communicator: Communicator, *, max_records: int = 500, timeout: float = 0.0) -> int:
    """Handle what is waiting for ``worker``; returns how many messages it handled or rejected."""
    handled = 0
    for delivery in communicator.poll(max_records, timeout):
        try:
            worker.handle(delivery.message)
        except RejectedMessage as exc:
            communicator.dead_letter(delivery.record, str(exc))
        communicator.done(delivery.record)
        handled += 1
    communicator.commit()
    return handled
