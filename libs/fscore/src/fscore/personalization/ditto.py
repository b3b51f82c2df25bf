"""Ditto (Li et al., ICML 2021): a personal model beside the global one, pulled towards it.

Each round a participant does two things with the model it was sent, w:

- the global update: plain local training of w, which it sends (so the coordinator runs FedAvg, unchanged);
- the personal update: local training of its own model v on the loss F(v) + lam/2 ||v - w||^2.

v starts as the first global model it receives and never leaves the participant. Evaluation reports v on the
participant's test set. lam trades personalization (0: local training only) for the global model's
generalisation (large: v stays near w).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fscore.data.dataset import Dataset
from fscore.personalization.base import Personalization, TrainerParts
from fscore.personalization.sharing import full_copy
from fscore.trainers.base import EvalResult, Trainer, TrainResult


class DittoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lam: float = Field(0.1, ge=0, description="the pull of the personal model towards the global one")
    personal_epochs: int | None = Field(None, ge=1, description="local epochs of the personal update "
                                                                  "(default: the trainer's local_epochs)")
    personal_lr: float | None = Field(None, gt=0, description="its learning rate (default: the trainer's lr)")


class DittoTrainer(Trainer):
    def __init__(self, global_: Trainer, personal: Trainer) -> None:
        self.global_ = global_
        self.personal = personal
        self.backend = global_.backend
        self._started = False

    def _full(self) -> dict[str, np.ndarray]:
        return full_copy(self.global_)

    def get_parameters(self) -> dict[str, np.ndarray]:
        return self.global_.get_parameters()

    def set_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        self.global_.set_parameters(params)
        received = self._full()
        self.personal.anchor = received  # type: ignore[attr-defined]  (a TorchTrainer)
        if not self._started:
            self.personal.set_parameters(received)
            self._started = True

    def start_round(self, round_: int) -> None:
        self.global_.start_round(round_)
        self.personal.start_round(round_)

    def train(self, data: Dataset) -> TrainResult:
        result = self.global_.train(data)
        personal = self.personal.train(data)
        metrics = {**result.metrics, "personal_loss": personal.metrics.get("loss", 0.0)}
        return TrainResult(result.num_samples, metrics, result.samples_processed + personal.samples_processed)

    def evaluate(self, data: Dataset) -> EvalResult:
        return self.personal.evaluate(data)


class Ditto(Personalization):
    name = "ditto"
    Options = DittoOptions
    backends = frozenset({"torch"})

    def trainer(self, parts: TrainerParts) -> Trainer:
        o = self.options
        update = {"proximal_mu": o.lam, "lr": o.personal_lr or parts.cfg.lr}
        if o.personal_epochs is not None:
            update.update(local_epochs=o.personal_epochs, local_steps=None)
        cfg = parts.cfg.model_copy(update=update)
        return DittoTrainer(parts.base, parts.make(1, cfg))
