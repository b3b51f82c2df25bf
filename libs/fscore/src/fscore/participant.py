"""The participant (FL client) and its default handlers.

    start                    -> join                  emits join_in
    message:assign_id        -> on_assign_id
    message:model_parameters -> train_and_report      emits model_update
    message:evaluate         -> evaluate_and_report   emits metrics
    message:finish           -> on_finish
    message:refuse           -> on_refuse             (its model does not fit the agreed layout)

Replies are stamped in virtual time: the received timestamp plus the device profile's download,
compute and upload costs (docs/architecture.md, "Time").
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import structlog

from fscore.content import check_finite, nbytes
from fscore.data.dataset import ClientData
from fscore.errors import RejectedMessage
from fscore.events import START, on_message
from fscore.message import (
    ASSIGN_ID,
    COORDINATOR,
    EVALUATE,
    FINISH,
    JOIN_IN,
    METRICS,
    MODEL_PARAMETERS,
    MODEL_UPDATE,
    PARTICIPANT,
    REFUSE,
    Message,
    MessageCatalog,
)
from fscore.simulation.device import DeviceProfile
from fscore.trainers.base import Trainer
from fscore.worker import BaseWorker, Outbox
from fstranslation.layout import Layout, layout_differences, layout_of

log = structlog.get_logger("fscore.participant")


class Participant(BaseWorker):
    role = PARTICIPANT
    #: from the config, never a snapshot's state
    snapshot_exclude = ("data", "profile", "pace", "coordinator", "layout")

    def __init__(self, address: str, course: str, catalog: MessageCatalog, outbox: Outbox, *, trainer: Trainer,
                 data: ClientData, profile: DeviceProfile | None = None, coordinator: str = COORDINATOR,
                 pace: float = 0.0, incarnation: str = "0", layout: Layout | None = None) -> None:
        self.trainer = trainer
        self.data = data
        self.profile = profile or DeviceProfile()
        self.pace = pace  # deployment: sleep pace x the virtual duration of a reply, to emulate a slow device
        self.coordinator = coordinator
        self.participant_id: int | None = None
        self.finished = False
        self.finish_reason = ""
        self.refused = False
        self.rounds_trained = 0
        #: what a model from the coordinator must look like (the course's agreed layout; by default the
        #: trainer's own); checked before the trainer sees it
        self.layout = dict(layout) if layout is not None else layout_of(trainer.get_parameters())
        super().__init__(address, course, catalog, outbox, incarnation)

    def install_default_handlers(self) -> None:
        self.register(START, self.join, emits=[JOIN_IN])
        self.register(on_message(ASSIGN_ID), self.on_assign_id)
        self.register(on_message(MODEL_PARAMETERS), self.train_and_report, emits=[MODEL_UPDATE])
        self.register(on_message(EVALUATE), self.evaluate_and_report, emits=[METRICS])
        self.register(on_message(FINISH), self.on_finish)
        self.register(on_message(REFUSE), self.on_refuse)

    def join(self, _: Message | None = None) -> None:
        """Ask to take part, declaring the layout of this participant's model so the coordinator can refuse it."""
        params = self.trainer.get_parameters()
        self.send(JOIN_IN, [self.coordinator], 0, {
            "address": self.address, "num_train_samples": len(self.data.train),
            "num_test_samples": len(self.data.test), "backend": self.trainer.backend,
            "compute_s_per_sample": self.profile.compute_s_per_sample,
            "bandwidth_bytes_per_s": self.profile.bandwidth_bytes_per_s,
            "layout": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in params.items()]})

    def on_assign_id(self, msg: Message) -> None:
        self._from_coordinator(msg)
        self.participant_id = msg.payload["participant_id"]

    def _from_coordinator(self, msg: Message) -> None:
        if msg.sender != self.coordinator:
            raise RejectedMessage(f"{msg.type} from {msg.sender!r} (id {msg.id}): only {self.coordinator!r} "
                                  "sends these")

    def _received_model(self, msg: Message) -> Mapping[str, np.ndarray]:
        """The model in ``msg``, once it is known to fit this participant's model: right names, shapes and
        dtypes, all values finite. Anything else is refused here, never handed to torch or Keras.

        The participants of one process share a broadcast's decoded message (fscore.intake.DecodeCache), whose
        tensors are read-only: a fit is remembered with the decoded record (``msg.verdicts``), per layout, so
        the first participant of each layout checks it for all. A message built in Python is checked every time.
        """
        self._from_coordinator(msg)
        tensors = msg.payload["tensors"]
        key = ("fits", *self.layout.items())
        if msg.verdicts is not None and msg.verdicts.passed(key, tensors):
            return tensors
        problems = layout_differences(layout_of(tensors), self.layout)
        if problems:
            raise RejectedMessage(f"{msg.type} of round {msg.round} (id {msg.id}) does not fit {self.address}'s "
                                  "model: " + "; ".join(problems))
        check_finite(f"{msg.type} of round {msg.round} (id {msg.id})", tensors)
        # only read-only tensors are remembered: a plug-in's writable replacement could still be altered
        if msg.verdicts is not None and all(isinstance(t, np.ndarray) and not t.flags.writeable
                                             for t in tensors.values()):
            msg.verdicts.add(key, tensors)
        return tensors

    def train_and_report(self, msg: Message) -> None:
        received = self._received_model(msg)
        self.trainer.set_parameters(received)
        self.trainer.start_round(msg.round)
        result = self.trainer.train(self.data.train)
        params = self.trainer.get_parameters()
        self.rounds_trained += 1
        samples = result.samples_processed or result.num_samples
        done = (msg.timestamp + self.profile.transfer_time(nbytes(received)) + self.profile.compute_time(samples)
                + self.profile.transfer_time(nbytes(params)))
        if self.pace > 0:
            time.sleep(self.pace * (done - msg.timestamp))
        self.send(MODEL_UPDATE, [msg.sender], msg.round, {
            "num_samples": result.num_samples, "base_round": msg.round,
            "train_metrics": {k: float(v) for k, v in result.metrics.items()}, "tensors": params}, timestamp=done)

    def evaluate_and_report(self, msg: Message) -> None:
        received = self._received_model(msg)
        self.trainer.set_parameters(received)
        result = self.trainer.evaluate(self.data.test)
        done = (msg.timestamp + self.profile.transfer_time(nbytes(received))
                + self.profile.compute_time(result.num_samples))
        self.send(METRICS, [msg.sender], msg.round, {
            "split": "test", "num_samples": result.num_samples,
            "values": {k: float(v) for k, v in result.metrics.items()}}, timestamp=done)

    def on_finish(self, msg: Message) -> None:
        self.trainer.set_parameters(self._received_model(msg))
        self.finished = True
        self.finish_reason = msg.payload["reason"]

    def on_refuse(self, msg: Message) -> None:
        """The coordinator turned this participant away: its model does not fit the agreed layout."""
        self._from_coordinator(msg)
        self.finished = True
        self.refused = True
        self.finish_reason = msg.payload["reason"]
        log.error("refused", participant=self.address, backend=self.trainer.backend, reason=self.finish_reason)
