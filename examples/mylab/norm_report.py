"""A worked plug-in (README, "Extending fscope"): clip each update's change to an L2 bound, and tell the
coordinator what was clipped.

One file holds a new message type (``update_norm``), a handler at each end and a payload transform;
one config line gives it to every worker (``examples/digits_norm_report.yaml``)::

    plugins: [{name: "mylab.norm_report:NormReport", role: all, options: {max_norm: 1.0}}]

- Participant, on the way in: note the model each round was sent (``incoming``).
- Participant, on the way out: scale what training changed down to ``max_norm`` before the update
  leaves (``outgoing``), the clipping step of DP-FedAvg (McMahan et al. 2018), and remember its norm.
- Participant, after training: send the coordinator an ``update_norm`` message (a handler added to
  the default ``model_parameters`` one with ``worker.extend``; nothing is replaced).
- Coordinator: a handler for ``update_norm`` keeps the counts, reported in summary.json.

Everything it does is a function of the messages its worker handled, so recovery and ``fscope replay
--verify`` rebuild it exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fscore.errors import RejectedMessage
from fscore.events import on_message
from fscore.message import MODEL_PARAMETERS, MODEL_UPDATE, Message
from fscore.plugins import MessageType, Plugin, replace_payload

UPDATE_NORM = "update_norm"
SCHEMA = {"type": "record", "name": "UpdateNorm", "namespace": "mylab",
          "fields": [{"name": "norm", "type": "double"}, {"name": "clipped", "type": "boolean"}]}


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_norm: float = Field(1.0, gt=0, description="the largest L2 norm an update's change may have")


class NormReport(Plugin):
    name = "norm_report"
    Options = Options

    def __init__(self, context: Any, **options: Any) -> None:
        super().__init__(context, **options)
        self._sent: dict[int, Mapping[str, np.ndarray]] = {}  # participant: round -> the model it was sent
        self._norm: tuple[float, bool] = (0.0, False)  # participant: its latest update's norm, and if clipped
        self.reports: dict[str, list[float]] = {}  # coordinator: sender -> the norms it reported
        self.clipped = 0

    @classmethod
    def message_types(cls) -> list[MessageType]:
        return [MessageType(UPDATE_NORM, "coordinator", SCHEMA)]

    def install(self, worker: Any) -> None:
        if worker.role == "participant":
            worker.extend(on_message(MODEL_PARAMETERS), functools.partial(self.report, worker), emits=[UPDATE_NORM])
        else:
            worker.register(on_message(UPDATE_NORM), functools.partial(self.on_update_norm, worker))

    # -- participant ------------------------------------------------------------------------

    def incoming(self, worker: Any, message: Message) -> Message:
        if message.type == MODEL_PARAMETERS:
            self._sent = {message.round: message.payload["tensors"]}
        return message

    def outgoing(self, worker: Any, message: Message) -> Message:
        sent = self._sent.get(message.round)
        if message.type != MODEL_UPDATE or sent is None:
            return message
        trained = message.payload["tensors"]
        floats = [k for k, t in trained.items() if np.issubdtype(t.dtype, np.floating)]
        norm = float(np.sqrt(sum(np.sum((trained[k].astype(np.float64) - sent[k]) ** 2) for k in floats)))
        factor = min(1.0, self.options.max_norm / norm) if norm > 0 else 1.0
        self._norm = (norm, factor < 1.0)
        clipped = {k: (sent[k] + factor * (t - sent[k])).astype(t.dtype) if k in floats else t
                   for k, t in trained.items()}
        return replace_payload(message, tensors=clipped)

    def report(self, worker: Any, message: Message) -> None:
        norm, clipped = self._norm
        worker.send(UPDATE_NORM, [message.sender], message.round, {"norm": norm, "clipped": clipped})

    # -- coordinator ------------------------------------------------------------------------

    def on_update_norm(self, worker: Any, message: Message) -> None:
        if message.sender not in worker.state.membership.participants:
            raise RejectedMessage(f"update_norm from unknown sender {message.sender!r}")
        self.reports.setdefault(message.sender, []).append(message.payload["norm"])
        self.clipped += bool(message.payload["clipped"])

    def summary(self) -> dict[str, Any]:
        norms = [n for ns in self.reports.values() for n in ns]
        return {"reports": len(norms), "clipped": self.clipped, "max_norm": self.options.max_norm,
                # fsum is correctly rounded in any order: reports arrive in another order over Kafka than standalone
                "mean_norm_before_clipping": math.fsum(norms) / len(norms) if norms else None}
