"""The consumer loop every worker runs, standalone or as a service.

Each record is decided on (:func:`fscore.intake.take`: handled, a duplicate, not addressed, or
dead-lettered with the reason) and only then committed: after each polled batch, once what the
batch's handlers sent is durable (faust's acknowledge-then-commit). No record stops the loop.
"""

from __future__ import annotations

import structlog

from fscore.communicator import Communicator
from fscore.intake import take
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.driver")


def pump(worker: BaseWorker, communicator: Communicator, *, max_records: int = 500, timeout: float = 0.0) -> int:
    """Handle what is waiting for ``worker``; returns how many messages reached it (handled or not)."""
    reached = 0
    for record in communicator.records(max_records, timeout):
        decision = take(worker, record, communicator.decode)
        communicator.intake[decision.outcome] += 1
        if decision.outcome.dead_letters:
            communicator.dead_letter(record, decision.reason)
        communicator.done(record)
        reached += decision.message is not None
    communicator.commit()
    return reached
